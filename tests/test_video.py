"""video.py: clips read back in order and upright (mp4, mkv, webm, GIF, rotated, with audio, folders of
frames), the one-line errors for bad files, the writers' files (depth mp4 on a fixed scale, streaming .npy,
16-bit PNGs), batches(), and that decoding streams instead of keeping frames."""
import os

import av
import numpy as np
import pytest

from outputs import colorize
from utils import InputError, batches
from video import (
    VIDEO_SUFFIXES,
    DepthVideoWriter,
    NpyFramesWriter,
    Png16FramesWriter,
    frame_folder_clip,
    is_video,
    open_clip,
)

HEIGHT, WIDTH, FRAMES, FPS = 48, 64, 24, 24


def picture(i, height=HEIGHT, width=WIDTH):
    """Frame i: a white bar at columns 2i, 2i+1 (its position is the index) and a red square top left (so a
    turned or mirrored frame shows)."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, 2 * i:2 * i + 2] = 255
    rgb[:10, :10] = (255, 0, 0)
    return rgb


def bar_index(rgb):
    """The frame index picture() drew: the brightest pair of columns below the red square."""
    return int(np.argmax(rgb[12:].astype(float).mean(axis=(0, 2)))) // 2


def write_clip(path, frames=FRAMES, codec="libx264", rotation=None, audio=False, options=None, fps=FPS,
               draw=picture, size=(HEIGHT, WIDTH)):
    """A clip of draw(i) for i < frames; rotation as a counter-clockwise display matrix (PyAV's sense)."""
    out = av.open(str(path), "w", options=options or {})
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if audio:
        sound = out.add_stream("aac", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 8000
        for packet in [*sound.encode(samples), *sound.encode()]:
            out.mux(packet)
    for i in range(frames):
        for packet in stream.encode(av.VideoFrame.from_ndarray(draw(i), format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def assert_in_order(frames, shape=(HEIGHT, WIDTH, 3), turn=lambda rgb: rgb):
    """Each frame has the shape, looks like turn(picture(i)) and its bar says i."""
    for i, rgb in enumerate(frames):
        assert rgb.shape == shape and rgb.dtype == np.uint8
        expected = turn(picture(i))
        assert np.abs(rgb.astype(int) - expected).mean() < 12, f"frame {i} differs from picture({i})"
    assert i == FRAMES - 1


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def test_suffixes():
    assert all(is_video(f"a{s.upper()}") for s in VIDEO_SUFFIXES)
    assert not is_video("a.png") and not is_video("mp4")


def test_mp4_reads_back_in_order(mp4):
    with open_clip(mp4) as clip:
        assert (clip.fps, clip.frame_count, clip.height, clip.width) == (FPS, FRAMES, HEIGHT, WIDTH)
        assert clip.rotation == 0 and clip.has_audio is False
        assert_in_order(clip.frames())
        assert_in_order(clip.frames())  # a second pass decodes again from the start


def test_audio_stream_is_reported_and_skipped(tmp_path):
    with open_clip(write_clip(tmp_path / "sound.mp4", audio=True)) as clip:
        assert clip.has_audio is True
        assert_in_order(clip.frames())


@pytest.mark.parametrize("suffix, codec", [(".mkv", "libvpx-vp9"), (".webm", "libvpx"), (".avi", "mpeg4")])
def test_other_containers(tmp_path, suffix, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV's FFmpeg has no {codec} encoder")
    with open_clip(write_clip(tmp_path / f"clip{suffix}", codec=codec)) as clip:
        assert clip.fps == FPS and (clip.height, clip.width) == (HEIGHT, WIDTH)
        assert clip.frame_count in (None, FRAMES)  # Matroska does not list its frames
        assert_in_order(clip.frames())


def test_gif_rate_from_frame_durations(tmp_path):
    from PIL import Image

    path = tmp_path / "clip.gif"
    images = [Image.fromarray(picture(i)) for i in range(FRAMES)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)  # 50 ms: 20 fps
    with open_clip(path) as clip:
        assert clip.fps == pytest.approx(20.0) and (clip.height, clip.width) == (HEIGHT, WIDTH)
        assert [bar_index(rgb) for rgb in clip.frames()] == list(range(FRAMES))


@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_rotated_clip_decodes_upright(tmp_path, clockwise):
    # A phone held upright writes its landscape sensor's frames with a display matrix saying "turn 90
    # degrees clockwise" (the classic rotate=90 tag; FFmpeg's display matrix angle is counter-clockwise: -90).
    path = write_clip(tmp_path / "phone.mp4", rotation=-clockwise)
    with open_clip(path) as clip:
        assert clip.rotation == clockwise
        swapped = clockwise in (90, 270)
        assert (clip.height, clip.width) == ((WIDTH, HEIGHT) if swapped else (HEIGHT, WIDTH))
        frames = list(clip.frames())
    # np.rot90 turns counter-clockwise for k > 0
    assert_in_order(frames, shape=(clip.height, clip.width, 3), turn=lambda rgb: np.rot90(rgb, k=-clockwise // 90))
    if clockwise == 90:  # the red square, stored top left, is top right once turned clockwise (the bar,
        # stored in columns 0-1, is rows 0-1)
        corner = frames[0][2:10, -10:].reshape(-1, 3).mean(axis=0)
        assert corner[0] > 200 and corner[1] < 60 and frames[0][2:10, :10].mean() < 40


def test_not_a_video_empty_and_missing(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    for path in (text, empty):
        with pytest.raises(InputError, match=rf"^{path}: not a video PyAV can read \(InvalidDataError"):
            open_clip(path)
    with pytest.raises(InputError, match="no such file"):
        open_clip(tmp_path / "missing.mp4")


def test_no_video_stream_and_no_frames(tmp_path):
    def audio_only(path, video):
        out = av.open(str(path), "w")
        if video:  # a video stream that never gets a frame (Matroska keeps it; mp4 drops it)
            stream = out.add_stream("mpeg4", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = out.add_stream("aac", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 8000
        for packet in [*sound.encode(samples), *sound.encode()]:
            out.mux(packet)
        out.close()
        return path

    with pytest.raises(InputError, match=r"sound\.mp4: no video stream \(streams: audio\)"):
        open_clip(audio_only(tmp_path / "sound.mp4", video=False))
    with pytest.raises(InputError, match=r"blank\.mkv: no frames$"):
        open_clip(audio_only(tmp_path / "blank.mkv", video=True))


def noisy(i):
    """picture(i) over seeded noise: frames of a few kilobytes each, so half a file holds several frames."""
    rgb = np.random.default_rng(i).integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return np.maximum(rgb, picture(i))


def test_truncated_clips(tmp_path):
    # An mp4 with its index in front (faststart) lists its frames: cut in half, it is reported, after the
    # frames that remain were served, with how many there were.
    fast = write_clip(tmp_path / "fast.mp4", options={"movflags": "faststart"}, draw=noisy)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[:fast.stat().st_size // 2])
    served = []
    with open_clip(cut) as clip:
        assert clip.frame_count == FRAMES
        with pytest.raises(InputError, match=rf"^{cut}: corrupt or truncated after frame (\d+) ") as caught:
            served.extend(bar_index(rgb) for rgb in clip.frames())
    assert f"after frame {len(served)} " in str(caught.value)
    assert 0 < len(served) < FRAMES and served == list(range(len(served)))

    # An ordinary mp4 keeps its index at the end: half a file is not a video at all.
    whole = write_clip(tmp_path / "whole.mp4", draw=noisy)
    half = tmp_path / "half.mp4"
    half.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"^{half}: not a video PyAV can read"):
        open_clip(half)

    # Matroska does not list its frames: a cut file ends early (or fails naming the frame), never crashes.
    mkv = write_clip(tmp_path / "whole.mkv", codec="libvpx-vp9", draw=noisy)
    half = tmp_path / "half.mkv"
    half.write_bytes(mkv.read_bytes()[:mkv.stat().st_size // 2])
    served = []
    with open_clip(half) as clip:
        try:
            served.extend(bar_index(rgb) for rgb in clip.frames())
        except InputError as err:
            assert str(err).startswith(f"{half}: corrupt or truncated after frame {len(served)} ")
    assert 0 < len(served) < FRAMES and served == list(range(len(served)))


def test_frame_folder(tmp_path):
    from PIL import Image

    for i in range(FRAMES):
        Image.fromarray(picture(i)).save(tmp_path / f"frame_{i}.png")  # unpadded: natural order needed
    clip = frame_folder_clip(tmp_path, fps=12)
    assert (clip.fps, clip.frame_count, clip.height, clip.width) == (12.0, FRAMES, HEIGHT, WIDTH)
    assert (clip.rotation, clip.has_audio) == (0, False)
    assert_in_order(clip.frames())
    assert frame_folder_clip(str(tmp_path / "frame_1*.png")).frame_count == 11  # 1, 10-19

    # A photo stored sideways with an EXIF Orientation of 6 (turn 90 degrees clockwise) comes upright.
    sideways = tmp_path / "rotated"
    sideways.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(picture(0), 1))).save(sideways / "a.jpg", exif=exif, quality=95)
    clip = frame_folder_clip([sideways / "a.jpg"])
    assert (clip.height, clip.width) == (HEIGHT, WIDTH)
    assert np.abs(next(clip.frames()).astype(int) - picture(0)).mean() < 12

    Image.fromarray(picture(0, height=HEIGHT + 2)).save(tmp_path / "frame_99.png")
    with pytest.raises(InputError, match=r"frame_99\.png: 64x50 frame in a sequence of 64x48 frames"):
        list(frame_folder_clip(tmp_path).frames())
    with pytest.raises(InputError, match="no frames"):
        frame_folder_clip(tmp_path / "nothing-*.png")


def depth_frame(i):
    """Depth of frame i: a 2 m square (left) beside a ramp whose far end grows with i, so a per-frame scale
    would give the square another colour in each frame."""
    depth = np.tile(np.linspace(1.0, 1.5 + i * 0.3, WIDTH, dtype=np.float32), (HEIGHT, 1))
    depth[8:40, 4:28] = 2.0
    return depth


@pytest.mark.parametrize("side_by_side", [False, True])
def test_depth_video(tmp_path, side_by_side):
    path = tmp_path / "depth.mp4"
    near, far = 0.5, 10.0
    with DepthVideoWriter(path, 30000 / 1001, HEIGHT, WIDTH, (near, far), side_by_side=side_by_side) as out:
        for i in range(FRAMES):
            out.write(depth_frame(i), picture(i) if side_by_side else None)
    assert out.bar_width > 10
    content = WIDTH * (2 if side_by_side else 1) + out.bar_width
    assert out.width == content + content % 2 and out.height == HEIGHT
    with open_clip(path) as clip:
        assert clip.frame_count == FRAMES and clip.fps == pytest.approx(30000 / 1001, rel=1e-12)
        assert (clip.height, clip.width) == (out.height, out.width)
        frames = list(clip.frames())
    assert len(frames) == FRAMES
    left = WIDTH if side_by_side else 0
    square = [f[16:32, left + 10:left + 22].reshape(-1, 3).mean(axis=0) for f in frames]
    expected = colorize(np.array([[2.0]]), vmin=near, vmax=far)[0, 0]
    assert np.abs(square[1] - square[20]).max() < 6  # one fixed scale: the same depth, the same colour
    assert np.abs(square[1] - expected).max() < 12
    bar = frames[0][:, left + WIDTH:left + WIDTH + 14]  # the strip: far (bright yellow) top, near (dark) bottom
    assert bar[:4].mean() > bar[-4:].mean() + 60
    if side_by_side:
        assert [bar_index(f[:, :WIDTH]) for f in frames] == list(range(FRAMES))


def test_depth_video_closed_early_is_valid(tmp_path):
    path = tmp_path / "interrupted.mp4"
    out = DepthVideoWriter(path, 24, HEIGHT, WIDTH, (0.5, 10.0))
    with pytest.raises(KeyboardInterrupt):
        try:
            for i in range(FRAMES):
                if i == 7:
                    raise KeyboardInterrupt
                out.write(depth_frame(i))
        finally:
            out.close()
    with open_clip(path) as clip:
        assert sum(1 for _ in clip.frames()) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["interrupted.mp4"]  # no partial file left behind


def test_npy_frames(tmp_path):
    path = tmp_path / "depth.npy"
    with NpyFramesWriter(path, HEIGHT, WIDTH) as out:
        for i in range(FRAMES):
            out.write(depth_frame(i))
    stored = np.load(path, mmap_mode="r")
    assert stored.shape == (FRAMES, HEIGHT, WIDTH) and stored.dtype == np.float32
    np.testing.assert_array_equal(stored[13], depth_frame(13))
    assert path.stat().st_size == stored.offset + stored.nbytes and stored.offset % 64 == 0

    # Interrupted after 5 frames: close() still leaves a file of those 5.
    early = tmp_path / "early.npy"
    out = NpyFramesWriter(early, HEIGHT, WIDTH)
    try:
        for i in range(5):
            out.write(depth_frame(i)[..., None])  # (H, W, 1) is taken too
    finally:
        out.close()
    out.close()
    np.testing.assert_array_equal(np.load(early), np.stack([depth_frame(i) for i in range(5)]))
    with pytest.raises(ValueError, match="expected"):
        NpyFramesWriter(tmp_path / "wrong.npy", HEIGHT, WIDTH).write(np.zeros((HEIGHT, WIDTH + 1)))


def test_png16_frames(tmp_path):
    from PIL import Image

    depth = depth_frame(3)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, -1.0, 70.0
    with Png16FramesWriter(tmp_path / "mm") as out:
        out.write(depth)
        out.write(depth_frame(4))
    assert sorted(p.name for p in (tmp_path / "mm").iterdir()) == ["000000.png", "000001.png"]
    mm = np.asarray(Image.open(tmp_path / "mm" / "000000.png"))
    assert mm.dtype == np.uint16 and mm.shape == (HEIGHT, WIDTH)
    assert mm[20, 10] == 2000 and tuple(mm[0, :3]) == (0, 0, 65535)
    np.testing.assert_array_equal(mm[30, 30:], np.round(depth[30, 30:] * 1000))


def test_batches():
    def numbers():
        yield from range(7)
        raise AssertionError("batches read past what was asked")

    drawn = batches(numbers(), 3)
    assert next(drawn) == [0, 1, 2] and next(drawn) == [3, 4, 5]
    assert list(batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], 2)) == []
    with pytest.raises(ValueError):
        next(batches(range(3), 0))


def resident_bytes():
    """This process's resident memory (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
def test_decoding_streams(tmp_path):
    # Resident memory, not tracemalloc: PyAV's to_ndarray returns views of FFmpeg's frame buffers, which
    # tracemalloc never sees (a list of every frame peaks below one frame there). Kept frames would add
    # 200 x 147 kB = 29 MB; streaming adds well under a megabyte after the first frame (decoder set up).
    height, width = 192, 256
    long_clip = write_clip(tmp_path / "long.mp4", frames=200, draw=lambda i: picture(i % 100, height, width),
                           size=(height, width))
    count, start, peak = 0, None, 0
    with open_clip(long_clip) as clip:
        for rgb in clip.frames():
            assert bar_index(rgb) == count % 100
            count += 1
            peak = max(peak, resident_bytes())
            start = start or peak
    assert count == 200
    grown = peak - start
    assert grown < 20 * height * width * 3, f"decoding 200 frames grew resident memory by {grown} bytes"


# ---------------------------------------------------------------------------------------------------------
# The stabiliser
# ---------------------------------------------------------------------------------------------------------


def clip_with_truth(path, frames=10, height=60, width=80):
    """(rgbs, depths, poses, intrinsics) of a small synthetic clip with exact depth and pose."""
    from synthetic import clip_intrinsics, render_clip

    rgbs, depths, poses = zip(*render_clip(7, frames, path, height, width))
    return np.stack(rgbs), np.stack(depths), np.stack(poses), clip_intrinsics(height, width)


@pytest.mark.parametrize("path", ["pan", "dolly"])
def test_stabiliser_halves_the_flicker_of_a_jittering_prediction_and_keeps_its_accuracy(path):
    """Predictions = the truth with a random scale per frame (8 %) and blotchy noise: the steady depth's TAE
    is at most half the raw one's, and its abs rel within 0.01 of the raw prediction's."""
    from metrics import compute_errors, per_pair_tae
    from video import DepthStabiliser

    rgbs, depths, poses, k = clip_with_truth(path)
    rng = np.random.default_rng(0)
    blotches = [np.kron(rng.normal(0, 0.03, (6, 8)), np.ones((10, 10))) for _ in depths]
    raw = np.stack([d * rng.uniform(0.92, 1.08) * (1 + b) for d, b in zip(depths, blotches)]).astype(np.float32)
    steady_filter = DepthStabiliser()
    steady = np.stack([steady_filter(rgb, d) for rgb, d in zip(rgbs, raw)])
    assert per_pair_tae(steady, poses, k).mean() <= 0.5 * per_pair_tae(raw, poses, k).mean()
    rel = [np.mean([compute_errors(g, p)["abs_rel"] for g, p in zip(depths, preds)]) for preds in (raw, steady)]
    assert rel[1] <= rel[0] + 0.01


def test_stabiliser_keeps_exact_depth_exact_while_the_camera_walks():
    """Exact predictions of a walk: the steady depth stays metric and in place (no lag, no drift). At
    120x160: on smaller frames a step of 2 cm moves the picture by under half a pixel, too little to
    measure the motion by."""
    from metrics import compute_errors
    from video import DepthStabiliser

    rgbs, depths, _, _ = clip_with_truth("walk", 24, 120, 160)
    steady_filter = DepthStabiliser()
    errors = [compute_errors(g, steady_filter(rgb, g))["abs_rel"] for rgb, g in zip(rgbs, depths)]
    assert np.mean(errors) < 0.015 and max(errors) < 0.02  # and no growth: the last frames no worse
    assert np.mean(errors[-6:]) <= np.mean(errors[6:12]) + 0.005
    still = DepthStabiliser()
    for _ in range(20):  # a still camera: the same frame, the same depth, for ever
        kept = still(rgbs[0], depths[0] * 1.3)
    np.testing.assert_allclose(kept, depths[0] * 1.3, rtol=1e-5)


def test_a_large_frame_keeps_its_detail_and_receives_the_blend():
    """A 480x640 frame is blended on a smaller copy: a still camera whose depth jumps by 10 % in one frame
    gets the blend's answer (1.02 x the steady depth, 0.2 of the jump kept) while its fine detail stays
    its own."""
    from video import DepthStabiliser

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    depth = (2.0 + 0.5 * (rng.random((480, 640)) > 0.5)).astype(np.float32)  # pixel-fine detail
    steady = DepthStabiliser()
    for _ in range(5):  # a still camera for a few frames: the motion's change is nothing
        np.testing.assert_allclose(steady(rgb, depth), depth, rtol=1e-5)
    out = steady(rgb, 1.1 * depth)
    assert out.mean() / depth.mean() == pytest.approx(1.02, abs=2e-3)
    detail = out - np.mean(out)
    assert np.corrcoef(detail.ravel(), depth.ravel())[0, 1] > 0.99


def textured_plane_pair(motion, depth_m=2.0, height=120, width=160):
    """(this grey, previous grey, this depth, intrinsics): a smoothly textured wall facing the camera at
    depth_m, seen again after the camera moved; motion takes points of this camera into the previous one.
    The previous picture is the texture; this one looks each pixel up where the motion takes it, so the
    pair is photo-consistent by construction (the synthetic renderer's grain is not)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    from camera import NYU_CAMERA

    k = NYU_CAMERA.pixels(height, width)
    rng = np.random.default_rng(5)
    previous = gaussian_filter(rng.random((height, width)), 2.0)
    previous = (previous - previous.min()) / (previous.max() - previous.min())
    # This frame's depth: the wall's plane z = depth_m in the previous camera, met along each ray of this one.
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(cols + 0.5 - k["cx"]) / k["fx"], (rows + 0.5 - k["cy"]) / k["fy"], np.ones_like(rows)])
    along = np.einsum("j,jhw->hw", motion[2, :3], rays)
    depth = (depth_m - motion[2, 3]) / along
    there = np.einsum("ij,jhw->ihw", motion[:3, :3], rays * depth) + motion[:3, 3, None, None]
    at = [k["fy"] * there[1] / there[2] + k["cy"] - 0.5, k["fx"] * there[0] / there[2] + k["cx"] - 0.5]
    this = map_coordinates(previous, at, order=3, mode="reflect")
    return this, previous, depth.astype(np.float32), k


@pytest.mark.parametrize("rotation_deg, translation_m", [((0, 1.0, 0), (0, 0, 0)), ((0, 0, 0), (0, 0, 0.03)),
                                                         ((0.3, -0.5, 0.2), (0.01, -0.005, 0.02))])
def test_camera_motion_recovers_a_known_motion(rotation_deg, translation_m):
    """A pan of 1 degree, a step of 3 cm towards a wall, and both mixed: the motion comes back within
    0.03 degrees and 2 mm, from a standing start (identity); the carried depth then lands on this frame's."""
    from scipy.spatial.transform import Rotation

    from video import camera_motion, carried_depth

    truth = np.eye(4)
    truth[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    truth[:3, 3] = translation_m
    this, previous, depth, k = textured_plane_pair(truth)
    found = camera_motion(this, previous, depth, k)
    assert np.degrees(Rotation.from_matrix(found[:3, :3] @ truth[:3, :3].T).magnitude()) < 0.03
    assert np.linalg.norm(found[:3, 3] - truth[:3, 3]) < 0.002
    wall = np.full_like(depth, 2.0)  # the previous frame's depth of the wall
    rows, cols, carried = carried_depth(wall, depth, found, k)
    inside = (rows >= 0) & (rows <= depth.shape[0] - 1) & (cols >= 0) & (cols <= depth.shape[1] - 1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(carried[inside], depth[inside], rtol=2e-3)


def test_a_cut_starts_the_stabiliser_again():
    """Two unrelated pictures in a row (a cut), or a blank one: the frame's depth is its own prediction, untouched."""
    from video import DepthStabiliser

    rng = np.random.default_rng(8)
    first, second = (rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(2))
    steady = DepthStabiliser()
    steady(first, np.full((60, 80), 2.0, np.float32))
    depth = np.linspace(1.0, 4.0, 60 * 80, dtype=np.float32).reshape(60, 80)
    np.testing.assert_array_equal(steady(second, depth), depth)
    blank = np.full((60, 80, 3), 128, np.uint8)  # nothing to align on: a fade to grey, then back
    np.testing.assert_array_equal(steady(blank, 1.5 * depth), 1.5 * depth)
    np.testing.assert_array_equal(steady(second, depth), depth)
