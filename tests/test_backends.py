"""One network and one loss on every Keras backend.

Under TensorFlow (this process): the keras.ops up-sampling and loss equal tf.raw_ops.ResizeBilinear and
tf.image's results, computed here directly. Under JAX and PyTorch (one process each, since Keras fixes its
backend at import; tests/cross_backend.py): the network's output, the loss, test.py's depth and evaluate.py's
metrics equal TensorFlow's for the same weights, and a file saved under one backend loads under the other
with the same output.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import evaluate
from cross_backend import EVALUATE_ARGS
from helpers import load_test_script, requires
from keras2_h5 import write_keras2_h5
from loss import depth_loss_function, gradient_term, image_gradients, l1_term, ssim, ssim_term
from model import UPSAMPLING_CONVENTIONS, ResizeToMatch, load_model, resize_bilinear

test_script = load_test_script()

TESTS = Path(__file__).resolve().parent
ODD_SIZES = [((5, 7), (10, 14)), ((3, 4), (7, 9)), ((4, 5), (9, 11)), ((1, 1), (3, 5)), ((7, 9), (13, 17)),
             ((6, 6), (3, 4))]


@pytest.mark.parametrize("convention", sorted(UPSAMPLING_CONVENTIONS))
@pytest.mark.parametrize("in_hw, out_hw", ODD_SIZES)
def test_generic_resize_equals_tensorflows_kernel(convention, in_hw, out_hw, rng):
    align_corners, half_pixel_centers = UPSAMPLING_CONVENTIONS[convention]
    x = rng.random((2, *in_hw, 3), dtype=np.float32)
    expected = tf.raw_ops.ResizeBilinear(images=x, size=out_hw, align_corners=align_corners,
                                         half_pixel_centers=half_pixel_centers)
    np.testing.assert_allclose(resize_bilinear(x, *out_hw, convention), expected, atol=1e-5)
    # The layer (TensorFlow's kernel under this backend) agrees with the generic resize.
    skip = np.zeros((2, *out_hw, 1), np.float32)
    np.testing.assert_allclose(ResizeToMatch(convention)(x, skip), resize_bilinear(x, *out_hw, convention),
                               atol=1e-5)


def test_generic_resize_takes_sizes_unknown_until_run_time(rng):
    """In a tf.function with unknown spatial dims, as tf.data and train.py trace it."""
    spec = [tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None, 1])]

    @tf.function(input_signature=spec)
    def resize(x, skip):
        shape = tf.shape(skip)
        return resize_bilinear(x, shape[1], shape[2], "align_corners")

    for in_hw, out_hw in ODD_SIZES[:3]:
        x = rng.random((1, *in_hw, 3), dtype=np.float32)
        expected = tf.compat.v1.image.resize_bilinear(x, out_hw, align_corners=True)
        np.testing.assert_allclose(resize(x, np.zeros((1, *out_hw, 1), np.float32)), expected, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_resizes_keep_the_input_dtype(dtype, rng):
    x = tf.constant(rng.random((1, 4, 5, 8), dtype=np.float32), dtype=dtype)
    skip = np.zeros((1, 8, 10, 1), np.float32)
    generic = resize_bilinear(x, 8, 10, "half_pixel")
    assert keras.backend.standardize_dtype(generic.dtype) == dtype
    layer = ResizeToMatch(dtype=f"mixed_{dtype}")  # as the model builds it under mixed precision
    assert keras.backend.standardize_dtype(layer(x, skip).dtype) == dtype
    expected = tf.image.resize(tf.cast(x, tf.float32), (8, 10))
    np.testing.assert_allclose(tf.cast(generic, tf.float32), expected, rtol=2e-2, atol=2e-2)


@pytest.fixture
def depth_pair(rng):
    """Targets in [1, 100] with a mask of holes and a noisy prediction, at an odd size."""
    y_true = rng.uniform(1, 100, (3, 29, 37, 1)).astype(np.float32)
    y_pred = (y_true + rng.normal(0, 8, y_true.shape)).astype(np.float32)
    mask = (rng.random(y_true.shape) > 0.2).astype(np.float32)
    return y_true, y_pred, mask


def tensorflow_loss_terms(y_true, y_pred, mask, max_val=100.0):
    """The loss as it was written with tf.image, term by term, for comparison."""
    y_true, y_pred, mask = (tf.convert_to_tensor(t) for t in (y_true, y_pred, mask))
    count = tf.maximum(tf.reduce_sum(mask, axis=[1, 2, 3]), 1.0)
    l1 = tf.reduce_sum(tf.abs(y_pred - y_true) * mask, axis=[1, 2, 3]) / count
    dy_true, dx_true = tf.image.image_gradients(y_true)
    dy_pred, dx_pred = tf.image.image_gradients(y_pred)
    mask_dy = mask * tf.pad(mask[:, 1:], [[0, 0], [0, 1], [0, 0], [0, 0]])
    mask_dx = mask * tf.pad(mask[:, :, 1:], [[0, 0], [0, 0], [0, 1], [0, 0]])
    grad = tf.reduce_sum(tf.abs(dy_pred - dy_true) * mask_dy + tf.abs(dx_pred - dx_true) * mask_dx,
                         axis=[1, 2, 3]) / count
    filled = tf.where(mask > 0, y_true, tf.stop_gradient(y_pred))
    ssim_value = tf.image.ssim(filled, y_pred, max_val=max_val, filter_size=11, filter_sigma=1.5)
    return l1, grad, tf.clip_by_value((1.0 - ssim_value) * 0.5, 0.0, 1.0)


def test_image_gradients_and_ssim_equal_tf_image(depth_pair):
    y_true, y_pred, _ = depth_pair
    for ours, theirs in zip(image_gradients(y_pred), tf.image.image_gradients(tf.constant(y_pred))):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(ssim(y_true, y_pred, 100.0), tf.image.ssim(y_true, y_pred, 100.0), atol=1e-5)
    three = np.concatenate([y_true, y_pred, y_true * 0.5], axis=-1)  # several channels: mean over them too
    np.testing.assert_allclose(ssim(three, three[..., ::-1], 100.0), tf.image.ssim(three, three[..., ::-1], 100.0),
                               atol=1e-5)


def test_loss_terms_equal_the_tf_image_loss(depth_pair):
    y_true, y_pred, mask = depth_pair
    l1, grad, ssim_loss = tensorflow_loss_terms(y_true, y_pred, mask)
    np.testing.assert_allclose(l1_term(y_true, y_pred, mask), l1, atol=1e-5)
    np.testing.assert_allclose(gradient_term(y_true, y_pred, mask), grad, atol=1e-5)
    np.testing.assert_allclose(ssim_term(y_true, y_pred, mask), ssim_loss, atol=1e-5)
    total = depth_loss_function(np.concatenate([y_true, mask], axis=-1), y_pred)
    np.testing.assert_allclose(total, 0.1 * l1 + grad + ssim_loss, atol=1e-5)


def test_loss_gradient_equals_the_tf_image_loss_gradient(depth_pair):
    y_true, y_pred, mask = depth_pair
    y_pred = tf.constant(y_pred)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(y_pred)
        ours = tf.reduce_sum(depth_loss_function(np.concatenate([y_true, mask], axis=-1), y_pred))
        l1, grad, ssim_loss = tensorflow_loss_terms(y_true, y_pred, mask)
        theirs = tf.reduce_sum(0.1 * l1 + grad + ssim_loss)
    np.testing.assert_allclose(tape.gradient(ours, y_pred), tape.gradient(theirs, y_pred), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# The same weights on other backends, each in a process of its own
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tensorflow_side(tmp_path_factory, synthetic_cache):
    """A small network saved as .keras and as an authors'-style .h5, inputs at an odd size, a picture, and
    what this process (TensorFlow) computes from them: outputs, loss, test.py's depth, evaluate.py's metrics."""
    from helpers import varied_small_model

    folder = tmp_path_factory.mktemp("backends")
    net = varied_small_model(seed=12)
    net.save(folder / "model.keras")
    legacy = varied_small_model(seed=13, upsampling="align_corners")
    write_keras2_h5(legacy, folder / "legacy.h5")
    rng = np.random.default_rng(12)
    images = rng.random((2, 70, 98, 3), dtype=np.float32)  # neither side a multiple of 32
    prediction = np.asarray(net(images))
    target = np.concatenate([rng.uniform(1, 10, prediction.shape), rng.random(prediction.shape) > 0.1], axis=-1)
    target = target.astype(np.float32)
    np.savez(folder / "inputs.npz", images=images, target=target, prediction=prediction)
    shutil.copy(TESTS.parent / "examples" / "coffee.png", folder / "picture.png")
    os.environ["DENSEDEPTH_CACHE"], cache = str(synthetic_cache), os.environ.get("DENSEDEPTH_CACHE")
    try:
        test_script.main(["--input", str(folder / "picture.png"), "--model", str(folder / "model.keras"),
                          "--output", str(folder / "tensorflow_test"), "--npy"])
        evaluate.main([*EVALUATE_ARGS, "--model", str(folder / "model.keras"),
                       "--json", str(folder / "tensorflow_eval.json")])
    finally:
        os.environ.pop("DENSEDEPTH_CACHE") if cache is None else os.environ.update(DENSEDEPTH_CACHE=cache)
    return {"folder": folder, "net": net, "images": images, "prediction": prediction,
            "legacy": np.asarray(load_model(folder / "legacy.h5")(images)),
            "loss": np.asarray(depth_loss_function(target, prediction)),
            "depth": np.load(folder / "tensorflow_test" / "picture_depth_m.npy"),
            "metrics": json.loads((folder / "tensorflow_eval.json").read_text())}


def run_backend(backend, side, env):
    result = subprocess.run([sys.executable, str(TESTS / "cross_backend.py"), str(side["folder"])],
                            env={**env, "KERAS_BACKEND": backend}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{backend} side failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return dict(np.load(side["folder"] / f"{backend}.npz"))


def check_backend(backend, side, env):
    """The network (both up-sampling conventions), the loss, a file saved there, test.py and evaluate.py agree
    with TensorFlow's to float32 rounding of differently ordered sums (1e-4 relative at these sizes)."""
    theirs = run_backend(backend, side, env)
    np.testing.assert_allclose(theirs["prediction"], side["prediction"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(theirs["legacy"], side["legacy"], atol=1e-4, rtol=1e-4)  # align_corners
    np.testing.assert_allclose(theirs["tf_loss"], side["loss"], atol=1e-4, rtol=1e-5)  # the loss alone
    np.testing.assert_allclose(theirs["own_loss"], side["loss"], atol=1e-4, rtol=1e-5)
    # Saved under that backend, loaded here: the same network.
    loaded = load_model(side["folder"] / f"{backend}.keras")
    np.testing.assert_allclose(loaded(side["images"]), side["prediction"], atol=1e-5)
    # test.py: the same metres at the picture's size, and a map that varies (not a clipped constant).
    depth = np.load(side["folder"] / f"{backend}_test" / "picture_depth_m.npy")
    assert depth.shape == side["depth"].shape and side["depth"].std() > 0.05
    np.testing.assert_allclose(depth, side["depth"], rtol=1e-4, atol=1e-4)
    # evaluate.py: the same metrics, over a real spread of errors.
    metrics = json.loads((side["folder"] / f"{backend}_eval.json").read_text())
    assert metrics["images"] == side["metrics"]["images"] == 3
    for kind in ("pooled", "per_image"):
        assert 0.01 < side["metrics"][kind]["abs_rel"] < 10
        for name, value in side["metrics"][kind].items():
            assert metrics[kind][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (kind, name)


@requires("jax")
def test_model_loss_and_benches_import_without_tensorflow():
    """The path bench/gpu.sh takes on a machine without TensorFlow: no module imports it at the top."""
    code = ("import sys; sys.modules['tensorflow'] = None; sys.path[:0] = ['.', 'bench']; "
            "import model, loss, utils, backends, bench_train, bench_infer; "
            "assert model.keras.backend.backend() == 'jax'")
    result = subprocess.run([sys.executable, "-c", code], cwd=TESTS.parent, capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@requires("jax")
def test_jax_network_loss_test_py_and_evaluate_py_equal_tensorflows(tensorflow_side, script_env):
    check_backend("jax", tensorflow_side, script_env)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="PyTorch is not installed (its CPU wheels are too large for CI here); "
                           "pip install torch to test the torch backend")
def test_torch_network_loss_test_py_and_evaluate_py_equal_tensorflows(tensorflow_side, script_env):
    check_backend("torch", tensorflow_side, script_env)
