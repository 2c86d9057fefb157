"""What a dataset is read from: Sample (one RGB-D pair and where it was listed), files inside a zip (read in
place) or a folder, the Eigen arrays memory-mapped inside their zip, and decoding RGB and depth images.

data.py builds its datasets on these; kitti.py its raw KITTI frames.
"""
import io
import struct
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils import InputError, picture_errors, pil_rgb


@dataclass(frozen=True)
class Sample:
    """One RGB-D pair: file names inside the dataset (or array index), and where it was listed."""

    rgb: str
    depth: str
    where: str  # "data/nyu2_train.csv row 12", for messages
    index: int = -1
    focal: float | None = None  # the focal length listed with the pair, in pixels of its picture's width
    extra: tuple = ()  # a reader's own further files for the sample (mask, camera, pose), in its order

    @property
    def name(self):
        return self.rgb

    @property
    def scene(self):
        return str(Path(self.rgb).parent)


class ZipFiles:
    """Members of a zip archive, read in place without extracting, through one handle shared by all threads."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                self.names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError) as err:
            raise InputError(f"{self.path}: not a readable zip archive ({err})") from err
        self._archive, self._lock = None, threading.Lock()

    def exists(self, name):
        return name in self.names

    def read(self, name):
        # One handle opened once: tf.data runs numpy_function on threads whose Python state does not last,
        # so a per-thread handle was reopened on every read, parsing NYU's 100k-member directory each time.
        try:
            with self._lock:
                if self._archive is None:
                    self._archive = zipfile.ZipFile(self.path)
                return self._archive.read(name)
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as err:
            raise InputError(f"{self.path}:{name}: cannot read from the archive ({err})") from err

    def label(self, name):
        return f"{self.path}:{name}"


class FolderFiles:
    """Files under a folder, named by paths relative to it."""

    def __init__(self, root):
        self.path = Path(root)

    def exists(self, name):
        return (self.path / name).is_file()

    def read(self, name):
        try:
            return (self.path / name).read_bytes()
        except OSError as err:
            raise InputError(f"{self.path / name}: cannot read ({err.strerror})") from err

    def label(self, name):
        return str(self.path / name)


def decode_rgb(data, label):
    """uint8 RGB (H, W, 3) from encoded image bytes (JPEG, PNG, any mode)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return pil_rgb(im)
    except picture_errors() as err:
        raise InputError(f"{label}: cannot decode image ({type(err).__name__}: {err})") from err


def decode_depth(data, label, full_scale_8bit_m, units_per_m_16bit):
    """float32 depth in metres (H, W) from a depth PNG: 8-bit (255 = full scale) or 16-bit (units per m)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            raw = np.asarray(im)
    except picture_errors() as err:
        raise InputError(f"{label}: cannot decode depth image ({type(err).__name__}: {err})") from err
    if raw.ndim == 3:  # an RGB-saved depth map: all channels carry the same value
        raw = raw[..., 0]
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) * np.float32(full_scale_8bit_m / 255.0)
    if raw.dtype.kind in "ui":
        return raw.astype(np.float32) / np.float32(units_per_m_16bit)
    return raw.astype(np.float32)  # float images already hold metres


def load_npy(files, name):
    """A .npy array from a folder (memory-mapped) or a zip: memory-mapped in place when stored uncompressed."""
    if isinstance(files, FolderFiles):
        return np.load(files.path / name, mmap_mode="r")
    with zipfile.ZipFile(files.path) as archive:
        info = archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(name) as f:  # compressed: no way around reading it whole
                return np.load(f)
    with open(files.path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    return np.memmap(files.path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
