"""See depth and the 3D scene in a browser: a local Gradio page around the same DepthEstimator as test.py.

    python demo.py                                   # http://127.0.0.1:7860, the same default model as test.py
    python demo.py --model runs/<name>/final.keras --port 8000
    python demo.py --host 0.0.0.0                    # share the page on your network (loopback by default)

Drop or pick a picture (or take a webcam frame where the browser allows; the examples are one click away)
and the page shows the depth map with a colour bar in metres, the scene as a coloured mesh you can rotate
(drag) and zoom (scroll), and offers test.py's files for download: NAME_depth_mm.png (16-bit millimetres),
NAME_depth_m.npy (float32 metres), NAME.ply (coloured point cloud in metres) and NAME_depth_color.png.
Every number comes from estimator.DepthEstimator and outputs.write_outputs, as in test.py, so the page
and `python test.py --npy --ply` give the same files, for every model format test.py takes. The page
needs no internet: Gradio serves its own scripts and the theme uses the system's fonts. With no --model:
nyu.h5 here if present, else the newest model under runs/. A model that fails to load, a file that is not
a picture or one that is too large shows a message on the page; the server keeps serving. The picture's
camera (a 35 mm-equivalent focal length typed on the page, else the upload's EXIF, else the model's
training camera) scales its depth and shapes the 3D view, as in test.py.

A short clip (up to MAX_CLIP_FRAMES frames and MAX_CLIP_SECONDS seconds) dropped in the clip box goes
through the same model frame by frame, steadied along the camera's motion (DepthEstimator.video_depths,
temporal "flow", as test.py's clips), and plays back as an mp4 of each frame beside its depth, on one
colour scale for the whole clip (its first frames' 2nd to 98th percentile) with a bar in metres. A longer
clip, or a file that is not a video, shows a one-line message; test.py takes clips of any length.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from settings import add_model_flags, check_model_flags

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page must not call home

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
DEFAULT_PORT = 7860
MAX_PICTURE_PIXELS = 40_000_000  # test.py takes any size; a page upload this large would stall the server
MAX_UPLOAD = "50mb"
KEEP_RESULTS = 8  # result folders kept on disk; older ones are deleted (Gradio keeps its own copies)
# A clip holds the one model (and the page) for all its frames: on two CPU cores the built-in model with the
# flow steadying and the H.264 encoding of picture + depth takes of the order of a tenth of a second per
# 640x480 frame, so 300 frames (10 s at 30 fps) is already most of a minute of waiting. Longer: test.py.
MAX_CLIP_FRAMES = 300
MAX_CLIP_SECONDS = 20.0  # the same bound for slow frame rates (a 15 fps phone clip, a GIF)
MAX_CLIP_FRAME_PIXELS = 1920 * 1088  # 1080p; a 4K frame twice over (picture + depth) is slow to encode here


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 shares it)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    add_model_flags(parser)
    args = parser.parse_args(argv)
    check_model_flags(parser, args)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    return args


# ---------------------------------------------------------------------------------------------------------
# The model and one picture through it
# ---------------------------------------------------------------------------------------------------------


class DepthDemo:
    """The estimator (loaded once; a failed load is retried on the next picture) and the picture -> results step.

    model, depth_range, precision, threads: as DepthEstimator.load takes them; max_side: as its predict.
    """

    def __init__(self, model=None, depth_range=None, precision=None, threads=None, max_side=None):
        self.options = dict(path=model, depth_range=depth_range, precision=precision, threads=threads)
        self.max_side = max_side
        self.estimator = None
        self.error = None
        self.description = ""
        self.lock = threading.Lock()  # one picture at a time: the network is the bottleneck anyway
        self.results = Path(tempfile.mkdtemp(prefix="densedepth-demo-"))
        self.count = 0

    def load(self):
        """Load the model if not yet loaded; returns None, or the one-line reason it cannot be loaded."""
        from estimator import DepthEstimator
        from utils import InputError

        if self.estimator is not None:
            return None
        try:
            estimator = DepthEstimator.load(**self.options)
        except InputError as err:
            self.error = str(err)
            return self.error
        self.estimator, self.error = estimator, None
        warnings = "".join(f"  \n**warning:** {warning}" for warning in estimator.warnings)
        self.description = (f"model: `{estimator.path}`{' (default)' if estimator.default else ''} - "
                            f"{estimator.contract.describe()}{warnings}")
        return None

    def status(self):
        """The line under the title: the model in use, or why there is none."""
        return self.description if self.estimator is not None else f"**model not loaded:** {self.error}"

    def predict(self, picture_path, focal_35mm=None):
        """(depth view, .glb path, download paths, summary) for a picture file; InputError for a bad one.

        focal_35mm: the picture's 35 mm-equivalent focal length; None: its EXIF's, else the training camera.
        """
        from camera import picture_camera
        from outputs import depth_view, mesh_arrays, point_cloud, write_glb, write_outputs
        from utils import InputError, load_image

        start = time.perf_counter()
        check_picture_size(picture_path)
        with self.lock:
            if self.load():
                raise InputError(f"the model could not be loaded: {self.error}")
            image = load_image(picture_path)
            height, width = image.shape[:2]
            camera, line = picture_camera(picture_path, height, width, self.estimator.camera,
                                          focal_35mm=focal_35mm or None)
            depth_m = self.estimator.predict(image, max_side=self.max_side, camera=camera)
        intrinsics = camera.pixels(height, width)  # test.py's camera: the point cloud is in metres too
        folder = self.new_folder()
        stem = Path(picture_path).stem or "picture"
        files = write_outputs(folder, stem, image, depth_m, intrinsics, npy=True, ply=True)
        vertices = point_cloud(depth_m, image, intrinsics).reshape(height, width)
        write_glb(folder / f"{stem}_mesh.glb", *mesh_arrays(vertices))
        summary = (f"**{Path(picture_path).name}**: {width}x{height}, depth {depth_m.min():.2f} - "
                   f"{depth_m.max():.2f} m (median {float(np.median(depth_m)):.2f} m), "
                   f"{time.perf_counter() - start:.1f} s  \n{line}: depth x {self.estimator.depth_scale(camera):.3f}")
        order = [files[1], files[2], files[3], files[0]]  # millimetre PNG, metres .npy, .ply, colour PNG
        return depth_view(depth_m), str(folder / f"{stem}_mesh.glb"), [str(p) for p in order], summary

    def predict_clip(self, clip_path, focal_35mm=None):
        """(path of an mp4 of each frame beside its depth, summary) for a video file; InputError for a file
        that is not a readable video or a clip over MAX_CLIP_FRAMES frames / MAX_CLIP_SECONDS seconds.

        Frames go through DepthEstimator.video_depths (temporal "flow") as they are decoded; the colour
        scale is fixed from the first frames' depth (video.ClipWriters).
        focal_35mm: the clip's 35 mm-equivalent focal length; None: the model's training camera.
        """
        from camera import picture_camera
        from utils import InputError
        from video import VIDEO_SUFFIXES, ClipWriters, DepthVideoWriter, is_video, open_clip

        start = time.perf_counter()
        path = Path(clip_path)
        if not is_video(path):
            raise InputError(f"{path.name} is not a video file this demo takes ({', '.join(VIDEO_SUFFIXES)})")
        with self.lock, open_clip(path) as clip:
            check_clip_size(clip)
            if self.load():
                raise InputError(f"the model could not be loaded: {self.error}")
            target = self.new_folder() / f"{path.stem or 'clip'}_depth.mp4"
            camera, line = picture_camera(None, clip.height, clip.width, self.estimator.camera, use_exif=False,
                                          focal_35mm=focal_35mm or None)
            frames = self.estimator.video_depths(clip.frames(), "flow", max_side=self.max_side, camera=camera)
            depth_range = self.estimator.depth_range
            outputs = ClipWriters(lambda near_far: [DepthVideoWriter(target, clip.fps, clip.height, clip.width,
                                                                     near_far, side_by_side=True)],
                                  (depth_range.min_m, depth_range.max_m))
            with outputs:
                for index, frame, depth_m in frames:
                    if index >= MAX_CLIP_FRAMES:  # a container that does not list its frames (mkv, webm)
                        raise InputError(clip_too_long(path.name, f"more than {MAX_CLIP_FRAMES} frames"))
                    outputs.write(depth_m, frame)
            near_far = outputs.colour_range
            count, fps, width, height = outputs.frames, clip.fps, clip.width, clip.height
        summary = (f"**{path.name}**: {count} frames at {fps:g} fps, {width}x{height}, colour scale "
                   f"{near_far[0]:.2f} - {near_far[1]:.2f} m, steadied along the camera's motion, "
                   f"{time.perf_counter() - start:.1f} s  \n{line}: depth x {self.estimator.depth_scale(camera):.3f}")
        return str(target), summary

    def new_folder(self):
        """A fresh folder for one picture's files; the oldest beyond KEEP_RESULTS are deleted."""
        self.count += 1
        folder = self.results / f"{self.count:06d}"
        folder.mkdir()
        for old in sorted(self.results.iterdir())[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)
        return folder


def check_picture_size(path):
    """InputError for a picture over MAX_PICTURE_PIXELS, read from its header (nothing decoded)."""
    from PIL import Image

    from utils import InputError, picture_errors

    try:
        with Image.open(path) as im:
            width, height = im.size
    except picture_errors():  # not a picture at all: load_image says so in its own words
        return
    if width * height > MAX_PICTURE_PIXELS:
        raise InputError(f"{Path(path).name} is {width}x{height} ({width * height / 1e6:.0f} megapixels): the demo "
                         f"takes up to {MAX_PICTURE_PIXELS / 1e6:.0f}; scale it down, or use test.py")


def check_clip_size(clip):
    """InputError for a clip over MAX_CLIP_FRAMES frames, MAX_CLIP_SECONDS seconds or MAX_CLIP_FRAME_PIXELS
    per frame, from its header (only the first frame decoded); a clip that does not list its frames is
    counted as it plays (predict_clip)."""
    from utils import InputError

    name = clip.path.name
    if clip.height * clip.width > MAX_CLIP_FRAME_PIXELS:
        raise InputError(f"{name} is {clip.width}x{clip.height}: the demo takes clips up to 1920x1080; "
                         f"scale it down, or use test.py")
    if clip.frame_count is None:
        return
    if clip.frame_count > MAX_CLIP_FRAMES:
        raise InputError(clip_too_long(name, f"{clip.frame_count} frames"))
    if clip.frame_count / clip.fps > MAX_CLIP_SECONDS:
        raise InputError(clip_too_long(name, f"{clip.frame_count / clip.fps:.0f} s"))


def clip_too_long(name, length):
    return (f"{name} is too long for this demo ({length}): it takes clips up to {MAX_CLIP_FRAMES} frames and "
            f"{MAX_CLIP_SECONDS:g} s; cut it, or use test.py")


def page_error(message):
    """The message for the page (a script gets it as an AppError), and one line on the console, no traceback."""
    import gradio as gr

    print(f"error: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=False)


def run_clip(demo, clip_path, focal_35mm=None):
    """The clip box's step: (depth video path, summary), or a page error of one line."""
    from utils import InputError

    if not clip_path:
        return None, ""
    focal_35mm = focal_35mm or None
    if focal_35mm is not None and not 0 < focal_35mm < 10_000:
        raise page_error(f"the 35 mm-equivalent focal length must be a positive number of mm, got {focal_35mm}")
    try:
        return demo.predict_clip(clip_path, focal_35mm)
    except InputError as err:  # named as uploaded, not by the server's upload folder
        raise page_error(str(err).replace(str(clip_path), Path(clip_path).name)) from err
    except Exception as err:  # noqa: BLE001 - the page says what failed; the server keeps serving
        raise page_error(f"prediction failed: {type(err).__name__}: {err}") from err


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------


def build_page(demo):
    """The Gradio Blocks page around a DenseDepth demo."""
    import gradio as gr
    from PIL import Image, UnidentifiedImageError

    from utils import InputError

    def one_line_errors(preprocess):
        """Gradio's upload step, saying in one line that a file is not a picture instead of a bare 'Error'.

        (Wrapped on the instance: a subclass of gr.Image would make Gradio write a demo.pyi beside this file.)
        """

        def wrapped(payload):
            try:
                return preprocess(payload)
            except Image.DecompressionBombError as err:  # PIL refuses pictures over about 179 megapixels
                name = getattr(payload, "orig_name", None) or "the file"
                raise page_error(f"{name} is too large for this demo ({err}); scale it down, or use test.py") from err
            except (UnidentifiedImageError, OSError, ValueError) as err:
                name = getattr(payload, "orig_name", None) or "the file"
                raise page_error(f"{name} is not a picture this demo can read ({type(err).__name__})") from err

        return wrapped

    def run(picture_path, focal_35mm=None):
        if not picture_path:
            return None, None, None, ""
        focal_35mm = focal_35mm or None  # an empty field (None, or 0 from some browsers): the EXIF, else the model's
        if focal_35mm is not None and not 0 < focal_35mm < 10_000:
            raise page_error(f"the 35 mm-equivalent focal length must be a positive number of mm, got {focal_35mm}")
        try:
            return demo.predict(picture_path, focal_35mm)
        except InputError as err:
            raise page_error(str(err)) from err
        except Exception as err:  # noqa: BLE001 - the page says what failed; the server keeps serving
            raise page_error(f"prediction failed: {type(err).__name__}: {err}") from err

    with gr.Blocks(title="DenseDepth demo", analytics_enabled=False) as page:
        gr.Markdown("## DenseDepth: depth from one picture\nDrop or pick a picture, take a webcam frame, or "
                    "click an example. Depth is in metres; the files are test.py's.")
        status = gr.Markdown(demo.status(), elem_id="status")
        with gr.Row():
            # image_mode=None: the uploaded file itself reaches utils.load_image, as test.py reads it
            picture = gr.Image(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                               label="picture", elem_id="picture", height=360)
            picture.preprocess = one_line_errors(picture.preprocess)
            depth = gr.Image(label="depth (m)", type="numpy", format="png", interactive=False, elem_id="depth",
                             height=360)
        with gr.Row():
            scene = gr.Model3D(label="3D scene: drag to rotate, scroll to zoom", elem_id="scene", height=420,
                               clear_color=(0.12, 0.12, 0.14, 1.0), camera_position=(-90, 90, None))
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                files = gr.File(label="downloads: 16-bit depth in mm (.png), metres (.npy), point cloud (.ply)",
                                file_count="multiple", elem_id="downloads", interactive=False)
        examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.png"))
        if examples:
            gr.Examples(examples=examples, inputs=picture, label="examples (one click)")
        focal = gr.Number(label="35 mm-equivalent focal length in mm (empty: the picture's EXIF, else the model's "
                                "camera; a phone's main camera: about 26)", value=None, elem_id="focal")
        picture.change(run, [picture, focal], [depth, scene, files, summary], api_name="predict")
        focal.submit(run, [picture, focal], [depth, scene, files, summary], api_name=False)
        gr.Markdown(f"### A short clip\nDrop a video (up to {MAX_CLIP_FRAMES} frames and {MAX_CLIP_SECONDS:g} s): "
                    "each frame plays beside its depth, steadied along the camera's motion, on one colour scale.")
        with gr.Row():
            # format=None, include_audio=True: the upload reaches open_clip as it is (no FFmpeg conversion)
            clip = gr.Video(label="clip", sources=["upload"], format=None, include_audio=True, elem_id="clip",
                            height=360)
            clip_depth = gr.Video(label="picture and depth (m)", interactive=False, elem_id="clip-depth",
                                  height=360, loop=True, autoplay=True)
        clip_summary = gr.Markdown(elem_id="clip-summary")
        clip.change(lambda path, focal: run_clip(demo, path, focal), [clip, focal], [clip_depth, clip_summary],
                    api_name="predict_clip")
        page.load(lambda: demo.status(), None, status, api_name=False)  # a retried model load shows on reload
    return page


def offline_theme():
    """Gradio's default look in the system's fonts: nothing to download (a theme font given as
    gr.themes.GoogleFont is fetched from Google by the browser; tests/test_demo.py would catch one)."""
    import gradio as gr

    return gr.themes.Default(font=[gr.themes.Font("system-ui"), gr.themes.Font("sans-serif")],
                             font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")])


def main(argv=None):
    args = parse_args(argv)
    import gradio as gr  # noqa: F401 - after parse_args, so --help answers at once

    demo = DepthDemo(args.model, args.depth_range, args.precision, args.threads, args.max_side)
    if demo.load():
        print(f"error: {demo.error} (the page will say so; fix it and reload the page)", file=sys.stderr)
    else:
        print(demo.description.replace("`", "").replace("  \n**warning:**", "\nwarning:"))
    page = build_page(demo)
    try:
        page.launch(server_name=args.host, server_port=args.port, show_error=True, max_file_size=MAX_UPLOAD,
                    theme=offline_theme(), allowed_paths=[str(EXAMPLES_DIR)], ssr_mode=False, quiet=False)
    except OSError as err:
        sys.exit(f"error: cannot serve on {args.host}:{args.port} ({err})")
    finally:
        shutil.rmtree(demo.results, ignore_errors=True)


if __name__ == "__main__":
    main()
