"""Datasets: NYU Depth v2, the Eigen test arrays, KITTI, and the synthetic rooms, read without TensorFlow.

Each dataset lists its samples per split and reads one as (uint8 RGB, depth in metres); pipeline.py turns
them into tf.data batches, kitti.py projects KITTI's raw LiDAR scans.

`--data` takes, in every script, one of:
    synthetic            the built-in procedural dataset (rendered and cached on first use, no download);
                         synthetic:N:M renders N training and M test pairs
    nyu / nyu_test       nyu_data.zip / nyu_test.zip in the current folder
    path/to/file.zip     an NYU-format zip (data/nyu2_train.csv, data/nyu2_test.csv), read in place,
                         or the Eigen test arrays zip (eigen_test_rgb.npy, eigen_test_depth.npy, ...)
    path/to/folder       the same NYU layout unpacked (your own RGB-D data: CSVs plus images), or a
                         folder holding the Eigen .npy arrays, or a KITTI root with its split files
    path/to/split.txt    a KITTI split file: lines "rgb.png depth.png [focal]" relative to its folder (the
                         annotated depth maps of the BTS split files), or lines "left.png [right.png]" of
                         the raw data (Eigen's eigen_test_files.txt): ground truth is then each frame's
                         velodyne scan projected with the drive's calibration, or the matching entry of a
                         gt_depths.npz given with gt_depths= (open_dataset) / --gt-depths (evaluate.py)

Make a synthetic NYU-format zip, and look at a few pairs of any dataset:
    python data.py --make-synthetic synthetic.zip --train 1000 --test 100
    python data.py --data synthetic --show pairs.png
"""
import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

from camera import KITTI_CAMERA, NYU_CAMERA
from datafiles import FolderFiles, Sample, ZipFiles, decode_depth, decode_rgb, load_npy
from depth import KITTI, KITTI_DEPTH_SCALE, KITTI_TRAIN_HW, NYU, NYU_IMAGE_HW
from kitti import KittiRaw, is_raw_kitti_list
from metrics import EIGEN_CROP
from synthetic import (
    NYU_8BIT_FULL_SCALE_M,
    NYU_16BIT_UNITS_PER_M,
    NYU_CSV,
    SYNTHETIC_BYTES_PER_PAIR,
    make_synthetic_zip,
    synthetic_dataset_path,
    synthetic_focal,
)
from utils import InputError, check_writable

DEFAULT_TRAIN_DATA = "nyu_data.zip"
DEFAULT_EVAL_DATA = "nyu_test.zip"
NAMED_DATA = {"nyu": DEFAULT_TRAIN_DATA, "nyu_test": DEFAULT_EVAL_DATA}
EIGEN_FILES = ("eigen_test_rgb.npy", "eigen_test_depth.npy", "eigen_test_crop.npy")
KITTI_SPLIT_FILES = {"train": "eigen_train_files_with_gt.txt", "test": "eigen_test_files_with_gt.txt"}
# Which KITTI ground truth a dataset reads (evaluate.py says it beside the results).
KITTI_ANNOTATED = "annotated depth maps (data_depth_annotated, the BTS split files)"
HOLDOUT_FRACTION = 0.02  # share of training scenes held out for validation with validation="holdout"


# ---------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------


class DepthDataset:
    """RGB-D pairs listed per split, read from a zip or a folder.

    kind "nyu" or "kitti" selects the depth units, range and evaluation protocol; sparse datasets
    (KITTI's LiDAR) carry a validity mask through the pipeline.
    """

    def __init__(self, name, files, splits, kind="nyu", validation="test", seed=0):
        self.name, self.files, self.kind = name, files, kind
        self.depth_range = KITTI if kind == "kitti" else NYU
        self.sparse = kind == "kitti"
        self.train_hw = KITTI_TRAIN_HW if kind == "kitti" else NYU_IMAGE_HW
        self.depth_units = (NYU_8BIT_FULL_SCALE_M, KITTI_DEPTH_SCALE if kind == "kitti" else NYU_16BIT_UNITS_PER_M)
        self.ground_truth = KITTI_ANNOTATED if kind == "kitti" else "dense depth maps"
        self.camera = KITTI_CAMERA if kind == "kitti" else NYU_CAMERA
        self._splits = _with_validation(splits, validation, seed)

    def samples(self, split):
        if split not in self._splits or not self._splits[split]:
            raise InputError(f"{self.name}: no {split} samples")
        return self._splits[split]

    def limit(self, split, count):
        """Keep only the first `count` samples of a split (a quicker validation, say)."""
        self._splits[split] = self.samples(split)[:count]

    def read(self, sample):
        """(rgb uint8 (H, W, 3), depth in metres float32 (H, W)) at full resolution."""
        rgb = decode_rgb(self.files.read(sample.rgb), self.files.label(sample.rgb))
        depth = decode_depth(self.files.read(sample.depth), self.files.label(sample.depth), *self.depth_units)
        return rgb, depth


class EigenArrays:
    """The Eigen NYU test split as arrays (nyu_test.zip): memory-mapped in place where the zip stores them."""

    kind, sparse, depth_range, train_hw, camera = "nyu", False, NYU, NYU_IMAGE_HW, NYU_CAMERA
    ground_truth = "dense depth maps (Eigen arrays)"

    def __init__(self, name, arrays):
        self.name = name
        self.rgb, self.depth, crop = arrays
        if tuple(int(c) for c in np.asarray(crop).ravel()) != EIGEN_CROP:
            raise InputError(f"{name}: eigen_test_crop.npy holds {np.asarray(crop).ravel().tolist()}, not the Eigen "
                             f"crop {list(EIGEN_CROP)} the evaluation uses")
        if len(self.rgb) != len(self.depth):
            raise InputError(f"{name}: {len(self.rgb)} images but {len(self.depth)} depth maps")

    def samples(self, split):
        if split not in ("test", "val"):
            raise InputError(f"{self.name}: the Eigen arrays hold only a test split, no {split} split")
        return [Sample(f"eigen_test_rgb.npy[{i}]", f"eigen_test_depth.npy[{i}]", f"index {i}", i)
                for i in range(len(self.rgb))]

    def read(self, sample):
        return np.asarray(self.rgb[sample.index]), np.asarray(self.depth[sample.index], dtype=np.float32)


def _with_validation(splits, validation, seed):
    """Splits plus 'val': the test split (as the reference code validates), or held-out training scenes."""
    splits = dict(splits)
    if validation == "test":
        splits["val"] = splits.get("test", [])
    elif validation == "holdout":
        train = splits.get("train", [])
        scenes = sorted({s.scene for s in train})
        rng = np.random.default_rng(seed)
        count = max(1, round(HOLDOUT_FRACTION * len(scenes)))
        held = set(rng.choice(scenes, count, replace=False)) if scenes else set()
        splits["train"] = [s for s in train if s.scene not in held]
        splits["val"] = [s for s in train if s.scene in held]
    else:
        raise InputError(f"unknown validation '{validation}': use 'test' or 'holdout'")
    return splits


def open_dataset(spec, validation="test", skip_bad=False, seed=0, cache_dir=None, gt_depths=None):
    """The dataset a --data value names (see the module docstring); InputError if it cannot be used.

    skip_bad: drop listed pairs whose files are missing (counted in dataset.skipped) instead of failing.
    gt_depths: a gt_depths.npz holding the ground truth of a raw KITTI split file's frames, in its order.
    """
    spec = str(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        dataset = open_dataset(synthetic_dataset_path(spec, cache_dir), validation, skip_bad, seed)
        focal = synthetic_focal(spec)
        if focal:  # the rooms' typical camera; each pair's own focal length is listed with it
            mean = float(np.sqrt(focal[0] * focal[1]))
            spread = f"{focal[0]:g}" if focal[0] == focal[1] else f"{focal[0]:g}-{focal[1]:g}"
            dataset.camera = NYU_CAMERA.with_focal(NYU_CAMERA.fx * mean, f"NYU's Kinect at x{spread} its focal length")
        return dataset
    path = Path(NAMED_DATA.get(spec, spec))
    if not path.exists():
        if spec in NAMED_DATA or spec in NAMED_DATA.values():
            raise InputError(f"{path}: not found. Download it from the DenseDepth authors "
                             "(github.com/ialhashim/DenseDepth), or use --data synthetic to work offline")
        known = ", ".join(["synthetic", *NAMED_DATA])
        raise InputError(f"unknown --data '{spec}': not a dataset name ({known}) and no such file or folder")
    if path.suffix == ".txt" and is_raw_kitti_list(path):
        return KittiRaw(path, gt_depths)
    if gt_depths:
        raise InputError(f"{gt_depths}: ground truth for a raw KITTI split file (eigen_test_files.txt), and "
                         f"{path} is not one")
    if path.suffix == ".txt":
        return _kitti_dataset(path, {"train": path, "test": path}, validation, skip_bad, seed)
    files = ZipFiles(path) if path.is_file() else FolderFiles(path)
    if all(files.exists(name) for name in EIGEN_FILES):
        return EigenArrays(str(path), [load_npy(files, name) for name in EIGEN_FILES])
    if any(files.exists(name) for name in NYU_CSV.values()):
        return _nyu_dataset(path, files, validation, skip_bad, seed)
    if path.is_dir() and any((path / name).is_file() for name in KITTI_SPLIT_FILES.values()):
        lists = {split: path / name for split, name in KITTI_SPLIT_FILES.items() if (path / name).is_file()}
        return _kitti_dataset(path, lists, validation, skip_bad, seed)
    raise InputError(f"{path}: not a dataset: expected {NYU_CSV['train']} / {NYU_CSV['test']}, "
                     f"the Eigen arrays ({', '.join(EIGEN_FILES)}) or KITTI split files")


def _nyu_dataset(path, files, validation, skip_bad, seed):
    splits, skipped = {}, []
    for split, csv_name in NYU_CSV.items():
        if files.exists(csv_name):
            rows = _csv_rows(files.read(csv_name).decode("utf-8", errors="replace"), files.label(csv_name))
            splits[split] = _existing_samples(rows, files, csv_name, skip_bad, skipped)
    dataset = DepthDataset(str(path), files, splits, "nyu", validation, seed)
    dataset.skipped = skipped
    return dataset


def _csv_rows(text, label):
    """[(row number, rgb, depth, focal or None)] from an NYU CSV (no header; an optional third field is the
    pair's focal length in pixels, as the synthetic rooms of several focal lengths list it); a malformed row
    raises naming it."""
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in fields if f.strip()]
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(f"{label} row {number}: expected 'rgb_path,depth_path', got {','.join(fields)!r}")
        rows.append((number, fields[0], fields[1], _focal_field(fields[2:], f"{label} row {number}")))
    if not rows:
        raise InputError(f"{label}: empty, no samples listed")
    return rows


def _focal_field(extra, where):
    """The focal length in pixels a row lists after its two paths, or None (InputError if it is not one)."""
    if not extra:
        return None
    try:
        focal = float(extra[0])
    except ValueError as err:
        raise InputError(f"{where}: the third field, the focal length in pixels, is {extra[0]!r}") from err
    if not focal > 0:
        raise InputError(f"{where}: the focal length must be positive, got {extra[0]}")
    return focal


def camera_of(dataset, sample, width):
    """The camera a dataset's sample was taken with (a width-pixel-wide picture): its listed focal length
    with the dataset's principal point, else the dataset's camera."""
    if sample.focal:
        return dataset.camera.with_focal(sample.focal / width, f"{sample.where}: focal {sample.focal:g} px")
    return dataset.camera


def _existing_samples(rows, files, list_name, skip_bad, skipped):
    """Samples whose two files exist; a missing file raises naming the row, or is skipped and counted."""
    samples = []
    for number, rgb, depth, focal in rows:
        where = f"{list_name} row {number}"
        missing = next((name for name in (rgb, depth) if not files.exists(name)), None)
        if missing is None:
            samples.append(Sample(rgb, depth, where, focal=focal))
        elif skip_bad:
            skipped.append(f"{files.label(missing)}: missing ({where})")
        else:
            raise InputError(f"{files.label(list_name)} {where.split(' ', 1)[1]}: {missing} not found "
                             f"in {files.path}")
    return samples


def _kitti_dataset(root, lists, validation, skip_bad, seed):
    """KITTI from split files whose lines are 'rgb depth [focal]' relative to the split file's folder.

    Depth paths are also looked for under train/ and val/ (the data_depth_annotated layout); lines
    whose depth is 'None' have no ground truth and are left out.
    """
    root = Path(root)
    splits, skipped = {}, []
    for split, list_path in lists.items():
        base = FolderFiles(list_path.parent)
        rows = []
        for number, line in enumerate(list_path.read_text().splitlines(), start=1):
            fields = line.split()
            if len(fields) < 2 or fields[1] == "None":
                continue
            depth = next((d for d in (fields[1], f"train/{fields[1]}", f"val/{fields[1]}") if base.exists(d)),
                         fields[1])
            rows.append((number, fields[0], depth, _focal_field(fields[2:], f"{list_path.name} line {number}")))
        if not rows:
            raise InputError(f"{list_path}: no samples with ground truth listed")
        splits[split] = _existing_samples(rows, base, list_path.name, skip_bad, skipped)
    files = FolderFiles(next(iter(lists.values())).parent)
    dataset = DepthDataset(str(root), files, splits, "kitti", validation, seed)
    dataset.skipped = skipped
    listed = [s for s in splits.get("train") or next(iter(splits.values())) if s.focal]
    if listed:  # the training camera a contract records: the split's median focal length at its frames' width
        width = decode_rgb(files.read(listed[0].rgb), files.label(listed[0].rgb)).shape[1]
        focal = float(np.median([s.focal for s in listed]))
        dataset.camera = KITTI_CAMERA.with_focal(focal / width, f"the split files' focal length, {focal:g} px")
    return dataset


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def save_preview(dataset, path, count=4, split="train"):
    """A figure of a few image | depth pairs of the dataset."""
    from outputs import save_depth_montage

    rows = [(sample.name, *dataset.read(sample)) for sample in dataset.samples(split)[:count]]
    save_depth_montage(rows, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-synthetic", metavar="ZIP", help="render a synthetic NYU-format zip to this path")
    parser.add_argument("--train", type=int, default=1000, help="training pairs to render (default 1000)")
    parser.add_argument("--test", type=int, default=100, help="test pairs to render (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    parser.add_argument("--data", help="a dataset to describe (see above for the accepted values)")
    parser.add_argument("--show", metavar="PNG", help="with --data: save a figure of a few training pairs")
    args = parser.parse_args(argv)
    if args.make_synthetic and (args.train < 1 or args.test < 1):
        parser.error(f"--train and --test must each be at least 1 (a dataset needs training and test pairs), "
                     f"got --train {args.train} --test {args.test}")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if not args.make_synthetic and not args.data:
        parser.error("nothing to do: give --make-synthetic ZIP or --data D")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.make_synthetic:
            check_writable(args.make_synthetic, (args.train + args.test) * SYNTHETIC_BYTES_PER_PAIR)
            make_synthetic_zip(args.make_synthetic, args.train, args.test, args.seed, args.workers)
            print(f"wrote {args.make_synthetic}: {args.train} train + {args.test} test pairs")
        if args.data:
            dataset = open_dataset(args.data)
            for split in ("train", "val", "test"):
                try:
                    print(f"{dataset.name} [{dataset.kind}] {split}: {len(dataset.samples(split))} pairs")
                except InputError:
                    print(f"{dataset.name} [{dataset.kind}] {split}: none")
            if args.show:
                check_writable(args.show)
                split = "train" if not isinstance(dataset, EigenArrays) else "test"
                save_preview(dataset, args.show, split=split)
                print(f"wrote {args.show}")
    except InputError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
