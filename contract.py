"""What a saved model carries besides its weights: its contract, as one read-only object.

A `Contract` says what the network's output means (the dataset and depth range: y = max_m / depth) and how
the model was made (training size, encoder, decoder, up-sampling convention, how far it trained). This
module builds it, writes it into every format and reads it back from every format:

    our .keras            a member densedepth.json inside the zip (Keras ignores it)
    the authors' .h5      inferred from the file's layout and name (they carry none)
    SavedModel folder     assets/densedepth.json
    .tflite               the flatbuffer's metadata entry "densedepth_contract"
    .onnx                 metadata_props "densedepth_contract"
    OpenVINO .xml         the model's rt_info entry "densedepth_contract" (beside its .bin weights)

and resolves the depth range a model is read with (a flag, else the contract, else a fallback), returning
warnings for the caller to show; nothing here prints.
"""
import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from camera import NYU_CAMERA, Camera
from datasets import NYU_SPEC, training_camera
from depth import DEPTH_RANGES, DepthRange
from utils import VERSION, InputError, atomic_write, git_commit, optional_module, runtime_threads

CONTRACT_FORMAT = 1
CONTRACT_MEMBER = "densedepth.json"  # inside the .keras zip, beside Keras' own config.json
CONTRACT_KEY = "densedepth_contract"  # the TFLite metadata entry and the ONNX metadata_props key
SAVEDMODEL_CONTRACT = Path("assets") / "densedepth.json"
BARELY_TRAINED_STEPS = 1000  # fewer training steps than this: say the model has hardly learned
EXPORTED_SUFFIXES = (".tflite", ".onnx", ".xml")
LEGACY_SUFFIXES = (".h5", ".hdf5")


def _frozen(mapping):
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Contract:
    """The facts a user of a saved model needs. An empty Contract() is a model saved before contracts.

    dataset: "nyu", "kitti" or "synthetic"; depth_range: what the output is read with (max_m the numerator
    of y = max_m / depth, min_m the clip); input_hw: the training input size, and reduced_input whether
    pictures were resized to it (so evaluation resizes them too); training: {"steps", "epochs",
    "best_val_delta1", "smoke", "recipe", ...}; authors_file and assumed: one of the authors' .h5 files and
    the evidence its dataset was taken from; export: an export's own facts (format, quantize, input_hw);
    camera: the camera its training pictures were taken with (camera.Camera, relative to the picture), or
    the canonical camera it was trained in (train.py --canonical-focal).
    """

    dataset: str | None = None
    depth_range: DepthRange | None = None
    input_hw: tuple | None = None
    reduced_input: bool = False
    encoder: str | None = None
    decoder_width: float | None = None
    leaky_relu_after: tuple = ()
    upsampling: str | None = None
    training: MappingProxyType = field(default_factory=lambda: _frozen({}))
    version: str | None = None
    git_commit: str | None = None
    authors_file: bool = False
    assumed: str | None = None
    export: MappingProxyType | None = None
    camera: Camera | None = None

    def __post_init__(self):
        # Read-only all the way down: mappings become proxies, sequences tuples, whatever the caller passed.
        object.__setattr__(self, "training", _frozen(self.training))
        object.__setattr__(self, "leaky_relu_after", tuple(self.leaky_relu_after))
        if self.input_hw is not None:
            object.__setattr__(self, "input_hw", tuple(int(s) for s in self.input_hw))
        if self.export is not None:
            object.__setattr__(self, "export", _frozen(self.export))

    @classmethod
    def from_dict(cls, content, path="model"):
        """The Contract of the JSON a file carries (InputError naming path if it is not one)."""
        if not content:
            return cls()
        try:
            low, high = content["depth_range_m"]
            hw = content.get("input_hw")
            return cls(dataset=content.get("dataset"), depth_range=DepthRange(min_m=float(low), max_m=float(high)),
                       input_hw=tuple(int(s) for s in hw) if hw else None,
                       reduced_input=bool(content.get("reduced_input", False)),
                       encoder=content.get("encoder"), decoder_width=content.get("decoder_width"),
                       leaky_relu_after=tuple(content.get("leaky_relu_after") or ()),
                       upsampling=content.get("upsampling"), training=_frozen(content.get("training")),
                       version=content.get("version"), git_commit=content.get("git_commit"),
                       authors_file=bool(content.get("authors_file", False)), assumed=content.get("assumed"),
                       export=_frozen(content["export"]) if content.get("export") else None,
                       camera=Camera.from_dict(content["camera"]) if content.get("camera") else None)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"{path}: its DenseDepth contract is unreadable ({type(err).__name__}: {err})") from err

    def to_dict(self):
        """The JSON-ready dict files carry ({} for the empty contract)."""
        if self.depth_range is None:
            return {}
        content = {"format": CONTRACT_FORMAT, "dataset": self.dataset,
                   "depth_range_m": [self.depth_range.min_m, self.depth_range.max_m],
                   "input_hw": list(self.input_hw) if self.input_hw else None, "reduced_input": self.reduced_input,
                   "upsampling": self.upsampling, "encoder": self.encoder, "decoder_width": self.decoder_width,
                   "leaky_relu_after": list(self.leaky_relu_after), "training": dict(self.training),
                   "version": self.version, "git_commit": self.git_commit}
        if self.authors_file:
            content.update(authors_file=True, assumed=self.assumed)
        if self.export is not None:
            content["export"] = dict(self.export)
        if self.camera is not None:
            content["camera"] = self.camera.to_dict()
        return content

    def describe(self):
        """One line: dataset, range, training size, convention and how far the model was trained."""
        if self.depth_range is None:
            return "no saved contract (a model saved before contracts existed): depth range from flags or data"
        parts = [f"{self.dataset or 'unknown data'}" + (f" (assumed {self.assumed})" if self.assumed else ""),
                 f"depth {self.depth_range.min_m:g}-{self.depth_range.max_m:g} m"]
        if self.encoder:  # an export of a model saved before contracts existed knows only its range
            parts += [f"{self.encoder} decoder x{self.decoder_width:g}", f"up-sampling {self.upsampling}"]
        if self.input_hw:
            parts.append("trained at {}x{}".format(*self.input_hw))
        if "steps" in self.training:
            delta1 = self.training.get("best_val_delta1")
            parts.append(f"{self.training['steps']} steps"
                         + (f", best val delta1 {delta1:.3f}" if delta1 is not None else ""))
        if self.authors_file:
            parts.append("the authors' released file")
        if self.camera:
            parts.append(f"camera fx {self.camera.fx:.3f} of the width ({self.camera.source})")
        if self.export:
            parts.append(f"exported as {self.export['format']} ({self.export['quantize']}) for "
                         f"{self.export['input_hw'][0]}x{self.export['input_hw'][1]} pictures")
        return ", ".join(parts)

    def warning(self):
        """A warning line for a smoke run's or a barely trained model, else None."""
        if self.training.get("smoke"):
            return ("this is a --smoke run's model: it has trained a few steps on tiny data, so expect nearly flat "
                    "depth maps; train longer for real predictions")
        if "steps" in self.training and self.training["steps"] < BARELY_TRAINED_STEPS:
            return (f"this model trained only {self.training['steps']} steps (under {BARELY_TRAINED_STEPS}): "
                    "expect coarse depth")
        return None

    def training_camera(self, path="the model", fallback=None, fallback_name="the default"):
        """(camera, warning or None): the camera the model's output is in. A contract without one (saved
        before cameras were recorded) is taken to have its dataset's camera, else fallback (NYU's Kinect
        unless given: evaluate.py gives the data's), and the warning says so."""
        if self.camera is not None:
            return self.camera, None
        if self.dataset:
            assumed, whose = training_camera(self.dataset), "its dataset"
        else:
            assumed, whose = fallback or NYU_CAMERA, fallback_name if fallback else "the default"
        return assumed, (f"{path} records no training camera: assuming {assumed.source} ({whose}'s), fx "
                         f"{assumed.fx:.3f} of the width")

    def fixed_input_hw(self, depth_range=None):
        """The one (height, width) every picture is resized to for this model, or None (any size).

        An export takes the size it was exported at. The authors' files were made for one size each
        (legacy.LEGACY_INPUT_HW: nyu.h5 480x640, kitti.h5 384x1248); one read on the range of the other's
        dataset (--depth-range kitti) takes that file's size whatever its name.
        """
        from legacy import LEGACY_DEPTH_RANGES, LEGACY_INPUT_HW

        if self.export:
            return tuple(self.export["input_hw"])
        if not self.authors_file:
            return None
        depth_range = depth_range or self.depth_range
        read_as = next((name for name, released in LEGACY_DEPTH_RANGES.items() if released.max_m == depth_range.max_m),
                       self.dataset)
        return LEGACY_INPUT_HW[read_as]


# ---------------------------------------------------------------------------------------------------------
# Building and writing
# ---------------------------------------------------------------------------------------------------------


def model_contract(model, dataset, depth_range, input_hw, reduced_input=False, training=None, camera=None):
    """The Contract of a network we trained (its architecture read from the Keras model itself); camera:
    its training camera (None: its dataset's spec's, NYU's for an unknown one)."""
    from model import architecture

    camera = camera or training_camera(dataset)
    return Contract(dataset=dataset, depth_range=depth_range, input_hw=tuple(input_hw) if input_hw else None,
                    reduced_input=bool(reduced_input), training=_frozen(training), version=VERSION,
                    git_commit=git_commit(), camera=camera, **architecture(model))


def save_model(model, path, contract):
    """Save the network without its optimizer (a third of the size) and with its contract, atomically."""
    import keras

    with atomic_write(path) as partial:
        keras.Model(model.input, model.output, name=model.name).save(partial)
        with zipfile.ZipFile(partial, "a") as archive:
            archive.writestr(CONTRACT_MEMBER, json.dumps(contract.to_dict(), indent=2))


def export_contract(contract, depth_range, input_hw, fmt, quantize, source):
    """The model's contract with the export's facts added: what every exported file carries."""
    import dataclasses

    raw = "float32 RGB in [0, 1] (N, H, W, 3) -> network output (N, H/2, W/2, 1), y = max_m / depth"
    entry_points = {"depth": "uint8 RGB (N, H, W, 3) -> metres (N, H, W)", "raw": raw}
    if fmt == "openvino":  # one input, both outputs
        entry_points = {"rgb": "float32 RGB in [0, 1] (N, H, W, 3) -> network_output (N, H/2, W/2, 1), "
                               "y = max_m / depth, and depth_m, metres (N, H, W)"}
    # OpenVINO computes what is not int8 in bfloat16 where asked and the CPU has it (estimator.py).
    compute = "bfloat16" if fmt == "openvino" and quantize in ("bfloat16", "int8") else "float32"
    export = {"format": fmt, "quantize": quantize, "compute": compute, "input_hw": list(input_hw),
              "source": str(source), "entry_points": entry_points}
    return dataclasses.replace(contract, depth_range=depth_range, export=_frozen(export))


def tflite_with_metadata(flatbuffer, name, payload):
    """The TFLite flatbuffer with one more named metadata entry (the schema's standard place for it)."""
    import numpy as np
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


# ---------------------------------------------------------------------------------------------------------
# Reading, from every format
# ---------------------------------------------------------------------------------------------------------


def read_contract(path):
    """The Contract a model file or SavedModel folder carries (InputError if it cannot be read).

    A .keras file saved before contracts existed gives the empty Contract(): the caller falls back to flags
    or the data. An export without one is not a file export.py wrote.
    """
    path = Path(path)
    if path.is_dir():
        member = path / SAVEDMODEL_CONTRACT
        return exported_contract(path, member.read_text() if member.is_file() else None)
    if path.suffix in LEGACY_SUFFIXES:
        return legacy_contract(path)
    if path.suffix == ".tflite":
        return exported_contract(path, tflite_metadata(path, CONTRACT_KEY))
    if path.suffix == ".onnx":
        return exported_contract(path, onnx_metadata(path, CONTRACT_KEY))
    if path.suffix == ".xml":
        return exported_contract(path, openvino_metadata(openvino_model(path), CONTRACT_KEY))
    try:
        with zipfile.ZipFile(path) as archive:
            if CONTRACT_MEMBER not in archive.namelist():
                return Contract()
            return Contract.from_dict(json.loads(archive.read(CONTRACT_MEMBER)), path)
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError, KeyError) as err:
        raise InputError(f"{path}: cannot read the model's contract ({type(err).__name__}: {err})") from err


def exported_contract(path, text):
    """The Contract of the JSON an export carries, checked to be one export.py wrote."""
    if text is None:
        raise InputError(f"{path}: carries no DenseDepth contract: not a file export.py wrote")
    try:
        content = json.loads(text)
    except ValueError as err:
        raise InputError(f"{path}: its DenseDepth contract is unreadable (damaged file?)") from err
    contract = Contract.from_dict(content, path)
    if not contract.export or "input_hw" not in contract.export:
        raise InputError(f"{path}: its DenseDepth contract is unreadable (damaged file?)")
    return contract


def tflite_metadata(path, name):
    """The bytes of a TFLite file's named metadata entry, None if it has none (InputError if unreadable)."""
    # LiteRT's copy of the schema: reading needs no TensorFlow.
    schema = optional_module("ai_edge_litert.schema_py_generated", "requirements-export.txt", f"reading {path}")
    data = Path(path).read_bytes()
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name().decode() == name:
                return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    except (IndexError, ValueError, UnicodeDecodeError, struct.error) as err:  # what flatbuffers raise
        raise InputError(f"{path}: not a readable TFLite model ({type(err).__name__}: {err})") from err
    return None


def onnx_metadata(path, name):
    """An ONNX file's named metadata_props value, None if it has none (InputError if unreadable)."""
    return onnx_session(path).get_modelmeta().custom_metadata_map.get(name)


def onnx_session(path, threads=None):
    """An onnxruntime session on the CPU for an .onnx file (InputError naming it if it cannot be read)."""
    onnxruntime = optional_module("onnxruntime", "requirements-export.txt", f"reading {path}")
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its note on the optional inputs' empty defaults is by design here
    options.intra_op_num_threads = runtime_threads(threads)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except (state.Fail, state.InvalidProtobuf, state.InvalidGraph, state.InvalidArgument, state.NoSuchFile,
            state.RuntimeException, RuntimeError, ValueError) as err:
        raise InputError(f"{path}: not a readable ONNX model ({first_line(err)})") from err


def openvino_model(path):
    """The ov.Model of an OpenVINO IR file (.xml beside its .bin), InputError naming it if unreadable."""
    openvino = optional_module("openvino", "requirements-openvino.txt", f"reading {path}")
    if not Path(path).with_suffix(".bin").is_file():
        raise InputError(f"{path}: its weights {Path(path).with_suffix('.bin').name} are missing beside it")
    try:
        return openvino.Core().read_model(str(path))
    except RuntimeError as err:
        raise InputError(f"{path}: not a readable OpenVINO model ({first_line(err)})") from err


def openvino_metadata(model, name):
    """An OpenVINO model's named rt_info string, None if it has none."""
    return model.get_rt_info(name).astype(str) if model.has_rt_info(name) else None


def first_line(err, limit=200):
    """'Type: the first line of its message', for one-line errors about files a library could not read."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:limit] if text else 'damaged'}"


def legacy_contract(path):
    """The contract of one of the authors' files: NYU or KITTI from the file name, else NYU, assumed.

    Both released files were trained with the January 2019 code and share its layout (full-width decoder,
    one LeakyReLU per block): nothing inside a file tells NYU from KITTI, so only a name containing
    "kitti" makes it KITTI. `assumed` says which evidence decided; the caller shows it.
    """
    from legacy import LEGACY_DEPTH_RANGES, LEGACY_INPUT_HW, legacy_file_architecture

    architecture = legacy_file_architecture(path)
    name = Path(path).name.lower()
    named = [dataset for dataset in LEGACY_DEPTH_RANGES if dataset in name]
    # The released names are nyu and kitti: "kitti" is looked for first, as in "nyu_kitti_finetuned.h5".
    dataset = max(named, key=lambda dataset: LEGACY_DEPTH_RANGES[dataset].max_m) if named else NYU_SPEC.name
    assumed = (f"{dataset} from the file name" if named else
               f"{dataset}: the name says neither {' nor '.join(LEGACY_DEPTH_RANGES)}, and the authors' two files "
               "have the same layout; pass --depth-range kitti for kitti.h5 under another name")
    return Contract(dataset=dataset, depth_range=LEGACY_DEPTH_RANGES[dataset], input_hw=LEGACY_INPUT_HW[dataset],
                    camera=training_camera(dataset),
                    encoder=architecture["encoder"], decoder_width=architecture["decoder_width"],
                    leaky_relu_after=tuple(architecture["leaky_relu_after"]), upsampling=architecture["upsampling"],
                    authors_file=True, assumed=assumed)


# ---------------------------------------------------------------------------------------------------------
# The depth range a model is read with
# ---------------------------------------------------------------------------------------------------------


def resolve_depth_range(contract, flag=None, fallback=None, fallback_name="the fallback", path="the model"):
    """(DepthRange, warnings): flag (a DEPTH_RANGES name or a DepthRange) first, with a warning where it
    contradicts the contract; else the contract's; else fallback, with a warning that the model has none."""
    saved = contract.depth_range
    if flag:
        chosen = DEPTH_RANGES[flag] if isinstance(flag, str) else flag
        if saved and (saved.min_m, saved.max_m) != (chosen.min_m, chosen.max_m):
            label = f"--depth-range {flag}" if isinstance(flag, str) else "the depth range"
            return chosen, [f"{label} ({chosen.min_m:g}-{chosen.max_m:g} m) overrides the {saved.min_m:g}-"
                            f"{saved.max_m:g} m range {path} was trained for"]
        return chosen, []
    if saved:
        return saved, []
    return fallback, [f"{path} carries no depth range: reading it with {fallback_name}'s {fallback.min_m:g}-"
                      f"{fallback.max_m:g} m (pass --depth-range to choose)"]
