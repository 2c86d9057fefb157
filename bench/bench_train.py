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
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere: the repo root holds the modules
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DECODER_WIDTHS = (1.0, 0.5)  # the paper's decoder, the reference code's
CHILD_TIMEOUT_S = 1800  # one configuration; a hung child must not hang the bench


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", default="128x160", help="training input HxW (default 128x160)")
    parser.add_argument("--bs", type=int, default=2, help="global batch over all replicas (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps first; the first one traces the graph (default 2)")
    parser.add_argument("--encoder", default="densenet169", choices=["densenet169", "densenet201"])
    parser.add_argument("--decoder-widths", type=float, nargs="+", default=list(DECODER_WIDTHS), metavar="W",
                        help="decoder widths to measure (default: 1.0 0.5)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed"], choices=["float32", "mixed"],
                        help="float32 and/or --mixed-precision (default: both)")
    parser.add_argument("--data", default=None,
                        help="a --data value of train.py (e.g. synthetic:24:8) to train through its input "
                             "pipeline (default: one random batch in memory, the step alone)")
    parser.add_argument("--child", action="store_true",
                        help="internal: measure one configuration (--decoder-widths W --precisions P) in this "
                             "process and print it as one JSON line (the bench starts itself this way)")
    args = parser.parse_args(argv)
    if min(args.bs, args.steps, args.warmup) < 1:
        parser.error("--bs, --steps and --warmup must be at least 1")
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
    from utils import NYU

    width, precision = args.decoder_widths[0], args.precisions[0]
    targs = train_args(args, width, precision)
    from distribute import make_strategy, training_precision

    strategy = make_strategy(targs.gpus, targs.cpu_devices)
    policy = training_precision(targs.precision)
    if args.bs % strategy.num_replicas_in_sync:
        sys.exit(f"error: --bs {args.bs} is not divisible by the {strategy.num_replicas_in_sync} replicas")
    height, width_px = targs.input_size
    if args.data:
        from data import open_dataset, pipeline

        dataset = open_dataset(args.data)
        depth_range = dataset.depth_range
        data = strategy.distribute_datasets_from_function(lambda context: pipeline(
            dataset, "train", context.get_per_replica_batch_size(args.bs), targs.input_size, training=True))
    else:
        depth_range = NYU
        rng = np.random.default_rng(0)
        images = rng.random((args.bs, height, width_px, 3), dtype=np.float32)
        targets = rng.uniform(1.0, 10.0, (args.bs, height // 2, width_px // 2, 1)).astype(np.float32)
        data = tf.data.Dataset.from_tensors((images, targets)).repeat()
    with strategy.scope():
        model = train.build_model(targs, depth_range, train.LEARNING_RATE)

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


def main():
    args = parse_args()
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
