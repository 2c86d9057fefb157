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

import numpy as np

from contract import CONTRACT_KEY, SAVEDMODEL_CONTRACT, export_contract, tflite_with_metadata
from depth import NYU_IMAGE_HW
from settings import add_depth_range_flag
from utils import InputError, atomic_write, check_writable, image_size, optional_module, quiet_tensorflow

# What each format can be quantised to: "none" is float32 throughout.
QUANTIZATIONS = {"savedmodel": ("none",), "tflite": ("none", "float16", "dynamic", "int8"),
                 "onnx": ("none", "int8"), "openvino": ("none", "bfloat16", "int8")}
FORMATS = tuple(QUANTIZATIONS)
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}
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
        return {"depth_m": metres(model(tf.cast(images, tf.float32) / 255.0, training=False), depth_range,
                                  input_hw)}

    return depth, raw


def metres(output, depth_range, input_hw):
    """The depth entry point's reading of the network output: metres (N, H, W) at input_hw.

    depth.inverse_depth_norm in plain TensorFlow ops: its tf.experimental.numpy clip adds a BroadcastArgs op
    that neither tf2onnx nor TFLite's integer path takes (tests hold the two equal). Clipping y to
    [1, max / min] before dividing is the same as clipping depth to [min, max] after it (y <= 0 gives max),
    and an int8 file never divides by a quantised zero.
    """
    import tensorflow as tf

    output = tf.clip_by_value(tf.cast(output, tf.float32), 1.0, depth_range.max_m / depth_range.min_m)
    # Half-pixel bilinear, as test.py's resize_depth (which mirrors the border where this clamps it).
    return tf.image.resize(depth_range.max_m / output, input_hw, method="bilinear")[..., 0]


def float_entry(model, input_hw, depth_range):
    """One tf.function for engines that take one input: float RGB -> both outputs (OpenVINO's IR)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, *input_hw, 3], tf.float32, name="rgb")])
    def both(rgb):
        output = model(rgb, training=False)
        return {"network_output": output, "depth_m": metres(output, depth_range, input_hw)}

    return both


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
    with atomic_write(path) as partial:
        partial.write_bytes(with_metadata)


def write_onnx(depth, raw, contract, path, input_hw, quantize="none", calibration=None):
    """An .onnx file of one graph holding both entry points (weights shared), converted by tf2onnx; int8:
    ONNX Runtime's static quantisation in QDQ form (per-channel int8 weights, uint8 activations)."""
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
    if quantize == "int8":
        graph = onnx_int8(graph, calibration)
    # An input with an initializer of its name is optional in ONNX: an empty batch unless fed.
    for name, dtype in (("images", np.uint8), ("rgb", np.float32)):
        graph.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((0, height, width, 3), dtype), name))
    graph.metadata_props.add(key=CONTRACT_KEY, value=json.dumps(contract.to_dict()))
    onnx.checker.check_model(graph)
    with atomic_write(path) as partial:
        onnx.save(graph, str(partial))


class _Calibration:
    """onnxruntime's CalibrationDataReader over the calibration pictures, both inputs fed each time."""

    def __init__(self, pictures):
        self._samples = iter([{"rgb": p[None], "images": np.round(p[None] * 255.0).astype(np.uint8)}
                              for p in pictures])

    def get_next(self):
        return next(self._samples, None)


def onnx_int8(graph, calibration):
    """The float graph quantised statically by ONNX Runtime: QDQ pairs around every convolution (int8
    weights per output channel, uint8 activations: the unsigned x signed products VNNI computes), scales
    from the calibration pictures' min and max. The clip, division and resize of the depth entry stay float."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        onnx.save(graph, str(source))
        quantize_static(str(source), str(target), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "Concat", "Resize", "MaxPool", "AveragePool",
                                              "GlobalAveragePool", "Mul", "Add"])
        return onnx.load(str(target))


def write_openvino(model, contract, path, input_hw, quantize, calibration):
    """An OpenVINO IR (path .xml and its .bin): one input rgb (float RGB in [0, 1]), two outputs
    (network_output, depth_m), converted from a SavedModel of the network; int8: NNCF's post-training
    quantisation calibrated on the pictures. Where it is not int8 (or for --quantize bfloat16 throughout)
    it computes in bfloat16 on CPUs that have it (the contract's "compute"); the file keeps float32 weights."""
    import keras

    openvino = optional_module("openvino", "requirements-openvino.txt", "export.py --format openvino")
    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", float_entry(model, input_hw, contract.depth_range))
        archive.write_out(folder, verbose=False)
        converted = openvino.convert_model(folder)
    for port in converted.outputs:  # the SavedModel's names carry a signature prefix: keep the output's own
        port.get_tensor().set_names({next(n for n in ("network_output", "depth_m") if n in port.any_name)})
    converted.inputs[0].get_tensor().set_names({"rgb"})
    if quantize == "int8":
        converted = openvino_int8(converted, calibration)
    converted.set_rt_info(json.dumps(contract.to_dict()), CONTRACT_KEY)
    with atomic_write(path) as partial, atomic_write(Path(path).with_suffix(".bin")) as weights:
        openvino.save_model(converted, str(partial), compress_to_fp16=False)
        os.replace(partial.with_suffix(".bin"), weights)  # save_model names the weights after the .xml


def openvino_int8(converted, calibration):
    """NNCF's post-training quantisation of an ov.Model: int8 weights (per channel) and activations,
    scales from the calibration pictures; the depth entry's clip, division and resize stay float."""
    nncf = optional_module("nncf", "requirements-openvino.txt", "export.py --format openvino --quantize int8")
    dataset = nncf.Dataset([picture[None] for picture in calibration])
    # MIXED: symmetric weights, asymmetric activations. The decoder's LeakyReLU and concatenations are far
    # from symmetric about zero; a symmetric scale wastes half its codes there (measured: 6x the output error).
    return nncf.quantize(converted, dataset, preset=nncf.QuantizationPreset.MIXED,
                         subset_size=len(calibration))


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the model to export: .keras (ours) or the authors' .h5")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="savedmodel (a folder), tflite (one file, phones and LiteRT), onnx (one file, "
                             "onnxruntime and other ONNX engines) or openvino (NAME.xml with NAME.bin beside it: "
                             "the fastest on x86 CPUs, docs/deployment.md)")
    parser.add_argument("--quantize", default="none", choices=sorted({q for qs in QUANTIZATIONS.values() for q in qs}),
                        help="tflite: float16 weights, dynamic (int8 weights), int8; onnx: int8; openvino: "
                             "bfloat16 (computed in bfloat16 where the CPU has it), int8 (the rest in bfloat16 "
                             "where the CPU has it). int8 quantises weights and activations, calibrated on --data "
                             "(default none: float32)")
    parser.add_argument("--input-size", metavar="HxW", type=image_size,
                        help="the picture size the export takes, e.g. 480x640 (default: the model's training "
                             "size from its contract, else 480x640)")
    add_depth_range_flag(parser)
    parser.add_argument("--data", default="synthetic",
                        help="int8 only: the data whose training pictures calibrate the quantisation (default "
                             "synthetic; any evaluate.py --data)")
    parser.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                        help=f"int8 only: how many pictures calibrate it (default {DEFAULT_CALIBRATION_IMAGES})")
    parser.add_argument("--output", required=True,
                        help="the file (.tflite, .onnx) or folder (savedmodel) to write; it must not exist yet")
    args = parser.parse_args(argv)
    if args.quantize not in QUANTIZATIONS[args.format]:
        parser.error(f"--quantize {args.quantize}: --format {args.format} takes "
                     f"{', '.join(QUANTIZATIONS[args.format])}")
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
        elif args.format == "onnx":
            write_onnx(depth, raw, contract, output, input_hw, args.quantize, calibration)
        else:
            write_openvino(model, contract, output, input_hw, args.quantize, calibration)
    except InputError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {output} ({folder_size(output) / 1e6:.1f} MB)")


def folder_size(path):
    """Bytes of a file (with an OpenVINO .xml's .bin), or of every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    weights = path.with_suffix(".bin")
    return path.stat().st_size + (weights.stat().st_size if path.suffix == ".xml" and weights.is_file() else 0)


if __name__ == "__main__":
    main()
