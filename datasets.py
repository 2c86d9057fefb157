"""What is true of each dataset, wherever it is stored: one frozen DatasetSpec per dataset, and what every
reader returns.

    from datasets import spec_named
    spec = spec_named("diode")        # depth range, evaluation cap, crops, camera, encoding, published rows

A reader (data.py: NYU, the Eigen arrays, KITTI, your own folder, the synthetic rooms; kitti.py: raw KITTI;
benchmarks.py: iBims-1, DIODE, ETH3D, SUN RGB-D, ScanNet, Sintel, TUM RGB-D) holds `spec`, `name` (where it
was read from) and `skipped` (what --skip-bad left out), and answers `samples(split)` (a list of
datafiles.Sample) and `read(sample)` (a Pair). Everything else asks the spec, never the dataset's name:
this module is the only one that compares a dataset's name with a string.

Nothing here imports TensorFlow.
"""
import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from camera import KITTI_CAMERA, NYU_CAMERA, Camera
from depth import KITTI, KITTI_DEPTH_SCALE, KITTI_TRAIN_HW, NYU, NYU_IMAGE_HW, DepthRange
from utils import InputError


class Pair(NamedTuple):
    """One sample as a reader returns it: uint8 RGB (H, W, 3), depth in metres float32 (H, W) with 0 where
    there is none, the valid mask (H, W) bool, and the camera the picture was taken with (None: the spec's)."""

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    camera: Camera | None = None


def pair(rgb, depth, valid=None, camera=None):
    """A Pair whose depth is 0 wherever it is not valid (non-finite or <= 0 counts as not valid)."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    return Pair(rgb, np.where(ok, depth, np.float32(0)), ok, camera)


class Reader:
    """What every reader shares: `spec`, `name`, `skipped`, `camera` (the data's typical camera: its spec's
    unless the reader knows better) and `ground_truth` (what its depth is, in words, for the tables)."""

    spec = None
    name = ""
    skipped = ()

    @property
    def camera(self):
        return self.spec.camera

    @property
    def ground_truth(self):
        return f"{self.spec.title}'s depth maps"


def listed_camera(camera, sample, width):
    """The camera of a sample whose list gives its focal length (in pixels of a width-wide picture): that
    focal length with camera's principal point; else camera."""
    if sample.focal:
        return camera.with_focal(sample.focal / width, f"{sample.where}: focal {sample.focal:g} px")
    return camera


@dataclass(frozen=True)
class CropBox:
    """An evaluation crop: (top, bottom, left, right), bottom and right exclusive, in pixels of a picture of
    `size` (height, width), scaled to any other size and rounded with `rounding` ("round" or "floor")."""

    box: tuple
    size: tuple = (1, 1)
    rounding: str = "round"

    def pixels(self, height, width):
        to_int = round if self.rounding == "round" else int
        top, bottom, left, right = self.box
        sy, sx = height / self.size[0], width / self.size[1]
        return to_int(top * sy), to_int(bottom * sy), to_int(left * sx), to_int(right * sx)


@dataclass(frozen=True)
class DepthEncoding:
    """How a depth image's values become metres: 16-bit values per metre, an 8-bit image's full scale, and
    the value that marks no measurement."""

    units_per_m: float = 1000.0
    full_scale_8bit_m: float = NYU.max_m
    invalid: float = 0.0

    def metres(self, raw):
        raw = np.asarray(raw)
        if raw.dtype == np.uint8:
            depth = raw.astype(np.float32) * np.float32(self.full_scale_8bit_m / 255.0)
        elif raw.dtype.kind in "ui":
            depth = raw.astype(np.float32) / np.float32(self.units_per_m)
        else:
            depth = raw.astype(np.float32)  # float images already hold metres
        return np.where(raw == self.invalid, np.float32(0), depth)


@dataclass(frozen=True)
class PublishedRow:
    """Another model's published figures on a dataset, with where they come from and how they were made."""

    model: str
    metrics: dict
    source: str
    align: str = "none"
    computed: str = "per image"


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's facts. depth_range: the training range (max_m the target's numerator) and the floor under
    which ground truth is not evaluated; eval_cap_m: ground truth beyond it is not evaluated (None: none).
    camera: the dataset's camera (per-sample cameras come from its files, with this as the fallback).
    sparse: ground truth has holes, so training masks them. train_crop: training takes a random train_hw
    crop instead of resizing. crops: the evaluation crops by name; default_crop: the protocol's.
    reported: the metrics the benchmark reports. reference_protocol: the authors' evaluate.py exists for it.
    comparable_ground_truth: the readers' ground truth the published rows were computed on (empty: any).
    camera_scale: whether its protocol scales each prediction by the picture's camera over the model's."""

    name: str
    title: str
    depth_range: DepthRange = NYU
    eval_cap_m: float | None = None
    train_hw: tuple = NYU_IMAGE_HW
    camera: Camera = NYU_CAMERA
    sparse: bool = False
    train_crop: bool = False
    encoding: DepthEncoding = DepthEncoding()
    crops: dict = dataclasses.field(default_factory=dict)
    default_crop: str = "none"
    reported: tuple = ("a1", "a2", "a3", "abs_rel", "rmse", "log10")
    published: tuple = ()
    reference_protocol: bool = False
    comparable_ground_truth: tuple = ()
    camera_scale: bool = False
    layout: str = ""
    source: str = ""

    def crop_box(self, height, width, crop=None):
        """(top, bottom, left, right) of the evaluated region of a height x width picture."""
        crop = crop or self.default_crop
        if crop == "none":
            return 0, height, 0, width
        if crop not in self.crops:
            raise InputError(f"the {crop} crop is not defined for {self.title}: choose one of "
                             f"{', '.join(['none', *self.crops])}")
        return self.crops[crop].pixels(height, width)

    def published_rows(self, align="none"):
        """The published rows computed with this alignment (others are not comparable, so not shown)."""
        return tuple(row for row in self.published if row.align == align)


# ---------------------------------------------------------------------------------------------------------
# The paper's datasets
# ---------------------------------------------------------------------------------------------------------

# NYU's Eigen crop, pixels 20-459 by 24-615 (inclusive) of 480x640; KITTI's as fractions of the frame,
# truncated to whole pixels as the monodepth evaluation does.
EIGEN_CROP = CropBox((20, 460, 24, 616), NYU_IMAGE_HW)
KITTI_GARG_CROP = CropBox((0.40810811, 0.99189189, 0.03594771, 0.96405229), rounding="floor")
KITTI_EIGEN_CROP = CropBox((0.3324324, 0.91351351, 0.0359477, 0.96405229), rounding="floor")
NYU_ENCODING = DepthEncoding(units_per_m=1000.0, full_scale_8bit_m=NYU.max_m)  # training PNGs 8-bit, test mm
NYU_METRICS = ("a1", "a2", "a3", "abs_rel", "rmse", "log10")
KITTI_METRICS = ("a1", "a2", "a3", "abs_rel", "sq_rel", "rmse", "rmse_log")

# The paper's results. NYU (section 4.3, table 1): per-image means, as the authors' compute_errors averaged
# them until August 2019 (their fdcef58 "Fixed incorrect computation of RMSE"): with a fixed crop the
# per-image and pooled figures agree for every metric but rms (0.465 per image, 0.549 pooled). KITTI (table
# 2): Eigen's 697 test images against projected raw LiDAR scans, capped at 80 m; it reports no log10.
PAPER = "DenseDepth (paper)"
PAPER_SOURCE = "Alhashim & Wonka 2018, table 1 (NYU) and table 2 (KITTI)"
NYU_PAPER_ROW = PublishedRow(PAPER, {"a1": 0.846, "a2": 0.974, "a3": 0.994, "abs_rel": 0.123, "rmse": 0.465,
                                     "log10": 0.053}, PAPER_SOURCE)
KITTI_PAPER_ROW = PublishedRow(PAPER, {"a1": 0.886, "a2": 0.965, "a3": 0.986, "abs_rel": 0.093, "sq_rel": 0.589,
                                       "rmse": 4.170, "rmse_log": 0.171}, PAPER_SOURCE)
# What re-runs of the authors' evaluate.py on their nyu.h5 publish: pooled over pixels, abs rel in their
# argument order (divided by the prediction; 0.123 by ground truth). Only these three are published.
AUTHORS_SCRIPT_RERUN = PublishedRow("the authors' evaluate.py on nyu.h5", {"a1": 0.847, "abs_rel": 0.127,
                                                                           "rmse": 0.549},
                                    "re-runs of the authors' script (pooled, their abs rel order)",
                                    computed="pooled, reference protocol")
# Which KITTI ground truth a reader reads (evaluate.py says it beside the results).
KITTI_ANNOTATED = "annotated depth maps (data_depth_annotated, the BTS split files)"
KITTI_RAW = "raw LiDAR scans projected with the calibration"
KITTI_GT_NPZ = "gt_depths.npz"

NYU_SPEC = DatasetSpec(
    "nyu", "NYU Depth v2", NYU, None, NYU_IMAGE_HW, NYU_CAMERA, encoding=NYU_ENCODING, crops={"eigen": EIGEN_CROP},
    default_crop="eigen", reported=NYU_METRICS, published=(NYU_PAPER_ROW,), reference_protocol=True,
    layout="data/nyu2_train.csv, data/nyu2_test.csv and the PNGs they list (zip or folder); or the Eigen arrays",
    source="Silberman et al. 2012; the DenseDepth authors' nyu_data.zip and nyu_test.zip")
KITTI_SPEC = DatasetSpec(
    "kitti", "KITTI (Eigen split)", KITTI, KITTI.max_m, KITTI_TRAIN_HW, KITTI_CAMERA, sparse=True, train_crop=True,
    encoding=DepthEncoding(units_per_m=KITTI_DEPTH_SCALE), crops={"garg": KITTI_GARG_CROP, "eigen": KITTI_EIGEN_CROP},
    default_crop="garg", reported=KITTI_METRICS, published=(KITTI_PAPER_ROW,),
    comparable_ground_truth=(KITTI_RAW, KITTI_GT_NPZ),
    layout="split files 'rgb.png depth.png [focal]' (annotated) or 'left.png' (raw, velodyne scans)",
    source="Geiger et al. 2012; Eigen et al. 2014's split")
SYNTHETIC_SPEC = dataclasses.replace(
    NYU_SPEC, name="synthetic", title="synthetic rooms", published=(), reference_protocol=False, camera_scale=True,
    layout="rendered on first use into the cache folder, NYU's zip layout", source="synthetic.py")
FOLDER_SPEC = dataclasses.replace(
    NYU_SPEC, name="folder", title="your own RGB-D folder", published=(), reference_protocol=False, camera_scale=True,
    layout="NYU's layout: data/nyu2_train.csv, data/nyu2_test.csv listing 'rgb,depth[,focal]'", source="you")

SPECS = {spec.name: spec for spec in (NYU_SPEC, KITTI_SPEC, SYNTHETIC_SPEC, FOLDER_SPEC)}


def register(spec):
    """Add a spec (benchmarks.py adds the zero-shot benchmarks'); the spec returned."""
    SPECS[spec.name] = spec
    return spec


def spec_named(name, default=None):
    """The spec of a dataset name (a contract's, say); default where the name is None or unknown."""
    return SPECS.get(name, default) if name else default


def is_kitti(spec):
    """Whether a spec is KITTI's: the authors' kitti.h5 and its input size belong to it."""
    return spec is not None and spec.name == "kitti"


def training_camera(name):
    """The camera a model trained on the dataset of this name assumes: the dataset's (NYU's by default)."""
    return spec_named(name, NYU_SPEC).camera


def trained_elsewhere(trained_on, spec):
    """Whether a model trained on the dataset named trained_on is evaluated on another dataset's data (the
    synthetic rooms stand in for any data, and a model that records no dataset is not judged)."""
    return bool(trained_on) and trained_on not in (spec.name, SYNTHETIC_SPEC.name)
