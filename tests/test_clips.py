"""Tests of the synthetic clips (synthetic.render_clip, the cached video set and its reader) and of the
temporal alignment error (metrics.temporal_alignment_error). Small clips; no TensorFlow.

    python -m pytest tests/test_clips.py -q
"""
from pathlib import Path

import numpy as np
import pytest

import metrics
import sequences
import synthetic
from camera import Camera
from utils import InputError

H, W = 60, 80
FRAMES = 6
SEED = 5001


@pytest.fixture(scope="module")
def clips():
    """{path: (depths (N, H, W), poses (N, 4, 4), rgbs)} of one room along each path."""
    result = {}
    for path in synthetic.CLIP_PATHS:
        frames = list(synthetic.render_clip(SEED, FRAMES, path, H, W))
        result[path] = (np.stack([f[1] for f in frames]), np.stack([f[2] for f in frames]),
                        np.stack([f[0] for f in frames]))
    return result


def reprojected_inverse_depth_error(depth_src, depth_dst, src_to_dst, k):
    """|z' / d - 1| of every source pixel that projects inside the destination, d interpolated bilinearly
    in inverse depth (exact on any plane, where 1 / z is affine in the pixel coordinates)."""
    fx, fy, cx, cy = k
    height, width = depth_src.shape
    v, u = np.mgrid[0:height, 0:width]
    z = depth_src.astype(np.float64)
    points = np.stack([(u + 0.5 - cx) / fx * z, (v + 0.5 - cy) / fy * z, z]).reshape(3, -1)
    moved = src_to_dst[:3, :3] @ points + src_to_dst[:3, 3:]
    x, y = fx * moved[0] / moved[2] + cx - 0.5, fy * moved[1] / moved[2] + cy - 0.5  # pixel centres at integers
    inside = (moved[2] > 0) & (x >= 0) & (x < width - 1) & (y >= 0) & (y < height - 1)
    x, y, z_new = x[inside], y[inside], moved[2, inside]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    ax, ay = x - x0, y - y0
    inverse = 1.0 / depth_dst.astype(np.float64)
    interpolated = (inverse[y0, x0] * (1 - ax) * (1 - ay) + inverse[y0, x0 + 1] * ax * (1 - ay)
                    + inverse[y0 + 1, x0] * (1 - ax) * ay + inverse[y0 + 1, x0 + 1] * ax * ay)
    return np.abs(z_new * interpolated - 1.0)


# ---------------------------------------------------------------------------------------------------------
# render_clip: paths, and depth consistent with the poses
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", synthetic.CLIP_PATHS)
def test_clip_depth_is_consistent_with_its_poses(clips, path):
    depths, poses, _ = clips[path]
    k = synthetic.clip_intrinsics(H, W)
    # The metric: only nearest-pixel sampling at 60x80 and occlusion edges are left (it halves with each
    # doubling of the resolution).
    assert metrics.temporal_alignment_error(depths, poses, k) < 1.0
    # Sub-pixel: most points land exactly (float32 depth) on the next frame's surface.
    for t in range(FRAMES - 1):
        error = reprojected_inverse_depth_error(depths[t], depths[t + 1], np.linalg.inv(poses[t + 1]) @ poses[t], k)
        assert np.median(error) < 1e-5
        assert np.mean(error < 1e-4) > 0.8


def test_clip_paths_move_as_described(clips):
    for depths, poses, rgbs in clips.values():
        assert depths.shape == (FRAMES, H, W) and depths.dtype == np.float32
        assert rgbs.shape == (FRAMES, H, W, 3) and rgbs.dtype == np.uint8
        assert poses.shape == (FRAMES, 4, 4) and poses.dtype == np.float64
        np.testing.assert_allclose(poses[:, :3, :3] @ np.transpose(poses[:, :3, :3], (0, 2, 1)),
                                   np.broadcast_to(np.eye(3), (FRAMES, 3, 3)), atol=1e-12)
        assert depths.min() > synthetic.MIN_DEPTH_M and depths.max() < synthetic.MAX_DEPTH_M  # nothing clipped
        assert not np.array_equal(rgbs[0], rgbs[-1])
    scene = synthetic.sample_scene(np.random.default_rng(SEED))
    np.testing.assert_allclose(clips["walk"][1][0], synthetic.camera_to_world(scene.camera))  # starts at the room's
    forward = synthetic.camera_rotation(scene.camera)[:, 2]  # optical axis in the world
    heading = forward[:2] / np.linalg.norm(forward[:2])
    walk, pan, dolly = (clips[p][1] for p in synthetic.CLIP_PATHS)
    step = walk[-1, :3, 3] - walk[0, :3, 3]
    assert 0.1 < step[:2] @ heading <= synthetic.WALK_M + 1e-9
    np.testing.assert_allclose(pan[:, :3, 3], np.broadcast_to(pan[0, :3, 3], (FRAMES, 3)))  # turns in place
    turned = np.arctan2(pan[-1, 1, 2], pan[-1, 0, 2]) - np.arctan2(pan[0, 1, 2], pan[0, 0, 2])
    assert turned == pytest.approx(synthetic.PAN_RAD, abs=1e-9)
    np.testing.assert_allclose(pan[:, 2, :3], np.broadcast_to(pan[0, 2, :3], (FRAMES, 3)), atol=1e-12)  # about z
    side = dolly[-1, :3, 3] - dolly[0, :3, 3]
    assert abs(side[:2] @ heading) < 1e-9 and side[2] == 0
    assert 0.1 < np.linalg.norm(side) <= synthetic.DOLLY_M + 1e-9
    # Smooth: the cosine ease starts and ends at rest.
    gaps = np.linalg.norm(np.diff(dolly[:, :3, 3], axis=0), axis=1)
    assert gaps[0] < gaps[len(gaps) // 2] and gaps[-1] < gaps[len(gaps) // 2]


def test_clips_stay_clear_of_walls_and_furniture():
    for seed in range(5000, 5030):
        scene = synthetic.sample_scene(np.random.default_rng(seed))
        for path in synthetic.CLIP_PATHS:
            assert all(synthetic._clip_clear(scene, c.position) for c in synthetic.clip_cameras(scene, 12, path))


# ---------------------------------------------------------------------------------------------------------
# TAE
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", synthetic.CLIP_PATHS)
def test_tae_grows_with_flicker_and_ignores_one_scale(clips, path):
    depths, poses, _ = clips[path]
    k = synthetic.clip_intrinsics(H, W)
    exact = metrics.temporal_alignment_error(depths, poses, k)
    # The whole clip at one scale, its camera path with it: the same geometry, the same TAE.
    scaled_poses = poses.copy()
    scaled_poses[:, :3, 3] *= 1.2
    assert metrics.temporal_alignment_error(depths * 1.2, scaled_poses, k) == pytest.approx(exact, abs=0.05)
    # The depth alone at one scale (all frames x1.2): still near 0, where per-frame jitter is not. Turning in
    # place it is exact; a moving camera leaves (scale - 1) x step / depth (0.6 m over 5 steps, about 2 m away).
    assert metrics.temporal_alignment_error(depths * 1.2, poses, k) < exact + 1.0
    scales = 1.0 + 0.1 * np.random.default_rng(0).standard_normal(FRAMES)
    jittered = metrics.temporal_alignment_error(depths * scales[:, None, None], poses, k)
    ratios = scales[:-1] / scales[1:]
    by_hand = 100 * np.mean((np.abs(ratios - 1) + np.abs(1 / ratios - 1)) / 2)  # each direction: |s / s' - 1|
    assert 5 < by_hand < 20
    assert jittered == pytest.approx(by_hand, abs=1.0)


def eval_tae_reference(depth1, depth2, relative, k_pixel_index, mask2):
    """eval_tae.py's tae_torch in NumPy, line by line: pixel centres at integer indices, round to nearest,
    scatter (the last write wins), abs rel against the destination's depth."""
    height, width = depth1.shape
    fx, fy, cx, cy = k_pixel_index
    xx, yy = np.meshgrid(np.arange(width), np.arange(height))
    points = np.stack([((xx - cx) * depth1 / fx).ravel(), ((yy - cy) * depth1 / fy).ravel(), depth1.ravel()], 1)
    moved = points @ relative[:3, :3].T + relative[:3, 3]
    x = np.round(moved[:, 0] * fx / moved[:, 2] + cx).astype(int)
    y = np.round(moved[:, 1] * fy / moved[:, 2] + cy).astype(int)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    projected = np.zeros((height, width))
    projected[y[inside], x[inside]] = moved[inside, 2]
    valid = (projected > 0) & (depth2 > 0) & mask2
    return np.mean(np.abs(depth2[valid] - projected[valid]) / depth2[valid])


def test_tae_matches_eval_tae_reference(clips):
    depths, poses, _ = clips["dolly"]
    depths = depths.astype(np.float64) * (1.0 + 0.05 * np.random.default_rng(1).standard_normal(depths.shape))
    fx, fy, cx, cy = synthetic.clip_intrinsics(H, W)
    k_index = (fx, fy, cx - 0.5, cy - 0.5)  # the same camera with pixel centres at integers
    everywhere = np.ones((H, W), bool)
    total = 0.0
    for t in range(FRAMES - 1):
        relative = np.linalg.inv(poses[t + 1]) @ poses[t]
        total += eval_tae_reference(depths[t], depths[t + 1], relative, k_index, everywhere)
        total += eval_tae_reference(depths[t + 1], depths[t], np.linalg.inv(relative), k_index, everywhere)
    expected = 100 * total / (2 * (FRAMES - 1))
    assert metrics.temporal_alignment_error(depths, poses, (fx, fy, cx, cy)) == pytest.approx(expected, rel=1e-9)
    per_pair = metrics.per_pair_tae(depths, poses, {"fx": fx, "fy": fy, "cx": cx, "cy": cy})
    assert per_pair.shape == (FRAMES - 1,) and per_pair.mean() == pytest.approx(expected, rel=1e-9)


def plane_pair(second_depth_m):
    """Two frames of a fronto-parallel plane 2 m away, the camera 0.5 m nearer in the second frame."""
    depths = np.stack([np.full((H, W), 2.0), np.full((H, W), second_depth_m)])
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, 2, 3] = 0.5  # forward: camera z
    return depths, poses


def test_tae_of_a_plane_by_hand():
    k = synthetic.clip_intrinsics(H, W)
    assert metrics.temporal_alignment_error(*plane_pair(1.5), k) == pytest.approx(0.0, abs=1e-12)
    # Frame 0 into frame 1: 1.5 m against 1.6 m; frame 1 into frame 0: 2.1 m against 2.0 m.
    by_hand = 100 * (abs(1.5 - 1.6) / 1.6 + abs(2.1 - 2.0) / 2.0) / 2
    assert by_hand == pytest.approx(5.625)
    assert metrics.temporal_alignment_error(*plane_pair(1.6), k) == pytest.approx(by_hand, rel=1e-9)
    assert metrics.temporal_alignment_error(*plane_pair(1.6), k, splat="nearest") == pytest.approx(by_hand, rel=1e-9)


def test_tae_leaves_out_invalid_pixels():
    k = synthetic.clip_intrinsics(H, W)
    depths, poses = plane_pair(1.5)
    valid = np.ones(depths.shape, bool)
    depths[1, :, : W // 2] = 7.0  # wrong, but marked invalid
    valid[1, :, : W // 2] = False
    assert metrics.temporal_alignment_error(depths, poses, k, valid) == pytest.approx(0.0, abs=1e-12)
    assert metrics.temporal_alignment_error(depths, poses, k) > 10
    depths[1, :, : W // 2] = 0.0  # holes: never valid
    assert metrics.temporal_alignment_error(depths, poses, k) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        metrics.temporal_alignment_error(depths[:1], poses[:1], k)


# ---------------------------------------------------------------------------------------------------------
# The cached video set and its reader
# ---------------------------------------------------------------------------------------------------------


def test_video_set_is_rendered_once_and_read_back(tmp_path, monkeypatch):
    spec = "synthetic-video:2:3"
    reader = sequences.open_synthetic_video(spec, tmp_path, size=(H, W))
    root = Path(reader.name)
    assert list(tmp_path.iterdir()) == [root]
    stamp = (root / "clip_00" / "poses.txt").stat().st_mtime_ns

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(synthetic, "make_synthetic_video", no_render)
    again = sequences.open_synthetic_video(spec, tmp_path, size=(H, W))
    assert Path(again.name) == root
    assert (root / "clip_00" / "poses.txt").stat().st_mtime_ns == stamp

    assert reader.spec is sequences.SYNTHETIC_VIDEO_SPEC
    samples = reader.samples("test")
    assert len(samples) == 6 and reader.samples("train") == samples
    grouped = reader.sequences()
    assert list(grouped) == ["clip_00", "clip_01"]
    for i, (clip, frames) in enumerate(grouped.items()):
        assert [s.where for s in frames] == [f"{clip} frame {k}" for k in range(3)]
        expected = list(synthetic.render_clip(5000 + i, 3, ("walk", "pan")[i], H, W))
        for sample, (rgb, depth_m, pose) in zip(frames, expected):
            pair = reader.read(sample)
            np.testing.assert_array_equal(pair.rgb, rgb)
            np.testing.assert_allclose(pair.depth, depth_m, atol=0.0005 + 1e-6)  # millimetres
            assert pair.valid.all()
            assert pair.camera == Camera.from_pixels(*synthetic.clip_intrinsics(H, W), H, W,
                                                     "the synthetic clips' camera")
            np.testing.assert_array_equal(reader.pose(sample), pose)


def test_video_set_honours_the_cache_variable_and_never_keeps_half_a_render(tmp_path, monkeypatch):
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path))
    real = synthetic.render_clip

    def interrupted(*args, **kwargs):
        yield next(real(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "render_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        synthetic.synthetic_video_path("synthetic-video:1:2", size=(H, W))
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its partial copy
    monkeypatch.setattr(synthetic, "render_clip", real)
    path = synthetic.synthetic_video_path("synthetic-video:1:2", size=(H, W))
    assert path.parent == tmp_path and sorted(p.name for p in path.iterdir()) == ["clip_00"]
    assert len((path / "clip_00" / "poses.txt").read_text().splitlines()) == 2
    fx, fy, cx, cy, height, width = (path / "clip_00" / "camera.txt").read_text().split()
    assert (int(height), int(width)) == (H, W) and float(fx) == synthetic.clip_intrinsics(H, W)[0]


@pytest.mark.parametrize("spec", ["synthetic-video:x", "synthetic-video:0", "synthetic-video:2:1",
                                  "synthetic-video:1:2:3", "synthetic-video:2:x"])
def test_bad_video_specs_are_one_line_errors(spec, tmp_path):
    with pytest.raises(InputError) as caught:
        synthetic.synthetic_video_path(spec, tmp_path)
    assert "\n" not in str(caught.value) and spec in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_video_spec_counts_and_registration():
    assert synthetic.synthetic_video_counts("synthetic-video") == (4, 24)
    assert synthetic.synthetic_video_counts("synthetic-video:6") == (6, 24)
    assert synthetic.synthetic_video_counts("synthetic-video:6:32") == (6, 32)
    import datasets

    spec = datasets.spec_named("synthetic-video")
    assert spec is sequences.SYNTHETIC_VIDEO_SPEC
    assert (spec.title, spec.depth_range.min_m, spec.depth_range.max_m, spec.eval_cap_m, spec.train_hw) == (
        "synthetic clips", 0.4, 10.0, None, (480, 640))
    assert not spec.sparse and not spec.camera_scale and spec.published == ()
