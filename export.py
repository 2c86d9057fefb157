"""Export a DenseDepth model for deployment: SavedModel, TFLite (float16, dynamic, int8) and ONNX.

    python export.py --model runs/synthetic/final.keras --format tflite --output depth.tflite
    python export.py --model nyu.h5 --format tflite --quantize int8 --output nyu_int8.tflite
    python export.py --model nyu.h5 --format onnx --output nyu.onnx
    python export.py --model nyu.h5 --format savedmodel --output nyu_savedmodel

Every export has two entry points at a fixed picture size H x W (--input-size; default the size the model
was trained at, else 480x640) and any batch size N:

    depth (SavedModel/TFLite signature "serving_default", ONNX input "images" -> output "depth_m"):
        uint8 RGB (N, H, W, 3) -> depth in metres (N, H, W), upsampled to the input's size and clipped to
        the model's depth range: a caller needs no knowledge of depth_norm or half resolution
    raw (signature "raw", ONNX input "rgb" -> output "network_output"):
        float32 RGB in [0, 1] (N, H, W, 3) -> the network's output (N, H/2, W/2, 1), y = max_m / depth

and the model's contract (dataset, depth range, training size) with the export's own facts (format,
quantisation, input size) as JSON: a SavedModel's assets/densedepth.json, a TFLite file's metadata entry
"densedepth_contract", an ONNX file's metadata_props "densedepth_contract" (onnxruntime:
session.get_modelmeta().custom_metadata_map). ONNX inputs both default to an empty batch, so a caller feeds
only the one it uses.

--quantize (TFLite only): float16 halves the file (weights in float16), dynamic stores weights in int8 and
computes in float, int8 quantises weights and activations after calibrating on --calibration pictures of
--data (default: the synthetic rooms' training split); operations without an int8 kernel (the final
division and resize) stay in float.

test.py and evaluate.py take any exported file as --model and evaluate it with the same protocol
(estimator.DepthEstimator loads them, in Python too). The authors' nyu.h5 / kitti.h5 export exactly as our
.keras files do.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off the console

import numpy as np

from contract import CONTRACT_KEY, SAVEDMODEL_CONTRACT, export_contract, tflite_with_metadata
from depth import DEPTH_RANGES, NYU_IMAGE_HW
from utils import InputError, check_writable, image_size, quiet_tensorflow

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}
ONNX_OPSET = 17
DEFAULT_CALIBRATION_IMAGES = 32


# ---------------------------------------------------------------------------------------------------------
# The two entry points, as TensorFlow functions of a Keras model
# ---------------------------------------------------------------------------------------------------------


def entry_points(model, input_hw, depth_range):
    """(depth, raw) tf.functions at input_hw: uint8 RGB -> metres at full size, float RGB -> network output."""
    import tensorflow as tf

    height, width = input_hw

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="rgb")])
    def raw(rgb):
        return {"network_output": model(rgb, training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")])
    def depth(images):
        output = tf.cast(model(tf.cast(images, tf.float32) / 255.0, training=False), tf.float32)
        # depth.inverse_depth_norm in plain TensorFlow ops: its tf.experimental.numpy clip adds a
        # BroadcastArgs op that neither tf2onnx nor TFLite's integer path takes (tests hold the two equal).
        # Clipping y to [1, max / min] before dividing is the same as clipping depth to [min, max] after it
        # (y <= 0 gives max), and an int8 file never divides by a quantised zero.
        output = tf.clip_by_value(output, 1.0, depth_range.max_m / depth_range.min_m)
        depth_m = depth_range.max_m / output
        # Half-pixel bilinear, as test.py's resize_depth (which mirrors the border where this clamps it).
        return {"depth_m": tf.image.resize(depth_m, (height, width), method="bilinear")[..., 0]}

    return depth, raw


# ---------------------------------------------------------------------------------------------------------
# Writing each format
# ---------------------------------------------------------------------------------------------------------


def write_savedmodel(model, depth, raw, contract, folder):
    """A SavedModel folder through Keras' ExportArchive: signatures serving_default (depth) and raw."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", depth)
    archive.add_endpoint("raw", raw)
    archive.write_out(str(folder), verbose=False)
    (Path(folder) / SAVEDMODEL_CONTRACT).parent.mkdir(exist_ok=True)
    (Path(folder) / SAVEDMODEL_CONTRACT).write_text(json.dumps(contract.to_dict(), indent=2))


def tflite_converter(savedmodel, quantize, calibration):
    """TensorFlow's converter from a SavedModel's two signatures, set up for the quantisation asked."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=["serving_default", "raw"])
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = lambda: representative_samples(calibration)
        # Integer kernels wherever they exist; the few float-only operations stay float.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def representative_samples(pictures):
    """Calibration samples for both signatures: (signature, inputs) pairs, one picture at a time."""
    for picture in pictures:
        yield "raw", {"rgb": picture[None]}
        yield "serving_default", {"images": np.round(picture[None] * 255.0).astype(np.uint8)}


def write_tflite(model, depth, raw, contract, path, quantize, calibration):
    """A .tflite file with both signatures and the contract in the flatbuffer's metadata."""
    with tempfile.TemporaryDirectory() as folder:
        write_savedmodel(model, depth, raw, contract, folder)
        from tensorflow.lite.python.convert_phase import ConverterError

        try:
            flatbuffer = tflite_converter(folder, quantize, calibration).convert()
        except ConverterError as err:  # the converter's errors are long MLIR dumps: its first line says it
            raise InputError(f"{path}: TFLite conversion failed: {str(err).strip().splitlines()[0]}") from err
    with_metadata = tflite_with_metadata(flatbuffer, CONTRACT_KEY, json.dumps(contract.to_dict()).encode())
    Path(path).write_bytes(with_metadata)


def write_onnx(depth, raw, contract, path, input_hw):
    """An .onnx file of one graph holding both entry points (weights shared), converted by tf2onnx."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    height, width = input_hw

    @tf.function
    def both(images, rgb):
        return {**depth(images), **raw(rgb)}

    signature = [tf.TensorSpec([None, height, width, 3], tf.uint8, name="images"),
                 tf.TensorSpec([None, height, width, 3], tf.float32, name="rgb")]
    graph, _ = tf2onnx.convert.from_function(both, input_signature=signature, opset=ONNX_OPSET)
    # An input with an initializer of its name is optional in ONNX: an empty batch unless fed.
    for name, dtype in (("images", np.uint8), ("rgb", np.float32)):
        graph.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((0, height, width, 3), dtype), name))
    graph.metadata_props.add(key=CONTRACT_KEY, value=json.dumps(contract.to_dict()))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the model to export: .keras (ours) or the authors' .h5")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="savedmodel (a folder), tflite (one file, phones and LiteRT) or onnx (one file, "
                             "onnxruntime and other ONNX engines)")
    parser.add_argument("--quantize", default="none", choices=QUANTIZATIONS,
                        help="TFLite only: float16 weights, dynamic (int8 weights), int8 (weights and activations, "
                             "calibrated on --data) (default none: float32)")
    parser.add_argument("--input-size", metavar="HxW", type=image_size,
                        help="the picture size the export takes, e.g. 480x640 (default: the model's training "
                             "size from its contract, else 480x640)")
    parser.add_argument("--depth-range", choices=sorted(DEPTH_RANGES),
                        help="the range the model's output is read with (default: its contract; nyu for a model "
                             "without one)")
    parser.add_argument("--data", default="synthetic",
                        help="int8 only: the data whose training pictures calibrate the quantisation (default "
                             "synthetic; any evaluate.py --data)")
    parser.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                        help=f"int8 only: how many pictures calibrate it (default {DEFAULT_CALIBRATION_IMAGES})")
    parser.add_argument("--output", required=True,
                        help="the file (.tflite, .onnx) or folder (savedmodel) to write; it must not exist yet")
    args = parser.parse_args(argv)
    if args.quantize != "none" and args.format != "tflite":
        parser.error(f"--quantize {args.quantize} is for --format tflite; {args.format} exports float32")
    if args.calibration < 1:
        parser.error(f"--calibration must be at least 1, got {args.calibration}")
    if args.format in SUFFIXES and Path(args.output).suffix != SUFFIXES[args.format]:
        parser.error(f"--output {args.output}: a {args.format} file ends in {SUFFIXES[args.format]}")
    return args


def calibration_pictures(spec, count, input_hw):
    """Float RGB pictures in [0, 1] at input_hw from the training split of --data (int8 calibration)."""
    from data import open_dataset
    from pipeline import network_input

    dataset = open_dataset(spec)
    samples = dataset.samples("train")[:count]
    if not samples:
        raise InputError(f"{dataset.name}: no training pictures to calibrate int8 with")
    return [np.asarray(network_input(dataset.read(sample)[0], input_hw)) for sample in samples]


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()
    from estimator import DepthEstimator

    output = Path(args.output)
    try:
        if output.exists():
            raise InputError(f"{output}: already exists; choose another --output or remove it")
        check_writable(output, folder=args.format == "savedmodel")
        estimator = DepthEstimator.load(args.model, args.depth_range, "float32")
        if estimator.keras_model is None:
            raise InputError(f"{args.model}: already an exported model; export.py takes a .keras or .h5 file")
        for warning in estimator.warnings:
            print(f"warning: {warning}")
        model, contract, depth_range = estimator.keras_model, estimator.contract, estimator.depth_range
        input_hw = args.input_size or estimator.input_hw or contract.input_hw or NYU_IMAGE_HW
        calibration = (calibration_pictures(args.data, args.calibration, input_hw)
                       if args.quantize == "int8" else None)
        contract = export_contract(contract, depth_range, input_hw, args.format, args.quantize, args.model)
        depth, raw = entry_points(model, input_hw, depth_range)
        print(f"exporting {args.model} as {args.format} ({args.quantize}) for {input_hw[0]}x{input_hw[1]} "
              f"pictures, depth {depth_range.min_m:g}-{depth_range.max_m:g} m")
        if args.format == "savedmodel":
            write_savedmodel(model, depth, raw, contract, output)
        elif args.format == "tflite":
            write_tflite(model, depth, raw, contract, output, args.quantize, calibration)
        else:
            write_onnx(depth, raw, contract, output, input_hw)
    except InputError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {output} ({folder_size(output) / 1e6:.1f} MB)")


def folder_size(path):
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


if __name__ == "__main__":
    main()
