"""Metric depth for one picture from Python, with any model file: the README's five lines as a script.

    python examples/python_api.py examples/coffee.png --model runs/<name>/final.keras

The model may be our .keras, the authors' nyu.h5 / kitti.h5, a SavedModel folder, a .tflite or an .onnx
file (no --model: nyu.h5 here, else the newest model under runs/).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds the modules

from estimator import DepthEstimator  # noqa: E402
from utils import InputError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("picture", nargs="?", default="examples/coffee.png", help="a picture (default: coffee.png)")
    parser.add_argument("--model", help="any model file or SavedModel folder (default: as test.py)")
    args = parser.parse_args(argv)
    try:
        estimator = DepthEstimator.load(args.model)
        depth_m = estimator.predict(args.picture)  # float32 metres, one per pixel of the picture
    except InputError as err:
        sys.exit(f"error: {err}")
    print(estimator.describe())
    for warning in estimator.warnings:
        print(f"warning: {warning}")
    height, width = depth_m.shape
    print(f"{args.picture}: {width}x{height}, nearest {depth_m.min():.3f} m, farthest {depth_m.max():.3f} m")


if __name__ == "__main__":
    main()
