"""Bad inputs to every script: each gives its exit code and one line naming the file and the problem.

One table, BAD_INPUTS: (script, arguments, expected exit code, expected words). Each row runs the script's
main(argv) in this process and checks the code, that the message is one line, the words, and that no
traceback shows. Read-only and full output places are tmpfs mounts (`mount -t tmpfs -o ro`), which stop
writes even for root; where this process cannot mount, those rows are skipped with the reason.
Ctrl-C and SIGTERM need a real process: those tests are slow.
"""
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import data
import evaluate
import export
import train
from datagen import eigen_members, encoded, npy_bytes, nyu_members, write_zip
from helpers import load_test_script, requires
from loss import training_metrics

test_script = load_test_script()

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"train.py": train, "data.py": data, "test.py": test_script, "evaluate.py": evaluate, "export.py": export}
SMALL = ["--encoder", "tiny", "--weights", "none", "--input-size", "64x96", "--bs", "2", "--epochs", "1",
         "--steps-per-epoch", "2", "--val-samples", "2"]
# {name} in the arguments is a path from the `places` fixture.
BAD_INPUTS = [
    # train.py: the cases
    ("train.py", ["--data", "{zero_zip}", *SMALL, "--run-dir", "{tmp}/runs"], 1, ["nyu2_train", "no valid depth"]),
    ("train.py", ["--init", "{truncated_keras}", *SMALL, "--data", "{good_zip}", "--run-dir", "{tmp}/runs"], 1,
     ["truncated.keras", "not a complete .keras zip"]),
    ("train.py", [*SMALL, "--decoder-width", "0", "--data", "{good_zip}", "--run-dir", "{tmp}/runs"], 1,
     ["decoder_width must be in (0, 4]"]),
    ("train.py", [*SMALL, "--data", "{good_zip}", "--run-dir", "{ro}/runs"], 1, ["cannot write", "Read-only"]),
    ("train.py", [*SMALL, "--data", "{good_zip}", "--run-dir", "{full}"], 1, ["MiB free"]),
    # train.py: handled before
    ("train.py", ["--data", "{tmp}/missing.zip", "--run-dir", "{tmp}/runs"], 1, ["unknown --data", "missing.zip"]),
    ("train.py", ["--data", "nyu", "--run-dir", "{tmp}/runs"], 1, ["nyu_data.zip: not found", "--data synthetic"]),
    ("train.py", ["--weights", "none", "--run-dir", "{tmp}/runs"], 1, ["nyu_data.zip: not found", "--data synthetic"]),
    ("train.py", ["--init", "resume", "--run-dir", "{tmp}/no_runs"], 1, ["no run to resume"]),
    ("train.py", ["--init", "resume", "--run-dir", "{tmp}", "--name", "nope"], 1, ["no checkpoint to resume"]),
    ("train.py", ["--data", "{corrupt_zip}", *SMALL, "--run-dir", "{tmp}/runs"], 1,
     ["scene_1/3.jpg: cannot decode image", "row 4", "--skip-bad"]),
    ("train.py", ["--data", "{missing_row_zip}", "--run-dir", "{tmp}/runs"], 1, ["nyu2_train.csv row 2", "not found"]),
    ("train.py", ["--data", "synthetic:0:5", "--run-dir", "{tmp}/runs"], 1, ["at least one training"]),
    ("train.py", ["--bs", "0"], 2, ["--bs must be at least 1"]),
    ("train.py", ["--lr", "-1"], 2, ["--lr must be a positive number"]),
    ("train.py", ["--input-size", "63x64"], 2, ["must be even"]),
    ("train.py", ["--encoder", "resnet50"], 2, ["invalid choice"]),
    ("train.py", ["--permute-prob", "2"], 2, ["--permute-prob must be in [0, 1]"]),
    # data.py
    ("data.py", ["--make-synthetic", "{tmp}/s.zip", "--train", "0", "--test", "2"], 2,
     ["--train and --test", "at least 1"]),
    ("data.py", ["--make-synthetic", "{ro}/s.zip", "--train", "1", "--test", "1"], 1, ["s.zip: cannot write"]),
    ("data.py", ["--make-synthetic", "{full}/s.zip", "--train", "1", "--test", "1"], 1, ["s.zip", "MiB free"]),
    ("data.py", ["--data", "{good_zip}", "--show", "{ro}/pairs.png"], 1, ["pairs.png: cannot write"]),
    ("data.py", ["--data", "{tmp}/missing"], 1, ["unknown --data"]),
    ("data.py", ["--data", "{empty_dir}"], 1, ["not a dataset"]),
    ("data.py", ["--data", "{empty_csv_zip}"], 1, ["nyu2_train.csv: empty"]),
    ("data.py", ["--data", "{not_a_zip}"], 1, ["not a readable zip archive"]),
    ("data.py", ["--data", "imagenet"], 1, ["unknown --data 'imagenet'"]),
    ("data.py", ["--data", "synthetic:x:1"], 1, ["synthetic:TRAIN:TEST"]),
    ("data.py", ["--data", "{other_crop_eigen_zip}"], 1,
     ["eigen_test_crop.npy holds [0, 479, 0, 639], not the Eigen crop"]),
    ("data.py", ["--data", "{wide_focal_zip}"], 1,
     ["nyu2_train.csv row 1: the third field, the focal length in pixels, is 'wide'"]),
    ("data.py", [], 2, ["nothing to do"]),
    # test.py
    ("test.py", ["--input", "{picture}", "--model", "{model}", "--output", "{ro}"], 1, ["cannot write", "Read-only"]),
    ("test.py", ["--input", "{picture}", "--model", "{model}", "--output", "{ro}/sub"], 1, ["sub: cannot write"]),
    ("test.py", ["--input", "{picture}", "--model", "{model}", "--output", "{full}"], 1, ["MiB free"]),
    ("test.py", ["--input", "{picture}", "--model", "{model}", "--output", "{picture}"], 1, ["not a folder"]),
    ("test.py", ["--input", "{tmp}/nowhere/*.png", "--output", "{tmp}/out"], 1, ["no images found in"]),
    ("test.py", ["--input", "{picture}", "--model", "{tmp}/missing.keras"], 1, ["missing.keras: no such model file"]),
    ("test.py", ["--input", "{picture}", "--model", "{truncated_keras}", "--output", "{tmp}/out"], 1,
     ["truncated.keras: not a readable Keras model file", "truncated or corrupt"]),
    ("test.py", ["--input", "{picture}", "--model", "{not_a_model_h5}", "--output", "{tmp}/out"], 1,
     ["not_a_model.h5: no model_config"]),
    ("test.py", ["--input", "{picture}", "--model", "{weights_only_h5}", "--output", "{tmp}/out"], 1,
     ["weights_only.h5: no model_config"]),
    ("test.py", ["--input", "{picture}", "--model", "{tmp}/nope.h5", "--output", "{tmp}/out"], 1,
     ["nope.h5: no such model file"]),
    ("test.py", ["--input", "{picture}", "--model", "{corrupt_h5}", "--output", "{tmp}/out"], 1,
     ["corrupt.h5: not an HDF5 file"]),
    ("test.py", ["--input", "{picture}", "--model", "{not_a_zip_keras}", "--output", "{tmp}/out"], 1,
     ["not_a_zip.keras: not a readable Keras model file"]),
    ("test.py", ["--input", "{corrupt_png}", "--model", "{model}", "--output", "{tmp}/out_none"], 1,
     ["1 of 1 inputs could not be used", "corrupt.png: cannot read image"]),
    ("test.py", ["--fx", "0"], 2, ["--fx must be positive, got 0.0"]),
    ("test.py", ["--fy", "-3"], 2, ["--fy must be positive, got -3.0"]),
    ("test.py", ["--depth-range", "moon"], 2, ["argument --depth-range: invalid choice: 'moon'"]),
    ("test.py", ["--fov", "190"], 2, ["--fov must be between 0 and 180 degrees"]),
    ("test.py", ["--fx", "300", "--focal-35mm", "26"], 2,
     ["--fx and --focal-35mm each give the focal length: pass one"]),
    ("test.py", ["--focal-35mm", "-3"], 2, ["--focal-35mm must be positive"]),
    ("evaluate.py", ["--data", "synthetic:2:2:fwide"], 1, ["expected :fSCALE or :fLOW-HIGH"]),
    ("train.py", ["--canonical-focal", "50"], 2, ["--canonical-focal is a focal length over the picture's width"]),
    ("test.py", ["--max-side", "8"], 2, ["--max-side must be 0 or at least 32, got 8"]),
    # evaluate.py
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "{model}", "--json", "{ro}/e.json"], 1,
     ["e.json: cannot write"]),
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "{model}", "--json", "{full}/e.json"], 1, ["MiB free"]),
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "{model}", "--per-image", "{ro}/p.csv"], 1,
     ["p.csv: cannot write"]),
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "{model}", "--save-samples", "{ro}/s"], 1,
     ["s: cannot write"]),
    ("evaluate.py", ["--data", "{holes_eigen_zip}", "--model", "{model}", "--input-size", "64x96", "--no-flip"], 1,
     ["none of the 2 images has valid ground truth"]),
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "{truncated_keras}"], 1, ["not a complete .keras zip"]),
    ("evaluate.py", ["--data", "{good_zip}", "--model", "{model}", "--crop", "garg"], 1,
     ["the garg crop is not defined for NYU Depth v2: choose one of none, eigen"]),
    ("evaluate.py", ["--data", "nyu_test"], 1, ["nyu_test.zip: not found"]),
    ("evaluate.py", ["--data", "missing.zip", "--model", "{model}"], 1, ["missing.zip"]),
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "missing.keras"], 1, ["missing.keras: no such model file"]),
    ("evaluate.py", ["--bs", "0"], 2, ["--bs must be at least 1"]),
    ("evaluate.py", ["--limit", "0"], 2, ["--limit must be at least 1"]),
    ("evaluate.py", ["--samples", "0"], 2, ["--samples must be at least 1"]),
    ("evaluate.py", ["--input-size", "96"], 2, ["--input-size"]),
    ("evaluate.py", ["--input-size", "16x128"], 2, ["--input-size"]),
    ("evaluate.py", ["--input-size", "axb"], 2, ["--input-size"]),
    ("evaluate.py", ["--protocol", "reference", "--no-flip"], 2,
     ["--protocol reference fixes flip on", "drop --no-flip"]),
    ("evaluate.py", ["--data", "{eigen_zip}", "--model", "{corrupt_onnx}"], 1,
     ["corrupt.onnx: not a readable ONNX model"]),
    ("evaluate.py", ["--threads", "0"], 2, ["--threads must be at least 1"]),
    # exported models in test.py and evaluate.py
    ("test.py", ["--input", "{picture}", "--model", "{corrupt_tflite}", "--output", "{tmp}/out"], 1,
     ["corrupt.tflite: not a readable TFLite model"]),
    ("test.py", ["--input", "{picture}", "--model", "{tmp}/missing.tflite", "--output", "{tmp}/out"], 1,
     ["missing.tflite: no such model file or folder"]),
    ("test.py", ["--input", "{picture}", "--model", "{empty_dir}", "--output", "{tmp}/out"], 1,
     ["empty: a folder, but not a SavedModel"]),
    ("test.py", ["--input", "{picture}", "--model", "{foreign_onnx}", "--output", "{tmp}/out"], 1,
     ["foreign.onnx: carries no DenseDepth contract"]),
    ("test.py", ["--input", "{picture}", "--model", "{foreign_onnx}", "--precision", "bfloat16"], 1,
     ["exported at", "drop --precision bfloat16"]),
    # export.py
    ("export.py", ["--model", "{model}", "--format", "onnx", "--quantize", "float16", "--output", "{tmp}/m.onnx"], 2,
     ["--quantize float16: --format onnx takes none, int8"]),
    ("export.py", ["--model", "{model}", "--format", "openvino", "--output", "{tmp}/m.onnx"], 2,
     ["m.onnx: a openvino file ends in .xml"]),
    ("export.py", ["--model", "{model}", "--format", "tflite", "--output", "{tmp}/m.onnx"], 2, ["ends in .tflite"]),
    ("export.py", ["--model", "{model}", "--format", "tflite", "--calibration", "0", "--output", "{tmp}/m.tflite"], 2,
     ["--calibration must be at least 1"]),
    ("export.py", ["--model", "{truncated_keras}", "--format", "onnx", "--output", "{tmp}/m.onnx"], 1,
     ["truncated.keras", "not a complete .keras zip"]),
    ("export.py", ["--model", "{tmp}/missing.keras", "--format", "onnx", "--output", "{tmp}/m.onnx"], 1,
     ["missing.keras: no such model file"]),
    ("export.py", ["--model", "{model}", "--format", "tflite", "--output", "{corrupt_tflite}"], 1,
     ["corrupt.tflite: already exists"]),
    ("export.py", ["--model", "{model}", "--format", "savedmodel", "--output", "{ro}/sm"], 1, ["sm: cannot write"]),
    ("export.py", ["--model", "{model}", "--format", "tflite", "--quantize", "int8", "--data", "{tmp}/nothing",
                   "--output", "{tmp}/m.tflite"], 1, ["unknown --data", "nothing"]),
]


def _mount(folder, options):
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                            text=True)
    return None if result.returncode == 0 else (result.stderr.strip() or f"mount exited {result.returncode}")


@pytest.fixture(scope="module")
def places(tmp_path_factory, small_model_path):
    """{name: path} of every input the table names, and the read-only / full tmpfs mounts when possible."""
    import shutil

    tmp = tmp_path_factory.mktemp("bad")
    hw = (64, 96)
    paths = {"tmp": tmp}
    paths["good_zip"] = write_zip(tmp / "good.zip", nyu_members(4, 2, hw))
    paths["zero_zip"] = write_zip(tmp / "zero.zip", nyu_members(4, 2, hw, train_depth_u8=0, test_depth_mm=0))
    members = nyu_members(4, 2, hw)
    members["data/nyu2_train/scene_1/3.jpg"] = b"not a JPEG"
    paths["corrupt_zip"] = write_zip(tmp / "corrupt.zip", members)
    members = nyu_members(4, 2, hw)
    del members["data/nyu2_train/scene_1/1.png"]
    paths["missing_row_zip"] = write_zip(tmp / "missing_row.zip", members)
    members = nyu_members(4, 2, hw)
    members["data/nyu2_train.csv"] = b"\n"
    paths["empty_csv_zip"] = write_zip(tmp / "empty_csv.zip", members)
    paths["empty_dir"] = tmp / "empty"
    paths["empty_dir"].mkdir()
    paths["not_a_zip"] = tmp / "not_a.zip"
    paths["not_a_zip"].write_bytes(b"this is no zip archive")
    members, _, _ = eigen_members()
    members["eigen_test_crop.npy"] = npy_bytes(np.array([0, 479, 0, 639]))
    (tmp / "other_crop").mkdir()
    paths["other_crop_eigen_zip"] = write_zip(tmp / "other_crop" / "nyu_test.zip", members)
    paths["wide_focal_zip"] = write_zip(tmp / "wide_focal.zip", {
        "data/nyu2_train/a.png": encoded(np.zeros((8, 8, 3), np.uint8)),
        "data/nyu2_train/a_d.png": encoded(np.full((8, 8), 30, np.uint8)),
        "data/nyu2_train.csv": b"data/nyu2_train/a.png,data/nyu2_train/a_d.png,wide\n"})
    paths["picture"] = tmp / "picture.png"
    paths["picture"].write_bytes(encoded(np.full((64, 96, 3), 120, np.uint8)))
    paths["corrupt_png"] = tmp / "corrupt.png"
    paths["corrupt_png"].write_bytes(b"\x89PNG\r\n\x1a\n broken")

    eigen, rgb, depth = eigen_members(n=2)
    paths["eigen_zip"] = write_zip(tmp / "eigen.zip", eigen)
    holes = dict(eigen, **{"eigen_test_depth.npy": npy_bytes(np.zeros_like(depth))})
    paths["holes_eigen_zip"] = write_zip(tmp / "holes_eigen.zip", holes)
    one_hole = depth.copy()
    one_hole[0] = 0.0
    paths["one_hole_eigen_zip"] = write_zip(tmp / "one_hole_eigen.zip",
                                            dict(eigen, **{"eigen_test_depth.npy": npy_bytes(one_hole)}))

    paths["model"] = tmp / "tiny.keras"
    shutil.copy(small_model_path, paths["model"])
    paths["truncated_keras"] = tmp / "truncated.keras"
    paths["truncated_keras"].write_bytes(paths["model"].read_bytes()[: paths["model"].stat().st_size // 2])
    paths["not_a_model_h5"] = tmp / "not_a_model.h5"
    with h5py.File(paths["not_a_model_h5"], "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    paths["weights_only_h5"] = tmp / "weights_only.h5"
    with h5py.File(paths["weights_only_h5"], "w") as f:
        f.attrs["layer_names"] = [b"conv2"]
    paths["corrupt_h5"] = tmp / "corrupt.h5"
    paths["corrupt_h5"].write_bytes(b"\x89HDF\r\n junk" * 100)
    paths["not_a_zip_keras"] = tmp / "not_a_zip.keras"
    paths["not_a_zip_keras"].write_bytes(b"PK\x03\x04 not really a zip")

    paths["corrupt_tflite"] = tmp / "corrupt.tflite"
    paths["corrupt_tflite"].write_bytes(b"TFL3 but nothing after it" * 10)
    paths["corrupt_onnx"] = tmp / "corrupt.onnx"
    paths["corrupt_onnx"].write_bytes(b"\x08\x07 not a protobuf of a model")
    paths["foreign_onnx"] = tmp / "foreign.onnx"
    if importlib.util.find_spec("onnx"):  # else the rows that use it skip
        paths["foreign_onnx"].write_bytes(foreign_onnx_model())

    reasons = {}
    for name, options in (("ro", "ro,size=1m"), ("full", "size=1m")):
        reasons[name] = _mount(tmp / name, options)
        paths[name] = tmp / name
    paths["mount_errors"] = reasons
    yield paths
    for name, reason in reasons.items():
        if reason is None:
            subprocess.run(["umount", str(tmp / name)], check=False)


def foreign_onnx_model():
    """The bytes of a valid ONNX model that export.py did not write (an identity, no contract)."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [value], [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def run_main(script, argv, capsys):
    """(exit code, message, all output) of script's main(argv) run here; SystemExit("error: ...") is code 1."""
    code = 0
    try:
        SCRIPTS[script].main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    out = capsys.readouterr()
    message = out.err.strip().splitlines()[-1] if out.err.strip() else ""
    if isinstance(code, str):
        code, message = 1, code
    return code or 0, message, out.out + out.err + message


@pytest.mark.parametrize("script, argv, code, words", BAD_INPUTS,
                         ids=[f"{row[0]}:{' '.join(row[1])[:60]}" for row in BAD_INPUTS])
def test_bad_input(script, argv, code, words, places, capsys, monkeypatch):
    monkeypatch.chdir(places["tmp"])  # no nyu.h5, nyu_data.zip or runs/ here
    for mount in ("ro", "full"):
        if any(f"{{{mount}}}" in a for a in argv) and places["mount_errors"][mount]:
            pytest.skip(f"cannot mount a {mount} tmpfs here: {places['mount_errors'][mount]}")
    if script == "export.py" or any(f"_{kind}}}" in a for a in argv for kind in ("onnx", "tflite")):
        requires_export = requires("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert")
        if requires_export.args[0]:
            pytest.skip(requires_export.kwargs["reason"])
    before = set(places["tmp"].rglob("*"))
    argv = [a.format(**places) for a in argv]
    got_code, message, output = run_main(script, argv, capsys)
    assert got_code == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "\n" not in message and "error: " in message, output[-3000:]
    for word in words:
        assert word in message, message
    # A failure leaves nothing behind: no run folder, no output folder, no partial file.
    left = {p for p in set(places["tmp"].rglob("*")) - before if not p.name.startswith("__pycache__")}
    assert not left, sorted(left)


# ---------------------------------------------------------------------------------------------------------
# Bad inputs a row cannot hold: a patched default, the environment, a function called directly
# ---------------------------------------------------------------------------------------------------------


def test_no_model_anywhere_is_a_one_line_error(places, tmp_path, monkeypatch):
    import estimator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimator, "BUILTIN_MODEL", tmp_path / "models" / "missing.keras")
    with pytest.raises(SystemExit, match=r"^error: no model given.*pass --model nyu.*train\.py") as exit_info:
        evaluate.main(["--data", str(places["eigen_zip"])])
    assert "\n" not in str(exit_info.value)


def test_model_by_name_offline_is_one_line_within_seconds(tmp_path, monkeypatch):
    """Nothing listens on port 1: the same failure as no network, without reaching for one (an address that
    does not answer at all waits legacy.DOWNLOAD_TIMEOUT_S, 15 s, at most)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("DENSEDEPTH_MODEL_MIRROR", "http://127.0.0.1:1")
    with pytest.raises(SystemExit) as exit_info:
        test_script.main(["--input", str(REPO / "examples"), "--model", "nyu", "--output", str(tmp_path / "out")])
    message = str(exit_info.value)
    assert message.startswith("error: cannot fetch the authors' nyu.h5 from http://127.0.0.1:1/nyu.h5 (")
    assert "\n" not in message and "put it at" in message and "--model PATH" in message


def test_multi_worker_under_jax_is_one_line(script_env, tmp_path):
    """TF_CONFIG under KERAS_BACKEND=jax (a real process: the backend is chosen at import): one line, and
    nothing written."""
    tf_config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    env = {**script_env, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CONFIG": json.dumps(tf_config)}
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--smoke", "--run-dir", str(tmp_path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "error: " in last and "multi-worker training (TF_CONFIG) needs the TensorFlow backend" in last, last
    assert not any(tmp_path.iterdir())


def test_bad_model_arguments_give_clear_errors(tmp_path):
    from model import create_model
    from utils import InputError

    with pytest.raises(InputError, match="unknown encoder 'resnet50'"):
        create_model("resnet50", weights=None)
    with pytest.raises(InputError, match="decoder_width"):
        create_model(weights=None, decoder_width=0)
    with pytest.raises(InputError, match="encoder weights file not found"):
        create_model(weights=str(tmp_path / "missing.h5"))


def test_load_images_reports_unreadable_files_by_name(tmp_path):
    from PIL import Image

    from helpers import load_images
    from utils import InputError, load_image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match=r"broken\.png: cannot read image"):
        load_images([good, bad])
    with pytest.raises(InputError, match=r"absent\.jpg: no such file"):
        load_image(tmp_path / "absent.jpg")
    assert len(load_images([good, good])) == 2


def test_predict_rejects_bad_images(small_model):
    from estimator import DepthEstimator
    from utils import InputError

    estimator = DepthEstimator.from_keras(small_model)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        estimator.predict(np.full((1, 4, 4, 3), 3.0, np.float32))
    with pytest.raises(InputError, match="RGB"):
        estimator.predict(np.zeros((1, 4, 4), np.uint8))


def test_eigen_image_without_valid_depth_is_skipped_and_counted(places, capsys, monkeypatch):
    monkeypatch.chdir(places["tmp"])
    out = places["tmp"] / "one_hole.json"
    results = evaluate.main(["--data", str(places["one_hole_eigen_zip"]), "--model", str(places["model"]),
                             "--input-size", "64x96", "--no-flip", "--json", str(out)])
    printed = capsys.readouterr()
    assert "skipped eigen_test_rgb.npy[0]: no valid ground truth" in printed.err
    assert "skipped 1 of 2 images without valid ground truth" in printed.out
    saved = json.loads(out.read_text())
    assert saved["images"] == 1 and saved["skipped_images"] == 1
    assert saved["pooled"] == results["pooled"] and 0.0 < saved["pooled"]["abs_rel"] < 10.0
    out.unlink()


def test_metrics_and_losses_over_an_empty_mask_are_nan_never_a_score():
    import tensorflow as tf

    from depth import NYU
    from loss import depth_loss_function

    target = np.full((2, 16, 16, 1), 2.0, np.float32)
    mask = np.ones_like(target)
    mask[1] = 0.0  # the second image has no valid pixel
    y_true = tf.constant(np.concatenate([target, mask], axis=-1))
    y_pred = tf.constant(np.full((2, 16, 16, 1), 2.0, np.float32))
    loss = depth_loss_function(y_true, y_pred).numpy()
    assert loss[0] == pytest.approx(0.0, abs=1e-6) and np.isnan(loss[1])
    metrics = {m.__name__: m for m in training_metrics(NYU)}
    for name, perfect in (("a1", 1.0), ("abs_rel", 0.0), ("rmse", 0.0)):
        values = metrics[name](y_true, y_pred).numpy()
        assert values[0] == pytest.approx(perfect, abs=1e-6) and np.isnan(values[1]), name


def test_write_json_is_atomic_and_check_writable_says_why(places, tmp_path):
    from utils import InputError, check_writable, write_json

    path = write_json(tmp_path / "sub" / "a.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="Circular reference"):
        write_json(path, {"x": cyclic})
    assert json.loads(path.read_text()) == {"x": 1}  # the old content, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # and no partial file
    with pytest.raises(InputError, match="is a folder"):
        check_writable(tmp_path)
    if places["mount_errors"]["ro"]:
        pytest.skip(f"cannot mount a read-only tmpfs here: {places['mount_errors']['ro']}")
    with pytest.raises(OSError):
        write_json(places["ro"] / "a.json", {"x": 1})
    with pytest.raises(InputError, match=r"deep/a\.json: cannot write in .*ro \(Read-only file system\)"):
        check_writable(places["ro"] / "deep" / "a.json")


@pytest.mark.slow  # a training run (tens of seconds): the full suite runs it
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_it(synthetic_cache, tmp_path, capsys, monkeypatch):
    """A resume whose newest checkpoint was cut short says so in one line and resumes from the one before
    it; with no checkpoint before it, the resume ends in one error line naming the file, losing nothing."""
    monkeypatch.setenv("DENSEDEPTH_CACHE", str(synthetic_cache))
    folder = tmp_path / "r" / "checkpoints"
    train.main(["--smoke", "--run-dir", str(tmp_path), "--name", "r"])  # checkpoints at steps 3 and 6
    state = json.loads((folder / "state.json").read_text())
    newest = folder / state["checkpoint"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    capsys.readouterr()
    train.main(["--init", "resume", "--run-dir", str(tmp_path), "--name", "r", "--epochs", "3"])
    out = capsys.readouterr().out
    assert f"warning: {newest}: damaged checkpoint" in out, out[-2000:]
    assert f"resuming from the checkpoint before it, {state['previous']['checkpoint']} (step 3)" in out
    end = json.loads((folder / "state.json").read_text())
    assert (end["epoch"], end["global_step"]) == (3, 9)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert [r["global_step"] for r in config["resumes"]] == [3]
    # Nothing to fall back to: one line, and the run's files stay as they were.
    damaged = folder / end["checkpoint"]
    damaged.write_bytes(damaged.read_bytes()[:1000])
    (folder / end["previous"]["checkpoint"]).unlink()
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "r").rglob("*") if p.is_file())
    code, message, output = run_main("train.py", ["--init", "resume", "--run-dir", str(tmp_path), "--name", "r",
                                                  "--epochs", "4"], capsys)
    assert code == 1 and message.startswith(f"error: {damaged}: damaged checkpoint (") and "\n" not in message, \
        output[-2000:]
    assert "Traceback" not in output
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "r").rglob("*") if p.is_file()) == before


# ---------------------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM: a real training process
# ---------------------------------------------------------------------------------------------------------


def start_training(tmp, cache, *args, backend="tensorflow"):
    env = {**os.environ, "DENSEDEPTH_CACHE": str(cache), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": backend}
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, stdout=out,
                               stderr=err, text=True)
    return process, out, err, env


def wait_for_text(process, stream, text, limit_s=900):
    """Wait until stream holds text (or the process ends); polls the file, measures nothing."""
    import time

    deadline = time.monotonic() + limit_s
    while process.poll() is None and time.monotonic() < deadline:
        stream.seek(0)
        if text in stream.read():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig, backend", [(signal.SIGINT, "tensorflow"), (signal.SIGTERM, "tensorflow"),
                                          pytest.param(signal.SIGINT, "jax", marks=requires("jax"))])
def test_interrupt_saves_a_checkpoint_prints_the_resume_command_and_resumes(sig, backend, synthetic_cache, tmp_path):
    cache = synthetic_cache
    # 2 x 60 steps: long enough that the signal lands inside training, short to finish after the resume
    args = ["--data", "synthetic:24:8", *SMALL[:-4], "--epochs", "2", "--steps-per-epoch", "60", "--val-samples", "2",
            "--run-dir", str(tmp_path), "--name", "stopped"]
    process, out, err, env = start_training(tmp_path, cache, *args, backend=backend)
    try:
        assert wait_for_text(process, err, "epoch 1:"), "training never started"
        process.send_signal(sig)
        process.wait(900)
    finally:
        process.kill()
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    assert process.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted ({sig.name}) at step "), last
    state = json.loads((tmp_path / "stopped" / "checkpoints" / "state.json").read_text())
    assert f"checkpoint {state['checkpoint']} kept" in last
    assert (tmp_path / "stopped" / "checkpoints" / state["checkpoint"]).is_file()
    assert 1 <= state["global_step"] < 120 and not (tmp_path / "stopped" / "final.keras").exists()
    command = last.split("resume with: ", 1)[1]
    assert command == f"python train.py --init resume --run-dir {tmp_path} --name stopped --epochs 2"
    if sig != signal.SIGINT:
        return
    # The printed command, run as printed, finishes the run where it stood.
    resumed = subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    end = json.loads((tmp_path / "stopped" / "checkpoints" / "state.json").read_text())
    assert (end["epoch"], end["epoch_step"], end["global_step"]) == (2, 0, 120)
    config = json.loads((tmp_path / "stopped" / "config.json").read_text())
    assert [r["global_step"] for r in config["resumes"]] == [state["global_step"]]
    assert (tmp_path / "stopped" / "final.keras").is_file()
