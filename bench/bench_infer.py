"""Inference speed of DenseDepth: images/s and peak memory for 480x640 prediction at batch 1 and 8, in
float32 and bfloat16, with and without XLA; the network's FLOPs per image; and how far bfloat16 moves the
evaluation metrics from float32 on the same images.

    python bench/bench_infer.py                                    # the full table: minutes on 2 CPU cores
    python bench/bench_infer.py --batch-sizes 1 --repeats 1 --xla off --metric-images 2   # a quick look
    python bench/bench_infer.py --model runs/x/final.keras --precisions float32 bfloat16 float16
    python bench/bench_infer.py --engines --accuracy-model runs/synth72/final.keras   # Keras, TFLite, ONNX...

Each configuration runs in a process of its own, so that its dtype policy and its peak memory are its
alone: the process's peak resident memory on CPU (model, TensorFlow runtime and activations), TensorFlow's
peak allocation on a GPU. The first call, which traces (and with XLA compiles) the graph, is timed apart.
FLOPs are counted analytically from the layer shapes at the benchmark size: 2 x the multiply-accumulates
of every convolution, which hold nearly all the work (batch norm, activations, pooling and resizing are
left out). Achieved GFLOP/s = images/s x GFLOP per image; compare it with the machine's peak
(--peak-tflops prints the fraction). The metric comparison renders --metric-images synthetic rooms and
evaluates them as evaluate.py does (flip, 2x up-sampling, Eigen crop) at each precision: it needs a trained
model (--model, else nyu.h5 or the newest under runs/) to mean anything.

On any Keras backend, random NumPy images and no TensorFlow needed (a GPU machine with JAX but no TensorFlow):

    python bench/bench_infer.py --backend jax --data random --batch-sizes 1 32 --precision bfloat16

measures one precision in this process (JAX: the forward pass jitted through model.stateless_call, the
images already on the device; PyTorch and TensorFlow: model.predict_on_batch from NumPy), with the device's
peak memory and the achieved TFLOP/s.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere: the repo root holds the modules
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import engines  # noqa: E402  (the bench folder is on sys.path)
from backends import BACKEND_POLICIES, BACKENDS, conv_flops  # noqa: E402
from depth import NYU_IMAGE_HW
from estimator import find_default_model
from metrics import METRIC_NAMES
from utils import PRECISION_POLICIES, InputError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file to time (default: nyu.h5 or the newest run; if none, the "
                                        "paper's network with random weights)")
    parser.add_argument("--decoder-width", type=float, default=1.0,
                        help="decoder width of the random-weight network when there is no model (default 1.0)")
    parser.add_argument("--height", type=int, default=NYU_IMAGE_HW[0], help="input height (default 480)")
    parser.add_argument("--width", type=int, default=NYU_IMAGE_HW[1], help="input width (default 640)")
    parser.add_argument("--batch-sizes", "--batch", type=int, nargs="+", default=[1, 8],
                        help="batch sizes (default 1 8)")
    parser.add_argument("--precisions", "--precision", nargs="+", default=["float32", "bfloat16"],
                        choices=tuple(PRECISION_POLICIES), help="compute precisions (default float32 bfloat16)")
    parser.add_argument("--xla", nargs="+", default=["off", "on"], choices=("off", "on"),
                        help="run without and/or with XLA jit_compile (default off on)")
    parser.add_argument("--repeats", "--steps", type=int, default=2,
                        help="timed calls per configuration after the first (default 2)")
    parser.add_argument("--metric-images", type=int, default=4,
                        help="synthetic images for the bfloat16-vs-float32 metric comparison (0: skip; default 4)")
    parser.add_argument("--peak-tflops", type=float, help="the machine's peak TFLOP/s, to print the fraction reached")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="time on this Keras backend with random NumPy images (needs no TensorFlow unless "
                             "the backend is TensorFlow); one precision, measured in this process")
    parser.add_argument("--data", choices=["random"], default="random",
                        help="with --backend: random NumPy images (the only choice)")
    parser.add_argument("--jsonl", help="with --backend: append each result as a JSON line to this file")
    parser.add_argument("--engines", action="store_true",
                        help="instead: the engine x precision table (Keras, TFLite, ONNX Runtime, OpenVINO) at "
                             "480x640, batch 1 and --throughput-batch, with file sizes and, given --accuracy-model, "
                             "the metric changes")
    parser.add_argument("--engines-dir", default="outputs/bench_engines",
                        help="with --engines: where the exports are written and reused (default outputs/bench_engines)")
    parser.add_argument("--accuracy-model",
                        help="with --engines: a trained model whose exports evaluate.py scores on --accuracy-data")
    parser.add_argument("--accuracy-data", default="synthetic",
                        help="with --engines: evaluate.py's --data for the accuracy columns (default synthetic)")
    parser.add_argument("--calibration-data", default="synthetic",
                        help="with --engines: export.py's --data for the int8 calibration (default synthetic)")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="with --engines and --accuracy-model: only the accuracy columns, no timing")
    parser.add_argument("--threads", type=int,
                        help="with --engines: every runtime's threads (default: every core this process may use)")
    parser.add_argument("--throughput-batch", type=int, default=4,
                        help="with --engines: the batch of the throughput column (default 4)")
    parser.add_argument("--speed-decoder-width", type=float, default=1.0,
                        help="with --engines: the timed network's decoder width (0.5: the authors' later code; "
                             "default 1.0, the paper's)")
    parser.add_argument("--only", nargs="+", metavar="ENGINE:PRECISION",
                        help="with --engines: time only these rows, e.g. keras:float32 openvino:int8")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one configuration, run in a fresh process
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or args.repeats < 1 or args.metric_images < 0:
        parser.error("--batch-sizes and --repeats must be at least 1, --metric-images at least 0")
    if args.accuracy_only and not args.accuracy_model:
        parser.error("--accuracy-only needs --accuracy-model")
    if args.height < 32 or args.width < 32:
        parser.error("--height and --width must be at least 32")
    if args.backend and (len(args.precisions) != 1 or args.precisions[0] not in BACKEND_POLICIES):
        parser.error("with --backend, give one --precision: float32 or bfloat16")
    return args


def build_model(model_path, decoder_width, precision):
    """The model to time at precision: the file's, or the paper's network with seeded random weights."""
    import keras

    from model import create_model, load_model
    from utils import set_precision

    if model_path:
        return load_model(model_path, precision)
    set_precision(precision)
    keras.utils.set_random_seed(0)
    return create_model(weights=None, decoder_width=decoder_width)


# ---------------------------------------------------------------------------------------------------------
# One configuration, in its own process
# ---------------------------------------------------------------------------------------------------------


def peak_memory_mib():
    """Peak memory so far: TensorFlow's on a GPU, else the process's maximum resident set."""
    import resource

    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def time_configuration(config):
    """{first_call_s, seconds per timed call, peak memory} of one (precision, xla, batch) configuration."""
    import tensorflow as tf

    model = build_model(config["model"], config["decoder_width"], config["precision"])
    memory_before = peak_memory_mib()
    forward = tf.function(lambda x: model(x, training=False), jit_compile=config["xla"])
    x = tf.constant(np.random.default_rng(0).random((config["batch"], config["height"], config["width"], 3),
                                                    dtype=np.float32))
    start = time.perf_counter()
    forward(x).numpy()
    first = time.perf_counter() - start
    seconds = []
    for _ in range(config["repeats"]):
        start = time.perf_counter()
        forward(x).numpy()  # .numpy() waits for the result
        seconds.append(time.perf_counter() - start)
    return {"first_call_s": first, "call_s": float(np.median(seconds)), "memory_model_mib": memory_before,
            "peak_memory_mib": peak_memory_mib()}


def run_child(config):
    """time_configuration in a fresh Python process; its JSON result."""
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], capture_output=True,
                            text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"configuration {config} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# FLOPs are counted over the layers by backends.conv_flops.


# ---------------------------------------------------------------------------------------------------------
# bfloat16 against float32 on the same images
# ---------------------------------------------------------------------------------------------------------


def metrics_by_precision(model_path, decoder_width, precisions, count, height, width):
    """{precision: pooled metrics} on `count` synthetic rooms, plus each precision's delta1 against float32."""
    import keras

    import synthetic
    from estimator import DepthEstimator
    from metrics import compute_errors, evaluation_mask

    pairs = [synthetic.render_scene(seed, height, width) for seed in range(1000, 1000 + count)]
    rgb = np.stack([p[0] for p in pairs])
    gt = np.stack([p[1] for p in pairs])
    mask = np.stack([evaluation_mask(g) for g in gt])
    predictions, results = {}, {}
    reference = build_model(model_path, decoder_width, "float32")
    if not model_path:
        # Random weights predict ~0, clipped to 10 m everywhere; scaled into the range, the depth varies
        # and the comparison at least measures bfloat16's numerical drift through the whole network.
        kernel, bias = reference.get_layer("conv3").get_weights()
        reference.get_layer("conv3").set_weights([20 * kernel, bias + 4.0])
    for precision in dict.fromkeys(["float32", *precisions]):
        model = build_model(model_path, decoder_width, precision)
        model.set_weights(reference.get_weights())  # the very same weights at every precision
        predictions[precision] = DepthEstimator.from_keras(model).predict(rgb, flip=True, max_side=0, batch_size=2)
        results[precision] = compute_errors(gt, predictions[precision], mask)
        # Agreement with float32's prediction, taken as ground truth: share of pixels within 1.25.
        results[precision]["a1_vs_float32"] = compute_errors(predictions["float32"], predictions[precision],
                                                             mask)["a1"]
    keras.mixed_precision.set_global_policy("float32")
    return results


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# --backend: any Keras backend, random NumPy images, no TensorFlow needed
# ---------------------------------------------------------------------------------------------------------


def run_backend(args):
    """Time each batch size at one precision on the selected backend, in this process; print JSON lines."""
    from backends import select_backend

    select_backend(args.backend)
    import keras

    from backends import device_name, error_line, is_out_of_memory, peak_memory_mb, reset_peak_memory

    backend, precision = keras.backend.backend(), args.precisions[0]
    model = build_model(args.model, args.decoder_width, precision)
    encoder, decoder = conv_flops(model, args.height, args.width)
    gflop = (encoder + decoder) / 1e9
    forward = jax_forward(model) if backend == "jax" else lambda x: np.asarray(model.predict_on_batch(x))
    device = device_name(backend)
    print(f"{backend} on {device}, {precision}, {args.width}x{args.height}, {gflop:.1f} GFLOP per image", flush=True)
    failed = False
    for batch in sorted(args.batch_sizes):
        row = {"kind": "infer", "backend": backend, "precision": precision, "batch": batch, "height": args.height,
               "width": args.width, "decoder_width": args.decoder_width, "device": device, "gflop_forward": gflop}
        images = np.random.default_rng(0).random((batch, args.height, args.width, 3), dtype=np.float32)
        if backend == "jax":  # on the device once: the table measures the GPU, not the host-to-device copy
            import jax

            images = jax.device_put(images)
        reset_peak_memory(backend)
        try:
            start = time.perf_counter()
            forward(images)  # traces and compiles
            first = time.perf_counter() - start
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                forward(images)  # returns when the prediction is ready
                seconds.append(time.perf_counter() - start)
        except Exception as err:
            row["error"] = ("out of memory: " if is_out_of_memory(err) else "") + error_line(err)
            failed = True
        else:
            call_s = float(np.median(seconds))
            peak_mb, where = peak_memory_mb(backend)
            row.update({"images_per_s": batch / call_s, "call_ms": 1000 * call_s, "first_call_s": first,
                        "peak_mb": peak_mb, "memory": where, "tflops": gflop * batch / call_s / 1000})
        print(json.dumps(row), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
    if failed:
        sys.exit(1)


def jax_forward(model):
    """forward(images) -> prediction: the network jitted on its variables' values, held on the device."""
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, images):
        return model.stateless_call(trainable, non_trainable, images, training=False)[0]

    return lambda images: forward(trainable, non_trainable, images).block_until_ready()


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        return run_backend(args)
    if args.child:
        config = json.loads(args.child)
        print(json.dumps(engines.time_engine(config) if "engine" in config else time_configuration(config)))
        return
    if args.engines:
        return engines.main(args)
    try:
        model_path = str(args.model or find_default_model())
    except InputError:
        model_path = None
    if model_path and not Path(model_path).is_file():
        sys.exit(f"error: {model_path}: no such model file")
    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    described = model_path or f"the paper's network, random weights, decoder width {args.decoder_width}"
    print(f"{described} at {args.width}x{args.height} on {device}")
    encoder, decoder = conv_flops(build_model(model_path, args.decoder_width, "float32"), args.height, args.width)
    gflop = (encoder + decoder) / 1e9
    print(f"FLOPs per image (2 x conv multiply-accumulates): {gflop:.1f} GFLOP, of which decoder "
          f"{decoder / 1e9:.1f} ({decoder / (encoder + decoder):.0%}), encoder {encoder / 1e9:.1f}")

    header = f"{'precision':<10}{'XLA':<5}{'batch':>6}{'images/s':>10}{'ms/image':>10}{'first call s':>14}" \
             f"{'peak MiB':>10}{'model MiB':>11}{'GFLOP/s':>9}" + ("  of peak" if args.peak_tflops else "")
    print(header)
    for precision, xla, batch in itertools.product(args.precisions, args.xla, args.batch_sizes):
        config = {"model": model_path, "decoder_width": args.decoder_width, "precision": precision,
                  "xla": xla == "on", "batch": batch, "height": args.height, "width": args.width,
                  "repeats": args.repeats}
        try:
            result = run_child(config)
        except RuntimeError as err:
            print(f"{precision:<10}{xla:<5}{batch:>6}  failed: {str(err).splitlines()[-1]}")
            continue
        images_per_s = batch / result["call_s"]
        row = f"{precision:<10}{xla:<5}{batch:>6}{images_per_s:>10.2f}{1000 / images_per_s:>10.0f}" \
              f"{result['first_call_s']:>14.1f}{result['peak_memory_mib']:>10.0f}{result['memory_model_mib']:>11.0f}" \
              f"{images_per_s * gflop:>9.0f}"
        if args.peak_tflops:
            row += f"{images_per_s * gflop / (1000 * args.peak_tflops):>9.1%}"
        print(row, flush=True)

    if args.metric_images:
        if not model_path:
            print("metric comparison: random weights (output scaled into the depth range) measure only "
                  "numerical drift; pass --model for metrics that mean something")
        results = metrics_by_precision(model_path, args.decoder_width, args.precisions, args.metric_images,
                                       args.height, args.width)
        print(f"\nmetrics on {args.metric_images} synthetic rooms (flip, Eigen crop), pooled:")
        print(f"{'precision':<10}" + "".join(f"{k:>9}" for k in METRIC_NAMES) + "  a1 vs float32")
        for precision, values in results.items():
            print(f"{precision:<10}" + "".join(f"{values[k]:>9.4f}" for k in METRIC_NAMES)
                  + f"{values['a1_vs_float32']:>15.4f}")
        for precision in results:
            if precision != "float32":
                delta = results[precision]["a1"] - results["float32"]["a1"]
                print(f"{precision} moves delta1 by {delta:+.4f} (target: within 0.005)")


if __name__ == "__main__":
    main()
