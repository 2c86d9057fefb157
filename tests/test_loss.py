"""The loss against a direct NumPy / scikit-image computation of each term."""
import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from loss import depth_loss_function, gradient_term, l1_term, ssim_term


@pytest.fixture
def pair(rng):
    """Smooth-ish targets in [1, 100] and a noisy prediction, shape (2, 24, 28, 1)."""
    y_true = rng.uniform(1, 100, (2, 24, 28, 1)).astype(np.float32)
    y_pred = (y_true + rng.normal(0, 8, y_true.shape)).astype(np.float32)
    return y_true, y_pred


def numpy_gradients(img):
    """tf.image.image_gradients' convention: forward differences, zero in the last row / column."""
    dy = np.zeros_like(img)
    dx = np.zeros_like(img)
    dy[:, :-1] = img[:, 1:] - img[:, :-1]
    dx[:, :, :-1] = img[:, :, 1:] - img[:, :, :-1]
    return dy, dx


def numpy_ssim(a, b, data_range=100.0):
    return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def test_l1_term(pair):
    y_true, y_pred = pair
    ones = tf.ones_like(y_true)
    expected = np.abs(y_pred - y_true).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(l1_term(y_true, y_pred, ones), expected, rtol=1e-5)


def test_gradient_term(pair):
    y_true, y_pred = pair
    (dyt, dxt), (dyp, dxp) = numpy_gradients(y_true), numpy_gradients(y_pred)
    expected = (np.abs(dyp - dyt) + np.abs(dxp - dxt)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(gradient_term(y_true, y_pred, tf.ones_like(y_true)), expected, rtol=1e-5)


def test_ssim_term(pair):
    y_true, y_pred = pair
    ssim = np.array([numpy_ssim(t[..., 0], p[..., 0]) for t, p in zip(y_true, y_pred)])
    expected = np.clip((1 - ssim) / 2, 0, 1)
    assert 0.01 < expected.min()  # the noisy prediction is far from perfect
    np.testing.assert_allclose(ssim_term(y_true, y_pred, tf.ones_like(y_true)), expected, atol=2e-4)


def test_total_loss_combines_the_terms(pair):
    y_true, y_pred = pair
    (dyt, dxt), (dyp, dxp) = numpy_gradients(y_true), numpy_gradients(y_pred)
    ssim = np.array([numpy_ssim(t[..., 0], p[..., 0]) for t, p in zip(y_true, y_pred)])
    expected = (0.1 * np.abs(y_pred - y_true).mean(axis=(1, 2, 3))
                + (np.abs(dyp - dyt) + np.abs(dxp - dxt)).mean(axis=(1, 2, 3))
                + np.clip((1 - ssim) / 2, 0, 1))
    loss = depth_loss_function(y_true, y_pred)
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    np.testing.assert_allclose(depth_loss_function(y_true, y_pred, theta=1.0) - loss,
                               0.9 * np.abs(y_pred - y_true).mean(axis=(1, 2, 3)), rtol=1e-4)


def test_perfect_prediction_has_zero_loss(pair):
    y_true, _ = pair
    np.testing.assert_allclose(depth_loss_function(y_true, y_true), 0.0, atol=1e-6)


def test_masked_terms_ignore_holes(rng):
    y_true = rng.uniform(1, 100, (1, 16, 16, 1)).astype(np.float32)
    y_pred = y_true.copy()
    mask = np.ones_like(y_true)
    mask[:, 4:9, 5:11] = 0.0
    y_pred[:, 4:9, 5:11] += 50.0  # wrong only where there is no ground truth
    target = np.concatenate([y_true, mask], axis=-1)
    np.testing.assert_allclose(depth_loss_function(target, y_pred), 0.0, atol=1e-5)
    # An error on valid pixels counts, averaged over the valid pixels only.
    y_pred[:, 0, 0] += 30.0
    expected_l1 = 30.0 / mask.sum()
    np.testing.assert_allclose(l1_term(y_true, y_pred, mask), [expected_l1], rtol=1e-5)
    assert depth_loss_function(target, y_pred).numpy()[0] > 0.1 * expected_l1
