"""Depth normalisation, prediction, metrics (with hand-computed values), image loading, colouring."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from depth import KITTI, depth_norm, inverse_depth_norm
from estimator import DepthEstimator
from helpers import compute_errors_per_image, load_images, scale_up
from metrics import EIGEN_CROP, compute_errors, per_image_errors
from outputs import colorize
from utils import InputError, load_image


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


def test_metrics_of_a_perfect_prediction():
    gt = np.random.default_rng(0).uniform(0.5, 10, (3, 8, 8))
    errors = compute_errors(gt, gt.copy())
    assert errors == {"a1": 1.0, "a2": 1.0, "a3": 1.0, "abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0,
                      "log10": 0.0}


def test_metrics_of_a_twofold_overestimate():
    gt = np.array([[1.0, 2.0], [3.0, 4.0]])
    errors = compute_errors(gt, 2 * gt)
    # ratio 2 > 1.25^3 = 1.953: no pixel within any threshold.
    assert (errors["a1"], errors["a2"], errors["a3"]) == (0.0, 0.0, 0.0)
    assert errors["abs_rel"] == pytest.approx(1.0)
    assert errors["rmse"] == pytest.approx(np.sqrt((1 + 4 + 9 + 16) / 4))
    assert errors["log10"] == pytest.approx(np.log10(2))
    # KITTI's two: sq rel = mean (gt - pred)^2 / gt = mean gt; RMSE log = |log 2|.
    assert errors["sq_rel"] == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert errors["rmse_log"] == pytest.approx(np.log(2))


def test_metrics_take_ground_truth_first():
    gt, pred = np.full((4, 4), 2.0), np.full((4, 4), 1.0)
    assert compute_errors(gt, pred)["abs_rel"] == pytest.approx(0.5)
    assert compute_errors(pred, gt)["abs_rel"] == pytest.approx(1.0)


def test_metrics_thresholds_by_hand():
    gt = np.ones(4)
    pred = np.array([1.2, 1.5, 1.9, 2.5])  # ratios within 1.25, 1.5625, 1.953, none
    errors = compute_errors(gt, pred)
    assert (errors["a1"], errors["a2"], errors["a3"]) == (0.25, 0.5, 0.75)


def test_metrics_ignore_zero_and_non_finite_ground_truth():
    gt = np.array([[1.0, 0.0], [np.nan, np.inf]])
    pred = np.array([[1.0, 5.0], [5.0, 5.0]])
    assert compute_errors(gt, pred)["rmse"] == 0.0
    mask = np.array([[False, True], [True, True]])
    with pytest.raises(ValueError, match="no valid ground-truth"):
        compute_errors(gt, pred, mask=mask)
    assert compute_errors(np.array([0.5, 2.0]), np.array([9.0, 2.0]), min_depth_m=1.0)["rmse"] == 0.0


def test_pooled_and_per_image_metrics_differ_as_computed_by_hand():
    gt = np.ones((2, 1, 4))
    pred = np.ones((2, 1, 4))
    pred[0, 0, 0] = 5.0            # image 0: one pixel off by 4; image 1 perfect
    gt[1, 0, 2:] = 0.0             # image 1 has only two valid pixels
    pooled = compute_errors(gt, pred)
    per_image = compute_errors_per_image(gt, pred)
    assert pooled["rmse"] == pytest.approx(np.sqrt(16 / 6))
    assert per_image["rmse"] == pytest.approx(np.mean([np.sqrt(16 / 4), 0.0]))
    assert pooled["abs_rel"] == pytest.approx(4 / 6)
    assert per_image["abs_rel"] == pytest.approx(np.mean([1.0, 0.0]))
    assert len(per_image_errors(gt, pred)) == 2


def test_metric_errors_on_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        compute_errors(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="positive and finite"):
        compute_errors(np.ones(3), np.array([1.0, 0.0, 1.0]))


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


def test_predict_rejects_bad_images():
    estimator = DepthEstimator.from_keras(tf.keras.Sequential([tf.keras.Input((None, None, 3)), ConstantTarget()]))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        estimator.predict(np.full((1, 4, 4, 3), 3.0, np.float32))
    with pytest.raises(InputError, match="RGB"):
        estimator.predict(np.zeros((1, 4, 4), np.uint8))


def test_scale_up_doubles_size_and_keeps_constants():
    maps = np.stack([np.full((3, 4), 2.0), np.full((3, 4), 7.0)])
    up = scale_up(maps, 2)
    assert up.shape == (2, 6, 8)
    np.testing.assert_allclose(up[0], 2.0, rtol=1e-6)
    np.testing.assert_allclose(up[1], 7.0, rtol=1e-6)


def test_eigen_crop_is_the_papers():
    top, bottom, left, right = EIGEN_CROP
    assert (bottom - top + 1, right - left + 1) == (440, 592)


@pytest.mark.parametrize("mode, array", [
    ("RGB", np.full((5, 6, 3), (255, 0, 51), np.uint8)),
    ("RGBA", np.full((5, 6, 4), (255, 0, 51, 7), np.uint8)),
    ("L", np.full((5, 6), 51, np.uint8)),
    ("I;16", np.full((5, 6), 13107, np.uint16)),
])
def test_load_image_modes(tmp_path, mode, array):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    Image.fromarray(array).save(path)
    img = load_image(path)
    assert img.shape == (5, 6, 3) and img.dtype == np.float32
    expected = {"RGB": (1.0, 0.0, 0.2), "RGBA": (1.0, 0.0, 0.2), "L": (0.2,) * 3, "I;16": (0.2,) * 3}[mode]
    np.testing.assert_allclose(img[2, 3], expected, atol=1e-6)


def test_load_images_reports_unreadable_files_by_name(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match=r"broken\.png: cannot read image"):
        load_images([good, bad])
    with pytest.raises(InputError, match=r"absent\.jpg: no such file"):
        load_image(tmp_path / "absent.jpg")
    assert len(load_images([good, good])) == 2


def test_colorize_uses_the_colormap_and_blacks_out_holes():
    import matplotlib

    depth = np.array([[1.0, 2.0], [3.0, np.nan]])
    rgb = colorize(depth, cmap="viridis")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    lut = matplotlib.colormaps["viridis"]
    np.testing.assert_array_equal(rgb[0, 0], np.round(np.array(lut(0.0)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(rgb[1, 0], np.round(np.array(lut(1.0)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(rgb[1, 1], [0, 0, 0])


def test_a_failed_model_save_leaves_the_old_file_whole_and_nothing_else(small_model, contract_model, tmp_path):
    """contract.save_model writes through utils.atomic_write: a contract that cannot be written (here one
    whose to_dict raises) keeps the previous final.keras and leaves no partial file beside it."""
    import json
    import zipfile

    from contract import CONTRACT_MEMBER, Contract, save_model

    path = tmp_path / "final.keras"
    save_model(small_model, path, contract_model[1])

    class Unwritable(Contract):
        def to_dict(self):
            raise ValueError("cannot be written")

    with pytest.raises(ValueError, match="cannot be written"):
        save_model(small_model, path, Unwritable())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.keras"]
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read(CONTRACT_MEMBER))["dataset"] == "synthetic"
