"""Plumbing every module shares: the one-line InputError, size flags, reading pictures, precision names,
git, TensorFlow's quiet start, and writing files safely. Nothing here knows about depth, and nothing
needs TensorFlow at import time.
"""
import contextlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

VERSION = "0.2.0"  # this project's version, saved in every model's contract

# ---------------------------------------------------------------------------------------------------------
# Errors and flags
# ---------------------------------------------------------------------------------------------------------


class InputError(Exception):
    """A user mistake (bad file, path, flag): scripts print it as one line, without a traceback."""


def optional_module(name, requirements, purpose):
    """The module `name`, or an InputError saying which requirements file brings it and what it is for."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise InputError(f"{purpose} needs the {name} package: pip install -r {requirements}") from err


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
        raise argparse.ArgumentTypeError(str(err)) from err


# ---------------------------------------------------------------------------------------------------------
# Pictures in
# ---------------------------------------------------------------------------------------------------------


def picture_errors():
    """What Pillow raises for a file that is not a readable picture (truncated, foreign, too large)."""
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def load_image(path):
    """RGB float32 image in [0, 1], shape (H, W, 3), from RGB, RGBA, grayscale, 8- or 16-bit files, turned
    upright by its EXIF Orientation."""
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            # Upright as a viewer shows it: a phone's portrait photo is stored sideways with an Orientation tag.
            return pil_rgb(ImageOps.exif_transpose(im)).astype(np.float32) / 255.0
    except picture_errors() as err:
        raise InputError(f"{path}: cannot read image ({err.__class__.__name__}: {err})") from err


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


# ---------------------------------------------------------------------------------------------------------
# Precision, git, TensorFlow
# ---------------------------------------------------------------------------------------------------------

# --precision values and the Keras policy each sets; mixed policies compute in 16 bits, keep float32 weights.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def cpu_cores():
    """The CPU cores this process may run on (its affinity mask: a container's share, not the host's)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def runtime_threads(threads=None):
    """The threads a runtime is given: threads if set, else every core this process may use.

    Runtimes differ in what they do with no count: LiteRT's Python interpreter runs on one thread, ONNX
    Runtime and OpenVINO on the physical cores they detect. Every engine here is told the count instead.
    """
    return int(threads) if threads else cpu_cores()


def git_commit():
    """The commit of this checkout, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# What TensorFlow prints on every start of a machine without a GPU: said once here instead of on each run.
CPU_ONLY_NOTICES = ("cuda drivers", "cuInit", "CUDA error", "oneDNN custom operations", "absl::InitializeLog",
                    "Unable to register cu", "TF-TRT Warning", "computation placer already registered",
                    "This TensorFlow binary is optimized")


def quiet_tensorflow():
    """Import TensorFlow (where Keras runs on it) without its start-up notices, hiding no diagnostic.

    TensorFlow 2.21 logs "oneDNN custom operations are on" and "Could not find cuda drivers" through absl
    before absl's logging is initialised, where TF_CPP_MIN_LOG_LEVEL cannot reach them: the import runs with
    file descriptor 2 sent to a temporary file, and afterwards every line is shown again except the notices
    a machine without a GPU always gets (CPU_ONLY_NOTICES). On a machine with an NVIDIA device where
    TensorFlow found no GPU, every line is shown: they say why it fell back to the CPU. Later C++ logging
    shows errors only (TF_CPP_MIN_LOG_LEVEL 2, unless set). This is the one place that sets it.
    """
    import importlib.util
    import sys
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if ("tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None
            or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")  # where CUDA is first tried, and says why it failed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode("utf-8", "replace").splitlines()
    fell_back = Path("/dev/nvidia0").exists() and not gpus
    shown = [line for line in lines if fell_back or not any(notice in line for notice in CPU_ONLY_NOTICES)]
    if shown:
        print("\n".join(shown), file=sys.stderr, flush=True)


def batches(items, size, key=None):
    """Lists of up to size consecutive items, drawn lazily (one list alive at a time, each handed over as
    soon as it is full); with key, a new list also where key(item) changes (a batch the network takes at
    once holds pictures of one size)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    batch = []
    for item in items:
        if batch and key is not None and key(item) != key(batch[0]):
            yield batch
            batch = []
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch  # the last, possibly short: every item is used


class HeavyModule:
    """A module imported on its first attribute read: the one way heavy libraries load lazily here.

    Keras (with TensorFlow) takes seconds to import. model.py and loss.py hold facts that TensorFlow-free
    code needs (settings.py, every script's --help), so they reach Keras through this: TensorFlow is
    imported, through quiet_tensorflow, only when something is built or computed.
    """

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        module = sys.modules.get(self._name)
        if module is None:
            quiet_tensorflow()
            module = importlib.import_module(self._name)
        return getattr(module, attr)


def set_precision(precision):
    """Set Keras' global dtype policy; models built afterwards compute at that precision."""
    import keras

    if precision not in PRECISION_POLICIES:
        raise InputError(f"unknown precision '{precision}': choose one of {', '.join(PRECISION_POLICIES)}")
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])


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
        raise InputError(f"{path}: cannot write in {existing} ({err.strerror or err})") from err
    need = max(int(need_bytes), MIN_FREE_BYTES)
    free = shutil.disk_usage(existing).free
    if free < need:
        raise InputError(f"{path}: only {free / 2**20:.1f} MiB free in {existing}, need about "
                         f"{need / 2**20:.0f} MiB")
    return path


@contextlib.contextmanager
def atomic_write(path):
    """The temporary path to write a file under (same folder, same suffix: Keras and ZIP writers check it),
    moved to path once the block ends without error. A reader never sees half a file; a failure (full disk,
    an exception, Ctrl-C) leaves any previous file intact and no partial one behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path, content):
    """Write content as JSON to path atomically (a reader never sees half a file), creating its folder.

    OSError (full or read-only place) leaves any previous file intact and no partial one behind.
    """
    import json

    with atomic_write(path) as partial:
        partial.write_text(json.dumps(content, indent=2, default=str) + "\n")
    return Path(path)
