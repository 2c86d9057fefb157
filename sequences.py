"""Readers of three benchmarks made of video sequences with camera poses, each from its distributor's own
layout: ScanNet (the extracted .sens layout), MPI Sintel's depth training set and TUM RGB-D. They serve
zero-shot evaluation, fine-tuning and video depth evaluation.

    from sequences import READERS
    reader = READERS["tum"]("data/rgbd_dataset_freiburg1_desk")
    sample = reader.samples("test")[0]
    rgb, depth, valid, camera = reader.read(sample)     # datasets.Pair; camera from the dataset's own files
    camera_to_world = reader.pose(sample)               # 4x4 float64
    frames = reader.sequences()                         # {sequence name: [samples in frame order]}

Each reader has the datasets.py interface (spec, name, skipped, samples(split), read(sample)) plus pose()
and sequences(). None of these benchmarks has a training split of its own: every split is every sample.
Their specs are registered with datasets.py on import. Nothing here imports TensorFlow.

Beside them, synthetic.py's clips (exact depth and poses, rendered into the cache on first use):
open_synthetic_video("synthetic-video:6:32") is a reader of the same kind.
"""
import math
import re
from pathlib import Path

import numpy as np

import datasets
from camera import NYU_CAMERA, Camera
from datafiles import Sample, check_same_size, image_values, read_file, read_rgb
from depth import NYU, DepthRange
from utils import InputError

SPLITS = ("train", "val", "test")
METRICS = ("a1", "a2", "a3", "abs_rel", "rmse", "log10")

# ScanNet's default depth intrinsics (640x480), what most scenes' intrinsic_depth.txt holds.
SCANNET_CAMERA = Camera.from_pixels(577.870605, 577.870605, 319.5, 239.5, 480, 640, "ScanNet's depth camera")
# Sintel's cameras change from frame to frame (each is read from its .cam file); nominal: alley_1's 1120 px
# at 1024x436 with a centred principal point.
SINTEL_CAMERA = Camera.from_pixels(1120.0, 1120.0, 511.5, 217.5, 436, 1024, "Sintel (nominal; per frame from .cam)")
TUM_HW = (480, 640)  # the size TUM's intrinsics are given for
TUM_ROS_DEFAULT = (525.0, 525.0, 319.5, 239.5)
TUM_INTRINSICS = {"freiburg1": (517.3, 516.5, 318.6, 255.3), "freiburg2": (520.9, 521.0, 325.1, 249.7),
                  "freiburg3": (535.4, 539.2, 320.1, 247.6)}
TUM_CAMERA = Camera.from_pixels(*TUM_ROS_DEFAULT, *TUM_HW, "TUM RGB-D's ROS default camera")

SCANNET_SPEC = datasets.register(datasets.DatasetSpec(
    name="scannet", title="ScanNet", depth_range=DepthRange(min_m=0.1, max_m=10.0), eval_cap_m=10.0,
    train_hw=(480, 640), camera=SCANNET_CAMERA, sparse=True, encoding=datasets.DepthEncoding(units_per_m=1000.0),
    crops={}, default_crop="none", reported=METRICS, published=(),
    layout="sceneXXXX_XX/{color/N.jpg, depth/N.png (mm), intrinsic/intrinsic_depth.txt, pose/N.txt} "
           "(extracted .sens), optionally scannet_test_frames.txt listing frames",
    source="Dai et al. 2017, ScanNet (www.scan-net.org)"))
# Sintel's sky reaches hundreds of metres and published protocols cap it differently (Depth Anything, Depth
# Pro and the video depth papers each choose their own); 80 m keeps the sky out as KITTI's cap does.
SINTEL_SPEC = datasets.register(datasets.DatasetSpec(
    name="sintel", title="MPI Sintel (depth training set)", depth_range=DepthRange(min_m=0.1, max_m=80.0),
    eval_cap_m=80.0, train_hw=(416, 1024), camera=SINTEL_CAMERA, sparse=True, crops={}, default_crop="none",
    reported=METRICS, published=(),
    layout="training/{final,clean}/SEQ/frame_XXXX.png, training/depth/SEQ/frame_XXXX.dpt, "
           "training/camdata_left/SEQ/frame_XXXX.cam",
    source="Butler et al. 2012, MPI Sintel (sintel.is.tue.mpg.de)"))
TUM_SPEC = datasets.register(datasets.DatasetSpec(
    name="tum", title="TUM RGB-D", depth_range=DepthRange(min_m=0.1, max_m=10.0), eval_cap_m=10.0,
    train_hw=(480, 640), camera=TUM_CAMERA, sparse=True, encoding=datasets.DepthEncoding(units_per_m=5000.0),
    crops={}, default_crop="none", reported=METRICS, published=(),
    layout="rgbd_dataset_*/{rgb.txt, depth.txt, groundtruth.txt, rgb/*.png, depth/*.png (value / 5000 m)}",
    source="Sturm et al. 2012, TUM RGB-D benchmark (cvg.cit.tum.de)"))
# Clips of synthetic.py's rooms: exact depth and poses, rendered on first use (synthetic.synthetic_video_path).
SYNTHETIC_VIDEO_SPEC = datasets.register(datasets.DatasetSpec(
    name="synthetic-video", title="synthetic clips", depth_range=NYU, eval_cap_m=None, train_hw=(480, 640),
    camera=NYU_CAMERA, sparse=False, crops={}, default_crop="none", reported=METRICS, published=(),
    camera_scale=False,
    layout="clip_XX/{rgb/NNNNNN.png, depth/NNNNNN.png (mm), poses.txt (camera-to-world, 16 numbers a line), "
           "camera.txt (fx fy cx cy height width)}, rendered on first use into the cache folder",
    source="synthetic.py (render_clip)"))


# ---------------------------------------------------------------------------------------------------------
# What the three readers share
# ---------------------------------------------------------------------------------------------------------


class SequenceReader(datasets.Reader):
    """Samples grouped into sequences: spec, name, skipped, samples(split), sequences(). The readers below
    add read(sample) and pose(sample)."""

    def __init__(self, spec, name, frames, skipped):
        """frames: [(sequence name, Sample without index)] in sequence then frame order."""
        self.spec, self.name, self.skipped = spec, str(name), list(skipped)
        self._samples, self._sequence_of = [], []
        for sequence, sample in frames:
            self._samples.append(Sample(sample.rgb, sample.depth, sample.where, len(self._samples),
                                        sample.focal, sample.extra))
            self._sequence_of.append(sequence)

    def samples(self, split):
        if split not in SPLITS:
            raise InputError(f"{self.spec.title}: no split {split!r} (choose one of {', '.join(SPLITS)})")
        if not self._samples:
            raise InputError(f"{self.spec.title} at {self.name}: no frames found")
        return list(self._samples)

    def sequences(self):
        """{sequence name: [samples in frame order]}."""
        grouped = {}
        for sequence, sample in zip(self._sequence_of, self._samples):
            grouped.setdefault(sequence, []).append(sample)
        return grouped


def missing_files(sample, extra_needed):
    """The sample's picture, depth and first extra_needed further files that do not exist."""
    return [path for path in (sample.rgb, sample.depth, *sample.extra[:extra_needed]) if not Path(path).is_file()]


def keep_present(frames, skip_bad, extra_needed=0):
    """(frames whose files exist, lines for those left out); without skip_bad a missing file is an error.
    extra_needed: how many of Sample.extra read() needs (a pose file is only needed by pose())."""
    kept, skipped = [], []
    for sequence, sample in frames:
        missing = missing_files(sample, extra_needed)
        if not missing:
            kept.append((sequence, sample))
        elif skip_bad:
            skipped.append(f"{sample.where}: missing {missing[0]}")
        else:
            raise InputError(f"{sample.where}: missing {missing[0]}")
    return kept, skipped


def read_png_values(path):
    """The raw values of a 16-bit depth PNG file (H, W)."""
    return image_values(read_file(path), str(path), "depth image")


def numeric_stem(path):
    """The frame number of N.jpg or frame_XXXX.png (None: not a numbered frame)."""
    digits = re.search(r"(\d+)$", Path(path).stem)
    return int(digits.group(1)) if digits else None


def numbered_files(folder, suffix):
    """{frame number: path} of the numbered files with this suffix in a folder."""
    files = {}
    for path in Path(folder).glob(f"*{suffix}"):
        number = numeric_stem(path)
        if number is not None:
            files[number] = path
    return files


def rigid_inverse(matrix):
    """The inverse of a 4x4 rigid transform [R|t]: [R^T | -R^T t]."""
    rotation, translation = matrix[:3, :3], matrix[:3, 3]
    inverse = np.eye(4)
    inverse[:3, :3] = rotation.T
    inverse[:3, 3] = -rotation.T @ translation
    return inverse


def load_matrix(path, shape):
    """A matrix of numbers from a text file, checked against its shape."""
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read a {shape[0]}x{shape[1]} matrix ({err})") from err
    if matrix.shape != shape:
        raise InputError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, found {matrix.shape[0]}x"
                         f"{matrix.shape[1] if matrix.ndim > 1 else 1}")
    return matrix


# ---------------------------------------------------------------------------------------------------------
# ScanNet: the extracted .sens layout
# ---------------------------------------------------------------------------------------------------------

SCANNET_FRAME_LIST = "scannet_test_frames.txt"


class ScanNet(SequenceReader):
    """ScanNet scenes as the .sens extractor writes them. The colour pictures (often 1296x968) are resized
    to the depth map's size (bilinear, Pillow), and the camera is intrinsic_depth.txt's at that size: depth
    is what is evaluated, so it is never resampled. Sample.extra: (intrinsic_depth.txt, pose/N.txt)."""

    def read(self, sample):
        from PIL import Image

        depth = self.spec.encoding.metres(read_png_values(sample.depth))
        rgb = read_rgb(sample.rgb)
        height, width = depth.shape
        if rgb.shape[:2] != (height, width):
            rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
        return datasets.pair(rgb, depth, None, scannet_camera(sample.extra[0], height, width))

    def pose(self, sample):
        """The 4x4 camera-to-world matrix of pose/N.txt; ScanNet writes -inf where tracking was lost."""
        path = sample.extra[1]
        if not Path(path).is_file():
            raise InputError(f"{sample.where}: missing pose file {path}")
        matrix = load_matrix(path, (4, 4))
        if not np.all(np.isfinite(matrix)):
            raise InputError(f"{path}: pose unknown (ScanNet marks a lost track with -inf)")
        return matrix


def scannet_camera(intrinsic_path, height, width):
    """The camera of intrinsic_depth.txt (4x4) for the height x width depth map."""
    matrix = load_matrix(intrinsic_path, (4, 4))
    return Camera.from_pixels(matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2], height, width,
                              source=f"ScanNet {intrinsic_path}")


def is_scannet_scene(path):
    return (Path(path) / "color").is_dir() and (Path(path) / "depth").is_dir()


def scannet_frame(scene_dir, number):
    """(scene name, Sample) of frame N of a scene folder."""
    scene_dir = Path(scene_dir)
    extra = (str(scene_dir / "intrinsic" / "intrinsic_depth.txt"), str(scene_dir / "pose" / f"{number}.txt"))
    sample = Sample(str(scene_dir / "color" / f"{number}.jpg"), str(scene_dir / "depth" / f"{number}.png"),
                    f"{scene_dir.name} frame {number}", extra=extra)
    return scene_dir.name, sample


def scannet_scene_frames(scene_dir):
    """Every frame of a scene folder with a colour picture, in frame order."""
    return [scannet_frame(scene_dir, number) for number in sorted(numbered_files(Path(scene_dir) / "color", ".jpg"))]


def scannet_listed_frames(list_path):
    """The frames a list names, one a line: "sceneXXXX_XX N" or "sceneXXXX_XX/color/N.jpg"."""
    root, frames = Path(list_path).parent, []
    for line_number, line in enumerate(Path(list_path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace("/", " ").split()
        number = numeric_stem(parts[-1]) if len(parts) in (2, 3) else None
        if number is None:
            raise InputError(f"{list_path} line {line_number}: expected 'sceneXXXX_XX N' or "
                             f"'sceneXXXX_XX/color/N.jpg', found {line!r}")
        frames.append(scannet_frame(root / parts[0], number))
    # sequences() wants frame order within each scene whatever the list's order.
    return sorted(frames, key=lambda frame: (frame[0], numeric_stem(frame[1].rgb)))


def scannet_frames(path):
    """The frames of a frame list, a folder holding one, one scene folder or a folder of scene folders."""
    path = Path(path)
    if path.is_file():
        return scannet_listed_frames(path)
    if (path / SCANNET_FRAME_LIST).is_file():
        return scannet_listed_frames(path / SCANNET_FRAME_LIST)
    if is_scannet_scene(path):
        return scannet_scene_frames(path)
    scenes = sorted(child for child in path.iterdir() if is_scannet_scene(child)) if path.is_dir() else []
    if not scenes:
        raise InputError(f"{path}: not ScanNet's extracted layout (no sceneXXXX_XX/color/ and depth/ folders, "
                         f"no {SCANNET_FRAME_LIST})")
    return [frame for scene in scenes for frame in scannet_scene_frames(scene)]


def open_scannet(path, skip_bad=False):
    frames, skipped = keep_present(scannet_frames(path), skip_bad, extra_needed=1)  # intrinsic_depth.txt
    return ScanNet(SCANNET_SPEC, path, frames, skipped)


# ---------------------------------------------------------------------------------------------------------
# MPI Sintel: the depth training set
# ---------------------------------------------------------------------------------------------------------

SINTEL_TAG = np.float32(202021.25)  # the first four bytes of every .dpt and .cam file
SINTEL_PASSES = ("final", "clean")


class Sintel(SequenceReader):
    """Sintel's rendered sequences with their exact depth. Sample.extra: (the .cam file,)."""

    def read(self, sample):
        rgb, depth = read_rgb(sample.rgb), read_dpt(sample.depth)
        check_same_size(sample.depth, depth.shape, rgb)
        intrinsics, _ = read_cam(sample.extra[0])
        height, width = depth.shape
        camera = Camera.from_pixels(intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2],
                                    height, width, source=f"Sintel {sample.extra[0]}")
        return datasets.pair(rgb, depth, None, camera)

    def pose(self, sample):
        """Camera-to-world: the inverse of the .cam file's world-to-camera extrinsics."""
        _, extrinsics = read_cam(sample.extra[0])
        world_to_camera = np.eye(4)
        world_to_camera[:3, :] = extrinsics
        return rigid_inverse(world_to_camera)


def sintel_tag_checked(data, path, size):
    """The bytes after a Sintel file's tag, checked to be `size` long."""
    if len(data) < 4:
        raise InputError(f"{path}: too short for a Sintel file ({len(data)} bytes)")
    tag = np.frombuffer(data[:4], dtype="<f4")[0]
    if tag != SINTEL_TAG:
        raise InputError(f"{path}: not a Sintel {Path(path).suffix} file: tag {float(tag)} "
                         f"(expected {float(SINTEL_TAG)})")
    if size is not None and len(data) - 4 != size:
        raise InputError(f"{path}: expected {size + 4} bytes, found {len(data)}")
    return data[4:]


def read_dpt(path):
    """float32 depth (H, W) in metres of a .dpt file: tag, int32 width, int32 height, then the depths."""
    data = read_file(path)
    header = sintel_tag_checked(data[:12], path, None)
    if len(header) < 8:
        raise InputError(f"{path}: too short for a Sintel .dpt header ({len(data)} bytes)")
    width, height = (int(value) for value in np.frombuffer(header[:8], dtype="<i4"))
    if width <= 0 or height <= 0 or len(data) != 12 + 4 * width * height:
        raise InputError(f"{path}: a {width}x{height} .dpt file should have {12 + 4 * max(width * height, 0)} "
                         f"bytes, found {len(data)}")
    return np.frombuffer(data[12:], dtype="<f4").reshape(height, width).astype(np.float32)


def read_cam(path):
    """(3x3 intrinsics, 3x4 world-to-camera extrinsics) of a .cam file: tag, then 9 and 12 float64."""
    values = np.frombuffer(sintel_tag_checked(read_file(path), path, 8 * 21), dtype="<f8")
    return values[:9].reshape(3, 3).copy(), values[9:].reshape(3, 4).copy()


def sintel_training_dir(path):
    """PATH/training (or PATH itself, where it is the training folder)."""
    path = Path(path)
    for candidate in (path / "training", path):
        if (candidate / "depth").is_dir() and any((candidate / name).is_dir() for name in SINTEL_PASSES):
            return candidate
    raise InputError(f"{path}: not Sintel's depth training layout (no training/depth/ beside training/final/ "
                     "or training/clean/)")


def sintel_frames(training, render_pass):
    """(sequence, Sample) of every frame of a pass, sequences by name, frames in order."""
    frames = []
    for sequence_dir in sorted(child for child in (training / render_pass).iterdir() if child.is_dir()):
        sequence = sequence_dir.name
        for number, picture in sorted(numbered_files(sequence_dir, ".png").items()):
            stem = picture.stem
            sample = Sample(str(picture), str(training / "depth" / sequence / f"{stem}.dpt"),
                            f"{sequence} frame {number}",
                            extra=(str(training / "camdata_left" / sequence / f"{stem}.cam"),))
            frames.append((sequence, sample))
    return frames


def open_sintel_pass(path, skip_bad=False, render_pass=None):
    """The final pass where it is there (else clean), or the pass named."""
    training = sintel_training_dir(path)
    if render_pass is None:
        render_pass = next(name for name in SINTEL_PASSES if (training / name).is_dir())
    if not (training / render_pass).is_dir():
        raise InputError(f"{path}: no Sintel {render_pass} pass ({training / render_pass} is missing)")
    if not (training / "camdata_left").is_dir():
        raise InputError(f"{path}: no Sintel cameras ({training / 'camdata_left'} is missing)")
    frames, skipped = keep_present(sintel_frames(training, render_pass), skip_bad, extra_needed=1)  # the .cam
    return Sintel(SINTEL_SPEC, path, frames, skipped)


def open_sintel(path, skip_bad=False):
    return open_sintel_pass(path, skip_bad)


def open_sintel_clean(path, skip_bad=False):
    return open_sintel_pass(path, skip_bad, "clean")


# ---------------------------------------------------------------------------------------------------------
# TUM RGB-D
# ---------------------------------------------------------------------------------------------------------

TUM_MAX_DIFFERENCE_S = 0.02  # associate.py's default --max_difference


class Tum(SequenceReader):
    """TUM RGB-D sequences: colour frames paired with depth frames by timestamp as TUM's associate.py pairs
    them. Sample.extra: (groundtruth.txt, the colour frame's timestamp as written in rgb.txt)."""

    def __init__(self, spec, name, frames, skipped):
        super().__init__(spec, name, frames, skipped)
        self._trajectories = {}

    def read(self, sample):
        rgb = read_rgb(sample.rgb)
        depth = self.spec.encoding.metres(read_png_values(sample.depth))
        check_same_size(sample.depth, depth.shape, rgb)
        sequence = Path(sample.extra[0]).parent.name
        # TUM publishes its intrinsics for 640x480, the size every sequence is recorded at.
        camera = Camera.from_pixels(*tum_intrinsics(sequence), *TUM_HW, source=f"TUM {sequence}")
        return datasets.pair(rgb, depth, None, camera)

    def pose(self, sample):
        """Camera-to-world of the ground-truth line nearest the colour frame's time (within 0.02 s)."""
        path, stamp = sample.extra[0], float(sample.extra[1])
        if path not in self._trajectories:
            self._trajectories[path] = read_trajectory(path)
        stamps, poses = self._trajectories[path]
        if len(stamps) == 0:
            raise InputError(f"{path}: no poses")
        nearest = int(np.argmin(np.abs(stamps - stamp)))
        if abs(stamps[nearest] - stamp) >= TUM_MAX_DIFFERENCE_S:
            raise InputError(f"{path}: no pose within {TUM_MAX_DIFFERENCE_S} s of {sample.where} "
                             f"(nearest {stamps[nearest]:.6f})")
        return poses[nearest]


def tum_intrinsics(sequence):
    """(fx, fy, cx, cy) at 640x480 of the sensor a sequence's name says (the ROS default where none)."""
    return next((values for key, values in TUM_INTRINSICS.items() if key in sequence), TUM_ROS_DEFAULT)


def read_tum_list(path):
    """[[timestamp, value, ...]] of a TUM text file; lines starting with '#' are comments."""
    if not Path(path).is_file():
        raise InputError(f"{path}: missing")
    rows = []
    for line_number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            float(parts[0])
        except ValueError as err:
            raise InputError(f"{path} line {line_number}: expected a timestamp first, found {line!r}") from err
        rows.append(parts)
    return rows


def read_stamped_files(path):
    """{timestamp: (timestamp as written, file name)} of rgb.txt or depth.txt (a stamp listed twice: the last,
    as associate.py's dictionary keeps it)."""
    files = {}
    for parts in read_tum_list(path):
        if len(parts) < 2:
            raise InputError(f"{path}: a line with no file name after timestamp {parts[0]}")
        files[float(parts[0])] = (parts[0], parts[1])
    return files


def quaternion_rotation(qx, qy, qz, qw):
    """The 3x3 rotation of a (normalised) quaternion."""
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    x, y, z, w = qx / norm, qy / norm, qz / norm, qw / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def read_trajectory(path):
    """(sorted timestamps, 4x4 camera-to-world matrices) of groundtruth.txt: "t tx ty tz qx qy qz qw"."""
    stamps, poses = [], []
    for parts in read_tum_list(path):
        try:
            t, tx, ty, tz, qx, qy, qz, qw = (float(value) for value in parts)
        except ValueError as err:
            raise InputError(f"{path}: expected 'timestamp tx ty tz qx qy qz qw', found {' '.join(parts)!r}") from err
        if not any((qx, qy, qz, qw)):
            raise InputError(f"{path}: a zero quaternion at timestamp {parts[0]}")
        pose = np.eye(4)
        pose[:3, :3] = quaternion_rotation(qx, qy, qz, qw)
        pose[:3, 3] = (tx, ty, tz)
        stamps.append(t)
        poses.append(pose)
    order = np.argsort(stamps, kind="stable")
    return np.asarray(stamps)[order], [poses[i] for i in order]


def associate(first, second, max_difference=TUM_MAX_DIFFERENCE_S):
    """[(a, b)] sorted by a: TUM associate.py's greedy rule. Every pair closer than max_difference is a
    candidate; candidates are taken in order of (difference, a, b), each timestamp used once. The candidates
    are found by a sorted search rather than associate.py's all-pairs loop (same set, linear time)."""
    first, second = sorted(first), np.asarray(sorted(second), dtype=np.float64)
    candidates = []
    for a in first:
        low = np.searchsorted(second, a - max_difference, side="left")
        high = np.searchsorted(second, a + max_difference, side="right")
        candidates += [(abs(a - float(b)), a, float(b)) for b in second[low:high] if abs(a - float(b)) < max_difference]
    candidates.sort()
    used_first, used_second, matches = set(), set(), []
    for _, a, b in candidates:
        if a not in used_first and b not in used_second:
            used_first.add(a)
            used_second.add(b)
            matches.append((a, b))
    return sorted(matches)


def tum_frames(sequence_dir):
    """(sequence, Sample) of each associated colour/depth pair of a sequence folder, in time order."""
    colour = read_stamped_files(sequence_dir / "rgb.txt")
    depth = read_stamped_files(sequence_dir / "depth.txt")
    groundtruth = str(sequence_dir / "groundtruth.txt")
    frames = []
    for a, b in associate(colour, depth):
        written, picture = colour[a]
        sample = Sample(str(sequence_dir / picture), str(sequence_dir / depth[b][1]),
                        f"{sequence_dir.name} rgb {written}", extra=(groundtruth, written))
        frames.append((sequence_dir.name, sample))
    return frames


def tum_sequence_dirs(path):
    """The sequence folder PATH, or the sequence folders in it."""
    path = Path(path)
    if (path / "rgb.txt").is_file():
        return [path]
    found = sorted(child for child in path.iterdir() if (child / "rgb.txt").is_file()) if path.is_dir() else []
    if not found:
        raise InputError(f"{path}: not TUM RGB-D's layout (no rgb.txt in it or in a sequence folder inside)")
    return found


def open_tum(path, skip_bad=False):
    frames = [frame for sequence_dir in tum_sequence_dirs(path) for frame in tum_frames(sequence_dir)]
    frames, skipped = keep_present(frames, skip_bad)
    return Tum(TUM_SPEC, path, frames, skipped)


# ---------------------------------------------------------------------------------------------------------
# Synthetic clips (synthetic.py)
# ---------------------------------------------------------------------------------------------------------

SYNTHETIC_CLIP_SOURCE = "the synthetic clips' camera"


class SyntheticClips(SequenceReader):
    """The clips synthetic.synthetic_video_path renders. Sample.extra: (camera.txt, poses.txt, frame number)."""

    def __init__(self, spec, name, frames, skipped):
        super().__init__(spec, name, frames, skipped)
        self._cameras, self._poses = {}, {}

    def read(self, sample):
        rgb = read_rgb(sample.rgb)
        depth = self.spec.encoding.metres(read_png_values(sample.depth))
        check_same_size(sample.depth, depth.shape, rgb)
        path = sample.extra[0]
        if path not in self._cameras:
            self._cameras[path] = read_clip_camera(path)
        return datasets.pair(rgb, depth, None, self._cameras[path])

    def pose(self, sample):
        """The 4x4 camera-to-world of the frame: its line of poses.txt."""
        path, number = sample.extra[1], int(sample.extra[2])
        if path not in self._poses:
            self._poses[path] = load_matrix_rows(path, 16)
        poses = self._poses[path]
        if number >= len(poses):
            raise InputError(f"{path}: no pose for {sample.where} (it has {len(poses)} lines)")
        return poses[number].reshape(4, 4).copy()


def read_clip_camera(path):
    """The Camera of a clip's camera.txt: "fx fy cx cy height width" in pixels."""
    values = load_matrix(path, (1, 6))[0]
    fx, fy, cx, cy, height, width = values
    return Camera.from_pixels(fx, fy, cx, cy, int(height), int(width), SYNTHETIC_CLIP_SOURCE)


def load_matrix_rows(path, columns):
    """(rows, columns) numbers of a text file with `columns` numbers a line."""
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read lines of {columns} numbers ({err})") from err
    if rows.shape[1] != columns:
        raise InputError(f"{path}: expected {columns} numbers a line, found {rows.shape[1]}")
    return rows


def synthetic_clip_frames(root):
    """(clip name, Sample) of every frame of every clip_XX folder under root, clips then frames in order."""
    frames = []
    for clip in sorted(child for child in Path(root).glob("clip_*") if child.is_dir()):
        for number, picture in sorted(numbered_files(clip / "rgb", ".png").items()):
            sample = Sample(str(picture), str(clip / "depth" / picture.name), f"{clip.name} frame {number}",
                            extra=(str(clip / "camera.txt"), str(clip / "poses.txt"), number))
            frames.append((clip.name, sample))
    return frames


def open_synthetic_video(spec="synthetic-video", cache_dir=None, size=None):
    """The clips of a spec "synthetic-video[:CLIPS[:FRAMES]]", rendered into the cache on first use (frames
    of size (height, width); None: synthetic.SYNTHETIC_VIDEO_HW)."""
    import synthetic

    path = synthetic.synthetic_video_path(spec, cache_dir, size or synthetic.SYNTHETIC_VIDEO_HW)
    frames, skipped = keep_present(synthetic_clip_frames(path), skip_bad=False, extra_needed=2)
    return SyntheticClips(SYNTHETIC_VIDEO_SPEC, path, frames, skipped)


READERS = {"scannet": open_scannet, "sintel": open_sintel, "sintel-clean": open_sintel_clean, "tum": open_tum}
