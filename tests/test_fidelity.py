"""Fidelity to the authors' released models and evaluation, and the contract a saved model carries.

- evaluate.py --protocol reference against a re-implementation of the authors' evaluate.py + utils.py,
  written here from their description (their evaluate.py and utils.py of 2019), and the default protocol
  against the same with the paper's floor and denominator;
- a KITTI model read on the 80 m scale with no range flag, by evaluate.py and test.py;
- registration: pairs whose colour encodes pixel position and whose depth encodes the same position, so a
  flip, crop or resize that moves depth against the image shows, through the real tf.data pipeline and
  through evaluate.py's crop.
"""
import json
import subprocess
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import evaluate
from augment import REFERENCE_PERMUTE_PROBABILITY
from contract import Contract, model_contract, read_contract, save_model
from data import open_dataset
from datagen import encoded, npy_bytes, write_zip
from datasets import NYU_SPEC, pair
from depth import KITTI, NYU, NYU_REFERENCE
from estimator import DepthEstimator
from helpers import constant_network, load_test_script, network_depth_m
from keras2_h5 import write_keras2_h5
from model import create_model
from pipeline import PipelineSettings, pipeline
from settings import RECIPES
from utils import VERSION

test_script = load_test_script()

REPO = Path(__file__).resolve().parents[1]

EIGEN_CROP_ARRAY = np.array([20, 459, 24, 615])


# ---------------------------------------------------------------------------------------------------------
# The authors' evaluation, re-implemented from its description
# ---------------------------------------------------------------------------------------------------------


def authors_evaluation(model, rgb, depth, crop, floor_m=0.1, divide_by="prediction"):
    """The authors' evaluate(): centimetre clip, 2x scikit-image up-sampling, flip average, crop, pooled.

    Their predict() returns clip(1000 / y, 10, 1000) / 1000, which evaluate() multiplies by 10 (metres);
    scale_up() is skimage resize(order=1, preserve_range, mode reflect, anti_aliasing=True) per image;
    compute_errors(predictions, ground_truth) is called against its (gt, pred) signature.
    floor_m and divide_by="ground truth" turn it into the paper's protocol, for comparison.
    """
    from skimage.transform import resize

    def predicted_metres(images):
        y = np.asarray(model.predict(images / 255.0, verbose=0), np.float64)[..., 0]
        centimetres = np.clip(1000.0 / y, floor_m * 100, 1000.0)
        metres = centimetres / 1000.0 * 10.0
        return np.stack([resize(m, (2 * m.shape[0], 2 * m.shape[1]), order=1, preserve_range=True,
                                mode="reflect", anti_aliasing=True) for m in metres])

    direct, mirrored = predicted_metres(rgb), predicted_metres(rgb[..., ::-1, :])
    rows, cols = np.s_[crop[0]:crop[1] + 1], np.s_[crop[2]:crop[3] + 1]
    pred = np.stack([0.5 * d[rows, cols] + 0.5 * np.fliplr(m[rows, cols]) for d, m in zip(direct, mirrored)])
    gt = depth[:, rows, cols]
    thresh = np.maximum(gt / pred, pred / gt)
    denominator = pred if divide_by == "prediction" else gt
    return {"a1": (thresh < 1.25).mean(), "a2": (thresh < 1.25 ** 2).mean(), "a3": (thresh < 1.25 ** 3).mean(),
            "abs_rel": np.mean(np.abs(gt - pred) / denominator), "rmse": np.sqrt(np.mean((gt - pred) ** 2)),
            "log10": np.mean(np.abs(np.log10(gt) - np.log10(pred)))}


def colour_depth_model(max_depth_m=10.0):
    """A real Keras model whose target at each output pixel is 0.5 + 80 * red: depth 0.12-20 m, so the
    floor (0.1 or 0.4 m) and the 10 m cap both bite; mirrored images give other predictions."""
    image = keras.Input((None, None, 3))
    half = keras.layers.AveragePooling2D(2)(image)
    target = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant([[[[80.0], [0.0], [0.0]]]]),
                                 bias_initializer=keras.initializers.Constant(0.5))(half)
    return keras.Model(image, target)


@pytest.fixture(scope="module")
def eigen_fixture(tmp_path_factory):
    """Four 480x640 images in the Eigen arrays layout: smooth random colour, depth 0.5-9.5 m everywhere."""
    rng = np.random.default_rng(11)
    coarse = rng.random((4, 15, 20, 3))
    rgb = np.stack([np.clip(np.kron(c, np.ones((32, 32, 1))) * 255, 0, 255) for c in coarse]).astype(np.uint8)
    depth = rng.uniform(0.5, 9.5, (4, 480, 640)).astype(np.float32)
    members = {"eigen_test_rgb.npy": npy_bytes(rgb), "eigen_test_depth.npy": npy_bytes(depth),
               "eigen_test_crop.npy": npy_bytes(EIGEN_CROP_ARRAY)}
    folder = tmp_path_factory.mktemp("eigen")
    model_path = folder / "colour.keras"
    colour_depth_model().save(model_path)
    return write_zip(folder / "nyu_test.zip", members), model_path, rgb, depth


def evaluated(tmp_path, *argv):
    out = tmp_path / "e.json"
    evaluate.main([*argv, "--json", str(out)])
    return json.loads(out.read_text())


def test_reference_protocol_matches_the_authors_evaluation(tmp_path, eigen_fixture):
    zip_path, model_path, rgb, depth = eigen_fixture
    result = evaluated(tmp_path, "--model", str(model_path), "--data", str(zip_path), "--protocol", "reference")
    authors = authors_evaluation(keras.models.load_model(model_path), rgb, depth, EIGEN_CROP_ARRAY)
    assert result["protocol"] == "reference" and result["prediction_clip_m"] == [0.1, 10.0]
    for name in ("a1", "a2", "a3", "rmse", "log10"):  # symmetric in their arguments
        assert result["pooled"][name] == pytest.approx(authors[name], abs=1e-6), name
    assert result["pooled_reference_order"]["abs_rel"] == pytest.approx(authors["abs_rel"], abs=1e-6)
    by_ground_truth = authors_evaluation(keras.models.load_model(model_path), rgb, depth, EIGEN_CROP_ARRAY,
                                         divide_by="ground truth")
    assert result["pooled"]["abs_rel"] == pytest.approx(by_ground_truth["abs_rel"], abs=1e-6)
    assert abs(result["pooled"]["abs_rel"] - authors["abs_rel"]) > 0.01  # the two orders really differ


def test_paper_protocol_differs_exactly_by_its_floor_and_denominator(tmp_path, eigen_fixture):
    zip_path, model_path, rgb, depth = eigen_fixture
    paper = evaluated(tmp_path, "--model", str(model_path), "--data", str(zip_path))
    model = keras.models.load_model(model_path)
    with_paper_floor = authors_evaluation(model, rgb, depth, EIGEN_CROP_ARRAY, floor_m=0.4, divide_by="ground truth")
    assert paper["protocol"] == "paper" and paper["prediction_clip_m"] == [0.4, 10.0]
    for name, value in with_paper_floor.items():
        assert paper["pooled"][name] == pytest.approx(value, abs=1e-6), name
    # The floor matters on this model: the reference protocol's figures are not the paper protocol's.
    authors = authors_evaluation(model, rgb, depth, EIGEN_CROP_ARRAY)
    assert abs(authors["rmse"] - paper["pooled"]["rmse"]) > 1e-3
    assert "pooled_reference_order" not in paper


# ---------------------------------------------------------------------------------------------------------
# The contract: saved with our models, inferred for the authors' files
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kitti_model(tmp_path_factory):
    """A KITTI model (80 m cap) predicting 20 m everywhere, saved with its contract."""
    net = constant_network(20.0, KITTI)
    path = tmp_path_factory.mktemp("kitti") / "kitti_run.keras"
    training = {"steps": 50000, "epochs": 10, "best_val_delta1": 0.9, "smoke": False, "recipe": "paper"}
    save_model(net, path, model_contract(net, "kitti", KITTI, (352, 1216), False, training))
    return path


def test_contract_is_saved_and_read_back(kitti_model):
    contract = read_contract(kitti_model)
    assert (contract.dataset, contract.depth_range, contract.input_hw) == ("kitti", KITTI, (352, 1216))
    assert (contract.upsampling, contract.encoder, contract.decoder_width) == ("half_pixel", "tiny", 0.5)
    assert contract.training["steps"] == 50000 and contract.version == VERSION
    assert contract.git_commit == subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                                    text=True, check=True).stdout.strip()
    line = contract.describe()
    assert "kitti" in line and "0.8-80 m" in line and "352x1216" in line and "50000 steps" in line
    assert contract.warning() is None
    assert "smoke" in Contract(training={"steps": 6, "smoke": True}).warning()
    assert "only 200 steps" in Contract(training={"steps": 200, "smoke": False}).warning()
    with pytest.raises(TypeError):  # read-only: a model's facts are not changed by the code that reads them
        contract.training["steps"] = 1
    with pytest.raises(AttributeError):
        contract.dataset = "nyu"
    assert Contract.from_dict(contract.to_dict()) == contract  # what the file holds is the whole contract
    with zipfile.ZipFile(kitti_model) as archive:  # a plain zip member anyone can read
        assert json.loads(archive.read("densedepth.json"))["dataset"] == "kitti"


def test_kitti_model_gives_metres_on_the_80_m_scale_with_no_range_flag(tmp_path, kitti_model, capsys):
    picture = tmp_path / "road.png"
    Image.fromarray(np.full((64, 128, 3), 120, np.uint8)).save(picture)
    test_script.main(["--input", str(picture), "--model", str(kitti_model), "--output", str(tmp_path / "out"),
                      "--npy"])
    depth = np.load(tmp_path / "out" / "road_depth_m.npy")
    np.testing.assert_allclose(depth, 20.0, rtol=1e-4)  # read with NYU's 10 m it would be 2.5 m
    assert "contract: kitti, depth 0.8-80 m" in capsys.readouterr().out
    # An explicit flag still wins, with a warning that it contradicts the model.
    test_script.main(["--input", str(picture), "--model", str(kitti_model), "--output", str(tmp_path / "nyu"),
                      "--npy", "--depth-range", "nyu"])
    np.testing.assert_allclose(np.load(tmp_path / "nyu" / "road_depth_m.npy"), 2.5, rtol=1e-4)
    assert "warning: --depth-range nyu (0.4-10 m) overrides the 0.8-80 m range" in capsys.readouterr().out
    # evaluate.py on KITTI-layout data, no range flag: 20 m predictions.
    depth_png = np.zeros((100, 320), np.uint16)
    depth_png[60, 20:40] = 20 * 256
    Image.fromarray(np.zeros((100, 320, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(depth_png).save(tmp_path / "depth.png")
    (tmp_path / "split.txt").write_text("rgb.png depth.png\n")
    out = tmp_path / "pred.npz"
    evaluate.main(["--model", str(kitti_model), "--data", str(tmp_path / "split.txt"), "--save-predictions", str(out)])
    np.testing.assert_allclose(np.load(out)["00000"], 20.0, rtol=1e-4)


def test_authors_files_are_nyu_or_kitti_by_name_only(tmp_path):
    """Both released files have the January 2019 layout: a file not named *kitti* is NYU, assumed, and the
    line says so and names --depth-range kitti; each carries the size it was made for."""
    keras.utils.set_random_seed(4)
    released = create_model("tiny", weights=None, upsampling="align_corners")
    for name in ("densedepth.h5", "nyu.h5", "KITTI.h5"):
        write_keras2_h5(released, tmp_path / name)
    renamed, nyu, kitti = (read_contract(tmp_path / n) for n in ("densedepth.h5", "nyu.h5", "KITTI.h5"))
    assert (renamed.dataset, renamed.depth_range, renamed.input_hw) == ("nyu", NYU_REFERENCE, (480, 640))
    line = renamed.describe()
    assert "assumed nyu" in line and "--depth-range kitti" in line and "\n" not in line
    assert (nyu.dataset, nyu.assumed, nyu.upsampling) == ("nyu", "nyu from the file name", "align_corners")
    assert nyu.leaky_relu_after == ("convB",)
    assert (kitti.dataset, kitti.depth_range, kitti.input_hw) == ("kitti", KITTI, (384, 1248))
    assert kitti.fixed_input_hw() == (384, 1248) and nyu.fixed_input_hw() == (480, 640)
    assert renamed.fixed_input_hw(KITTI) == (384, 1248)  # --depth-range kitti: KITTI's size too
    assert Contract(depth_range=NYU, input_hw=(64, 96), reduced_input=True).fixed_input_hw() is None  # any size


def test_kitti_h5_sees_kitti_frames_at_384x1248_in_test_py_and_evaluate_py(tmp_path):
    """A 375x1242 frame goes through kitti.h5 at 384x1248 and its depth comes back at 375x1248: the same map
    as predicting by hand at that size, and measurably not the map at the frame's own size."""
    from depth import resize_depth
    from helpers import varied_small_model
    from pipeline import network_input

    net = varied_small_model(seed=6, upsampling="align_corners")
    write_keras2_h5(net, tmp_path / "kitti.h5")
    frame = np.random.default_rng(6).integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    frame[150:250, 300:700] = 240
    Image.fromarray(frame).save(tmp_path / "frame.png")
    test_script.main(["--input", str(tmp_path / "frame.png"), "--model", str(tmp_path / "kitti.h5"),
                      "--output", str(tmp_path / "out"), "--npy"])
    depth = np.load(tmp_path / "out" / "frame_depth_m.npy")

    def by_hand(hw):
        metres = network_depth_m(net, np.asarray(network_input(frame, hw))[None], depth_range=KITTI)[0]
        return resize_depth(metres, 375, 1242)

    np.testing.assert_allclose(depth, by_hand((384, 1248)), rtol=1e-4, atol=1e-3)
    assert depth.std() > 0.1 and np.abs(depth - by_hand((375, 1242))).mean() > 0.05 * depth.std()
    # evaluate.py: the same size, and its KITTI 80 m scale.
    depth_png = np.zeros((375, 1242), np.uint16)
    depth_png[200:360:3, 100:1100:3] = 20 * 256
    Image.fromarray(depth_png).save(tmp_path / "depth.png")
    (tmp_path / "split.txt").write_text("frame.png depth.png 721.5377\n")  # KITTI's camera: not rescaled
    out = tmp_path / "pred.npz"
    evaluate.main(["--model", str(tmp_path / "kitti.h5"), "--data", str(tmp_path / "split.txt"), "--no-flip",
                   "--save-predictions", str(out), "--json", str(tmp_path / "e.json")])
    np.testing.assert_allclose(np.load(out)["00000"], by_hand((384, 1248)), rtol=1e-4, atol=1e-3)
    assert json.loads((tmp_path / "e.json").read_text())["input_size"] == [384, 1248]


def test_a_model_saved_without_a_contract_still_loads(tmp_path):
    path = tmp_path / "old.keras"
    colour_depth_model().save(path)
    assert read_contract(path) == Contract()
    assert "no saved contract" in Contract().describe()


def test_recipes_build_the_papers_the_released_and_the_later_network():
    """--recipe paper: one LeakyReLU per block, half-pixel up-sampling; released (how nyu.h5 was made): the
    same activations with align_corners; reference (the authors' later code): a LeakyReLU after convA too."""
    import train
    from depth import NYU as nyu

    layouts = {}
    for recipe in ("paper", "released", "reference"):
        args = train.parse_args(["--recipe", recipe, "--encoder", "tiny", "--weights", "none"])
        model = train.build_model(args, nyu)
        contract = model_contract(model, "nyu", nyu, (64, 96))
        layouts[recipe] = (list(contract.leaky_relu_after), contract.upsampling, args.amsgrad, args.bs)
    assert layouts == {"paper": (["convB"], "half_pixel", False, 8),
                       "released": (["convB"], "align_corners", True, 8),
                       "reference": (["convA", "convB"], "half_pixel", True, 4)}
    assert {name: recipe.targets for name, recipe in RECIPES.items()} == {
        "paper": "paper", "released": "released", "reference": "paper"}
    assert len(train.recipe_callbacks(RECIPES["released"])) == 1


def test_released_targets_are_inverted_before_a_blurred_down_sampling_and_not_clipped():
    """A depth step from 0.2 m to 4 m: the paper clips 0.2 m to 0.4 m (y 25) and averages depth before
    inverting; the released code inverts first (y 50 on the near side) and blurs the step."""
    import tensorflow as tf

    from pipeline import network_pair

    class Dense:
        spec = NYU_SPEC

    depth = np.full((8, 8), 4.0, np.float32)
    depth[:, :3] = 0.2
    rgb = np.zeros((8, 8, 3), np.uint8)
    seed = tf.constant([0, 0], tf.int64)
    _, paper = network_pair(rgb, depth, (8, 8), Dense, seed, False, "paper")
    _, released = network_pair(rgb, depth, (8, 8), Dense, seed, False, "released")
    paper, released = np.asarray(paper)[..., 0], np.asarray(released)[..., 0]
    assert paper.max() == pytest.approx(25.0) and released.max() > 40.0
    assert paper[0, 3] == pytest.approx(2.5) and released[0, 3] == pytest.approx(2.5)  # far side: 10 / 4 m
    # Column 1 of the 4-wide target averages depths 0.2 and 4 m (paper) or their inverses (released).
    assert paper[0, 1] == pytest.approx(10 / 2.1, rel=1e-3) and released[0, 1] > 20.0


def test_reference_recipe_sets_the_authors_training():
    import train

    args = train.parse_args(["--recipe", "reference"])
    assert (args.amsgrad, args.bs, args.decoder_width) == (True, 4, 0.5)
    assert args.permute_prob == pytest.approx(5 / 14) == REFERENCE_PERMUTE_PROBABILITY
    explicit = train.parse_args(["--recipe", "reference", "--bs", "8"])
    assert explicit.bs == 8 and explicit.amsgrad  # a flag given wins over the recipe
    paper = train.parse_args([])
    assert (paper.amsgrad, paper.bs, paper.decoder_width, paper.permute_prob) == (False, 8, 1.0, 0.25)


@pytest.mark.parametrize("gain, expected_lr", [(0.001, [1e-4] * 5 + [9e-5] * 3), (0.02, [1e-4] * 8)])
def test_reference_recipe_lowers_the_rate_after_five_epochs_without_a_gain_of_0_01(gain, expected_lr):
    """The authors' schedule, driven by validation losses that fall by `gain` an epoch: a loss less than
    min_delta 0.01 under the best so far is no improvement, so after five epochs of 0.001 the rate is cut by
    0.7, but not under 9e-5; falls of 0.02 keep it. The paper's recipe has no schedule."""
    import train

    assert train.recipe_callbacks(RECIPES["paper"]) == []
    (schedule,) = train.recipe_callbacks(RECIPES["reference"])
    model = create_model("tiny", weights=None)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mae")
    schedule.set_model(model)
    schedule.on_train_begin()
    rates = []
    for epoch in range(8):
        schedule.on_epoch_end(epoch, {"val_loss": 1.0 - gain * epoch})
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    np.testing.assert_allclose(rates, expected_lr, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Registration: image and depth stay aligned to the pixel
# ---------------------------------------------------------------------------------------------------------

NEAR_M, SPAN_M = 0.5, 4.5  # depth = NEAR + SPAN * (column fraction) + SPAN * (row fraction)


def position_pair(height, width):
    """RGB whose red is the column and green the row (as fractions), and the depth those positions give."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.round(u[None, :] * 255)
    rgb[..., 1] = np.round(v[:, None] * 255)
    rgb[..., 2] = 128
    depth = NEAR_M + SPAN_M * u[None, :] + SPAN_M * v[:, None]
    return rgb, depth


def depth_from_colour(image):
    """The depth a position-encoding image implies at each pixel (image float in [0, 1])."""
    return NEAR_M + SPAN_M * image[..., 0] + SPAN_M * image[..., 1]


@pytest.fixture(scope="module")
def position_zip(tmp_path_factory):
    """An NYU-format zip of position-encoding pairs at an odd size: PNG RGB, 16-bit millimetre depth."""
    rgb, depth = position_pair(75, 101)
    members, rows = {}, {"train": [], "test": []}
    for split in rows:
        for i in range(2):
            stem = f"data/nyu2_{split}/{i:05d}"
            members[f"{stem}_colors.png"] = encoded(rgb)
            members[f"{stem}_depth.png"] = encoded(np.round(depth * 1000).astype(np.uint16))
            rows[split].append(f"{stem}_colors.png,{stem}_depth.png")
    for split in rows:
        members[f"data/nyu2_{split}.csv"] = ("\n".join(rows[split]) + "\n").encode()
    return write_zip(tmp_path_factory.mktemp("position") / "position.zip", members)


@pytest.mark.parametrize("input_hw", [(64, 96), (42, 58)])
def test_pipeline_keeps_image_and_depth_registered(position_zip, input_hw):
    dataset = open_dataset(str(position_zip))
    settings = PipelineSettings(input_hw, seed=1, permute_probability=0.0)
    images, targets = next(iter(pipeline(dataset, "train", 8, settings, training=True)))
    images, depth = images.numpy(), NYU.max_m / targets.numpy()[..., 0]
    h, w = depth.shape[1:]
    # The image at the target's resolution: 2x2 means of the network-sized image.
    small = images.reshape(len(images), h, 2, w, 2, 3).mean(axis=(2, 4))
    interior = np.s_[:, 1:-1, 1:-1]  # resize borders clamp the ramps
    error = np.abs(depth_from_colour(small) - depth)[interior]
    assert error.mean() < 0.03 and error.max() < 0.1
    # The batch holds mirrored and unmirrored pairs (red falls from left to right when mirrored).
    mirrored = small[:, h // 2, 1, 0] > small[:, h // 2, -2, 0]
    assert 0 < mirrored.sum() < len(mirrored)
    # The test has the power to see a mistake: the depth mirrored, or moved by one output pixel.
    assert np.abs(depth_from_colour(small) - depth[:, :, ::-1])[interior].mean() > 1.0
    assert np.abs(depth_from_colour(small)[:, :, 1:] - depth[:, :, :-1])[interior].mean() > 0.04


def test_evaluation_crop_keeps_prediction_and_ground_truth_registered():
    """A model that reads depth off the colour, and ground truth that is garbage outside the Eigen crop:
    only a crop that lands on the same pixels of both gives perfect metrics."""
    rgb, depth = position_pair(480, 640)
    outside = np.ones((480, 640), bool)
    outside[20:460, 24:616] = False
    ground_truth = np.where(outside, 9.9, depth).astype(np.float32)
    image = keras.Input((None, None, 3))
    half = keras.layers.AveragePooling2D(2)(image)
    depth_m = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant([[[[SPAN_M], [SPAN_M], [0.0]]]]),
                                  bias_initializer=keras.initializers.Constant(NEAR_M))(half)
    model = DepthEstimator.from_keras(keras.Model(image, keras.layers.Lambda(lambda d: NYU.max_m / d)(depth_m)))
    pairs = [("position", pair(rgb, ground_truth))]
    records, _ = evaluate.evaluate(model, pairs, evaluate.EvalSettings(flip=False))
    assert records[0]["pixels"] == 440 * 592
    assert records[0]["a1"] == 1.0 and records[0]["abs_rel"] < 0.005
    # Flip averaging mirrors back the mirrored prediction: still registered.
    flipped, _ = evaluate.evaluate(model, pairs, evaluate.EvalSettings(flip=True))
    assert flipped[0]["abs_rel"] < 0.005
    # The ground truth one pixel to the right is measurably worse: the check can fail.
    shifted, _ = evaluate.evaluate(model, [("shifted", pair(rgb, np.roll(ground_truth, 1, axis=1)))],
                                   evaluate.EvalSettings(flip=False))
    assert shifted[0]["abs_rel"] > 1.5 * records[0]["abs_rel"]
