"""Tests of the synthetic scene renderer: determinism, ranges, exact depth against hand-solved geometry,
occlusion, Lambertian shading and shadows. Small images, so the whole file runs in seconds.

    python -m pytest tests/test_synthetic.py -q
"""
import numpy as np
import pytest

import synthetic
from camera import NYU_INTRINSICS
from depth import NYU
from synthetic import Camera, Light, Material, Room, Scene, Shape

H, W = 120, 160
# NYU's intrinsics scaled to H x W, written out here rather than taken from synthetic.intrinsics.
FX, CX = NYU_INTRINSICS["fx"] * W / 640, NYU_INTRINSICS["cx"] * W / 640
FY, CY = NYU_INTRINSICS["fy"] * H / 480, NYU_INTRINSICS["cy"] * H / 480
# Normalised image coordinates of the pixel centres: camera x (right) per column, camera y (down) per row.
X_N = (np.arange(W) + 0.5 - CX) / FX
Y_N = (np.arange(H) + 0.5 - CY) / FY

GREY = Material("solid", (0.6, 0.6, 0.6), (0.6, 0.6, 0.6))  # truly uniform: both colours equal


def plain_scene(size, camera, shapes=(), light=None):
    """A room with uniform grey surfaces and no sensor noise."""
    light = light or Light((size[0] / 2, size[1] / 2, size[2] - 0.2))
    return Scene(Room(size, (GREY,) * 6), camera, light, tuple(shapes))


def luminance(rgb):
    return rgb.astype(np.float64).mean(axis=-1)


# ---------------------------------------------------------------------------------------------------------
# Determinism, shapes, ranges
# ---------------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes():
    rgb1, depth1 = synthetic.render_scene(7, 60, 80)
    rgb2, depth2 = synthetic.render_scene(7, 60, 80)
    assert rgb1.tobytes() == rgb2.tobytes()
    assert depth1.tobytes() == depth2.tobytes()
    assert synthetic.sample_scene(np.random.default_rng(7)) == synthetic.sample_scene(np.random.default_rng(7))


def test_different_seeds_differ():
    rgb1, depth1 = synthetic.render_scene(1, 60, 80)
    rgb2, depth2 = synthetic.render_scene(2, 60, 80)
    assert np.mean(rgb1 != rgb2) > 0.5
    assert np.mean(depth1 != depth2) > 0.5


@pytest.mark.parametrize("seed", range(12))
def test_shapes_dtypes_and_depth_range(seed):
    rgb, depth = synthetic.render_scene(seed, 60, 80)
    assert rgb.shape == (60, 80, 3) and rgb.dtype == np.uint8
    assert depth.shape == (60, 80) and depth.dtype == np.float32
    assert np.all(np.isfinite(depth))
    # Strict bounds: the scenes themselves stay in range, the final clip is only a safety net.
    assert depth.min() > NYU.min_m and depth.max() < NYU.max_m
    assert rgb.std() > 5, "a picture, not a flat colour"


def test_default_size_is_nyu():
    rgb, depth = synthetic.render_scene(0)
    assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640)


def test_sampled_scenes_are_inside_the_room():
    for seed in range(40):
        scene = synthetic.sample_scene(np.random.default_rng(seed))
        size = np.array(scene.room.size_m)
        cam = np.array(scene.camera.position)
        assert 1.0 <= cam[2] <= 1.8
        clearance = synthetic.WALL_CLEARANCE_M
        assert np.all(cam[:2] >= clearance) and np.all(cam[:2] <= size[:2] - clearance)
        assert len(scene.shapes) >= 3
        for shape in scene.shapes:
            corners = synthetic._bounding_corners(shape)
            if shape.kind != "box":  # round shapes: their bounding box is loose, check the shape itself
                corners = np.array(shape.center) + np.array(shape.half_size) * [[1, 1, 1], [-1, -1, -1]]
            assert np.all(corners >= -1e-6) and np.all(corners <= size + 1e-6), (seed, shape)
            assert corners[:, 2].min() >= -1e-9 and corners[:, 2].max() <= size[2] - 0.3
            assert not synthetic._near_shape(scene.light.position, shape, margin=0.0)


# ---------------------------------------------------------------------------------------------------------
# Exact depth against hand-solved geometry
# ---------------------------------------------------------------------------------------------------------


def test_level_camera_facing_a_wall_sees_its_distance_everywhere():
    # Camera 3 m from the wall x = 4, level, in the middle of a 6 m wide, 3 m high room: only that wall shows.
    scene = plain_scene((4.0, 6.0, 3.0), Camera((1.0, 3.0, 1.5), yaw=0.0))
    _, depth = synthetic.render(scene, H, W)
    np.testing.assert_allclose(depth, 3.0, atol=1e-4)


def test_roll_about_the_optical_axis_keeps_wall_depth():
    # Facing the wall y = 6 (yaw 90 degrees) from 2.5 m away; roll turns the image, not the depth. The room
    # is tall enough that the rolled corners of the view (37.6 degrees off axis) still land on the wall.
    scene = plain_scene((6.0, 6.0, 4.0), Camera((3.0, 3.5, 2.0), yaw=np.pi / 2, roll=0.3))
    _, depth = synthetic.render(scene, H, W)
    np.testing.assert_allclose(depth, 2.5, atol=1e-4)


def test_pitched_camera_wall_depth_follows_the_plane_equation():
    # The wall's normal in camera coordinates is (0, sin p, cos p) for pitch p, so z = d / (y_n sin p + cos p).
    pitch, distance = 0.2, 2.0
    scene = plain_scene((4.0, 8.0, 4.0), Camera((2.0, 4.0, 2.0), yaw=0.0, pitch=pitch))
    _, depth = synthetic.render(scene, H, W)
    expected = distance / (Y_N * np.sin(pitch) + np.cos(pitch))
    np.testing.assert_allclose(depth, np.broadcast_to(expected[:, None], (H, W)), atol=1e-4)


@pytest.mark.parametrize("height, width", [(H, W), (90, 200)])  # 4:3, and a size that scales x and y apart
def test_floor_and_ceiling_depth_of_a_level_camera(height, width):
    # A level camera at height h sees the floor at row v at z = h * fy / (v + 0.5 - cy), the same along a row.
    x_n = (np.arange(width) + 0.5 - NYU_INTRINSICS["cx"] * width / 640) / (NYU_INTRINSICS["fx"] * width / 640)
    y_n = (np.arange(height) + 0.5 - NYU_INTRINSICS["cy"] * height / 480) / (NYU_INTRINSICS["fy"] * height / 480)
    camera_height, ceiling = 1.2, 3.0
    scene = plain_scene((9.0, 6.0, ceiling), Camera((0.6, 3.0, camera_height), yaw=0.0))
    _, depth = synthetic.render(scene, height, width)
    with np.errstate(divide="ignore"):
        floor_z = camera_height / y_n
        ceiling_z = (camera_height - ceiling) / y_n
    # Rows where the floor (or ceiling) spans the whole width: nearer than the side walls at the image edge.
    for z in (floor_z, ceiling_z):
        rows = np.flatnonzero((z > 0) & (z * np.abs(x_n).max() < 3.0 - 0.05))
        assert rows.size >= 10
        expected = np.broadcast_to(z[rows, None], (rows.size, width))
        np.testing.assert_allclose(depth[rows], expected, rtol=2e-5, atol=1e-4)


def test_box_in_front_of_a_wall_occludes_it_exactly_in_its_silhouette():
    # A 1 m cube face-on, its front face at x = 2.75, i.e. 1.75 m from the camera, in front of a wall 4 m away.
    box = Shape("box", (3.0, 3.0, 1.5), (0.25, 0.5, 0.5), material=GREY)
    camera = Camera((1.0, 3.0, 1.5), yaw=0.0)
    _, depth = synthetic.render(plain_scene((5.0, 6.0, 3.0), camera, [box]), H, W)
    _, room_depth = synthetic.render(plain_scene((5.0, 6.0, 3.0), camera), H, W)
    # Camera right is world -y and camera down world -z, so the face covers |x_n| z <= 0.5, |y_n| z <= 0.5.
    inside = (np.abs(X_N[None, :]) * 1.75 < 0.5) & (np.abs(Y_N[:, None]) * 1.75 < 0.5)
    assert inside.sum() > 3000
    np.testing.assert_allclose(depth[inside], 1.75, atol=1e-4)
    np.testing.assert_allclose(room_depth[inside], 4.0, atol=1e-4)  # the wall it hides
    np.testing.assert_array_equal(depth[~inside], room_depth[~inside])


def test_turned_box_corner_is_nearer_than_its_faces():
    # A cube turned 45 degrees shows its vertical edge to the camera: depth is smallest on that edge.
    box = Shape("box", (3.0, 3.0, 1.5), (0.4, 0.4, 0.4), yaw=np.pi / 4, material=GREY)
    scene = plain_scene((5.0, 6.0, 3.0), Camera((1.0, 3.0, 1.5), yaw=0.0), [box])
    _, depth = synthetic.render(scene, H, W)
    edge_z = 2.0 - 0.4 * np.sqrt(2)  # 2 m to the box centre, less half its diagonal
    center_col = int(np.argmin(np.abs(X_N)))
    center_row = int(np.argmin(np.abs(Y_N)))
    # On the 45-degree faces, z = edge_z + |lateral offset|, and lateral offset = x_n z.
    expected = edge_z / (1 - np.abs(X_N[center_col]))
    assert depth[center_row, center_col] == pytest.approx(expected, abs=1e-4)
    row = depth[center_row]
    on_box = row < 4.0 - 1e-3
    np.testing.assert_allclose(row[on_box], edge_z / (1 - np.abs(X_N[on_box])), atol=1e-4)


def _sphere_depth(center, radius, origin):
    """z-depth of the sphere for every pixel of a level camera with yaw 0 (NaN where missed), in float64."""
    # World ray direction with unit camera-z: forward is +x, camera right is -y, camera down is -z.
    d = np.stack([np.ones((H, W)), -np.broadcast_to(X_N[None, :], (H, W)), -np.broadcast_to(Y_N[:, None], (H, W))])
    oc = (np.asarray(origin) - center)[:, None, None]
    a, half_b, c = (d * d).sum(0), (d * oc).sum(0), (oc * oc).sum() - radius**2
    disc = half_b**2 - a * c
    with np.errstate(invalid="ignore"):
        return np.where(disc > 0, (-half_b - np.sqrt(disc)) / a, np.nan), disc / (a * radius**2)


def test_sphere_depth_matches_the_quadratic():
    center, origin = np.array([2.5, 2.8, 1.6]), (0.8, 3.0, 1.4)
    sphere = Shape("sphere", tuple(center), (0.45,) * 3, material=GREY)
    _, depth = synthetic.render(plain_scene((5.0, 6.0, 3.0), Camera(origin), [sphere]), H, W)
    _, room_depth = synthetic.render(plain_scene((5.0, 6.0, 3.0), Camera(origin)), H, W)
    expected, disc = _sphere_depth(center, 0.45, origin)
    # Away from the grazing rim, where float32 cannot pin the root, depth must be the analytic root.
    clear = disc > 0.01
    assert clear.sum() > 1000
    np.testing.assert_allclose(depth[clear], expected[clear], atol=1e-4)
    np.testing.assert_array_equal(depth[disc < 0], room_depth[disc < 0])  # outside the silhouette: the room


def test_cylinder_side_depth_matches_the_quadratic():
    # A vertical cylinder, seen level from its mid-height: its side at each column is the circle's root.
    radius, center, origin = 0.4, np.array([3.0, 3.2, 1.5]), (1.0, 3.0, 1.5)
    drum = Shape("cylinder", tuple(center), (radius, radius, 0.6), material=GREY)
    _, depth = synthetic.render(plain_scene((5.0, 6.0, 3.0), Camera(origin), [drum]), H, W)
    # In the horizontal plane the ray is (1, -x_n) per unit z; solve |o + z (1, -x_n) - c| = r for z.
    ox, oy = origin[0] - center[0], origin[1] - center[1]
    a, half_b, c = 1 + X_N**2, ox - oy * X_N, ox**2 + oy**2 - radius**2
    disc = half_b**2 - a * c
    columns = np.flatnonzero(disc / (a * radius**2) > 0.01)
    side_z = (-half_b[columns] - np.sqrt(disc[columns])) / a[columns]
    rows = np.flatnonzero(np.abs(Y_N) * 3.0 < 0.6 - 0.05)  # rows that meet the side, not a cap, at every column
    assert columns.size > 10 and rows.size > 10
    expected = np.broadcast_to(side_z, (rows.size, columns.size))
    np.testing.assert_allclose(depth[np.ix_(rows, columns)], expected, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_screen_culling_changes_nothing(seed):
    scene = synthetic.sample_scene(np.random.default_rng(seed))
    rotation = synthetic.camera_rotation(scene.camera)
    origin = np.asarray(scene.camera.position)
    dirs = synthetic._ray_directions(scene.camera, rotation, H, W)
    culled = synthetic._nearest_hits(scene, origin, dirs, rotation, cull=True)
    full = synthetic._nearest_hits(scene, origin, dirs, rotation, cull=False)
    np.testing.assert_array_equal(culled[0], full[0])
    np.testing.assert_array_equal(culled[1], full[1])


# ---------------------------------------------------------------------------------------------------------
# Shading and shadows
# ---------------------------------------------------------------------------------------------------------


def test_sphere_side_facing_the_light_is_brighter():
    # Light in front of the sphere and to the camera's right (world -y): the right half faces the light, the
    # left half faces away and gets only ambient light.
    sphere = Shape("sphere", (3.0, 3.0, 1.5), (0.5,) * 3, material=GREY)
    light = Light((2.0, 1.5, 1.5), ambient=0.2)
    rgb, depth = synthetic.render(plain_scene((5.0, 6.0, 3.0), Camera((1.0, 3.0, 1.5)), [sphere], light), H, W)
    on_sphere = depth < 3.0
    center_col = int(np.argmin(np.abs(X_N)))
    right = on_sphere & (np.arange(W) > center_col + 2)[None, :]
    left = on_sphere & (np.arange(W) < center_col - 2)[None, :]
    assert right.sum() > 200 and left.sum() > 200
    assert luminance(rgb)[right].mean() > 1.3 * luminance(rgb)[left].mean()


def test_box_between_light_and_floor_casts_a_shadow():
    # A floating slab under the light shadows the floor straight below it; the camera sees that floor under it.
    size, camera = (7.0, 6.0, 3.0), Camera((0.6, 3.0, 1.6))
    light = Light((5.0, 3.0, 2.5), ambient=0.25)
    slab = Shape("box", (5.0, 3.0, 1.2), (0.3, 0.3, 0.1), material=GREY)
    rgb_shadow, depth_shadow = synthetic.render(plain_scene(size, camera, [slab], light), H, W)
    rgb_open, depth_open = synthetic.render(plain_scene(size, camera, [], light), H, W)
    # The floor row at x = 5 (4.4 m ahead): z = h / y_n.
    row = int(np.argmin(np.abs(1.6 / np.where(Y_N > 0, Y_N, 1e-9) - 4.4)))
    center_col = int(np.argmin(np.abs(X_N)))
    side_col = int(np.argmin(np.abs(X_N * 4.4 - 1.5)))  # 1.5 m to the right, outside the shadow
    assert depth_shadow[row, center_col] == pytest.approx(depth_open[row, center_col], abs=1e-4), "floor visible"
    assert depth_shadow[row, center_col] == pytest.approx(4.4, abs=0.1)
    shadow, open_ = luminance(rgb_shadow), luminance(rgb_open)
    # Without the slab the floor below the light is brighter than beside it; with the slab it is darker.
    assert open_[row, center_col] > open_[row, side_col] + 10
    assert shadow[row, center_col] < shadow[row, side_col] - 30
