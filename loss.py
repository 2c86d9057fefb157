"""The DenseDepth loss (paper section 3.2) on normalised depth targets (depth.depth_norm).

    L = theta * L_depth + L_grad + L_SSIM,   theta = 0.1
    L_depth = mean |y_hat - y|
    L_grad  = mean |gx(y_hat) - gx(y)| + |gy(y_hat) - gy(y)|      (tf.image.image_gradients)
    L_SSIM  = clip((1 - SSIM(y, y_hat)) / 2, 0, 1)               (11x11 Gaussian window, sigma 1.5)

    model.compile(optimizer, loss=depth_loss_function)

Each function returns one value per sample, so Keras averages over the global batch on any number of
replicas. A y_true with two channels carries a validity mask in its second channel (sparse ground
truth): the L1 and gradient terms then average over valid pixels only, and SSIM compares the prediction
with a target whose holes are filled by the prediction itself, so holes neither help nor hurt it.

Written in keras.ops, so it runs on every Keras backend: image_gradients and ssim below compute what
tf.image.image_gradients and tf.image.ssim compute (tests/test_backends.py holds them equal).
"""
import numpy as np

from depth import inverse_depth_norm
from metrics import ROOTED_METRICS, SSIM_SIGMA, SSIM_WINDOW, pixel_errors
from utils import HeavyModule

ops = HeavyModule("keras.ops")  # Keras imported on first use: settings.py reads THETA without it

# Weight of the point-wise L1 term, and SSIM's dynamic range: the reference code's target range
# 1000 cm / 10 cm.
THETA = 0.1
SSIM_DYNAMIC_RANGE = 100.0

# tf.image.ssim's stabilisers, which the reference code used: C1 = (K1 * range)^2, C2 = (K2 * range)^2.
SSIM_K1, SSIM_K2 = 0.01, 0.03


def split_target(y_true):
    """(target, mask) from a (B, H, W, 1) target or a (B, H, W, 2) target-and-mask tensor."""
    y_true = ops.cast(y_true, "float32")
    if y_true.shape[-1] == 2:
        return y_true[..., :1], y_true[..., 1:]
    return y_true, ops.ones_like(y_true)


def l1_term(y_true, y_pred, mask):
    """Mean absolute error over valid pixels, per sample."""
    y_true, y_pred, mask = _as_float32(y_true, y_pred, mask)
    return _masked_mean(ops.abs(y_pred - y_true), mask)


def gradient_term(y_true, y_pred, mask):
    """Mean L1 difference of vertical and horizontal finite differences, per sample.

    A difference counts only where both of its pixels are valid; with a full mask this is exactly the
    reference's mean over all pixels (image_gradients pads the last row and column with zeros).
    """
    y_true, y_pred, mask = _as_float32(y_true, y_pred, mask)
    dy_true, dx_true = image_gradients(y_true)
    dy_pred, dx_pred = image_gradients(y_pred)
    mask_dy = mask * ops.pad(mask[:, 1:], [[0, 0], [0, 1], [0, 0], [0, 0]])
    mask_dx = mask * ops.pad(mask[:, :, 1:], [[0, 0], [0, 0], [0, 1], [0, 0]])
    total = ops.abs(dy_pred - dy_true) * mask_dy + ops.abs(dx_pred - dx_true) * mask_dx
    return ops.sum(total, axis=[1, 2, 3]) / _valid_count(mask)


def ssim_term(y_true, y_pred, mask, ssim_range=SSIM_DYNAMIC_RANGE):
    """clip((1 - SSIM) / 2, 0, 1) per sample, holes filled with the (constant) prediction."""
    y_true, y_pred, mask = _as_float32(y_true, y_pred, mask)
    filled = ops.where(mask > 0, y_true, ops.stop_gradient(y_pred))
    term = ops.clip((1.0 - ssim(filled, y_pred, ssim_range)) * 0.5, 0.0, 1.0)
    return ops.where(_valid_count(mask) > 0, term, float("nan"))  # nothing to compare is no perfect score


def depth_loss_function(y_true, y_pred, theta=THETA, ssim_range=SSIM_DYNAMIC_RANGE):
    """theta * L_depth + L_grad + L_SSIM per sample, shape (batch,)."""
    y_true, mask = split_target(y_true)
    y_pred = ops.cast(y_pred, "float32")
    return (theta * l1_term(y_true, y_pred, mask) + gradient_term(y_true, y_pred, mask)
            + ssim_term(y_true, y_pred, mask, ssim_range))


# ---------------------------------------------------------------------------------------------------------
# tf.image's image_gradients and ssim in keras.ops, computed as TensorFlow computes them
# ---------------------------------------------------------------------------------------------------------


def image_gradients(images):
    """(dy, dx) forward differences of (B, H, W, C) images, zero in the last row / column."""
    dy = images[:, 1:] - images[:, :-1]
    dx = images[:, :, 1:] - images[:, :, :-1]
    return (ops.pad(dy, [[0, 0], [0, 1], [0, 0], [0, 0]]), ops.pad(dx, [[0, 0], [0, 0], [0, 1], [0, 0]]))


def gaussian_window(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    """tf.image.ssim's (size, size) window: a softmax over -(a^2 + b^2) / (2 sigma^2), in float32."""
    coords = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    g = np.square(coords) * np.float32(-0.5 / sigma**2)
    g = (g[None, :] + g[:, None]).ravel()
    g = np.exp(g - g.max())
    return (g / g.sum()).reshape(size, size).astype(np.float32)


def ssim(x, y, max_val, filter_size=SSIM_WINDOW, filter_sigma=SSIM_SIGMA, k1=SSIM_K1, k2=SSIM_K2):
    """Mean SSIM per image of (B, H, W, C) images, shape (B,), as tf.image.ssim computes it.

    The window slides only where it fits ('VALID', so each side needs at least filter_size pixels) and the
    SSIM map is averaged over height, width and channels.
    """
    channels = x.shape[-1]
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    window = np.tile(gaussian_window(filter_size, filter_sigma)[:, :, None, None], (1, 1, 4 * channels, 1))
    # The four local means SSIM needs, in one depthwise convolution (one filter per channel).
    stacked = ops.concatenate([x, y, x * y, ops.square(x) + ops.square(y)], axis=-1)
    means = ops.depthwise_conv(stacked, ops.convert_to_tensor(window), strides=1, padding="valid")
    mean_x, mean_y, mean_xy, mean_sq = (means[..., i * channels:(i + 1) * channels] for i in range(4))
    num0 = mean_x * mean_y * 2.0
    den0 = ops.square(mean_x) + ops.square(mean_y)
    luminance = (num0 + c1) / (den0 + c1)
    cs = (mean_xy * 2.0 - num0 + c2) / (mean_sq - den0 + c2)
    return ops.mean(luminance * cs, axis=[1, 2, 3])


def _as_float32(*tensors):
    return [ops.cast(t, "float32") for t in tensors]


def _valid_count(mask):
    # No maximum(., 1): a sample without valid pixels gets 0 / 0 = NaN, which stops training with a
    # message, instead of a loss of 0 that looks perfect (and would pick best.keras).
    return ops.sum(mask, axis=[1, 2, 3])


def _masked_mean(values, mask):
    return ops.sum(values * mask, axis=[1, 2, 3]) / _valid_count(mask)


# ---------------------------------------------------------------------------------------------------------
# What training monitors: the loss terms, and the evaluation's metrics in metres (metrics.pixel_errors)
# ---------------------------------------------------------------------------------------------------------

MONITORED_METRICS = ("a1", "abs_rel", "rmse")


def training_metrics(depth_range):
    """Keras metrics: l1, grad and ssim (the loss terms) and a1, abs_rel, rmse at the output resolution.

    Each is per image, averaged by Keras over the batches: a monitor, not the paper's protocol. An image
    without valid depth gives NaN, never a score that looks good.
    """
    def term(function, name):
        def metric(y_true, y_pred):
            target, mask = split_target(y_true)
            return function(target, y_pred, mask)
        metric.__name__ = name
        return metric

    def depth_metric(name):
        def metric(y_true, y_pred):
            target, mask = split_target(y_true)
            gt = inverse_depth_norm(target, depth_range)
            pred = inverse_depth_norm(ops.cast(y_pred, "float32"), depth_range)
            values = ops.where(mask > 0, pixel_errors(gt, pred)[name], 0.0)
            per_image = ops.sum(values, axis=[1, 2, 3]) / _valid_count(mask)
            return ops.sqrt(per_image) if name in ROOTED_METRICS else per_image
        metric.__name__ = name
        return metric

    return ([term(l1_term, "l1"), term(gradient_term, "grad"), term(ssim_term, "ssim")]
            + [depth_metric(name) for name in MONITORED_METRICS])
