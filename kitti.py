"""KITTI's raw data with LiDAR ground truth: the drives' calibration, velodyne scans projected into the
left colour camera, telling Eigen's raw split files from annotated ones, the gt_depths.npz arrays other
evaluations publish, and KittiRaw, the dataset of a raw split file ("left.png [right.png]" lines). The
paper's KITTI row is on this ground truth (Eigen's 697 test frames, capped at 80 m). No TensorFlow.
"""
import pickle
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from datafiles import Sample, decode_rgb
from datasets import KITTI_GT_NPZ, KITTI_RAW, KITTI_SPEC, Reader, listed_camera, pair
from utils import InputError

# Which ground truth KittiRaw reads (evaluate.py says it beside the results; data.py names the annotated one).


def is_raw_kitti_list(path):
    """Whether a split file lists raw frames ("left.png [right.png]", Eigen's eigen_test_files.txt) rather
    than image and annotated-depth pairs."""
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if fields:  # raw: "<date>/<drive>/image_02/data/<frame>.png [the image_03 one]"; BTS: "... proj_depth/..."
            return len(fields) == 1 or ("/data/" in fields[1] and "proj_depth" not in fields[1])
    return False


def read_calibration(path):
    """{key: float array} of a KITTI calibration text file ("KEY: v1 v2 ..."; non-numeric values skipped)."""
    values = {}
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read the calibration ({err.strerror or err})") from err
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()])
        except ValueError:
            continue  # calib_time and the like
    return values


def colour_focal(calibration_dir, camera=2):
    """The rectified colour camera's focal length in pixels (P_rect_02[0, 0] of calib_cam_to_cam.txt), or
    None where the drive's calibration is not there."""
    path = Path(calibration_dir) / "calib_cam_to_cam.txt"
    if not path.is_file():
        return None
    projection = read_calibration(path).get(f"P_rect_0{camera}")
    return float(projection[0]) if projection is not None and projection.size == 12 and projection[0] > 0 else None


def velodyne_depth(calibration_dir, scan_path, camera=2):
    """Depth in metres (H, W) of one velodyne scan projected into camera `camera` (2: left colour), 0
    where no point lands: the projection of Eigen's and Godard's evaluation code.

    Points behind the sensor are dropped; each point goes to the pixel round(u) - 1, round(v) - 1 of the
    rectified image; where several land on one pixel the nearest counts; depth is the camera-frame z.
    """
    cam = read_calibration(Path(calibration_dir) / "calib_cam_to_cam.txt")
    velo = read_calibration(Path(calibration_dir) / "calib_velo_to_cam.txt")
    try:
        width, height = (int(v) for v in cam[f"S_rect_0{camera}"])
        rectify = np.eye(4)
        rectify[:3, :3] = cam["R_rect_00"].reshape(3, 3)
        velo_to_cam = np.vstack([np.hstack([velo["R"].reshape(3, 3), velo["T"].reshape(3, 1)]), [0, 0, 0, 1]])
        projection = cam[f"P_rect_0{camera}"].reshape(3, 4) @ rectify @ velo_to_cam
    except (KeyError, ValueError) as err:
        raise InputError(f"{calibration_dir}: incomplete KITTI calibration ({type(err).__name__}: {err})") from err
    try:
        points = np.fromfile(scan_path, dtype=np.float32).reshape(-1, 4)
    except (OSError, ValueError) as err:
        raise InputError(f"{scan_path}: not a velodyne scan of float32 x, y, z, reflectance ({err})") from err
    points = points[points[:, 0] >= 0].astype(np.float64)
    points[:, 3] = 1.0
    image = points @ projection.T
    image[:, :2] /= image[:, 2:3]
    cols, rows = np.round(image[:, 0]).astype(int) - 1, np.round(image[:, 1]).astype(int) - 1
    inside = (cols >= 0) & (rows >= 0) & (cols < width) & (rows < height) & (image[:, 2] > 0)
    depth = np.zeros((height, width), np.float32)
    order = np.argsort(-image[inside, 2])  # far first, so the nearest point on a pixel is written last
    depth[rows[inside][order], cols[inside][order]] = image[inside, 2][order]
    return depth


def _numpy_reconstruct():
    """numpy's array-unpickling helper, wherever this NumPy keeps it (numpy._core since 2.0)."""
    core = getattr(np, "_core", None)
    multiarray = getattr(core, "multiarray", None) if core is not None else None
    if multiarray is None:
        from numpy.core import multiarray
    return multiarray._reconstruct


# The only globals an object array of NumPy arrays pickles (np.save's protocol 3, NumPy 1 or 2 writing it).
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _RefusedGlobal(Exception):
    """A pickle naming a global outside _ARRAY_GLOBALS (its "module.name")."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else: any other global (os.system, builtins.eval, ...) is refused
    before it is imported, so a crafted gt_depths.npz runs no code."""

    def find_class(self, module, name):
        resolve = _ARRAY_GLOBALS.get((module, name))
        if resolve is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return resolve()


def _read_npz_member(path, key):
    """Array `key` of the .npz at `path`; an object array (maps of several sizes) is unpickled with
    _ArrayUnpickler, never with np.load(allow_pickle=True)."""
    with zipfile.ZipFile(path) as archive:
        member = f"{key}.npy"
        if member not in archive.namelist():
            raise KeyError(f"{key} is not a file in the archive")
        with archive.open(member) as stream:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                dtype = npy_format.read_array_header_1_0(stream)[2]  # (shape, fortran_order, dtype)
            elif version == (2, 0):
                dtype = npy_format.read_array_header_2_0(stream)[2]
            else:
                dtype = None  # 3.0: unicode field names, never an object array; np.load reads it below
            if dtype is not None and dtype.hasobject:
                if dtype != np.dtype(object):
                    raise ValueError(f"a structured array with object fields ({dtype}), not depth maps")
                array = _ArrayUnpickler(stream, encoding="latin1").load()
                if not isinstance(array, np.ndarray):
                    raise ValueError(f"the pickle holds a {type(array).__name__}, not an array")
                return array
    with np.load(path, allow_pickle=False) as archive:
        return archive[key]


def gt_depth_maps(path, count):
    """The depth maps of a gt_depths.npz (an object array under "data", as the evaluation scripts export).

    The maps have several sizes, so the array is pickled: it is read with an unpickler that builds NumPy
    arrays only, and a file whose pickle names anything else is refused (InputError) without running it.
    """
    try:
        maps = list(_read_npz_member(path, "data"))
    except _RefusedGlobal as err:
        raise InputError(f"{path}: refuses to load: its pickle calls {err}") from None
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError, AttributeError,
            zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise InputError(f"{path}: not a gt_depths.npz with a 'data' array ({type(err).__name__}: {err})") from err
    if len(maps) != count:
        raise InputError(f"{path}: {len(maps)} depth maps for the {count} frames of the split file")
    return maps


class KittiRaw(Reader):
    """Frames of the raw KITTI data listed by a split file, with LiDAR ground truth: each scan projected
    (velodyne_depth), or the entries of a gt_depths.npz in the split file's order."""

    spec = KITTI_SPEC

    def __init__(self, split_file, gt_depths=None):
        self.name, root = str(split_file), Path(split_file).parent
        self._ground_truth = KITTI_GT_NPZ if gt_depths else KITTI_RAW
        self._samples = []
        for number, line in enumerate(Path(split_file).read_text().splitlines(), start=1):
            fields = line.split()
            if fields:
                self._samples.append(self._sample(root, fields[0], f"{Path(split_file).name} line {number}",
                                                  len(self._samples), gt_depths is None))
        if not self._samples:
            raise InputError(f"{split_file}: no frames listed")
        self._gt = gt_depth_maps(gt_depths, len(self._samples)) if gt_depths else None

    @staticmethod
    def _sample(root, left, where, index, needs_scan):
        """The frame's picture (.png or the .jpg of converted copies) and its velodyne scan."""
        rgb = next((root / p for p in (left, str(Path(left).with_suffix(".png")), str(Path(left).with_suffix(".jpg")))
                    if (root / p).is_file()), None)
        if rgb is None:
            raise InputError(f"{where}: {root / left} not found")
        drive = rgb.parent.parent.parent  # <date>/<drive>/image_02/data/<frame>.png
        scan = drive / "velodyne_points" / "data" / f"{rgb.stem}.bin"
        if needs_scan and not scan.is_file():
            raise InputError(f"{where}: no velodyne scan {scan} (raw KITTI ground truth is the frame's scan)")
        # The drive's calibration gives each frame's focal length: the days of the Eigen split differ.
        return Sample(str(rgb), str(scan), where, index, focal=colour_focal(drive.parent))

    def samples(self, split):
        if split not in ("test", "val"):
            raise InputError(f"{self.name}: a raw KITTI split file is for evaluation only, no {split} split")
        return self._samples

    def read(self, sample):
        rgb = decode_rgb(Path(sample.rgb).read_bytes(), sample.rgb)
        if self._gt is not None:
            depth = np.asarray(self._gt[sample.index], np.float32)
            if depth.shape != rgb.shape[:2]:
                raise InputError(f"{sample.where}: gt_depths.npz entry {sample.index} is {depth.shape[1]}x"
                                 f"{depth.shape[0]}, the frame {rgb.shape[1]}x{rgb.shape[0]}: another split order?")
        else:
            depth = velodyne_depth(Path(sample.depth).parents[3], sample.depth)
        return pair(rgb, depth, camera=listed_camera(self.spec.camera, sample, rgb.shape[1]))

    @property
    def ground_truth(self):
        return self._ground_truth
