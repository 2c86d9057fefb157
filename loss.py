"""The DenseDepth loss (paper section 3.2) on normalised depth targets (utils.depth_norm).

    L = theta * L_depth + L_grad + L_SSIM,   theta = 0.1
    L_depth = mean |y_hat - y|
    L_grad  = mean |gx(y_hat) - gx(y)| + |gy(y_hat) - gy(y)|      (tf.image.image_gradients)
    L_SSIM  = clip((1 - SSIM(y, y_hat)) / 2, 0, 1)               (11x11 Gaussian window, sigma 1.5)

    model.compile(optimizer, loss=depth_loss_function)

Each function returns one value per sample, so Keras averages over the global batch on any number of
replicas. A y_true with two channels carries a validity mask in its second channel (sparse ground
truth): the L1 and gradient terms then average over valid pixels only, and SSIM compares the prediction
with a target whose holes are filled by the prediction itself, so holes neither help nor hurt it.
"""
import tensorflow as tf

from utils import ROOTED_METRICS, SSIM_DYNAMIC_RANGE, THETA, inverse_depth_norm, pixel_errors


def split_target(y_true):
    """(target, mask) from a (B, H, W, 1) target or a (B, H, W, 2) target-and-mask tensor."""
    y_true = tf.cast(y_true, tf.float32)
    if y_true.shape[-1] == 2:
        return y_true[..., :1], y_true[..., 1:]
    return y_true, tf.ones_like(y_true)


def l1_term(y_true, y_pred, mask):
    """Mean absolute error over valid pixels, per sample."""
    y_true, y_pred, mask = _as_float32(y_true, y_pred, mask)
    return _masked_mean(tf.abs(y_pred - y_true), mask)


def gradient_term(y_true, y_pred, mask):
    """Mean L1 difference of vertical and horizontal finite differences, per sample.

    A difference counts only where both of its pixels are valid; with a full mask this is exactly the
    reference's mean over all pixels (image_gradients pads the last row and column with zeros).
    """
    y_true, y_pred, mask = _as_float32(y_true, y_pred, mask)
    dy_true, dx_true = tf.image.image_gradients(y_true)
    dy_pred, dx_pred = tf.image.image_gradients(y_pred)
    mask_dy = mask * tf.pad(mask[:, 1:], [[0, 0], [0, 1], [0, 0], [0, 0]])
    mask_dx = mask * tf.pad(mask[:, :, 1:], [[0, 0], [0, 0], [0, 1], [0, 0]])
    total = tf.abs(dy_pred - dy_true) * mask_dy + tf.abs(dx_pred - dx_true) * mask_dx
    return tf.reduce_sum(total, axis=[1, 2, 3]) / _valid_count(mask)


def ssim_term(y_true, y_pred, mask, ssim_range=SSIM_DYNAMIC_RANGE):
    """clip((1 - SSIM) / 2, 0, 1) per sample, holes filled with the (constant) prediction."""
    y_true, y_pred, mask = _as_float32(y_true, y_pred, mask)
    filled = tf.where(mask > 0, y_true, tf.stop_gradient(y_pred))
    ssim = tf.image.ssim(filled, y_pred, max_val=ssim_range, filter_size=11, filter_sigma=1.5)
    term = tf.clip_by_value((1.0 - ssim) * 0.5, 0.0, 1.0)
    return tf.where(_valid_count(mask) > 0, term, float("nan"))  # nothing to compare is no perfect score


def depth_loss_function(y_true, y_pred, theta=THETA, ssim_range=SSIM_DYNAMIC_RANGE):
    """theta * L_depth + L_grad + L_SSIM per sample, shape (batch,)."""
    y_true, mask = split_target(y_true)
    y_pred = tf.cast(y_pred, tf.float32)
    return (theta * l1_term(y_true, y_pred, mask) + gradient_term(y_true, y_pred, mask)
            + ssim_term(y_true, y_pred, mask, ssim_range))


def _as_float32(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


def _valid_count(mask):
    # No maximum(., 1): a sample without valid pixels gets 0 / 0 = NaN, which stops training with a
    # message, instead of a loss of 0 that looks perfect (and would pick best.keras).
    return tf.reduce_sum(mask, axis=[1, 2, 3])


def _masked_mean(values, mask):
    return tf.reduce_sum(values * mask, axis=[1, 2, 3]) / _valid_count(mask)


# ---------------------------------------------------------------------------------------------------------
# What training monitors: the loss terms, and the evaluation's metrics in metres (utils.pixel_errors)
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
            pred = inverse_depth_norm(tf.cast(y_pred, tf.float32), depth_range)
            values = pixel_errors(gt, pred)[name]
            per_image = tf.reduce_sum(tf.where(mask > 0, values, 0.0), axis=[1, 2, 3]) / tf.reduce_sum(mask, axis=[1, 2, 3])
            return tf.sqrt(per_image) if name in ROOTED_METRICS else per_image
        metric.__name__ = name
        return metric

    return ([term(l1_term, "l1"), term(gradient_term, "grad"), term(ssim_term, "ssim")]
            + [depth_metric(name) for name in MONITORED_METRICS])
