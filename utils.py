"""Shared constants and helpers: depth normalisation, prediction, metrics, image I/O, colouring.

Every constant of the method (depth ranges, image sizes, crops, intrinsics) is defined here once and
imported everywhere else. Nothing in this module needs TensorFlow at import time, so the data tools and
the synthetic renderer can use it cheaply.

    from utils import NYU, depth_norm, predict, compute_errors
"""
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERSION = "0.2.0"  # this project's version, saved in every model's contract

# ---------------------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthRange:
    """The depth range of a dataset, in metres.

    max_m is both the cap and the numerator m of the target y = m / depth. min_m clips targets during
    training and predictions at inference. eval_min_m: ground truth at or below it is not evaluated.
    """

    min_m: float
    max_m: float
    eval_min_m: float = 1e-3


# The paper's appendix clips NYU targets to [0.4, 10] m; the reference code uses [0.1, 10] m.
NYU = DepthRange(min_m=0.4, max_m=10.0)
NYU_REFERENCE = DepthRange(min_m=0.1, max_m=10.0)
# KITTI: 80 m cap; min chosen so that targets span [1, 100] as in the reference NYU convention.
KITTI = DepthRange(min_m=0.8, max_m=80.0)
DEPTH_RANGES = {"nyu": NYU, "nyu_reference": NYU_REFERENCE, "kitti": KITTI}

# The loss (paper section 3.2): weight of the point-wise L1 term, and SSIM's dynamic range, the reference
# code's target range 1000 cm / 10 cm.
THETA = 0.1
SSIM_DYNAMIC_RANGE = 100.0
# SSIM's window (Wang et al. 2004, tf.image.ssim's, the reference code's) for the loss and the mSSIM measure:
# 11x11 Gaussian of sigma 1.5.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

# Augmentation (paper section 3.3): mirror probability and colour-permutation probability.
FLIP_PROBABILITY = 0.5
PERMUTE_PROBABILITY = 0.25

# Which convolutions of each decoder block a LeakyReLU(0.2) follows. The paper's appendix table: convB only,
# as the authors' model.py had it when nyu.h5 and kitti.h5 were trained (January 2019, 2124ac9). Their code
# added one after convA on 2019-03-11 (ea4a455, "missing ReLU"): train.py --recipe reference builds that.
PAPER_LEAKY_RELU = ("convB",)
REFERENCE_LEAKY_RELU = ("convA", "convB")

# Encoders and the channels of their last feature map (model.py builds them). "tiny" is a four-stage
# DenseNet of two layers per stage for tests and --smoke: the same skip connections and layer names.
ENCODER_CHANNELS = {"densenet169": 1664, "densenet201": 1920, "tiny": 64}

NYU_IMAGE_HW = (480, 640)  # input (height, width)
# Eigen crop of the 480x640 NYU test images: rows 20..459 and columns 24..615, inclusive.
EIGEN_CROP = (20, 459, 24, 615)
# Kinect intrinsics of NYU Depth v2 at 640x480 (pixels).
NYU_INTRINSICS = {"fx": 518.8579, "fy": 519.4696, "cx": 325.5824, "cy": 253.7362}

# KITTI: crops as fractions of (height, height, width, width): top, bottom, left, right.
KITTI_GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
KITTI_EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
KITTI_TRAIN_HW = (352, 1216)  # fixed-size training crop, the largest multiple of 32 inside every frame
KITTI_DEPTH_SCALE = 256.0  # 16-bit PNG value = metres * 256

# The paper's results. NYU (section 4.3, table 1): per-image means, as the authors' compute_errors
# averaged them until August 2019 (their fdcef58 "Fixed incorrect computation of RMSE"): with a fixed crop the
# per-image and pooled figures agree for every metric but rms, where they differ (0.465 per image, 0.549
# pooled). KITTI (table 2): Eigen's 697 test images against projected raw LiDAR scans, capped at 80 m (the
# row later papers, e.g. BTS, quote); it reports no log10. evaluate.py prints each beside its per-image row.
PAPER_RESULTS = {
    "nyu": {"a1": 0.846, "a2": 0.974, "a3": 0.994, "abs_rel": 0.123, "rmse": 0.465, "log10": 0.053},
    "kitti": {"a1": 0.886, "a2": 0.965, "a3": 0.986, "abs_rel": 0.093, "sq_rel": 0.589, "rmse": 4.170,
              "rmse_log": 0.171},
}
PAPER_RESULTS_COMPUTED = "per image"
# What re-runs of the authors' evaluate.py on their nyu.h5 publish: pooled over pixels, abs rel in their
# argument order (divided by the prediction; 0.123 by ground truth). Only these three are published.
AUTHORS_SCRIPT_RERUN = {"nyu": {"a1": 0.847, "abs_rel": 0.127, "rmse": 0.549}}

# The reference code permutes colour channels with probability 0.5, drawing from seven orders of which two
# are RGB itself: a changed image 0.5 x 5/7 = 5/14 of the time (augment.py draws only real permutations).
REFERENCE_PERMUTE_PROBABILITY = 0.5 * 5 / 7

# The paper's threshold for the edge F1 quality measure.
EDGE_THRESHOLD = 0.5


class InputError(Exception):
    """A user mistake (bad file, path, flag): scripts print it as one line, without a traceback."""


def parse_hw(text, even=False):
    """(height, width) from 'HxW', both at least 32 (and even where the output must be exactly half)."""
    try:
        height, width = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise InputError(f"expected HEIGHTxWIDTH such as 240x320, got {text!r}") from None
    if min(height, width) < 32:
        raise InputError(f"{text}: both sides must be at least 32 pixels")
    if even and (height % 2 or width % 2):
        raise InputError(f"{text}: height and width must be even")
    return height, width


def image_size(text):
    """(height, width) from 'HxW', for argparse: parse_hw's message as the usage error."""
    import argparse

    try:
        return parse_hw(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ---------------------------------------------------------------------------------------------------------
# Depth normalisation: the transform and its inverse side by side
# ---------------------------------------------------------------------------------------------------------


def _array_module(x):
    """NumPy for arrays, TensorFlow's NumPy API for tensors (tf.data graphs share these functions), and
    keras.ops for the other backends' tensors."""
    module = type(x).__module__
    if module.startswith("tensorflow"):
        import tensorflow.experimental.numpy as tnp

        return tnp
    if module.startswith(("jax", "torch", "keras")):
        import keras

        return keras.ops
    return np


def depth_norm(depth_m, depth_range=NYU):
    """Training target y = max_m / depth_m, depth first clipped to the range.

    Holes (zero, negative, NaN, inf) are treated as the far limit, giving the finite target 1; the data
    pipeline also masks them out where ground truth is sparse.
    """
    xp = _array_module(depth_m)
    valid = xp.isfinite(depth_m) & (depth_m > 0)
    depth_m = xp.where(valid, depth_m, depth_range.max_m)
    return depth_range.max_m / xp.clip(depth_m, depth_range.min_m, depth_range.max_m)


def inverse_depth_norm(target, depth_range=NYU):
    """Metric depth in metres from a network output y: clip(max_m / y, min_m, max_m)."""
    xp = _array_module(target)
    positive = target > 0
    depth_m = depth_range.max_m / xp.where(positive, target, 1.0)
    # A non-positive output has no depth meaning; it maps to the far limit, like a tiny positive one.
    depth_m = xp.where(positive, depth_m, depth_range.max_m)
    return xp.clip(depth_m, depth_range.min_m, depth_range.max_m)


# ---------------------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------------------


def to_model_input(images):
    """Float32 RGB in [0, 1], shape (N, H, W, 3), from uint8 / uint16 / float images or a single image."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"expected RGB images of shape (N, H, W, 3), got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    if images.dtype == np.uint16:
        return images.astype(np.float32) / 65535.0
    images = images.astype(np.float32)
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise InputError("float images must lie in [0, 1]")
    return images


def predict(model, images, batch_size=2, depth_range=NYU, flip=False):
    """Metric depth in metres, shape (N, H/2, W/2), from RGB images (uint8 or float in [0, 1]).

    flip=True averages, in metres as the reference evaluation does, with the mirrored prediction of the
    mirrored image (the paper's test-time augmentation).
    """
    x = to_model_input(images)
    outputs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        depth = _predict_depth(model, batch, depth_range)
        if flip:
            depth = 0.5 * (depth + _predict_depth(model, batch[:, :, ::-1], depth_range)[:, :, ::-1])
        outputs.append(depth)
    return np.concatenate(outputs).astype(np.float32)


def _predict_depth(model, batch, depth_range):
    """Metres (N, h, w) from the network's normalised output."""
    return inverse_depth_norm(predict_targets(model, batch)[..., 0], depth_range)


def predict_targets(model, batch):
    """The network's raw output (normalised targets) as float32 NumPy."""
    import keras

    batch = np.ascontiguousarray(batch)
    if keras.backend.backend() == "tensorflow" or not isinstance(model, keras.Model):  # or an exported model
        return np.asarray(model(batch, training=False), dtype=np.float32)  # eager: no graph to trace first
    # One compiled program per input shape: a direct call under JAX runs, and first compiles, op by op
    # (evaluate.py, a small network on 480x640 pictures, 2 CPU cores: 2.8 s a picture instead of 55).
    return np.asarray(model.predict_on_batch(batch), dtype=np.float32)


def network_input(images, hw=None):
    """What the network takes: float32 RGB in [0, 1], resized (bilinear, antialiased) to hw = (H, W).

    The one preparation of pictures for training (inside tf.data graphs), evaluation and inference.
    images: (H, W, 3) or (N, H, W, 3), uint8 or float in [0, 1], arrays or tensors; returns a tensor.
    """
    import tensorflow as tf

    images = tf.image.convert_image_dtype(images, tf.float32)
    if hw is None or tuple(images.shape[-3:-1]) == tuple(hw):
        return images
    resize = lambda: tf.clip_by_value(tf.image.resize(images, hw, antialias=True), 0.0, 1.0)  # noqa: E731
    if None not in images.shape[-3:-1]:
        return resize()
    # Decoded images have no static size: check at run time too, a same-size resize costs a full pass.
    same = tf.reduce_all(tf.shape(images)[-3:-1] == tf.constant(hw))
    return tf.cond(same, lambda: images, resize)


# ---------------------------------------------------------------------------------------------------------
# Metrics: pure functions of (ground truth, prediction); ground truth always comes first
# ---------------------------------------------------------------------------------------------------------

# Every metric computed; each benchmark reports its own columns (NYU the paper's six, KITTI its seven).
METRIC_NAMES = ("a1", "a2", "a3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10")
REPORTED_METRICS = {"nyu": ("a1", "a2", "a3", "abs_rel", "rmse", "log10"),
                    "kitti": ("a1", "a2", "a3", "abs_rel", "sq_rel", "rmse", "rmse_log")}


def valid_mask(gt, mask=None, min_depth_m=0.0):
    """Pixels that carry ground truth: finite, above min_depth_m (and above zero), and inside mask."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(gt) & (gt > max(min_depth_m, 0.0))
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    return valid


ROOTED_METRICS = ("rmse", "rmse_log")  # means of squares, square-rooted after averaging


def pixel_errors(gt, pred):
    """{metric: per-pixel term} whose mean over pixels is the metric (ROOTED_METRICS: its square).

    NumPy arrays or tensors of any backend, so evaluation and the training monitor share one definition.
    """
    xp = _array_module(gt)
    ratio = xp.maximum(gt / pred, pred / gt)
    one, zero = xp.ones_like(gt), xp.zeros_like(gt)
    difference, log_difference = gt - pred, xp.log(gt) - xp.log(pred)
    return {"a1": xp.where(ratio < 1.25, one, zero), "a2": xp.where(ratio < 1.25**2, one, zero),
            "a3": xp.where(ratio < 1.25**3, one, zero), "abs_rel": xp.abs(difference) / gt,
            "sq_rel": difference**2 / gt, "rmse": difference**2, "rmse_log": log_difference**2,
            "log10": xp.abs(log_difference) / np.log(10.0)}


def _errors_on_pixels(gt, pred):
    """Every metric of METRIC_NAMES over 1-D arrays of valid pixels (rmse and sq_rel in metres)."""
    if gt.size == 0:
        raise ValueError("no valid ground-truth pixels to evaluate")
    if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
        raise ValueError("predictions must be positive and finite wherever ground truth is valid")
    means = {name: float(np.mean(term)) for name, term in pixel_errors(gt, pred).items()}
    return {name: float(np.sqrt(value)) if name in ROOTED_METRICS else value for name, value in means.items()}


def compute_errors(gt, pred, mask=None, min_depth_m=0.0):
    """The metrics pooled over every valid pixel of every image (the reference evaluation).

    gt, pred: metric depths of the same shape, (H, W) or (N, H, W). Pixels whose ground truth is zero,
    negative, not finite, at or below min_depth_m, or outside mask are ignored.
    """
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    valid = valid_mask(gt, mask, min_depth_m)
    return _errors_on_pixels(gt[valid], pred[valid])


def per_image_errors(gt, pred, mask=None, min_depth_m=0.0):
    """A list with the metrics of each image of (N, H, W) ground truth and prediction."""
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    valid = valid_mask(gt, mask, min_depth_m)
    return [_errors_on_pixels(g[v], p[v]) for g, p, v in zip(gt, pred, valid)]


# ---------------------------------------------------------------------------------------------------------
# Images in and out
# ---------------------------------------------------------------------------------------------------------


def load_image(path):
    """RGB float32 image in [0, 1], shape (H, W, 3), from RGB, RGBA, grayscale, 8- or 16-bit files."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return pil_rgb(im).astype(np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: cannot read image ({err.__class__.__name__}: {err})") from None


def pil_rgb(im):
    """uint8 RGB (H, W, 3) from a PIL image of any mode: alpha dropped, gray replicated, 16 bits rescaled,
    float images stretched to their own range. The one decoder of pictures (files and dataset members)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.clip(np.asarray(im, dtype=np.float32) / 257.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if im.mode == "F":
        gray = np.asarray(im, dtype=np.float32)
        gray = (gray - gray.min()) / max(float(np.ptp(gray)), 1e-12)
        return np.repeat((gray * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB"))


def colorize(depth, vmin=None, vmax=None, cmap="plasma"):
    """An RGB uint8 picture of a depth map through a matplotlib colormap; NaN and inf show black.

    vmin/vmax default to the map's finite min and max.
    """
    import matplotlib

    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    finite = np.isfinite(depth)
    lo = float(np.min(depth[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(depth[finite])) if vmax is None and finite.any() else (vmax or 1.0)
    scaled = (np.where(finite, depth, lo) - lo) / max(hi - lo, 1e-12)
    rgb = matplotlib.colormaps[cmap](np.clip(scaled, 0.0, 1.0))[..., :3]
    rgb[~finite] = 0.0
    return (rgb * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Choosing and loading a model for the command-line scripts
# ---------------------------------------------------------------------------------------------------------

AUTHORS_MODEL = "nyu.h5"  # the authors' released NYU model, looked for in the current folder
# --precision values and the Keras policy each sets; mixed policies compute in 16 bits, keep float32 weights.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def find_default_model(runs_dir="runs"):
    """The model to use when none is named: nyu.h5 here, else the newest *.keras under runs_dir.

    Files inside checkpoint folders are skipped: a run's final.keras / best.keras are the ones to use.
    """
    if Path(AUTHORS_MODEL).is_file():
        return Path(AUTHORS_MODEL)
    runs = Path(runs_dir)
    candidates = [p for p in runs.rglob("*.keras") if "checkpoints" not in p.relative_to(runs).parts[:-1]]
    if candidates:
        return max(candidates, key=lambda p: p.stat().st_mtime)
    raise InputError(f"no model given, no {AUTHORS_MODEL} here and no *.keras under {runs}/: pass --model, "
                     "train one (python train.py --data synthetic --smoke), or download nyu.h5 from the "
                     "authors (github.com/ialhashim/DenseDepth)")


def git_commit():
    """The commit of this checkout, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def quiet_tensorflow():
    """Import TensorFlow with its C++ start-up lines kept off the console.

    TensorFlow 2.21 logs "oneDNN custom operations are on" and "Could not find cuda drivers" through absl
    before absl's logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot stop them and no other switch
    reaches them: the import runs with file descriptor 2 pointed at /dev/null. Errors are Python
    exceptions and still show. Without TensorFlow (another Keras backend) this does nothing.
    """
    import importlib.util
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def set_precision(precision):
    """Set Keras' global dtype policy; models built afterwards compute at that precision."""
    import keras

    if precision not in PRECISION_POLICIES:
        raise InputError(f"unknown precision '{precision}': choose one of {', '.join(PRECISION_POLICIES)}")
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])


def resize_depth(depth, height, width):
    """Bilinear resize of (H, W) or (N, H, W) depth maps to height x width; 2x is exactly scale_up."""
    from skimage.transform import resize

    depth = np.asarray(depth, dtype=np.float32)
    shape = depth.shape[:-2] + (height, width)
    resized = resize(depth, shape, order=1, mode="reflect", preserve_range=True, anti_aliasing=False)
    return resized.astype(np.float32)


def scaled_intrinsics(height, width):
    """Pinhole intrinsics {fx, fy, cx, cy} in pixels: NYU's Kinect scaled from 640x480 to width x height."""
    k = NYU_INTRINSICS
    sx, sy = width / NYU_IMAGE_HW[1], height / NYU_IMAGE_HW[0]
    return {"fx": k["fx"] * sx, "fy": k["fy"] * sy, "cx": k["cx"] * sx, "cy": k["cy"] * sy}


def back_project(depth, intrinsics):
    """Camera-frame points (H, W, 3) in metres, x right, y down, z forward, from z-depth (H, W).

    Pixel (row v, column u) is the ray through its centre (u + 0.5, v + 0.5), as in synthetic.py.
    """
    depth = np.asarray(depth, dtype=np.float64)
    height, width = depth.shape
    x = (np.arange(width) + 0.5 - intrinsics["cx"]) / intrinsics["fx"]
    y = (np.arange(height) + 0.5 - intrinsics["cy"]) / intrinsics["fy"]
    rays = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.ones((1, 1))), axis=-1)
    return depth[..., None] * rays


def save_depth_montage(items, path):
    """A figure of (title, image, depth in metres) rows: each image beside its depth (plasma, colour bar in m)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 2, figsize=(9, 3.2 * len(items)), squeeze=False)
    for (name, image, depth_m), (left, right) in zip(items, axes):
        left.imshow(image)
        left.set_title(name, fontsize=8)
        shown = right.imshow(depth_m, cmap="plasma")
        fig.colorbar(shown, ax=right, fraction=0.046, pad=0.02, label="depth (m)")
        for ax in (left, right):
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# Output places: checked before the long work, written atomically
# ---------------------------------------------------------------------------------------------------------

MIN_FREE_BYTES = 16 * 2**20  # what any output place must have free, whatever its estimate


def check_writable(path, need_bytes=0, folder=False):
    """InputError unless path (a file to create, or a folder with folder=True) can be written, with room.

    Checked before the long work starts, so that nothing fails after minutes of compute. A missing folder
    is not created: the nearest existing one must accept a file (a probe is written and removed; as root,
    permissions do not stop writes but a read-only mount does) and have need_bytes free (at least
    MIN_FREE_BYTES).
    """
    import shutil
    import tempfile

    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file name")
    existing = path if folder else path.parent
    existing = existing.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{path}: cannot be created, {existing} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".densedepth-write-test-") as probe:
            probe.write(b"0")
            probe.flush()
    except OSError as err:
        raise InputError(f"{path}: cannot write in {existing} ({err.strerror or err})") from None
    need = max(int(need_bytes), MIN_FREE_BYTES)
    free = shutil.disk_usage(existing).free
    if free < need:
        raise InputError(f"{path}: only {free / 2**20:.1f} MiB free in {existing}, need about "
                         f"{need / 2**20:.0f} MiB")
    return path


def atomic_path(path):
    """The temporary name a file is written under before os.replace moves it to path (same folder)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def write_json(path, content):
    """Write content as JSON to path atomically (a reader never sees half a file), creating its folder.

    OSError (full or read-only place) leaves any previous file intact and no partial one behind.
    """
    import json
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = atomic_path(path)
    try:
        partial.write_text(json.dumps(content, indent=2, default=str) + "\n")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
