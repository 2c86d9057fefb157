"""Cameras: a picture's camera from flags and EXIF, the focal-length correction of depth, the point cloud's
geometry, the training camera in contracts, evaluation on rooms rendered at other focal lengths, and
training in a canonical camera."""
import json
import math
import zipfile

import numpy as np
import pytest
from PIL import Image

from camera import NYU_CAMERA, Camera, exif_camera, flags_camera, picture_camera
from contract import Contract, model_contract, read_contract, save_model
from data import open_dataset
from datagen import encoded, write_zip
from datasets import KITTI_SPEC, listed_camera
from depth import NYU
from estimator import DepthEstimator
from helpers import constant_network, load_test_script
from pipeline import PipelineSettings, pipeline
from utils import InputError

test_script = load_test_script()

DEPTH_M = 2.0  # what the constant network answers everywhere, for the training camera


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    """(path, network): the constant network saved with an NYU contract (NYU's Kinect as its camera)."""
    net = constant_network(DEPTH_M, NYU)
    path = tmp_path_factory.mktemp("camera") / "constant.keras"
    save_model(net, path, model_contract(net, "nyu", NYU, (480, 640), training={"steps": 5000}))
    return path, net


def jpeg_with_exif(path, size=(640, 480), orientation=None, **tags):
    """A JPEG whose Exif IFD holds tags (name -> value, by the names camera.py uses)."""
    codes = {"focal_35mm": 0xA405, "focal": 0x920A, "plane_x": 0xA20E, "plane_unit": 0xA210,
             "pixel_x": 0xA002, "pixel_y": 0xA003}
    exif = Image.Exif()
    exif[0x8769] = {codes[name]: value for name, value in tags.items()}
    if orientation:
        exif[0x0112] = orientation
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, exif=exif)
    return path


# ---------------------------------------------------------------------------------------------------------
# A picture's camera
# ---------------------------------------------------------------------------------------------------------


def test_a_26_mm_phone_photo_scales_nyu_depth_by_0_89(tmp_path):
    """26 mm equivalent on a landscape 4:3 picture: fx = 26 / 36 of the width, against the Kinect's 0.811."""
    path = jpeg_with_exif(tmp_path / "phone.jpg", focal_35mm=26)
    camera, line = picture_camera(path, 480, 640, NYU_CAMERA)
    assert camera.fx == pytest.approx(26 / 36)
    assert camera.fx / NYU_CAMERA.fx == pytest.approx(0.891, abs=1e-3)
    assert line == "camera from EXIF FocalLengthIn35mmFilm 26 mm"
    assert (camera.cx, camera.cy) == (NYU_CAMERA.cx, NYU_CAMERA.cy)  # the training camera's principal point


def test_exif_focal_length_with_the_sensor_resolution(tmp_path):
    """4.25 mm on a sensor of 720 pixels per mm, 4032 pixels wide; the file is a 640-wide copy."""
    path = jpeg_with_exif(tmp_path / "f.jpg", focal=4.25, plane_x=720.0, plane_unit=4, pixel_x=4032, pixel_y=3024)
    camera, line = picture_camera(path, 480, 640, NYU_CAMERA)
    assert camera.fx == pytest.approx(4.25 * 720 / 4032)
    assert "FocalLength 4.25 mm on a sensor of 5.60 mm" in line
    inches = jpeg_with_exif(tmp_path / "i.jpg", focal=4.25, plane_x=720.0 * 25.4, plane_unit=2, pixel_x=4032,
                            pixel_y=3024)
    assert picture_camera(inches, 480, 640, NYU_CAMERA)[0].fx == pytest.approx(camera.fx)


def test_a_portrait_photo_is_turned_upright_and_its_35mm_focal_matched_on_the_long_side(tmp_path):
    path = jpeg_with_exif(tmp_path / "portrait.jpg", orientation=6, focal_35mm=26)
    from utils import load_image

    image = load_image(path)
    assert image.shape[:2] == (640, 480)  # stored 640x480 on its side, shown 480 wide and 640 high
    camera, _ = picture_camera(path, *image.shape[:2], NYU_CAMERA)
    assert camera.fx == pytest.approx(26 / 36 * 640 / 480)  # the width is the short side now


@pytest.mark.parametrize("tags, why", [
    ({"focal_35mm": 0}, None),  # zero means "unknown" in EXIF: as if absent
    ({"focal": (1, 0)}, "unreadable"),  # a rational with a zero denominator
    ({"focal_35mm": 1}, "field of view"),  # 1 mm: a 172-degree view, no camera
    ({"focal_35mm": 5000}, "field of view"),
    ({"focal": 4.25}, "sensor size is unknown"),
    ({"focal": 4.25, "plane_x": 720.0, "plane_unit": 9}, "not a unit"),
])
def test_broken_or_absurd_exif_falls_back_with_one_line(tmp_path, tags, why):
    path = jpeg_with_exif(tmp_path / "bad.jpg", **tags)
    camera, line = picture_camera(path, 480, 640, NYU_CAMERA)
    assert camera == NYU_CAMERA and "\n" not in line
    assert line.endswith("camera assumed to be the model's training camera (NYU Depth v2's Kinect)")
    if why:
        assert why in line, line


def test_pictures_without_exif_and_files_that_are_not_pictures_take_the_training_camera(tmp_path):
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "plain.png")
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg")
    for name in ("plain.png", "junk.jpg"):
        camera, line = picture_camera(tmp_path / name, 48, 64, NYU_CAMERA)
        assert camera == NYU_CAMERA and "training camera" in line


def test_flags_come_before_exif_and_give_fx_fov_or_35mm(tmp_path):
    path = jpeg_with_exif(tmp_path / "phone.jpg", focal_35mm=26)
    by_fx, line = picture_camera(path, 480, 640, NYU_CAMERA, fx=320.0)
    assert by_fx.fx == 0.5 and line == "camera from --fx 320 px"
    assert by_fx.fy == pytest.approx(NYU_CAMERA.fy * 0.5 / NYU_CAMERA.fx)  # the training camera's pixel aspect
    assert picture_camera(path, 480, 640, NYU_CAMERA, fx=320.0, fy=300.0)[0].fy == pytest.approx(300 / 480)
    assert picture_camera(path, 480, 640, NYU_CAMERA, fov=90.0)[0].fx == pytest.approx(0.5)
    assert picture_camera(path, 480, 640, NYU_CAMERA, focal_35mm=52)[0].fx == pytest.approx(52 / 36)
    assert picture_camera(path, 480, 640, NYU_CAMERA, use_exif=False)[0] == NYU_CAMERA
    with pytest.raises(InputError, match="both give the focal length"):
        flags_camera(480, 640, NYU_CAMERA, fx=300.0, fov=60.0)
    moved, _ = flags_camera(480, 640, NYU_CAMERA, cx=100.0, cy=50.0)  # a principal point alone keeps the focal
    assert (moved.fx, moved.cx, moved.cy) == (NYU_CAMERA.fx, 100 / 640, 50 / 480)


def test_exif_camera_reads_pil_images_directly(tmp_path):
    with Image.open(jpeg_with_exif(tmp_path / "a.jpg", focal_35mm=35)) as image:
        camera, note = exif_camera(image, 480, 640, NYU_CAMERA)
    assert note is None and camera.fx == pytest.approx(35 / 36)


# ---------------------------------------------------------------------------------------------------------
# The correction, exactly, and the point cloud's geometry
# ---------------------------------------------------------------------------------------------------------


def test_depth_scales_exactly_by_the_focal_length_ratio(constant_model):
    estimator = DepthEstimator.load(constant_model[0])
    assert estimator.camera == NYU_CAMERA and estimator.warnings == ()
    picture = np.full((96, 128, 3), 120, np.uint8)
    np.testing.assert_allclose(estimator.predict(picture), DEPTH_M, rtol=1e-5)
    half = NYU_CAMERA.with_focal(NYU_CAMERA.fx / 2, "half")
    np.testing.assert_allclose(estimator.predict(picture, camera=half), DEPTH_M / 2, rtol=1e-5)
    tele = NYU_CAMERA.with_focal(NYU_CAMERA.fx * 4, "tele")  # 8 m: still inside the range
    np.testing.assert_allclose(estimator.predict(picture, camera=tele), 4 * DEPTH_M, rtol=1e-5)
    far = NYU_CAMERA.with_focal(NYU_CAMERA.fx * 8, "far")  # 16 m: clipped to the range after scaling
    np.testing.assert_allclose(estimator.predict(picture, camera=far), NYU.max_m, rtol=1e-6)
    batch = estimator.predict(np.stack([picture, picture]), camera=[half, tele])
    np.testing.assert_allclose(batch[:, 5, 5], [DEPTH_M / 2, 4 * DEPTH_M], rtol=1e-5)


def test_test_py_halves_depth_at_half_the_focal_length_and_the_point_cloud_is_that_plane(constant_model, tmp_path,
                                                                                         capsys):
    """--fx at half the training focal length: half the depth. The PLY is the plane z = that depth, each
    point on its pixel's ray through the same camera: x = (u + 0.5 - cx) / fx z."""
    picture = tmp_path / "wall.png"
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(picture)
    fx = NYU_CAMERA.fx * 128 / 2  # pixels of the 128-wide picture
    test_script.main(["--input", str(picture), "--model", str(constant_model[0]), "--output", str(tmp_path / "o"),
                      "--npy", "--ply", "--fx", str(fx), "--fy", str(fx), "--cx", "60", "--cy", "40"])
    printed = capsys.readouterr().out
    assert f"wall.png: camera from --fx {fx:g} px: depth x 0.500, applied" in printed
    depth = np.load(tmp_path / "o" / "wall_depth_m.npy")
    np.testing.assert_allclose(depth, DEPTH_M / 2, rtol=1e-5)
    data = (tmp_path / "o" / "wall.ply").read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    from outputs import PLY_VERTEX

    points = np.frombuffer(data[end:], dtype=PLY_VERTEX).reshape(96, 128)
    np.testing.assert_allclose(points["z"], DEPTH_M / 2, rtol=1e-5)
    for row, col in ((0, 0), (95, 127), (40, 60)):
        assert points["x"][row, col] == pytest.approx((col + 0.5 - 60) / fx * DEPTH_M / 2, rel=1e-5, abs=1e-6)
        assert points["y"][row, col] == pytest.approx((row + 0.5 - 40) / fx * DEPTH_M / 2, rel=1e-5, abs=1e-6)
    # --no-camera-scale: the network's depth as it is, the camera still shaping the cloud.
    test_script.main(["--input", str(picture), "--model", str(constant_model[0]), "--output", str(tmp_path / "n"),
                      "--npy", "--fx", str(fx), "--no-camera-scale"])
    assert "depth x 0.500, not applied (--no-camera-scale)" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "n" / "wall_depth_m.npy"), DEPTH_M, rtol=1e-5)


def test_test_py_reads_the_photos_exif(constant_model, tmp_path, capsys):
    path = jpeg_with_exif(tmp_path / "phone.jpg", focal_35mm=26)
    test_script.main(["--input", str(path), "--model", str(constant_model[0]), "--output", str(tmp_path / "o"),
                      "--npy"])
    assert "phone.jpg: camera from EXIF FocalLengthIn35mmFilm 26 mm: depth x 0.891" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "o" / "phone_depth_m.npy"),
                               DEPTH_M * (26 / 36) / NYU_CAMERA.fx, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# The training camera a model carries
# ---------------------------------------------------------------------------------------------------------


def test_contracts_record_the_training_camera_and_older_files_assume_their_datasets(constant_model, tmp_path):
    contract = read_contract(constant_model[0])
    assert contract.camera == NYU_CAMERA
    with zipfile.ZipFile(constant_model[0]) as archive:
        assert json.loads(archive.read("densedepth.json"))["camera"]["fx"] == pytest.approx(518.8579 / 640)
    # A file saved before cameras were recorded: its dataset's camera, and a line that says so.
    old = dict(contract.to_dict())
    del old["camera"]
    kitti_old = Contract.from_dict({**old, "dataset": "kitti"})
    camera, line = kitti_old.training_camera("old.keras")
    assert camera.source == "KITTI's colour camera" and "old.keras records no training camera" in line
    path = tmp_path / "old.keras"
    constant_model[1].save(path)  # no contract at all
    estimator = DepthEstimator.load(path)
    assert estimator.camera == NYU_CAMERA
    assert any("records no training camera: assuming NYU Depth v2's Kinect" in w for w in estimator.warnings)


# ---------------------------------------------------------------------------------------------------------
# Data of other focal lengths: the rooms, evaluation, and training in a canonical camera
# ---------------------------------------------------------------------------------------------------------


def test_rooms_rendered_at_another_focal_length_list_it_and_keep_the_centre_ray(tmp_path, monkeypatch):
    import synthetic

    wide_rgb, wide = synthetic.render_scene(11, 48, 64, focal_scale=0.5)
    _, normal = synthetic.render_scene(11, 48, 64)
    assert np.abs(wide - normal).mean() > 0.05  # another view of the same room
    # The ray through the principal point does not depend on the focal length.
    cx, cy = NYU_CAMERA.cx * 64, NYU_CAMERA.cy * 48
    assert wide[int(cy), int(cx)] == pytest.approx(normal[int(cy), int(cx)], rel=0.05)
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path))
    dataset = open_dataset("synthetic:2:2:f0.5")
    sample = dataset.samples("test")[0]
    assert sample.focal == pytest.approx(518.8579 * 0.5, abs=1e-3)
    assert listed_camera(dataset.camera, sample, 640).fx == pytest.approx(NYU_CAMERA.fx * 0.5, rel=1e-6)
    assert dataset.camera.fx == pytest.approx(NYU_CAMERA.fx * 0.5)
    mixed = open_dataset("synthetic:2:2:f0.5-2")
    scales = [s.focal / 518.8579 for s in mixed.samples("train") + mixed.samples("test")]
    assert all(0.5 <= s <= 2 for s in scales) and len(set(scales)) == 4
    with pytest.raises(InputError, match="focal scales"):
        open_dataset("synthetic:2:2:f0.01")


def test_evaluation_rescales_by_the_datas_camera_and_says_so(constant_model, tmp_path, monkeypatch, capsys):
    import evaluate

    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path))
    rescaled = evaluate.main(["--model", str(constant_model[0]), "--data", "synthetic:2:2:f0.5", "--json",
                              str(tmp_path / "r.json"), "--save-predictions", str(tmp_path / "p.npz")])
    printed = capsys.readouterr().out
    assert "camera: depth rescaled x 0.500, the data's focal length (NYU's Kinect at x0.5 its focal length)" in printed
    assert rescaled["camera"]["rescaled"] and rescaled["camera"]["scale_min"] == pytest.approx(0.5)
    np.testing.assert_allclose(np.load(tmp_path / "p.npz")["00000"], DEPTH_M / 2, rtol=1e-5)
    kept = evaluate.main(["--model", str(constant_model[0]), "--data", "synthetic:2:2:f0.5", "--no-camera-scale"])
    assert not kept["camera"]["applied"] and "not rescaled (--camera-scale on rescales)" in capsys.readouterr().out
    same = evaluate.main(["--model", str(constant_model[0]), "--data", "synthetic:2:2"])
    assert not same["camera"]["rescaled"] and same["camera"]["scale_max"] == 1.0
    assert "camera: not rescaled: the data's camera is the model's" in capsys.readouterr().out


def test_canonical_training_targets_are_depth_in_the_canonical_camera(tmp_path):
    """A pair listed at focal f: its targets are those of depth x F / f, whatever f is."""
    rgb = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    depth = np.full((32, 48), 3.0, np.float32)
    members = {}
    rows = []
    for i, focal_px in enumerate((20.0, 40.0)):  # fx / width 0.417 and 0.833
        members[f"data/nyu2_train/{i}.png"] = encoded(rgb)
        members[f"data/nyu2_train/{i}_d.png"] = encoded(np.round(depth / 10 * 255).astype(np.uint8))
        rows.append(f"data/nyu2_train/{i}.png,data/nyu2_train/{i}_d.png,{focal_px}")
    members["data/nyu2_train.csv"] = "\n".join(rows).encode()
    members["data/nyu2_test.csv"] = rows[0].encode()
    write_zip(tmp_path / "two.zip", members)
    dataset = open_dataset(tmp_path / "two.zip")
    canonical = 0.5
    batches = pipeline(dataset, "train", 2, PipelineSettings((32, 48), canonical_focal=canonical), training=False)
    _, targets = next(iter(batches))
    stored = round(3.0 / 10 * 255) / 255 * 10  # what the 8-bit PNG keeps of 3 m
    for i, focal_px in enumerate((20.0, 40.0)):
        expected = NYU.max_m / (stored * canonical / (focal_px / 48))
        np.testing.assert_allclose(np.asarray(targets[i]), expected, rtol=1e-4)
    plain = next(iter(pipeline(dataset, "train", 2, (32, 48), training=False)))[1]
    np.testing.assert_allclose(np.asarray(plain), NYU.max_m / stored, rtol=1e-4)


def one_focal_zip(path, focal_px, count, depth_m):
    """An NYU-layout zip of `count` pairs at depth_m, every pair listed at focal_px (pictures 32x48)."""
    rgb = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    members, rows = {}, []
    for i in range(count):
        members[f"data/nyu2_train/{i}.png"] = encoded(rgb)
        members[f"data/nyu2_train/{i}_d.png"] = encoded(np.full((32, 48), round(depth_m / 10 * 255), np.uint8))
        rows.append(f"data/nyu2_train/{i}.png,data/nyu2_train/{i}_d.png,{focal_px}")
    members["data/nyu2_train.csv"] = "\n".join(rows).encode()
    members["data/nyu2_test.csv"] = rows[0].encode()
    write_zip(path, members)
    return path


def test_a_mixture_of_two_cameras_trains_in_the_canonical_one_at_the_weights_shares(tmp_path):
    """Two datasets of one focal length each (20 and 40 px at width 48), mixed 1:3: the training list holds
    their samples in those shares, and every target is its depth x F / f in the canonical camera F."""
    from data import Mixture, open_training_data

    near, far = one_focal_zip(tmp_path / "a.zip", 20.0, 2, 2.0), one_focal_zip(tmp_path / "b.zip", 40.0, 6, 4.0)
    mixture = open_training_data([near, far], (1, 3))
    assert isinstance(mixture, Mixture) and mixture.spec.name == "nyu+nyu"
    train = mixture.samples("train")
    from_near = sum(sample.where.startswith(str(near)) for sample in train)
    assert (from_near, len(train) - from_near) == (2, 6)  # 8 samples in all, shared 1:3
    assert len(mixture.samples("val")) == 2  # each dataset's own test pair
    canonical = 0.5
    settings = PipelineSettings((32, 48), canonical_focal=canonical)
    _, targets = next(iter(pipeline(mixture, "train", len(train), settings, training=False)))
    for sample, target in zip(train, np.asarray(targets)):
        focal_px, depth_m = (20.0, 2.0) if sample.where.startswith(str(near)) else (40.0, 4.0)
        stored = round(depth_m / 10 * 255) / 255 * 10
        np.testing.assert_allclose(target, NYU.max_m / (stored * canonical / (focal_px / 48)), rtol=1e-4)
    kitti_like = open_dataset(one_focal_zip(tmp_path / "c.zip", 40.0, 1, 4.0))
    kitti_like.spec = KITTI_SPEC  # data on KITTI's 80 m range
    with pytest.raises(InputError, match="different depth ranges"):
        Mixture([open_dataset(near), kitti_like])


def test_train_py_records_the_canonical_camera():
    import train

    dataset = type("Dataset", (), {"camera": NYU_CAMERA})
    args = train.parse_args(["--canonical-focal", "0.6", "--input-size", "64x96"])
    camera = train.training_camera(args, dataset, (64, 96))
    assert isinstance(camera, Camera) and (camera.fx, camera.fy) == (0.6, pytest.approx(0.6 * 96 / 64))
    assert "canonical" in camera.source
    assert train.training_camera(train.parse_args([]), dataset, (480, 640)) == NYU_CAMERA
    assert math.isclose(NYU_CAMERA.horizontal_fov_deg, 63.3, abs_tol=0.1)


def test_a_kitti_split_records_its_listed_focal_length_as_the_training_camera(tmp_path):
    from datagen import kitti_folder

    kitti_folder(tmp_path, n=2, hw=(375, 1242))
    dataset = open_dataset(tmp_path)
    assert dataset.camera.fx == pytest.approx(721.5377 / 1242, rel=1e-9)
    assert "721.538 px" in dataset.camera.source and dataset.camera.cx == pytest.approx(609.5593 / 1242)
    sample = dataset.samples("test")[0]
    assert listed_camera(dataset.camera, sample, 1242).fx == pytest.approx(dataset.camera.fx, rel=1e-12)
