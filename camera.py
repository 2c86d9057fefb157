"""Cameras: the pinhole camera of a picture or of a model's training data, and the focal-length correction.

A network learns sizes as it saw them: an object of height S at depth d spans f S / d of the picture, so a
model trained at focal length f_train, shown a picture taken at focal length f, answers d f_train / f. The
true depth is the prediction times f / f_train (the canonical camera of Yin et al., Metric3D, ICCV 2023,
applied to the depth rather than the picture). Focal lengths here are relative to the picture: fx / width
and fy / height, so one camera describes a picture at every resolution the network may see it at, and the
correction is the ratio of the two fx.

    from camera import NYU_CAMERA, picture_camera
    camera, line = picture_camera("photo.jpg", 3024, 4032, training=NYU_CAMERA)   # flags, EXIF, else training
    scale = camera.fx / NYU_CAMERA.fx                                              # 26 mm on a phone: 0.89

A picture's camera comes from flags (fx in pixels, a horizontal field of view, or a 35 mm-equivalent focal
length), else its EXIF (FocalLengthIn35mmFilm; else FocalLength with FocalPlaneXResolution), else the
model's training camera. A 35 mm-equivalent focal length is matched on the picture's longer side, 36 mm
(the film's long side): 26 mm is then 0.722 of a landscape picture's width.
"""
import math
from dataclasses import dataclass

import numpy as np

from utils import InputError

FILM_LONG_SIDE_MM = 36.0  # what a 35 mm-equivalent focal length is measured against: the film's long side
# A horizontal field of view outside these is not a camera's: an EXIF tag that gives one is ignored.
PLAUSIBLE_FOV_DEG = (2.0, 150.0)
# EXIF tags (CIPA DC-008): in the Exif IFD, focal lengths in mm and the sensor's pixels per unit.
EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
RESOLUTION_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, centimetre, millimetre, micrometre


@dataclass(frozen=True)
class Camera:
    """A pinhole camera relative to its picture: fx and cx as fractions of the width, fy and cy of the
    height. source: where it came from, in words (what the scripts print)."""

    fx: float
    fy: float
    cx: float = 0.5
    cy: float = 0.5
    source: str = ""

    @classmethod
    def from_pixels(cls, fx, fy, cx, cy, height, width, source=""):
        """The camera of intrinsics in pixels of a height x width picture."""
        return cls(fx / width, fy / height, cx / width, cy / height, source)

    @classmethod
    def from_dict(cls, content, source=""):
        return cls(float(content["fx"]), float(content["fy"]), float(content.get("cx", 0.5)),
                   float(content.get("cy", 0.5)), content.get("source", source))

    def to_dict(self):
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "source": self.source}

    def pixels(self, height, width):
        """Intrinsics {fx, fy, cx, cy} in pixels of a height x width picture (back_project takes them)."""
        return {"fx": self.fx * width, "fy": self.fy * height, "cx": self.cx * width, "cy": self.cy * height}

    @property
    def horizontal_fov_deg(self):
        return math.degrees(2 * math.atan(0.5 / self.fx))

    def with_focal(self, fx, source):
        """This camera's principal point with another horizontal focal length (square pixels kept)."""
        return Camera(fx, self.fy * fx / self.fx, self.cx, self.cy, source)


# NYU Depth v2's Kinect at 640x480 (pixels), and KITTI's left colour camera (P_rect_02 of 2011_09_26) at
# 1242x375.
NYU_INTRINSICS = {"fx": 518.8579, "fy": 519.4696, "cx": 325.5824, "cy": 253.7362}
NYU_CAMERA = Camera.from_pixels(**NYU_INTRINSICS, height=480, width=640, source="NYU Depth v2's Kinect")
KITTI_CAMERA = Camera.from_pixels(721.5377, 721.5377, 609.5593, 172.854, 375, 1242, "KITTI's colour camera")


def scaled_intrinsics(height, width):
    """Pinhole intrinsics {fx, fy, cx, cy} in pixels: NYU's Kinect at width x height."""
    return NYU_CAMERA.pixels(height, width)


def back_project(depth, intrinsics):
    """Camera-frame points (H, W, 3) in metres, x right, y down, z forward, from z-depth (H, W).

    Pixel (row v, column u) is the ray through its centre (u + 0.5, v + 0.5), as in synthetic.py.
    """
    depth = np.asarray(depth, dtype=np.float64)
    height, width = depth.shape
    x = (np.arange(width) + 0.5 - intrinsics["cx"]) / intrinsics["fx"]
    y = (np.arange(height) + 0.5 - intrinsics["cy"]) / intrinsics["fy"]
    rays = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.ones((1, 1))), axis=-1)
    return depth[..., None] * rays


# ---------------------------------------------------------------------------------------------------------
# A picture's camera: flags, else EXIF, else the training camera
# ---------------------------------------------------------------------------------------------------------


def focal_from_fov(fov_deg):
    """Relative horizontal focal length fx / width of a horizontal field of view in degrees."""
    return 0.5 / math.tan(math.radians(fov_deg) / 2)


def focal_from_35mm(focal_35mm, height, width):
    """fx / width of a 35 mm-equivalent focal length, matched on the picture's longer side."""
    return focal_35mm / FILM_LONG_SIDE_MM * max(height, width) / width


CAMERA_FLAGS = ("fx", "fy", "cx", "cy", "fov", "focal_35mm")


def flags_camera(height, width, base, **flags):
    """(camera, whether the flags gave its focal length) for a height x width picture.

    flags (CAMERA_FLAGS, each None or absent when not given): fx, fy, cx, cy in pixels of the picture (fy
    defaults to fx times base's fy / fx); fov: horizontal field of view in degrees; focal_35mm: its 35
    mm-equivalent focal length. What the flags leave out is base's.
    """
    unknown = sorted(set(flags) - set(CAMERA_FLAGS))
    if unknown:
        raise TypeError(f"flags_camera: unknown camera flags {', '.join(unknown)}")
    fx, fy, cx, cy, fov, focal_35mm = (flags.get(name) for name in CAMERA_FLAGS)
    given = [name for name, value in (("--fx", fx), ("--fov", fov), ("--focal-35mm", focal_35mm)) if value]
    if len(given) > 1:
        raise InputError(f"{' and '.join(given)} both give the focal length: pass one")
    camera = Camera(base.fx, base.fy, base.cx if cx is None else cx / width, base.cy if cy is None else cy / height,
                    base.source)
    if fx:
        relative, source = fx / width, f"--fx {fx:g} px"
    elif fov:
        relative, source = focal_from_fov(fov), f"--fov {fov:g} degrees"
    elif focal_35mm:
        relative, source = focal_from_35mm(focal_35mm, height, width), f"--focal-35mm {focal_35mm:g} mm"
    else:
        return camera, False
    camera = camera.with_focal(relative, source)  # fy: the base camera's pixel aspect, unless given
    return (Camera(camera.fx, fy / height, camera.cx, camera.cy, source) if fy else camera), True


def exif_camera(image, height, width, base):
    """(camera, note): the camera a PIL image's EXIF gives, else (None, why not or None where it has none).

    FocalLengthIn35mmFilm first; else FocalLength in mm with the sensor's FocalPlaneXResolution (pixels
    per unit of the full-size picture, PixelXDimension wide, rescaled to this one). Values that are not
    numbers, not positive, or give a field of view no camera has, are refused with a note.
    """
    try:
        exif = image.getexif().get_ifd(EXIF_IFD)
    except (AttributeError, ValueError, TypeError, OSError):  # no EXIF at all, or an unreadable block
        return None, None
    if not exif or not (exif.get(FOCAL_LENGTH_35MM) or exif.get(FOCAL_LENGTH)):
        return None, None
    try:
        if exif.get(FOCAL_LENGTH_35MM):
            mm = _positive(exif[FOCAL_LENGTH_35MM], "FocalLengthIn35mmFilm")
            relative, source = focal_from_35mm(mm, height, width), f"EXIF FocalLengthIn35mmFilm {mm:g} mm"
        else:
            mm = _positive(exif[FOCAL_LENGTH], "FocalLength")
            if not exif.get(FOCAL_PLANE_X_RESOLUTION):
                return None, (f"EXIF FocalLength {mm:g} mm without FocalLengthIn35mmFilm or the focal plane "
                              "resolution: the sensor size is unknown")
            per_unit = _positive(exif[FOCAL_PLANE_X_RESOLUTION], "FocalPlaneXResolution")
            unit_mm = RESOLUTION_UNIT_MM.get(int(exif.get(FOCAL_PLANE_RESOLUTION_UNIT, 2)))
            if unit_mm is None:
                return None, f"EXIF FocalPlaneResolutionUnit {exif[FOCAL_PLANE_RESOLUTION_UNIT]!r} is not a unit"
            full_width = _full_width(exif, height, width)
            relative = mm * per_unit / unit_mm / full_width
            source = f"EXIF FocalLength {mm:g} mm on a sensor of {full_width / (per_unit / unit_mm):.2f} mm"
    except (TypeError, ValueError, ZeroDivisionError) as err:
        return None, f"EXIF focal length unreadable ({err})"
    camera = base.with_focal(relative, source)
    if not PLAUSIBLE_FOV_DEG[0] <= camera.horizontal_fov_deg <= PLAUSIBLE_FOV_DEG[1]:
        return None, f"{source} gives a {camera.horizontal_fov_deg:.0f} degree field of view, which no camera has"
    return camera, None


def _positive(value, name):
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} is {value!r}")
    return number


def _full_width(exif, height, width):
    """The width of the full-size picture the focal plane resolution counts pixels of (in this picture's
    orientation): PixelXDimension, else this picture's own width."""
    full = exif.get(PIXEL_X_DIMENSION), exif.get(PIXEL_Y_DIMENSION)
    if not all(full) or float(full[0]) <= 0 or float(full[1]) <= 0:
        return width
    # A picture turned upright by its Orientation tag has its sides swapped against the sensor's.
    long_side, short_side = max(map(float, full)), min(map(float, full))
    return long_side if width >= height else short_side


def picture_camera(path, height, width, training, use_exif=True, **flags):
    """(camera, line): a height x width picture's camera and one line saying which was used.

    In order: the flags (flags_camera), the picture's EXIF (exif_camera; a refused tag is named in the
    line), else training, the model's training camera. path: the picture's file (None: no EXIF).
    """
    camera, from_flags = flags_camera(height, width, training, **flags)
    if from_flags:
        return camera, f"camera from {camera.source}"
    note = None
    if use_exif and path is not None:
        from PIL import Image

        from utils import picture_errors

        try:
            with Image.open(path) as image:
                found, note = exif_camera(image, height, width, camera)
        except picture_errors():
            found = None
        if found is not None:
            return found, f"camera from {found.source}"
    reason = f"{note}; " if note else ""
    return camera, f"{reason}camera assumed to be the model's training camera ({training.source})"
