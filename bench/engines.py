"""bench_infer.py --engines: every way this project runs a model on the CPU, side by side.

    python bench/bench_infer.py --engines --accuracy-model runs/synth72/final.keras

Engines x precisions: Keras float32 and bfloat16 (TensorFlow, oneDNN), TFLite float32 / float16 / dynamic /
int8 (LiteRT with XNNPACK), ONNX Runtime float32 and int8 (QDQ, per-channel weights), OpenVINO float32 /
bfloat16 / int8 (NNCF). For each:

- speed: images/s at 480x640, the paper's full network (random weights: speed does not depend on them), at
  batch 1 (latency) and at --throughput-batch (what a folder of photos or a video gets), median of --repeats
  calls after a first one, each configuration in a fresh process on every core, with its own peak resident
  memory (VmHWM: model, runtime and activations, not the parent's) and the exported file's size. Two more
  rows time the Python API, DepthEstimator.load(file).predict(a 480x640 uint8 picture), for Keras float32
  (the compiled forward pass) and TFLite int8 (threads left at the default);
- accuracy: the change in delta1 and abs rel against Keras float32 when --accuracy-model (a trained model)
  is exported the same way (int8 calibrated on the training split of --calibration-data) and evaluated by
  evaluate.py on the synthetic test rooms at its training size.

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
ENGINES = [("keras", "float32"), ("keras", "bfloat16"), ("tflite", "float32"), ("tflite", "float16"),
           ("tflite", "dynamic"), ("tflite", "int8"), ("onnx", "float32"), ("onnx", "int8"),
           ("openvino", "float32"), ("openvino", "bfloat16"), ("openvino", "int8")]
API_ROWS = [("api keras", "float32"), ("api tflite", "int8")]  # DepthEstimator.load(...).predict(picture)
EXPORTED_NAMES = {"savedmodel": "savedmodel", "tflite": "{precision}.tflite", "onnx": "{precision}.onnx",
                  "openvino": "{precision}.xml"}


def exported_path(folder, engine, precision, source):
    """Where an engine's file lives: the Keras source itself, else an export in folder."""
    if engine in ("keras", "api keras"):
        return Path(source)
    engine = engine.removeprefix("api ")
    return Path(folder) / EXPORTED_NAMES[engine].format(precision=precision)


def export_all(source, folder, calibration_data, keys=tuple(ENGINES)):
    """Export source once per (engine, precision) of keys into folder (kept ones reused); {key: path}."""
    paths = {}
    for engine, precision in keys:
        path = exported_path(folder, engine, precision, source)
        paths[engine, precision] = path
        if engine.endswith("keras") or path.exists():
            continue
        quantize = "none" if precision == "float32" else precision
        engine = engine.removeprefix("api ")
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
    """{first_call_s, call_s, batch_call_s, peak_memory_mib} of one engine: a random float 480x640 picture
    (batch 1) and a batch of config["batch"]; an "api" engine: DepthEstimator.predict on a uint8 picture."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    engine, path = config["engine"], config["path"]
    rng = np.random.default_rng(0)
    if engine.startswith("api"):
        from estimator import DepthEstimator

        estimator = DepthEstimator.load(path, threads=config["threads"])
        forward = estimator.predict
        x = rng.integers(0, 256, (1, *config["hw"], 3), dtype=np.uint8)
    elif engine == "keras":
        import tensorflow as tf

        from model import load_model

        model = load_model(path, config["precision"])
        call = tf.function(lambda x: model(x, training=False))  # the bare network, traced
        forward = lambda x: call(tf.constant(x)).numpy()  # noqa: E731
        x = rng.random((1, *config["hw"], 3), dtype=np.float32)
    else:
        from estimator import load_exported

        forward = load_exported(path, config["threads"])
        x = rng.random((1, *config["hw"], 3), dtype=np.float32)
    first, call_s = timed(forward, x, config["repeats"])
    batch = np.repeat(x, config["batch"], axis=0)
    _, batch_call_s = timed(forward, batch, max(1, config["repeats"] // 2))
    return {"first_call_s": first, "call_s": call_s, "batch_call_s": batch_call_s,
            "batch_images_s": config["batch"] / batch_call_s, "peak_memory_mib": own_peak_rss_mib()}


def timed(forward, x, repeats):
    """(seconds of the first call, median seconds of repeats calls after it)."""
    start = time.perf_counter()
    np.asarray(forward(x))
    first = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(forward(x))
        seconds.append(time.perf_counter() - start)
    return first, float(np.median(seconds))


def speeds(paths, hw, repeats, threads, batch):
    """{(engine, precision): time_engine's result}, each from a fresh `bench_infer.py --child` process."""
    results = {}
    for (engine, precision), path in paths.items():
        config = {"engine": engine, "precision": precision, "path": str(path), "hw": list(hw), "repeats": repeats,
                  "threads": threads, "batch": batch}
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


def speed_model(folder, decoder_width=1.0):
    """The paper's network (random weights, seeded; decoder_width 0.5: the authors' later code) saved with an
    NYU contract at 480x640."""
    path = Path(folder) / ("paper_network.keras" if decoder_width == 1.0 else f"decoder_{decoder_width:g}.keras")
    if path.exists():
        return path
    import keras

    from contract import model_contract, save_model
    from depth import NYU, NYU_IMAGE_HW
    from model import create_model

    keras.utils.set_random_seed(0)
    model = create_model(weights=None, decoder_width=decoder_width)
    save_model(model, path, model_contract(model, "nyu", NYU, NYU_IMAGE_HW))
    return path


def main(args):
    folder = Path(args.engines_dir)
    from depth import NYU_IMAGE_HW
    from utils import runtime_threads

    print(f"engines on this machine ({runtime_threads(args.threads)} threads), the paper's network (decoder width "
          f"{args.speed_decoder_width:g}) at 480x640, batch 1 and {args.throughput_batch}; exports in {folder}",
          flush=True)
    metrics = {}
    if args.accuracy_model:
        (folder / "accuracy").mkdir(parents=True, exist_ok=True)
        accuracy_paths = export_all(args.accuracy_model, folder / "accuracy", args.calibration_data)
        metrics = accuracies(accuracy_paths, args.accuracy_data, folder / "accuracy")
    if args.accuracy_only:
        return print_accuracy(metrics)
    speed_folder = folder / f"speed_decoder_{args.speed_decoder_width:g}"
    speed_folder.mkdir(parents=True, exist_ok=True)
    chosen = [tuple(e.split(":")) for e in args.only] if args.only else ENGINES + API_ROWS
    if ("keras", "float32") not in chosen:
        chosen.insert(0, ("keras", "float32"))  # the reference every row is compared with
    speed_paths = export_all(speed_model(speed_folder, args.speed_decoder_width), speed_folder,
                             args.calibration_data, chosen)
    timing = speeds(speed_paths, NYU_IMAGE_HW, args.repeats, args.threads, args.throughput_batch)
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
    print(f"\n{'engine':<12}{'precision':<10}{'images/s':>9}{'x f32':>7}{'batched':>9}{'x f32':>7}{'first s':>8}"
          f"{'peak MiB':>9}{'file MB':>8}{'d delta1':>10}{'d abs_rel':>10}")
    for (engine, precision), result in timing.items():
        batch_speed = timing["keras", "float32"]["batch_call_s"] / result["batch_call_s"]
        size = "" if engine.startswith("api") else f"{folder_size(paths[engine, precision]) / 1e6:.0f}"
        row = (f"{engine:<12}{precision:<10}{1 / result['call_s']:>9.2f}{base / result['call_s']:>7.2f}"
               f"{result['batch_images_s']:>9.2f}{batch_speed:>7.2f}{result['first_call_s']:>8.1f}"
               f"{result['peak_memory_mib']:>9.0f}{size:>8}")
        if metrics and (engine, precision) in metrics:
            reference, got = metrics["keras", "float32"], metrics[engine, precision]
            row += f"{got['a1'] - reference['a1']:>+10.4f}{got['abs_rel'] - reference['abs_rel']:>+10.4f}"
        print(row)
    if metrics:
        reference = metrics["keras", "float32"]
        print(f"accuracy model's Keras float32: delta1 {reference['a1']:.4f}, abs rel {reference['abs_rel']:.4f}")
