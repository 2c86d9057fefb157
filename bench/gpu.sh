#!/usr/bin/env bash
# DenseDepth's GPU figures on a machine with JAX (and PyTorch) with CUDA, no TensorFlow and no network:
# training and inference images/s at 480x640, peak GPU memory, achieved TFLOP/s against the card's bf16 peak,
# printed as one table within about 8 minutes. Every configuration runs in a fresh process under `timeout`;
# one that fails or runs out of time prints its error in the table and the others go on. A line with the
# seconds since the start marks each configuration, and the JAX ones print when tracing and XLA's compile
# of the training step begin and end.
#
# XLA's compile is most of a JAX configuration's time: on the H200 in November the float32 training step
# took 92 s to compile and the bfloat16 one did not finish in 250 s, with an HLO the same size as float32's
# (37,000 ops, 535 convolutions, 1,000 more converts, no large constants; bench/bench_train.py on a CPU).
# The GPU compiler differs in autotuning: at its default level 4 it times every candidate cuDNN algorithm
# of every convolution and checks each one's result against a reference, and bfloat16 convolutions have
# more candidates. JAX_XLA_FLAGS below (level 1: time the candidates, skip the initialisation and the
# checks) applies to every JAX configuration; if bfloat16 training still runs out of time, it is tried once
# more without autotuning (level 0: XLA's default algorithms, a lower bound on speed).
#
# Before (here, with network; .whl/ is git-ignored; bench/gpu_wheels.txt lists what it holds):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
# On the GPU machine, from the repository root, with .whl carried along:
#   bash bench/gpu.sh                 # the table (PEAK_TFLOPS=790 by default: an H100/H200's measured bf16 matmul)
#   bash bench/gpu.sh --quick         # 64x64, 2 steps: the whole path, on a CPU too (PYTHON=... picks one)
# Results also land in $RESULTS (default /tmp/densedepth_gpu): results.jsonl and one log per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
PY=${PYTHON:-python3}
PEAK_TFLOPS=${PEAK_TFLOPS:-790}
RESULTS=${RESULTS:-/tmp/densedepth_gpu}
BUDGET_S=${BUDGET_S:-$(( QUICK ? 3600 : 430 ))}  # all configurations together; install and table on top
START_S=$SECONDS
mkdir -p "$RESULTS"
: > "$RESULTS/results.jsonl"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
export KERAS_BACKEND=${KERAS_BACKEND:-jax}  # Keras' default, TensorFlow, cannot even import here
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}  # JAX's default 0.75 caps the batch
export JAX_CACHE_DIR=${JAX_CACHE_DIR:-/tmp/densedepth_jax_cache}  # kept out of $RESULTS: many small files
JAX_XLA_FLAGS=${JAX_XLA_FLAGS---xla_gpu_autotune_level=1}

# Keras and what it needs beyond the machine's packages, from the wheels prepared beforehand.
if ! "$PY" -c "import keras" 2>/dev/null; then
    ls .whl/*.whl > /dev/null 2>&1 || { echo "error: no keras here and no .whl/ folder of wheels (see the top of $0)"; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import keras, jax; print(f'keras {keras.__version__}, jax {jax.__version__} on {jax.devices()[0]}')" || true
"$PY" -c "import tensorflow" 2>/dev/null && echo "note: TensorFlow is importable here" || echo "TensorFlow: not importable (as planned)"
if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; fi

if (( QUICK )); then
    SIZE=(--height 64 --width 64); TRAIN=(--steps 2 --warmup 1 --max-batch 4); INFER=(--steps 2); B0=2; BIG=4; CAP=${QUICK_CAP_S:-600}
else
    SIZE=(--height 480 --width 640); TRAIN=(--steps 10 --warmup 2 --max-batch 512); INFER=(--steps 20); B0=8; BIG=32; CAP=0
fi

elapsed() { echo "[+$(( SECONDS - START_S )) s]"; }

# run NAME SECONDS COMMAND...: the command under timeout, its output in $RESULTS/NAME.log; a failure (or a
# timeout) becomes a result line with the error, unless the command already wrote its own result lines.
run() {
    local name=$1 limit=$2; shift 2
    local left=$(( BUDGET_S - (SECONDS - START_S) ))
    (( CAP > 0 )) && limit=$CAP
    (( limit > left )) && limit=$left
    if (( limit < 20 )); then
        echo "{\"config\": \"$name\", \"error\": \"skipped: the time budget ($BUDGET_S s) is spent\"}" >> "$RESULTS/results.jsonl"
        echo "$(elapsed) $name: skipped, out of time"; return 0
    fi
    echo "$(elapsed) $name (at most ${limit} s)"
    # The command's own progress lines ("  [batch ...] ...") show as they come; everything goes to the log.
    set +e
    timeout --kill-after=10 "$limit" "$@" --jsonl "$RESULTS/$name.jsonl" 2>&1 | tee "$RESULTS/$name.log" \
        | grep --line-buffered '^  \[' | while IFS= read -r line; do echo "$(elapsed)$line"; done
    local rc=${PIPESTATUS[0]}
    set -e
    touch "$RESULTS/$name.jsonl"
    "$PY" - "$name" "$rc" "$RESULTS" <<'EOF'
import json, sys
name, rc, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(line) for line in open(f"{folder}/{name}.jsonl") if line.strip()]
log = [line for line in open(f"{folder}/{name}.log", errors="replace").read().splitlines() if line.strip()]
if rc == 124 or rc == 137:
    rows.append({"error": "timed out" + (" (rows above were measured before)" if rows else "")})
elif rc != 0 and not any("error" in r for r in rows):
    rows.append({"error": f"exit {rc}: " + (log[-1][:150] if log else "no output")})
with open(f"{folder}/results.jsonl", "a") as out:
    for r in rows:
        out.write(json.dumps({"config": name, **r}) + "\n")
print("\n".join(log[-3:]))
EOF
}

TRAIN_CMD=("$PY" bench/bench_train.py --data random "${SIZE[@]}" "${TRAIN[@]}")
INFER_CMD=("$PY" bench/bench_infer.py --data random "${SIZE[@]}" "${INFER[@]}" --batch-sizes 1 "$BIG")
JAX=(env "XLA_FLAGS=$JAX_XLA_FLAGS")
echo "$(elapsed) JAX configurations run with XLA_FLAGS='$JAX_XLA_FLAGS'"
# bfloat16 first (the targets are bfloat16's; float32 was measured in November), then float32 and
# PyTorch: whatever the budget leaves out comes last.
run infer_jax_bfloat16 70 "${JAX[@]}" "${INFER_CMD[@]}" --backend jax --precision bfloat16
run train_jax_bfloat16 130 "${JAX[@]}" "${TRAIN_CMD[@]}" --bs "$B0" --backend jax --precision bfloat16
if ! grep -q images_per_s "$RESULTS/train_jax_bfloat16.jsonl" 2>/dev/null; then
    run train_jax_bfloat16_no_autotune 100 env XLA_FLAGS=--xla_gpu_autotune_level=0 "${TRAIN_CMD[@]}" --bs "$B0" \
        --backend jax --precision bfloat16
fi
# Doubling from twice the first batch until the device runs out of memory or the search's time is up
# (each batch compiles anew): the largest batch measured, with its speed.
run maxbatch_jax_bfloat16 150 "${JAX[@]}" "${TRAIN_CMD[@]}" --bs $(( 2 * B0 )) --find-max-batch --search-seconds 130 \
    --backend jax --precision bfloat16
run train_jax_float32 110 "${JAX[@]}" "${TRAIN_CMD[@]}" --bs "$B0" --backend jax --precision float32
run infer_jax_float32 60 "${JAX[@]}" "${INFER_CMD[@]}" --backend jax --precision float32
if "$PY" -c "import torch" 2>/dev/null; then
    run train_torch_bfloat16 70 "${TRAIN_CMD[@]}" --bs "$B0" --backend torch --precision bfloat16
    run infer_torch_bfloat16 50 "${INFER_CMD[@]}" --backend torch --precision bfloat16
else
    echo "{\"config\": \"torch\", \"error\": \"PyTorch is not importable here\"}" >> "$RESULTS/results.jsonl"
fi
run maxbatch_jax_float32 150 "${JAX[@]}" "${TRAIN_CMD[@]}" --bs $(( 2 * B0 )) --find-max-batch --search-seconds 130 \
    --backend jax --precision float32

"$PY" - "$RESULTS/results.jsonl" "$PEAK_TFLOPS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
peak = float(sys.argv[2])
device = next((r["device"] for r in rows if r.get("device")), "?")
size = next((f"{r['width']}x{r['height']}" for r in rows if r.get("width")), "?")
print(f"\nDenseDepth (DenseNet-169, full decoder) at {size} on {device}; % of peak against {peak:g} TFLOP/s bf16")
print("TFLOP/s: 2 x conv multiply-accumulates, forward (inference) or 3 x forward (a training step); peak MiB:")
print("the device's peak allocation (JAX: since its process began), '(host)' the process's peak RSS\n")
header = ["configuration", "batch", "images/s", "ms/step", "peak MiB", "TFLOP/s", "% of peak", "compile s", "note"]
lines = [header]
for i, r in enumerate(rows):
    if "error" in r:
        lines.append([r["config"], str(r.get("batch", "")), "-", "-", "-", "-", "-", "-", r["error"][:110]])
        continue
    ms = r.get("step_ms", r.get("call_ms"))
    note = ""
    if r["config"].startswith("maxbatch"):
        later = [x for x in rows[i + 1:] if x["config"] == r["config"]]
        if not later or "error" in later[0]:
            oom = later and "out of memory" in later[0]["error"]
            note = "largest that fits" if oom else "largest measured (no out-of-memory seen)"
    lines.append([r["config"], str(r["batch"]), f"{r['images_per_s']:.1f}", f"{ms:.1f}",
                  f"{r['peak_mb']:.0f}" + ("" if r.get("memory") == "device" else " (host)"),
                  f"{r['tflops']:.2f}", f"{100 * r['tflops'] / peak:.1f}",
                  f"{r['compile_s']:.0f}" if "compile_s" in r else "", note])
widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
for n, line in enumerate(lines):
    print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    if n == 0:
        print("-+-".join("-" * w for w in widths))
EOF
echo "total $(( SECONDS - START_S )) s; logs in $RESULTS"
