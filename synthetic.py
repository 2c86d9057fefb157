"""Procedural indoor scenes with exact depth: the project's built-in, offline synthetic data set.

Our counterpart of the DenseDepth paper's unreleased Unreal-1k set. Each scene is a room (floor, four walls,
ceiling) holding 3-8 pieces of furniture made of boxes, vertical cylinders and spheres that stand on the
floor, with procedural textures (solid, checkerboard, stripes, tiles, wood, noise), one point light with
Lambertian shading, ambient light and ray-traced shadows. The camera has NYU's Kinect intrinsics, stands
1-1.8 m high inside the room and looks roughly level. Depth is the analytic z-depth (along the optical axis,
as a Kinect measures, not the ray length) of the nearest hit, float32 metres in [NYU.min_m, NYU.max_m].
Everything follows from a seed, so a data set is a range of seeds. NumPy only.

    import synthetic
    rgb, depth_m = synthetic.render_scene(seed=0)          # uint8 (480, 640, 3), float32 (480, 640)
    scene = synthetic.sample_scene(np.random.default_rng(0))   # a plain description, editable by hand
    rgb, depth_m = synthetic.render(scene, height=240, width=320)
    for rgb, depth_m, camera_to_world in synthetic.render_clip(seed=0, frames=24, path="walk"):  # a moving camera
        ...

    python bench/bench_synthetic.py --n 20 --save /tmp/synthetic_montage.png   # speed, and a look

Conventions. World: metres, z up, the room spans [0, size_x] x [0, size_y] x [0, size_z] with the floor at
z = 0. Camera: x right, y down, z forward; yaw is the heading of the optical axis, counter-clockwise from
world +x; positive pitch looks up; roll turns about the optical axis. Pixel (row v, column u) is the ray
through (u + 0.5, v + 0.5) of the continuous image plane [0, W] x [0, H], which is why the intrinsics scale
with the image size by plain ratios.
"""
import colorsys
import io
import os
import sys
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from camera import NYU_INTRINSICS, scaled_intrinsics
from datasets import NYU_ENCODING
from depth import NYU, NYU_IMAGE_HW
from utils import InputError, atomic_write, check_writable

MIN_DEPTH_M, MAX_DEPTH_M = NYU.min_m, NYU.max_m

ROOM_SIDE_M = (2.8, 8.0)  # floor side lengths
ROOM_HEIGHT_M = (2.4, 3.2)
CAMERA_HEIGHT_M = (1.0, 1.8)
CAMERA_PITCH_RAD = (-0.35, 0.03)  # mostly a little downwards, like a hand-held Kinect
CAMERA_ROLL_RAD = 0.04  # standard deviation
# NYU's half-diagonal field of view is 37.6 degrees, so a wall 0.6 m away is seen at z-depth >= 0.47 m.
WALL_CLEARANCE_M = 0.6
FURNITURE_CLEARANCE_M = 0.75  # horizontal gap between the camera and any furniture, for the same reason
FARTHEST_CORNER_M = 9.8  # every visible point is nearer than the farthest room corner, so under MAX_DEPTH_M
FURNITURE_COUNT = (3, 8)
IN_VIEW_PROBABILITY = 0.8  # furniture placed in front of the camera, so that most of it is seen
HEADROOM_M = 0.5  # furniture stays this far below the ceiling, so the light always fits above it

# Shadow rays run from the light to the shaded point; the last 0.1 % of the way is ignored so that a surface
# does not shadow itself through rounding.
SHADOW_EPSILON = 1e-3
LIGHT_FALLOFF_M = 2.5  # irradiance ~ 1 / (1 + (distance / LIGHT_FALLOFF_M)^2): a softened inverse square
GAMMA = 2.2

TEXTURES = ("solid", "checker", "stripes", "tiles", "wood", "noise")
# Range of each texture's period, in metres: coarse enough not to alias at 640x480 a few metres away.
TEXTURE_SCALE_M = {
    "solid": (1.0, 3.0),
    "checker": (0.2, 0.6),
    "stripes": (0.08, 0.4),
    "tiles": (0.2, 0.6),
    "wood": (0.1, 0.25),  # plank width
    "noise": (0.3, 1.5),
}
FURNITURE_KINDS = ("cabinet", "table", "sofa", "shelf", "drum", "ball", "lamp")
FURNITURE_WEIGHTS = (0.25, 0.18, 0.13, 0.12, 0.16, 0.10, 0.06)

# Room surfaces are numbered before the shapes: surface id = ROOM_SURFACES + index of the shape.
FLOOR, CEILING, WALL_X0, WALL_X1, WALL_Y0, WALL_Y1 = range(6)
ROOM_SURFACES = 6

# A fixed table of random values behind every noise pattern, so textures never depend on global state.
NOISE_TABLE = np.random.default_rng(20240531).random((256, 256), dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# Scene description
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """A procedural texture on a surface's own (u, v) coordinates in metres; colours are sRGB in [0, 1]."""

    texture: str = "solid"  # one of TEXTURES
    color_a: tuple = (0.8, 0.8, 0.8)
    color_b: tuple = (0.6, 0.6, 0.6)  # second colour: checks, stripes, grout, grain, blotches
    scale_m: float = 0.5  # period of the pattern
    angle: float = 0.0  # orientation of the pattern on the surface, radians
    offset: tuple = (0.0, 0.0)  # shift of the pattern, so that equal materials do not line up


@dataclass(frozen=True)
class Shape:
    """A box (turned by yaw about the vertical), a vertical cylinder or a sphere.

    half_size: box half extents (x, y, z) before the turn; cylinder (radius, radius, half height); sphere
    (radius, radius, radius).
    """

    kind: str
    center: tuple
    half_size: tuple
    yaw: float = 0.0
    material: Material = Material()


@dataclass(frozen=True)
class Room:
    """An empty box-shaped room; each of its six surfaces has a material."""

    size_m: tuple  # (x, y, z): the floor is [0, x] x [0, y], the ceiling at height z
    materials: tuple = (Material(),) * ROOM_SURFACES  # floor, ceiling, walls x=0, x=max, y=0, y=max


@dataclass(frozen=True)
class Camera:
    """Position in metres; angles in radians (see the module docstring for their senses)."""

    position: tuple
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    focal_scale: float = 1.0  # focal length as a multiple of NYU's Kinect's: 0.6 a wide angle, 1.6 a tele


@dataclass(frozen=True)
class Light:
    """A point light; it lights surfaces but is not itself drawn."""

    position: tuple
    ambient: float = 0.25  # irradiance of the ambient light, relative to the point light at distance 0


@dataclass(frozen=True)
class Scene:
    """Everything render() needs: the same Scene always gives the same bytes."""

    room: Room
    camera: Camera
    light: Light
    shapes: tuple = ()
    exposure: float = 0.6  # mean linear brightness the image is scaled to before the tone curve
    noise_std: float = 0.0  # sensor noise on [0, 1] RGB
    noise_seed: int = 0


# ---------------------------------------------------------------------------------------------------------
# Sampling a scene
# ---------------------------------------------------------------------------------------------------------


def render_scene(seed, height=NYU_IMAGE_HW[0], width=NYU_IMAGE_HW[1], focal_scale=1.0):
    """(rgb uint8 (H, W, 3), depth_m float32 (H, W)) of the scene drawn from seed, seen through NYU's
    Kinect with its focal length times focal_scale (the same room and viewpoint at every focal_scale)."""
    scene = sample_scene(np.random.default_rng(seed))
    if focal_scale != 1.0:
        scene = replace(scene, camera=replace(scene.camera, focal_scale=float(focal_scale)))
    return render(scene, height, width)


def intrinsics(camera, height, width):
    """(fx, fy, cx, cy) in pixels of a height x width picture: NYU's Kinect, its focal times focal_scale."""
    k = scaled_intrinsics(height, width)
    return k["fx"] * camera.focal_scale, k["fy"] * camera.focal_scale, k["cx"], k["cy"]


def sample_scene(rng):
    """A random room with furniture, camera and light, drawn from a np.random.Generator."""
    size, camera = _sample_room_and_camera(rng)
    shapes = _sample_furniture(rng, size, camera)
    return Scene(
        room=Room(size_m=size, materials=_sample_room_materials(rng)),
        camera=camera,
        light=_sample_light(rng, size, shapes),
        shapes=tuple(shapes),
        exposure=float(rng.uniform(0.45, 0.75)),
        noise_std=float(rng.uniform(0.004, 0.015)),
        noise_seed=int(rng.integers(2**31)),
    )


def _sample_room_and_camera(rng):
    """Room size and camera, redrawn until the farthest corner is within FARTHEST_CORNER_M of the camera."""
    while True:
        size = (*rng.uniform(*ROOM_SIDE_M, size=2), rng.uniform(*ROOM_HEIGHT_M))
        size = tuple(float(s) for s in size)
        camera = _sample_camera(rng, size)
        corners = np.array([[x, y, z] for x in (0, size[0]) for y in (0, size[1]) for z in (0, size[2])])
        if np.max(np.linalg.norm(corners - camera.position, axis=1)) <= FARTHEST_CORNER_M:
            return size, camera


def _sample_camera(rng, size):
    """A camera inside the room, aimed across it at a random point in the farther half of the room."""
    position = (
        float(rng.uniform(WALL_CLEARANCE_M, size[0] - WALL_CLEARANCE_M)),
        float(rng.uniform(WALL_CLEARANCE_M, size[1] - WALL_CLEARANCE_M)),
        float(rng.uniform(*CAMERA_HEIGHT_M)),
    )
    # Looking across the room rather than into a near wall shows the floor receding and more furniture.
    farthest = max(np.hypot(x - position[0], y - position[1]) for x in (0, size[0]) for y in (0, size[1]))
    for _ in range(100):
        target = rng.uniform((0, 0), size[:2])
        if np.hypot(*(target - position[:2])) >= max(1.5, 0.5 * farthest):
            break
    yaw = np.arctan2(target[1] - position[1], target[0] - position[0])
    return Camera(
        position=position,
        yaw=float(yaw),
        pitch=float(rng.uniform(*CAMERA_PITCH_RAD)),
        roll=float(rng.normal(0.0, CAMERA_ROLL_RAD)),
    )


def _sample_room_materials(rng):
    """Floor, ceiling and wall materials: a wood, tile, carpet or checked floor, plain or papered walls."""
    floor = _sample_material(
        rng, ("wood", "tiles", "noise", "checker"), (0.4, 0.25, 0.25, 0.1), saturation=(0.1, 0.6), value=(0.3, 0.8)
    )
    ceiling = Material("solid", _hsv(rng, (0.05, 0.15), (0.0, 0.08), (0.85, 0.97)), (0.8, 0.8, 0.8), 2.0)
    wall = _sample_material(
        rng, ("solid", "stripes", "noise", "tiles"), (0.65, 0.1, 0.15, 0.1), saturation=(0.05, 0.35), value=(0.6, 0.95)
    )
    walls = [wall] * 4
    if rng.random() < 0.3:  # an accent wall
        walls[rng.integers(4)] = _sample_material(rng, ("solid", "stripes"), (0.7, 0.3), (0.2, 0.6), (0.4, 0.9))
    # Wallpaper stripes run vertically.
    walls = [replace(w, angle=0.0) for w in walls]
    return (floor, ceiling, *walls)


def _sample_material(rng, textures=TEXTURES, weights=None, saturation=(0.2, 0.8), value=(0.25, 0.9)):
    """A material with one of textures and colours drawn in HSV."""
    texture = str(rng.choice(textures, p=weights))
    color_a = _hsv(rng, (0.0, 1.0), saturation, value)
    if texture in ("checker", "stripes"):
        color_b = _hsv(rng, (0.0, 1.0), saturation, value)
    else:  # grout, grain and blotches: a darker shade of the same colour
        color_b = tuple(c * float(rng.uniform(0.45, 0.8)) for c in color_a)
    scale = TEXTURE_SCALE_M[texture]
    angle = float(rng.choice([0.0, np.pi / 2])) if texture in ("stripes", "wood") else 0.0
    return Material(texture, color_a, color_b, float(rng.uniform(*scale)), angle, tuple(rng.uniform(0, 10, 2).tolist()))


def _hsv(rng, hue, saturation, value):
    """An sRGB colour tuple drawn uniformly in the given HSV ranges."""
    h, s, v = rng.uniform(hue[0], hue[1]), rng.uniform(*saturation), rng.uniform(*value)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))


def _sample_furniture(rng, size, camera):
    """The shapes of 3-8 pieces of furniture that stand on the floor without overlapping."""
    shapes, footprints = [], []  # footprints: (x, y, radius) circles
    max_height = size[2] - HEADROOM_M
    count = rng.integers(FURNITURE_COUNT[0], FURNITURE_COUNT[1] + 1)
    for _ in range(count + 10):  # a piece that finds no free spot is replaced by a fresh draw
        if len(footprints) == count:
            break
        kind = str(rng.choice(FURNITURE_KINDS, p=FURNITURE_WEIGHTS))
        parts = _furniture_parts(rng, kind, max_height, _sample_material(rng))
        against_wall = kind == "shelf" or (kind in ("cabinet", "sofa") and rng.random() < 0.5)
        place = _place_furniture(rng, parts, against_wall, size, camera, footprints)
        if place is not None:
            x, y, yaw, radius = place
            footprints.append((x, y, radius))
            shapes += [_moved(part, x, y, yaw) for part in parts]
    return shapes


def _furniture_parts(rng, kind, max_height, material):
    """The shapes of one piece of furniture, standing on the floor around the origin, its back towards +y."""
    u = rng.uniform
    if kind == "cabinet":
        return [_box((0, 0), (u(0.2, 0.8), u(0.18, 0.45), u(0.2, min(1.0, max_height / 2))), material)]
    if kind == "shelf":
        return [_box((0, 0), (u(0.3, 0.7), u(0.15, 0.22), u(0.7, max_height / 2)), material)]
    if kind == "table":
        return _table(u(0.4, 0.9), u(0.3, 0.5), u(0.55, 0.8), material)
    if kind == "sofa":
        half_x, half_y = u(0.7, 1.1), u(0.4, 0.5)
        seat = _box((0, -0.1), (half_x, half_y - 0.1, u(0.2, 0.25)), material)
        back = _box((0, half_y - 0.1), (half_x, 0.1, u(0.37, 0.45)), material)
        return [seat, back]
    if kind == "drum":
        radius, half_height = u(0.15, 0.45), u(0.15, 0.55)
        return [Shape("cylinder", (0.0, 0.0, half_height), (radius, radius, half_height), 0.0, material)]
    if kind == "ball":
        radius = u(0.15, 0.45)
        return [Shape("sphere", (0.0, 0.0, radius), (radius,) * 3, 0.0, material)]
    if kind == "lamp":
        return _lamp(u(1.0, min(1.6, max_height - 0.5)), u(0.15, 0.25), material)
    raise ValueError(f"unknown furniture kind {kind!r}")


def _box(center_xy, half_size, material):
    """A box standing on the floor at center_xy."""
    half_size = tuple(float(h) for h in half_size)
    return Shape("box", (float(center_xy[0]), float(center_xy[1]), half_size[2]), half_size, 0.0, material)


def _table(half_x, half_y, height, material):
    """A table: a 4 cm top on four square legs."""
    top = Shape("box", (0.0, 0.0, height - 0.02), (half_x, half_y, 0.02), 0.0, material)
    leg_half = (0.03, 0.03, (height - 0.04) / 2)
    legs = [_box((sx * (half_x - 0.07), sy * (half_y - 0.07)), leg_half, material) for sx in (-1, 1) for sy in (-1, 1)]
    return [top] + legs


def _lamp(height, shade_radius, material):
    """A floor lamp: a round foot, a thin stem and a globe on top."""
    foot = Shape("cylinder", (0.0, 0.0, 0.02), (0.18, 0.18, 0.02), 0.0, material)
    stem = Shape("cylinder", (0.0, 0.0, height / 2), (0.025, 0.025, height / 2), 0.0, material)
    white = Material("solid", (0.95, 0.93, 0.85), (0.9, 0.88, 0.8), 1.0)
    globe = Shape("sphere", (0.0, 0.0, height + shade_radius * 0.8), (shade_radius,) * 3, 0.0, white)
    return [foot, stem, globe]


def _footprint(parts):
    """(radius of the circle around the origin that holds every part, how far the parts reach towards +y)."""
    radius = max(np.hypot(p.center[0], p.center[1]) + np.hypot(p.half_size[0], p.half_size[1]) for p in parts)
    back = max(p.center[1] + p.half_size[1] for p in parts)
    return float(radius), float(back)


def _place_furniture(rng, parts, against_wall, size, camera, footprints):
    """(x, y, yaw, radius) of a free spot for the furniture, or None when no try found one.

    Most furniture must be in the camera's horizontal field of view; when the first tries fail that rule
    is dropped, so small rooms still get furnished.
    """
    radius, back = _footprint(parts)
    if 2 * radius >= min(size[0], size[1]):
        return None
    want_in_view = rng.random() < IN_VIEW_PROBABILITY
    for attempt in range(60):
        if against_wall:
            x, y, yaw = _spot_against_wall(rng, radius, back, size)
        else:
            x, y, yaw = _spot_in_room(rng, radius, size)
        if want_in_view and attempt < 40 and not _in_view(x, y, camera):
            continue
        if _is_free(x, y, radius, size, camera, footprints, against_wall):
            return float(x), float(y), float(yaw), radius
    return None


def _in_view(x, y, camera, half_angle=0.5):
    """Whether the point's heading from the camera is within half_angle of the camera's yaw."""
    heading = np.arctan2(y - camera.position[1], x - camera.position[0])
    return abs((heading - camera.yaw + np.pi) % (2 * np.pi) - np.pi) <= half_angle


def _spot_against_wall(rng, radius, back, size):
    """A position and yaw that put the furniture's back 2 cm from a random wall, facing into the room."""
    wall = rng.integers(4)
    along = rng.uniform(radius, (size[1] if wall < 2 else size[0]) - radius)
    gap = back + 0.02
    # Inward normal of each wall and the yaw that turns the furniture's front (-y) towards it.
    return [
        (gap, along, np.pi / 2),
        (size[0] - gap, along, -np.pi / 2),
        (along, gap, np.pi),
        (along, size[1] - gap, 0.0),
    ][wall]


def _spot_in_room(rng, radius, size):
    """A position anywhere in the room and a yaw that is mostly square with the room."""
    x, y = rng.uniform(radius, size[0] - radius), rng.uniform(radius, size[1] - radius)
    yaw = rng.uniform(0, 2 * np.pi) if rng.random() < 0.4 else rng.integers(4) * np.pi / 2
    return x, y, yaw


def _is_free(x, y, radius, size, camera, footprints, against_wall):
    """Inside the room (walls may touch furniture placed against them), clear of camera and other furniture."""
    margin = -radius if against_wall else radius  # a furniture's circle may reach into the wall it backs on
    if not (margin <= x <= size[0] - margin and margin <= y <= size[1] - margin):
        return False
    if np.hypot(x - camera.position[0], y - camera.position[1]) < radius + FURNITURE_CLEARANCE_M:
        return False
    return all(np.hypot(x - fx, y - fy) >= radius + fr + 0.1 for fx, fy, fr in footprints)


def _moved(shape, x, y, yaw):
    """The shape turned by yaw about the vertical through the origin, then moved to (x, y)."""
    c, s = np.cos(yaw), np.sin(yaw)
    cx, cy, cz = shape.center
    center = (float(x + c * cx - s * cy), float(y + s * cx + c * cy), float(cz))
    return Shape(shape.kind, center, shape.half_size, float(shape.yaw + yaw), shape.material)


def _sample_light(rng, size, shapes):
    """A point light high in the room, away from every shape (at the ceiling when no free spot is found)."""
    for _ in range(50):
        position = (
            float(rng.uniform(0.4, size[0] - 0.4)),
            float(rng.uniform(0.4, size[1] - 0.4)),
            float(rng.uniform(1.8, size[2] - 0.15)),
        )
        if not any(_near_shape(position, shape) for shape in shapes):
            break
    else:
        position = (position[0], position[1], size[2] - 0.1)  # above every shape, thanks to HEADROOM_M
    return Light(position=position, ambient=float(rng.uniform(0.1, 0.3)))


def _near_shape(point, shape, margin=0.15):
    """Whether point is within margin of the shape's bounding cylinder."""
    top = shape.center[2] + shape.half_size[2]
    reach = np.hypot(shape.half_size[0], shape.half_size[1]) + margin
    return point[2] <= top + margin and np.hypot(point[0] - shape.center[0], point[1] - shape.center[1]) <= reach


# ---------------------------------------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------------------------------------


def camera_rotation(camera):
    """3x3 rotation taking camera coordinates (x right, y down, z forward) to world coordinates (z up)."""
    # At yaw = pitch = roll = 0 the camera looks along world +x, with its x axis along world -y.
    level = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return _about_z(camera.yaw) @ level @ _about_x(camera.pitch) @ _about_z(camera.roll)


def _about_x(angle):
    """Rotation about x; in the camera frame a positive angle turns the optical axis upwards."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _about_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ray_directions(camera, rotation, height, width):
    """World directions (dx, dy, dz), each float32 (H, W), of the pixel rays, scaled to unit camera-z.

    With unit camera-z the ray parameter t of a hit is its z-depth.
    """
    fx, fy, cx, cy = intrinsics(camera, height, width)
    x = ((np.arange(width) + 0.5 - cx) / fx)[None, :]
    y = ((np.arange(height) + 0.5 - cy) / fy)[:, None]
    return tuple((r[0] * x + r[1] * y + r[2]).astype(np.float32) for r in rotation)


# ---------------------------------------------------------------------------------------------------------
# Ray intersections: each returns the ray parameter t of the nearest hit with t > 0, inf where none.
# The origin is one point for all rays (the camera, or the light for shadow rays) and outside every shape.
# ---------------------------------------------------------------------------------------------------------


def _intersect(shape, origin, dx, dy, dz):
    """Ray parameters of the nearest hits on any kind of shape."""
    if shape.kind == "box":
        return _intersect_box(shape, origin, dx, dy, dz)
    if shape.kind == "cylinder":
        return _intersect_cylinder(shape, origin, dx, dy, dz)
    return _intersect_sphere(shape, origin, dx, dy, dz)


def _intersect_box(shape, origin, dx, dy, dz):
    """Slab test in the box's own frame, turned by -yaw."""
    c, s = float(np.cos(shape.yaw)), float(np.sin(shape.yaw))
    ox, oy, oz = (float(o - m) for o, m in zip(origin, shape.center))
    local_o = (c * ox + s * oy, -s * ox + c * oy, oz)
    local_d = (c * dx + s * dy, -s * dx + c * dy, dz)
    t_near, t_far = -np.inf, np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in zip(local_o, local_d, shape.half_size):
            inverse = 1.0 / d
            t1, t2 = (-h - o) * inverse, (h - o) * inverse
            t_near = np.maximum(t_near, np.minimum(t1, t2))
            t_far = np.minimum(t_far, np.maximum(t1, t2))
    return np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)


def _intersect_cylinder(shape, origin, dx, dy, dz):
    """Nearest of the side (a quadratic in the horizontal plane) and the two caps."""
    radius, half_height = shape.half_size[0], shape.half_size[2]
    ox, oy, oz = (float(o - m) for o, m in zip(origin, shape.center))
    a = dx * dx + dy * dy
    half_b = ox * dx + oy * dy
    c = ox * ox + oy * oy - radius * radius
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = half_b * half_b - a * c
        t_side = (-half_b - np.sqrt(np.maximum(disc, 0.0))) / a
        side = (disc >= 0) & (t_side > 0) & (np.abs(oz + t_side * dz) <= half_height)
        t = np.where(side, t_side, np.inf)
        for cap_z in (half_height, -half_height):
            t_cap = (cap_z - oz) / dz
            x, y = ox + t_cap * dx, oy + t_cap * dy
            on_cap = (t_cap > 0) & (x * x + y * y <= radius * radius)
            t = np.where(on_cap & (t_cap < t), t_cap, t)
    return t


def _intersect_sphere(shape, origin, dx, dy, dz):
    radius = shape.half_size[0]
    ox, oy, oz = (float(o - m) for o, m in zip(origin, shape.center))
    a = dx * dx + dy * dy + dz * dz
    half_b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - radius * radius
    disc = half_b * half_b - a * c
    t = (-half_b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _room_exit(room, origin, dx, dy, dz):
    """(t, surface id) where rays from inside the room leave it: the nearest of the three facing walls."""
    best_t, best_id = None, None
    with np.errstate(divide="ignore"):
        for axis, d in enumerate((dx, dy, dz)):
            low_id, high_id = ((WALL_X0, WALL_X1), (WALL_Y0, WALL_Y1), (FLOOR, CEILING))[axis]
            positive = d > 0
            t = (np.where(positive, room.size_m[axis], 0.0).astype(np.float32) - float(origin[axis])) / d
            ids = np.where(positive, high_id, low_id).astype(np.int16)
            if best_t is None:
                best_t, best_id = t, ids
            else:
                nearer = t < best_t
                best_t, best_id = np.where(nearer, t, best_t), np.where(nearer, ids, best_id)
    return best_t, best_id


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------


def render(scene, height=NYU_IMAGE_HW[0], width=NYU_IMAGE_HW[1]):
    """(rgb uint8 (H, W, 3), depth_m float32 (H, W)) of the scene seen through the scaled NYU camera (its
    focal length times scene.camera.focal_scale)."""
    rotation = camera_rotation(scene.camera)
    origin = np.asarray(scene.camera.position, dtype=np.float64)
    dirs = _ray_directions(scene.camera, rotation, height, width)
    depth, surface = _nearest_hits(scene, origin, dirs, rotation)
    points = [float(o) + depth.ravel() * d.ravel() for o, d in zip(origin, dirs)]
    normals, albedo = _surface_normals_and_albedo(scene, surface.ravel(), points)
    radiance = _shade(scene, points, normals, albedo)
    rgb = _to_srgb8(scene, radiance).reshape(height, width, 3)
    return rgb, np.clip(depth, MIN_DEPTH_M, MAX_DEPTH_M).astype(np.float32)


def _nearest_hits(scene, origin, dirs, rotation, cull=True):
    """(z-depth, surface id), each (H, W), of the nearest surface along every pixel ray.

    Each shape is tested only on the pixels of its projected bounding box (cull=False tests every pixel,
    for checking that the culling changes nothing).
    """
    height, width = dirs[0].shape
    depth, surface = _room_exit(scene.room, origin, *dirs)
    for index, shape in enumerate(scene.shapes):
        window = _screen_window(shape, origin, rotation, height, width, scene.camera) if cull else np.s_[:, :]
        if window is None:
            continue
        t = _intersect(shape, origin, *(d[window] for d in dirs))
        nearer = t < depth[window]
        np.copyto(depth[window], t, where=nearer)
        np.copyto(surface[window], ROOM_SURFACES + index, where=nearer)
    return depth, surface


def _screen_window(shape, origin, rotation, height, width, camera):
    """Slices (rows, columns) holding the shape's image, the whole image, or None when it is behind."""
    corners = _bounding_corners(shape) - origin
    cam = corners @ rotation  # rows are camera coordinates, rotation being orthonormal
    z = cam[:, 2]
    if np.all(z <= 1e-3):
        return None
    if np.any(z <= 1e-3):  # straddles the camera plane: projecting would be meaningless
        return np.s_[:, :]
    fx, fy, cx, cy = intrinsics(camera, height, width)
    u, v = fx * cam[:, 0] / z + cx, fy * cam[:, 1] / z + cy
    # Pixel i has its centre at i + 0.5; one pixel of slack on each side covers rounding.
    u0, u1 = int(np.clip(np.floor(u.min() - 0.5) - 1, 0, width)), int(np.clip(np.ceil(u.max() - 0.5) + 2, 0, width))
    v0, v1 = int(np.clip(np.floor(v.min() - 0.5) - 1, 0, height)), int(np.clip(np.ceil(v.max() - 0.5) + 2, 0, height))
    if u0 >= u1 or v0 >= v1:
        return None
    return np.s_[v0:v1, u0:u1]


def _bounding_corners(shape):
    """The 8 corners (8, 3) of a box that holds the shape."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    local = signs * shape.half_size
    c, s = np.cos(shape.yaw), np.sin(shape.yaw)
    turned = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], axis=1)
    return turned + shape.center


def _surface_normals_and_albedo(scene, surface, points):
    """Unit normals (3 arrays, N) and linear albedo (N, 3) of every pixel's hit point, surface by surface."""
    n = surface.size
    normals = [np.zeros(n, np.float32) for _ in range(3)]
    albedo = np.zeros((n, 3), np.float32)
    for surface_id in np.unique(surface):
        pixels = np.flatnonzero(surface == surface_id)
        p = [c[pixels] for c in points]
        if surface_id < ROOM_SURFACES:
            normal, (u, v) = _room_normal_and_uv(scene.room, surface_id, p)
            material = scene.room.materials[surface_id]
        else:
            shape = scene.shapes[surface_id - ROOM_SURFACES]
            normal, (u, v) = _shape_normal_and_uv(shape, p)
            material = shape.material
        for axis in range(3):
            normals[axis][pixels] = normal[axis]
        albedo[pixels] = _albedo(material, u, v)
    return normals, albedo


def _room_normal_and_uv(room, surface_id, p):
    """Inward normal (constant per surface) and surface coordinates in metres of points on a room surface."""
    x, y, z = p
    return {
        FLOOR: ((0.0, 0.0, 1.0), (x, y)),
        CEILING: ((0.0, 0.0, -1.0), (x, y)),
        WALL_X0: ((1.0, 0.0, 0.0), (y, z)),
        WALL_X1: ((-1.0, 0.0, 0.0), (y, z)),
        WALL_Y0: ((0.0, 1.0, 0.0), (x, z)),
        WALL_Y1: ((0.0, -1.0, 0.0), (x, z)),
    }[int(surface_id)]


def _shape_normal_and_uv(shape, p):
    """Outward unit normal and surface coordinates in metres of points p on the shape."""
    rel = [c - float(m) for c, m in zip(p, shape.center)]
    if shape.kind == "box":
        return _box_normal_and_uv(shape, rel)
    if shape.kind == "cylinder":
        return _cylinder_normal_and_uv(shape, rel)
    radius = shape.half_size[0]
    return [c / radius for c in rel], (np.arctan2(rel[1], rel[0]) * radius, rel[2])


def _cylinder_normal_and_uv(shape, rel):
    """A point is on a cap when it is farther out vertically than radially, relative to the cylinder's size."""
    radius, half_height = shape.half_size[0], shape.half_size[2]
    radial = np.maximum(np.hypot(rel[0], rel[1]), 1e-12)
    on_cap = np.abs(rel[2]) / half_height > radial / radius
    normal = (
        np.where(on_cap, 0.0, rel[0] / radial),
        np.where(on_cap, 0.0, rel[1] / radial),
        np.where(on_cap, np.sign(rel[2]), 0.0),
    )
    # Caps: plain x, y; the side: arc length around and height from the bottom.
    around = np.arctan2(rel[1], rel[0]) * radius
    uv = (np.where(on_cap, rel[0], around), np.where(on_cap, rel[1], rel[2] + half_height))
    return normal, uv


def _box_normal_and_uv(shape, rel):
    """The face is the local axis along which the point lies farthest out, relative to the half size."""
    c, s = float(np.cos(shape.yaw)), float(np.sin(shape.yaw))
    local = [c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2]]
    reach = np.stack([np.abs(q) / h for q, h in zip(local, shape.half_size)])
    face = np.argmax(reach, axis=0)
    sign = np.sign(np.choose(face, local))
    local_normal = [np.where(face == axis, sign, 0.0) for axis in range(3)]
    normal = (c * local_normal[0] - s * local_normal[1], s * local_normal[0] + c * local_normal[1], local_normal[2])
    # Surface coordinates: the two local coordinates across the face, measured from a corner.
    corner = [q + h for q, h in zip(local, shape.half_size)]
    u = np.where(face == 0, corner[1], corner[0])
    v = np.where(face == 2, corner[1], corner[2])
    return normal, (u, v)


# ---------------------------------------------------------------------------------------------------------
# Textures: patterns are functions of (p, q), the surface coordinates in units of the pattern's period,
# returning the weight of color_b in [0, 1].
# ---------------------------------------------------------------------------------------------------------


def _albedo(material, u, v):
    """Linear RGB albedo (N, 3) of the material at surface coordinates u, v (metres)."""
    c, s = float(np.cos(material.angle)), float(np.sin(material.angle))
    p = ((c * u - s * v) / material.scale_m + material.offset[0]).astype(np.float32)
    q = ((s * u + c * v) / material.scale_m + material.offset[1]).astype(np.float32)
    weight = PATTERNS[material.texture](p, q)
    a = np.asarray(material.color_a, np.float32) ** GAMMA
    b = np.asarray(material.color_b, np.float32) ** GAMMA
    return a + (b - a) * weight[:, None]


def _solid(p, q):
    """Faint large blotches, as on painted plaster."""
    return 0.12 * _fbm(p, q, octaves=2)


def _checker(p, q):
    return ((np.floor(p) + np.floor(q)) % 2).astype(np.float32)


def _stripes(p, q):
    return (p - np.floor(p) < 0.5).astype(np.float32)


def _tiles(p, q):
    """Square tiles of slightly varying tone with darker grout lines."""
    fp, fq = p - np.floor(p), q - np.floor(q)
    edge = np.minimum(np.minimum(fp, 1 - fp), np.minimum(fq, 1 - fq))
    tone = 0.2 * _cell_random(np.floor(p), np.floor(q))
    return np.where(edge < 0.035, 1.0, tone).astype(np.float32)


def _wood(p, q):
    """Planks one period wide along p, with streaky grain, varying tone and dark seams."""
    plank = np.floor(q)
    grain = _fbm(p * 0.7, q * 9.0, octaves=3)
    tone = _cell_random(plank, np.floor(p / 6.0 + 0.37 * plank))
    seam = (q - plank < 0.04) | (p / 6.0 + 0.37 * plank - np.floor(p / 6.0 + 0.37 * plank) < 0.004)
    return np.where(seam, 1.0, 0.55 * grain + 0.35 * tone).astype(np.float32)


def _noise(p, q):
    """Blotchy noise, like carpet, stone or concrete."""
    return np.clip(1.6 * (_fbm(p, q, octaves=4) - 0.5) + 0.5, 0.0, 1.0)


PATTERNS = {"solid": _solid, "checker": _checker, "stripes": _stripes, "tiles": _tiles, "wood": _wood, "noise": _noise}


def _cell_random(i, j):
    """A fixed random value in [0, 1) for each integer cell (i, j)."""
    return NOISE_TABLE[i.astype(np.int32) & 255, (j.astype(np.int32) * 7 + 3) & 255]


def _value_noise(p, q):
    """Smooth noise in [0, 1]: random values on the integer lattice, interpolated with a smoothstep."""
    p0, q0 = np.floor(p), np.floor(q)
    fp, fq = p - p0, q - q0
    fp, fq = fp * fp * (3 - 2 * fp), fq * fq * (3 - 2 * fq)
    i, j = p0.astype(np.int32) & 255, q0.astype(np.int32) & 255
    i1, j1 = (i + 1) & 255, (j + 1) & 255
    top = NOISE_TABLE[i, j] + fp * (NOISE_TABLE[i1, j] - NOISE_TABLE[i, j])
    bottom = NOISE_TABLE[i, j1] + fp * (NOISE_TABLE[i1, j1] - NOISE_TABLE[i, j1])
    return top + fq * (bottom - top)


def _fbm(p, q, octaves=3):
    """Fractal noise in [0, 1]: octaves of value noise, each twice as fine and half as strong."""
    total = np.zeros_like(p)
    for octave in range(octaves):
        scale = 2.0**octave
        # The shift keeps the lattices of different octaves from lining up.
        total += _value_noise(p * scale + 17.3 * octave, q * scale + 5.1 * octave) / scale
    return total / (2.0 - 2.0 ** (1 - octaves))


# ---------------------------------------------------------------------------------------------------------
# Lighting and the camera response
# ---------------------------------------------------------------------------------------------------------


def _shade(scene, points, normals, albedo):
    """Linear radiance (N, 3): albedo times (ambient + Lambertian point light where it is not shadowed)."""
    light = scene.light.position
    to_light = [float(lc) - p for lc, p in zip(light, points)]
    distance = np.sqrt(sum(d * d for d in to_light))
    cosine = sum(n * d for n, d in zip(normals, to_light)) / distance
    lit = np.flatnonzero(cosine > 0)
    cosine[lit[_in_shadow(scene, [p[lit] for p in points])]] = 0.0
    direct = np.maximum(cosine, 0.0) / (1.0 + (distance / LIGHT_FALLOFF_M) ** 2)
    # Light bouncing off the room reaches down-facing surfaces less: a slight bias of the ambient term.
    ambient = scene.light.ambient * (0.9 + 0.1 * normals[2])
    return albedo * (ambient + direct)[:, None]


def _in_shadow(scene, points):
    """Whether each point is hidden from the light by a shape; the room casts no shadows inside itself."""
    light = np.asarray(scene.light.position, np.float64)
    d = [p - float(lc) for p, lc in zip(points, light)]  # shadow rays run from the light, t = 1 at the point
    distance = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    shadowed = np.zeros(distance.shape, bool)
    for shape in scene.shapes:
        candidates = _rays_near_sphere(d, distance, *_bounding_sphere(shape, light))
        t = _intersect(shape, light, *(c[candidates] for c in d))
        shadowed[candidates[t < 1.0 - SHADOW_EPSILON]] = True
    return shadowed


def _bounding_sphere(shape, origin):
    """(centre relative to origin, radius) of a sphere holding the shape."""
    return [float(c - o) for c, o in zip(shape.center, origin)], float(np.linalg.norm(shape.half_size))


def _rays_near_sphere(d, length, center, radius):
    """Indices of rays from the origin with directions d (of given lengths) that may pass through the sphere.

    A ray can meet the sphere only inside the cone from the origin around it, and only if it is long
    enough to reach the sphere.
    """
    center_distance = float(np.linalg.norm(center))
    if center_distance <= radius:
        return np.arange(length.size)
    cos_cone = np.sqrt(1.0 - (radius / center_distance) ** 2)
    along = (d[0] * center[0] + d[1] * center[1] + d[2] * center[2]) / center_distance
    return np.flatnonzero((along >= cos_cone * length) & (length > center_distance - radius))


def _to_srgb8(scene, radiance):
    """uint8 sRGB (N, 3): exposure to the scene's mean brightness, a soft shoulder, gamma, sensor noise."""
    exposed = radiance * (scene.exposure / max(float(np.mean(radiance)), 1e-8))
    toned = 1.0 - np.exp(-exposed)  # compresses highlights near the light instead of clipping them
    rgb = toned ** (1.0 / GAMMA)
    if scene.noise_std > 0:
        rng = np.random.default_rng(scene.noise_seed)
        rgb = rgb + scene.noise_std * rng.standard_normal(rgb.shape, dtype=np.float32)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# The synthetic dataset: rooms written as an NYU Depth v2 zip, cached
# ---------------------------------------------------------------------------------------------------------

# The NYU Depth v2 zip layout (the authors' nyu_data.zip), which data.py reads and the rooms are written in.
NYU_CSV = {"train": "data/nyu2_train.csv", "test": "data/nyu2_test.csv"}
SYNTHETIC_DEFAULT_COUNTS = (600, 100)  # (train, test) pairs of `--data synthetic`: about a minute to render
SYNTHETIC_BYTES_PER_PAIR = 2**20  # about what one rendered 640x480 pair takes in the zip (a bound)
SYNTHETIC_VERSION = 1  # bump when the renderer changes, so stale caches are not reused


def synthetic_counts(spec):
    """(train, test) pair counts of 'synthetic' or 'synthetic:N:M' (with or without a focal part)."""
    parts = [p for p in spec.split(":")[1:] if not p.startswith("f")]
    if not parts:
        return SYNTHETIC_DEFAULT_COUNTS
    try:
        train, test = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--data {spec}: expected synthetic:TRAIN:TEST with two whole numbers") from None
    if train < 1 or test < 1:
        raise InputError(f"--data {spec}: needs at least one training and one test pair")
    return train, test


def synthetic_focal(spec):
    """(low, high) focal scales of a spec ending ':fS' (every room at S times NYU's focal length) or
    ':fLOW-HIGH' (each room at its own, log-uniform between them), else None: NYU's Kinect."""
    parts = [p[1:] for p in spec.split(":")[1:] if p.startswith("f")]
    if not parts:
        return None
    try:
        low, high = (float(v) for v in (parts[0].split("-") * 2)[:2])
    except ValueError:
        raise InputError(f"--data {spec}: expected :fSCALE or :fLOW-HIGH, e.g. synthetic:600:100:f0.5-2") from None
    if not 0.1 <= low <= high <= 10:
        raise InputError(f"--data {spec}: focal scales must lie in 0.1-10 times NYU's, low first")
    return low, high


def synthetic_dataset_path(spec="synthetic", cache_dir=None):
    """The cached synthetic zip for spec, rendered on first use."""
    train, test = synthetic_counts(spec)
    focal = synthetic_focal(spec)
    cache = Path(cache_dir or os.environ.get("DENSEDEPTH_CACHE", Path.home() / ".cache" / "densedepth"))
    tag = f"_f{focal[0]:g}-{focal[1]:g}" if focal else ""
    path = cache / f"synthetic_v{SYNTHETIC_VERSION}_{train}_{test}{tag}.zip"
    if not path.exists():
        check_writable(path, (train + test) * SYNTHETIC_BYTES_PER_PAIR)
        print(f"Rendering the synthetic dataset ({train} train + {test} test pairs) into {path}", file=sys.stderr)
        make_synthetic_zip(path, train, test, focal=focal)
    return path


def focal_scales(count, focal, seed):
    """The focal scale of each of count rooms: 1 without focal, else log-uniform in focal = (low, high)."""
    if focal is None:
        return [1.0] * count
    low, high = focal
    draws = np.random.default_rng([seed, 17]).uniform(np.log(low), np.log(high), count)
    return [float(np.exp(d)) for d in draws]


def make_synthetic_zip(path, n_train, n_test, seed=0, workers=None, focal=None):
    """Render pairs in parallel and write an NYU-format zip (8-bit training depth, 16-bit mm test depth).

    focal: (low, high) focal scales (synthetic_focal); each row of the CSVs then carries its room's focal
    length in pixels of the 640-wide picture as a third field, as KITTI's split files do.
    """
    import multiprocessing

    from tqdm import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seeds = [seed * 1_000_003 + i for i in range(n_train)] + [seed * 1_000_003 + 500_000 + i for i in range(n_test)]
    scales = focal_scales(len(seeds), focal, seed)
    jobs = [("train" if k < n_train else "test", k if k < n_train else k - n_train, s, scale)
            for k, (s, scale) in enumerate(zip(seeds, scales))]
    rows = {"train": [], "test": []}
    # spawn: a forked child of a process that has started TensorFlow can hang.
    context = multiprocessing.get_context("spawn")
    try:
        with (atomic_write(path) as partial, context.Pool(workers or os.cpu_count()) as pool,
              zipfile.ZipFile(partial, "w") as archive):
            for split, _, files, scale in tqdm(pool.imap(encoded_pair, jobs), total=len(jobs),
                                               desc="rendering", unit="pair"):
                for name, data in files.items():
                    archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
                focal_px = [f"{NYU_INTRINSICS['fx'] * scale:.4f}"] if focal else []
                rows[split].append(",".join([*files, *focal_px]))
            for split, csv_name in NYU_CSV.items():
                archive.writestr(csv_name, "\n".join(rows[split]) + "\n")
    except OSError as err:  # full disk: no half-written zip is left behind (atomic_write)
        raise InputError(f"{path}: cannot write ({err.strerror or err})") from err
    return path


def encoded_pair(job):
    """Render one synthetic scene and encode it as NYU does: (split, index, {zip member name: bytes}, focal
    scale), RGB first.

    Training pairs: JPEG RGB and 8-bit PNG depth (255 = 10 m); test pairs: PNG RGB and 16-bit PNG depth
    in millimetres.
    """
    split, i, seed, scale = job
    rgb, depth_m = render_scene(seed, focal_scale=scale)
    if split == "train":
        stem = f"data/nyu2_train/synthetic_{i // 10:04d}/{i % 10}"
        depth = np.round(np.clip(depth_m / NYU_ENCODING.full_scale_8bit_m, 0, 1) * 255).astype(np.uint8)
        return split, i, {f"{stem}.jpg": encode_image(rgb, "JPEG"), f"{stem}.png": encode_image(depth, "PNG")}, scale
    stem = f"data/nyu2_test/{i:05d}"
    depth = np.round(depth_m * NYU_ENCODING.units_per_m).astype(np.uint16)
    files = {f"{stem}_colors.png": encode_image(rgb, "PNG"), f"{stem}_depth.png": encode_image(depth, "PNG")}
    return split, i, files, scale


def encode_image(array, image_format):
    """PNG or JPEG (quality 95) bytes of a uint8 / uint16 array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Clips: one room seen by a camera moving along a smooth path, with exact depth and poses
# ---------------------------------------------------------------------------------------------------------

CLIP_PATHS = ("walk", "pan", "dolly")
WALK_M = 0.6  # forward, along the horizontal heading of the optical axis
WALK_SWAY_M = (0.02, 0.01)  # sideways and vertical amplitude of the sway: two steps of a walk
PAN_RAD = np.radians(25.0)  # counter-clockwise (to the left), about the world vertical
DOLLY_M = 0.5  # sideways, along the camera's horizontal right
# Along the whole path the camera keeps this horizontal gap to the walls and to every shape's bounding circle:
# as WALL_CLEARANCE_M argues, every visible point is then farther than MIN_DEPTH_M, so no depth is clipped.
CLIP_CLEARANCE_M = WALL_CLEARANCE_M
CLIP_FARTHEST_M = MAX_DEPTH_M - 0.05  # and every room corner stays nearer than this: no depth is clipped far
# Each path is tried at these fractions of its length (longest first), starting at the scene's camera, ending
# at it, or centred on it, until every point of it is clear; a room with no room for any stands still.
CLIP_AMPLITUDES = (1.0, 0.75, 0.5, 0.25)
CLIP_ANCHORS = (0.0, 1.0, 0.5)  # where along the path the scene's own camera position lies
CLIP_CHECKS = 49  # points along a path checked for clearance (the frames in between are covered too)


def clip_intrinsics(height, width):
    """(fx, fy, cx, cy) in pixels of a clip's height x width frames: NYU's Kinect scaled to the frame, in
    this module's convention (pixel (v, u) is the ray through (u + 0.5, v + 0.5)), which camera.back_project
    and metrics.temporal_alignment_error share."""
    return intrinsics(Camera(position=(0.0, 0.0, 0.0)), height, width)


def camera_to_world(camera):
    """4x4 float64 taking camera coordinates (x right, y down, z forward, metres) to world coordinates: the
    transform under which render()'s rays leave camera.position, so a pixel back-projected from its z-depth
    (camera.back_project with the same intrinsics) lands on the surface point the pixel sees."""
    matrix = np.eye(4)
    matrix[:3, :3] = camera_rotation(camera)
    matrix[:3, 3] = camera.position
    return matrix


def ease(t):
    """Cosine ease from 0 at t = 0 to 1 at t = 1, with zero speed at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.asarray(t, dtype=np.float64))


def clip_cameras(scene, frames, path="walk"):
    """The camera at each of `frames` evenly spaced times t in [0, 1] along the path (CLIP_PATHS) through
    the scene's room: the scene's camera moved smoothly ("walk": WALK_M forward with a slight sway; "pan":
    PAN_RAD of yaw, standing still; "dolly": DOLLY_M sideways), shortened or shifted so that it stays clear
    of walls and furniture (CLIP_CLEARANCE_M)."""
    if path not in CLIP_PATHS:
        raise ValueError(f"unknown clip path {path!r} (choose one of {', '.join(CLIP_PATHS)})")
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {frames}")
    times = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    start = scene.camera
    if path == "pan":  # turning about the vertical in place never moves the camera towards anything
        return [replace(start, yaw=float(start.yaw + PAN_RAD * ease(t))) for t in times]
    heading = np.array([np.cos(start.yaw), np.sin(start.yaw), 0.0])
    right = np.array([np.sin(start.yaw), -np.cos(start.yaw), 0.0])  # the camera's x axis at zero roll
    up = np.array([0.0, 0.0, 1.0])
    if path == "walk":
        def offset(t, amplitude, anchor):
            sway = WALK_SWAY_M[0] * np.sin(4 * np.pi * t) * right + WALK_SWAY_M[1] * np.sin(8 * np.pi * t) * up
            return amplitude * (WALK_M * (ease(t) - anchor) * heading + sway)
    else:
        def offset(t, amplitude, anchor):
            return amplitude * DOLLY_M * (ease(t) - anchor) * right
    origin = np.asarray(start.position, dtype=np.float64)
    checks = np.linspace(0.0, 1.0, CLIP_CHECKS)
    chosen = (0.0, 0.0)  # standing still: the scene's camera is clear by construction
    for amplitude in CLIP_AMPLITUDES:
        anchor = next((a for a in CLIP_ANCHORS if all(_clip_clear(scene, origin + offset(t, amplitude, a))
                                                      for t in checks)), None)
        if anchor is not None:
            chosen = (amplitude, anchor)
            break
    return [replace(start, position=tuple(float(c) for c in origin + offset(t, *chosen))) for t in times]


def _clip_clear(scene, position):
    """Whether a camera at position is CLIP_CLEARANCE_M clear (horizontally) of the walls and of every
    shape's bounding circle, and within CLIP_FARTHEST_M of every room corner."""
    size = scene.room.size_m
    x, y, _ = position
    margin = CLIP_CLEARANCE_M
    if not (margin <= x <= size[0] - margin and margin <= y <= size[1] - margin):
        return False
    for shape in scene.shapes:
        reach = np.hypot(*shape.half_size[:2]) if shape.kind == "box" else shape.half_size[0]
        if np.hypot(x - shape.center[0], y - shape.center[1]) < reach + CLIP_CLEARANCE_M:
            return False
    corners = np.array([[cx, cy, cz] for cx in (0, size[0]) for cy in (0, size[1]) for cz in (0, size[2])])
    return bool(np.max(np.linalg.norm(corners - np.asarray(position), axis=1)) <= CLIP_FARTHEST_M)


def render_clip(seed, frames=24, path="walk", height=240, width=320):
    """Yield (rgb uint8 (H, W, 3), depth_m float32 (H, W), camera_to_world float64 4x4) for each frame of
    one room (the scene render_scene(seed) draws) seen by a camera moving along a path (clip_cameras).

    Depth is exact: back-projecting frame t's depth with clip_intrinsics(height, width) and mapping it by
    frame t's camera_to_world gives the world points frame t sees. Each frame has its own sensor noise.
    """
    scene = sample_scene(np.random.default_rng(seed))
    for index, camera in enumerate(clip_cameras(scene, frames, path)):
        rgb, depth = render(replace(scene, camera=camera, noise_seed=scene.noise_seed + index), height, width)
        yield rgb, depth, camera_to_world(camera)


# ---------------------------------------------------------------------------------------------------------
# The synthetic video set: clips written as frame folders, cached
# ---------------------------------------------------------------------------------------------------------

SYNTHETIC_VIDEO_DEFAULTS = (4, 24)  # (clips, frames per clip) of `--data synthetic-video`
SYNTHETIC_VIDEO_HW = (240, 320)
SYNTHETIC_VIDEO_SEED = 5000  # clip i is the room of seed SYNTHETIC_VIDEO_SEED + i
SYNTHETIC_VIDEO_VERSION = 1  # bump when the renderer or the paths change, so stale caches are not reused
SYNTHETIC_VIDEO_BYTES_PER_FRAME = 2**19  # a bound on one 320x240 frame's two PNGs


def synthetic_video_counts(spec):
    """(clips, frames per clip) of 'synthetic-video', 'synthetic-video:N' or 'synthetic-video:N:F'."""
    name, *parts = str(spec).split(":")
    usage = "expected synthetic-video[:CLIPS[:FRAMES]] with whole numbers, e.g. synthetic-video:6:32"
    if name != "synthetic-video" or len(parts) > 2:
        raise InputError(f"--data {spec}: {usage}")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--data {spec}: {usage}") from None
    clips, frames = (values + list(SYNTHETIC_VIDEO_DEFAULTS)[len(values):])[:2]
    if clips < 1 or frames < 2:
        raise InputError(f"--data {spec}: needs at least one clip of at least two frames")
    return clips, frames


def clip_path_kind(index):
    """The path of clip index: walk, pan, dolly, walk, ..."""
    return CLIP_PATHS[index % len(CLIP_PATHS)]


def synthetic_video_path(spec="synthetic-video", cache_dir=None, size=SYNTHETIC_VIDEO_HW):
    """The cached folder of the clips of spec, rendered on first use: clip_XX/{rgb/NNNNNN.png,
    depth/NNNNNN.png (16-bit mm), poses.txt (a row-major 4x4 camera_to_world a line), camera.txt ("fx fy cx
    cy height width")}. Under the cache synthetic_dataset_path uses (DENSEDEPTH_CACHE, or cache_dir)."""
    clips, frames = synthetic_video_counts(spec)
    height, width = (int(s) for s in size)
    cache = Path(cache_dir or os.environ.get("DENSEDEPTH_CACHE", Path.home() / ".cache" / "densedepth"))
    path = cache / f"synthetic_video_v{SYNTHETIC_VIDEO_VERSION}_{clips}x{frames}_{height}x{width}"
    if not path.is_dir():
        check_writable(path, clips * frames * SYNTHETIC_VIDEO_BYTES_PER_FRAME * height * width // (240 * 320),
                       folder=True)
        print(f"Rendering the synthetic video set ({clips} clips of {frames} frames) into {path}", file=sys.stderr)
        make_synthetic_video(path, clips, frames, height, width)
    return path


def make_synthetic_video(path, clips, frames, height=SYNTHETIC_VIDEO_HW[0], width=SYNTHETIC_VIDEO_HW[1]):
    """Render the clips into a temporary folder beside path, then rename it to path: an interrupted render
    leaves no folder at path (a later call renders again)."""
    import shutil
    import tempfile

    from tqdm import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    fx, fy, cx, cy = clip_intrinsics(height, width)
    try:
        with tqdm(total=clips * frames, desc="rendering clips", unit="frame") as progress:
            for i in range(clips):
                folder = partial / f"clip_{i:02d}"
                (folder / "rgb").mkdir(parents=True)
                (folder / "depth").mkdir()
                poses = []
                for k, (rgb, depth_m, pose) in enumerate(render_clip(SYNTHETIC_VIDEO_SEED + i, frames,
                                                                    clip_path_kind(i), height, width)):
                    (folder / "rgb" / f"{k:06d}.png").write_bytes(encode_image(rgb, "PNG"))
                    millimetres = np.round(depth_m * NYU_ENCODING.units_per_m).astype(np.uint16)
                    (folder / "depth" / f"{k:06d}.png").write_bytes(encode_image(millimetres, "PNG"))
                    poses.append(" ".join(f"{v:.17g}" for v in pose.ravel()))
                    progress.update()
                (folder / "poses.txt").write_text("\n".join(poses) + "\n")
                (folder / "camera.txt").write_text(f"{fx:.17g} {fy:.17g} {cx:.17g} {cy:.17g} {height} {width}\n")
        partial.chmod(0o755)  # mkdtemp's folder is private; the cache is not
        try:
            os.rename(partial, path)
        except OSError:
            if not path.is_dir():  # another process may have finished the same render first: keep its folder
                raise
    except OSError as err:
        raise InputError(f"{path}: cannot write ({err.strerror or err})") from err
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return path
