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


def image_values(data, label, what="image"):
    """The raw values of an encoded one-channel image (a depth map, a mask: integers kept as stored, not
    rescaled), 2-D; an RGB-saved one gives its first channel (all carry the same value)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            raw = np.asarray(im)
    except picture_errors() as err:
        raise InputError(f"{label}: cannot decode {what} ({type(err).__name__}: {err})") from err
    return raw[..., 0] if raw.ndim == 3 else raw


def read_file(path):
    """A file's bytes; InputError naming it where it is missing or unreadable."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as err:
        raise InputError(f"{path}: missing") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from err


def read_rgb(path):
    """uint8 RGB (H, W, 3) of a picture file."""
    return decode_rgb(read_file(path), str(path))


def check_same_size(path, shape, rgb):
    """Refuse a depth map or mask (at path, of shape) whose size is not its picture's."""
    if tuple(shape[:2]) != rgb.shape[:2]:
        raise InputError(f"{path}: {shape[1]}x{shape[0]}, but its picture is {rgb.shape[1]}x{rgb.shape[0]}")


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
