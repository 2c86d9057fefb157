"""test.py end to end on small pictures of every mode: each promised file, its shape, units and range."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import estimator
from camera import NYU_CAMERA, flags_camera, scaled_intrinsics
from depth import resize_depth
from helpers import load_test_script, network_depth_m
from model import load_model
from outputs import PLY_VERTEX
from utils import load_image

test_script = load_test_script()

# name: (PIL mode, height, width); odd sizes on purpose
PICTURES = {"rgb": ("RGB", 64, 80), "gray": ("L", 48, 64), "rgba": ("RGBA", 64, 64), "sixteen": ("I;16", 40, 56),
            "odd": ("RGB", 50, 70)}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A folder of PNGs in several modes and sizes, plus a corrupt one."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for name, (mode, height, width) in PICTURES.items():
        if mode == "I;16":
            array = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        else:
            channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
            array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8).squeeze()
        Image.fromarray(array).save(folder / f"{name}.png")
    (folder / "broken.png").write_bytes(b"not a PNG at all")
    return folder


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, small_model_path, pictures):
    """test.py run once over the folder with --npy and --ply; its output folder and exit message."""
    out = tmp_path_factory.mktemp("out")
    with pytest.raises(SystemExit) as exit_info:
        test_script.main(["--input", str(pictures), "--model", str(small_model_path), "--output", str(out),
                          "--npy", "--ply"])
    return out, str(exit_info.value)


def read_ply(path):
    """(header lines, structured vertices) of a binary PLY that test.py wrote."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    return header, np.frombuffer(data[end:], dtype=PLY_VERTEX)


def test_an_unreadable_file_is_named_and_the_rest_processed(outputs):
    out, message = outputs
    assert message.startswith("error: 1 of 6 inputs could not be used")
    assert "broken.png: cannot read image" in message and "\n" not in message
    assert not list(out.glob("broken*"))
    for name in PICTURES:
        assert (out / f"{name}_depth_mm.png").is_file()
    assert (out / "montage.png").is_file()


@pytest.mark.parametrize("name", list(PICTURES))
def test_every_promised_file_with_shape_units_and_range(outputs, name):
    out, _ = outputs
    _, height, width = PICTURES[name]
    depth_m = np.load(out / f"{name}_depth_m.npy")
    assert depth_m.dtype == np.float32 and depth_m.shape == (height, width)  # the input's own size
    assert depth_m.min() >= 0.4 and depth_m.max() <= 10.0
    assert depth_m.std() > 0.01
    with Image.open(out / f"{name}_depth_mm.png") as im:
        assert im.mode.startswith("I")  # 16-bit grayscale
        depth_mm = np.asarray(im)
    assert depth_mm.shape == (height, width)
    np.testing.assert_array_equal(depth_mm, np.round(depth_m * 1000).astype(np.int64))
    assert 400 <= depth_mm.min() and depth_mm.max() <= 10000
    with Image.open(out / f"{name}_depth_color.png") as im:
        assert im.mode == "RGB" and im.size == (width, height)
        color = np.asarray(im)
    assert color.std() > 1  # a picture, not a flat colour


@pytest.mark.parametrize("name", ["rgb", "gray"])
def test_point_cloud_back_projects_the_depth_with_nyu_intrinsics(outputs, pictures, name):
    out, _ = outputs
    _, height, width = PICTURES[name]
    depth_m = np.load(out / f"{name}_depth_m.npy")
    header, vertices = read_ply(out / f"{name}.ply")
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert f"element vertex {height * width}" in header and len(vertices) == height * width
    k = scaled_intrinsics(height, width)  # NYU's Kinect scaled from 640x480
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    np.testing.assert_allclose(vertices["z"], depth_m.ravel(), rtol=1e-6)
    np.testing.assert_allclose(vertices["x"], ((u + 0.5 - k["cx"]) / k["fx"] * depth_m).ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vertices["y"], ((v + 0.5 - k["cy"]) / k["fy"] * depth_m).ravel(), rtol=1e-5, atol=1e-6)
    rgb = np.asarray(Image.open(pictures / f"{name}.png").convert("RGB")).reshape(-1, 3)
    np.testing.assert_array_equal(np.stack([vertices["red"], vertices["green"], vertices["blue"]], -1), rgb)


def test_depth_is_the_upsampled_prediction(outputs, pictures, small_model_path):
    out, _ = outputs
    image = load_image(pictures / "odd.png")  # 50x70: the network output is 25x35, upsampled back
    expected = resize_depth(network_depth_m(load_model(small_model_path), image[None])[0], 50, 70)
    np.testing.assert_allclose(np.load(out / "odd_depth_m.npy"), expected, rtol=1e-5)


def test_globs_custom_intrinsics_and_large_pictures(tmp_path, small_model_path, pictures):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
        tmp_path / "large.png")
    out = tmp_path / "out"
    test_script.main(["--input", str(pictures / "rgb.p?g"), str(tmp_path / "large.png"), "--model",
                      str(small_model_path), "--output", str(out), "--ply", "--fx", "100", "--cx", "10",
                      "--max-side", "64"])
    assert sorted(p.name for p in out.iterdir()) == [
        "large.ply", "large_depth_color.png", "large_depth_mm.png", "montage.png", "rgb.ply",
        "rgb_depth_color.png", "rgb_depth_mm.png"]
    with Image.open(out / "large_depth_mm.png") as im:
        assert im.size == (400, 300)  # seen by the network at 48x64, written at the input's size
    _, vertices = read_ply(out / "rgb.ply")
    z = vertices["z"].reshape(64, 80)
    np.testing.assert_allclose(vertices["x"].reshape(64, 80)[0, 3], (3.5 - 10.0) / 100.0 * z[0, 3], rtol=1e-5)
    # --fy and --cy not given: fy the training camera's (NYU's) pixel aspect times --fx, cy NYU's scaled
    k = flags_camera(64, 80, NYU_CAMERA, fx=100.0, cx=10.0)[0].pixels(64, 80)
    assert k["cy"] == pytest.approx(scaled_intrinsics(64, 80)["cy"])
    np.testing.assert_allclose(vertices["y"].reshape(64, 80)[5, 0], (5.5 - k["cy"]) / k["fy"] * z[5, 0], rtol=1e-5)


def test_default_model_is_the_newest_run_and_named(tmp_path, monkeypatch, small_model_path, pictures, capsys):
    (tmp_path / "runs" / "synthetic").mkdir(parents=True)
    shutil.copy(small_model_path, tmp_path / "runs" / "synthetic" / "final.keras")
    monkeypatch.chdir(tmp_path)
    test_script.main(["--input", str(pictures / "gray.png")])
    assert "model: runs/synthetic/final.keras (default" in capsys.readouterr().out
    assert (tmp_path / "outputs" / "gray_depth_color.png").is_file()


def test_same_names_from_two_folders_do_not_overwrite(tmp_path):
    paths = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "y.png"]
    assert test_script.output_stems(paths) == ["x", "x_2", "y"]


def test_network_sizes():
    assert estimator.network_size(480, 640, 640) == (480, 640)
    assert estimator.network_size(3000, 4000, 640) == (480, 640)
    assert estimator.network_size(300, 400, 0) == (300, 400)
    assert estimator.network_size(10, 20, 640) == (32, 64)  # tiny pictures are scaled up


def test_the_readme_python_example_runs_and_matches_test_py(contract_model, tmp_path, capsys):
    """examples/python_api.py (README's Python lines as a script) prints the estimator's figures for a
    picture, and they are test.py's: the API and the script are one code path."""
    import runpy
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "python_api.py"
    picture = Path(__file__).resolve().parents[1] / "examples" / "coffee.png"
    argv, sys.argv = sys.argv, [str(example), str(picture), "--model", str(contract_model[0])]
    try:
        runpy.run_path(str(example), run_name="__main__")
    finally:
        sys.argv = argv
    printed = capsys.readouterr().out
    test_script.main(["--input", str(picture), "--model", str(contract_model[0]), "--output", str(tmp_path), "--npy"])
    depth = np.load(tmp_path / "coffee_depth_m.npy")
    assert f"coffee.png: 360x240, nearest {depth.min():.3f} m, farthest {depth.max():.3f} m" in printed, printed
    assert "contract: synthetic, depth 0.4-10 m" in printed and depth.max() - depth.min() > 0.1


# ---------------------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------------------


def test_a_clip_gives_its_depth_video_metres_and_millimetres_frame_for_frame(tmp_path, small_model_path, capsys):
    """A 10-frame clip with sound beside a corrupt one and a picture: the clip's depth video has its frame
    count, rate and size (+ picture, + colour bar), the .npy every frame's metres (equal to the PNGs' mm),
    the corrupt clip is named in one line and the others are still done."""
    from test_video import write_clip

    from video import open_clip

    clip = write_clip(tmp_path / "walk.mp4", frames=10, fps=12, audio=True)
    (tmp_path / "broken.mov").write_bytes(b"not a clip")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "still.png")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        test_script.main(["--input", str(clip), str(tmp_path / "broken.mov"), str(tmp_path / "still.png"),
                          "--model", str(small_model_path), "--output", str(out), "--npy", "--png16",
                          "--side-by-side", "--temporal", "none"])
    assert "broken.mov: not a video" in str(exit_info.value) and "1 of 3 inputs" in str(exit_info.value)
    printed = capsys.readouterr().out
    assert "walk.mp4: 10 frames at 12 fps, 64x48" in printed and "its audio is not carried over" in printed
    with open_clip(out / "walk_depth.mp4") as video:
        assert (video.frame_count, video.fps, video.height) == (10, 12.0, 48)
        assert video.width > 2 * 64  # the picture, its depth and the colour bar
    metres = np.load(out / "walk_depth_m.npy", mmap_mode="r")
    assert metres.shape == (10, 48, 64) and metres.dtype == np.float32 and np.all(metres > 0)
    millimetres = sorted((out / "walk_depth_mm").glob("*.png"))
    assert len(millimetres) == 10
    np.testing.assert_allclose(np.asarray(Image.open(millimetres[3])) / 1000.0, metres[3], atol=6e-4)
    assert (out / "still_depth_color.png").is_file() and (out / "montage.png").is_file()


def test_a_folder_of_frames_is_one_clip_with_sequence_and_steady_depth_is_the_default(tmp_path, small_model_path):
    from test_video import picture

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        Image.fromarray(picture(i)).save(frames / f"frame_{i}.png")
    out = tmp_path / "out"
    test_script.main(["--input", str(frames), "--sequence", "--fps", "5", "--model", str(small_model_path),
                      "--output", str(out), "--npy"])
    steady = np.load(out / "frames_depth_m.npy")
    test_script.main(["--input", str(frames), "--sequence", "--fps", "5", "--model", str(small_model_path),
                      "--output", str(tmp_path / "raw"), "--npy", "--temporal", "none"])
    raw = np.load(tmp_path / "raw" / "frames_depth_m.npy")
    assert steady.shape == raw.shape == (6, 48, 64)
    np.testing.assert_array_equal(steady[0], raw[0])  # the first frame has nothing before it
    assert not np.array_equal(steady[1:], raw[1:])  # later ones are blended with what came before
