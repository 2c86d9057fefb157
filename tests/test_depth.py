"""depth.py: the target y = max_m / depth and back, and resizing depth maps."""
import numpy as np
import tensorflow as tf

from depth import KITTI, depth_norm, inverse_depth_norm
from helpers import scale_up


def test_depth_norm_and_inverse():
    depth = np.array([0.4, 1.0, 2.5, 10.0], np.float32)
    target = depth_norm(depth)
    np.testing.assert_allclose(target, [25.0, 10.0, 4.0, 1.0])
    np.testing.assert_allclose(inverse_depth_norm(target), depth, rtol=1e-6)
    # Clipped to the range on both sides; KITTI's cap is 80 m.
    np.testing.assert_allclose(depth_norm(np.array([0.1, 20.0])), [25.0, 1.0])
    np.testing.assert_allclose(depth_norm(np.array([40.0]), KITTI), [2.0])


def test_depth_norm_never_gives_inf_or_nan():
    holes = np.array([0.0, -1.0, np.nan, np.inf, -np.inf], np.float32)
    target = depth_norm(holes)
    assert np.all(np.isfinite(target)) and np.all(target == 1.0)
    depth = inverse_depth_norm(np.array([0.0, -3.0, 1e-9, 1e9], np.float32))
    np.testing.assert_allclose(depth, [10.0, 10.0, 10.0, 0.4])


def test_depth_norm_inside_tf_data_graph():
    ds = tf.data.Dataset.from_tensor_slices(np.array([[0.0, 2.0, np.nan, 0.5]], np.float32))
    out = next(iter(ds.map(depth_norm))).numpy()
    np.testing.assert_allclose(out, [1.0, 5.0, 1.0, 20.0])


def test_scale_up_doubles_size_and_keeps_constants():
    maps = np.stack([np.full((3, 4), 2.0), np.full((3, 4), 7.0)])
    up = scale_up(maps, 2)
    assert up.shape == (2, 6, 8)
    np.testing.assert_allclose(up[0], 2.0, rtol=1e-6)
    np.testing.assert_allclose(up[1], 7.0, rtol=1e-6)
