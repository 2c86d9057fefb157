"""Reference computations the tests compare the product against (not used by the product itself)."""
import numpy as np

from utils import METRIC_NAMES, load_image, per_image_errors, resize_depth


def scale_up(images, scale=2):
    """Bilinear up-sampling of (N, H, W) or (H, W) maps by an integer factor, as the reference code does."""
    images = np.asarray(images, dtype=np.float32)
    return resize_depth(images, images.shape[-2] * scale, images.shape[-1] * scale)


def load_images(paths):
    """A list of RGB float32 images in [0, 1]; the first unreadable file raises InputError."""
    return [load_image(p) for p in paths]


def compute_errors_per_image(gt, pred, mask=None, min_depth_m=0.0):
    """The metrics computed on each image, then averaged over images (rmse is per-image rms)."""
    per_image = per_image_errors(gt, pred, mask, min_depth_m)
    return {k: float(np.mean([e[k] for e in per_image])) for k in METRIC_NAMES}


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
