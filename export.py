"""Export a DenseDepth model for deployment (SavedModel, TFLite, ONNX) and read exported models back.

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
(load_exported below). The authors' nyu.h5 / kitti.h5 export exactly as our .keras files do.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off the console

import numpy as np

from utils import DEPTH_RANGES, NYU, NYU_IMAGE_HW, InputError, check_writable, image_size, quiet_tensorflow

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}
CONTRACT_KEY = "densedepth_contract"
SAVEDMODEL_CONTRACT = Path("assets") / "densedepth.json"
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
        # utils.inverse_depth_norm in plain TensorFlow ops: its tf.experimental.numpy clip adds a
        # BroadcastArgs op that neither tf2onnx nor TFLite's integer path takes (tests hold the two equal).
        # Clipping y to [1, max / min] before dividing is the same as clipping depth to [min, max] after it
        # (y <= 0 gives max), and an int8 file never divides by a quantised zero.
        output = tf.clip_by_value(output, 1.0, depth_range.max_m / depth_range.min_m)
        depth_m = depth_range.max_m / output
        # Half-pixel bilinear, as test.py's resize_depth (which mirrors the border where this clamps it).
        return {"depth_m": tf.image.resize(depth_m, (height, width), method="bilinear")[..., 0]}

    return depth, raw


def export_contract(contract, depth_range, input_hw, fmt, quantize, source):
    """The model's contract with the export's facts added: what every exported file carries."""
    return {**contract, "depth_range_m": [depth_range.min_m, depth_range.max_m],
            "export": {"format": fmt, "quantize": quantize, "input_hw": list(input_hw), "source": str(source),
                       "entry_points": {"depth": "uint8 RGB (N, H, W, 3) -> metres (N, H, W)",
                                        "raw": "float32 RGB in [0, 1] (N, H, W, 3) -> network output "
                                               "(N, H/2, W/2, 1), y = max_m / depth"}}}


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
    (Path(folder) / SAVEDMODEL_CONTRACT).write_text(json.dumps(contract, indent=2))


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
        try:
            flatbuffer = tflite_converter(folder, quantize, calibration).convert()
        except Exception as err:  # the converter's errors are long MLIR dumps: its first line says it
            raise InputError(f"{path}: TFLite conversion failed: {str(err).strip().splitlines()[0]}") from None
    with_metadata = tflite_with_metadata(flatbuffer, CONTRACT_KEY, json.dumps(contract).encode())
    Path(path).write_bytes(with_metadata)


def tflite_with_metadata(flatbuffer, name, payload):
    """The TFLite flatbuffer with one more named metadata entry (the schema's standard place for it)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_metadata(path, name):
    """The bytes of a TFLite file's named metadata entry, None if it has none."""
    from ai_edge_litert import schema_py_generated as schema  # LiteRT's copy: reading needs no TensorFlow

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == name:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


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
    graph.metadata_props.add(key=CONTRACT_KEY, value=json.dumps(contract))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


# ---------------------------------------------------------------------------------------------------------
# Reading exported models: one object that predicts like a Keras model
# ---------------------------------------------------------------------------------------------------------


class ExportedModel:
    """An exported model called like the Keras one on float RGB in [0, 1] (the raw entry point), so
    utils.predict, test.py and evaluate.py use it unchanged; depth() is the serving entry point."""

    def __init__(self, path, contract, raw, depth):
        self.path, self.contract, self._raw, self._depth = Path(path), contract, raw, depth
        self.input_hw = tuple(contract["export"]["input_hw"])

    def __call__(self, rgb, training=False):
        return self._raw(self._checked(np.asarray(rgb, dtype=np.float32)))

    def depth(self, images):
        """Metres (N, H, W) from uint8 RGB (N, H, W, 3): the entry point a deployed caller uses."""
        return self._depth(self._checked(np.asarray(images, dtype=np.uint8)))

    def _checked(self, batch):
        if batch.ndim != 4 or tuple(batch.shape[1:3]) != self.input_hw:
            raise InputError(f"{self.path}: exported for {self.input_hw[0]}x{self.input_hw[1]} pictures, given "
                             f"{'x'.join(str(s) for s in batch.shape[1:3])}: export it again with --input-size")
        return np.ascontiguousarray(batch)


def is_exported(path):
    """Whether a --model path names an exported model rather than a Keras file."""
    path = Path(path)
    return path.suffix in (".tflite", ".onnx") or path.is_dir()


def load_exported(path, threads=None):
    """An ExportedModel from a SavedModel folder, a .tflite or an .onnx file (InputError if unusable)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model file or folder")
    loaders = {".tflite": load_tflite, ".onnx": load_onnx}
    if path.is_dir():
        return load_savedmodel(path, threads)
    return loaders[path.suffix](path, threads)


def parsed_contract(path, text):
    """The contract JSON an export carries, checked to be one export.py wrote."""
    if text is None:
        raise InputError(f"{path}: carries no DenseDepth contract: not a file export.py wrote")
    try:
        contract = json.loads(text)
        contract["export"]["input_hw"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path}: its DenseDepth contract is unreadable (damaged file?)") from None
    return contract


def load_savedmodel(folder, threads):
    import tensorflow as tf

    contract_file = folder / SAVEDMODEL_CONTRACT
    if not (folder / "saved_model.pb").is_file():
        raise InputError(f"{folder}: a folder, but not a SavedModel (no saved_model.pb)")
    contract = parsed_contract(folder, contract_file.read_text() if contract_file.is_file() else None)
    from model import use_threads

    use_threads(threads)
    try:
        loaded = tf.saved_model.load(str(folder))
        raw, depth = loaded.signatures["raw"], loaded.signatures["serving_default"]
    except Exception as err:
        raise InputError(f"{folder}: not a readable SavedModel ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
    return ExportedModel(folder, contract, lambda x: raw(rgb=tf.constant(x))["network_output"].numpy(),
                         lambda x: depth(images=tf.constant(x))["depth_m"].numpy())


def load_tflite(path, threads):
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        runners = {key: interpreter.get_signature_runner(key) for key in ("raw", "serving_default")}
        contract_bytes = tflite_metadata(path, CONTRACT_KEY)
    except Exception as err:  # LiteRT and the flatbuffer reader raise ValueError/RuntimeError/IndexError
        raise InputError(f"{path}: not a readable TFLite model exported by export.py ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else 'damaged'})") from None
    contract = parsed_contract(path, contract_bytes)
    return ExportedModel(path, contract, lambda x: runners["raw"](rgb=x)["network_output"],
                         lambda x: runners["serving_default"](images=x)["depth_m"])


def load_onnx(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its note on the optional inputs' empty defaults is by design here
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise InputError(f"{path}: not a readable ONNX model ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0][:200]})") from None
    contract = parsed_contract(path, session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY))
    return ExportedModel(path, contract, lambda x: session.run(["network_output"], {"rgb": x})[0],
                         lambda x: session.run(["depth_m"], {"images": x})[0])


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
    from utils import network_input

    dataset = open_dataset(spec)
    samples = dataset.samples("train")[:count]
    if not samples:
        raise InputError(f"{dataset.name}: no training pictures to calibrate int8 with")
    return [np.asarray(network_input(dataset.read(sample)[0], input_hw)) for sample in samples]


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()
    from model import fixed_input_hw, load_model, model_depth_range, read_contract

    output = Path(args.output)
    try:
        if output.exists():
            raise InputError(f"{output}: already exists; choose another --output or remove it")
        check_writable(output, folder=args.format == "savedmodel")
        model = load_model(args.model, "float32")
        contract = read_contract(args.model)
        depth_range = model_depth_range(args.model, contract, args.depth_range, NYU, "NYU")
        input_hw = (args.input_size or fixed_input_hw(contract, depth_range)
                    or tuple(contract.get("input_hw") or NYU_IMAGE_HW))
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
