"""Peak memory of test.py on a folder of phone-sized photos: does it grow with the number of pictures?

    python bench/bench_test_memory.py                 # 4 and 20 pictures of 4000x3000 (12 megapixels)
    python bench/bench_test_memory.py --counts 4 20 50 --size 4032x3024

Writes --counts[-1] JPEGs of smooth random colour fields (what a JPEG of a photo costs to decode, not noise)
into a scratch folder, saves a small random network (the tiny encoder, trained size 480x640, so each photo
is scaled to 640 on its longer side for the network as the paper's model would be), and runs
`python test.py --input FOLDER --npy` once per count in a fresh process, reporting that process's own peak
resident memory (VmHWM). test.py keeps one picture at a time and only the montage's downsized rows, so the
peaks should agree within a few per cent.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

CHILD = """
import runpy, sys
sys.path.insert(0, {bench!r})
from backends import own_peak_rss_mib
sys.argv = ["test.py", "--input", {folder!r}, "--model", {model!r}, "--output", {output!r}, "--npy"]
try:
    runpy.run_path({script!r}, run_name="__main__")
finally:
    print(f"PEAK {{own_peak_rss_mib():.0f}}", flush=True)
"""


def photos(folder, count, height, width):
    """count JPEGs of smooth colour fields at height x width in folder."""
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (height // 64, width // 64, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BILINEAR).save(folder / f"photo_{i:03d}.jpg",
                                                                           quality=90)


def small_model(path):
    """The tiny-encoder network with random weights, saved with a synthetic contract at 480x640."""
    import keras

    from contract import model_contract, save_model
    from depth import NYU
    from model import create_model

    keras.utils.set_random_seed(0)
    model = create_model("tiny", weights=None)
    save_model(model, path, model_contract(model, "synthetic", NYU, (480, 640)))


def peak_mib(folder, model, output):
    """test.py's own peak resident memory in MiB on every picture of folder."""
    child = CHILD.format(bench=str(REPO / "bench"), folder=str(folder), model=str(model), output=str(output),
                         script=str(REPO / "test.py"))
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith("PEAK ")]
    if result.returncode != 0 or not lines:
        sys.exit(f"error: test.py failed: {(result.stderr.strip() or result.stdout.strip()).splitlines()[-1]}")
    return float(lines[-1].split()[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[4, 20], help="pictures per run (default 4 20)")
    parser.add_argument("--size", default="4000x3000", help="photo size WxH (default 4000x3000, 12 megapixels)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = scratch / "tiny.keras"
        small_model(model)
        peaks = {}
        for count in args.counts:
            folder = scratch / f"photos_{count}"
            folder.mkdir()
            photos(folder, count, height, width)
            peaks[count] = peak_mib(folder, model, scratch / f"out_{count}")
            print(f"{count:>4} pictures of {width}x{height}: test.py peak {peaks[count]:.0f} MiB", flush=True)
    first, last = args.counts[0], args.counts[-1]
    print(f"{last} pictures peak at {peaks[last] / peaks[first]:.2f}x the peak of {first}")


if __name__ == "__main__":
    main()
