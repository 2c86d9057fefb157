"""The paper's three quality measures on constructed depth maps with known answers, and the crops."""
import numpy as np
import pytest

from camera import scaled_intrinsics
from datasets import KITTI_SPEC, NYU_SPEC
from helpers import compute_errors_per_image
from metrics import (
    compute_errors,
    crop_mask,
    depth_ssim,
    edge_f1,
    edge_map,
    evaluation_mask,
    normal_distance,
    per_image_errors,
    surface_normals,
)
from utils import InputError

H, W = 48, 64


def step(column, near=1.0, far=2.0):
    """A depth map with a vertical step edge: `near` left of `column`, `far` from it on."""
    depth = np.full((H, W), near)
    depth[:, column:] = far
    return depth


def plane_depth(normal, point, intrinsics, height=H, width=W):
    """z-depth of the plane through `point` with `normal`: z = (n . p) / (n . ray), ray = (x_n, y_n, 1)."""
    x = (np.arange(width) + 0.5 - intrinsics["cx"]) / intrinsics["fx"]
    y = (np.arange(height) + 0.5 - intrinsics["cy"]) / intrinsics["fy"]
    n = np.asarray(normal, dtype=np.float64)
    return np.dot(n, point) / (n[0] * x[None, :] + n[1] * y[:, None] + n[2])


# ---------------------------------------------------------------------------------------------------------
# Identical maps give perfect scores
# ---------------------------------------------------------------------------------------------------------


def test_identical_maps_score_perfectly(rng):
    depth = rng.uniform(0.5, 9.5, (H, W))
    depth[:, 30:] += 2.0  # some real edges
    assert depth_ssim(depth, depth.copy()) == pytest.approx(1.0)
    assert edge_map(depth).any()
    assert edge_f1(depth, depth.copy()) == 1.0
    assert normal_distance(depth, depth.copy()) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------------------


def test_ssim_of_a_constant_offset_is_the_luminance_term():
    # Flat maps: contrast and structure terms are C2 / C2 = 1, only luminance remains.
    gt, pred, data_range = np.full((H, W), 2.0), np.full((H, W), 3.0), 10.0
    c1 = (0.01 * data_range) ** 2
    expected = (2 * 2.0 * 3.0 + c1) / (2.0**2 + 3.0**2 + c1)
    assert depth_ssim(gt, pred, data_range) == pytest.approx(expected, rel=1e-9)


def test_ssim_falls_with_noise_and_counts_only_the_mask(rng):
    gt = rng.uniform(1, 5, (H, W))
    noisy = gt + rng.normal(0, 0.5, gt.shape)
    assert depth_ssim(gt, noisy) < 0.99
    pred = gt.copy()
    pred[:, :20] += rng.normal(0, 2.0, (H, 20))  # wrong only in the left 20 columns
    mask = np.zeros((H, W), bool)
    mask[:, 31:] = True  # more than a window's half-width (5) away from the damage
    assert depth_ssim(gt, pred, mask=mask) == pytest.approx(1.0)
    assert depth_ssim(gt, pred) < 0.9


# ---------------------------------------------------------------------------------------------------------
# Edge F1
# ---------------------------------------------------------------------------------------------------------


def test_edge_map_marks_the_two_columns_beside_a_step():
    edges = edge_map(step(30))
    assert np.array_equal(np.flatnonzero(edges.any(axis=0)), [29, 30])
    assert edges[:, 29:31].all()  # every row, the border ones too
    # scipy's Sobel gives 4x the step: 0.1 m is below the 0.5 threshold, 0.13 m above it.
    assert not edge_map(step(30, 1.0, 1.1)).any()
    assert edge_map(step(30, 1.0, 1.13)).any()


@pytest.mark.parametrize("shift, expected_f1", [(0, 1.0), (1, 0.5), (2, 0.0), (-1, 0.5)])
def test_shifted_edge_lowers_f1_by_a_known_amount(shift, expected_f1):
    # Each step has a 2-column edge; a 1-column shift shares one column: precision = recall = 1/2.
    assert edge_f1(step(30), step(30 + shift)) == pytest.approx(expected_f1)


def test_edge_f1_missing_and_invented_edges():
    flat = np.full((H, W), 3.0)
    assert edge_f1(flat, flat) == 1.0          # nothing to find, nothing found
    assert edge_f1(step(30), flat) == 0.0      # missed every edge
    assert edge_f1(flat, step(30)) == 0.0      # invented every edge
    # A second, invented edge halves the precision: F1 = 2 * 1 * 0.5 / 1.5 = 2/3.
    pred = step(30)
    pred[:, 50:] = 3.0
    assert edge_f1(step(30), pred) == pytest.approx(2 / 3)


def test_edge_f1_counts_only_inside_the_mask():
    pred = step(30)
    pred[:, 50:] = 3.0  # the invented edge at columns 49, 50
    mask = np.ones((H, W), bool)
    mask[:, 45:] = False
    assert edge_f1(step(30), pred, mask=mask) == 1.0


# ---------------------------------------------------------------------------------------------------------
# Surface normals
# ---------------------------------------------------------------------------------------------------------


def test_normals_of_a_plane_are_exact():
    k = scaled_intrinsics(H, W)
    flat = np.full((H, W), 2.0)
    normals = surface_normals(flat, k)
    np.testing.assert_allclose(np.abs(normals[..., 2]), 1.0, atol=1e-12)
    theta = np.radians(25.0)
    tilted = plane_depth((np.sin(theta), 0.0, -np.cos(theta)), (0.0, 0.0, 2.0), k)
    n = surface_normals(tilted, k)
    np.testing.assert_allclose(np.abs(n[..., 0]), np.sin(theta), atol=1e-9)
    np.testing.assert_allclose(n[..., 1], 0.0, atol=1e-9)


@pytest.mark.parametrize("degrees", [10.0, 30.0, 45.0])
def test_tilted_plane_gives_a_known_normal_error(degrees):
    # A plane turned by theta about the vertical axis: cosine distance 1 - cos(theta) at every pixel.
    k = scaled_intrinsics(H, W)
    theta = np.radians(degrees)
    gt = np.full((H, W), 2.0)
    pred = plane_depth((np.sin(theta), 0.0, -np.cos(theta)), (0.0, 0.0, 2.0), k)
    assert pred.min() > 0
    assert normal_distance(gt, pred, k) == pytest.approx(1 - np.cos(theta), rel=1e-9)
    # Tilted about the horizontal axis instead: the same angle, the same error.
    pred = plane_depth((0.0, np.sin(theta), -np.cos(theta)), (0.0, 0.0, 2.0), k)
    assert normal_distance(gt, pred) == pytest.approx(1 - np.cos(theta), rel=1e-9)


def test_normal_distance_ignores_scale_and_counts_only_the_mask():
    k = scaled_intrinsics(H, W)
    gt = plane_depth((0.3, -0.2, -1.0), (0.0, 0.0, 3.0), k)
    assert normal_distance(gt, 0.5 * gt, k) == pytest.approx(0.0, abs=1e-12)  # same plane orientation
    pred = gt.copy()
    pred[:10] = 1.0  # a different plane in the top rows
    mask = np.zeros((H, W), bool)
    mask[12:] = True
    assert normal_distance(gt, pred, k, mask) == pytest.approx(0.0, abs=1e-12)
    assert normal_distance(gt, pred, k) > 0.01


# ---------------------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------------------


def test_eigen_crop_is_rows_20_to_459_and_columns_24_to_615():
    assert NYU_SPEC.crop_box(480, 640) == (20, 460, 24, 616)
    mask = crop_mask(480, 640)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (20, 459, 24, 615)
    assert mask.sum() == 440 * 592
    assert NYU_SPEC.crop_box(240, 320) == (10, 230, 12, 308)   # scaled with the image
    assert crop_mask(480, 640, crop="none").all()


def test_kitti_crops_are_fractions_of_the_frame():
    # The monodepth evaluation's numbers for a 375x1242 frame.
    assert KITTI_SPEC.crop_box(375, 1242, "garg") == (153, 371, 44, 1197)
    assert KITTI_SPEC.crop_box(375, 1242, "eigen") == (124, 342, 44, 1197)
    with pytest.raises(InputError, match="garg crop is not defined for NYU Depth v2"):
        NYU_SPEC.crop_box(480, 640, "garg")


def test_evaluation_mask_drops_holes_and_kitti_beyond_80_m():
    gt = np.full((375, 1242), 10.0)
    gt[200, 100] = 0.0      # no LiDAR return
    gt[201, 100] = 90.0     # beyond KITTI's cap
    gt[202, 100] = 5e-4     # below the 1 mm minimum
    mask = evaluation_mask(gt, KITTI_SPEC, "garg")
    assert not mask[200:203, 100].any()
    assert mask.sum() == (371 - 153) * (1197 - 44) - 3
    assert evaluation_mask(gt, NYU_SPEC, "none")[201, 100]  # NYU keeps far ground truth


def test_quality_measures_back_project_with_the_images_camera():
    """A tilted floor and the same floor 0.5 m deeper: their normals differ by an angle that depends on the
    field of view, so the normal distance under a wide camera is not NYU's, and equals the one computed
    with that camera's own intrinsics."""
    from camera import NYU_CAMERA, Camera
    from metrics import normal_distance, quality_measures

    rows = np.linspace(0.0, 1.0, 96)[:, None] * np.ones((1, 128))
    gt = (2.0 + 3.0 * rows).astype(np.float32)
    pred = gt + 0.5
    box, mask = (0, 96, 0, 128), np.ones_like(gt, bool)
    wide = Camera(0.4, 0.53, 0.5, 0.5, "a wide lens")
    nyu = quality_measures(gt, pred, box, mask)["normal_distance"]
    with_wide = quality_measures(gt, pred, box, mask, camera=wide)["normal_distance"]
    assert with_wide == pytest.approx(normal_distance(gt, pred, wide.pixels(96, 128), mask))
    assert nyu == pytest.approx(normal_distance(gt, pred, NYU_CAMERA.pixels(96, 128), mask), rel=1e-3)
    assert abs(with_wide - nyu) > 0.1 * max(with_wide, nyu)


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


# ---------------------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------------------


def ramp_scene():
    """A depth ramp 1-5 m with holes, and a mask over its valid pixels."""
    gt = np.tile(np.linspace(1.0, 5.0, W), (H, 1)) + np.linspace(0, 0.5, H)[:, None]
    mask = np.ones((H, W), bool)
    mask[::7, ::5] = False
    return gt, mask


def test_median_alignment_scales_by_the_ratio_of_medians():
    from metrics import aligned

    gt, mask = ramp_scene()
    pred = 0.5 * gt ** 1.1  # wrong scale and a little wrong shape
    out = aligned(gt, pred, mask, "median")
    expected = pred * np.median(gt[mask]) / np.median(pred[mask])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(aligned(gt, 3.0 * gt, mask, "median"), gt, rtol=1e-6)
    assert aligned(gt, pred, mask, "none") is pred


def test_scale_shift_alignment_is_the_least_squares_fit_in_depth():
    from metrics import aligned

    gt, mask = ramp_scene()
    np.testing.assert_allclose(aligned(gt, (gt - 0.7) / 2.5, mask, "scale-shift"), gt, rtol=1e-6)
    rng = np.random.default_rng(0)
    pred = gt * 0.8 + 0.3 + rng.normal(0, 0.05, gt.shape)
    design = np.stack([pred[mask], np.ones(mask.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(design, gt[mask], rcond=None)
    np.testing.assert_allclose(aligned(gt, pred, mask, "scale-shift"), s * pred + t, rtol=1e-5)


def test_disparity_alignment_fits_inverse_depth_and_respects_the_cap():
    from metrics import aligned

    gt, mask = ramp_scene()
    disparity = 1.0 / gt
    pred = 1.0 / (0.4 * disparity + 0.05)  # an affine error in inverse depth
    np.testing.assert_allclose(aligned(gt, pred, mask, "scale-shift-disparity"), gt, rtol=1e-5)
    rng = np.random.default_rng(1)
    noisy = 1.0 / (disparity * 2.0 + 0.1 + rng.normal(0, 0.01, gt.shape))
    design = np.stack([1.0 / noisy[mask], np.ones(mask.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(design, disparity[mask], rcond=None)
    expected = 1.0 / np.maximum(s / noisy + t, 1.0 / 10.0)
    np.testing.assert_allclose(aligned(gt, noisy, mask, "scale-shift-disparity", 10.0), expected, rtol=1e-5)
    # A fitted disparity that would go negative is clamped at the cap's: no depth beyond it.
    assert aligned(gt, pred, mask, "scale-shift-disparity", 2.0).max() <= 2.0 + 1e-6
    with pytest.raises(InputError, match="unknown alignment 'affine'"):
        aligned(gt, pred, mask, "affine")
