"""Opening a --data value: NYU Depth v2, the Eigen test arrays, KITTI, your own folder, the synthetic rooms,
the field's benchmarks (NAME:PATH), and mixtures of them, read without TensorFlow.

Each reader lists its samples per split and reads one as a datasets.Pair (uint8 RGB, metres, valid mask,
camera); what is true of each dataset is its datasets.DatasetSpec. pipeline.py turns them into tf.data
batches; kitti.py projects KITTI's raw LiDAR scans; benchmarks.py and sequences.py read the zero-shot sets.

`--data` takes, in every script, one of:
    synthetic            the built-in procedural dataset (rendered and cached on first use, no download);
                         synthetic:N:M renders N training and M test pairs
    synthetic-video:N    N clips of a camera moving through a room (walk, pan, dolly), exact depth and pose
                         per frame (synthetic-video:N:F: F frames each), rendered and cached likewise
    nyu / nyu_test       nyu_data.zip / nyu_test.zip in the current folder
    path/to/file.zip     an NYU-format zip (data/nyu2_train.csv, data/nyu2_test.csv), read in place,
                         or the Eigen test arrays zip (eigen_test_rgb.npy, eigen_test_depth.npy, ...)
    path/to/folder       the same NYU layout unpacked (your own RGB-D data: CSVs plus images; a
                         data/depth_units.json such as {"units_per_m": 5000} declares how its 16-bit depth
                         maps store metres, else NYU's millimetres), or a folder holding the Eigen .npy
                         arrays, or a KITTI root with its split files
    NAME:PATH            a benchmark in its distributor's layout: ibims1, diode, diode-indoors,
                         diode-outdoor, eth3d, sunrgbd (benchmarks.py), scannet, sintel, sintel-clean, tum
                         (sequences.py)
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
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np

import benchmarks
import sequences
from camera import KITTI_CAMERA, NYU_CAMERA
from datafiles import FolderFiles, Sample, ZipFiles, decode_rgb, image_values, load_npy
from datasets import (
    EIGEN_CROP,
    FOLDER_SPEC,
    KITTI_ANNOTATED,
    KITTI_SPEC,
    NYU_SPEC,
    SYNTHETIC_SPEC,
    DepthEncoding,
    Reader,
    listed_camera,
    pair,
)
from depth import NYU_IMAGE_HW
from kitti import KittiRaw, is_raw_kitti_list
from sequences import SYNTHETIC_VIDEO_SPEC, open_synthetic_video
from synthetic import (
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
# Your own data in NYU's layout declares how its depth maps store metres in this file beside the CSVs.
UNITS_FILE = "data/depth_units.json"
# --data NAME:PATH: the field's benchmarks in their distributors' layouts.
BENCHMARK_READERS = {**benchmarks.READERS, **sequences.READERS}
HOLDOUT_FRACTION = 0.02  # share of training scenes held out for validation with validation="holdout"


# ---------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------


class DepthDataset:
    """RGB-D pairs listed per split, read from a zip or a folder, with their spec's depth encoding (or the
    one the folder declares in data/depth_units.json).

    camera: the data's typical camera (the spec's unless its lists say otherwise); each pair read carries
    its own (its listed focal length where it has one).
    """

    def __init__(self, name, files, splits, spec=NYU_SPEC, validation="test", seed=0, **facts):
        self.name, self.files, self.spec = name, files, spec
        self.encoding = facts.get("encoding") or spec.encoding
        self.ground_truth = facts.get("ground_truth", "dense depth maps")
        self.camera = facts.get("camera") or spec.camera
        self.skipped = facts.get("skipped", [])
        self._splits = _with_validation(splits, validation, seed)

    def samples(self, split):
        if split not in self._splits or not self._splits[split]:
            raise InputError(f"{self.name}: no {split} samples")
        return self._splits[split]

    def limit(self, split, count):
        """Keep only the first `count` samples of a split (a quicker validation, say)."""
        self._splits[split] = self.samples(split)[:count]

    def read(self, sample):
        """The pair at full resolution (datasets.Pair)."""
        rgb = decode_rgb(self.files.read(sample.rgb), self.files.label(sample.rgb))
        label = self.files.label(sample.depth)
        depth = self.encoding.metres(image_values(self.files.read(sample.depth), label, "depth image"))
        check_plausible(depth, self.spec.depth_range.max_m, self.encoding.units_per_m, label)
        return pair(rgb, depth, camera=listed_camera(self.camera, sample, rgb.shape[1]))


class EigenArrays:
    """The Eigen NYU test split as arrays (nyu_test.zip): memory-mapped in place where the zip stores them."""

    spec, camera, ground_truth, skipped = NYU_SPEC, NYU_SPEC.camera, "dense depth maps (Eigen arrays)", ()

    def __init__(self, name, arrays):
        self.name = name
        self.rgb, self.depth, crop = arrays
        box = tuple(int(c) for c in np.asarray(crop).ravel())
        expected = EIGEN_CROP.pixels(*NYU_IMAGE_HW)
        if box[:2] + box[2:] != (expected[0], expected[1] - 1, expected[2], expected[3] - 1):
            raise InputError(f"{name}: eigen_test_crop.npy holds {list(box)}, not the Eigen crop "
                             f"{[expected[0], expected[1] - 1, expected[2], expected[3] - 1]} the evaluation uses")
        if len(self.rgb) != len(self.depth):
            raise InputError(f"{name}: {len(self.rgb)} images but {len(self.depth)} depth maps")

    def samples(self, split):
        if split not in ("test", "val"):
            raise InputError(f"{self.name}: the Eigen arrays hold only a test split, no {split} split")
        return [Sample(f"eigen_test_rgb.npy[{i}]", f"eigen_test_depth.npy[{i}]", f"index {i}", i)
                for i in range(len(self.rgb))]

    def read(self, sample):
        return pair(np.asarray(self.rgb[sample.index]), self.depth[sample.index], camera=self.camera)


# Values per metre a 16-bit depth map is commonly stored at: millimetres (NYU, SUN RGB-D, ScanNet), TUM's
# 1/5000 m, KITTI's 1/256 m, iBims-1's 65535 / 50 m.
COMMON_UNITS_PER_M = (1000.0, 5000.0, 256.0, 65535.0 / 50.0, 10000.0, 100.0)


def check_plausible(depth, max_m, units_per_m, label):
    """Refuse a 16-bit depth map read at the wrong scale: most of its pixels beyond the cap (or all within a
    tenth of it), naming the common scale that would make it plausible."""
    valid = depth[depth > 0]
    if valid.size < 16:
        return
    beyond = float(np.mean(valid > max_m))
    tiny = float(np.median(valid)) < max_m / 200
    if beyond <= 0.5 and not tiny:
        return
    raw_median = float(np.median(valid)) * units_per_m
    plausible = [u for u in COMMON_UNITS_PER_M if max_m / 50 <= raw_median / u <= max_m * 0.8]
    hint = (f"stored at {plausible[0]:g} values per metre, its median would be {raw_median / plausible[0]:.2f} m"
            if plausible else "no common scale makes it plausible")
    raise InputError(f"{label}: read at {units_per_m:g} values per metre, {beyond:.0%} of its depth lies beyond "
                     f"{max_m:g} m (median {np.median(valid):.3g} m): if {hint}, declare it in "
                     f"{UNITS_FILE} ({{\"units_per_m\": {plausible[0] if plausible else 1000:g}}})")


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

    skip_bad: drop listed pairs whose files are missing (listed in dataset.skipped) instead of failing.
    gt_depths: a gt_depths.npz holding the ground truth of a raw KITTI split file's frames, in its order.
    """
    spec = str(spec)
    prefix, _, rest = spec.partition(":")
    if prefix == SYNTHETIC_SPEC.name:
        return _synthetic_dataset(spec, validation, skip_bad, seed, cache_dir)
    if prefix == SYNTHETIC_VIDEO_SPEC.name:
        return open_synthetic_video(spec, cache_dir)
    readers = BENCHMARK_READERS
    if rest and prefix in readers:
        if not Path(rest).exists():
            raise InputError(f"{rest}: not found (--data {prefix}:PATH takes the dataset's folder)")
        return readers[prefix](rest, skip_bad)
    path = Path(NAMED_DATA.get(spec, spec))
    if not path.exists():
        if spec in NAMED_DATA or spec in NAMED_DATA.values():
            raise InputError(f"{path}: not found. Download it from the DenseDepth authors "
                             "(github.com/ialhashim/DenseDepth), or use --data synthetic to work offline")
        known = ", ".join(["synthetic", "synthetic-video:N", *NAMED_DATA, *(f"{name}:PATH" for name in readers)])
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
                     f"the Eigen arrays ({', '.join(EIGEN_FILES)}), KITTI split files, or NAME:PATH with NAME "
                     f"one of {', '.join(readers)}")


def open_training_data(names, weights=(), **options):
    """The dataset of one --data, or the Mixture of several (options: open_dataset's)."""
    datasets = [open_dataset(name, **options) for name in names]
    return datasets[0] if len(datasets) == 1 else Mixture(datasets, weights)


class Mixture(Reader):
    """Several datasets trained on as one: each dataset's share of the training samples set by its weight
    (its samples repeated or cut to that share), validation on all of theirs. Their depth ranges must agree
    (the target is max_m / depth); the mixture is sparse if one of them is, and takes each picture at the
    network's size (no dataset's own training crop). Cameras: each pair keeps its own, so that
    --canonical-focal scales every dataset's depth to one camera."""

    def __init__(self, datasets, weights=()):
        weights = tuple(weights) or (1.0,) * len(datasets)
        first = datasets[0]
        ranges = {d.spec.depth_range.max_m for d in datasets}
        if len(ranges) > 1:
            raise InputError("the datasets mixed have different depth ranges ("
                             + ", ".join(f"{d.name}: {d.spec.depth_range.max_m:g} m" for d in datasets)
                             + "): train on datasets of one range, the target being max_m / depth")
        self.datasets, self.name, self._sources = datasets, " + ".join(d.name for d in datasets), {}
        self.spec = dataclasses.replace(first.spec, name="+".join(d.spec.name for d in datasets),
                                        title=self.name, sparse=any(d.spec.sparse for d in datasets),
                                        train_crop=False, published=())
        self.skipped = [line for d in datasets for line in d.skipped]
        train = [d.samples("train") for d in datasets]
        total = sum(len(samples) for samples in train)
        shares = [max(1, round(total * w / sum(weights))) for w in weights]
        self._splits = {"train": self._tagged([(i, (samples * (share // len(samples) + 1))[:share])
                                               for i, (samples, share) in enumerate(zip(train, shares))]),
                        "val": self._tagged([(i, d.samples("val")) for i, d in enumerate(datasets)])}
        self._splits["test"] = self._splits["val"]

    @property
    def camera(self):
        return self.datasets[0].camera

    def _tagged(self, parts):
        """The samples of every part renumbered into one list, each remembering its dataset and itself."""
        tagged = []
        for source, samples in parts:
            for sample in samples:
                index = len(self._sources)
                self._sources[index] = (self.datasets[source], sample)
                tagged.append(dataclasses.replace(sample, index=index, where=f"{self.datasets[source].name}: "
                                                  f"{sample.where}"))
        return tagged

    def samples(self, split):
        if split not in self._splits:
            raise InputError(f"{self.name}: no {split} samples")
        return self._splits[split]

    def limit(self, split, count):
        self._splits[split] = self.samples(split)[:count]

    def read(self, sample):
        dataset, own = self._sources[sample.index]
        rgb, depth, valid, camera = dataset.read(own)
        return pair(rgb, depth, valid, camera or dataset.camera)


def _synthetic_dataset(spec, validation, skip_bad, seed, cache_dir):
    """The synthetic rooms, with their typical camera (each pair's own focal length is listed with it)."""
    path = synthetic_dataset_path(spec, cache_dir)
    dataset = _nyu_dataset(path, ZipFiles(path), validation, skip_bad, seed, SYNTHETIC_SPEC)
    focal = synthetic_focal(spec)
    if focal:
        mean = float(np.sqrt(focal[0] * focal[1]))
        spread = f"{focal[0]:g}" if focal[0] == focal[1] else f"{focal[0]:g}-{focal[1]:g}"
        dataset.camera = NYU_CAMERA.with_focal(NYU_CAMERA.fx * mean, f"NYU's Kinect at x{spread} its focal length")
    return dataset


def _nyu_dataset(path, files, validation, skip_bad, seed, spec=NYU_SPEC):
    """NYU's layout; a folder that declares its depth units (UNITS_FILE) is your own data, read with them."""
    splits, skipped = {}, []
    for split, csv_name in NYU_CSV.items():
        if files.exists(csv_name):
            rows = _csv_rows(files.read(csv_name).decode("utf-8", errors="replace"), files.label(csv_name))
            splits[split] = _existing_samples(rows, files, csv_name, skip_bad, skipped)
    encoding = None
    if files.exists(UNITS_FILE):
        spec, encoding = FOLDER_SPEC, declared_encoding(files.read(UNITS_FILE), files.label(UNITS_FILE))
    return DepthDataset(str(path), files, splits, spec, validation, seed, encoding=encoding, skipped=skipped)


def declared_encoding(data, label):
    """The DepthEncoding a folder's depth_units.json declares: {"units_per_m": 5000} (16-bit values per
    metre), optionally "full_scale_8bit_m" and "invalid"."""
    try:
        content = json.loads(data)
        return DepthEncoding(**{key: float(value) for key, value in content.items()})
    except (ValueError, TypeError) as err:
        raise InputError(f"{label}: not a depth units declaration like {{\"units_per_m\": 5000}} ({err})") from err


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
    camera = None
    listed = [s for s in splits.get("train") or next(iter(splits.values())) if s.focal]
    if listed:  # the training camera a contract records: the split's median focal length at its frames' width
        width = decode_rgb(files.read(listed[0].rgb), files.label(listed[0].rgb)).shape[1]
        focal = float(np.median([s.focal for s in listed]))
        camera = KITTI_CAMERA.with_focal(focal / width, f"the split files' focal length, {focal:g} px")
    return DepthDataset(str(root), files, splits, KITTI_SPEC, validation, seed, ground_truth=KITTI_ANNOTATED,
                        camera=camera, skipped=skipped)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def save_preview(dataset, path, count=4, split="train"):
    """A figure of a few image | depth pairs of the dataset."""
    from outputs import save_depth_montage

    rows = [(sample.name, *dataset.read(sample)[:2]) for sample in dataset.samples(split)[:count]]
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
                    print(f"{dataset.name} [{dataset.spec.name}] {split}: {len(dataset.samples(split))} pairs")
                except InputError:
                    print(f"{dataset.name} [{dataset.spec.name}] {split}: none")
            if args.show:
                check_writable(args.show)
                split = "train" if not isinstance(dataset, EigenArrays) else "test"
                save_preview(dataset, args.show, split=split)
                print(f"wrote {args.show}")
    except InputError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
