"""What a depth value means: depth ranges, the network's target y = max_m / depth and back, resizing.

    from depth import NYU, KITTI, depth_norm, inverse_depth_norm
    depth_norm(depth_m, NYU)          # metres -> the training target in [1, 25] (NYU, paper section 3.1)
    inverse_depth_norm(y, NYU)        # the network's output -> metres, clipped to [0.4, 10] m

Every depth range and dataset picture size is defined here once and imported everywhere (cameras:
camera.py). Nothing
here needs TensorFlow at import time: the data tools and the synthetic renderer use it cheaply.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DepthRange:
    """The depth range of a dataset, in metres.

    max_m is both the cap and the numerator m of the target y = m / depth. min_m clips targets during
    training and predictions at inference. eval_min_m: ground truth at or below it is not evaluated.
    """

    min_m: float
    max_m: float
    eval_min_m: float = 1e-3


# The paper's appendix clips NYU targets to [0.4, 10] m; the reference code uses [0.1, 10] m.
NYU = DepthRange(min_m=0.4, max_m=10.0)
NYU_REFERENCE = DepthRange(min_m=0.1, max_m=10.0)
# KITTI: 80 m cap; min chosen so that targets span [1, 100] as in the reference NYU convention.
KITTI = DepthRange(min_m=0.8, max_m=80.0)
DEPTH_RANGES = {"nyu": NYU, "nyu_reference": NYU_REFERENCE, "kitti": KITTI}
NYU_IMAGE_HW = (480, 640)  # input (height, width)
KITTI_TRAIN_HW = (352, 1216)  # fixed-size training crop, the largest multiple of 32 inside every frame
KITTI_DEPTH_SCALE = 256.0  # 16-bit PNG value = metres * 256


# ---------------------------------------------------------------------------------------------------------
# The target and its inverse, side by side
# ---------------------------------------------------------------------------------------------------------


def _array_module(x):
    """NumPy for arrays, TensorFlow's NumPy API for tensors (tf.data graphs share these functions), and
    keras.ops for the other backends' tensors."""
    module = type(x).__module__
    if module.startswith("tensorflow"):
        import tensorflow.experimental.numpy as tnp

        return tnp
    if module.startswith(("jax", "torch", "keras")):
        import keras

        return keras.ops
    return np


def depth_norm(depth_m, depth_range=NYU):
    """Training target y = max_m / depth_m, depth first clipped to the range.

    Holes (zero, negative, NaN, inf) are treated as the far limit, giving the finite target 1; the data
    pipeline also masks them out where ground truth is sparse.
    """
    xp = _array_module(depth_m)
    valid = xp.isfinite(depth_m) & (depth_m > 0)
    depth_m = xp.where(valid, depth_m, depth_range.max_m)
    return depth_range.max_m / xp.clip(depth_m, depth_range.min_m, depth_range.max_m)


def inverse_depth_norm(target, depth_range=NYU):
    """Metric depth in metres from a network output y: clip(max_m / y, min_m, max_m)."""
    xp = _array_module(target)
    positive = target > 0
    depth_m = depth_range.max_m / xp.where(positive, target, 1.0)
    # A non-positive output has no depth meaning; it maps to the far limit, like a tiny positive one.
    depth_m = xp.where(positive, depth_m, depth_range.max_m)
    return xp.clip(depth_m, depth_range.min_m, depth_range.max_m)


# ---------------------------------------------------------------------------------------------------------
# Depth maps at another size
# ---------------------------------------------------------------------------------------------------------


def resize_depth(depth, height, width):
    """Bilinear resize of (H, W) or (N, H, W) depth maps to height x width; 2x is exactly scale_up."""
    from skimage.transform import resize

    depth = np.asarray(depth, dtype=np.float32)
    shape = depth.shape[:-2] + (height, width)
    resized = resize(depth, shape, order=1, mode="reflect", preserve_range=True, anti_aliasing=False)
    return resized.astype(np.float32)


