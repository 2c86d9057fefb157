"""See depth and the 3D scene in a browser: a local Gradio page around test.py's prediction.

    python demo.py                                   # http://127.0.0.1:7860, the same default model as test.py
    python demo.py --model runs/<name>/final.keras --port 8000
    python demo.py --host 0.0.0.0                    # share the page on your network (loopback by default)

Drop or pick a picture (or take a webcam frame where the browser allows; the examples are one click away)
and the page shows the depth map with a colour bar in metres, the scene as a coloured mesh you can rotate
(drag) and zoom (scroll), and offers test.py's files for download: NAME_depth_mm.png (16-bit millimetres),
NAME_depth_m.npy (float32 metres), NAME.ply (coloured point cloud in metres) and NAME_depth_color.png.
Every number comes from test.py's own functions (predict_picture, model_settings, write_outputs), so the
page and `python test.py --npy --ply` give the same files. The page needs no internet: Gradio serves its
own scripts and the theme uses the system's fonts. With no --model: nyu.h5 here if present, else the
newest model under runs/. A model that fails to load, a file that is not a picture or one that is too large
shows a message on the page; the server keeps serving.
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

from utils import DEPTH_RANGES, PRECISION_POLICIES  # utils needs no TensorFlow: --help stays instant

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off the console
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page must not call home

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
DEFAULT_PORT = 7860
MAX_PICTURE_PIXELS = 40_000_000  # test.py takes any size; a page upload this large would stall the server
MAX_UPLOAD = "50mb"
MESH_MAX_SIDE = 256  # the 3D view samples the point cloud on a grid at most this many vertices across
MESH_MAX_DEPTH_RATIO = 1.1  # a triangle whose far corner is 10 % deeper than its near one spans an edge: dropped
KEEP_RESULTS = 8  # result folders kept on disk; older ones are deleted (Gradio keeps its own copies)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file: .keras (ours) or the authors' .h5 (default: nyu.h5 if "
                                        "present, else the newest *.keras under runs/)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 shares it)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--depth-range", choices=sorted(DEPTH_RANGES),
                        help="as in test.py: the range the model was trained for (default: the model's contract)")
    parser.add_argument("--max-side", type=int, default=None,
                        help="as in test.py: longer side the network sees (default: the model's training size)")
    parser.add_argument("--precision", default="float32", choices=tuple(PRECISION_POLICIES),
                        help="compute precision (default float32)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    if args.max_side is not None and args.max_side < 0:
        parser.error(f"--max-side must be 0 or positive, got {args.max_side}")
    return args


# ---------------------------------------------------------------------------------------------------------
# What the page shows: a depth map with its colour bar, and a mesh for the 3D view
# ---------------------------------------------------------------------------------------------------------


def depth_view(depth_m):
    """RGB uint8 picture: utils.colorize's map (the _depth_color.png file) beside a colour bar in metres."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from utils import colorize

    height, width = depth_m.shape
    lo, hi = float(depth_m.min()), float(depth_m.max())
    fig = Figure(figsize=(6.4, max(2.0, 6.4 * height / width * 0.85)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(colorize(depth_m), interpolation="nearest")
    ax.axis("off")
    bar = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(lo, max(hi, lo + 1e-6)), cmap="plasma")
    fig.colorbar(bar, ax=ax, fraction=0.046, pad=0.02, label="depth (m)")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def mesh_arrays(vertices, max_side=MESH_MAX_SIDE, max_depth_ratio=MESH_MAX_DEPTH_RATIO):
    """(positions (N, 3) float32 in glTF axes, colours (N, 4) uint8, triangles (M, 3) uint32) from test.py's
    point cloud laid out as its picture (H, W): a grid of at most max_side vertices across, every vertex one
    of the .ply's points, triangles across depth edges left out."""

    height, width = vertices.shape
    step = max(1, -(-max(height, width) // max_side))
    grid = vertices[::step, ::step]
    rows, cols = grid.shape
    # camera frame (x right, y down, z forward) -> glTF (x right, y up, looking down -z)
    positions = np.stack([grid["x"], -grid["y"], -grid["z"]], axis=-1).reshape(-1, 3).astype(np.float32)
    colours = np.stack([grid["red"], grid["green"], grid["blue"], np.full_like(grid["red"], 255)], axis=-1)
    index = np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    triangles = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    z = grid["z"].reshape(-1)[triangles]
    keep = (z.min(axis=1) > 0) & (z.max(axis=1) <= z.min(axis=1) * max_depth_ratio)
    return positions, colours.reshape(-1, 4).astype(np.uint8), triangles[keep]


def write_glb(path, positions, colours, triangles):
    """A binary glTF 2.0 file: one unlit mesh with vertex colours (what Gradio's 3D viewer shows)."""
    import json
    import struct


    blobs = [positions.astype("<f4").tobytes(), colours.astype(np.uint8).tobytes(),
             triangles.astype("<u4").tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()  # every length is a multiple of 4
    gltf = {
        "asset": {"version": "2.0", "generator": "DenseDepth demo.py"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "COLOR_0": 1}, "indices": 2, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0},
                       "doubleSided": True, "extensions": {"KHR_materials_unlit": {}}}],
        "extensionsUsed": ["KHR_materials_unlit"],
        "buffers": [{"byteLength": offsets[-1]}],
        "bufferViews": [{"buffer": 0, "byteOffset": offsets[i], "byteLength": len(blob), "target": target}
                        for i, (blob, target) in enumerate(zip(blobs, (34962, 34962, 34963)))],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(positions), "type": "VEC3",
             "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()},
            {"bufferView": 1, "componentType": 5121, "normalized": True, "count": len(colours), "type": "VEC4"},
            {"bufferView": 2, "componentType": 5125, "count": triangles.size, "type": "SCALAR"},
        ],
    }
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = b"".join(blobs)
    with open(path, "wb") as f:
        f.write(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(binary)))
        f.write(struct.pack("<I4s", len(text), b"JSON") + text)
        f.write(struct.pack("<I4s", len(binary), b"BIN\0") + binary)


# ---------------------------------------------------------------------------------------------------------
# The model and one picture through it
# ---------------------------------------------------------------------------------------------------------


class DepthDemo:
    """The model (loaded once; a failed load is retried on the next picture) and the picture -> results step."""

    def __init__(self, args):
        self.args = args
        self.model = None
        self.error = None
        self.description = ""
        self.lock = threading.Lock()  # one picture at a time: the network is the bottleneck anyway
        self.results = Path(tempfile.mkdtemp(prefix="densedepth-demo-"))
        self.count = 0

    def load(self):
        """Load the model if not yet loaded; returns None, or the one-line reason it cannot be loaded."""
        from model import contract_warning, describe_contract, load_model, read_contract
        from test import model_settings
        from utils import InputError, find_default_model

        if self.model is not None:
            return None
        try:
            path = Path(self.args.model) if self.args.model else find_default_model()
            model = load_model(path, self.args.precision)
            contract = read_contract(path)
            self.depth_range, self.max_side, self.input_hw = model_settings(path, contract, self.args)
        except InputError as err:
            self.error = str(err)
        except Exception as err:  # a model file can fail in ways Keras does not name: report, keep serving
            self.error = f"cannot load the model ({type(err).__name__}: {err})"
        else:
            warning = contract_warning(contract)
            self.model, self.error = model, None
            self.description = (f"model: `{path}`{'' if self.args.model else ' (default)'} - "
                                f"{describe_contract(contract)}" + (f"  \n**warning:** {warning}" if warning else ""))
        return self.error

    def status(self):
        """The line under the title: the model in use, or why there is none."""
        return self.description if self.model is not None else f"**model not loaded:** {self.error}"

    def predict(self, picture_path):
        """(depth view, .glb path, download paths, summary) for a picture file; InputError for a bad one."""
        from test import point_cloud, predict_picture, write_outputs
        from utils import InputError, load_image, scaled_intrinsics

        start = time.perf_counter()
        check_picture_size(picture_path)
        with self.lock:
            if self.load():
                raise InputError(f"the model could not be loaded: {self.error}")
            image = load_image(picture_path)
            depth_m = predict_picture(self.model, image, self.depth_range, self.max_side, self.input_hw)
        height, width = depth_m.shape
        intrinsics = scaled_intrinsics(height, width)  # test.py's default camera: NYU's Kinect, scaled
        folder = self.new_folder()
        stem = Path(picture_path).stem or "picture"
        files = write_outputs(folder, stem, image, depth_m, intrinsics, npy=True, ply=True)
        vertices = point_cloud(depth_m, image, intrinsics).reshape(height, width)
        write_glb(folder / f"{stem}_mesh.glb", *mesh_arrays(vertices))
        summary = (f"**{Path(picture_path).name}**: {width}x{height}, depth {depth_m.min():.2f} - "
                   f"{depth_m.max():.2f} m (median {float(np.median(depth_m)):.2f} m), "
                   f"{time.perf_counter() - start:.1f} s")
        order = [files[1], files[2], files[3], files[0]]  # millimetre PNG, metres .npy, .ply, colour PNG
        return depth_view(depth_m), str(folder / f"{stem}_mesh.glb"), [str(p) for p in order], summary

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

    from utils import InputError

    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception:  # noqa: BLE001 - not an image at all: load_image says so in its own words
        return
    if width * height > MAX_PICTURE_PIXELS:
        raise InputError(f"{Path(path).name} is {width}x{height} ({width * height / 1e6:.0f} megapixels): the demo "
                         f"takes up to {MAX_PICTURE_PIXELS / 1e6:.0f}; scale it down, or use test.py")


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------


def build_page(demo):
    """The Gradio Blocks page around a DenseDepth demo."""
    import gradio as gr
    from PIL import Image, UnidentifiedImageError

    from utils import InputError

    def page_error(message):
        """The message for the page (a script gets it as an AppError), and one line on the console, no traceback."""
        print(f"error: {message}", file=sys.stderr, flush=True)
        return gr.Error(message, print_exception=False)

    def one_line_errors(preprocess):
        """Gradio's upload step, saying in one line that a file is not a picture instead of a bare 'Error'.

        (Wrapped on the instance: a subclass of gr.Image would make Gradio write a demo.pyi beside this file.)
        """

        def wrapped(payload):
            try:
                return preprocess(payload)
            except Image.DecompressionBombError as err:  # PIL refuses pictures over about 179 megapixels
                name = getattr(payload, "orig_name", None) or "the file"
                raise page_error(f"{name} is too large for this demo ({err}); scale it down, or use test.py") from None
            except (UnidentifiedImageError, OSError, ValueError) as err:
                name = getattr(payload, "orig_name", None) or "the file"
                raise page_error(f"{name} is not a picture this demo can read ({type(err).__name__})") from None

        return wrapped

    def run(picture_path):
        if not picture_path:
            return None, None, None, ""
        try:
            return demo.predict(picture_path)
        except InputError as err:
            raise page_error(str(err)) from None
        except Exception as err:  # noqa: BLE001 - the page says what failed; the server keeps serving
            raise page_error(f"prediction failed: {type(err).__name__}: {err}") from None

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
        picture.change(run, picture, [depth, scene, files, summary], api_name="predict")
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

    demo = DepthDemo(args)
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
