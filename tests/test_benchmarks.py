"""The zero-shot benchmarks' readers (benchmarks.py): each dataset written in its distributor's layout and
encoding, small, with a box at 2 m before a sloping wall (so a flip or a shift shows), invalid pixels where
the format marks them, and its camera file; read back through READERS."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

import datasets
from benchmarks import DIODE_CAMERA, IBIMS1_CAMERA, READERS
from utils import InputError

H, W = 12, 16
RNG = np.random.default_rng(0)


def scene_metres():
    """A wall from 3.0 m (left) to 4.5 m (right) with a box at 2.0 m off-centre: no flip or shift reads the same."""
    depth = np.broadcast_to(3.0 + 0.1 * np.arange(W, dtype=np.float64), (H, W)).copy()
    depth[2:6, 3:9] = 2.0
    return depth


def random_rgb():
    return RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def write_picture(path, array, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)


def write_png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)  # Pillow writes a 16-bit grey PNG


def assert_camera(camera, fx, fy, cx, cy, height=H, width=W):
    np.testing.assert_allclose([camera.pixels(height, width)[key] for key in ("fx", "fy", "cx", "cy")],
                               [fx, fy, cx, cy], rtol=1e-6)


def test_specs_are_registered_with_published_rows_of_matching_protocol_only():
    for name in READERS:
        spec = datasets.spec_named(name)
        assert spec is not None and spec.name == name and spec.sparse
        assert all(row.align == "none" and row.source for row in spec.published)
        assert spec.train_hw[0] % 32 == 0 and spec.train_hw[1] % 32 == 0
    assert datasets.spec_named("diode-indoors").eval_cap_m == 10.0
    assert datasets.spec_named("sunrgbd").eval_cap_m == 8.0
    # ZoeDepth's rows stand beside the benchmarks whose caps are its own, and nowhere else.
    with_rows = {name for name in READERS if datasets.spec_named(name).published}
    assert with_rows == {"ibims1", "diode-indoors", "diode-outdoor", "sunrgbd"}


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_folder_in_no_layout_is_refused_naming_it(tmp_path, name):
    (tmp_path / "stray.txt").write_text("nothing\n")
    with pytest.raises(InputError, match=str(tmp_path)):
        READERS[name](tmp_path)


# ---------------------------------------------------------------------------------------------------------
# iBims-1
# ---------------------------------------------------------------------------------------------------------

IBIMS1_UNIT_M = 50.0 / 65535  # one step of the 16-bit PNGs


def ibims1_masks():
    """(mask_invalid, mask_transp, no depth): each marks other pixels invalid; their union is not valid."""
    invalid, transp, no_depth = (np.zeros((H, W), bool) for _ in range(3))
    invalid[0, :3] = True
    transp[3:5, 4:6] = True  # a window on the box
    no_depth[-1, -2:] = True
    return invalid, transp, no_depth


def write_ibims1_png(root, names):
    invalid, transp, no_depth = ibims1_masks()
    raw = np.round(scene_metres() / IBIMS1_UNIT_M)
    raw[no_depth] = 0
    for name in names:
        write_picture(root / "rgb" / f"{name}.png", random_rgb())
        write_png16(root / "depth" / f"{name}.png", raw)
        write_picture(root / "mask_invalid" / f"{name}.png", np.where(invalid, 0, 255).astype(np.uint8))
        write_picture(root / "mask_transp" / f"{name}.png", np.where(transp, 0, 1).astype(np.uint8))
    (root / "imagelist.txt").write_text("".join(f"{name}\n" for name in names))


def test_ibims1_png_reads_metres_masks_and_calibration(tmp_path):
    write_ibims1_png(tmp_path, ["corridor_01", "office_02"])
    dataset = READERS["ibims1"](tmp_path)
    for split in ("train", "val", "test"):
        assert [s.where for s in dataset.samples(split)] == ["ibims1 corridor_01", "ibims1 office_02"]
    pair = dataset.read(dataset.samples("test")[1])
    invalid, transp, no_depth = ibims1_masks()
    np.testing.assert_array_equal(pair.valid, ~(invalid | transp | no_depth))
    np.testing.assert_allclose(pair.depth[pair.valid], scene_metres()[pair.valid], atol=IBIMS1_UNIT_M / 2 + 1e-6)
    assert (pair.depth[~pair.valid] == 0).all()
    assert pair.rgb.shape == (H, W, 3) and pair.rgb.dtype == np.uint8
    assert pair.camera == IBIMS1_CAMERA
    assert_camera(pair.camera, 559.62, 558.14, 361.87, 241.77, 480, 640)


def test_ibims1_png_missing_file_raises_or_is_skipped(tmp_path):
    write_ibims1_png(tmp_path, ["corridor_01", "office_02", "lab_03"])
    (tmp_path / "mask_transp" / "office_02.png").unlink()
    with pytest.raises(InputError, match="mask_transp/office_02.png"):
        READERS["ibims1"](tmp_path)
    dataset = READERS["ibims1"](tmp_path, skip_bad=True)
    assert len(dataset.samples("test")) == 2 and len(dataset.skipped) == 1 and "office_02" in dataset.skipped[0]


def test_ibims1_png_depth_of_another_size_is_refused(tmp_path):
    write_ibims1_png(tmp_path, ["corridor_01"])
    write_png16(tmp_path / "depth" / "corridor_01.png", np.ones((H, W - 2)))
    dataset = READERS["ibims1"](tmp_path)
    with pytest.raises(InputError, match=rf"depth/corridor_01.png: {W - 2}x{H}, but its picture is {W}x{H}"):
        dataset.read(dataset.samples("test")[0])


def write_ibims1_mat(path, calib):
    invalid, transp, no_depth = ibims1_masks()
    depth = scene_metres()
    depth[no_depth] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"data": {"rgb": random_rgb(), "depth": depth, "mask_invalid": (~invalid).astype(np.uint8),
                                     "mask_transp": (~transp).astype(np.float64), "calib": calib}})


@pytest.mark.parametrize("folder", ["gt_depth", "ibims1_core_mat", "."])
def test_ibims1_mat_reads_what_savemat_writes(tmp_path, folder):
    calib = np.array([[14.0, 0, 7.5], [0, 13.5, 5.25], [0, 0, 1]])
    for name in ("corridor_01", "office_02", "unlisted_03"):
        write_ibims1_mat(tmp_path / folder / f"{name}.mat", calib)
    if folder == "gt_depth":  # imagelist.txt beside gt_depth/ says which files are the benchmark
        (tmp_path / "imagelist.txt").write_text("corridor_01\noffice_02\n")
    dataset = READERS["ibims1"](tmp_path)
    assert len(dataset.samples("val")) == (2 if folder == "gt_depth" else 3)
    pair = dataset.read(dataset.samples("test")[0])
    invalid, transp, no_depth = ibims1_masks()
    np.testing.assert_array_equal(pair.valid, ~(invalid | transp | no_depth))
    np.testing.assert_allclose(pair.depth[pair.valid], scene_metres()[pair.valid], rtol=1e-6)
    assert pair.rgb.shape == (H, W, 3) and pair.rgb.dtype == np.uint8
    assert_camera(pair.camera, 14.0, 13.5, 7.5, 5.25)


def test_ibims1_mat_listed_but_missing(tmp_path):
    write_ibims1_mat(tmp_path / "gt_depth" / "corridor_01.mat", np.eye(3))
    (tmp_path / "imagelist.txt").write_text("corridor_01\noffice_02\n")
    with pytest.raises(InputError, match="gt_depth/office_02.mat: missing"):
        READERS["ibims1"](tmp_path)
    assert len(READERS["ibims1"](tmp_path, skip_bad=True).skipped) == 1


# ---------------------------------------------------------------------------------------------------------
# DIODE
# ---------------------------------------------------------------------------------------------------------


def diode_mask():
    mask = np.ones((H, W), np.float32)
    mask[:2, -4:] = 0  # sky: DIODE's depth there is not a measurement
    return mask


def write_diode_scan(split_folder, kind, scene, scan, index):
    folder = split_folder / kind / f"scene_{scene:05d}" / f"scan_{scan:05d}"
    stem = folder / f"{scene:05d}_{scan:05d}_{kind}_{index:03d}_010"
    write_picture(stem.with_suffix(".png"), random_rgb())
    folder.mkdir(parents=True, exist_ok=True)
    depth = scene_metres().astype(np.float32)
    depth[:2, -4:] = 99.0  # a value where the mask says no: must not be read as depth
    np.save(f"{stem}_depth.npy", depth[..., None])  # (H, W, 1) as DIODE stores it
    np.save(f"{stem}_depth_mask.npy", diode_mask())
    return stem


def write_diode(root):
    """train: 1 indoors, 1 outdoor; val: 2 indoors (two scans), 1 outdoor."""
    write_diode_scan(root / "train", "indoors", 1, 2, 0)
    write_diode_scan(root / "train", "outdoor", 3, 4, 0)
    write_diode_scan(root / "val", "indoors", 19, 183, 0)
    write_diode_scan(root / "val", "indoors", 19, 184, 1)
    return write_diode_scan(root / "val", "outdoor", 22, 200, 0)


def test_diode_splits_kinds_metres_mask_and_camera(tmp_path):
    write_diode(tmp_path)
    counts = {name: [len(READERS[name](tmp_path).samples(split)) for split in ("train", "val", "test")]
              for name in ("diode", "diode-indoors", "diode-outdoor")}
    assert counts == {"diode": [2, 3, 3], "diode-indoors": [1, 2, 2], "diode-outdoor": [1, 1, 1]}
    dataset = READERS["diode-indoors"](tmp_path)
    sample = dataset.samples("val")[0]
    assert sample.where == "diode val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"
    assert dataset.spec.name == "diode-indoors" and dataset.name == str(tmp_path)
    pair = dataset.read(sample)
    np.testing.assert_array_equal(pair.valid, diode_mask() > 0)
    np.testing.assert_allclose(pair.depth[pair.valid], scene_metres()[pair.valid], rtol=1e-6)
    assert (pair.depth[~pair.valid] == 0).all()
    assert pair.camera == DIODE_CAMERA
    assert_camera(pair.camera, 886.81, 927.06, 512.0, 384.0, 768, 1024)


def test_diode_path_at_the_val_folder(tmp_path):
    write_diode(tmp_path)
    dataset = READERS["diode"](tmp_path / "val")
    assert len(dataset.samples("test")) == 3 and len(dataset.samples("val")) == 3
    with pytest.raises(InputError, match="no train samples"):
        dataset.samples("train")


def test_diode_missing_mask_and_depth_of_another_size(tmp_path):
    stem = write_diode(tmp_path)
    mask = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00184" / "00019_00184_indoors_001_010_depth_mask.npy"
    mask.unlink()
    with pytest.raises(InputError, match=str(mask)):
        READERS["diode"](tmp_path)
    dataset = READERS["diode"](tmp_path, skip_bad=True)
    assert len(dataset.samples("val")) == 2 and len(dataset.skipped) == 1  # val/ listed once for val and test
    np.save(f"{stem}_depth.npy", np.ones((H - 1, W), np.float32))
    with pytest.raises(InputError, match=rf"_depth.npy: {W}x{H - 1}, but its picture is {W}x{H}"):
        dataset.read(dataset.samples("val")[-1])


# ---------------------------------------------------------------------------------------------------------
# ETH3D
# ---------------------------------------------------------------------------------------------------------

CAMERAS_TXT = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
# Number of cameras: 2
0 THIN_PRISM_FISHEYE 16 12 9.5 9.25 7.75 5.5 0.01 -0.02 0 0 0.001 0 0 0
1 PINHOLE 32 24 20.0 21.0 16.5 11.5
"""


def images_txt(names_cameras):
    """A COLMAP images.txt: each image line followed by its 2D points line (left empty for the last)."""
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for image_id, (name, camera_id) in enumerate(names_cameras):
        lines += [f"{image_id} 1 0 0 0 0.1 0.2 0.3 {camera_id} dslr_images/{name}",
                  "" if image_id == len(names_cameras) - 1 else "1.5 2.5 -1 3.5 4.5 17"]
    return "\n".join(lines) + "\n"


def eth3d_depth():
    depth = scene_metres().astype("<f4")
    depth[0, 0], depth[5, 10], depth[-1, :2] = np.inf, np.inf, 0  # no laser return (inf) and none (0)
    return depth


def write_eth3d_scene(scene, names_cameras):
    (scene / "dslr_calibration_jpg").mkdir(parents=True)
    (scene / "dslr_calibration_jpg" / "cameras.txt").write_text(CAMERAS_TXT)
    (scene / "dslr_calibration_jpg" / "images.txt").write_text(images_txt(names_cameras))
    (scene / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
    for name, _ in names_cameras:
        write_picture(scene / "images" / "dslr_images" / name, random_rgb(), format="JPEG", quality=95)
        eth3d_depth().tofile(scene / "ground_truth_depth" / "dslr_images" / name)  # raw float32, named .JPG


def test_eth3d_raw_float_depth_and_colmap_cameras(tmp_path):
    write_eth3d_scene(tmp_path / "courtyard", [("DSC_0286.JPG", 0), ("DSC_0287.JPG", 1)])
    write_eth3d_scene(tmp_path / "office", [("DSC_0001.JPG", 0)])
    dataset = READERS["eth3d"](tmp_path)
    assert [s.where for s in dataset.samples("train")] == [
        "eth3d courtyard/dslr_images/DSC_0286.JPG", "eth3d courtyard/dslr_images/DSC_0287.JPG",
        "eth3d office/dslr_images/DSC_0001.JPG"]
    assert len(dataset.samples("val")) == len(dataset.samples("test")) == 3
    first, second = (dataset.read(sample) for sample in dataset.samples("test")[:2])
    expected_valid = np.isfinite(eth3d_depth()) & (eth3d_depth() > 0)
    np.testing.assert_array_equal(first.valid, expected_valid)
    np.testing.assert_allclose(first.depth[expected_valid], scene_metres()[expected_valid], rtol=1e-6)
    assert (first.depth[~expected_valid] == 0).all() and first.rgb.shape == (H, W, 3)
    assert_camera(first.camera, 9.5, 9.25, 7.75, 5.5)
    assert_camera(second.camera, 10.0, 10.5, 8.25, 5.75)  # camera 1 is listed at 32x24: half of it here
    assert len(READERS["eth3d"](tmp_path / "office").samples("test")) == 1  # a single scene folder


def test_eth3d_bad_inputs(tmp_path):
    scene = tmp_path / "courtyard"
    write_eth3d_scene(scene, [("DSC_0286.JPG", 0), ("DSC_0287.JPG", 0)])
    depth_file = scene / "ground_truth_depth" / "dslr_images" / "DSC_0287.JPG"
    depth_file.write_bytes(eth3d_depth()[:-1].tobytes())
    dataset = READERS["eth3d"](tmp_path)
    with pytest.raises(InputError, match=rf"DSC_0287.JPG: {(H - 1) * W * 4} bytes, but its {W}x{H} picture"):
        dataset.read(dataset.samples("test")[1])
    depth_file.unlink()
    with pytest.raises(InputError, match="ground_truth_depth/dslr_images/DSC_0287.JPG: missing"):
        READERS["eth3d"](tmp_path)
    dataset = READERS["eth3d"](tmp_path, skip_bad=True)
    assert len(dataset.samples("test")) == 1 and len(dataset.skipped) == 1
    (scene / "dslr_calibration_jpg" / "cameras.txt").unlink()
    with pytest.raises(InputError, match="dslr_calibration_jpg/cameras.txt"):
        READERS["eth3d"](tmp_path)


# ---------------------------------------------------------------------------------------------------------
# SUN RGB-D
# ---------------------------------------------------------------------------------------------------------

INTRINSICS_TXT = "12.5 0 7.75\n0 12.25 6.5\n0 0 1\n"


def sunrgbd_millimetres():
    millimetres = np.round(scene_metres() * 1000).astype(np.uint32)
    millimetres[-2:, :] = 9001  # past 8.192 m: rotated, its low 3 bits are not zero
    millimetres[0, 5:7] = 0  # no measurement
    return millimetres


def sunrgbd_stored(millimetres):
    """SUN RGB-D's 16-bit values: millimetres rotated left by 3 bits."""
    return ((millimetres << 3) | (millimetres >> 13)) & 0xFFFF


def write_sunrgbd_sample(folder):
    write_picture(folder / "image" / f"{folder.name}.jpg", random_rgb(), format="JPEG", quality=95)
    write_png16(folder / "depth" / f"{folder.name}.png", sunrgbd_stored(sunrgbd_millimetres()))
    write_png16(folder / "depth_bfx" / f"{folder.name}.png", np.ones((H, W)))  # the refined maps: not read
    (folder / "intrinsics.txt").write_text(INTRINSICS_TXT)


def write_sunrgbd(root):
    for relative in ("kv1/NYUdata/NYU0001", "kv1/NYUdata/NYU0002", "kv2/align_kv2/2014-12-14_15-23-19_094"):
        write_sunrgbd_sample(root / relative)


def test_sunrgbd_undoes_the_rotation_and_reads_intrinsics(tmp_path):
    write_sunrgbd(tmp_path)
    assert sunrgbd_stored(np.array([9001]))[0] & 7 != 0
    dataset = READERS["sunrgbd"](tmp_path)
    assert [s.where for s in dataset.samples("train")] == [
        "sunrgbd kv1/NYUdata/NYU0001", "sunrgbd kv1/NYUdata/NYU0002", "sunrgbd kv2/align_kv2/2014-12-14_15-23-19_094"]
    assert len(dataset.samples("test")) == 3
    pair = dataset.read(dataset.samples("test")[2])
    millimetres = sunrgbd_millimetres()
    np.testing.assert_array_equal(pair.valid, millimetres > 0)
    np.testing.assert_allclose(pair.depth, millimetres / 1000.0, atol=1e-6)
    assert pair.depth[-1, 0] == pytest.approx(9.001)
    assert pair.rgb.shape == (H, W, 3)
    assert_camera(pair.camera, 12.5, 12.25, 7.75, 6.5)


def test_sunrgbd_test_list(tmp_path):
    write_sunrgbd(tmp_path)
    (tmp_path / "sunrgbd_test.txt").write_text("kv1/NYUdata/NYU0002/\nkv2/align_kv2/2014-12-14_15-23-19_094\n")
    assert len(READERS["sunrgbd"](tmp_path).samples("test")) == 2
    (tmp_path / "mine.txt").write_text("kv1/NYUdata/NYU0001\n")
    dataset = READERS["sunrgbd"](tmp_path / "mine.txt")
    assert [s.where for s in dataset.samples("val")] == ["sunrgbd kv1/NYUdata/NYU0001"]


def test_sunrgbd_listed_folder_without_depth(tmp_path):
    write_sunrgbd(tmp_path)
    depth = tmp_path / "kv1" / "NYUdata" / "NYU0002" / "depth" / "NYU0002.png"
    depth.unlink()
    (tmp_path / "sunrgbd_test.txt").write_text("kv1/NYUdata/NYU0001\nkv1/NYUdata/NYU0002\n")
    with pytest.raises(InputError, match="NYU0002/depth/"):
        READERS["sunrgbd"](tmp_path)
    dataset = READERS["sunrgbd"](tmp_path, skip_bad=True)
    assert len(dataset.samples("test")) == 1 and len(dataset.skipped) == 1
