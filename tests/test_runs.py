"""runs.py: the mean-depth baseline a run's validation scores are set against."""
import numpy as np
import pytest
import tensorflow as tf

from depth import NYU
from runs import mean_depth_baseline
from utils import InputError


def test_the_mean_depth_baseline_leaves_out_images_without_valid_depth():
    """An image without a valid pixel is left out of the baseline, not scored 1; with no valid depth at all in
    the batches it reads there is no baseline, and the error says so."""
    target = np.full((2, 16, 16, 1), 2.0, np.float32)
    mask = np.ones_like(target)
    mask[1] = 0.0  # the second image has no valid pixel
    y_true = tf.constant(np.concatenate([target, mask], axis=-1))
    empty = tf.data.Dataset.from_tensors((tf.zeros((1, 32, 32, 3)), tf.constant(np.concatenate(
        [target[:1], np.zeros_like(target[:1])], axis=-1))))
    with pytest.raises(InputError, match="no valid depth in the first 20 training batches"):
        mean_depth_baseline(empty, empty, NYU)
    full = tf.data.Dataset.from_tensors((tf.zeros((2, 32, 32, 3)), y_true))
    baseline = mean_depth_baseline(full, full, NYU)  # the empty image is left out, not scored 1
    assert baseline == pytest.approx({"mean_depth_m": 5.0, "a1": 1.0, "abs_rel": 0.0, "rmse": 0.0}, abs=1e-5)
