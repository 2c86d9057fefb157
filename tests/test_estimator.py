"""estimator.py: every runtime on every core unless told otherwise, and the Keras path compiled once per size.

The thread counts are read back from each runtime (or, for LiteRT, whose interpreter keeps no readable
count, from what the real interpreter was built with); the traces from TensorFlow's own tracing counter.
Speed itself is measured in bench/bench_infer.py --engines, never here.
"""
import importlib.util

import numpy as np
import pytest
import tensorflow as tf

import estimator
import export
from estimator import DepthEstimator
from helpers import network_depth_m, requires
from utils import InputError, cpu_cores, runtime_threads

HW = (65, 97)


def pictures(n, hw=HW, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *hw, 3), dtype=np.uint8)


def test_runtime_threads_default_to_every_core_this_process_may_use():
    import os

    assert cpu_cores() == len(os.sched_getaffinity(0)) >= 1
    assert runtime_threads(None) == runtime_threads(0) == cpu_cores()
    assert runtime_threads(3) == 3


def test_keras_forward_is_compiled_once_per_size_and_reused(small_model):
    depth_estimator = DepthEstimator.from_keras(small_model)
    network = depth_estimator.network
    first = depth_estimator.predict(pictures(1)[0], max_side=0)
    assert network.traces == 1
    for seed in (1, 2, 3):  # a stream of same-size pictures: no new trace
        depth_estimator.predict(pictures(1, seed=seed)[0], max_side=0)
    depth_estimator.predict(pictures(1)[0], max_side=0, flip=True)  # the mirror has the same shape
    assert network.traces == 1
    depth_estimator.predict(pictures(1, hw=(64, 96))[0], max_side=0)  # a new size is traced once
    depth_estimator.predict(pictures(1, hw=(64, 96), seed=4)[0], max_side=0)
    assert network.traces == 2
    depth_estimator.predict(pictures(2), max_side=0)  # and a new batch size
    assert network.traces == 3
    # The compiled pass computes what the eager model does.
    from depth import resize_depth

    reference = resize_depth(network_depth_m(small_model, pictures(1)), *HW)[0]
    np.testing.assert_allclose(first, reference, rtol=1e-5, atol=1e-5)


def test_a_loaded_keras_file_runs_compiled(small_model_path):
    depth_estimator = DepthEstimator.load(small_model_path)
    depth_estimator.predict(pictures(1)[0])
    depth_estimator.predict(pictures(1, seed=1)[0])
    assert depth_estimator.network.traces == 1


@pytest.fixture(scope="module")
def small_exports(contract_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("threads")
    paths = {"tflite": folder / "m.tflite", "onnx": folder / "m.onnx", "openvino": folder / "m.xml"}
    for fmt, path in paths.items():
        if fmt == "openvino" and importlib.util.find_spec("openvino") is None:
            continue
        export.main(["--model", str(contract_model[0]), "--format", fmt, "--output", str(path)])
    return paths


@pytest.mark.slow  # exports three formats first (about 30 s): the full suite runs it
@requires("tf2onnx", "ai_edge_litert")
@pytest.mark.parametrize("threads", [None, 1])
def test_litert_interpreter_gets_every_core_unless_told(threads, small_exports, monkeypatch):
    """LiteRT's Python interpreter runs on one thread when num_threads is None: the count must be given."""
    from ai_edge_litert import interpreter as litert

    built_with = []

    class Recording(litert.Interpreter):  # the real interpreter, recording what it was built with
        def __init__(self, *args, **kwargs):
            built_with.append(kwargs.get("num_threads"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(litert, "Interpreter", Recording)
    depth_estimator = DepthEstimator.load(small_exports["tflite"], threads=threads)
    assert built_with == [threads or cpu_cores()]
    assert depth_estimator.predict(pictures(1)[0]).shape == HW


@pytest.mark.slow  # exports three formats first (about 30 s): the full suite runs it
@requires("tf2onnx", "onnxruntime")
@pytest.mark.parametrize("threads", [None, 1])
def test_onnx_runtime_session_gets_every_core_unless_told(threads, small_exports):
    loaded = estimator.load_onnx(small_exports["onnx"], threads)
    assert loaded.engine.get_session_options().intra_op_num_threads == (threads or cpu_cores())


@pytest.mark.slow  # exports three formats first (about 30 s): the full suite runs it
@requires("openvino")
@pytest.mark.parametrize("threads", [None, 1])
def test_openvino_compiles_for_every_core_unless_told(threads, small_exports):
    loaded = estimator.load_openvino(small_exports["openvino"], threads)
    assert loaded.engine.get_property("INFERENCE_NUM_THREADS") == (threads or cpu_cores())


# ---------------------------------------------------------------------------------------------------------
# Models by name: --model nyu / kitti, from a server on 127.0.0.1 that answers as Google Drive does
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def drive(small_model, tmp_path, monkeypatch):
    """A local HTTP server standing in for the published link: /nyu.h5 answers with Google Drive's
    confirmation page for large files, whose form leads to the file; /kitti.h5 with a page offering nothing.
    Yields the list of paths requested; Keras' cache and the mirror point at tmp_path and the server."""
    import http.server
    import threading

    from keras2_h5 import write_keras2_h5

    released = tmp_path / "served.h5"
    write_keras2_h5(small_model, released)
    requests = []
    confirmation = ('<html><form id="download-form" action="/download" method="get">'
                    '<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="t">'
                    '<input type="hidden" name="uuid" value="u-1"></form></html>')

    class Drive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            requests.append(self.path)
            if self.path == "/nyu.h5":
                body, kind = confirmation.encode(), "text/html; charset=utf-8"
            elif self.path == "/download?id=abc&confirm=t&uuid=u-1":
                body, kind = released.read_bytes(), "application/octet-stream"
            else:
                body, kind = b"<html>Sorry, the file you have requested does not exist.</html>", "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("DENSEDEPTH_MODEL_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    yield requests
    server.shutdown()


def test_a_released_model_by_name_is_fetched_once_checked_and_kept(drive, tmp_path):
    from legacy import released_path

    depth_estimator = DepthEstimator.load("nyu")
    assert drive == ["/nyu.h5", "/download?id=abc&confirm=t&uuid=u-1"]  # the confirmation page, then the file
    assert depth_estimator.path == released_path("nyu") == tmp_path / "keras_home" / "models" / "densedepth" / "nyu.h5"
    assert depth_estimator.contract.dataset == "nyu" and depth_estimator.contract.authors_file
    by_path = DepthEstimator.load(tmp_path / "served.h5")  # the same file, given by hand
    np.testing.assert_array_equal(depth_estimator.predict(pictures(1)[0]), by_path.predict(pictures(1)[0]))
    DepthEstimator.load("nyu")  # from the cache: no request
    assert len(drive) == 2


@pytest.mark.usefixtures("drive")  # the server and the environment that points at it
def test_a_link_that_gives_no_file_leaves_nothing_and_says_where_to_put_it(tmp_path):
    from legacy import released_path

    with pytest.raises(estimator.InputError) as error:
        DepthEstimator.load("kitti")
    message = str(error.value)
    assert message.startswith("cannot fetch the authors' kitti.h5 from http://127.0.0.1:")
    assert "web page that offers no download" in message and f"put it at {released_path('kitti')}" in message
    assert not any((tmp_path / "keras_home").rglob("*.h5"))


class ConstantTarget(tf.keras.layers.Layer):
    """Outputs a constant normalised target at half resolution; the right half twice as large."""

    def call(self, x):
        half = tf.image.resize(x[..., :1], tf.shape(x)[1:3] // 2) * 0.0
        cols = tf.shape(half)[2]
        right = tf.cast(tf.range(cols) >= cols // 2, tf.float32)[None, None, :, None]
        return half + 2.0 + 2.0 * right


def test_network_depth_is_metres_at_half_resolution_with_flip():
    model = tf.keras.Sequential([tf.keras.Input((None, None, 3)), ConstantTarget()])
    estimator = DepthEstimator.from_keras(model)
    images = np.zeros((3, 8, 12, 3), np.uint8)
    depth = estimator.network_depth(images, batch_size=2)
    assert depth.shape == (3, 4, 6) and depth.dtype == np.float32
    np.testing.assert_allclose(depth[:, :, :3], 5.0)   # target 2 -> 10 m / 2
    np.testing.assert_allclose(depth[:, :, 3:], 2.5)   # target 4
    flipped = estimator.network_depth(images, flip=True)
    # The mean in metres of the prediction and of the mirrored one: (5 + 2.5) / 2 everywhere.
    np.testing.assert_allclose(flipped, 3.75, rtol=1e-6)


def test_predict_video_is_lazy_and_per_frame_with_temporal_none(small_model):
    """predict_video draws frames as it needs them (a camera's stream never ends) and, without the
    stabiliser, gives what predict gives each frame."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    drawn = []

    def stream():
        for frame in frames:
            drawn.append(1)
            yield frame

    estimator = DepthEstimator.from_keras(small_model)
    depths = estimator.predict_video(stream(), temporal="none", batch_size=2)
    index, first = next(depths)
    assert index == 0 and len(drawn) == 2  # one batch drawn, not the stream
    rest = list(depths)
    assert [i for i, _ in rest] == [1, 2, 3, 4]
    for frame, depth in zip(frames, [first, *(d for _, d in rest)]):
        np.testing.assert_allclose(depth, estimator.predict(frame), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="unknown temporal mode 'smooth'"):
        next(estimator.predict_video(frames, temporal="smooth"))
