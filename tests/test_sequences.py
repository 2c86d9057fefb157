"""The sequence benchmarks' readers (sequences.py) on tiny datasets written in each distributor's own layout:
metres, valid masks, cameras and poses read back, frame order, TUM's association, and bad inputs."""
import math

import numpy as np
import pytest
from PIL import Image

import datasets
import sequences
from sequences import READERS
from utils import InputError

H, W = 12, 16


def plane_with_box(base=1.0):
    """Depth in metres that changes along rows and columns differently (a flip or transposition shows), with
    a nearer box in one corner."""
    rows, cols = np.mgrid[0:H, 0:W]
    depth = base + 0.1 * rows + 0.03 * cols
    depth[2:5, 10:14] = 0.75
    return depth.astype(np.float64)


def holes():
    """Where the sensor has no measurement."""
    mask = np.zeros((H, W), dtype=bool)
    mask[0, :3] = True
    mask[7, 5] = True
    mask[11, 15] = True
    return mask


def save_png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def save_picture(path, colour, size=(H, W), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), colour, dtype=np.uint8)).save(path, format=fmt)


def assert_camera(camera, height, width, fx, fy, cx, cy):
    assert camera.pixels(height, width) == pytest.approx({"fx": fx, "fy": fy, "cx": cx, "cy": cy})


# ---------------------------------------------------------------------------------------------------------
# ScanNet
# ---------------------------------------------------------------------------------------------------------

SCANNET_FRAMES = (10, 0, 2)  # written out of order: read back 0, 2, 10 (numerically, not 0, 10, 2)


def scannet_pose(number):
    pose = np.eye(4)
    pose[:3, 3] = (number, 2.0 * number, -1.0)
    return pose


def write_scannet(root):
    scene = root / "scene0000_00"
    (scene / "intrinsic").mkdir(parents=True)
    (scene / "pose").mkdir()
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", [[10, 0, 7.5, 0], [0, 11, 5.5, 0], [0, 0, 1, 0],
                                                              [0, 0, 0, 1]], fmt="%f")
    np.savetxt(scene / "intrinsic" / "intrinsic_color.txt", np.diag([40.0, 44.0, 1.0, 1.0]), fmt="%f")
    for number in SCANNET_FRAMES:
        millimetres = np.round(plane_with_box(1.0 + number) * 1000)
        millimetres[holes()] = 0
        save_png16(scene / "depth" / f"{number}.png", millimetres)
        save_picture(scene / "color" / f"{number}.jpg", (200, 100, 50), size=(2 * H, 2 * W))  # colour is larger
        pose = scannet_pose(number)
        if number == 10:
            pose[:] = -np.inf  # ScanNet's mark for a lost track
        np.savetxt(scene / "pose" / f"{number}.txt", pose, fmt="%f")
    return scene


def test_scannet_reads_metres_mask_camera_and_poses(tmp_path):
    write_scannet(tmp_path)
    reader = READERS["scannet"](str(tmp_path))
    assert reader.spec is datasets.spec_named("scannet") and reader.name == str(tmp_path)
    samples = reader.samples("test")
    assert samples == reader.samples("train") == reader.samples("val")
    assert [sample.index for sample in samples] == [0, 1, 2]
    assert [sample.where for sample in samples] == [f"scene0000_00 frame {n}" for n in (0, 2, 10)]
    assert list(reader.sequences()) == ["scene0000_00"] and reader.sequences()["scene0000_00"] == samples

    rgb, depth, valid, camera = reader.read(samples[1])
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8  # resized to the depth map's size
    assert np.abs(rgb.astype(int) - (200, 100, 50)).max() <= 3
    np.testing.assert_array_equal(valid, ~holes())
    np.testing.assert_allclose(depth[valid], plane_with_box(3.0)[valid], atol=5e-4)
    assert np.all(depth[~valid] == 0)
    assert_camera(camera, H, W, 10, 11, 7.5, 5.5)

    np.testing.assert_allclose(reader.pose(samples[1]), scannet_pose(2))
    with pytest.raises(InputError, match=r"10\.txt.*-inf"):
        reader.pose(samples[2])


def test_scannet_frame_list_and_bad_inputs(tmp_path):
    scene = write_scannet(tmp_path)
    (tmp_path / "scannet_test_frames.txt").write_text("scene0000_00/color/10.jpg\nscene0000_00 2\n")
    listed = READERS["scannet"](str(tmp_path)).samples("test")
    assert [sample.where for sample in listed] == ["scene0000_00 frame 2", "scene0000_00 frame 10"]
    assert len(READERS["scannet"](str(scene)).samples("test")) == 3  # one scene folder

    (scene / "depth" / "2.png").unlink()
    with pytest.raises(InputError, match=r"depth/2\.png"):
        READERS["scannet"](str(scene))
    reader = READERS["scannet"](str(scene), skip_bad=True)
    assert len(reader.samples("test")) == 2 and len(reader.skipped) == 1 and "2.png" in reader.skipped[0]
    with pytest.raises(InputError, match="not ScanNet"):
        READERS["scannet"](str(tmp_path / "scene0000_00" / "pose"))


# ---------------------------------------------------------------------------------------------------------
# MPI Sintel
# ---------------------------------------------------------------------------------------------------------

SINTEL_INTRINSICS = np.array([[20.0, 0, 7.5], [0, 21.0, 5.5], [0, 0, 1]])


def sintel_extrinsics(number):
    """World-to-camera [R|t]: a turn about z and an offset, different for each frame."""
    angle = math.radians(30 + number)
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    return np.hstack([rotation, [[1.0], [2.0], [3.0 + number]]])


def write_dpt(path, depth, tag=202021.25):
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = depth.shape
    path.write_bytes(np.float32(tag).astype("<f4").tobytes() + np.array([width, height], "<i4").tobytes()
                     + depth.astype("<f4").tobytes())


def write_cam(path, intrinsics, extrinsics):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.float32(202021.25).astype("<f4").tobytes() + intrinsics.astype("<f8").tobytes()
                     + extrinsics.astype("<f8").tobytes())


def write_sintel(root, frames=(1, 2, 10)):
    training = root / "training"
    for number in frames:
        name = f"frame_{number:04d}"
        save_picture(training / "final" / "alley_1" / f"{name}.png", (10, 20, 30))
        save_picture(training / "clean" / "alley_1" / f"{name}.png", (40, 50, 60))
        depth = plane_with_box(1.0 + number)
        depth[0, :4] = 500.0  # the sky: hundreds of metres, left to the evaluation cap
        write_dpt(training / "depth" / "alley_1" / f"{name}.dpt", depth)
        write_cam(training / "camdata_left" / "alley_1" / f"{name}.cam", SINTEL_INTRINSICS, sintel_extrinsics(number))
    return training


def test_sintel_reads_depth_camera_and_inverse_extrinsics(tmp_path):
    write_sintel(tmp_path)
    reader = READERS["sintel"](str(tmp_path))
    samples = reader.samples("val")
    assert [sample.where for sample in samples] == ["alley_1 frame 1", "alley_1 frame 2", "alley_1 frame 10"]
    assert reader.sequences() == {"alley_1": samples}

    rgb, depth, valid, camera = reader.read(samples[2])
    assert tuple(rgb[0, 0]) == (10, 20, 30)  # the final pass is preferred
    expected = plane_with_box(11.0)
    expected[0, :4] = 500.0
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert valid.all()
    assert_camera(camera, H, W, 20, 21, 7.5, 5.5)

    pose = reader.pose(samples[2])
    extrinsics = sintel_extrinsics(10)
    np.testing.assert_allclose(pose[:3, :3], extrinsics[:, :3].T, atol=1e-12)
    np.testing.assert_allclose(pose[:3, 3], -extrinsics[:, :3].T @ extrinsics[:, 3], atol=1e-12)
    np.testing.assert_allclose(pose @ np.vstack([extrinsics, [0, 0, 0, 1]]), np.eye(4), atol=1e-12)

    clean = READERS["sintel-clean"](str(tmp_path))
    assert tuple(clean.read(clean.samples("test")[0]).rgb[0, 0]) == (40, 50, 60)


def test_sintel_bad_inputs(tmp_path):
    training = write_sintel(tmp_path)
    write_dpt(training / "depth" / "alley_1" / "frame_0002.dpt", plane_with_box(), tag=1.0)
    write_dpt(training / "depth" / "alley_1" / "frame_0010.dpt", plane_with_box()[:, :-1])
    reader = READERS["sintel"](str(tmp_path))
    with pytest.raises(InputError, match=r"frame_0002\.dpt: not a Sintel \.dpt file: tag 1\.0"):
        reader.read(reader.samples("test")[1])
    with pytest.raises(InputError, match=r"frame_0010\.dpt.*15x12.*16x12"):
        reader.read(reader.samples("test")[2])

    (training / "camdata_left" / "alley_1" / "frame_0001.cam").unlink()
    with pytest.raises(InputError, match=r"frame_0001\.cam"):
        READERS["sintel"](str(tmp_path))
    skipping = READERS["sintel"](str(tmp_path), skip_bad=True)
    assert len(skipping.samples("test")) == 2 and len(skipping.skipped) == 1
    with pytest.raises(InputError, match="not Sintel"):
        READERS["sintel"](str(tmp_path / "training" / "final"))


# ---------------------------------------------------------------------------------------------------------
# TUM RGB-D
# ---------------------------------------------------------------------------------------------------------

# Colour at 1.0, 1.1, 1.2, 1.3 (listed out of order); depth 0.005 after 1.0; 0.03 after 1.1 (too far: not
# paired); 0.010 and 0.005 before 1.2 (the closer wins); 0.01 after 1.3.
TUM_RGB = ("1.300000", "1.000000", "1.100000", "1.200000")
TUM_DEPTH = ("1.005000", "1.130000", "1.190000", "1.195000", "1.310000")
QZ = math.sin(math.radians(45))  # a quarter turn about z


def write_tum(root, name="rgbd_dataset_freiburg1_desk"):
    sequence = root / name
    rgb_lines = ["# color images", "# timestamp filename"]
    for stamp in TUM_RGB:
        save_picture(sequence / "rgb" / f"{stamp}.png", (90, 80, 70))
        rgb_lines.append(f"{stamp} rgb/{stamp}.png")
    depth_lines = ["# depth maps"]
    for stamp in TUM_DEPTH:
        values = np.round(plane_with_box(float(stamp)) * 5000)
        values[holes()] = 0
        save_png16(sequence / "depth" / f"{stamp}.png", values)
        depth_lines.append(f"{stamp} depth/{stamp}.png")
    (sequence / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (sequence / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    # Ground truth near 1.0 and 1.1 only: 1.3's nearest line is 0.05 away.
    (sequence / "groundtruth.txt").write_text(
        "# timestamp tx ty tz qx qy qz qw\n"
        f"0.995 1.0 2.0 3.0 0 0 {QZ} {QZ}\n"
        "1.040 9.0 9.0 9.0 0 0 0 1\n"
        "1.101 4.0 5.0 6.0 0 0 0 1\n"
        "1.250 7.0 7.0 7.0 0 0 0 1\n")
    return sequence


def test_tum_association_metres_camera_and_poses(tmp_path):
    write_tum(tmp_path)
    reader = READERS["tum"](str(tmp_path))
    samples = reader.samples("test")
    pairs = [(sample.extra[1], sample.depth.rsplit("/", 1)[-1]) for sample in samples]
    assert pairs == [("1.000000", "1.005000.png"), ("1.200000", "1.195000.png"), ("1.300000", "1.310000.png")]
    assert reader.sequences() == {"rgbd_dataset_freiburg1_desk": samples}

    rgb, depth, valid, camera = reader.read(samples[0])
    assert rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(valid, ~holes())
    np.testing.assert_allclose(depth[valid], plane_with_box(1.005)[valid], atol=1.0 / 5000)
    assert np.all(depth[~valid] == 0)
    assert_camera(camera, 480, 640, 517.3, 516.5, 318.6, 255.3)

    pose = reader.pose(samples[0])  # the 0.995 line, not 1.040's
    np.testing.assert_allclose(pose[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(pose[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(pose[3], [0, 0, 0, 1])
    with pytest.raises(InputError, match="groundtruth.txt: no pose within"):
        reader.pose(samples[2])


def test_tum_cameras_by_sensor_and_greedy_rule():
    assert sequences.tum_intrinsics("rgbd_dataset_freiburg3_long_office") == (535.4, 539.2, 320.1, 247.6)
    assert sequences.tum_intrinsics("my_sequence") == (525.0, 525.0, 319.5, 239.5)
    # 2.011 is 0.004 from 2.015 and 0.011 from 2.0: the smallest gap is taken first, which leaves 2.0 alone
    # and 2.025 (0.010 from 2.015, already used) too, as associate.py does; nearest-per-frame would pair all four.
    assert sequences.associate([2.0, 2.015], [2.011, 2.025]) == [(2.015, 2.011)]


def test_tum_bad_inputs(tmp_path):
    sequence = write_tum(tmp_path)
    (sequence / "rgb" / "1.200000.png").unlink()
    with pytest.raises(InputError, match=r"rgb/1\.200000\.png"):
        READERS["tum"](str(sequence))
    reader = READERS["tum"](str(sequence), skip_bad=True)
    assert len(reader.samples("test")) == 2 and len(reader.skipped) == 1
    with pytest.raises(InputError, match="not TUM"):
        READERS["tum"](str(sequence / "rgb"))
