"""The paper's three quality measures of a predicted depth map (section 4.3): pure functions of
(ground truth, prediction), ground truth first, in metres.

    depth_ssim(gt, pred)       mean SSIM (11x11 Gaussian window, sigma 1.5, data range the depth cap)
    edge_f1(gt, pred)          F1 of depth edges (Sobel magnitude above 0.5)
    normal_distance(gt, pred)  mean cosine distance of surface normals back-projected with the intrinsics

evaluate.py --quality averages them over the test set.
"""
import numpy as np

from utils import EDGE_THRESHOLD, NYU, SSIM_SIGMA, back_project, scaled_intrinsics




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


def quality_measures(gt, pred, box, mask, depth_range=NYU):
    """The three quality measures of one image, on its crop box, counted where ground truth is valid."""
    full = scaled_intrinsics(*gt.shape)
    top, bottom, left, right = box
    crop = np.s_[top:bottom, left:right]
    intrinsics = {"fx": full["fx"], "fy": full["fy"], "cx": full["cx"] - left, "cy": full["cy"] - top}
    return {"mssim": depth_ssim(gt[crop], pred[crop], depth_range.max_m, mask[crop]),
            "edge_f1": edge_f1(gt[crop], pred[crop], mask=mask[crop]),
            "normal_distance": normal_distance(gt[crop], pred[crop], intrinsics, mask[crop])}
