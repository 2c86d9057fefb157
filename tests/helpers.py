"""Reference computations the tests compare the product against (not used by the product itself), and the
marks of tests that need an optional package."""
import importlib.util

import numpy as np
import pytest

from depth import NYU, resize_depth
from metrics import METRIC_NAMES, per_image_errors
from utils import load_image


def scale_up(images, scale=2):
    """Bilinear up-sampling of (N, H, W) or (H, W) maps by an integer factor, as the reference code does."""
    images = np.asarray(images, dtype=np.float32)
    return resize_depth(images, images.shape[-2] * scale, images.shape[-1] * scale)


def network_depth_m(model, images, depth_range=NYU):
    """Metres at the network's output resolution, computed here from the Keras model's own output:
    y -> max_m / y clipped to the range (a non-positive y is the far limit). images: uint8 or float."""
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    y = np.asarray(model(x, training=False), dtype=np.float64)[..., 0]
    depth = np.where(y > 0, depth_range.max_m / np.where(y > 0, y, 1.0), depth_range.max_m)
    return np.clip(depth, depth_range.min_m, depth_range.max_m).astype(np.float32)


def load_images(paths):
    """A list of RGB float32 images in [0, 1]; the first unreadable file raises InputError."""
    return [load_image(p) for p in paths]


def compute_errors_per_image(gt, pred, mask=None, min_depth_m=0.0):
    """The metrics computed on each image, then averaged over images (rmse is per-image rms)."""
    per_image = per_image_errors(gt, pred, mask, min_depth_m)
    return {k: float(np.mean([e[k] for e in per_image])) for k in METRIC_NAMES}


def first_batch(dataset, split="test", batch_size=8, **kwargs):
    """The first batch of pipeline.pipeline over a data.open_dataset dataset, in order and not augmented.
    kwargs: input_hw (default 32x48), errors (a pipeline.SampleErrors), and any PipelineSettings field."""
    from pipeline import PipelineSettings, pipeline

    hw, errors = kwargs.pop("input_hw", (32, 48)), kwargs.pop("errors", None)
    return next(iter(pipeline(dataset, split, batch_size, PipelineSettings(hw, **kwargs), training=False,
                              errors=errors)))


def varied_small_model(seed=0, **options):
    """A random DenseDepth on the tiny encoder whose output is scaled into the depth range (mostly 1-10 m),
    so depth varies and is not clipped: a flipped, shifted or half-size prediction shows. options go to
    model.create_model (upsampling, leaky_relu_after, ...)."""
    import keras

    from model import create_model

    keras.utils.set_random_seed(seed)
    model = create_model("tiny", weights=None, **options)
    kernel, bias = model.get_layer("conv3").get_weights()
    model.get_layer("conv3").set_weights([40 * kernel, bias + 5.0])  # measured: y about 3 +- 1.2 on a photo
    return model


# The requirements file that brings each optional package (requirements.txt has the core).
OPTIONAL_PACKAGES = {"gradio": "requirements-demo.txt", "gradio_client": "requirements-demo.txt",
                     "selenium": "requirements-dev.txt", "tf2onnx": "requirements-export.txt",
                     "onnx": "requirements-export.txt", "onnxruntime": "requirements-export.txt",
                     "ai_edge_litert": "requirements-export.txt", "jax": "requirements-jax.txt",
                     "openvino": "requirements-openvino.txt", "nncf": "requirements-openvino.txt"}


def requires(*modules):
    """A mark that skips a test, with a one-line reason, where one of these optional packages is absent."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    reason = f"needs {', '.join(missing)}: pip install -r {OPTIONAL_PACKAGES[missing[0]]}" if missing else ""
    return pytest.mark.skipif(bool(missing), reason=reason)


def constant_network(depth_m, depth_range):
    """A small real DenseDepth whose output is the target of depth_m everywhere."""
    import keras

    from model import create_model

    keras.utils.set_random_seed(3)
    net = create_model("tiny", weights=None, decoder_width=0.5)
    kernel, _ = net.get_layer("conv3").get_weights()
    net.get_layer("conv3").set_weights([np.zeros_like(kernel), np.array([depth_range.max_m / depth_m], np.float32)])
    return net


def load_test_script():
    """The repository's test.py as a module named test_script: imported as `test` it would stand in for the
    standard library's package of that name for every later import in the process."""
    import importlib.util
    import sys
    from pathlib import Path

    if "test_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("test_script", Path(__file__).resolve().parents[1] / "test.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["test_script"] = module
        spec.loader.exec_module(module)
    return sys.modules["test_script"]
