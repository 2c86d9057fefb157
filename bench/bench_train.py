"""Training speed of DenseDepth: images/s and peak memory of train.py's training step at a given input size and
global batch, for the paper's full-width decoder and the reference code's half width, in float32 and in mixed
precision (float16 compute on a GPU, bfloat16 on a CPU; float32 weights either way).

    python bench/bench_train.py                                   # 128x160, batch 2, 5 timed steps: minutes on 2 CPUs
    python bench/bench_train.py --input-size 480x640 --bs 8 --steps 50 --warmup 5   # the paper's set-up, on GPUs
    python bench/bench_train.py --data synthetic                  # through train.py's input pipeline as well

Each configuration runs in a process of its own, so that its dtype policy and its peak memory are its alone.
The process builds the model as train.py does (distribute.make_strategy, train.build_model: Adam, the depth loss
and the monitoring metrics, under the same distribution strategy over every visible GPU) and runs model.fit
for --warmup untimed steps (the first traces the graph; its time is reported apart) and --steps timed ones.
By default every step trains on one random batch held in memory, which measures the step alone; --data
feeds train.py's tf.data pipeline instead (decoding, resizing and augmentation share the CPUs). Peak memory
is the process's peak resident memory (model, optimizer state, activations and the TensorFlow runtime on a
CPU) and, on a GPU, TensorFlow's peak allocation on GPU:0.

On any Keras backend, with NumPy batches and no TensorFlow needed (a GPU machine with JAX but no TensorFlow):

    python bench/bench_train.py --backend jax --data random --height 480 --width 640 --batch 8 --precision bfloat16
    python bench/bench_train.py --backend jax --data random --batch 8 --find-max-batch --jsonl results.jsonl

There the step is the network and the depth loss under Adam, nothing of train.py: on JAX a jitted step
written with Keras' stateless API (model.stateless_call, jax.value_and_grad, optimizer.stateless_apply)
on one device, on PyTorch and TensorFlow model.train_on_batch. One configuration (a precision, a decoder
width) is measured in this process; --find-max-batch doubles the batch from --batch until the device runs
out of memory, one result line per batch. Peak memory is the device's peak allocation (JAX: since the
process began), achieved TFLOP/s counts 3 x the forward convolutions' FLOPs per image (forward, and the
two products of the backward pass).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere: the repo root holds the modules
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from backends import BACKEND_POLICIES, BACKENDS  # noqa: E402  (the bench folder is on sys.path)

DECODER_WIDTHS = (1.0, 0.5)  # the paper's decoder, the reference code's
CHILD_TIMEOUT_S = 1800  # one configuration; a hung child must not hang the bench


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", default="128x160", help="training input HxW (default 128x160)")
    parser.add_argument("--height", type=int, help="input height (overrides --input-size)")
    parser.add_argument("--width", type=int, help="input width (overrides --input-size)")
    parser.add_argument("--bs", "--batch", type=int, default=2, help="global batch over all replicas (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps first; the first one traces the graph (default 2)")
    parser.add_argument("--encoder", default="densenet169", choices=["densenet169", "densenet201"])
    parser.add_argument("--decoder-widths", type=float, nargs="+", default=None, metavar="W",
                        help="decoder widths to measure (default: 1.0 0.5; with --backend 1.0)")
    parser.add_argument("--precisions", "--precision", nargs="+", default=None,
                        choices=["float32", "mixed", "bfloat16"],
                        help="float32 and/or train.py's --mixed-precision (default: both); with --backend: "
                             "float32 or bfloat16 (mixed bfloat16, float32 weights; default float32)")
    parser.add_argument("--data", default=None,
                        help="a --data value of train.py (e.g. synthetic:24:8) to train through its input "
                             "pipeline, or 'random' (the default: one random batch in memory, the step alone)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="measure on this Keras backend with NumPy batches, without train.py (needs no "
                             "TensorFlow unless the backend is TensorFlow); requires --data random")
    parser.add_argument("--find-max-batch", action="store_true",
                        help="with --backend: double the batch from --bs until it no longer fits in memory")
    parser.add_argument("--max-batch", type=int, default=1024,
                        help="with --find-max-batch: stop doubling past this batch (default 1024)")
    parser.add_argument("--search-seconds", type=float, default=0,
                        help="with --find-max-batch: no next batch once this many seconds have passed, or when "
                             "the next (twice the last one's time) would end past them (default 0: no limit)")
    parser.add_argument("--lr", type=float, default=1e-4, help="with --backend: Adam's learning rate (default 1e-4)")
    parser.add_argument("--jsonl", help="with --backend: append each result as a JSON line to this file")
    parser.add_argument("--child", action="store_true",
                        help="internal: measure one configuration (--decoder-widths W --precisions P) in this "
                             "process and print it as one JSON line (the bench starts itself this way)")
    args = parser.parse_args(argv)
    if min(args.bs, args.steps, args.warmup) < 1:
        parser.error("--bs, --steps and --warmup must be at least 1")
    if args.height or args.width:
        height, width = (int(v) for v in args.input_size.lower().split("x"))
        args.input_size = f"{args.height or height}x{args.width or width}"
    if args.data == "random":
        args.data = None
    args.decoder_widths = args.decoder_widths or ([1.0] if args.backend else list(DECODER_WIDTHS))
    if args.backend:
        if args.data:
            parser.error("--backend trains on random NumPy batches: use --data random (or leave --data out)")
        args.precisions = args.precisions or ["float32"]
        if "mixed" in args.precisions:
            parser.error("with --backend, choose --precision float32 or bfloat16")
    else:
        args.precisions = args.precisions or ["float32", "mixed"]
        if "bfloat16" in args.precisions:
            parser.error("without --backend, --precisions takes float32 and mixed (train.py's --mixed-precision)")
        if args.find_max_batch:
            parser.error("--find-max-batch needs --backend")
    return args


def train_args(args, width, precision):
    """train.py's settings for one configuration, checked by train.py's own parser."""
    import train

    argv = ["--input-size", args.input_size, "--bs", str(args.bs), "--encoder", args.encoder,
            "--decoder-width", str(width), "--weights", "none"]
    return train.parse_args(argv + ["--precision", precision])


def peak_rss_mb():
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(args):
    import keras
    import numpy as np
    import tensorflow as tf

    import train
    from depth import NYU

    width, precision = args.decoder_widths[0], args.precisions[0]
    targs = train_args(args, width, precision)
    from distribute import make_strategy, training_precision

    strategy = make_strategy(targs.gpus, targs.cpu_devices)
    policy = training_precision(targs.precision)
    if args.bs % strategy.num_replicas_in_sync:
        sys.exit(f"error: --bs {args.bs} is not divisible by the {strategy.num_replicas_in_sync} replicas")
    height, width_px = targs.input_size
    if args.data:
        from data import open_dataset
        from pipeline import pipeline

        dataset = open_dataset(args.data)
        depth_range = dataset.spec.depth_range
        data = strategy.distribute_datasets_from_function(lambda context: pipeline(
            dataset, "train", context.get_per_replica_batch_size(args.bs), targs.input_size, training=True))
    else:
        depth_range = NYU
        rng = np.random.default_rng(0)
        images = rng.random((args.bs, height, width_px, 3), dtype=np.float32)
        targets = rng.uniform(1.0, 10.0, (args.bs, height // 2, width_px // 2, 1)).astype(np.float32)
        data = tf.data.Dataset.from_tensors((images, targets)).repeat()
    with strategy.scope():
        model = train.build_model(targs, depth_range)

    class StepTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # wait for the step to finish
            self.ends.append(time.perf_counter())

    times = StepTimes()
    model.fit(data, epochs=1, steps_per_epoch=args.warmup + args.steps, callbacks=[times], verbose=0)
    timed_s = times.ends[-1] - times.ends[args.warmup]
    gpu_peak_mb = None
    if tf.config.list_logical_devices("GPU"):
        gpu_peak_mb = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    print(json.dumps({"decoder_width": width, "precision": policy, "replicas": strategy.num_replicas_in_sync,
                      "images_per_s": args.steps * args.bs / timed_s, "step_ms": 1000 * timed_s / args.steps,
                      "first_step_s": times.ends[1] - times.ends[0], "peak_rss_mb": peak_rss_mb(),
                      "gpu_peak_mb": gpu_peak_mb, "params_m": model.count_params() / 1e6}))


def measured(args, width, precision):
    """The result dict of one configuration, measured in a fresh process; None if it failed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--decoder-widths", str(width),
               "--precisions", precision, "--input-size", args.input_size, "--bs", str(args.bs),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--encoder", args.encoder]
    command += ["--data", args.data] if args.data else []
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"decoder {width} {precision}: no result within {CHILD_TIMEOUT_S} s", file=sys.stderr)
        return None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        print(f"decoder {width} {precision} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def print_table(rows):
    gpu = any(r["gpu_peak_mb"] is not None for r in rows)
    header = ["decoder", "params M", "precision", "images/s", "step ms", "first step s", "peak RSS MB"]
    header += ["GPU peak MB"] if gpu else []
    lines = [header]
    for r in rows:
        line = [f"{r['decoder_width']:g}", f"{r['params_m']:.2f}", r["precision"], f"{r['images_per_s']:.2f}",
                f"{r['step_ms']:.0f}", f"{r['first_step_s']:.1f}", f"{r['peak_rss_mb']:.0f}"]
        lines.append(line + ([f"{r['gpu_peak_mb']:.0f}" if r["gpu_peak_mb"] is not None else "-"] if gpu else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(" | ".join(cell.rjust(w) for cell, w in zip(line, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))

# ---------------------------------------------------------------------------------------------------------
# --backend: the network and the loss on any Keras backend, NumPy batches, no TensorFlow needed
# ---------------------------------------------------------------------------------------------------------


def run_backend(args):
    """Measure the configurations: in this process when there is one, else one child process each."""
    configurations = [(w, p) for w in args.decoder_widths for p in args.precisions]
    if len(configurations) > 1:
        for width, precision in configurations:
            command = [sys.executable, str(Path(__file__).resolve()), "--backend", args.backend,
                       "--decoder-widths", str(width), "--precisions", precision, "--input-size", args.input_size,
                       "--bs", str(args.bs), "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--encoder", args.encoder, "--lr", str(args.lr), "--max-batch", str(args.max_batch)]
            command += ["--find-max-batch"] if args.find_max_batch else []
            command += ["--jsonl", args.jsonl] if args.jsonl else []
            try:
                subprocess.run(command, cwd=REPO, timeout=CHILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"decoder {width} {precision}: no result within {CHILD_TIMEOUT_S} s", file=sys.stderr)
        return
    from backends import select_backend

    select_backend(args.backend)
    height, width_px = (int(v) for v in args.input_size.lower().split("x"))
    batch, rows, start = args.bs, [], time.monotonic()
    out_of_time = False
    while True:
        row_start = time.monotonic()
        row = backend_train_row(args, height, width_px, batch)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
        if not args.find_max_batch or "error" in row or batch * 2 > args.max_batch:
            break
        # A batch twice as large compiles anew and steps about twice as long.
        next_ends = time.monotonic() + 2 * (time.monotonic() - row_start)
        if args.search_seconds and next_ends - start > args.search_seconds:
            out_of_time = True
            break
        batch *= 2
    fitted = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            print(f"batch {r['batch']}: {r['error']}")
        else:
            print(f"batch {r['batch']}: {r['images_per_s']:.2f} images/s, {r['step_ms']:.0f} ms/step, "
                  f"{r['tflops']:.2f} TFLOP/s, peak {r['peak_mb']:.0f} MB ({r['memory']}), first step "
                  f"{r['first_step_s']:.1f} s")
    if args.find_max_batch and fitted:
        stop = ("the next one ran out of memory" if "error" in rows[-1] else
                f"--search-seconds {args.search_seconds:g} would pass before the next" if out_of_time else
                f"--max-batch {args.max_batch} reached")
        print(f"largest batch measured: {fitted[-1]['batch']} ({stop})")
    if not fitted:
        sys.exit(1)


def backend_train_row(args, height, width, batch):
    """One result dict (or one with "error") for a batch size, measured on the selected backend."""
    import gc

    import keras
    import numpy as np

    from backends import conv_flops, device_name, error_line, is_out_of_memory, peak_memory_mb, reset_peak_memory
    from model import create_model

    backend = keras.backend.backend()
    width_mult, precision = args.decoder_widths[0], args.precisions[0]
    row = {"kind": "train", "backend": backend, "precision": precision, "batch": batch, "height": height,
           "width": width, "decoder_width": width_mult, "device": device_name(backend),
           "xla_flags": os.environ.get("XLA_FLAGS", "")}
    keras.mixed_precision.set_global_policy(BACKEND_POLICIES[precision])
    keras.utils.set_random_seed(0)
    model = create_model(args.encoder, weights=None, decoder_width=width_mult)
    encoder_flops, decoder_flops = conv_flops(model, height, width)
    rng = np.random.default_rng(0)
    images = rng.random((batch, height, width, 3), dtype=np.float32)
    targets = rng.uniform(1.0, 10.0, (batch, height // 2, width // 2, 1)).astype(np.float32)
    reset_peak_memory(backend)
    try:
        step = jax_trainer(model, args.lr, row) if backend == "jax" else keras_trainer(model, args.lr)
        start = time.perf_counter()
        step(images, targets, wait=True)  # traces and compiles (JAX: records trace_s and compile_s in row)
        first_step_s = time.perf_counter() - start
        for _ in range(args.warmup - 1):
            step(images, targets, wait=False)
        step(None, None, wait=True)  # let queued work finish before the clock starts
        start = time.perf_counter()
        for _ in range(args.steps):
            step(images, targets, wait=False)
        last = step(None, None, wait=True)
        timed_s = time.perf_counter() - start
        if not np.isfinite(last):
            raise FloatingPointError(f"loss is {last}")
    except Exception as err:  # an out-of-memory error ends --find-max-batch; any other is reported too
        row["error"] = ("out of memory: " if is_out_of_memory(err) else "") + error_line(err)
        return row
    finally:
        del model
        gc.collect()
    images_per_s = args.steps * batch / timed_s
    peak_mb, where = peak_memory_mb(backend)
    gflop = (encoder_flops + decoder_flops) / 1e9
    row.update({"images_per_s": images_per_s, "step_ms": 1000 * timed_s / args.steps, "first_step_s": first_step_s,
                "peak_mb": peak_mb, "memory": where, "gflop_forward": gflop,
                "tflops": 3 * gflop * images_per_s / 1000, "steps": args.steps, "loss": float(last)})
    return row


def jax_trainer(model, lr, row):
    """step(images, targets, wait) -> loss: a jitted Adam step on the variables' values, held on device.

    wait=False queues the step and returns at once (JAX runs asynchronously); wait=True returns its loss.
    The step is traced and compiled ahead of the first call, with a progress line before and after each
    (XLA's compile can take minutes on a GPU: its autotuning times every candidate kernel), and the two
    times go into row as trace_s and compile_s.
    """
    import jax
    import keras

    from loss import depth_loss_function

    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(model.trainable_variables)

    def loss_fn(trainable, non_trainable, images, targets):
        prediction, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        return keras.ops.mean(depth_loss_function(targets, prediction)), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @partial(jax.jit, donate_argnums=0)
    def train_step(state, images, targets):
        trainable, non_trainable, optimizer_variables = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, images, targets)
        trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
        return (trainable, non_trainable, optimizer_variables), loss

    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    on_device = {}
    box = {"state": state, "loss": None}

    def compiled(images, targets):
        label = f"batch {row['batch']} {row['precision']}"
        print(f"  [{label}] tracing the training step", flush=True)
        start = time.perf_counter()
        lowered = train_step.lower(box["state"], images, targets)
        row["trace_s"] = time.perf_counter() - start
        print(f"  [{label}] traced in {row['trace_s']:.1f} s; XLA compiling (XLA_FLAGS="
              f"{os.environ.get('XLA_FLAGS', '')!r})", flush=True)
        start = time.perf_counter()
        program = lowered.compile()
        row["compile_s"] = time.perf_counter() - start
        print(f"  [{label}] compiled in {row['compile_s']:.1f} s", flush=True)
        return program

    def step(images, targets, wait):
        if images is not None:
            if "images" not in on_device:  # one batch, copied to the device once
                on_device["images"], on_device["targets"] = jax.device_put(images), jax.device_put(targets)
                on_device["step"] = compiled(on_device["images"], on_device["targets"])
            box["state"], box["loss"] = on_device["step"](box["state"], on_device["images"], on_device["targets"])
        if wait:
            return float(box["loss"])
        return None

    return step


def keras_trainer(model, lr):
    """step(images, targets, wait) -> loss with model.train_on_batch (PyTorch, TensorFlow)."""
    import keras

    from loss import depth_loss_function

    model.compile(optimizer=keras.optimizers.Adam(lr), loss=depth_loss_function)
    box = {"loss": None}

    def step(images, targets, wait):
        if images is not None:
            box["loss"] = model.train_on_batch(images, targets)  # returns a Python float: it waits
        return float(box["loss"]) if wait else None

    return step


def main():
    args = parse_args()
    if args.backend:
        return run_backend(args)
    if args.child:
        return run_child(args)
    train_args(args, args.decoder_widths[0], args.precisions[0])  # bad sizes fail here, before any child
    print(f"training step, {args.encoder}, input {args.input_size}, global batch {args.bs}, {args.warmup} warm-up "
          f"+ {args.steps} timed steps, data: {args.data or 'one batch in memory'}", flush=True)
    rows = []
    for width in args.decoder_widths:
        for precision in args.precisions:
            row = measured(args, width, precision)
            if row:
                rows.append(row)
                print(f"  decoder {width:g} {row['precision']}: {row['images_per_s']:.2f} images/s", flush=True)
    if not rows:
        sys.exit("error: no configuration could be measured")
    print(f"\n{rows[0]['replicas']} replica(s)")
    print_table(rows)


if __name__ == "__main__":
    main()
