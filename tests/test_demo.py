"""demo.py: its 3D mesh file, and the served page driven by a script (gradio_client) and by headless Chromium.

The server tests start `python demo.py` on 127.0.0.1 with a tiny random-weights model; nothing leaves the
machine. The browser test needs Debian's chromium and chromium-driver (.ci/run installs them) and leaves its
screenshot in outputs/test-artifacts/demo_browser.png.
"""
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import demo
import outputs
from camera import NYU_CAMERA, scaled_intrinsics
from helpers import requires

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "chelsea.png"
ARTIFACTS = REPO / "outputs" / "test-artifacts"
SERVER_START_S = 300  # importing TensorFlow and Gradio on two busy cores
RESULT_WAIT_S = 180
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MIN_PIXEL_STD = 8.0  # a blank element (one flat colour) has 0; the depth map and the mesh are far above


def read_glb(path):
    """(glTF JSON, binary chunk) of a .glb file, checking its framing."""
    data = Path(path).read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    gltf = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\0" and bin_len == gltf["buffers"][0]["byteLength"]
    return gltf, data[28 + json_len:28 + json_len + bin_len]


def glb_arrays(path):
    """(positions (N, 3), colours (N, 4), triangles (M, 3)) of a .glb write_glb made."""
    gltf, blob = read_glb(path)
    dtypes = {5126: "<f4", 5121: "u1", 5125: "<u4"}
    widths = {"VEC3": 3, "VEC4": 4, "SCALAR": 3}
    out = []
    for accessor in gltf["accessors"]:
        view = gltf["bufferViews"][accessor["bufferView"]]
        array = np.frombuffer(blob, dtypes[accessor["componentType"]], offset=view["byteOffset"],
                              count=view["byteLength"] // np.dtype(dtypes[accessor["componentType"]]).itemsize)
        out.append(array.reshape(-1, widths[accessor["type"]]))
    return out


def test_help_needs_neither_tensorflow_nor_gradio():
    out = subprocess.run([sys.executable, "-c", "import sys, demo; print(sorted({'tensorflow', 'gradio', 'keras'} "
                          "& set(sys.modules)))"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    out = subprocess.run([sys.executable, "demo.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--model" in out.stdout and "--host" in out.stdout


def test_mesh_is_the_point_cloud_in_gltf_axes_without_edge_triangles(tmp_path):
    from outputs import point_cloud

    depth = np.full((40, 60), 2.0, np.float32)
    depth[:, 30:] = 5.0  # a step: no triangle may bridge it
    image = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)
    vertices = point_cloud(depth, image, scaled_intrinsics(40, 60)).reshape(40, 60)
    positions, colours, triangles = outputs.mesh_arrays(vertices, max_side=30)
    outputs.write_glb(tmp_path / "m.glb", positions, colours, triangles)
    read_positions, read_colours, read_triangles = glb_arrays(tmp_path / "m.glb")
    np.testing.assert_array_equal(read_positions, positions)
    np.testing.assert_array_equal(read_triangles, triangles)
    grid = vertices[::2, ::2]  # 60 across at max_side 30: every second point
    np.testing.assert_array_equal(positions[:, 0], grid["x"].ravel())
    np.testing.assert_array_equal(positions[:, 1], -grid["y"].ravel())
    np.testing.assert_array_equal(positions[:, 2], -grid["z"].ravel())
    np.testing.assert_array_equal(read_colours[:, :3], np.stack([grid["red"], grid["green"], grid["blue"]], -1)
                                  .reshape(-1, 3))
    z = -positions[:, 2][triangles]
    assert np.all(z.max(axis=1) == z.min(axis=1))  # only flat triangles survive on two planes
    assert len(triangles) == 2 * 19 * (29 - 1)  # the column of quads across the step is gone
    gltf, _ = read_glb(tmp_path / "m.glb")
    assert gltf["accessors"][0]["min"] == positions.min(axis=0).tolist()


def test_depth_view_has_the_colour_map_and_a_bar():
    depth = np.tile(np.linspace(1.0, 4.0, 64, dtype=np.float32), (48, 1))
    view = outputs.depth_view(depth)
    assert view.dtype == np.uint8 and view.ndim == 3 and view.shape[2] == 3
    assert view.std() > 30  # plasma from dark blue to yellow, plus white margins


# ---------------------------------------------------------------------------------------------------------
# The running server
# ---------------------------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_path, workdir):
    """`python demo.py` on 127.0.0.1 at a free port, run from workdir; (process, url, log path) once it answers."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", GRADIO_ANALYTICS_ENABLED="False")
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "demo.py"), "--model", str(model_path), "--host",
                                    "127.0.0.1", "--port", str(port)], cwd=workdir, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"demo.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return process, url, log
        except OSError:
            time.sleep(1)
    process.kill()
    pytest.fail(f"demo.py did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def stop_server(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(contract_model, tmp_path_factory):
    """(url, console log) of the one demo.py server all the tests of this module share."""
    process, url, log = start_server(contract_model[0], tmp_path_factory.mktemp("server"))
    yield url, log
    stop_server(process)


@pytest.fixture
def server(served):
    return served[0]


@pytest.mark.slow
@requires("gradio", "gradio_client")
def test_api_gives_test_py_numbers_and_messages_for_bad_input(served, contract_model, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from estimator import DepthEstimator
    from utils import load_image

    server, log = served
    client = Client(server, verbose=False)
    view, mesh, files, summary = client.predict(handle_file(str(EXAMPLE)), None, api_name="/predict")
    names = {Path(f).name: Path(f) for f in files}
    assert set(names) == {"chelsea_depth_mm.png", "chelsea_depth_m.npy", "chelsea.ply", "chelsea_depth_color.png"}
    assert "chelsea.png" in summary and " m " in summary

    # the same numbers test.py's functions give in this process
    image = load_image(EXAMPLE)
    expected = DepthEstimator.load(contract_model[0]).predict(image)
    depth_m = np.load(names["chelsea_depth_m.npy"])
    assert depth_m.shape == image.shape[:2] and depth_m.dtype == np.float32
    np.testing.assert_allclose(depth_m, expected, rtol=1e-4)
    assert depth_m.std() > 0.01
    np.testing.assert_array_equal(np.asarray(Image.open(names["chelsea_depth_mm.png"])),
                                  outputs.depth_mm_image(depth_m))
    ply = names["chelsea.ply"].read_bytes()
    assert f"element vertex {depth_m.size}\n".encode() in ply[:400]

    # the 3D view's vertices are points of the .ply (glTF axes: y and z flipped)
    positions, _, triangles = glb_arrays(mesh)
    cloud = outputs.point_cloud(depth_m, image, scaled_intrinsics(*depth_m.shape))
    flipped = np.stack([cloud["x"], -cloud["y"], -cloud["z"]], -1)
    assert len(triangles) > 0 and triangles.max() < len(positions)
    assert {tuple(p) for p in positions} <= {tuple(p) for p in flipped}

    view = np.asarray(Image.open(view))
    assert view.ndim == 3 and view.std() > MIN_PIXEL_STD

    # bad input: one line on the page (an AppError for a script), and the server keeps serving
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(AppError, match="not a picture"):
        client.predict(handle_file(str(tmp_path / "notes.png")), None, api_name="/predict")
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(huge)  # 48 megapixels of zeros: a small file
    with pytest.raises(AppError, match="megapixels"):
        client.predict(handle_file(str(huge)), None, api_name="/predict")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (14000, 13000)).save(bomb)  # 182 megapixels: PIL refuses to open it (a decompression bomb)
    with pytest.raises(AppError, match="too large"):
        client.predict(handle_file(str(bomb)), None, api_name="/predict")
    assert client.predict(handle_file(str(EXAMPLE)), None, api_name="/predict")[3].startswith("**chelsea.png**")
    # a 35 mm-equivalent focal length typed on the page: depth x (26 / 36 of the width) / the Kinect's, as
    # test.py --focal-35mm gives, and the 3D view shaped by the same camera
    _, mesh26, files26, summary26 = client.predict(handle_file(str(EXAMPLE)), 26, api_name="/predict")
    assert "camera from --focal-35mm 26 mm: depth x 0.891" in summary26
    depth26 = np.load(next(Path(f) for f in files26 if f.endswith(".npy")))
    from scipy.ndimage import maximum_filter, minimum_filter

    # where no half-resolution value the up-sampling blends was clipped to the range, scaled or not
    inside = (minimum_filter(depth_m, 31) > 0.6) & (maximum_filter(depth_m, 31) < 8.5)  # 31: 2 network pixels
    assert inside.mean() > 0.2
    np.testing.assert_allclose(depth26[inside], depth_m[inside] * (26 / 36) / NYU_CAMERA.fx, rtol=1e-4)
    camera26 = NYU_CAMERA.with_focal(26 / 36, "26 mm")
    cloud26 = outputs.point_cloud(depth26, image, camera26.pixels(*depth26.shape))
    flipped26 = {tuple(p) for p in np.stack([cloud26["x"], -cloud26["y"], -cloud26["z"]], -1)}
    assert {tuple(p) for p in glb_arrays(mesh26)[0]} <= flipped26
    console = log.read_text()
    assert "error: notes.png is not a picture" in console and "megapixels" in console
    assert "Traceback" not in console


@pytest.mark.slow
@requires("gradio")
def test_page_needs_no_internet(server):
    with urllib.request.urlopen(server, timeout=30) as response:
        html = response.read().decode()
    with urllib.request.urlopen(server + "theme.css", timeout=30) as response:
        css = response.read().decode()
    assert "fonts.googleapis" not in html + css and "@import url(\"http" not in css
    for tag in ("<script", "<link"):
        for chunk in html.split(tag)[1:]:
            attributes = chunk.split(">")[0]
            assert "http://" not in attributes and "https://" not in attributes, attributes


@requires("gradio")
def test_model_that_fails_to_load_is_reported_on_the_page(tmp_path, capsys):
    """In this process (the served page is the same Blocks): the status line and each prediction say why,
    in one line, and a picture does not crash the page."""
    import gradio as gr

    from utils import InputError

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a keras file")
    app = demo.DepthDemo(str(broken))
    assert "broken.keras" in app.load() and "\n" not in app.error
    assert app.status().startswith("**model not loaded:**") and "broken.keras" in app.status()
    with pytest.raises(InputError, match="could not be loaded"):
        app.predict(str(EXAMPLE))
    page = demo.build_page(app)
    assert isinstance(page, gr.Blocks) and "model not loaded" in json.dumps(page.config)
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# A real browser
# ---------------------------------------------------------------------------------------------------------


def element_pixels(screenshot, element):
    """The screenshot's pixels inside an element's bounding box (device scale factor 1)."""
    rect = element.rect
    left, top = int(rect["x"]), int(rect["y"])
    return screenshot[top:top + int(rect["height"]), left:left + int(rect["width"])]


def wait_for(condition, timeout_s, what):
    """condition()'s first truthy value, polled every half second for at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium / chromedriver on this machine: apt-get install -y chromium chromium-driver "
                    "(.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1400",
                 "--force-device-scale-factor=1", "--use-gl=angle", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-extensions"):
        options.add_argument(flag)
    # the DevTools network log lists every request, failed ones included (Resource Timing omits those)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.slow
@requires("gradio", "selenium")
def test_browser_shows_depth_and_3d_view(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    upload = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#picture input[type=file]"), 120,
                      "the page's upload field")
    upload[0].send_keys(str(EXAMPLE))
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#downloads a")) >= 4, RESULT_WAIT_S,
             "the four download links")
    assert "chelsea.png" in browser.find_element(By.ID, "summary").text

    def drawn():  # (pixels, depth box std, 3D box std) once both vary; the viewer draws after the file arrives
        pixels = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"), np.float32)
        depth = browser.find_elements(By.CSS_SELECTOR, "#depth img")
        scene = browser.find_elements(By.CSS_SELECTOR, "#scene canvas")
        if not (depth and scene):
            return None
        spread = [float(element_pixels(pixels, e).std()) for e in (depth[0], scene[0])]
        return (pixels, *spread) if min(spread) > MIN_PIXEL_STD else None

    try:
        _, depth_std, scene_std = wait_for(drawn, 60, "the depth image and the 3D view to show more than one colour")
    finally:  # the screenshot is the test's artefact, kept when the wait fails too
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for folder in (tmp_path, ARTIFACTS):
            browser.save_screenshot(str(folder / "demo_browser.png"))
    print(f"pixel std: depth image {depth_std:.1f}, 3D view {scene_std:.1f}; screenshot in {tmp_path}")
    requested = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    requested = {m["params"]["request"]["url"] for m in requested if m["method"] == "Network.requestWillBeSent"}
    assert any(url.startswith(server) for url in requested)  # the log works: it saw the page's own requests
    remote = sorted(url for url in requested if not url.startswith((server, "data:", "blob:")))
    assert remote == [], f"the page fetched from outside this machine: {remote}"

    # an example is one click away
    browser.find_element(By.CSS_SELECTOR, "img[src*='coffee']").click()
    wait_for(lambda: "coffee.png" in browser.find_element(By.ID, "summary").text, RESULT_WAIT_S,
             "the coffee example's result")


# ---------------------------------------------------------------------------------------------------------
# A short clip, through the page's own functions (no server)
# ---------------------------------------------------------------------------------------------------------


def test_clip_plays_beside_its_depth_at_the_source_rate(contract_model, tmp_path):
    pytest.importorskip("av")
    from test_video import picture, write_clip

    from estimator import DepthEstimator
    from video import COLOUR_SCALE_FRAMES, DEFAULT_COLORMAP, colour_bar, colour_range, colour_table, open_clip

    height, width, frames, fps = 48, 64, 8, 12
    source = write_clip(tmp_path / "walk.mp4", frames=frames, fps=fps, size=(height, width))
    app = demo.DepthDemo(str(contract_model[0]))
    video, summary = app.predict_clip(str(source))
    assert Path(video).parent.parent == app.results and Path(video).name == "walk_depth.mp4"
    assert summary.startswith(f"**walk.mp4**: {frames} frames at {fps:g} fps, {width}x{height}")

    # the colour bar of the scale the demo chose: the first frames' 2nd-98th percentiles of steady depth
    depths = [d for _, _, d in DepthEstimator.load(contract_model[0]).video_depths(str(source), "flow")]
    depth_range = app.estimator.depth_range
    near, far = colour_range(depths[:COLOUR_SCALE_FRAMES], (depth_range.min_m, depth_range.max_m))
    bar = colour_bar(colour_table(near, far, DEFAULT_COLORMAP), near, far, height).shape[1]
    content = 2 * width + bar
    with open_clip(video) as clip:
        assert clip.fps == pytest.approx(fps) and clip.frame_count == frames
        assert (clip.height, clip.width) == (height, content + content % 2)
        played = list(clip.frames())
    assert len(played) == frames
    for i, rgb in enumerate(played):  # the picture on the left, in order; its depth beside it, not flat
        assert np.abs(rgb[:, :width].astype(int) - picture(i)).mean() < 12, f"frame {i}"
        assert rgb[:, width:2 * width].std() > 1.0


@requires("gradio")
def test_clip_that_is_not_a_video_gives_one_line_on_the_page(contract_model, tmp_path, capsys):
    pytest.importorskip("av")
    import gradio as gr

    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video, just text")
    app = demo.DepthDemo(str(contract_model[0]))
    with pytest.raises(gr.Error) as caught:
        demo.run_clip(app, str(fake))
    message = caught.value.message
    assert message.startswith("notes.mp4: not a video") and "\n" not in message
    err = capsys.readouterr().err
    assert "error: " in err and "notes.mp4" in err and "Traceback" not in err
    assert not list(app.results.iterdir())  # nothing written for a refused file


@requires("gradio")
def test_clip_too_long_is_refused_from_its_header(tmp_path):
    pytest.importorskip("av")
    import gradio as gr
    from test_video import write_clip

    app = demo.DepthDemo(str(tmp_path / "never_loaded.keras"))  # refused before the model is needed
    many = write_clip(tmp_path / "many.mp4", frames=demo.MAX_CLIP_FRAMES + 1, fps=60, size=(16, 16))
    with pytest.raises(gr.Error, match=f"too long for this demo \\({demo.MAX_CLIP_FRAMES + 1} frames\\)"):
        demo.run_clip(app, str(many))
    slow = write_clip(tmp_path / "slow.mp4", frames=int(demo.MAX_CLIP_SECONDS) + 2, fps=1, size=(16, 16))
    with pytest.raises(gr.Error, match=r"too long for this demo \(\d+ s\).*use test\.py"):
        demo.run_clip(app, str(slow))
    assert app.estimator is None and demo.run_clip(app, None) == (None, "")


@requires("gradio")
def test_page_has_the_clip_box(tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a keras file")
    config = json.dumps(demo.build_page(demo.DepthDemo(str(broken))).config)
    assert '"clip"' in config and '"clip-depth"' in config and "predict_clip" in config
