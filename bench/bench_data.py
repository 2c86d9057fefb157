"""Throughput and peak memory of the training input pipeline against a plain per-sample loader.

Renders (or reuses) synthetic NYU-format zips at 640x480, then measures, each in its own subprocess pinned
to --cpus CPUs so that peak memory belongs to one loader only:
  - pipeline:  pipeline.pipeline(open_dataset(zip), "train", batch_size=8, training=True) at the native 640x480;
  - reference: what the reference DenseDepth code does, one sample at a time on one thread: PIL decode,
               scikit-image anti-aliased resize (RGB to 480x640, depth to 240x320), NumPy mirror (p 0.5) and
               channel permutation (p 0.25, the paper's rate), DepthNorm 1000/y in centimetres, batches of 8
               stacked in NumPy. Like the reference code it first reads every zip member into a dict
               (--no-reference-in-memory reads each member from the zip when needed instead).
Prints, per loader and dataset size, samples/s, CPU ms per sample (all threads; it moves much less than
samples/s when other work shares the CPUs) and peak resident memory; then the pipeline's speed-up over the
reference loader against the 5x target, and how each loader's peak memory follows the dataset's size,
from the rendered zips (--pairs) up to a larger zip that repeats the rendered pairs (--repeat-to).

    python bench/bench_data.py                           # 100 and 400 rendered pairs, 4000 repeated; 2 CPUs
    python bench/bench_data.py --no-reference-in-memory  # the reference loader reading the zip lazily
    python bench/bench_data.py --pairs 16 32 --repeat-to 0 --batches 5 --reference-batches 2  # smoke run
"""
import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from anywhere: the repo root holds the modules

import numpy as np

from synthetic import NYU_CSV, SYNTHETIC_VERSION, make_synthetic_zip

BATCH_SIZE = 8  # the paper's batch size
PIPELINE_NAME = "pipeline (tf.data)"
CHILD_TIMEOUT_S = 900  # one loader's measurement; a hung child must not hang the bench
TARGET_SPEEDUP = 5.0  # the target: pipeline samples/s over the reference loader's
# The reference code's NYU conventions: depth in centimetres, 8-bit PNG 255 = 10 m, targets 1000 / depth.
REFERENCE_MAX_DEPTH_CM = 1000.0
REFERENCE_MIN_DEPTH_CM = 10.0
REFERENCE_RGB_HW = (480, 640)
REFERENCE_DEPTH_HW = (240, 320)
REFERENCE_MIRROR_PROBABILITY = 0.5
from augment import PERMUTE_PROBABILITY  # noqa: E402  (the paper's rate, the one our pipeline uses)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[100, 400], metavar="N",
                        help="training pairs of each synthetic zip to measure on (default: 100 400)")
    parser.add_argument("--repeat-to", type=int, default=4000, metavar="N",
                        help="also measure on a zip of N training pairs that repeats the largest rendered "
                             "zip's pairs under new names: quick to make, and shows how memory follows the "
                             "dataset's size beyond what is practical to render (0 skips; default 4000)")
    parser.add_argument("--batches", type=int, default=100,
                        help="timed batches of the pipeline, after the warm-up (default 100)")
    parser.add_argument("--reference-batches", type=int, default=25,
                        help="timed batches of the reference loader, after the warm-up (default 25)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed batches first, for each loader (tracing, thread pools; default 3)")
    parser.add_argument("--reference-in-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="the reference loader reads the whole zip into a dict up front, as the "
                             "reference code does (default); --no-reference-in-memory reads each member "
                             "from the zip when it is needed")
    parser.add_argument("--cpus", type=int, default=2,
                        help="CPUs each measured loader may run on (pinned with sched_setaffinity; "
                             "default 2, the issue's target machine; capped at the CPUs available)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/densedepth_bench"),
                        help="folder of the synthetic zips, rendered once and reused "
                             "(default /tmp/densedepth_bench)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle and augmentation seed (default 0)")
    parser.add_argument("--child", choices=["pipeline", "reference"],
                        help="internal: measure this one loader on --zip in this process and print the "
                             "result as one JSON line (the bench starts itself this way for each run)")
    parser.add_argument("--zip", type=Path, help="internal, with --child: the dataset zip to read")
    args = parser.parse_args(argv)
    if min(args.pairs) < 1 or args.repeat_to < 0 or args.batches < 1 or args.reference_batches < 1 or args.warmup < 0:
        parser.error("--pairs, --batches and --reference-batches must be positive, --repeat-to and --warmup "
                     "non-negative")
    if args.cpus < 1:
        parser.error("--cpus must be at least 1")
    if args.child and not args.zip:
        parser.error("--child needs --zip")
    args.pairs = sorted(set(args.pairs))
    return args


# ---------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------


def synthetic_zip(cache_dir, n_pairs):
    """(path, seconds spent rendering or None if reused) of a synthetic NYU zip with n_pairs training pairs."""
    path = Path(cache_dir) / f"nyu_synthetic_v{SYNTHETIC_VERSION}_{n_pairs}.zip"
    if path.exists():
        return path, None
    start = time.perf_counter()
    make_synthetic_zip(path, n_pairs, 1)
    return path, time.perf_counter() - start


def repeated_zip(source, n_pairs):
    """A zip of n_pairs training pairs cycling through the pairs of `source` under new names, cached beside it.

    Rendering thousands of pairs takes long on 2 CPUs; for memory only the dataset's bytes matter, and
    repeated pairs provide them just as well.
    """
    path = source.with_name(f"{source.stem}_repeated_{n_pairs}.zip")
    if path.exists():
        return path
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(partial, "w") as archive:
        pairs, rows = training_pairs(original), []
        for i in range(n_pairs):
            stem = f"data/nyu2_train/repeated_{i // 10:05d}/{i % 10}"
            for name, suffix in zip(pairs[i % len(pairs)], (".jpg", ".png")):
                archive.writestr(stem + suffix, original.read(name), compress_type=zipfile.ZIP_STORED)
            rows.append(f"{stem}.jpg,{stem}.png")
        archive.writestr(NYU_CSV["train"], "\n".join(rows) + "\n")
        for name in original.namelist():  # the test split as it was
            if name == NYU_CSV["test"] or name.startswith("data/nyu2_test/"):
                archive.writestr(name, original.read(name), compress_type=zipfile.ZIP_STORED)
    partial.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------------
# The reference loader, re-implemented plainly
# ---------------------------------------------------------------------------------------------------------


def training_pairs(archive_or_members):
    """[(rgb name, depth name)] of data/nyu2_train.csv, from a ZipFile or a dict of member bytes."""
    text = read_member(archive_or_members, NYU_CSV["train"]).decode("utf-8")
    return [tuple(row.split(",")[:2]) for row in text.splitlines() if row.strip()]


def read_member(archive_or_members, name):
    if isinstance(archive_or_members, dict):
        return archive_or_members[name]
    return archive_or_members.read(name)


def reference_sample(rgb_bytes, depth_bytes, rng):
    """(image (480, 640, 3) in [0, 1], target (240, 320, 1) = 1000 / depth cm), float64, as the reference does."""
    from PIL import Image
    from skimage.transform import resize

    x = np.clip(np.asarray(Image.open(io.BytesIO(rgb_bytes))).reshape(*REFERENCE_RGB_HW, 3) / 255, 0, 1)
    y = np.asarray(Image.open(io.BytesIO(depth_bytes))).reshape(*REFERENCE_RGB_HW, 1) / 255 * REFERENCE_MAX_DEPTH_CM
    y = np.clip(y, REFERENCE_MIN_DEPTH_CM, REFERENCE_MAX_DEPTH_CM)
    x = resize(x, REFERENCE_RGB_HW, preserve_range=True, mode="reflect", anti_aliasing=True)
    y = resize(y, REFERENCE_DEPTH_HW, preserve_range=True, mode="reflect", anti_aliasing=True)
    if rng.random() < REFERENCE_MIRROR_PROBABILITY:
        x, y = x[:, ::-1], y[:, ::-1]
    if rng.random() < PERMUTE_PROBABILITY:
        x = x[..., rng.permutation(3)]
    return x, REFERENCE_MAX_DEPTH_CM / y


def reference_batches(zip_path, in_memory, seed):
    """Endless batches (x (8, 480, 640, 3), y (8, 240, 320, 1)) over shuffled epochs, one sample at a time."""
    archive = zipfile.ZipFile(zip_path)
    source = {name: archive.read(name) for name in archive.namelist()} if in_memory else archive
    pairs = training_pairs(source)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(pairs))
        for start in range(0, len(order) - BATCH_SIZE + 1, BATCH_SIZE):
            samples = [reference_sample(read_member(source, pairs[i][0]), read_member(source, pairs[i][1]), rng)
                       for i in order[start : start + BATCH_SIZE]]
            yield np.stack([x for x, _ in samples]), np.stack([y for _, y in samples])


# ---------------------------------------------------------------------------------------------------------
# Our pipeline
# ---------------------------------------------------------------------------------------------------------


def pipeline_batches(zip_path, seed):
    """The training pipeline's batches at the native 640x480, as NumPy (what Keras' fit would consume)."""
    from data import open_dataset
    from pipeline import PipelineSettings, pipeline

    dataset = open_dataset(zip_path)
    ds = pipeline(dataset, "train", BATCH_SIZE, PipelineSettings(dataset.spec.train_hw, seed=seed), training=True)
    return ((x.numpy(), y.numpy()) for x, y in ds)


# ---------------------------------------------------------------------------------------------------------
# Measuring one loader (in a child process)
# ---------------------------------------------------------------------------------------------------------


def peak_rss_mb():
    """This process's own peak resident memory so far, in MiB (backends.own_peak_rss_mib: VmHWM)."""
    from backends import own_peak_rss_mib

    return own_peak_rss_mib()


def cpu_seconds():
    """CPU time of this process so far, all threads, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(batches, warmup, timed):
    """{first_batch_s, timed_s, cpu_s} of a batch iterator: `timed` batches after `warmup` untimed ones.

    CPU seconds are kept beside wall seconds because the machine may be shared: other work slows the
    wall clock but leaves the CPU time per sample about the same.
    """
    start = time.perf_counter()
    next(batches)
    first_s = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        next(batches)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for _ in range(timed):
        next(batches)
    return {"first_batch_s": first_s, "timed_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu_start}


def run_child(args):
    """Measure one loader here and print its result as a JSON line for the parent."""
    if args.child == "pipeline":
        import tensorflow  # noqa: F401  imported before the baseline so the table separates TF from data

        base_mb = peak_rss_mb()
        batches, timed = pipeline_batches(args.zip, args.seed), args.batches
    else:
        from skimage.transform import resize

        resize(np.zeros((4, 4)), (2, 2), anti_aliasing=True)  # scikit-image imports lazily: load it now
        base_mb = peak_rss_mb()
        batches, timed = reference_batches(args.zip, args.reference_in_memory, args.seed), args.reference_batches
    result = measure(batches, args.warmup, timed)
    samples = timed * BATCH_SIZE
    print(json.dumps({"samples_per_s": samples / result["timed_s"], "cpu_ms": 1000 * result["cpu_s"] / samples,
                      "first_batch_s": result["first_batch_s"], "base_mb": base_mb, "peak_mb": peak_rss_mb()}),
          flush=True)
    # Skip interpreter shutdown: tearing down a tf.data iterator there, with a tf.numpy_function read in
    # flight, can deadlock on the GIL (seen with pipeline.pipeline); the result is already out.
    os._exit(0)


def measured(loader, zip_path, args):
    """The result dict of one loader on one zip, measured in a fresh subprocess pinned to --cpus CPUs."""
    command = [sys.executable, __file__, "--child", loader, "--zip", str(zip_path), "--seed", str(args.seed),
               "--warmup", str(args.warmup), "--batches", str(args.batches),
               "--reference-batches", str(args.reference_batches),
               "--reference-in-memory" if args.reference_in_memory else "--no-reference-in-memory"]
    cpus = sorted(os.sched_getaffinity(0))[: args.cpus]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # Pinning before the child starts: TensorFlow sizes its thread pools from the CPUs it may run on.
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT,
                                timeout=CHILD_TIMEOUT_S, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    except subprocess.TimeoutExpired:
        sys.exit(f"error: the {loader} loader on {zip_path} did not finish in {CHILD_TIMEOUT_S} s")
    if result.returncode != 0:
        sys.exit(f"error: the {loader} loader failed on {zip_path}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------------------


def print_table(rows):
    header = (f"{'loader':<22} {'pairs':>6} {'zip MB':>7} {'samples/s':>10} {'CPU ms/sample':>13} "
              f"{'1st batch s':>11} {'base MB':>8} {'peak MB':>8} {'peak-base':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['loader']:<22} {row['pairs']:>6} {row['zip_mb']:>7.1f} {row['samples_per_s']:>10.1f} "
              f"{row['cpu_ms']:>13.1f} {row['first_batch_s']:>11.2f} {row['base_mb']:>8.0f} {row['peak_mb']:>8.0f} "
              f"{row['peak_mb'] - row['base_mb']:>9.0f}")


def prepared_datasets(args):
    """{training pairs: zip path}: the rendered zips (reused when cached), then the repeated one."""
    datasets = {}
    for n_pairs in args.pairs:
        path, render_s = synthetic_zip(args.cache_dir, n_pairs)
        datasets[n_pairs] = path
        if render_s is None:
            print(f"reusing {path}")
        else:
            print(f"rendered {path}: {n_pairs + 1} pairs in {render_s:.1f} s "
                  f"({(n_pairs + 1) / render_s:.1f} pairs/s on {os.cpu_count()} CPUs)")
    largest = max(args.pairs)
    if args.repeat_to > largest:
        datasets[args.repeat_to] = repeated_zip(datasets[largest], args.repeat_to)
        print(f"{datasets[args.repeat_to]}: the {largest} rendered pairs repeated to {args.repeat_to}")
    return datasets


def print_summary(rows, reference_name):
    """The speed-up at each dataset size against the target, and how each loader's peak memory follows size."""
    sizes = sorted({r["pairs"] for r in rows})
    for n_pairs in sizes:
        reference, ours = (r for r in rows if r["pairs"] == n_pairs)
        speedup = ours["samples_per_s"] / reference["samples_per_s"]
        verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
        print(f"{n_pairs} pairs: pipeline {speedup:.1f}x the reference loader's samples/s ({verdict} the "
              f"{TARGET_SPEEDUP:.0f}x target); {reference['cpu_ms'] / ours['cpu_ms']:.1f}x less CPU per sample")
    small, large = sizes[0], sizes[-1]
    if small == large:
        return
    zip_mb = {r["pairs"]: r["zip_mb"] for r in rows}
    for name in (reference_name, PIPELINE_NAME):
        peaks = {r["pairs"]: r["peak_mb"] for r in rows if r["loader"] == name}
        print(f"{name}: peak memory {peaks[small]:.0f} MB at {small} pairs, {peaks[large]:.0f} MB at {large} "
              f"pairs ({peaks[large] - peaks[small]:+.0f} MB while the zip grew "
              f"{zip_mb[large] - zip_mb[small]:.0f} MB)")


def main():
    args = parse_args()
    if args.child:
        return run_child(args)
    args.cpus = min(args.cpus, len(os.sched_getaffinity(0)))
    reference_name = "reference (in memory)" if args.reference_in_memory else "reference (lazy zip)"
    load_before = os.getloadavg()[0]
    rows = []
    for n_pairs, path in prepared_datasets(args).items():
        for loader, name in (("reference", reference_name), ("pipeline", PIPELINE_NAME)):
            print(f"measuring {name} on {n_pairs} pairs ...", flush=True)
            rows.append({"loader": name, "pairs": n_pairs, "zip_mb": path.stat().st_size / 2**20,
                         **measured(loader, path, args)})
    print(f"\n640x480, batch {BATCH_SIZE}, {args.cpus} CPUs; timed after {args.warmup} warm-up batches: "
          f"{args.batches} pipeline and {args.reference_batches} reference batches. base MB = peak after "
          f"imports, before any data.\nLoad average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} "
          f"after measuring, on {os.cpu_count()} CPUs: other work slows samples/s, CPU ms/sample much less.")
    print_table(rows)
    print()
    print_summary(rows, reference_name)


if __name__ == "__main__":
    main()
