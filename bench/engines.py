"""bench_infer.py --engines: every way this project runs a model on the CPU, side by side.

    python bench/bench_infer.py --engines --accuracy-model runs/synth72/final.keras

Engines x precisions: Keras float32 and bfloat16 (TensorFlow, oneDNN), the SavedModel (TensorFlow), TFLite
float32 / float16 / dynamic / int8 (LiteRT with XNNPACK) and ONNX Runtime float32 (MLAS). For each:

- speed: images/s at 480x640, batch 1, the paper's full network (random weights: speed does not depend on
  them), median of --repeats calls after a first one, each configuration in a fresh process, with its own
  peak resident memory (VmHWM: model, runtime and activations, not the parent's) and the exported file's size;
- accuracy: the change in delta1 and abs rel against Keras float32 when --accuracy-model (a trained model)
  is exported the same way and evaluated by evaluate.py on the synthetic test rooms at its training size.

Exports are written once into --engines-dir and reused by later runs.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from backends import own_peak_rss_mib

REPO = Path(__file__).resolve().parents[1]
ENGINES = [("keras", "float32"), ("keras", "bfloat16"), ("savedmodel", "float32"), ("tflite", "float32"),
           ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8"), ("onnx", "float32")]
EXPORTED_NAMES = {"savedmodel": "savedmodel", "tflite": "{precision}.tflite", "onnx": "float32.onnx"}


def exported_path(folder, engine, precision, source):
    """Where an engine's file lives: the Keras source itself, else an export in folder."""
    if engine == "keras":
        return Path(source)
    return Path(folder) / EXPORTED_NAMES[engine].format(precision=precision)


def export_all(source, folder, calibration_data):
    """Export source once per engine into folder (kept ones reused); {(engine, precision): path}."""
    paths = {}
    for engine, precision in ENGINES:
        path = exported_path(folder, engine, precision, source)
        paths[engine, precision] = path
        if engine == "keras" or path.exists():
            continue
        quantize = precision if engine == "tflite" and precision != "float32" else "none"
        start = time.perf_counter()
        command = [sys.executable, str(REPO / "export.py"), "--model", str(source), "--format", engine,
                   "--quantize", quantize, "--data", calibration_data, "--output", str(path)]
        run_checked(command)
        print(f"  exported {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return paths


def run_checked(command):
    """stdout of a command; its last error line (and exit) if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        sys.exit(f"error: {' '.join(command[1:3])} ... failed: {lines[-1]}")
    return result.stdout


# ---------------------------------------------------------------------------------------------------------
# One configuration's speed, in its own process
# ---------------------------------------------------------------------------------------------------------


def time_engine(config):
    """{first_call_s, call_s, peak_memory_mib} of one engine on one random 480x640 picture."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    engine, path = config["engine"], config["path"]
    if engine == "keras":
        import tensorflow as tf

        from model import load_model

        model = load_model(path, config["precision"])
        call = tf.function(lambda x: model(x, training=False))
        forward = lambda x: call(tf.constant(x)).numpy()  # noqa: E731
    else:
        from estimator import load_exported

        forward = load_exported(path, config["threads"])
    x = np.random.default_rng(0).random((1, *config["hw"], 3), dtype=np.float32)
    start = time.perf_counter()
    forward(x)
    first = time.perf_counter() - start
    seconds = []
    for _ in range(config["repeats"]):
        start = time.perf_counter()
        np.asarray(forward(x))
        seconds.append(time.perf_counter() - start)
    return {"first_call_s": first, "call_s": float(np.median(seconds)),
            "peak_memory_mib": own_peak_rss_mib()}


def speeds(paths, hw, repeats, threads):
    """{(engine, precision): time_engine's result}, each from a fresh `bench_infer.py --child` process."""
    results = {}
    for (engine, precision), path in paths.items():
        config = {"engine": engine, "precision": precision, "path": str(path), "hw": list(hw), "repeats": repeats,
                  "threads": threads}
        out = run_checked([sys.executable, str(REPO / "bench" / "bench_infer.py"), "--child", json.dumps(config)])
        results[engine, precision] = json.loads(out.strip().splitlines()[-1])
        print(f"  timed {engine} {precision}: {1 / results[engine, precision]['call_s']:.2f} images/s", flush=True)
    return results


# ---------------------------------------------------------------------------------------------------------
# Accuracy: evaluate.py on the synthetic test rooms, one fresh process per engine
# ---------------------------------------------------------------------------------------------------------


def accuracies(paths, data, folder):
    """{(engine, precision): evaluate.py's pooled metrics} of every engine's file."""
    results = {}
    for (engine, precision), path in paths.items():
        report = Path(folder) / f"eval_{engine}_{precision}.json"
        command = [sys.executable, str(REPO / "evaluate.py"), "--model", str(path), "--data", data,
                   "--json", str(report)]
        if engine == "keras":
            command += ["--precision", precision]
        run_checked(command)
        results[engine, precision] = json.loads(report.read_text())["pooled"]
    return results


# ---------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------


def speed_model(folder):
    """The paper's network (random weights, seeded) saved with an NYU contract at 480x640."""
    path = Path(folder) / "paper_network.keras"
    if path.exists():
        return path
    import keras

    from contract import model_contract, save_model
    from depth import NYU, NYU_IMAGE_HW
    from model import create_model

    keras.utils.set_random_seed(0)
    model = create_model(weights=None)
    save_model(model, path, model_contract(model, "nyu", NYU, NYU_IMAGE_HW))
    return path


def main(args):
    folder = Path(args.engines_dir)
    from depth import NYU_IMAGE_HW

    print(f"engines on this machine ({os.cpu_count()} cores, --threads {args.threads or 'default'}), the paper's "
          f"network at 480x640, batch 1; exports in {folder}", flush=True)
    metrics = {}
    if args.accuracy_model:
        (folder / "accuracy").mkdir(parents=True, exist_ok=True)
        accuracy_paths = export_all(args.accuracy_model, folder / "accuracy", args.calibration_data)
        metrics = accuracies(accuracy_paths, args.accuracy_data, folder / "accuracy")
    if args.accuracy_only:
        return print_accuracy(metrics)
    (folder / "speed").mkdir(parents=True, exist_ok=True)
    speed_paths = export_all(speed_model(folder / "speed"), folder / "speed", args.calibration_data)
    timing = speeds(speed_paths, NYU_IMAGE_HW, args.repeats, args.threads)
    print_table(speed_paths, timing, metrics)


def print_accuracy(metrics):
    """The accuracy columns alone (--accuracy-only)."""
    reference = metrics["keras", "float32"]
    print(f"\n{'engine':<11}{'precision':<10}{'delta1':>8}{'abs_rel':>9}{'d delta1':>10}{'d abs_rel':>10}")
    for (engine, precision), got in metrics.items():
        print(f"{engine:<11}{precision:<10}{got['a1']:>8.4f}{got['abs_rel']:>9.4f}"
              f"{got['a1'] - reference['a1']:>+10.4f}{got['abs_rel'] - reference['abs_rel']:>+10.4f}")


def print_table(paths, timing, metrics):
    from export import folder_size

    base = timing["keras", "float32"]["call_s"]
    bf16 = timing["keras", "bfloat16"]["call_s"]
    print(f"\n{'engine':<11}{'precision':<10}{'images/s':>9}{'x f32':>7}{'x bf16':>7}{'first s':>8}{'peak MiB':>9}"
          f"{'file MB':>8}{'d delta1':>10}{'d abs_rel':>10}")
    for (engine, precision), result in timing.items():
        row = (f"{engine:<11}{precision:<10}{1 / result['call_s']:>9.2f}{base / result['call_s']:>7.2f}"
               f"{bf16 / result['call_s']:>7.2f}{result['first_call_s']:>8.1f}{result['peak_memory_mib']:>9.0f}"
               f"{folder_size(paths[engine, precision]) / 1e6:>8.0f}")
        if metrics:
            reference, got = metrics["keras", "float32"], metrics[engine, precision]
            row += f"{got['a1'] - reference['a1']:>+10.4f}{got['abs_rel'] - reference['abs_rel']:>+10.4f}"
        print(row)
    if metrics:
        reference = metrics["keras", "float32"]
        print(f"accuracy model's Keras float32: delta1 {reference['a1']:.4f}, abs rel {reference['abs_rel']:.4f}")
