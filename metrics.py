"""Scoring depth: pure functions of (ground truth, prediction), ground truth first, in metres.

The eight error metrics (delta thresholds, abs rel, sq rel, rms, rms log, log10) per pixel, per image and
pooled; where to evaluate (a dataset spec's crops, valid pixels, its cap); the paper's three quality measures
(mSSIM, edge F1, surface-normal distance, section 4.3); and aligning a prediction to the ground truth
(median scaling, least-squares scale and shift in depth or in disparity) as zero-shot benchmarks report.

    from metrics import compute_errors, evaluation_mask
    errors = compute_errors(gt, pred, evaluation_mask(gt, spec_named("nyu"), "eigen"))
"""
import numpy as np

from camera import back_project, scaled_intrinsics
from datasets import NYU_SPEC
from depth import NYU, _array_module
from utils import InputError

# SSIM's window (Wang et al. 2004, tf.image.ssim's, the reference code's) for the loss and the mSSIM measure:
# 11x11 Gaussian of sigma 1.5.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
# The paper's threshold for the edge F1 quality measure.
EDGE_THRESHOLD = 0.5
# Every metric computed; each benchmark reports its own columns (its spec's `reported`).
METRIC_NAMES = ("a1", "a2", "a3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10")


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------


def valid_mask(gt, mask=None, min_depth_m=0.0):
    """Pixels that carry ground truth: finite, above min_depth_m (and above zero), and inside mask."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(gt) & (gt > max(min_depth_m, 0.0))
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    return valid


ROOTED_METRICS = ("rmse", "rmse_log")  # means of squares, square-rooted after averaging


def pixel_errors(gt, pred):
    """{metric: per-pixel term} whose mean over pixels is the metric (ROOTED_METRICS: its square).

    NumPy arrays or tensors of any backend, so evaluation and the training monitor share one definition.
    """
    xp = _array_module(gt)
    ratio = xp.maximum(gt / pred, pred / gt)
    one, zero = xp.ones_like(gt), xp.zeros_like(gt)
    difference, log_difference = gt - pred, xp.log(gt) - xp.log(pred)
    return {"a1": xp.where(ratio < 1.25, one, zero), "a2": xp.where(ratio < 1.25**2, one, zero),
            "a3": xp.where(ratio < 1.25**3, one, zero), "abs_rel": xp.abs(difference) / gt,
            "sq_rel": difference**2 / gt, "rmse": difference**2, "rmse_log": log_difference**2,
            "log10": xp.abs(log_difference) / np.log(10.0)}


def _errors_on_pixels(gt, pred):
    """Every metric of METRIC_NAMES over 1-D arrays of valid pixels (rmse and sq_rel in metres)."""
    if gt.size == 0:
        raise ValueError("no valid ground-truth pixels to evaluate")
    if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
        raise ValueError("predictions must be positive and finite wherever ground truth is valid")
    means = {name: float(np.mean(term)) for name, term in pixel_errors(gt, pred).items()}
    return {name: float(np.sqrt(value)) if name in ROOTED_METRICS else value for name, value in means.items()}


def compute_errors(gt, pred, mask=None, min_depth_m=0.0):
    """The metrics pooled over every valid pixel of every image (the reference evaluation).

    gt, pred: metric depths of the same shape, (H, W) or (N, H, W). Pixels whose ground truth is zero,
    negative, not finite, at or below min_depth_m, or outside mask are ignored.
    """
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    valid = valid_mask(gt, mask, min_depth_m)
    return _errors_on_pixels(gt[valid], pred[valid])


# ---------------------------------------------------------------------------------------------------------
# Where to evaluate, and one image's record
# ---------------------------------------------------------------------------------------------------------


def per_image_errors(gt, pred, mask=None, min_depth_m=0.0):
    """A list with the metrics of each image of (N, H, W) ground truth and prediction."""
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    valid = valid_mask(gt, mask, min_depth_m)
    return [_errors_on_pixels(g[v], p[v]) for g, p, v in zip(gt, pred, valid)]


QUALITY_NAMES = ("mssim", "edge_f1", "normal_distance")
# The reference protocol's abs rel in the authors' argument order: mean |gt - pred| / pred.
REFERENCE_ORDER = "abs_rel_reference_order"


def crop_mask(height, width, spec=NYU_SPEC, crop=None):
    """Boolean (H, W) mask, True inside the dataset's evaluation crop (None: its protocol's)."""
    top, bottom, left, right = spec.crop_box(height, width, crop)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def evaluation_mask(gt, spec=NYU_SPEC, crop=None, valid=None):
    """Pixels that count: inside the crop, ground truth above the spec's eval_min_m and at most its cap,
    and inside `valid` (a reader's mask) where given."""
    mask = valid_mask(gt, crop_mask(*gt.shape, spec, crop), spec.depth_range.eval_min_m)
    if spec.eval_cap_m is not None:
        mask &= gt <= spec.eval_cap_m
    if valid is not None:
        mask &= valid
    return mask


# ---------------------------------------------------------------------------------------------------------
# Alignment: how zero-shot tables compare models whose scale (or shift) is not the data's
# ---------------------------------------------------------------------------------------------------------

ALIGNMENTS = ("none", "median", "scale-shift", "scale-shift-disparity")


def aligned(gt, pred, mask, align="none", max_depth_m=None):
    """The prediction aligned to the ground truth over mask, one image at a time.

    none: as it is (metric). median: times median(gt) / median(pred) (Eigen-style median scaling).
    scale-shift: s * pred + t with (s, t) the least-squares fit to gt in depth. scale-shift-disparity:
    1 / (s / pred + t), the fit made in inverse depth (MiDaS-style); the fitted disparity is clamped
    at 1 / max_depth_m (when given) so that no aligned depth is negative or beyond the cap.
    """
    if align == "none":
        return pred
    if align not in ALIGNMENTS:
        raise InputError(f"unknown alignment '{align}': choose one of {', '.join(ALIGNMENTS)}")
    pred = np.asarray(pred, dtype=np.float64)
    g, p = np.asarray(gt, np.float64)[mask], pred[mask]
    if align == "median":
        return (pred * (np.median(g) / np.median(p))).astype(np.float32)
    if align == "scale-shift":
        s, t = least_squares_scale_shift(p, g)
        return np.maximum(s * pred + t, 1e-3).astype(np.float32)
    s, t = least_squares_scale_shift(1.0 / p, 1.0 / g)
    floor = 1.0 / max_depth_m if max_depth_m else 1e-6
    return (1.0 / np.maximum(s / pred + t, floor)).astype(np.float32)


def least_squares_scale_shift(x, y):
    """(s, t) minimising sum((s * x + t - y) ** 2): the closed form of the 2x2 normal equations."""
    n, sx, sy = x.size, x.sum(), y.sum()
    sxx, sxy = (x * x).sum(), (x * y).sum()
    det = n * sxx - sx * sx
    if det <= 0:  # a constant prediction: only a shift can be fitted
        return 0.0, float(y.mean())
    return float((n * sxy - sx * sy) / det), float((sxx * sy - sx * sxy) / det)


def image_record(name, gt, pred, mask, box=None, depth_range=NYU, protocol="paper", camera=None):
    """The metrics of one image over mask as a flat dict; with a crop box, the quality measures too (the
    normals back-projected with the image's camera.Camera; None: NYU's Kinect)."""
    if not mask.any():
        raise InputError(f"{name}: no valid ground truth inside the evaluation crop")
    record = {"name": name, "pixels": int(mask.sum()), **compute_errors(gt, pred, mask)}
    if protocol == "reference":
        # The authors call compute_errors(predictions, ground_truth): only abs rel is not symmetric.
        record[REFERENCE_ORDER] = compute_errors(pred, gt, mask)["abs_rel"]
    if box is not None:
        record.update(quality_measures(gt, pred, box, mask, depth_range, camera))
    return record


# ---------------------------------------------------------------------------------------------------------
# Over a test set
# ---------------------------------------------------------------------------------------------------------


def pooled_errors(records, names=METRIC_NAMES):
    """The metrics over every evaluated pixel of every image, from the per-image records.

    Each metric is a mean over pixels, so the pooled value is the pixel-weighted mean of the images'
    values; rmse and rmse_log pool their squares. This equals compute_errors on all images at once.
    """
    weights = np.array([r["pixels"] for r in records], dtype=np.float64) / sum(r["pixels"] for r in records)
    pooled = {k: float(np.dot(weights, [r[k] for r in records])) for k in names}
    for k in {"rmse", "rmse_log"} & set(names):
        pooled[k] = float(np.sqrt(np.dot(weights, [r[k] ** 2 for r in records])))
    return pooled


def mean_over_images(records, names):
    """Each named value averaged over images."""
    return {k: float(np.mean([r[k] for r in records])) for k in names}


def summary(records, quality=False, protocol="paper"):
    """{"protocol", "pooled", "per_image", "quality"[, "pooled_reference_order"]}: what the table and JSON show.

    Every figure comes from `protocol`; the reference protocol adds its pooled abs rel in the authors'
    argument order (divided by the prediction) under its own name.
    """
    results = {"protocol": protocol, "pooled": pooled_errors(records),
               "per_image": mean_over_images(records, METRIC_NAMES),
               "quality": mean_over_images(records, QUALITY_NAMES) if quality else None}
    if protocol == "reference":
        results["pooled_reference_order"] = {"abs_rel": pooled_errors(records, (REFERENCE_ORDER,))[REFERENCE_ORDER]}
    return results


# ---------------------------------------------------------------------------------------------------------
# The paper's quality measures (section 4.3)
# ---------------------------------------------------------------------------------------------------------


def depth_ssim(gt, pred, data_range=NYU.max_m, mask=None):
    """Mean SSIM between two depth maps in metres, over mask (all pixels by default).

    data_range: the span depth values can take, the dataset's cap (10 m on NYU).
    """
    from skimage.metrics import structural_similarity

    _, ssim_map = structural_similarity(np.asarray(gt, np.float64), np.asarray(pred, np.float64),
                                        data_range=data_range, gaussian_weights=True, sigma=SSIM_SIGMA,
                                        use_sample_covariance=False, full=True)
    return float(ssim_map[mask].mean() if mask is not None else ssim_map.mean())


def edge_map(depth, threshold=EDGE_THRESHOLD):
    """Depth edges: Sobel gradient magnitude above threshold.

    scipy's Sobel is unnormalised (a step of height d gives 4d on both sides of it), so on depth in metres
    the paper's threshold of 0.5 marks steps of more than 0.125 m.
    """
    from scipy import ndimage

    depth = np.asarray(depth, dtype=np.float64)
    return np.hypot(ndimage.sobel(depth, axis=0), ndimage.sobel(depth, axis=1)) > threshold


def edge_f1(gt, pred, threshold=EDGE_THRESHOLD, mask=None):
    """F1 score of the prediction's depth edges against the ground truth's, counted inside mask.

    1.0 when neither map has an edge: there is nothing to miss and nothing was invented.
    """
    true, found = edge_map(gt, threshold), edge_map(pred, threshold)
    if mask is not None:
        true, found = true & mask, found & mask
    if not true.any() and not found.any():
        return 1.0
    # F1 = 2 TP / (2 TP + FP + FN), and 2 TP + FP + FN = |true edges| + |found edges|.
    return float(2 * np.count_nonzero(true & found) / (np.count_nonzero(true) + np.count_nonzero(found)))


def surface_normals(depth, intrinsics):
    """Unit surface normals (H, W, 3) in the camera frame, from the back-projected depth map.

    Cross product of the point cloud's derivatives along rows and columns: exact for any plane, since
    differences of points on a plane lie in it.
    """
    points = back_project(depth, intrinsics)
    normals = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def normal_distance(gt, pred, intrinsics=None, mask=None):
    """Mean cosine distance 1 - cos(angle) between the surface normals of ground truth and prediction.

    intrinsics: {fx, fy, cx, cy} of the maps' pixels; NYU's Kinect scaled to their size by default.
    """
    intrinsics = intrinsics or scaled_intrinsics(*np.shape(gt))
    cosine = np.sum(surface_normals(gt, intrinsics) * surface_normals(pred, intrinsics), axis=-1)
    distance = 1.0 - np.clip(cosine, -1.0, 1.0)
    return float(distance[mask].mean() if mask is not None else distance.mean())


def quality_measures(gt, pred, box, mask, depth_range=NYU, camera=None):
    """The three quality measures of one image, on its crop box, counted where ground truth is valid; the
    surface normals come from back-projecting with camera (a camera.Camera; None: NYU's Kinect)."""
    full = camera.pixels(*gt.shape) if camera is not None else scaled_intrinsics(*gt.shape)
    top, bottom, left, right = box
    crop = np.s_[top:bottom, left:right]
    intrinsics = {"fx": full["fx"], "fy": full["fy"], "cx": full["cx"] - left, "cy": full["cy"] - top}
    return {"mssim": depth_ssim(gt[crop], pred[crop], depth_range.max_m, mask[crop]),
            "edge_f1": edge_f1(gt[crop], pred[crop], mask=mask[crop]),
            "normal_distance": normal_distance(gt[crop], pred[crop], intrinsics, mask[crop])}


# ---------------------------------------------------------------------------------------------------------
# Temporal consistency of a video's depth: TAE
# ---------------------------------------------------------------------------------------------------------


def per_pair_tae(depths, poses, intrinsics, valid=None, splat="last"):
    """The TAE of each consecutive pair of frames (N - 1 values, in percent): the mean of the two directions'
    reprojection errors (tae_direction), t to t + 1 and t + 1 to t.

    depths: (N, H, W) metres; poses: (N, 4, 4) camera-to-world; intrinsics: (fx, fy, cx, cy) in pixels (or
    a dict with those keys, as camera.Camera.pixels gives), one for every frame or a sequence of N, in this
    project's convention: pixel (v, u) is the ray through (u + 0.5, v + 0.5); valid: (N, H, W) masks or None.
    """
    depths = np.asarray(depths, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    if depths.ndim != 3 or len(depths) < 2:
        raise ValueError(f"TAE needs depths of shape (N, H, W) with N >= 2, got {depths.shape}")
    if poses.shape != (len(depths), 4, 4):
        raise ValueError(f"TAE needs one 4x4 pose per frame: {len(depths)} frames, poses {poses.shape}")
    cameras = _frame_intrinsics(intrinsics, len(depths))
    masks = [None] * len(depths) if valid is None else np.asarray(valid, dtype=bool)
    errors = []
    for t in range(len(depths) - 1):
        forward = np.linalg.inv(poses[t + 1]) @ poses[t]  # frame t's camera coordinates to frame t + 1's
        there = tae_direction(depths[t], depths[t + 1], forward, cameras[t], cameras[t + 1], masks[t],
                              masks[t + 1], splat)
        back = tae_direction(depths[t + 1], depths[t], np.linalg.inv(forward), cameras[t + 1], cameras[t],
                             masks[t + 1], masks[t], splat)
        errors.append(50.0 * (there + back))
    return np.asarray(errors)


def temporal_alignment_error(depths, poses, intrinsics, valid=None, splat="last"):
    """TAE, the temporal alignment error of Video Depth Anything (Chen et al. 2025; their
    benchmark/eval/eval_tae.py), in percent: the mean over consecutive pairs of per_pair_tae.

    Each frame's depth, back-projected and moved by the known camera motion into the next frame (and the
    next into it), should land on that frame's depth there; the abs rel of the mismatch measures flicker,
    not accuracy (one scale for the whole clip gives 0). eval_tae.py first aligns the predictions of the
    whole clip to the ground truth (one least-squares scale and shift in disparity); pass depths already
    aligned so, or metric ones.
    """
    return float(np.mean(per_pair_tae(depths, poses, intrinsics, valid, splat)))


def tae_direction(depth_src, depth_dst, src_to_dst, k_src, k_dst, valid_src=None, valid_dst=None, splat="last"):
    """Mean |z' - d| / d (a fraction) of one frame's depth reprojected into another (eval_tae.py's tae_torch).

    Every valid source pixel is back-projected (k_src), moved by src_to_dst (4x4) and projected (k_dst);
    those landing in the image with positive depth z' are splatted at their pixel: where several land on one
    pixel, splat="last" keeps the last in raster order (eval_tae.py's scatter on a CPU), "nearest" the
    nearest. d: the destination's depth at the splatted pixels where it is valid. 0.0 where no pixel is
    compared, as eval_tae.py returns.
    """
    depth_src, depth_dst = np.asarray(depth_src, dtype=np.float64), np.asarray(depth_dst, dtype=np.float64)
    height, width = depth_dst.shape
    fx, fy, cx, cy = k_src
    rows, cols = np.nonzero(valid_mask(depth_src, valid_src))
    z = depth_src[rows, cols]
    points = np.stack([(cols + 0.5 - cx) / fx * z, (rows + 0.5 - cy) / fy * z, z])
    moved = np.asarray(src_to_dst)[:3, :3] @ points + np.asarray(src_to_dst)[:3, 3:4]
    fx, fy, cx, cy = k_dst
    ahead = moved[2] > 0
    moved = moved[:, ahead]
    u = np.floor(fx * moved[0] / moved[2] + cx)  # the pixel whose square [u, u + 1) holds the projection
    v = np.floor(fy * moved[1] / moved[2] + cy)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    index, z_new = (v[inside] * width + u[inside]).astype(np.int64), moved[2, inside]
    if splat == "nearest":  # farthest first, so that the nearest is written last
        order = np.argsort(-z_new, kind="stable")
        index, z_new = index[order], z_new[order]
    elif splat != "last":
        raise ValueError(f"splat must be 'last' or 'nearest', got {splat!r}")
    # The last write of each pixel, made explicit: NumPy leaves repeated fancy-index assignment unordered.
    pixels, first_from_end = np.unique(index[::-1], return_index=True)
    projected = np.zeros(height * width)
    projected[pixels] = z_new[len(z_new) - 1 - first_from_end]
    compared = (projected > 0) & valid_mask(depth_dst, valid_dst).ravel()
    if not np.any(compared):
        return 0.0
    target = depth_dst.ravel()[compared]
    return float(np.mean(np.abs(target - projected[compared]) / target))


def _frame_intrinsics(intrinsics, count):
    """[(fx, fy, cx, cy)] * count of one camera's intrinsics (a 4-sequence or a dict) or of count of them."""
    def one(k):
        if isinstance(k, dict):
            return tuple(float(k[name]) for name in ("fx", "fy", "cx", "cy"))
        values = tuple(float(value) for value in np.asarray(k, dtype=np.float64).ravel())
        if len(values) != 4:
            raise ValueError(f"intrinsics must be (fx, fy, cx, cy), got {k!r}")
        return values

    if isinstance(intrinsics, dict) or np.ndim(intrinsics) == 1:
        return [one(intrinsics)] * count
    if len(intrinsics) != count:
        raise ValueError(f"{len(intrinsics)} intrinsics for {count} frames")
    return [one(k) for k in intrinsics]


def clip_tae(depths, ground_truth, valid, poses, intrinsics, max_depth_m):
    """TAE of one clip's predictions as eval_tae.py scores them: first aligned to the ground truth by one
    least-squares scale and shift in disparity over the whole clip (valid pixels), clipped to
    [1e-3, max_depth_m], then temporal_alignment_error. A metric model's steadiness, not its scale."""
    depths = np.asarray(depths, np.float64)
    valid = np.asarray(valid, bool) & (np.asarray(ground_truth) > 0) & (depths > 0)
    s, t = least_squares_scale_shift(1.0 / depths[valid], 1.0 / np.asarray(ground_truth, np.float64)[valid])
    disparity = np.maximum(s / np.maximum(depths, 1e-6) + t, 1.0 / max_depth_m)
    return temporal_alignment_error(np.clip(1.0 / disparity, 1e-3, max_depth_m), poses, intrinsics, valid)
