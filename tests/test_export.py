"""export.py: every format round-trips, predicts what the Keras model predicts and keeps the contract.

A small random network (depth spread over 1-10 m, so a flipped, shifted or half-resolution output shows)
is exported once per format at an odd size, 65x97. Float formats must match Keras float32 within 1e-4 m
through both entry points; quantised files (slow tier: TFLite, ONNX Runtime and OpenVINO int8) within a
stated delta1 and at a stated size.
"""
import importlib.util
import json

import numpy as np
import pytest

import estimator
import evaluate
import export
from contract import tflite_metadata
from depth import NYU, inverse_depth_norm
from estimator import DepthEstimator
from helpers import load_test_script, network_depth_m, requires

test_script = load_test_script()

# Every test here exports or reads exports.
pytestmark = requires("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert")
HW = (65, 97)  # odd on both sides: the network's output is 33x49, not exactly half
FLOAT_FORMATS = {"savedmodel": "model_savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
if HAS_OPENVINO:  # requirements-openvino.txt; without it the OpenVINO cases are skipped, saying so
    FLOAT_FORMATS["openvino"] = "model.xml"
FORMAT_CASES = list(FLOAT_FORMATS) + ([] if HAS_OPENVINO else [pytest.param("openvino", marks=requires("openvino"))])


@pytest.fixture(scope="module")
def keras_model(contract_model, small_model):
    """(path, model, contract) of the small network saved with a synthetic-data contract trained at HW."""
    path, contract = contract_model
    assert contract.input_hw == HW
    return path, small_model, contract


@pytest.fixture(scope="module")
def exported(keras_model, tmp_path_factory):
    """{format: path} of the three float32 exports, written by export.main."""
    path = keras_model[0]
    folder = tmp_path_factory.mktemp("export")
    paths = {}
    for fmt, name in FLOAT_FORMATS.items():
        paths[fmt] = folder / name
        export.main(["--model", str(path), "--format", fmt, "--output", str(paths[fmt])])
    return paths


def pictures(n=3, seed=0):
    """uint8 RGB pictures at HW with structure (gradients and a bright block), not noise alone."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HW[0], 0:HW[1]]
    images = np.zeros((n, *HW, 3), np.uint8)
    for i in range(n):
        images[i, ..., 0] = (255 * cols / HW[1]).astype(np.uint8)
        images[i, ..., 1] = (255 * rows / HW[0]).astype(np.uint8)
        images[i, ..., 2] = rng.integers(0, 256, HW, dtype=np.uint8)
        images[i, 10 + 5 * i:30 + 5 * i, 20:50] = 250
    return images


def keras_metres(model, images):
    """The reference: Keras float32 output read as metres and resized as the depth entry point documents."""
    import tensorflow as tf

    output = np.asarray(model(images.astype(np.float32) / 255.0, training=False))
    return tf.image.resize(inverse_depth_norm(output, NYU), HW, method="bilinear").numpy()[..., 0]


@pytest.mark.parametrize("fmt", FORMAT_CASES)
def test_float_exports_predict_what_keras_predicts_through_both_entry_points(fmt, keras_model, exported):
    _, model, _ = keras_model
    loaded = estimator.load_exported(exported[fmt], threads=2)
    images = pictures()
    raw = DepthEstimator.load(exported[fmt], threads=2).network_depth(images)  # the raw entry point
    reference = network_depth_m(model, images)
    assert raw.shape == (3, 33, 49) and reference.std() > 0.5  # depth varies: a shift or flip would show
    # float32 in another order of operations (OpenVINO's fused kernels): 1e-4 m, or 3e-5 of the depth
    np.testing.assert_allclose(raw, reference, rtol=3e-5, atol=1e-4)
    metres = loaded.depth(images)
    assert metres.shape == (3, *HW) and metres.dtype == np.float32
    np.testing.assert_allclose(metres, keras_metres(model, images), rtol=3e-5, atol=1e-4)
    assert np.abs(metres - metres[:, :, ::-1]).max() > 0.1  # not symmetric: a mirrored output would fail
    one = loaded.depth(images[1:2])  # any batch size, each picture on its own
    assert np.abs(one[0] - metres[1]).max() < 1e-4


@pytest.mark.parametrize("fmt", FORMAT_CASES)
def test_every_export_carries_the_contract_with_its_own_facts(fmt, keras_model, exported):
    _, _, contract = keras_model
    loaded = estimator.load_exported(exported[fmt])
    saved = loaded.contract
    for key in ("dataset", "depth_range", "input_hw", "upsampling", "decoder_width", "leaky_relu_after", "training"):
        assert getattr(saved, key) == getattr(contract, key), key
    assert saved.export["format"] == fmt and saved.export["quantize"] == "none"
    assert saved.export["input_hw"] == list(HW) and loaded.input_hw == HW
    # Readable without this project: the format's own place for metadata.
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(exported[fmt])).metadata_props}
        assert json.loads(props["densedepth_contract"])["depth_range_m"] == [0.4, 10.0]
    elif fmt == "savedmodel":
        assert json.loads((exported[fmt] / "assets" / "densedepth.json").read_text())["dataset"] == "synthetic"
    elif fmt == "openvino":
        import openvino

        rt_info = openvino.Core().read_model(str(exported[fmt])).get_rt_info("densedepth_contract").astype(str)
        assert json.loads(rt_info)["export"]["compute"] == "float32"
    else:
        assert json.loads(tflite_metadata(exported[fmt], "densedepth_contract"))["input_hw"] == list(HW)


def test_depth_entry_point_agrees_with_test_py_inside_the_border(keras_model, exported):
    """test.py resizes with skimage (mirrored border); the entry point with TensorFlow (clamped border)."""
    _, model, _ = keras_model
    image = pictures(1)[0]
    from_test_py = DepthEstimator.from_keras(model, depth_range=NYU).predict(image, max_side=0)
    served = estimator.load_exported(exported["onnx"]).depth(image[None])[0]
    assert np.abs(served - from_test_py)[1:-1, 1:-1].max() < 1e-4


def test_evaluate_and_test_py_take_exported_models_and_give_keras_figures(keras_model, exported, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path / "cache"))
    results = {}
    for name, path in (("keras", keras_model[0]), ("tflite", exported["tflite"]), ("onnx", exported["onnx"])):
        results[name] = evaluate.main(["--model", str(path), "--data", "synthetic:2:3", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "exported as tflite (none) for 65x97 pictures" in printed
    assert printed.count("network input 65x97") == 3  # the contract's training size, then the export's
    for name in ("tflite", "onnx"):
        for metric in ("a1", "abs_rel", "rmse"):
            assert results[name]["pooled"][metric] == pytest.approx(results["keras"]["pooled"][metric], abs=1e-4)
    picture = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(pictures(1, seed=3)[0]).resize((120, 80)).save(picture)  # not the export's size
    test_script.main(["--input", str(picture), "--model", str(exported["savedmodel"]), "--output",
                      str(tmp_path / "out"), "--npy"])
    depth = np.load(tmp_path / "out" / "p_depth_m.npy")
    assert depth.shape == (80, 120) and NYU.min_m <= depth.min() < depth.max() <= NYU.max_m


def test_an_export_refuses_another_size_with_one_line(exported, monkeypatch, tmp_path):
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--model", str(exported["onnx"]), "--data", "synthetic:2:3", "--input-size", "64x96"])
    assert str(exit_info.value) == (f"error: {exported['onnx']}: takes 65x97 pictures only; drop --input-size "
                                    "64x96 or export it again at that size")
    loaded = estimator.load_exported(exported["tflite"])
    with pytest.raises(Exception, match="exported for 65x97 pictures, given 64x96"):
        loaded(np.zeros((1, 64, 96, 3), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize, min_saving, min_delta1", [
    ("tflite", "float16", 0.45, 0.999), ("tflite", "dynamic", 0.65, 0.99), ("tflite", "int8", 0.65, 0.95),
    ("onnx", "int8", 0.3, 0.95),  # QDQ adds two named nodes per tensor: on a network this small, a third of it
    # the .bin holds int8 kernels (a quarter); the .xml grows by a FakeQuantize node per quantised tensor
    pytest.param("openvino", "int8", 0.5, 0.95, marks=requires("openvino", "nncf"))])
def test_quantised_exports_are_smaller_and_close_to_keras(fmt, quantize, min_saving, min_delta1, keras_model,
                                                          exported, tmp_path, monkeypatch):
    """Size: the file shrinks by most of what storing the convolution kernels in 16 bits (half their float32
    bytes) or 8 bits (three quarters) saves; the rest of a file (graph, metadata) stays. Accuracy: delta1 of
    the quantised depth against Keras float32's."""
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(tmp_path / "cache"))
    path, model, _ = keras_model
    output = tmp_path / f"{quantize}{export.SUFFIXES[fmt]}"
    export.main(["--model", str(path), "--format", fmt, "--quantize", quantize, "--data", "synthetic:6:2",
                 "--calibration", "6", "--output", str(output)])
    kernel_bytes = 4 * sum(int(np.prod(layer.kernel.shape)) for layer in model.layers if hasattr(layer, "kernel"))
    saving = export.folder_size(exported[fmt]) - export.folder_size(output)
    assert saving > min_saving * kernel_bytes, (saving, kernel_bytes)
    loaded = estimator.load_exported(output)
    assert loaded.contract.export["quantize"] == quantize
    images = pictures(4, seed=5)
    reference, got = keras_metres(model, images), loaded.depth(images)
    delta1 = np.mean(np.maximum(got / reference, reference / got) < 1.25)
    assert delta1 >= min_delta1, delta1
    assert np.abs(got - reference).mean() > 1e-6  # it did quantise


def test_the_litert_example_runs_without_keras_or_this_project(exported, tmp_path):
    """examples/tflite_without_tensorflow.py, as docs/deployment.md shows it, in a fresh process that cannot
    import Keras, TensorFlow or any module of this repository."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    example = repo / "examples" / "tflite_without_tensorflow.py"
    assert "examples/tflite_without_tensorflow.py" in (repo / "docs" / "deployment.md").read_text()
    blocked = ("keras", "tensorflow", "estimator", "model", "contract", "utils", "depth")
    blocker = f"import runpy, sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n" \
              f"sys.argv = [{str(example)!r}, {str(exported['tflite'])!r}, " \
              f"{str(repo / 'examples' / 'chelsea.png')!r}]\n" \
              f"runpy.run_path({str(example)!r}, run_name='__main__')\n"
    result = subprocess.run([sys.executable, "-c", blocker], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r"depth \(65, 97\): nearest ([\d.]+) m, farthest ([\d.]+) m", result.stdout)
    assert match, result.stdout
    assert 0.4 <= float(match.group(1)) < float(match.group(2)) <= 10.0


@pytest.fixture(scope="module")
def every_format(keras_model, exported, tmp_path_factory):
    """{format: path} of one network in every format DepthEstimator.load takes."""
    from keras2_h5 import write_keras2_h5

    h5 = tmp_path_factory.mktemp("authors") / "nyu.h5"
    write_keras2_h5(keras_model[1], h5)
    return {"keras": keras_model[0], "h5": h5, **exported}


@pytest.mark.parametrize("fmt", ["keras", "h5", *FORMAT_CASES])
def test_depth_estimator_gives_test_py_files_for_every_format(fmt, every_format, tmp_path, capsys):
    """The Python API in one line per format: a picture path, a PIL image and an array give test.py's
    NAME_depth_m.npy for the same file, at the picture's size, and load() prints nothing."""
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.fromarray(pictures(1, seed=7)[0]).resize((110, 70)).save(picture)  # neither the export's size nor HW
    capsys.readouterr()
    depth_estimator = DepthEstimator.load(every_format[fmt])
    depth_m = depth_estimator.predict(picture)
    assert capsys.readouterr().out == ""  # the library returns values; the scripts print
    assert depth_m.shape == (70, 110) and depth_m.dtype == np.float32 and depth_m.std() > 0.05
    test_script.main(["--input", str(picture), "--model", str(every_format[fmt]), "--output", str(tmp_path / "o"),
                      "--npy"])
    np.testing.assert_allclose(depth_m, np.load(tmp_path / "o" / "p_depth_m.npy"), rtol=1e-5, atol=1e-5)
    with Image.open(picture) as image:
        np.testing.assert_allclose(depth_estimator.predict(image), depth_m, rtol=1e-5, atol=1e-5)
        array = np.asarray(image.convert("RGB"))
    batch = depth_estimator.predict(np.stack([array, array[:, ::-1]]))
    assert batch.shape == (2, 70, 110)
    np.testing.assert_allclose(batch[0], depth_m, rtol=1e-5, atol=1e-5)
    flipped = depth_estimator.predict(array, flip=True)  # the paper's mirror: the mean with the mirrored map
    np.testing.assert_allclose(flipped, 0.5 * (batch[0] + batch[1][:, ::-1]), rtol=1e-4, atol=1e-4)
    contract = depth_estimator.contract
    assert contract.dataset == ("nyu" if fmt == "h5" else "synthetic")
    assert (contract.export is not None) == (fmt in FLOAT_FORMATS)
    assert depth_estimator.input_hw == {"keras": None, "h5": (480, 640)}.get(fmt, HW)
    assert (depth_estimator.keras_model is not None) == (fmt in ("keras", "h5"))
    assert depth_estimator.warnings == ()


def test_depth_estimator_warnings_and_range_are_returned_not_printed(keras_model, tmp_path, capsys):
    from contract import save_model
    from depth import KITTI

    old = tmp_path / "old.keras"
    keras_model[1].save(old)  # saved before contracts existed
    estimator_ = DepthEstimator.load(old)
    assert estimator_.depth_range == NYU and len(estimator_.warnings) == 2
    assert "carries no depth range" in estimator_.warnings[0] and "NYU's 0.4-10 m" in estimator_.warnings[0]
    assert "records no training camera: assuming NYU Depth v2's Kinect" in estimator_.warnings[1]
    overridden = DepthEstimator.load(keras_model[0], depth_range="kitti")
    assert overridden.depth_range == KITTI and "overrides the 0.4-10 m range" in overridden.warnings[0]
    np.testing.assert_allclose(overridden.predict(pictures(1)[0]), 8 * DepthEstimator.load(keras_model[0]).predict(
        pictures(1)[0]), rtol=1e-4, atol=1e-3)  # y = max_m / depth: 80 m reads the same output 8x deeper
    import dataclasses

    smoke = tmp_path / "smoke.keras"
    save_model(keras_model[1], smoke, dataclasses.replace(keras_model[2], training={"steps": 6, "smoke": True}))
    assert "--smoke run's model" in DepthEstimator.load(smoke).warnings[0]
    assert capsys.readouterr().out == ""
