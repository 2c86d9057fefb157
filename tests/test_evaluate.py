"""evaluate.py end to end on small zips written here: the Eigen arrays format and the NYU CSV format.

The metrics are checked against an independent computation from the saved predictions, and a model that
predicts one known depth everywhere is checked against metrics worked out by hand inside the Eigen crop.
"""
import csv
import io
import json
import os
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

import evaluate
import metrics
import utils
from camera import scaled_intrinsics
from datagen import npy_bytes
from datasets import KITTI_SPEC, pair
from depth import resize_depth
from estimator import find_default_model
from helpers import network_depth_m, scale_up
from metrics import compute_errors, depth_ssim, edge_f1, normal_distance, per_image_errors
from model import load_model
from utils import InputError

CONSTANT_DEPTH_M = 2.5  # what the constant model predicts everywhere: target 10 / 2.5 = 4


@pytest.fixture(autouse=True)
def float32_after_each_test():
    """--precision sets Keras' global policy; put it back so that other tests build float32 models."""
    yield
    keras.mixed_precision.set_global_policy("float32")


# ---------------------------------------------------------------------------------------------------------
# Models and data sets, made here
# ---------------------------------------------------------------------------------------------------------


def constant_depth_model(depth_m, max_depth_m=10.0):
    """A real Keras model whose half-resolution output is the target of depth_m at every pixel."""
    image = keras.Input((None, None, 3))
    half = keras.layers.AveragePooling2D(2)(image)
    target = keras.layers.Conv2D(1, 1, kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(max_depth_m / depth_m))(half)
    return keras.Model(image, target)


@pytest.fixture(scope="module")
def constant_model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "constant.keras"
    constant_depth_model(CONSTANT_DEPTH_M).save(path)
    return path


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_eigen_zip(path, rgb, depth):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("eigen_test_rgb.npy", npy_bytes(rgb))
        archive.writestr("eigen_test_depth.npy", npy_bytes(depth.astype(np.float32)))
        archive.writestr("eigen_test_crop.npy", npy_bytes(np.array([20, 459, 24, 615])))
    return path


def write_nyu_zip(path, rgb, depth_mm):
    """An NYU-format zip: data/nyu2_test.csv listing PNG RGB and 16-bit PNG depth in millimetres."""
    rows = []
    with zipfile.ZipFile(path, "w") as archive:
        for i, (image, depth) in enumerate(zip(rgb, depth_mm)):
            stem = f"data/nyu2_test/{i:05d}"
            archive.writestr(f"{stem}_colors.png", png_bytes(image))
            archive.writestr(f"{stem}_depth.png", png_bytes(depth))
            rows.append(f"{stem}_colors.png,{stem}_depth.png")
        archive.writestr("data/nyu2_test.csv", "\n".join(rows) + "\n")
    return path


def smooth_scenes(rng, n, height, width):
    """RGB pictures and plausible depth maps (a slanted floor plus a box) of a given size."""
    rows = np.linspace(0, 1, height)[:, None]
    rgb = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    depth = np.empty((n, height, width), np.float32)
    for i in range(n):
        depth[i] = 1.0 + 6.0 * (1 - rows) * rng.uniform(0.6, 1.0) + np.zeros((1, width))
        depth[i, height // 3:height // 2, width // 4:width // 2] = rng.uniform(1.0, 2.0)
    return rgb, depth


@pytest.fixture(scope="module")
def small_eigen_zip(tmp_path_factory):
    """Three 96x128 images in the Eigen arrays layout: a batch of 2 plus a last, short batch."""
    rgb, depth = smooth_scenes(np.random.default_rng(1), 3, 96, 128)
    depth[2, 10:15, 20:27] = 0.0  # holes: never evaluated
    return write_eigen_zip(tmp_path_factory.mktemp("data") / "eigen.zip", rgb, depth), rgb, depth


@pytest.fixture(scope="module")
def small_nyu_zip(tmp_path_factory):
    rgb, depth = smooth_scenes(np.random.default_rng(2), 2, 96, 128)
    depth_mm = np.round(depth * 1000).astype(np.uint16)
    path = write_nyu_zip(tmp_path_factory.mktemp("data") / "nyu.zip", rgb, depth_mm)
    return path, rgb, depth_mm.astype(np.float32) / 1000


def run_evaluate(tmp_path, *argv):
    """evaluate.main in-process; returns the JSON it wrote, the per-image rows and the predictions."""
    out = {"json": tmp_path / "eval.json", "csv": tmp_path / "eval.csv", "npz": tmp_path / "pred.npz"}
    evaluate.main([*argv, "--json", str(out["json"]), "--per-image", str(out["csv"]),
                   "--save-predictions", str(out["npz"])])
    with open(out["csv"]) as f:
        rows = list(csv.DictReader(f))
    saved = np.load(out["npz"])
    predictions = np.stack([saved[f"{i:05d}"] for i in range(len(rows))])
    return json.loads(out["json"].read_text()), rows, predictions


def independent_mask(depth, top=20, bottom=460, left=24, right=616):
    """Eigen crop rows 20..459 and columns 24..615 (scaled by hand for small images), ground truth > 1 mm."""
    mask = np.zeros(depth.shape, bool)
    mask[..., top:bottom, left:right] = True
    return mask & (depth > 1e-3)


# ---------------------------------------------------------------------------------------------------------
# Metrics against an independent computation from the saved predictions
# ---------------------------------------------------------------------------------------------------------


def test_eigen_zip_metrics_match_the_saved_predictions(tmp_path, small_model_path, small_eigen_zip):
    path, rgb, depth = small_eigen_zip
    result, rows, predictions = run_evaluate(tmp_path, "--model", str(small_model_path), "--data", str(path),
                                             "--bs", "2", "--quality")
    assert result["images"] == len(rows) == 3  # the short last batch is evaluated too
    assert predictions.shape == (3, 96, 128)
    assert predictions.min() >= 0.4 and predictions.max() <= 10.0  # clipped to NYU's range
    assert predictions.std() > 0.1 and np.mean(predictions < 10.0) > 0.9  # varied, mostly unclipped
    # The protocol itself: 2x bilinear up-sampling of the mean of the direct and the mirrored predictions.
    model = load_model(small_model_path)
    direct = network_depth_m(model, rgb)
    mirrored = network_depth_m(model, rgb[:, :, ::-1])[:, :, ::-1]
    np.testing.assert_allclose(predictions, scale_up(0.5 * (direct + mirrored)), rtol=1e-4, atol=1e-4)
    # The Eigen crop scaled to 96x128: rows 4..91, columns 5..122.
    mask = independent_mask(depth, 4, 92, 5, 123)
    assert result["pixels"] == mask.sum() == 3 * 88 * 118 - 35
    pooled = compute_errors(depth, predictions, mask)
    for name, value in pooled.items():
        assert result["pooled"][name] == pytest.approx(value, rel=1e-9, abs=1e-12)
    per_image = per_image_errors(depth, predictions, mask)
    for name in pooled:
        assert result["per_image"][name] == pytest.approx(np.mean([e[name] for e in per_image]), rel=1e-9)
        np.testing.assert_allclose([float(r[name]) for r in rows], [e[name] for e in per_image], rtol=1e-9)
    # Quality measures: each image's crop box, averaged over images.
    crop = np.s_[4:92, 5:123]
    ssim = [depth_ssim(g[crop], p[crop], 10.0, m[crop]) for g, p, m in zip(depth, predictions, mask)]
    f1 = [edge_f1(g[crop], p[crop], mask=m[crop]) for g, p, m in zip(depth, predictions, mask)]
    assert result["quality"]["mssim"] == pytest.approx(np.mean(ssim))
    assert result["quality"]["edge_f1"] == pytest.approx(np.mean(f1))
    # Normals from NYU's intrinsics scaled to 96x128, the principal point moved with the crop.
    k = scaled_intrinsics(96, 128)
    k = {**k, "cx": k["cx"] - 5, "cy": k["cy"] - 4}
    normals = [normal_distance(g[crop], p[crop], k, m[crop]) for g, p, m in zip(depth, predictions, mask)]
    assert result["quality"]["normal_distance"] == pytest.approx(np.mean(normals))
    assert 0.0 < result["quality"]["normal_distance"] < 2.0  # a cosine distance: 0 (same normals) to 2


def test_nyu_zip_metrics_match_the_saved_predictions_without_flip(tmp_path, small_model_path, small_nyu_zip):
    path, rgb, depth = small_nyu_zip
    result, rows, predictions = run_evaluate(tmp_path, "--model", str(small_model_path), "--data", str(path),
                                             "--no-flip")
    assert result["flip"] is False and result["images"] == 2
    assert [r["name"] for r in rows] == ["data/nyu2_test/00000_colors.png", "data/nyu2_test/00001_colors.png"]
    model = load_model(small_model_path)
    np.testing.assert_allclose(predictions, scale_up(network_depth_m(model, rgb)), rtol=1e-4, atol=1e-4)
    mask = independent_mask(depth, 4, 92, 5, 123)
    for name, value in compute_errors(depth, predictions, mask).items():
        assert result["pooled"][name] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_batches_keep_every_image_and_never_mix_sizes():
    def named(name, height):
        return name, pair(np.zeros((height, 8, 3), np.uint8), np.ones((height, 8), np.float32))

    pairs = [named("a", 4), named("b", 4), named("c", 4), named("d", 6), named("e", 4)]
    batches = list(utils.batches(iter(pairs), 2, key=evaluate.pair_sizes))
    assert [[name for name, _ in batch] for batch in batches] == [["a", "b"], ["c"], ["d"], ["e"]]


def test_input_size_feeds_the_network_resized_images(tmp_path, small_model_path, small_nyu_zip):
    import tensorflow as tf

    path, rgb, depth = small_nyu_zip
    result, _, predictions = run_evaluate(tmp_path, "--model", str(small_model_path), "--data", str(path),
                                          "--no-flip", "--input-size", "64x64")
    assert result["input_size"] == [64, 64] and predictions.shape == (2, 96, 128)  # still the ground truth's size
    # The one preparation of pictures (utils.network_input): bilinear, antialiased, clipped to [0, 1].
    small = np.clip(tf.image.resize(rgb.astype(np.float32) / 255.0, (64, 64), antialias=True).numpy(), 0, 1)
    expected = resize_depth(network_depth_m(load_model(small_model_path), small), 96, 128)
    np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------
# A model that predicts a known constant depth: metrics by hand inside the crop
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def banded_eigen_zip(tmp_path_factory):
    """Two 480x640 ground truths: 0.5 m outside the Eigen crop, bands of known depths inside it.

    Image 0: four 110-row bands at 2.5, 2.2, 4.0 and 8.0 m, with a 10x10 hole in the last.
    Image 1: 330 rows at 2.5 m, then 110 rows at 8.0 m.
    """
    depth = np.full((2, 480, 640), 0.5, np.float32)
    for band, value in enumerate((2.5, 2.2, 4.0, 8.0)):
        depth[0, 20 + 110 * band:130 + 110 * band, 24:616] = value
    depth[0, 400:410, 300:310] = 0.0
    depth[1, 20:350, 24:616] = 2.5
    depth[1, 350:460, 24:616] = 8.0
    rgb = np.random.default_rng(3).integers(0, 256, (2, 480, 640, 3), dtype=np.uint8)
    return write_eigen_zip(tmp_path_factory.mktemp("data") / "banded.zip", rgb, depth)


def hand_metrics(counts):
    """The six metrics of a constant 2.5 m prediction over {ground-truth depth: pixel count}."""
    n = sum(counts.values())
    mean = lambda f: sum(c * f(g) for g, c in counts.items()) / n  # noqa: E731
    ratio = lambda g: max(g / 2.5, 2.5 / g)  # noqa: E731  # 1, 1.136, 1.6, 3.2
    return {"a1": mean(lambda g: ratio(g) < 1.25), "a2": mean(lambda g: ratio(g) < 1.25**2),
            "a3": mean(lambda g: ratio(g) < 1.25**3), "abs_rel": mean(lambda g: abs(g - 2.5) / g),
            "rmse": np.sqrt(mean(lambda g: (g - 2.5) ** 2)), "log10": mean(lambda g: abs(np.log10(g / 2.5)))}


@pytest.mark.parametrize("flip", [True, False])
def test_constant_model_gives_the_hand_computed_metrics(tmp_path, constant_model_path, banded_eigen_zip, flip):
    band = 110 * 592
    image0 = {2.5: band, 2.2: band, 4.0: band, 8.0: band - 100}
    image1 = {2.5: 3 * band, 8.0: band}
    argv = ["--model", str(constant_model_path), "--data", str(banded_eigen_zip)] + ([] if flip else ["--no-flip"])
    result, rows, predictions = run_evaluate(tmp_path, *argv)
    np.testing.assert_allclose(predictions, CONSTANT_DEPTH_M, rtol=1e-6)
    assert result["pixels"] == 2 * 440 * 592 - 100
    pooled = hand_metrics({g: image0.get(g, 0) + image1.get(g, 0) for g in image0})
    per_image = [hand_metrics(image0), hand_metrics(image1)]
    # By hand for image 0: half the pixels within 1.25 and 1.5625, three quarters within 1.953.
    assert per_image[0]["a1"] == pytest.approx(0.5, abs=1e-3) and per_image[0]["a3"] == pytest.approx(0.75, abs=1e-3)
    for name in pooled:
        assert result["pooled"][name] == pytest.approx(pooled[name], rel=1e-6, abs=1e-9)
        assert result["per_image"][name] == pytest.approx((per_image[0][name] + per_image[1][name]) / 2,
                                                          rel=1e-6, abs=1e-9)
        assert float(rows[1][name]) == pytest.approx(per_image[1][name], rel=1e-6, abs=1e-9)


def test_crop_none_counts_the_outside_too(tmp_path, constant_model_path, banded_eigen_zip):
    result, _, _ = run_evaluate(tmp_path, "--model", str(constant_model_path), "--data", str(banded_eigen_zip),
                                "--crop", "none", "--no-flip")
    assert result["crop"] == "none" and result["pixels"] == 2 * 480 * 640 - 100
    # Only the five 2.5 m and 2.2 m bands are within 1.25; the 0.5 m border (5x off) now counts against.
    assert result["pooled"]["a1"] == pytest.approx(5 * 110 * 592 / (2 * 480 * 640 - 100))


def test_json_has_every_field(tmp_path, constant_model_path, banded_eigen_zip):
    result, _, _ = run_evaluate(tmp_path, "--model", str(constant_model_path), "--data", str(banded_eigen_zip),
                                "--quality", "--limit", "1", "--precision", "bfloat16")
    metrics = {"a1", "a2", "a3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10"}
    assert set(result) == {"model", "contract", "data", "kind", "split", "images", "pixels", "crop", "flip",
                           "input_size", "precision", "batch_size", "limit", "prediction_clip_m", "depth_range_m",
                           "eval_min_depth_m", "protocol", "pooled", "per_image", "quality", "paper",
                           "paper_computed", "ground_truth", "comparable_with_paper", "skipped_images", "camera",
                           "align", "eval_cap_m", "published", "bad_samples"}
    assert set(result["pooled"]) == set(result["per_image"]) == metrics
    # NYU's protocol rescales nothing unless asked (--camera-scale on).
    assert not result["camera"]["applied"] and not result["camera"]["rescaled"] and result["camera"]["scale_max"] == 1
    assert result["align"] == "none" and [row["model"] for row in result["published"]] == ["DenseDepth (paper)"]
    assert set(result["paper"]) == {"a1", "a2", "a3", "abs_rel", "rmse", "log10"}  # the paper's NYU six
    assert (result["protocol"], result["contract"], result["prediction_clip_m"]) == ("paper", {}, [0.4, 10.0])
    assert set(result["quality"]) == {"mssim", "edge_f1", "normal_distance"}
    assert (result["kind"], result["crop"], result["flip"], result["precision"]) == ("nyu", "eigen", True, "bfloat16")
    assert (result["images"], result["limit"], result["depth_range_m"]) == (1, 1, [0.4, 10.0])
    # A flat prediction has no edges where ground truth has three band edges.
    assert result["quality"]["edge_f1"] == 0.0


def test_kitti_split_evaluates_only_sparse_points_inside_the_garg_crop(tmp_path):
    # KITTI: 16-bit PNG depth = metres * 256, zero where the LiDAR has no return; 80 m cap.
    model_path = tmp_path / "constant20.keras"
    constant_depth_model(20.0, max_depth_m=80.0).save(model_path)
    depth = np.zeros((100, 320), np.uint16)
    depth[60, 20:40] = 10 * 256    # inside the Garg crop (rows 40..98, columns 11..307)
    depth[70, 50:60] = 20 * 256
    depth[95, 100:102] = 90 * 256  # beyond 80 m: ignored
    depth[10, 20:40] = 20 * 256    # above the crop: ignored
    Image.fromarray(np.zeros((100, 320, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(depth).save(tmp_path / "depth.png")
    (tmp_path / "split.txt").write_text("rgb.png depth.png\n")  # no focal: KITTI's camera, the model's assumed
    result, _, predictions = run_evaluate(tmp_path, "--model", str(model_path), "--data", str(tmp_path / "split.txt"))
    assert (result["kind"], result["crop"], result["pixels"]) == ("kitti", "garg", 30)
    np.testing.assert_allclose(predictions, 20.0, rtol=1e-6)
    # 20 points at 10 m (ratio 2), 10 at 20 m (exact).
    assert result["pooled"]["a1"] == pytest.approx(10 / 30)
    assert result["pooled"]["abs_rel"] == pytest.approx(20 / 30)
    assert result["pooled"]["rmse"] == pytest.approx(np.sqrt(20 * 100 / 30))
    # KITTI's own two: sq rel = mean (gt - pred)^2 / gt, RMSE log = sqrt(mean (log gt - log pred)^2).
    assert result["pooled"]["sq_rel"] == pytest.approx(20 * 100 / 10 / 30)
    assert result["pooled"]["rmse_log"] == pytest.approx(np.sqrt(20 * np.log(2) ** 2 / 30))
    table = evaluate.results_table(metrics.summary([{"name": "x", "pixels": 30, **result["pooled"]}]), KITTI_SPEC)
    assert table.splitlines()[0].split() == ["a1", "a2", "a3", "abs_rel", "sq_rel", "rmse", "rmse_log"]
    assert sum(line.strip().startswith("paper (KITTI, per image)") for line in table.splitlines()) == 1
    with pytest.raises(SystemExit, match="--quality needs dense ground truth"):
        evaluate.main(["--model", str(model_path), "--data", str(tmp_path / "split.txt"), "--quality"])


# ---------------------------------------------------------------------------------------------------------
# Samples, the default model, errors
# ---------------------------------------------------------------------------------------------------------


def test_save_samples_writes_worst_and_best_montages(tmp_path, constant_model_path, banded_eigen_zip, capsys):
    evaluate.main(["--model", str(constant_model_path), "--data", str(banded_eigen_zip), "--no-flip",
                   "--save-samples", str(tmp_path / "samples"), "--samples", "1"])
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["best_01.png", "worst_01.png"]
    with Image.open(tmp_path / "samples" / "worst_01.png") as im:
        assert im.width > 3 * im.height  # four panels side by side
    table = capsys.readouterr().out
    assert "pooled" in table and "per image" in table and "paper (NYU, per image)" in table


def test_default_model_is_nyu_h5_else_the_newest_run_else_the_built_in_one(tmp_path, monkeypatch):
    import estimator

    monkeypatch.chdir(tmp_path)
    assert find_default_model() == estimator.BUILTIN_MODEL and estimator.BUILTIN_MODEL.is_file()
    monkeypatch.setattr(estimator, "BUILTIN_MODEL", tmp_path / "models" / "missing.keras")
    with pytest.raises(InputError, match="pass --model nyu"):
        find_default_model()
    (tmp_path / "runs" / "a" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir()
    for name in ("runs/a/final.keras", "runs/b/best.keras", "runs/a/checkpoints/epoch_9.keras"):
        (tmp_path / name).write_bytes(b"")
    os.utime(tmp_path / "runs/a/final.keras", (1000, 1000))
    os.utime(tmp_path / "runs/b/best.keras", (2000, 2000))
    os.utime(tmp_path / "runs/a/checkpoints/epoch_9.keras", (3000, 3000))  # newest, but a checkpoint
    assert find_default_model() == tmp_path.joinpath("runs/b/best.keras").relative_to(tmp_path)
    (tmp_path / "nyu.h5").write_bytes(b"")
    assert str(find_default_model()) == "nyu.h5"


def test_with_no_model_anywhere_the_built_in_one_runs_and_says_what_it_knows(tmp_path, monkeypatch, capsys,
                                                                              banded_eigen_zip):
    monkeypatch.chdir(tmp_path)
    evaluate.main(["--data", str(banded_eigen_zip)])
    printed = capsys.readouterr().out
    assert "synthetic_tiny.keras (default: pass --model to choose)" in printed
    assert "warning: the built-in model knows the synthetic rooms only: --model nyu brings" in printed


def test_precision_applies_to_a_saved_keras_model(small_model_path):
    # A .keras file pins each layer's dtype; loading at bfloat16 must still compute in bfloat16.
    model = load_model(small_model_path, "bfloat16")
    assert model.get_layer("up1_convA").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("conv1_conv").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("conv3").dtype_policy.name == "float32"  # the output stays exact
    x = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    low = network_depth_m(model, x)
    full = load_model(small_model_path, "float32")
    assert full.get_layer("up1_convA").dtype_policy.name == "float32"
    high = network_depth_m(full, x)
    assert 0 < np.abs(low - high).max() and np.median(np.abs(low - high) / high) < 0.05


# ---------------------------------------------------------------------------------------------------------
# Each published figure beside the row computed the same way; which KITTI ground truth was read
# ---------------------------------------------------------------------------------------------------------


def table_rows(table):
    """{label: row index} of a results table's metric rows."""
    return {line[:38].strip(): i for i, line in enumerate(table.splitlines()) if line[:38].strip()}


@pytest.mark.parametrize("protocol", ["paper", "reference"])
def test_the_papers_row_is_under_the_per_image_row_and_the_rerun_under_the_reference_order(
        tmp_path, constant_model_path, banded_eigen_zip, capsys, protocol):
    result, _, _ = run_evaluate(tmp_path, "--model", str(constant_model_path), "--data", str(banded_eigen_zip),
                                "--protocol", protocol)
    rows = table_rows(capsys.readouterr().out.split("float32)\n", 1)[1])
    assert rows["paper (NYU, per image)"] == rows["per image"] + 1
    assert result["paper_computed"] == "per image" and result["comparable_with_paper"]
    if protocol == "reference":
        assert rows["published re-runs of their script"] == rows["pooled, reference order"] + 1
        assert set(result["authors_script_rerun"]) == {"a1", "abs_rel", "rmse"}
    else:
        assert "published re-runs of their script" not in rows and "authors_script_rerun" not in result


def test_kitti_results_say_which_ground_truth_and_whether_the_paper_row_compares(tmp_path, capsys):
    """Raw LiDAR (Eigen's split, as the paper's row) against the annotated maps of the BTS split files."""
    from test_data import pixel_of, write_raw_kitti

    model_path = tmp_path / "constant20.keras"
    constant_depth_model(20.0, max_depth_m=80.0).save(model_path)
    # Inside the Garg crop (rows 153..371, columns 44..1197 of 375x1242): 10 m and 20 m points.
    points = ([pixel_of(10.0, 300 + 3 * i, 250) for i in range(20)]
              + [pixel_of(20.0, 700 + 3 * i, 300) for i in range(10)])
    split = write_raw_kitti(tmp_path / "raw", [points])
    result, _, _ = run_evaluate(tmp_path, "--model", str(model_path), "--data", str(split), "--no-flip")
    out = capsys.readouterr().out
    assert result["ground_truth"].startswith("raw LiDAR") and result["comparable_with_paper"]
    assert result["pixels"] == 30 and result["pooled"]["a1"] == pytest.approx(10 / 30)
    assert "ground truth: raw LiDAR" in out and "NOT comparable" not in out
    # The annotated depth of the BTS split files: the same points, said not to compare.
    from PIL import Image

    frame = next((tmp_path / "raw").rglob("0000000000.png"))
    depth = np.zeros((375, 1242), np.uint16)
    for u, v, d in [(300 + 3 * i, 250, 10) for i in range(20)] + [(700 + 3 * i, 300, 20) for i in range(10)]:
        depth[v - 1, u - 1] = d * 256
    Image.fromarray(depth).save(tmp_path / "annotated.png")
    (tmp_path / "bts.txt").write_text(f"{frame} {tmp_path / 'annotated.png'} 721.5377\n")  # the calibration's
    annotated, _, _ = run_evaluate(tmp_path, "--model", str(model_path), "--data", str(tmp_path / "bts.txt"),
                                   "--no-flip")
    assert not annotated["comparable_with_paper"] and annotated["ground_truth"].startswith("annotated")
    assert annotated["pooled"] == pytest.approx(result["pooled"])
    assert "NOT comparable with the paper's row" in capsys.readouterr().out


@pytest.mark.slow
def test_the_sample_output_in_the_docs_is_what_evaluate_prints(tmp_path, monkeypatch, capsys):
    """docs/evaluation.md shows the table evaluate.py prints for the built-in model on the synthetic rooms:
    run the command it names and compare, line for line, so the page cannot drift from the code."""
    from pathlib import Path

    from estimator import BUILTIN_MODEL

    page = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    block = page.split("<!-- evaluate-sample -->\n```\n", 1)[1].split("```", 1)[0].rstrip("\n").splitlines()
    assert "python evaluate.py --model models/synthetic_tiny.keras --data synthetic --quality" in page
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path / "cache"))
    evaluate.main(["--model", str(BUILTIN_MODEL), "--data", "synthetic", "--quality"])
    printed = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(printed) if line.strip().startswith("a1"))
    assert printed[first:first + len(block)] == block


# ---------------------------------------------------------------------------------------------------------
# The zero-shot table: several benchmarks, alignment
# ---------------------------------------------------------------------------------------------------------


def reader_metrics(reader, prediction_of):
    """Per-image means of delta1 and abs rel over each sample's valid pixels within the spec's cap, with
    the prediction prediction_of(ground truth there) gives: what evaluate.py must print, by hand."""
    a1, rel = [], []
    for sample in reader.samples("test"):
        _, gt, valid, _ = reader.read(sample)
        valid = valid & (gt <= reader.spec.eval_cap_m)
        g = gt[valid].astype(np.float64)
        p = prediction_of(g)
        a1.append(np.mean(np.maximum(g / p, p / g) < 1.25))
        rel.append(np.mean(np.abs(g - p) / g))
    return float(np.mean(a1)), float(np.mean(rel))


@pytest.mark.parametrize("align", ["none", "median"])
def test_one_table_over_two_benchmarks_matches_hand_computed_metrics(tmp_path, constant_model_path, capsys, align):
    """iBims-1 and DIODE in their own layouts, a network that says 2.5 m everywhere: each dataset's row (and
    the mean row) is what the metrics of a constant prediction are, computed by hand from the files."""
    from test_benchmarks import write_diode, write_ibims1_png

    from benchmarks import READERS

    write_ibims1_png(tmp_path / "ibims", ["corridor_01", "office_02"])
    write_diode(tmp_path / "diode")
    out = tmp_path / "table.json"
    result = evaluate.main(["--model", str(constant_model_path), "--data", f"ibims1:{tmp_path / 'ibims'}",
                            "--data", f"diode-indoors:{tmp_path / 'diode'}", "--input-size", "32x32",
                            "--align", align, "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["align"] == align and [d["kind"] for d in saved["datasets"]] == ["ibims1", "diode-indoors"]

    def predicted(g):  # the constant, or its median scaling: the ground truth's median everywhere
        return np.full_like(g, CONSTANT_DEPTH_M if align == "none" else np.median(g))

    for entry, name in zip(saved["datasets"], ("ibims1", "diode-indoors")):
        a1, rel = reader_metrics(READERS[name](entry["data"]), predicted)
        assert entry["per_image"]["a1"] == pytest.approx(a1, abs=1e-6)
        assert entry["per_image"]["abs_rel"] == pytest.approx(rel, rel=1e-5)
        shown = [row["model"] for row in entry["published"]]
        assert entry["images"] == 2 and shown == (["ZoeDepth M12-N", "ZoeDepth M12-NK"] if align == "none" else [])
    assert result["mean"]["abs_rel"] == pytest.approx(np.mean([d["per_image"]["abs_rel"] for d in saved["datasets"]]))
    assert saved["mean_usual_names"]["delta1"] == saved["mean"]["a1"]
    table = capsys.readouterr().out.splitlines()
    assert any(line.startswith("mean") for line in table) and f"alignment: {align}" in "\n".join(table)


def test_skip_bad_leaves_out_a_missing_benchmark_file_and_counts_it(tmp_path, constant_model_path, capsys):
    from test_benchmarks import write_ibims1_png

    write_ibims1_png(tmp_path, ["corridor_01", "office_02", "kitchen_03"])
    (tmp_path / "depth" / "office_02.png").unlink()
    argv = ["--model", str(constant_model_path), "--data", f"ibims1:{tmp_path}", "--input-size", "32x32"]
    with pytest.raises(SystemExit, match="office_02.png"):
        evaluate.main(argv)
    result = evaluate.main([*argv, "--skip-bad"])
    assert (result["images"], result["bad_samples"]) == (2, 1)
    assert "skipped 1 bad samples" in capsys.readouterr().out


def test_clips_are_scored_frame_by_frame_with_their_tae(tmp_path, monkeypatch, constant_model_path):
    """Synthetic clips (exact depth and poses): every frame scored and TAE reported, with the stabiliser or
    without; with it, one stabiliser per clip, started afresh, fed every frame and the clip's own camera.
    A constant prediction carried by the camera's motion is a wall moved with the camera: no longer
    constant, so the two differ (tests/test_video.py holds what the stabiliser does to depth)."""
    import video
    from synthetic import clip_intrinsics

    made = []

    class Recording(video.DepthStabiliser):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.frames = 0
            made.append(self)

        def __call__(self, rgb, depth_m):
            self.frames += 1
            return super().__call__(rgb, depth_m)

    monkeypatch.setattr(video, "DepthStabiliser", Recording)
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path / "cache"))
    results = {}
    for temporal in ("flow", "none"):
        results[temporal] = evaluate.main(["--model", str(constant_model_path), "--data", "synthetic-video:2:4",
                                           "--input-size", "32x32", "--temporal", temporal])
    for temporal, result in results.items():
        assert result["images"] == 8 and result["temporal"] == temporal and result["tae"] > 0
    assert [stabiliser.frames for stabiliser in made] == [4, 4]
    for stabiliser in made:
        assert stabiliser.camera.pixels(240, 320) == pytest.approx(dict(zip(("fx", "fy", "cx", "cy"),
                                                                            clip_intrinsics(240, 320))))
    assert results["flow"]["per_image"]["abs_rel"] != pytest.approx(results["none"]["per_image"]["abs_rel"])


def benchmark_folder(name, root):
    """A few samples of benchmark `name` in its own layout under root (the readers' tests' writers)."""
    import test_benchmarks as b
    import test_sequences as s

    writers = {"ibims1": lambda: b.write_ibims1_png(root, ["corridor_01", "office_02"]),
               "diode-indoors": lambda: b.write_diode(root),
               "eth3d": lambda: b.write_eth3d_scene(root / "courtyard", [("DSC_0286.JPG", 0), ("DSC_0287.JPG", 1)]),
               "sunrgbd": lambda: b.write_sunrgbd(root), "scannet": lambda: s.write_scannet(root),
               "sintel": lambda: s.write_sintel(root), "tum": lambda: s.write_tum(root)}
    writers[name]()
    return root


@pytest.mark.parametrize("name", ["ibims1", "diode-indoors", "eth3d", "sunrgbd", "scannet", "sintel", "tum"])
def test_every_benchmark_scores_a_constant_network_as_computed_by_hand(tmp_path, constant_model_path, name):
    """Each reader's files, evaluate.py's per-image delta1 and abs rel of a network whose target is 4
    everywhere (2.5 m on a 10 m range; with no contract it is read on the dataset's range, so 20 m on an
    80 m one): the numbers computed here from the ground truth the reader gives (valid pixels, up to the
    cap)."""
    from data import open_dataset

    folder = benchmark_folder(name, tmp_path / name)
    result = evaluate.main(["--model", str(constant_model_path), "--data", f"{name}:{folder}",
                            "--input-size", "32x32", "--temporal", "none"])
    reader = open_dataset(f"{name}:{folder}")
    said = CONSTANT_DEPTH_M * reader.spec.depth_range.max_m / 10.0
    a1, rel = reader_metrics(reader, lambda g: np.full_like(g, said))
    assert result["per_image"]["a1"] == pytest.approx(a1, abs=1e-6)
    assert result["per_image"]["abs_rel"] == pytest.approx(rel, rel=1e-5)
