"""Zero-shot depth benchmarks read from their distributors' own file layouts: iBims-1, DIODE, ETH3D and SUN RGB-D.

    from benchmarks import READERS
    dataset = READERS["diode-indoors"]("/data/diode")     # any reader: spec, name, skipped
    pair = dataset.read(dataset.samples("test")[0])      # datasets.Pair, with the picture's own camera

Each benchmark's DatasetSpec is defined (and registered with datasets.register) here; each reader is a
function (path, skip_bad=False) -> Benchmark that refuses, in one line, a path not in its layout. A benchmark
without a training split answers every split with all of its samples (fine-tuning on it is the user's
choice); DIODE answers "train" with its train folder and "val" and "test" with its val folder. Samples name
absolute paths; a reader's further files (masks, camera files) are in Sample.extra.

Nothing here imports TensorFlow.
"""
import os
from pathlib import Path

import numpy as np

import datasets
from camera import NYU_CAMERA, Camera
from datafiles import Sample, check_same_size, image_values, read_file, read_rgb
from datasets import DatasetSpec, DepthEncoding, PublishedRow
from depth import DepthRange
from utils import InputError

SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------------------------------------
# The specs
# ---------------------------------------------------------------------------------------------------------

# The published zero-shot rows shown beside ours. ZoeDepth (its tables 3 and 4): metric depth with no
# alignment, mirror-averaged, scored at the ground truth's resolution, capped at 8 m on SUN RGB-D, 10 m on
# iBims-1 and DIODE indoors, 80 m on DIODE outdoor: the caps of the specs below. The other anchors are left
# out, their protocols differing: Depth Pro's table 1 caps ETH3D at 200 m and SUN RGB-D at 10 m; UniDepthV2
# does not say whether its figures are scale-aligned; Metric3D v2 reads the ground-truth camera.
ZOEDEPTH_SOURCE = "Bhat et al. 2023, ZoeDepth (arXiv 2302.12288v1), tables 3 (indoor) and 4 (outdoor)"


def zoedepth_row(variant, a1, abs_rel, rmse):
    return PublishedRow(f"ZoeDepth {variant}", {"a1": a1, "abs_rel": abs_rel, "rmse": rmse}, ZOEDEPTH_SOURCE)


# iBims-1's calibration at 640x480 as its .mat files' `calib` holds it (kept as the brief gives it: the
# per-sample `calib` of the .mat release overrides it; the PNG release has no camera file, so it is used).
IBIMS1_CAMERA = Camera.from_pixels(559.62, 558.14, 361.87, 241.77, 480, 640, "iBims-1's calibration")
IBIMS1_DEPTH_FULL_SCALE_M = 50.0  # the PNG release: metres = value * 50 / 65535
IBIMS1_SPEC = datasets.register(DatasetSpec(
    name="ibims1", title="iBims-1", depth_range=DepthRange(min_m=0.1, max_m=10.0), eval_cap_m=10.0,
    train_hw=(480, 640), camera=IBIMS1_CAMERA, sparse=True,
    encoding=DepthEncoding(units_per_m=65535.0 / IBIMS1_DEPTH_FULL_SCALE_M), crops={}, default_crop="none",
    reported=("a1", "a2", "a3", "abs_rel", "rmse", "log10"),
    published=(zoedepth_row("M12-N", 0.658, 0.169, 0.711), zoedepth_row("M12-NK", 0.615, 0.186, 0.777)),
    layout="imagelist.txt with rgb/, depth/, mask_invalid/, mask_transp/ NAME.png; or .mat files (struct data)",
    source="Koch et al. 2018, Evaluation of CNN-based single-image depth estimation methods (iBims-1)"))

# DIODE's scanner camera at 1024x768.
DIODE_CAMERA = Camera.from_pixels(886.81, 927.06, 512.0, 384.0, 768, 1024, "DIODE's camera")
DIODE_LAYOUT = "{train,val}/{indoors,outdoor}/scene_*/scan_*/ID.png, ID_depth.npy, ID_depth_mask.npy"
DIODE_SOURCE = "Vasiljevic et al. 2019, DIODE: A Dense Indoor and Outdoor DEpth Dataset"
# Indoors is capped at 10 m as NYU is; outdoor (scanned to ~350 m) and the two together at 80 m, the cap
# ZoeDepth's evaluation puts on DIODE outdoor, so one training range serves both.
DIODE_INDOORS_SPEC = datasets.register(DatasetSpec(
    name="diode-indoors", title="DIODE (indoors)", depth_range=DepthRange(min_m=0.1, max_m=10.0), eval_cap_m=10.0,
    train_hw=(480, 640), camera=DIODE_CAMERA, sparse=True, encoding=DepthEncoding(), crops={}, default_crop="none",
    reported=("a1", "a2", "a3", "abs_rel", "rmse", "log10"), layout=DIODE_LAYOUT, source=DIODE_SOURCE,
    published=(zoedepth_row("M12-N", 0.376, 0.327, 1.588), zoedepth_row("M12-NK", 0.386, 0.331, 1.598))))
DIODE_OUTDOOR_SPEC = datasets.register(DatasetSpec(
    name="diode-outdoor", title="DIODE (outdoor)", depth_range=DepthRange(min_m=0.1, max_m=80.0), eval_cap_m=80.0,
    train_hw=(384, 512), camera=DIODE_CAMERA, sparse=True, encoding=DepthEncoding(), crops={}, default_crop="none",
    reported=("a1", "a2", "a3", "abs_rel", "rmse", "log10"), layout=DIODE_LAYOUT, source=DIODE_SOURCE,
    published=(zoedepth_row("M12-NK", 0.208, 0.757, 7.569),)))
DIODE_SPEC = datasets.register(DatasetSpec(
    name="diode", title="DIODE (indoors and outdoor)", depth_range=DepthRange(min_m=0.1, max_m=80.0), eval_cap_m=80.0,
    train_hw=(384, 512), camera=DIODE_CAMERA, sparse=True, encoding=DepthEncoding(), crops={}, default_crop="none",
    reported=("a1", "a2", "a3", "abs_rel", "rmse", "log10"), published=(), layout=DIODE_LAYOUT, source=DIODE_SOURCE))

# The DSLR's nominal camera, roughly that of one scene's cameras.txt at 6048x4032 (a fallback only: every
# picture's camera comes from its scene's dslr_calibration_jpg/cameras.txt).
ETH3D_CAMERA = Camera.from_pixels(3410.0, 3410.0, 3024.0, 2016.0, 4032, 6048, "ETH3D's DSLR (nominal)")
ETH3D_SPEC = datasets.register(DatasetSpec(
    name="eth3d", title="ETH3D (high-res multi-view, training)", depth_range=DepthRange(min_m=0.1, max_m=80.0),
    eval_cap_m=80.0, train_hw=(384, 576), camera=ETH3D_CAMERA, sparse=True, encoding=DepthEncoding(), crops={},
    default_crop="none", reported=("a1", "a2", "a3", "abs_rel", "rmse", "log10"), published=(),
    layout="SCENE/images/dslr_images/NAME.JPG, SCENE/ground_truth_depth/dslr_images/NAME.JPG (raw float32), "
           "SCENE/dslr_calibration_jpg/{cameras,images}.txt",
    source="Schöps et al. 2017, A Multi-View Stereo Benchmark with High-Resolution Images and Multi-Camera Videos"))

# SUN RGB-D's 16-bit PNGs hold millimetres rotated left by 3 bits: units_per_m says millimetres, and
# sunrgbd_metres undoes the rotation, which no DepthEncoding describes. ZoeDepth evaluates it capped at 8 m.
SUNRGBD_SPEC = datasets.register(DatasetSpec(
    name="sunrgbd", title="SUN RGB-D", depth_range=DepthRange(min_m=0.1, max_m=10.0), eval_cap_m=8.0,
    train_hw=(480, 640), camera=NYU_CAMERA, sparse=True, encoding=DepthEncoding(units_per_m=1000.0), crops={},
    default_crop="none", reported=("a1", "a2", "a3", "abs_rel", "rmse", "log10"),
    published=(zoedepth_row("M12-N", 0.864, 0.119, 0.346), zoedepth_row("M12-NK", 0.856, 0.123, 0.356)),
    layout="sample folders holding image/*.jpg, depth/*.png and intrinsics.txt; optional sunrgbd_test.txt",
    source="Song et al. 2015, SUN RGB-D: A RGB-D Scene Understanding Benchmark Suite"))


# ---------------------------------------------------------------------------------------------------------
# What every reader shares
# ---------------------------------------------------------------------------------------------------------


class Benchmark(datasets.Reader):
    """A benchmark's samples by split and how one is read: spec, name (the path opened), skipped (what
    skip_bad left out, one line each), samples(split) and read(sample) -> datasets.Pair."""

    def __init__(self, spec, name, splits, read_pair, skipped):
        self.spec, self.name, self.skipped = spec, str(name), skipped
        self._splits, self._read_pair = splits, read_pair

    def samples(self, split):
        if split not in SPLITS:
            raise InputError(f"{self.spec.title} at {self.name}: no split {split!r}: choose one of {', '.join(SPLITS)}")
        found = self._splits.get(split, [])
        if not found:
            raise InputError(f"{self.spec.title} at {self.name}: no {split} samples")
        return list(found)

    def read(self, sample):
        return self._read_pair(sample)


def every_split(samples):
    """The same samples for train, val and test: the benchmark has no training split of its own."""
    return {split: samples for split in SPLITS}


def present_samples(candidates, skip_bad, skipped):
    """The samples whose files (rgb, depth and extra) all exist; a missing one raises naming it, or with
    skip_bad is left out with a line in skipped."""
    kept = []
    for sample in candidates:
        missing = next((name for name in (sample.rgb, sample.depth, *sample.extra) if not Path(name).is_file()), None)
        if missing is None:
            kept.append(sample)
        elif skip_bad:
            skipped.append(f"{missing}: missing ({sample.where})")
        else:
            raise InputError(f"{missing}: missing ({sample.where}); --skip-bad leaves such samples out")
    return kept


def png_values(path):
    """The raw values of a PNG file (uint16 kept as integers): 2-D, a colour one's first channel."""
    return image_values(read_file(path), str(path))


def read_lines(path):
    """The non-empty lines of a list file, stripped."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err})") from err
    return [line.strip() for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------
# iBims-1
# ---------------------------------------------------------------------------------------------------------

IBIMS1_PNG_FOLDERS = ("rgb", "depth", "mask_invalid", "mask_transp")
# Where the .mat release's files may be: gt_depth/ beside imagelist.txt, the archive's own folder name, or
# the folder itself.
IBIMS1_MAT_FOLDERS = ("gt_depth", "ibims1_core_mat", ".")


def open_ibims1(path, skip_bad=False):
    """iBims-1: the PNG release (imagelist.txt, rgb/, depth/, mask_invalid/, mask_transp/) or the .mat one."""
    root = Path(path)
    if (root / "imagelist.txt").is_file() and all((root / folder).is_dir() for folder in IBIMS1_PNG_FOLDERS):
        return ibims1_png_benchmark(root, skip_bad)
    mat_folder = ibims1_mat_folder(root)
    if mat_folder is None:
        raise InputError(f"ibims1:{path}: neither imagelist.txt with {', '.join(IBIMS1_PNG_FOLDERS)} folders nor "
                         f".mat files (in gt_depth/, ibims1_core_mat/ or the folder itself)")
    return ibims1_mat_benchmark(root, mat_folder, skip_bad)


def ibims1_mat_folder(root):
    """The folder holding the .mat release's files, or None."""
    for name in IBIMS1_MAT_FOLDERS:
        folder = root / name
        if folder.is_dir() and any(folder.glob("*.mat")):
            return folder
    return None


def ibims1_png_benchmark(root, skip_bad):
    skipped = []
    candidates = [Sample(str(root / "rgb" / f"{name}.png"), str(root / "depth" / f"{name}.png"), f"ibims1 {name}",
                         extra=(str(root / "mask_invalid" / f"{name}.png"), str(root / "mask_transp" / f"{name}.png")))
                  for name in read_lines(root / "imagelist.txt")]
    samples = present_samples(candidates, skip_bad, skipped)
    return Benchmark(IBIMS1_SPEC, root, every_split(samples), read_ibims1_png, skipped)


def ibims1_mat_benchmark(root, mat_folder, skip_bad):
    # imagelist.txt, where there is one (beside the files or above them), says which; else every .mat file.
    lists = [folder / "imagelist.txt" for folder in (root, mat_folder) if (folder / "imagelist.txt").is_file()]
    names = read_lines(lists[0]) if lists else sorted(file.stem for file in mat_folder.glob("*.mat"))
    candidates = [Sample(str(mat_folder / f"{name}.mat"), str(mat_folder / f"{name}.mat"), f"ibims1 {name}")
                  for name in names]
    skipped = []
    samples = present_samples(candidates, skip_bad, skipped)
    return Benchmark(IBIMS1_SPEC, root, every_split(samples), read_ibims1_mat, skipped)


def read_ibims1_png(sample):
    rgb = read_rgb(sample.rgb)
    raw = png_values(sample.depth)
    check_same_size(sample.depth, raw.shape, rgb)
    valid = raw > 0
    for mask_path in sample.extra:  # mask_invalid, mask_transp: 0 marks a pixel not to evaluate
        mask = png_values(mask_path)
        check_same_size(mask_path, mask.shape, rgb)
        valid &= mask != 0
    metres = raw.astype(np.float32) * np.float32(IBIMS1_DEPTH_FULL_SCALE_M / 65535.0)
    return datasets.pair(rgb, metres, valid, IBIMS1_CAMERA)


IBIMS1_MAT_FIELDS = ("rgb", "depth", "mask_invalid", "mask_transp", "calib")


def ibims1_mat_fields(path):
    """{field: array} of an iBims-1 .mat file's struct `data` (MATLAB v5, as scipy.io.savemat writes it too)."""
    from scipy.io import loadmat

    try:
        content = loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError as err:  # scipy reads v5 files only; v7.3 is HDF5
        raise InputError(f"{path}: a MATLAB v7.3 file: save it as v5 (save -v7) to read it here") from err
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"{path}: not a readable MATLAB file ({err})") from err
    if "data" not in content:
        raise InputError(f"{path}: no struct named data (it holds {', '.join(sorted(content)) or 'nothing'})")
    missing = [field for field in IBIMS1_MAT_FIELDS if not hasattr(content["data"], field)]
    if missing:
        raise InputError(f"{path}: the struct data has no {', '.join(missing)}")
    return {field: np.asarray(getattr(content["data"], field)) for field in IBIMS1_MAT_FIELDS}


def read_ibims1_mat(sample):
    fields = ibims1_mat_fields(sample.rgb)
    rgb = np.ascontiguousarray(fields["rgb"], dtype=np.uint8)
    for name in ("depth", "mask_invalid", "mask_transp"):
        check_same_size(f"{sample.rgb} ({name})", fields[name].shape, rgb)
    valid = (fields["mask_invalid"] != 0) & (fields["mask_transp"] != 0)
    calib = fields["calib"].astype(np.float64)
    if calib.shape != (3, 3):
        raise InputError(f"{sample.rgb}: calib is {calib.shape}, not a 3x3 intrinsics matrix")
    height, width = rgb.shape[:2]
    camera = Camera.from_pixels(calib[0, 0], calib[1, 1], calib[0, 2], calib[1, 2], height, width,
                                source=f"iBims-1 calib of {Path(sample.rgb).stem}")
    return datasets.pair(rgb, fields["depth"], valid, camera)


# ---------------------------------------------------------------------------------------------------------
# DIODE
# ---------------------------------------------------------------------------------------------------------

DIODE_KINDS = ("indoors", "outdoor")


def diode_opener(kinds, spec):
    def open_diode(path, skip_bad=False):
        return diode_benchmark(Path(path), kinds, spec, skip_bad)

    open_diode.__doc__ = f"{spec.title}: PATH/{{train,val}}/{{{','.join(kinds)}}}/scene_*/scan_*, or PATH a val folder."
    return open_diode


def diode_split_folders(root):
    """{split: folder}: train/ and val/ under root ("val" and "test" both val/); or root itself a split
    folder (holding indoors/ or outdoor/), which is train where it is named so and val otherwise."""
    if any((root / name).is_dir() for name in ("train", "val")):
        found = {"train": root / "train", "val": root / "val", "test": root / "val"}
    elif any((root / kind).is_dir() for kind in DIODE_KINDS):
        found = {"train": root} if root.name == "train" else {"val": root, "test": root}
    else:
        return {}
    return {split: folder for split, folder in found.items() if folder.is_dir()}


def diode_benchmark(root, kinds, spec, skip_bad):
    folders = diode_split_folders(root)
    if not folders:
        raise InputError(f"{spec.name}:{root}: no train/ or val/ folder, nor indoors/ or outdoor/ (DIODE's layout)")
    skipped, splits, listed = [], {}, {}
    for split, folder in folders.items():
        if folder not in listed:  # val/ serves val and test: list (and report its missing files) once
            listed[folder] = present_samples(diode_candidates(folder, kinds), skip_bad, skipped)
        splits[split] = listed[folder]
    if not any(splits.values()):
        raise InputError(f"{spec.name}:{root}: no {' or '.join(kinds)} scans (scene_*/scan_*/ID.png) under "
                         f"{', '.join(sorted({str(folder) for folder in folders.values()}))}")
    return Benchmark(spec, root, splits, read_diode, skipped)


def diode_candidates(split_folder, kinds):
    """A split folder's samples, one per ID.png of kinds' scans, sorted: ID_depth.npy, extra ID_depth_mask.npy."""
    candidates = []
    for kind in kinds:
        for png in sorted((split_folder / kind).glob("scene_*/scan_*/*.png")):
            stem = png.with_suffix("")
            where = f"diode {split_folder.name}/{png.relative_to(split_folder).with_suffix('').as_posix()}"
            candidates.append(Sample(str(png), f"{stem}_depth.npy", where, extra=(f"{stem}_depth_mask.npy",)))
    return candidates


def load_npy(path):
    try:
        return np.load(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable .npy array ({err})") from err


def read_diode(sample):
    rgb = read_rgb(sample.rgb)
    depth, mask = load_npy(sample.depth), load_npy(sample.extra[0])
    if depth.ndim == 3 and depth.shape[-1] == 1:  # DIODE stores depth as (H, W, 1)
        depth = depth[..., 0]
    check_same_size(sample.depth, depth.shape, rgb)
    check_same_size(sample.extra[0], mask.shape, rgb)
    return datasets.pair(rgb, depth, mask > 0, DIODE_CAMERA)


# ---------------------------------------------------------------------------------------------------------
# ETH3D
# ---------------------------------------------------------------------------------------------------------

ETH3D_IMAGES = Path("images") / "dslr_images"
ETH3D_DEPTH = Path("ground_truth_depth") / "dslr_images"
ETH3D_CALIBRATION = "dslr_calibration_jpg"  # the distorted JPGs' cameras: the depth maps are of those pictures
# COLMAP camera models whose parameters start fx fy cx cy; the others here start f cx cy.
COLMAP_FX_FY_CX_CY = {"PINHOLE", "OPENCV", "FULL_OPENCV", "OPENCV_FISHEYE", "FOV", "THIN_PRISM_FISHEYE"}
COLMAP_F_CX_CY = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"}


def open_eth3d(path, skip_bad=False):
    """ETH3D's high-res multi-view training scenes (PATH holding scene folders, or one scene folder): the
    distorted DSLR JPGs, their depth maps (raw little-endian float32, H x W of the picture: 4032 x 6048 in
    the release, but the size expected is taken from the picture, so smaller copies read too; inf or 0 where
    there is none) and the cameras of dslr_calibration_jpg/cameras.txt via images.txt. Every image listed in
    a scene's images.txt is a sample."""
    root = Path(path)
    scenes = [root] if (root / ETH3D_IMAGES).is_dir() else sorted(
        folder for folder in root.glob("*") if (folder / ETH3D_IMAGES).is_dir())
    if not scenes:
        raise InputError(f"eth3d:{path}: no scene folder (SCENE/{ETH3D_IMAGES.as_posix()}/) here or below")
    skipped, samples = [], []
    for scene in scenes:
        samples += present_samples(eth3d_candidates(scene), skip_bad, skipped)
    return Benchmark(ETH3D_SPEC, root, every_split(samples), read_eth3d, skipped)


def eth3d_candidates(scene):
    """A scene's samples, one per image of its images.txt, with the scene's cameras.txt and images.txt in extra."""
    calibration = scene / ETH3D_CALIBRATION
    cameras_txt, images_txt = calibration / "cameras.txt", calibration / "images.txt"
    for required in (cameras_txt, images_txt):
        if not required.is_file():
            raise InputError(f"eth3d:{scene}: no {ETH3D_CALIBRATION}/{required.name} (the scene's cameras)")
    names = sorted(colmap_image_cameras(images_txt))
    return [Sample(str(scene / "images" / name), str(scene / "ground_truth_depth" / name),
                   f"eth3d {scene.name}/{name}", extra=(str(cameras_txt), str(images_txt)))
            for name in names]


def colmap_lines(path):
    """A COLMAP text file's lines, comments dropped but blank lines kept (images.txt's points lines may be)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err})") from err
    return [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]


def colmap_image_cameras(images_txt):
    """{image name, e.g. "dslr_images/DSC_0286.JPG": camera id} of a COLMAP images.txt, whose image lines
    ("IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME") are each followed by a line of 2D points."""
    lines, found, at = colmap_lines(images_txt), {}, 0
    while at < len(lines):
        fields = lines[at].split()
        if not fields:  # a blank line between entries (or at the end)
            at += 1
            continue
        if len(fields) < 10:
            raise InputError(f"{images_txt}: '{lines[at][:60]}' is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        found[" ".join(fields[9:])] = fields[8]
        at += 2  # the image's 2D points line follows, even when empty
    return found


def colmap_cameras(cameras_txt):
    """{camera id: Camera} of a COLMAP cameras.txt ("CAMERA_ID MODEL WIDTH HEIGHT PARAMS...")."""
    cameras = {}
    for line in colmap_lines(cameras_txt):
        fields = line.split()
        if not fields:
            continue
        try:
            camera_id, model, width, height = fields[0], fields[1], int(fields[2]), int(fields[3])
            params = [float(value) for value in fields[4:]]
            if model in COLMAP_FX_FY_CX_CY:
                fx, fy, cx, cy = params[:4]
            elif model in COLMAP_F_CX_CY:
                (fx, cx, cy), fy = params[:3], params[0]
            else:
                raise InputError(f"{cameras_txt}: camera {camera_id} has the unknown COLMAP model {model}")
        except (ValueError, IndexError) as err:
            raise InputError(f"{cameras_txt}: '{line[:60]}' is not 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS'") from err
        cameras[camera_id] = Camera.from_pixels(fx, fy, cx, cy, height, width, f"ETH3D {model} camera {camera_id}")
    return cameras


def eth3d_camera(sample):
    cameras_txt, images_txt = sample.extra
    name = f"{Path(sample.rgb).parent.name}/{Path(sample.rgb).name}"
    camera_id = colmap_image_cameras(images_txt).get(name)
    camera = colmap_cameras(cameras_txt).get(camera_id)
    if camera is None:
        raise InputError(f"{cameras_txt}: no camera {camera_id} for {name} (listed so in {images_txt})")
    return camera


def raw_float32_depth(path, height, width):
    """A raw little-endian float32 depth map of height x width (its picture's size)."""
    data = read_file(path)
    if len(data) != height * width * 4:
        raise InputError(f"{path}: {len(data)} bytes, but its {width}x{height} picture needs {height * width * 4} "
                         f"(raw float32, {width}x{height})")
    return np.frombuffer(data, dtype="<f4").reshape(height, width)


def read_eth3d(sample):
    # Pillow does not apply EXIF orientation here: ETH3D's pictures are stored upright, as the depth maps are.
    rgb = read_rgb(sample.rgb)
    depth = raw_float32_depth(sample.depth, *rgb.shape[:2])
    return datasets.pair(rgb, depth, None, eth3d_camera(sample))


# ---------------------------------------------------------------------------------------------------------
# SUN RGB-D
# ---------------------------------------------------------------------------------------------------------

SUNRGBD_TEST_LIST = "sunrgbd_test.txt"


def open_sunrgbd(path, skip_bad=False):
    """SUN RGB-D: the sample folders (image/, depth/, intrinsics.txt) anywhere under PATH, sorted; only those
    listed in PATH/sunrgbd_test.txt where it exists, or in PATH itself where it is a .txt list (folders
    relative to the list's own folder, one a line)."""
    root = Path(path)
    if root.is_file() and root.suffix == ".txt":
        return sunrgbd_listed(root, root.parent, skip_bad)
    if (root / SUNRGBD_TEST_LIST).is_file():
        return sunrgbd_listed(root / SUNRGBD_TEST_LIST, root, skip_bad)
    folders = sunrgbd_sample_folders(root)
    if not folders:
        raise InputError(f"sunrgbd:{path}: no sample folder (one holding image/, depth/ and intrinsics.txt) here "
                         f"or below, and no {SUNRGBD_TEST_LIST}")
    skipped = []
    samples = present_samples([sunrgbd_sample(folder, root) for folder in folders], skip_bad, skipped)
    return Benchmark(SUNRGBD_SPEC, root, every_split(samples), read_sunrgbd, skipped)


def is_sunrgbd_folder(folder):
    return (folder / "image").is_dir() and (folder / "depth").is_dir() and (folder / "intrinsics.txt").is_file()


def sunrgbd_sample_folders(root):
    """Every sample folder under root (root included), in sorted order; a sample folder's own subfolders
    are not searched."""
    found = []
    for folder, subfolders, _ in os.walk(root):
        subfolders.sort()
        if is_sunrgbd_folder(Path(folder)):
            found.append(Path(folder))
            subfolders[:] = []
    return sorted(found)


def sunrgbd_sample(folder, root):
    """The sample of a folder: its first image/*.jpg and depth/*.png (named missing where there is none)."""
    rgb = next(iter(sorted((folder / "image").glob("*.jpg"))), folder / "image" / "*.jpg")
    depth = next(iter(sorted((folder / "depth").glob("*.png"))), folder / "depth" / "*.png")
    where = f"sunrgbd {folder.relative_to(root).as_posix() if folder.is_relative_to(root) else folder}"
    return Sample(str(rgb), str(depth), where, extra=(str(folder / "intrinsics.txt"),))


def listed_folder(line, base):
    """A list line's sample folder: relative to the list's folder; an absolute path from SUN RGB-D's own
    lists ("/n/fs/sun3d/data/SUNRGBD/kv1/...") that is not here is taken from its SUNRGBD/ part on."""
    folder = base / line.rstrip("/")
    if Path(line).is_absolute() and not folder.is_dir() and "SUNRGBD/" in line:
        folder = base / line.split("SUNRGBD/", 1)[1].rstrip("/")
    return folder


def sunrgbd_listed(list_path, base, skip_bad):
    skipped = []
    samples = [sunrgbd_sample(listed_folder(line, base), base) for line in read_lines(list_path)]
    samples = present_samples(samples, skip_bad, skipped)
    return Benchmark(SUNRGBD_SPEC, list_path, every_split(samples), read_sunrgbd, skipped)


def sunrgbd_metres(raw):
    """Metres of SUN RGB-D depth values: 16-bit millimetres rotated left by 3 bits (undone: rotated right)."""
    value = np.asarray(raw).astype(np.uint32) & 0xFFFF
    millimetres = ((value >> 3) | (value << 13)) & 0xFFFF
    return millimetres.astype(np.float32) / np.float32(1000.0)


def sunrgbd_camera(intrinsics_txt, height, width):
    """The camera of a sample's intrinsics.txt (a 3x3 matrix, row by row) for its height x width picture."""
    try:
        values = [float(value) for value in Path(intrinsics_txt).read_text().split()]
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{intrinsics_txt}: not a readable 3x3 matrix ({err})") from err
    if len(values) != 9:
        raise InputError(f"{intrinsics_txt}: {len(values)} numbers, not the 9 of a 3x3 intrinsics matrix")
    return Camera.from_pixels(values[0], values[4], values[2], values[5], height, width,
                              source=f"SUN RGB-D {intrinsics_txt}")


def read_sunrgbd(sample):
    rgb = read_rgb(sample.rgb)
    raw = png_values(sample.depth)
    check_same_size(sample.depth, raw.shape, rgb)
    return datasets.pair(rgb, sunrgbd_metres(raw), raw != 0, sunrgbd_camera(sample.extra[0], *rgb.shape[:2]))


READERS = {
    "ibims1": open_ibims1,
    "diode": diode_opener(DIODE_KINDS, DIODE_SPEC),
    "diode-indoors": diode_opener(("indoors",), DIODE_INDOORS_SPEC),
    "diode-outdoor": diode_opener(("outdoor",), DIODE_OUTDOOR_SPEC),
    "eth3d": open_eth3d,
    "sunrgbd": open_sunrgbd,
}
