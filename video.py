"""Depth on clips: reading video files and folders of frames, writing depth as video, .npy and 16-bit PNGs,
and steadying a stream of per-frame predictions (DepthStabiliser).

    from utils import batches
    from video import open_clip, DepthVideoWriter
    with open_clip("walk.mp4") as clip, DepthVideoWriter("walk_depth.mp4", clip.fps, clip.height, clip.width,
                                                         (0.5, 10.0)) as out:
        for group in batches(clip.frames(), 8):          # upright uint8 RGB (H, W, 3), decoded one at a time
            for depth_m in predict(group):
                out.write(depth_m)

Clips are decoded with PyAV (FFmpeg in its wheel); frame_folder_clip gives a folder or glob of pictures the
same interface. Every writer streams (nothing is kept per frame) and its close() leaves a valid file, also
after an interruption: use them in `with` or try/finally. Errors a user can fix are utils.InputError, one line
naming the file. Nothing here imports TensorFlow.
"""
import glob
import io
import itertools
import os
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from camera import NYU_CAMERA
from outputs import colorize, depth_mm_image
from utils import InputError, atomic_write, picture_errors, pil_rgb

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_FPS = 10.0  # a GIF whose frames say no duration plays at this rate (what browsers do for delay 0-1)
DEFAULT_COLORMAP = "plasma"  # colorize's, so a clip's depth looks like the pictures' _depth_color.png
# A container's frame count (the mp4 sample table) can exceed the frames decoded by the ones an edit list
# hides (a phone's first frame, B-frame delay): a clip ending this many frames short still counts as whole.
EDIT_LIST_SLACK = 2


def is_video(path):
    """True for a path whose suffix is a video container's (VIDEO_SUFFIXES), whatever the case."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# ---------------------------------------------------------------------------------------------------------
# Clips in
# ---------------------------------------------------------------------------------------------------------


def frames_of(source):
    """Upright uint8 RGB frames from a video file, a folder or glob of frames, or an iterable of frames."""
    if isinstance(source, (str, Path)):
        clip = open_clip(source) if is_video(source) else frame_folder_clip(source)
        with clip:
            yield from clip.frames()
    else:
        for frame in source:
            yield pil_rgb_array(frame)


def pil_rgb_array(frame):
    """A frame as uint8 RGB (H, W, 3) (grey frames repeated, alpha dropped)."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def ffmpeg_reason(err):
    """'InvalidDataError: Invalid data found when processing input': PyAV's message without errno and path."""
    return f"{err.__class__.__name__}: {getattr(err, 'strerror', None) or err}"


def upright(rgb, rotation):
    """The picture turned clockwise by rotation degrees (0/90/180/270), contiguous."""
    # np.rot90 turns counter-clockwise for positive k; a copy so callers get an ordinary C-ordered array.
    return np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90))) if rotation else rgb


class ClosedOnExit:
    """`with` support for the readers and writers here: leaving the block calls close(), also on an error."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Clip(ClosedOnExit):
    """A video file opened for reading; use open_clip(). Attributes: path, fps, frame_count (None when the
    container does not say), height and width as displayed (after rotation), rotation (degrees clockwise the
    stored frames are turned to be upright), has_audio. frames() yields upright uint8 RGB (H, W, 3)."""

    def __init__(self, path):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        self._av = av
        self._container = self._open()
        try:
            streams = self._container.streams
            if not streams.video:
                raise InputError(f"{self.path}: no video stream (streams: "
                                 f"{', '.join(s.type for s in streams) or 'none'})")
            stream = streams.video[0]
            self.has_audio = bool(streams.audio)
            self.frame_count = int(stream.frames) or None  # 0: the container does not say (mkv, webm)
            # The first frame is decoded now: it carries the display matrix (rotation), and a clip without
            # frames fails here rather than after the caller has set up its outputs.
            self._decoded = self._decode(self._container)
            first = next(self._decoded, None)
            if first is None:
                raise InputError(f"{self.path}: no frames")
            self._first = first
            # VideoFrame.rotation is counter-clockwise in [-180, 180]; clockwise 0-359 is the classic
            # "rotate" tag a phone writes (90 for a portrait clip).
            self.rotation = int(round(-first.rotation / 90.0)) % 4 * 90
            stored = (first.height, first.width)
            self.height, self.width = stored[::-1] if self.rotation in (90, 270) else stored
            self.fps = self._rate(stream, first)
        except BaseException:
            self.close()
            raise

    def _open(self):
        """The PyAV container, or an InputError saying this file is not a video FFmpeg can read."""
        try:
            return self._av.open(str(self.path))
        except (self._av.FFmpegError, OSError) as err:
            raise InputError(f"{self.path}: not a video PyAV can read ({ffmpeg_reason(err)})") from err

    @staticmethod
    def _rate(stream, first):
        """Frames per second: the stream's average rate, else one over the first frame's duration (a GIF's
        delay), else DEFAULT_FPS."""
        rate = stream.average_rate or stream.guessed_rate
        if rate and rate > 0:
            return float(rate)
        if first.duration and first.time_base:
            return float(1 / (first.duration * first.time_base))
        return DEFAULT_FPS

    def _decode(self, container):
        """PyAV VideoFrames of the first video stream, a decoding failure as an InputError with the count."""
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: FFmpeg decodes ahead on the other cores
        count = 0
        try:
            for frame in container.decode(stream):
                count += 1
                yield frame
        except self._av.FFmpegError as err:
            raise InputError(f"{self.path}: corrupt or truncated after frame {count} ({ffmpeg_reason(err)})") from err
        # FFmpeg mostly stops at a cut file without an error; where the container lists its frames, a clip
        # that ends short is reported here, after its frames were served (the caller's outputs are kept).
        listed = int(stream.frames)
        if listed and count < listed - EDIT_LIST_SLACK:
            raise InputError(f"{self.path}: corrupt or truncated after frame {count} (the container lists {listed})")

    def frames(self):
        """Upright uint8 RGB (H, W, 3) frames in order, decoded one at a time. A second call decodes again."""
        if self._container is None:
            raise ValueError(f"{self.path}: the clip is closed")
        if self._first is not None:
            decoded, first, self._first = self._decoded, self._first, None
            decoded = itertools.chain([first], decoded)
            container = None
        else:  # the first pass consumed the shared decoder: read the file from the start in a fresh one
            container = self._open()
            decoded = self._decode(container)
        try:
            for frame in decoded:
                yield upright(frame.to_ndarray(format="rgb24"), self.rotation)
        finally:
            if container is not None:
                container.close()

    def close(self):
        """Release the file (also safe twice)."""
        if getattr(self, "_container", None) is not None:
            self._container.close()
        self._container = None
        self._first = None

    def __repr__(self):
        return (f"Clip({str(self.path)!r}, {self.width}x{self.height} at {self.fps:g} fps, "
                f"frames={self.frame_count}, rotation={self.rotation}, audio={self.has_audio})")


def open_clip(path):
    """A Clip of the video file at path (a context manager); InputError if it is not a readable video."""
    return Clip(path)


def natural_key(path):
    """Sort key putting frame_2.png before frame_10.png (digits compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def frame_paths(source):
    """The picture files of a folder, a glob pattern or a list of paths, in natural order."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            found = [p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()]
        else:
            found = [Path(p) for p in glob.glob(str(source)) if Path(p).is_file()]
    else:
        found = [Path(p) for p in source]
    return sorted(found, key=natural_key)


class FrameFolderClip(ClosedOnExit):
    """Pictures as a clip, with Clip's attributes and frames(); use frame_folder_clip()."""

    rotation = 0
    has_audio = False

    def __init__(self, paths, fps=30.0):
        self.paths = frame_paths(paths)
        if not self.paths:
            raise InputError(f"{paths}: no frames (no picture files)")
        self.path = self.paths[0].parent
        self.fps = float(fps)
        self.frame_count = len(self.paths)
        self.height, self.width = self._read(self.paths[0]).shape[:2]

    @staticmethod
    def _read(path):
        """One upright uint8 RGB picture (EXIF orientation applied), or an InputError naming the file."""
        from PIL import Image, ImageOps

        try:
            with Image.open(path) as im:
                im.load()
                return pil_rgb(ImageOps.exif_transpose(im))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except picture_errors() as err:
            raise InputError(f"{path}: cannot read image ({err.__class__.__name__}: {err})") from err

    def frames(self):
        """Upright uint8 RGB (H, W, 3) frames in path order, read one at a time."""
        for path in self.paths:
            rgb = self._read(path)
            if rgb.shape[:2] != (self.height, self.width):
                raise InputError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} frame in a sequence of "
                                 f"{self.width}x{self.height} frames (from {self.paths[0].name})")
            yield rgb

    def close(self):
        """Nothing to release (frames are opened one at a time); here for Clip's interface."""


def frame_folder_clip(paths, fps=30.0):
    """A FrameFolderClip over picture files (a list, a folder or a glob), sorted naturally, at fps."""
    return FrameFolderClip(paths, fps)


# ---------------------------------------------------------------------------------------------------------
# Depth out
# ---------------------------------------------------------------------------------------------------------


def finite_depth(depth_m, height=None, width=None):
    """depth_m as float32 (H, W), checked against the size the writer was made for, if it has one."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if depth_m.ndim == 3 and depth_m.shape[-1] == 1:
        depth_m = depth_m[..., 0]
    if height is not None and depth_m.shape != (height, width):
        raise ValueError(f"depth of shape {depth_m.shape}, expected ({height}, {width})")
    return depth_m


def rgb_uint8(rgb):
    """uint8 RGB from uint8 or float [0, 1] pictures."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colour_table(near, far, colormap):
    """(256, 3) uint8 colours of colorize from near to far: one table, so every frame uses the same scale."""
    return colorize(np.linspace(near, far, 256)[None], vmin=near, vmax=far, cmap=colormap)[0]


def bar_ticks(near, far, steps):
    """Round values (1, 2, 2.5, 5 times a power of ten) from near to far, about steps apart; the two ends
    where fewer than two round ones fall inside."""
    from matplotlib.ticker import MaxNLocator

    ticks = [float(v) for v in MaxNLocator(steps).tick_values(near, far) if near - 1e-9 <= v <= far + 1e-9]
    return ticks if len(ticks) >= 2 else [near, far]


def colour_bar(table, near, far, height):
    """uint8 RGB (height, w, 3): the table as a vertical strip (far at the top) with a few metre labels."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    values = bar_ticks(near, far, int(np.clip(height // 40, 1, 5)))  # labels about 40 px apart
    labels = [f"{v:.3g} m" for v in values]
    text_width = max(int(np.ceil(font.getlength(label))) for label in labels)
    strip, gap = 10, 4
    bar = Image.new("RGB", (gap + strip + gap + text_width + gap, height))
    rows = np.linspace(255, 0, height).round().astype(int)  # top row far, bottom row near
    column = np.repeat(table[rows][:, None], strip, axis=1)
    bar.paste(Image.fromarray(column), (gap, 0))
    draw = ImageDraw.Draw(bar)
    for value, label in zip(values, labels):
        y = (far - value) / max(far - near, 1e-12) * (height - 1)
        top, bottom = draw.textbbox((0, 0), label, font=font)[1::2]
        y = float(np.clip(y - (top + bottom) / 2, -top, height - bottom))  # centred on its row, kept inside
        draw.text((gap + strip + gap, y), label, fill=(255, 255, 255), font=font)
    return np.asarray(bar)


class DepthVideoWriter(ClosedOnExit):
    """An H.264 mp4 of depth maps coloured on one fixed scale, with a colour bar in metres on the right
    (and the picture on the left with side_by_side). write(depth_m, rgb=None) per frame; close() finishes
    the file. Frames are padded to even sides (yuv420p halves the chroma). Attributes: height, width (the
    encoded size), bar_width, frames (written so far)."""

    def __init__(self, path, fps, height, width, depth_range_m, side_by_side=False, colormap=DEFAULT_COLORMAP):
        import av

        near, far = (float(v) for v in depth_range_m)
        if not far > near:
            raise ValueError(f"depth_range_m must be (near, far) with far > near, got {depth_range_m}")
        self.path = Path(path)
        self.depth_height, self.depth_width = int(height), int(width)
        self.near, self.far, self.side_by_side = near, far, side_by_side
        self._table = colour_table(near, far, colormap)
        self._bar = colour_bar(self._table, near, far, self.depth_height)  # drawn once, pasted on every frame
        self.bar_width = self._bar.shape[1]
        content_width = self.depth_width * (2 if side_by_side else 1) + self.bar_width
        self.height, self.width = self.depth_height + self.depth_height % 2, content_width + content_width % 2
        self._canvas = np.zeros((self.height, self.width, 3), np.uint8)
        self._canvas[:self.depth_height, content_width - self.bar_width:content_width] = self._bar
        self.frames = 0
        # Written beside the target and renamed at close(): a reader never sees an mp4 without its index.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._container = av.open(str(self._partial), "w", format="mp4")
        try:
            self._rate = Fraction(fps).limit_denominator(1001000)  # NTSC's float 29.97003 -> 30000/1001
            self._stream = self._container.add_stream("libx264", rate=self._rate, options={"crf": "20"})
            self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
            self._stream.thread_type = "AUTO"
        except BaseException:
            self._container.close()
            self._partial.unlink(missing_ok=True)
            raise

    def colour(self, depth_m):
        """uint8 RGB of depth on the writer's fixed scale (outside it clipped, NaN and inf black)."""
        finite = np.isfinite(depth_m)
        scaled = (np.where(finite, depth_m, self.near) - self.near) / (self.far - self.near)
        rgb = self._table[np.clip(np.round(scaled * 255), 0, 255).astype(np.intp)]
        rgb[~finite] = 0
        return rgb

    def write(self, depth_m, rgb=None):
        """Encode one frame: depth_m in metres at the source's size; rgb (uint8 or float [0, 1]) with
        side_by_side."""
        import av

        depth_m = finite_depth(depth_m, self.depth_height, self.depth_width)
        h, w = self.depth_height, self.depth_width
        left = 0
        if self.side_by_side:
            if rgb is None:
                raise ValueError("side_by_side needs the picture: write(depth_m, rgb)")
            rgb = rgb_uint8(rgb)
            if rgb.shape != (h, w, 3):
                raise ValueError(f"picture of shape {rgb.shape}, expected ({h}, {w}, 3)")
            self._canvas[:h, :w] = rgb
            left = w
        self._canvas[:h, left:left + w] = self.colour(depth_m)
        frame = av.VideoFrame.from_ndarray(self._canvas, format="rgb24")
        frame.pts = self.frames  # one tick of 1/fps per frame: the time base add_stream set from rate
        frame.time_base = 1 / self._rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self):
        """Flush the encoder and finish the mp4 (whatever was written so far); safe twice."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode():
                container.mux(packet)
        finally:
            container.close()
        if self.frames:
            os.replace(self._partial, self.path)
        else:  # FFmpeg writes no header without a packet: there is no file to keep
            self._partial.unlink(missing_ok=True)


COLOUR_SCALE_FRAMES = 8  # a clip's colour scale comes from its first frames' depth


def colour_range(depths, fallback_m):
    """(near, far) metres of a clip's colour scale: the 2nd and 98th percentiles of its first frames' depth,
    else (no finite depth) fallback_m."""
    values = np.concatenate([d[np.isfinite(d) & (d > 0)].ravel() for d in depths])
    if not values.size:
        return tuple(float(v) for v in fallback_m)
    near, far = (float(v) for v in np.percentile(values, (2, 98)))
    return near, max(far, near * 1.05, near + 1e-3)  # a flat clip (one depth) still gets a scale


class ClipWriters:
    """A clip's writers, opened once its first COLOUR_SCALE_FRAMES frames have set its colour scale.

    open_writers(near_far) returns the writers (each with write(depth_m, rgb) and close()); write() holds
    the first frames until then. Closing hands a short clip's frames over first, unless an exception is
    on its way; the writers are closed either way, so what they hold is a valid file.
    """

    def __init__(self, open_writers, fallback_m):
        self._open, self._fallback = open_writers, fallback_m
        self.writers, self.colour_range, self._pending = [], None, []

    @property
    def frames(self):
        return self.writers[0].frames if self.writers else 0

    def write(self, depth_m, rgb):
        self._pending.append((rgb, depth_m))
        if self.writers or len(self._pending) == COLOUR_SCALE_FRAMES:
            self._hand_over()

    def _hand_over(self):
        if not self.writers and self._pending:
            self.colour_range = colour_range([depth for _, depth in self._pending], self._fallback)
            self.writers = self._open(self.colour_range)
        for rgb, depth in self._pending:
            for writer in self.writers:
                writer.write(depth, rgb)
        self._pending = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        try:
            if exc_type is None:
                self._hand_over()
        finally:
            for writer in self.writers:
                writer.close()


def npy_header(count, height, width, length=None):
    """The .npy version 1.0 header of float32 (count, height, width), padded with spaces to length bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                 "shape": (count, height, width)})
    header = buffer.getvalue()
    if length is None:
        return header
    # The format allows spaces before the closing newline; the 2-byte length after the magic says where
    # the data starts, so the data offset (and its 64-byte alignment) stays where the placeholder put it.
    text = header[10:].rstrip(b"\n").ljust(length - 11) + b"\n"
    if len(text) + 10 != length:
        raise ValueError(f"a header for {count} frames does not fit in {length} bytes")
    return header[:8] + struct.pack("<H", len(text)) + text


class NpyFramesWriter(ClosedOnExit):
    """Depth in metres as one float32 .npy of shape (frames, H, W), written frame by frame; close()
    writes the real frame count into the header (np.load(path, mmap_mode="r") reads it without loading)."""

    PLACEHOLDER_COUNT = 10 ** 12  # more digits than any clip's count: the final header is never longer

    def __init__(self, path, height, width):
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._file = open(self._partial, "wb")
        self._header_length = len(npy_header(self.PLACEHOLDER_COUNT, self.height, self.width))
        self._file.write(npy_header(self.PLACEHOLDER_COUNT, self.height, self.width, self._header_length))

    def write(self, depth_m, rgb=None):
        """Append one (H, W) depth map in metres (rgb: unused, as every writer takes it)."""
        depth_m = finite_depth(depth_m, self.height, self.width)
        self._file.write(np.ascontiguousarray(depth_m, dtype="<f4").data)
        self.frames += 1

    def close(self):
        """Write the frame count into the header and move the file into place; safe twice."""
        if self._file is None:
            return
        f, self._file = self._file, None
        try:
            f.seek(0)
            f.write(npy_header(self.frames, self.height, self.width, self._header_length))
        finally:
            f.close()
        os.replace(self._partial, self.path)


class Png16FramesWriter(ClosedOnExit):
    """Depth as 16-bit PNGs in millimetres (0 where there is no depth), frame i as folder/000000.png on."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frames = 0

    def write(self, depth_m, rgb=None):
        """Write the next frame's PNG (each file complete before the next: nothing to finish at close; rgb:
        unused, as every writer takes it)."""
        from PIL import Image

        depth_m = finite_depth(depth_m)
        depth_m = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0.0)  # NaN would cast to garbage
        with atomic_write(self.folder / f"{self.frames:06d}.png") as partial:
            Image.fromarray(depth_mm_image(depth_m)).save(partial)
        self.frames += 1

    def close(self):
        """Nothing buffered: every frame's file is complete once written. Here for the writers' interface."""


# ---------------------------------------------------------------------------------------------------------
# Steady depth: a causal filter over the per-frame predictions, along the camera's own motion
# ---------------------------------------------------------------------------------------------------------


TEMPORAL_MODES = ("flow", "none")
WORK_SIDE = 320  # the motion and the blend run at most this size: a 480x640 frame's correction costs a quarter
POSE_MIN_SIDE = 20  # the coarsest level of the motion's image pyramid
POSE_POINTS = 6000  # the pixels each pyramid level aligns: the strongest gradients
POSE_ITERATIONS = 10  # Gauss-Newton steps per pyramid level (they stop earlier once a step is negligible)
CUT_CONTRAST = 0.5  # is_cut: a match misses by under half the picture's contrast
HUBER_K = 1.345  # robust weight: residuals beyond this many (robust) standard deviations count linearly


@dataclass(frozen=True)
class StabiliserSettings:
    """How much of the previous steady depth each frame keeps (`memory`), where the frames agree: the
    photometric residual after motion compensation under `photometric` (grey levels in [0, 1]) and the
    depths within `agreement` (relative). Below `min_overlap` of the picture agreeing, the clip is taken
    to have cut and the filter starts again."""

    memory: float = 0.8
    photometric: float = 0.25
    agreement: float = 1.0
    min_overlap: float = 0.2


class DepthStabiliser:
    """Steady metric depth for a stream of frames, without retraining, one frame at a time.

    A metric network's flicker is a frame-to-frame jitter of its scale and of its detail. Each frame's
    steady depth is a blend of its own prediction and the previous steady depth carried to it by the
    camera's motion: S_t = (1 - m) D_t + m rigid(S_t-1), with m = `memory` where the carried picture
    matches this one and the depths agree, 0 where they do not (occlusions, things that move, new
    content). The motion (rotation and translation between consecutive frames) is estimated from the
    pictures and this frame's predicted depth by direct photometric alignment (camera_motion); the previous
    steady depth is moved by it as 3-D points, so walking towards a wall brings it nearer by the step
    walked, pixel by pixel. One motion for the picture, fitted to thousands of pixels, carries no
    per-pixel flicker forward, and every frame keeps 1 - m of its own prediction, so errors fade
    geometrically and nothing drifts: the scale stays the network's, metric, and a still scene seen by a
    moving camera stays where it is. Causal: it runs on a live camera as on a file.

    camera: the frames' camera (camera.Camera, relative to the picture); the motion is fitted with it, so
    a wrong one bends the carried depth a little, while the blend keeps each frame's own share.
    """

    def __init__(self, settings=StabiliserSettings(), camera=NYU_CAMERA):
        self.settings, self.camera = settings, camera
        self._grey = self._steady = None
        self._motion = np.eye(4)

    def __call__(self, rgb, depth_m):
        """The steady depth (float32, depth_m's shape) of the next frame.

        The blend runs on a copy of at most WORK_SIDE pixels a side; a larger frame keeps its own detail
        and receives the blend's correction, upsampled (flicker is broad; the detail is the frame's).
        """
        depth_m = np.asarray(depth_m, np.float32)
        small = _resized(depth_m, shrunk_shape(depth_m.shape, WORK_SIDE))
        grey = _grey(rgb, small.shape)
        if self._steady is None or self._steady.shape != small.shape:
            steady, self._motion = small, np.eye(4)
        else:
            steady = self._blend(grey, small)
        self._grey, self._steady = grey, steady
        if small.shape == depth_m.shape:
            return steady
        return np.maximum(depth_m + _resized(steady - small, depth_m.shape), np.float32(1e-3))

    def _blend(self, grey, depth_m):
        settings = self.settings
        motion = self._motion_to_previous(grey, depth_m)
        if motion is None:  # nothing to align on (a blank frame), or no convergence: start again from this frame
            self._motion = np.eye(4)
            return depth_m
        rows, cols, carried = carried_depth(self._steady, depth_m, motion, self.camera.pixels(*depth_m.shape))
        inside = (rows >= 0) & (rows <= depth_m.shape[0] - 1) & (cols >= 0) & (cols <= depth_m.shape[1] - 1)
        residual = np.abs(grey - _sample(self._grey, rows, cols))
        usable = inside & (residual < settings.photometric) & (carried > 0) & (depth_m > 0)
        if usable.mean() < settings.min_overlap or is_cut(residual[inside], grey):  # start again from this frame
            self._motion = np.eye(4)
            return depth_m
        self._motion = motion
        agree = usable & (np.abs(carried - depth_m) < settings.agreement * depth_m)
        memory = np.where(agree, np.float32(settings.memory), np.float32(0))
        return ((1 - memory) * depth_m + memory * carried).astype(np.float32)

    def _motion_to_previous(self, grey, depth_m):
        """The 4x4 motion from this frame's camera to the previous one's, started from the previous frame's
        motion (a camera moves smoothly); None where there is nothing to align on or it does not converge."""
        try:
            motion = camera_motion(grey, self._grey, depth_m, self.camera.pixels(*depth_m.shape), self._motion)
        except np.linalg.LinAlgError:
            return None
        return motion if np.all(np.isfinite(motion)) else None


def is_cut(residual, grey):
    """Whether the previous picture, carried by the motion found, is another shot: its grey levels miss this
    picture's by as much as the picture's own contrast (both medians of absolute differences; two unrelated
    pictures give about 1.4 times the contrast, a match the noise)."""
    contrast = np.median(np.abs(grey - np.median(grey)))
    return residual.size == 0 or np.median(residual) > CUT_CONTRAST * contrast


def shrunk_shape(shape, side):
    """shape scaled down (never up) to at most `side` pixels on its longer side."""
    scale = min(1.0, side / max(shape))
    return max(8, round(shape[0] * scale)), max(8, round(shape[1] * scale))


def camera_motion(grey, grey_previous, depth_m, k, start=None):
    """The rigid motion (4x4) taking points of this frame's camera into the previous frame's camera.

    Direct alignment (as dense visual odometry does): this frame's pixels, back-projected with their
    depth (metres) and intrinsics k ({fx, fy, cx, cy} in pixels of grey's shape), moved and projected into
    the previous picture, should find their own grey level there. Gauss-Newton on the six parameters,
    robust (Huber) weights, coarse to fine over an image pyramid, on the better textured half of the
    pixels. start: the first guess (the previous frame's motion; identity if None).
    """
    levels = [tuple(np.asarray(image, np.float64) for image in (grey, grey_previous, depth_m)) + (1.0,)]
    while min(levels[-1][0].shape) // 2 >= POSE_MIN_SIDE:
        levels.append(tuple(_halved(image) for image in levels[-1][:3]) + (levels[-1][3] / 2,))
    motion = np.eye(4) if start is None else np.array(start, np.float64)
    for this, previous, depth, scale in reversed(levels):
        intrinsics = [k[key] * scale for key in ("fx", "fy", "cx", "cy")]
        motion = _aligned_motion(this, previous, depth, intrinsics, motion)
    return motion


def _aligned_motion(grey, previous, depth, intrinsics, motion):
    """camera_motion on one pyramid level, from motion."""
    from scipy.ndimage import map_coordinates

    fx, fy, cx, cy = intrinsics
    grad_rows, grad_cols = np.gradient(previous)
    strength = np.where(depth > 0, np.hypot(*np.gradient(grey)), -1.0).ravel()
    # Flat pixels say nothing of the motion: the better textured half, at most POSE_POINTS of them.
    count = min(POSE_POINTS, int(np.sum(strength >= 0)) // 2)
    keep = np.argpartition(-strength, count)[:count] if count < strength.size else np.arange(strength.size)
    rows, cols = np.divmod(keep, grey.shape[1])
    z = depth.ravel()[keep]
    points = np.stack([(cols + 0.5 - cx) / fx * z, (rows + 0.5 - cy) / fy * z, z])
    target = grey.ravel()[keep]
    for _ in range(POSE_ITERATIONS):
        moved = motion[:3, :3] @ points + motion[:3, 3:4]
        ahead = moved[2] > 1e-3
        depth_there = np.where(ahead, moved[2], 1.0)
        at = [fy * moved[1] / depth_there + cy - 0.5, fx * moved[0] / depth_there + cx - 0.5]
        inside = ahead & (at[0] >= 0) & (at[0] <= grey.shape[0] - 1) & (at[1] >= 0) & (at[1] <= grey.shape[1] - 1)
        if inside.sum() < 6:
            raise np.linalg.LinAlgError("too few pixels in view to align")
        residual = map_coordinates(previous, at, order=1, mode="nearest") - target
        g_rows, g_cols = (map_coordinates(g, at, order=1, mode="nearest") for g in (grad_rows, grad_cols))
        sigma = 1.4826 * np.median(np.abs(residual[inside])) + 1e-4
        weight = np.where(inside, np.minimum(1.0, HUBER_K * sigma / np.maximum(np.abs(residual), 1e-12)), 0.0)
        # d residual / d point, then / d (rotation, translation) of a small motion applied after `motion`
        d_point = np.stack([g_cols * fx / depth_there, g_rows * fy / depth_there,
                            -(g_cols * fx * moved[0] + g_rows * fy * moved[1]) / depth_there ** 2])
        jacobian = np.concatenate([np.cross(moved.T, d_point.T).T, d_point])
        hessian = (jacobian * weight) @ jacobian.T + 1e-9 * np.eye(6)
        step = -np.linalg.solve(hessian, (jacobian * weight) @ residual)
        motion = _twist(step) @ motion
        if np.linalg.norm(step) < 1e-6:
            break
    return motion


def _twist(step):
    """The 4x4 rigid motion of a small (rotation vector, translation) step."""
    from scipy.spatial.transform import Rotation

    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_rotvec(step[:3]).as_matrix()
    motion[:3, 3] = step[3:]
    return motion


def carried_depth(steady_previous, depth_m, motion, k):
    """(rows, cols, carried): for each pixel of this frame, where it was in the previous frame (found with
    its own depth and the motion into the previous camera) and the previous steady depth there, moved
    into this frame's camera (the z of the 3-D point, not the depth it had)."""
    fx, fy, cx, cy = k["fx"], k["fy"], k["cx"], k["cy"]
    rows, cols = np.mgrid[0:depth_m.shape[0], 0:depth_m.shape[1]].astype(np.float64)
    points = np.stack([(cols + 0.5 - cx) / fx, (rows + 0.5 - cy) / fy, np.ones_like(rows)]) * depth_m
    there = np.einsum("ij,jhw->ihw", motion[:3, :3], points) + motion[:3, 3, None, None]
    z_there = np.where(there[2] > 1e-3, there[2], np.nan)
    rows_there = fy * there[1] / z_there + cy - 0.5
    cols_there = fx * there[0] / z_there + cx - 0.5
    rows_there, cols_there = np.nan_to_num(rows_there, nan=-1.0), np.nan_to_num(cols_there, nan=-1.0)
    previous = _sample(steady_previous, rows_there, cols_there)
    ray = np.stack([(cols_there + 0.5 - cx) / fx, (rows_there + 0.5 - cy) / fy, np.ones_like(rows)])
    back = np.linalg.inv(motion)
    carried = np.einsum("j,jhw->hw", back[2, :3], ray * previous) + back[2, 3]
    return rows_there.astype(np.float32), cols_there.astype(np.float32), carried.astype(np.float32)


def _halved(image):
    """image at half the size, each pixel the mean of a 2x2 block (an odd last row or column dropped)."""
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    image = image[:height, :width]
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def _grey(rgb, shape):
    """The picture as grey levels in [0, 1] at shape."""
    from PIL import Image

    image = Image.fromarray(np.asarray(rgb, np.uint8)).convert("L").resize(shape[::-1], Image.BILINEAR)
    return np.asarray(image, np.float32) / 255.0


def _resized(image, shape):
    """image at shape (bilinear)."""
    from skimage.transform import resize

    return image if image.shape == tuple(shape) else resize(image, shape, order=1, preserve_range=True,
                                                            anti_aliasing=False).astype(np.float32)


def _sample(image, rows, cols):
    """image at fractional (rows, cols), bilinear, the border repeated."""
    from scipy.ndimage import map_coordinates

    return map_coordinates(image, [rows, cols], order=1, mode="nearest").astype(np.float32)
