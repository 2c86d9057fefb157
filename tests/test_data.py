"""Datasets in every format: decoded values and units, errors, the synthetic dataset (the tf.data pipeline
over them: test_pipeline.py)."""
import json
import zipfile

import numpy as np
import pytest

from data import EigenArrays, open_dataset
from datagen import eigen_members, encoded, kitti_folder, nyu_members, write_folder, write_zip
from helpers import first_batch
from synthetic import synthetic_dataset_path
from utils import InputError


def test_nyu_zip_units_and_targets(nyu_zip):
    dataset = open_dataset(nyu_zip)
    assert len(dataset.samples("train")) == 3 and len(dataset.samples("test")) == 2
    _, depth = dataset.read(dataset.samples("train")[0])[:2]
    np.testing.assert_allclose(depth, 51 / 255 * 10, rtol=1e-6)   # 8-bit: 255 = 10 m -> 2 m
    rgb, depth = dataset.read(dataset.samples("test")[0])[:2]
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 48, 3)
    np.testing.assert_allclose(depth, 2.5, rtol=1e-6)             # 16-bit millimetres
    images, targets = first_batch(dataset, "test")
    assert images.shape == (2, 32, 48, 3) and targets.shape == (2, 16, 24, 1)
    np.testing.assert_allclose(targets, 10 / 2.5, rtol=1e-5)      # target = 10 m / depth
    _, targets = first_batch(dataset, "train")
    np.testing.assert_allclose(targets, 10 / 2.0, rtol=1e-5)


def test_nyu_folder_layout_reads_the_same(tmp_path):
    root = write_folder(tmp_path / "mydata", nyu_members())
    dataset = open_dataset(root)
    _, depth = dataset.read(dataset.samples("test")[1])[:2]
    np.testing.assert_allclose(depth, 2.5, rtol=1e-6)
    images, targets = first_batch(dataset, "train")
    assert images.shape == (3, 32, 48, 3)
    np.testing.assert_allclose(targets, 5.0, rtol=1e-5)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_eigen_arrays_zip(tmp_path, compression):
    members, rgb, depth = eigen_members()
    dataset = open_dataset(write_zip(tmp_path / "nyu_test.zip", members, compression))
    assert isinstance(dataset, EigenArrays)
    if compression == zipfile.ZIP_STORED:
        assert isinstance(dataset.rgb, np.memmap)  # read in place, not loaded whole
    got_rgb, got_depth = dataset.read(dataset.samples("test")[1])[:2]
    np.testing.assert_array_equal(got_rgb, rgb[1])
    np.testing.assert_array_equal(got_depth, depth[1])
    with pytest.raises(InputError, match="only a test split"):
        dataset.samples("train")


def test_kitti_sparse_depth_and_mask(tmp_path):
    dataset = open_dataset(kitti_folder(tmp_path / "kitti"))
    assert dataset.spec.name == "kitti" and dataset.spec.sparse
    assert len(dataset.samples("train")) == 2  # the 'None' line has no ground truth
    _, depth = dataset.read(dataset.samples("test")[0])[:2]
    assert depth.shape == (375, 1242)
    np.testing.assert_allclose(depth.ravel()[::7], 20.0)     # metres x 256
    assert np.count_nonzero(depth) == depth.ravel()[::7].size
    _, targets = first_batch(dataset, "test", input_hw=(352, 1216))
    assert targets.shape == (2, 176, 608, 2)
    target, mask = targets[..., 0].numpy(), targets[..., 1].numpy()
    assert 0.05 < mask.mean() < 0.3
    np.testing.assert_allclose(target[mask > 0], 80 / 20.0, rtol=1e-5)  # 80 m cap / depth
    assert np.all(np.isfinite(target))


def test_validation_holds_out_whole_training_scenes(nyu_zip):
    dataset = open_dataset(nyu_zip, validation="holdout")
    val_scenes = {s.scene for s in dataset.samples("val")}
    train_scenes = {s.scene for s in dataset.samples("train")}
    assert val_scenes and not val_scenes & train_scenes
    assert len(dataset.samples("val")) + len(dataset.samples("train")) == 3
    assert open_dataset(nyu_zip).samples("val") == open_dataset(nyu_zip).samples("test")


def test_csv_row_naming_a_missing_file(tmp_path):
    members = nyu_members()
    del members["data/nyu2_train/scene_1/1.png"]
    path = write_zip(tmp_path / "missing.zip", members)
    with pytest.raises(InputError, match=r"missing\.zip:data/nyu2_train\.csv row 2: "
                                         r"data/nyu2_train/scene_1/1\.png not found"):
        open_dataset(path)
    dataset = open_dataset(path, skip_bad=True)
    assert len(dataset.samples("train")) == 2 and len(dataset.skipped) == 1


def test_synthetic_dataset_is_rendered_once_and_matches_the_renderer(tmp_path):
    import synthetic

    path = synthetic_dataset_path("synthetic:2:1", cache_dir=tmp_path)
    mtime = path.stat().st_mtime
    assert synthetic_dataset_path("synthetic:2:1", cache_dir=tmp_path) == path
    assert path.stat().st_mtime == mtime
    dataset = open_dataset("synthetic:2:1", cache_dir=tmp_path)
    assert len(dataset.samples("train")) == 2 and len(dataset.samples("test")) == 1
    rgb, depth = dataset.read(dataset.samples("test")[0])[:2]
    expected_rgb, expected_depth = synthetic.render_scene(500_000)
    np.testing.assert_array_equal(rgb, expected_rgb)            # PNG: lossless
    np.testing.assert_allclose(depth, expected_depth, atol=0.0005 + 1e-6)  # millimetres
    _, depth = dataset.read(dataset.samples("train")[1])[:2]
    _, expected_depth = synthetic.render_scene(1)
    np.testing.assert_allclose(depth, expected_depth, atol=10 / 255 / 2 + 1e-5)  # 8-bit steps of 3.9 cm


def test_command_line_makes_a_synthetic_zip_and_shows_pairs(tmp_path, capsys):
    import data

    path = tmp_path / "s.zip"
    data.main(["--make-synthetic", str(path), "--train", "2", "--test", "1", "--workers", "1"])
    dataset = open_dataset(path)
    assert len(dataset.samples("train")) == 2 and len(dataset.samples("test")) == 1
    data.main(["--data", str(path), "--show", str(tmp_path / "pairs.png")])
    out = capsys.readouterr().out
    assert "train: 2 pairs" in out and (tmp_path / "pairs.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match="unknown --data 'nowhere'"):
        data.main(["--data", "nowhere"])
    with pytest.raises(SystemExit):
        data.main(["--make-synthetic", str(path), "--train", "0", "--test", "0"])


# ---------------------------------------------------------------------------------------------------------
# KITTI raw: velodyne scans projected with the calibration, and gt_depths.npz
# ---------------------------------------------------------------------------------------------------------

KITTI_K = {"fx": 721.5377, "cx": 609.5593, "cy": 172.854}
RAW_HW = (375, 1242)


def write_raw_kitti(root, scans, date="2011_09_26", drive="2011_09_26_drive_0002_sync"):
    """A raw KITTI layout: calibration (identity rectification, the velodyne 27 cm behind the camera, axes
    turned to the camera's), one PNG frame and one velodyne scan per entry of scans, and Eigen's split
    file listing the frames (left and right image, as eigen_test_files.txt does)."""
    from PIL import Image

    fx, cx, cy = KITTI_K["fx"], KITTI_K["cx"], KITTI_K["cy"]
    (root / date).mkdir(parents=True)
    (root / date / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n"
        f"S_rect_02: {RAW_HW[1]:.6e} {RAW_HW[0]:.6e}\n"
        "R_rect_00: 1 0 0 0 1 0 0 0 1\n"
        f"P_rect_02: {fx} 0 {cx} 0 0 {fx} {cy} 0 0 0 1 0\n")
    # velodyne x forward, y left, z up -> camera x right, y down, z forward; the scanner 0.27 m behind.
    (root / date / "calib_velo_to_cam.txt").write_text("R: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 -0.27\n")
    lines = []
    for i, points in enumerate(scans):
        frame = root / date / drive / "image_02" / "data" / f"{i:010d}.png"
        frame.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*RAW_HW, 3), 100 + i, np.uint8)).save(frame)
        scan = root / date / drive / "velodyne_points" / "data" / f"{i:010d}.bin"
        scan.parent.mkdir(parents=True, exist_ok=True)
        np.asarray(points, np.float32).tofile(scan)
        right = str(frame.relative_to(root)).replace("image_02", "image_03")
        lines.append(f"{frame.relative_to(root)} {right}")
    (root / "eigen_test_files.txt").write_text("\n".join(lines) + "\n")
    return root / "eigen_test_files.txt"


def pixel_of(depth_m, u, v):
    """Velodyne (x, y, z) of the point the camera sees at pixel (u, v) (1-based, as KITTI projects) at depth."""
    x_cam = (u - KITTI_K["cx"]) * depth_m / KITTI_K["fx"]
    y_cam = (v - KITTI_K["cy"]) * depth_m / KITTI_K["fx"]
    return [depth_m + 0.27, -x_cam, -y_cam, 0.5]  # velodyne axes, 0.27 m behind the camera


def test_velodyne_scans_project_to_the_pixels_and_depths_placed_by_hand(tmp_path):
    """Points placed at known pixels and depths: each lands on round(u) - 1, round(v) - 1 at its camera
    depth; of two points on one pixel the nearer wins; points behind the scanner or outside the picture
    are dropped."""
    from data import open_dataset
    from datasets import KITTI_RAW
    from kitti import velodyne_depth

    points = [pixel_of(12.0, 101, 201), pixel_of(30.0, 801, 51), pixel_of(7.0, 801, 51),
              [-5.0, 0.0, 0.0, 0.5], pixel_of(10.0, 2000, 100)]
    split = write_raw_kitti(tmp_path, [points])
    dataset = open_dataset(split)
    assert (dataset.spec.name, dataset.ground_truth, len(dataset.samples("test"))) == ("kitti", KITTI_RAW, 1)
    rgb, depth = dataset.read(dataset.samples("test")[0])[:2]
    assert rgb.shape == (*RAW_HW, 3) and depth.shape == RAW_HW
    assert depth[200, 100] == pytest.approx(12.0, abs=1e-4)
    assert depth[50, 800] == pytest.approx(7.0, abs=1e-4)  # the nearer of two
    assert np.count_nonzero(depth) == 2
    scan = tmp_path / "2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000000.bin"
    np.testing.assert_array_equal(velodyne_depth(tmp_path / "2011_09_26", scan), depth)


def test_gt_depths_npz_is_read_in_the_split_files_order(tmp_path):
    from data import open_dataset
    from datasets import KITTI_GT_NPZ

    split = write_raw_kitti(tmp_path, [[pixel_of(5.0, 11, 11)], [pixel_of(6.0, 11, 11)]])
    maps = np.empty(2, object)
    maps[0], maps[1] = np.full(RAW_HW, 3.0, np.float32), np.full(RAW_HW, 4.0, np.float32)
    np.savez_compressed(tmp_path / "gt_depths.npz", data=maps)
    dataset = open_dataset(split, gt_depths=tmp_path / "gt_depths.npz")
    assert dataset.ground_truth == KITTI_GT_NPZ
    assert [float(dataset.read(s)[1].mean()) for s in dataset.samples("test")] == [3.0, 4.0]
    np.savez_compressed(tmp_path / "short.npz", data=maps[:1])
    with pytest.raises(InputError, match="1 depth maps for the 2 frames"):
        open_dataset(split, gt_depths=tmp_path / "short.npz")
    with pytest.raises(InputError, match="ground truth for a raw KITTI split file.*is not one"):
        open_dataset(tmp_path / "2011_09_26" / "calib_cam_to_cam.txt", gt_depths=tmp_path / "gt_depths.npz")


def tum_scaled_folder(root, declared=None):
    """Your own RGB-D folder in NYU's layout whose 16-bit depth maps store metres x 5000 (TUM's encoding): a
    ramp 1.5-3.5 m, a hole at the corner; with `declared`, data/depth_units.json says so."""
    depth_m = np.tile(np.linspace(1.5, 3.5, 48), (32, 1))
    raw = np.round(depth_m * 5000).astype(np.uint16)
    raw[0, 0] = 0
    row = b"data/own/0.png,data/own/0_d.png"
    members = {"data/own/0.png": encoded(np.zeros((32, 48, 3), np.uint8)), "data/own/0_d.png": encoded(raw),
               "data/nyu2_train.csv": row, "data/nyu2_test.csv": row}
    if declared:
        members["data/depth_units.json"] = json.dumps(declared).encode()
    write_folder(root, members)
    return depth_m


def test_own_folder_reads_the_depth_units_it_declares(tmp_path):
    depth_m = tum_scaled_folder(tmp_path, {"units_per_m": 5000})
    dataset = open_dataset(tmp_path)
    assert dataset.spec.name == "folder" and dataset.encoding.units_per_m == 5000
    _, depth, valid, _ = dataset.read(dataset.samples("test")[0])
    assert not valid[0, 0] and valid.sum() == 32 * 48 - 1
    np.testing.assert_allclose(depth[valid], depth_m[valid], atol=1e-4)


def test_own_folder_read_at_the_wrong_units_is_refused_naming_the_plausible_ones(tmp_path):
    depth_m = tum_scaled_folder(tmp_path)  # read as NYU's millimetres: 7.5-17.5 m, mostly beyond NYU's 10 m
    dataset = open_dataset(tmp_path)
    with pytest.raises(InputError) as caught:
        dataset.read(dataset.samples("test")[0])
    message = str(caught.value)
    assert "0_d.png: read at 1000 values per metre" in message and "beyond 10 m" in message
    assert f"stored at 5000 values per metre, its median would be {np.median(depth_m.ravel()[1:]):.2f} m" in message
    assert 'data/depth_units.json ({"units_per_m": 5000})' in message
