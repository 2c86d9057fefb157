"""DepthEstimator: the one way to load a DenseDepth model of any format and get metric depth from it.

    from estimator import DepthEstimator
    estimator = DepthEstimator.load("nyu.h5")   # .keras, the authors' .h5, a SavedModel folder, .tflite,
                                                # .onnx; None: nyu.h5 here, else the newest run's model
    depth_m = estimator.predict("photo.jpg")    # a path, a PIL image or an (H, W, 3) array -> float32 (H, W)
                                                # metres at the picture's size
    depth_m = estimator.predict(batch, flip=True)   # (N, H, W, 3) -> (N, H, W), with the paper's mirror
    estimator.contract                          # contract.Contract: dataset, depth range, training size, ...
    estimator.warnings                          # e.g. "a --smoke run's model"; nothing is printed
    estimator.keras_model                       # the Keras model itself (None for an exported model)
    estimator.predict(picture, camera=camera)   # depth for another camera (camera.picture_camera): x f / f_train

A picture goes through the network at its own aspect ratio, its longer side at most max_side (default: the
longer side of the model's training size), or at the one size an exported model or an authors' file takes;
the half-resolution output is read as depth (y = max_m / depth, clipped to the range) and resized back to
the picture. The exported runtimes (SavedModel, LiteRT, onnxruntime) live here too, each behind the same
call: float RGB batch in [0, 1] -> the network's output.
"""
import copy
from pathlib import Path

import numpy as np

from contract import (
    CONTRACT_KEY,
    EXPORTED_SUFFIXES,
    SAVEDMODEL_CONTRACT,
    exported_contract,
    first_line,
    onnx_session,
    openvino_metadata,
    openvino_model,
    read_contract,
    resolve_depth_range,
    tflite_metadata,
)
from depth import DEPTH_RANGES, NYU, NYU_IMAGE_HW, inverse_depth_norm, resize_depth
from utils import InputError, batches, load_image, optional_module, pil_rgb, quiet_tensorflow, runtime_threads

AUTHORS_MODEL = "nyu.h5"  # the authors' released NYU model, looked for in the current folder
# A small model trained here on the synthetic rooms, shipped so that everything runs on a fresh clone (how
# it was made: models/README.md). It knows synthetic rooms only.
BUILTIN_MODEL = Path(__file__).resolve().parent / "models" / "synthetic_tiny.keras"
BUILTIN_WARNING = ("the built-in model knows the synthetic rooms only: --model nyu brings the authors' NYU model "
                   "(165 MB, downloaded once)")
MIN_SIDE = 32  # the encoder divides the picture by 32; smaller pictures are scaled up to this
BATCH_SIZE = 4


def find_default_model(runs_dir="runs"):
    """The model to use when none is named: nyu.h5 here, else the newest *.keras under runs_dir, else the
    built-in model.

    Files inside checkpoint folders are skipped: a run's final.keras / best.keras are the ones to use.
    """
    if Path(AUTHORS_MODEL).is_file():
        return Path(AUTHORS_MODEL)
    runs = Path(runs_dir)
    candidates = [p for p in runs.rglob("*.keras") if "checkpoints" not in p.relative_to(runs).parts[:-1]]
    if candidates:
        return max(candidates, key=lambda p: p.stat().st_mtime)
    if BUILTIN_MODEL.is_file():
        return BUILTIN_MODEL
    raise InputError(f"no model given, no {AUTHORS_MODEL} here and no *.keras under {runs}/: pass --model nyu "
                     "(the authors' model, downloaded once) or a file, or train one (python train.py --smoke)")


def model_path(path):
    """The file a --model value names: a path, a released model's name ("nyu", "kitti": fetched once into
    Keras' cache), or None: find_default_model."""
    from legacy import RELEASED_IDS, fetch_released

    if path is None:
        return find_default_model()
    if str(path) in RELEASED_IDS and not Path(path).exists():
        return fetch_released(str(path))
    return Path(path)


def network_size(height, width, max_side):
    """(height, width) at which the network sees a picture: within max_side (0: any), at least MIN_SIDE."""
    scale = min(1.0, max_side / max(height, width)) if max_side else 1.0
    scale = max(scale, MIN_SIDE / min(height, width))
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


def as_pictures(images):
    """(float32 RGB in [0, 1] of shape (N, H, W, 3), whether one picture was given) from a path, a PIL
    image, or a uint8 / uint16 / float array of one picture (H, W, 3) or a batch (N, H, W, 3)."""
    if isinstance(images, (str, Path)):
        return load_image(images)[None], True
    if hasattr(images, "mode") and hasattr(images, "convert"):  # a PIL image
        return pil_rgb(images)[None].astype(np.float32) / 255.0, True
    images = np.asarray(images)
    single = images.ndim == 3
    images = images[None] if single else images
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"expected an RGB picture (H, W, 3) or a batch (N, H, W, 3), got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0, single
    if images.dtype == np.uint16:
        return images.astype(np.float32) / 65535.0, single
    images = images.astype(np.float32)
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise InputError("float pictures must lie in [0, 1]")
    return images, single


class DepthEstimator:
    """A model of any format and the one way its output becomes metres. Build it with load or from_keras."""

    def __init__(self, network, contract, depth_range, path, warnings=(), keras_model=None, default=False,
                 camera=None):
        self.network = network  # float32 RGB (N, h, w, 3) in [0, 1] -> output (N, h/2, w/2, 1)
        self.contract = contract
        self.camera = camera or contract.training_camera(path)[0]  # the camera the output's depth is in
        self.depth_range = depth_range
        self.path = Path(path)
        self.warnings = tuple(warnings)
        self.keras_model = keras_model
        self.default = default
        self.runtime = getattr(network, "runtime", "keras")  # an ExportedModel says which runtime runs it

    @classmethod
    def load(cls, path=None, depth_range=None, precision=None, threads=None, fallback_range=NYU,
             fallback_name="NYU", fallback_camera=None):
        """The estimator of a model file or SavedModel folder (InputError naming it if it cannot be used);
        "nyu" or "kitti": the authors' released model, downloaded once (legacy.fetch_released).

        depth_range: a DEPTH_RANGES name or a DepthRange that overrides the contract's; a model without a
        contract is read with fallback_range (and taken with fallback_camera, default NYU's). precision:
        "float32", "bfloat16" or "float16" for Keras files (an export computes at the precision it was
        exported at). threads: the runtime's CPU threads.
        """
        quiet_tensorflow()  # a library caller too is spared TensorFlow's start-up notices
        default = path is None
        path = model_path(path)
        if not path.exists():
            raise InputError(f"{path}: no such model file or folder")
        if isinstance(depth_range, str) and depth_range not in DEPTH_RANGES:
            raise InputError(f"unknown depth range '{depth_range}': choose one of {', '.join(DEPTH_RANGES)}")
        warnings, keras_model = [], None
        if is_exported(path):
            if precision not in (None, "float32"):
                raise InputError(f"{path}: an exported model computes at the precision it was exported at; "
                                 f"drop --precision {precision} (export.py --quantize chooses it)")
            network = load_exported(path, threads, warnings)
            contract = network.contract
        else:
            from model import CompiledForward, load_model

            warnings += use_threads(threads)
            keras_model = load_model(path, precision)
            contract = read_contract(path)
            network = CompiledForward(keras_model)
        resolved, range_warnings = resolve_depth_range(contract, depth_range, fallback_range, fallback_name, path)
        camera, camera_warning = contract.training_camera(path, fallback_camera, fallback_name)
        warnings += range_warnings + [w for w in (contract.warning(), camera_warning) if w]
        if path == BUILTIN_MODEL:
            warnings = [BUILTIN_WARNING]  # what its contract says of it (a small model, few steps) is known
        return cls(network, contract, resolved, path, warnings, keras_model, default, camera)

    @classmethod
    def from_keras(cls, model, contract=None, depth_range=None, name="in-memory model"):
        """The estimator of a Keras model in memory (read with depth_range, else its contract's, else NYU's)."""
        from contract import Contract
        from model import CompiledForward

        contract = contract or Contract()
        resolved = depth_range or contract.depth_range or NYU
        return cls(CompiledForward(model), contract, resolved, name, (), model)

    def with_depth_range(self, depth_range):
        """The same network read with another DepthRange (evaluate.py's clip floor under a protocol)."""
        other = copy.copy(self)
        other.depth_range = depth_range
        return other

    @property
    def input_hw(self):
        """The one (height, width) this model takes (an export, an authors' file), or None: any size."""
        return self.contract.fixed_input_hw(self.depth_range)

    @property
    def max_side(self):
        """The default longer side of the network's input: the longer side of the training size."""
        return max(self.contract.input_hw or NYU_IMAGE_HW)

    def describe(self):
        """Two lines: which model, and what its contract says."""
        chosen = " (default: pass --model to choose)" if self.default else ""
        return f"model: {self.path}{chosen}\ncontract: {self.contract.describe()}"

    def network_hw(self, height, width, max_side=None, input_hw=None):
        """(height, width) a height x width picture goes through the network at.

        The model's own fixed size if it has one (input_hw must then agree), else input_hw, else the
        picture's aspect within max_side (None: self.max_side; 0: any size).
        """
        fixed = self.input_hw
        if fixed and input_hw and tuple(input_hw) != tuple(fixed):
            raise InputError(f"{self.path}: takes {fixed[0]}x{fixed[1]} pictures only, not "
                             f"{input_hw[0]}x{input_hw[1]}: export it again with --input-size")
        if fixed or input_hw:
            return tuple(fixed or input_hw)
        return network_size(height, width, self.max_side if max_side is None else max_side)

    def predict(self, images, flip=False, max_side=None, input_hw=None, output_hw=None, batch_size=BATCH_SIZE,
                camera=None):
        """Depth in metres, float32, at the pictures' size (or output_hw): (H, W) for one picture, (N, H, W)
        for a batch of one size.

        flip: average, in metres as the paper's evaluation does, with the mirrored prediction of the
        mirrored picture. max_side / input_hw: the network's input size (see network_hw). camera: the
        pictures' camera.Camera (or one per picture): depth is scaled by its focal length over the
        training camera's (depth_scale) before the clip to the range; None: taken with the training camera.
        """
        from pipeline import network_input

        pictures, single = as_pictures(images)
        height, width = pictures.shape[1:3]
        x = np.asarray(network_input(pictures, self.network_hw(height, width, max_side, input_hw)))
        depth = self.network_depth(x, flip, batch_size, self.depth_scales(camera, len(x)))
        depth = resize_depth(depth, *(output_hw or (height, width)))
        return depth[0].astype(np.float32) if single else depth.astype(np.float32)

    def predict_video(self, source, temporal="flow", batch_size=BATCH_SIZE, max_side=None, camera=None):
        """(frame index, depth in metres (H, W) float32) for each frame of a clip, lazily, in order.

        source: a video file or a folder or glob of frames (video.py), or any iterable of uint8 RGB frames
        (a camera's, say). temporal: "flow" steadies each frame's depth with the ones before it
        (video.DepthStabiliser: causal, metric, no drift; it moves depth by the camera's motion, estimated with
        camera, else the model's training camera), "none" predicts each frame alone. Frames are
        predicted batch_size at a time; nothing grows with the clip's length. camera, max_side: as predict.
        """
        for index, _, depth in self.video_depths(source, temporal, batch_size, max_side, camera):
            yield index, depth

    def video_depths(self, source, temporal="flow", batch_size=BATCH_SIZE, max_side=None, camera=None):
        """(frame index, frame, steady depth) of each frame: predict_video with the frames (test.py writes both)."""
        from video import TEMPORAL_MODES, DepthStabiliser, frames_of

        if temporal not in TEMPORAL_MODES:
            raise InputError(f"unknown temporal mode '{temporal}': choose {' or '.join(TEMPORAL_MODES)}")
        steady = DepthStabiliser(camera=camera or self.camera) if temporal == "flow" else None
        index = 0
        for group in batches(map(np.asarray, frames_of(source)), batch_size, key=np.shape):
            depths = self.predict(np.stack(group), max_side=max_side, batch_size=batch_size, camera=camera)
            for frame, depth in zip(group, depths):
                yield index, frame, steady(frame, depth) if steady else depth
                index += 1

    def depth_scale(self, camera):
        """What this model's depth is multiplied by for a picture taken with camera: its focal length over
        the training camera's, both relative to the picture's width (camera.py). Cameras equal to rounding
        (a focal length listed in pixels, the other computed) give exactly 1."""
        ratio = 1.0 if camera is None else camera.fx / self.camera.fx
        return 1.0 if abs(ratio - 1.0) < 1e-9 else ratio

    def depth_scales(self, camera, count):
        """depth_scale per picture of a batch of count, for one camera, one per picture, or None."""
        cameras = camera if isinstance(camera, (list, tuple)) else [camera] * count
        if len(cameras) != count:
            raise InputError(f"{len(cameras)} cameras for {count} pictures")
        return np.array([self.depth_scale(c) for c in cameras], np.float64)

    def network_depth(self, images, flip=False, batch_size=BATCH_SIZE, scales=None):
        """Metres (N, h/2, w/2) at the network's output resolution for pictures (N, h, w, 3) already at the
        network's input size (any dtype predict takes); flip and the per-picture scales as in predict."""
        x, _ = as_pictures(images)
        scales = np.ones(len(x)) if scales is None else np.asarray(scales, np.float64)
        return np.concatenate([self._depth(x[i : i + batch_size], flip, scales[i : i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def _depth(self, batch, flip, scales):
        depth = self._network_depth(batch, scales)
        if flip:
            depth = 0.5 * (depth + self._network_depth(batch[:, :, ::-1], scales)[:, :, ::-1])
        return depth

    def _network_depth(self, batch, scales):
        output = np.asarray(self.network(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
        # Depth s * max_m / y is max_m / (y / s): scaling the output keeps the clip to the range exact (and a
        # scale of 1 leaves every value as it was: division by 1 is exact).
        return inverse_depth_norm(output[..., 0] / scales[:, None, None].astype(np.float32), self.depth_range)


def use_threads(threads):
    """TensorFlow's intra-op threads for what runs next (None: its default, every core); returns warnings.

    TensorFlow fixes the count when it starts its runtime; where that already happened (a second model in
    one process), it keeps its count and a warning says so.
    """
    import tensorflow as tf

    if not threads or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return []
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        return [f"--threads {threads}: TensorFlow has already started and keeps its own thread count"]
    return []


# ---------------------------------------------------------------------------------------------------------
# Exported models: one object that is called like the network on float RGB in [0, 1]
# ---------------------------------------------------------------------------------------------------------


class ExportedModel:
    """An export's raw entry point, called like the network (float RGB -> output); depth() is the serving
    entry point a deployed caller uses (uint8 RGB -> metres at the picture's size). engine: the runtime's
    own object (the loaded SavedModel, LiteRT interpreter, ONNX Runtime session or OpenVINO compiled model)."""

    def __init__(self, path, contract, raw, depth, runtime, engine=None):
        self.path, self.contract, self._raw, self._depth, self.runtime = Path(path), contract, raw, depth, runtime
        self.engine = engine
        self.input_hw = tuple(contract.export["input_hw"])

    def __call__(self, rgb, training=False):
        return self._raw(self._checked(np.asarray(rgb, dtype=np.float32)))

    def depth(self, images):
        """Metres (N, H, W) from uint8 RGB (N, H, W, 3)."""
        return self._depth(self._checked(np.asarray(images, dtype=np.uint8)))

    def _checked(self, batch):
        if batch.ndim != 4 or tuple(batch.shape[1:3]) != self.input_hw:
            raise InputError(f"{self.path}: exported for {self.input_hw[0]}x{self.input_hw[1]} pictures, given "
                             f"{'x'.join(str(s) for s in batch.shape[1:3])}: export it again with --input-size")
        return np.ascontiguousarray(batch)


def is_exported(path):
    """Whether a model path names an exported model (a .tflite or .onnx file, a SavedModel folder)."""
    path = Path(path)
    return path.suffix in EXPORTED_SUFFIXES or path.is_dir()


def load_exported(path, threads=None, warnings=None):
    """An ExportedModel from a SavedModel folder, a .tflite, an .onnx or an OpenVINO .xml file (InputError if
    unusable). threads: the runtime's CPU threads (None: every core)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model file or folder")
    if path.is_dir():
        return load_savedmodel(path, threads, warnings if warnings is not None else [])
    return {".tflite": load_tflite, ".onnx": load_onnx, ".xml": load_openvino}[path.suffix](path, threads)


def load_savedmodel(folder, threads, warnings):
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    if not (folder / "saved_model.pb").is_file():
        raise InputError(f"{folder}: a folder, but not a SavedModel (no saved_model.pb)")
    member = folder / SAVEDMODEL_CONTRACT
    contract = exported_contract(folder, member.read_text() if member.is_file() else None)
    warnings += use_threads(threads)
    try:
        loaded = tf.saved_model.load(str(folder))
        raw, depth = loaded.signatures["raw"], loaded.signatures["serving_default"]
    except (OSError, ValueError, KeyError, DecodeError, tf.errors.OpError) as err:
        raise InputError(f"{folder}: not a readable SavedModel ({first_line(err)})") from err
    return ExportedModel(folder, contract, lambda x: raw(rgb=tf.constant(x))["network_output"].numpy(),
                         lambda x: depth(images=tf.constant(x))["depth_m"].numpy(), "savedmodel", loaded)


def load_tflite(path, threads):
    contract = exported_contract(path, tflite_metadata(path, CONTRACT_KEY))
    litert = optional_module("ai_edge_litert.interpreter", "requirements-export.txt", f"reading {path}")
    try:
        interpreter = litert.Interpreter(model_path=str(path), num_threads=runtime_threads(threads))
        runners = {key: interpreter.get_signature_runner(key) for key in ("raw", "serving_default")}
    except (ValueError, RuntimeError, KeyError, IndexError) as err:
        raise InputError(f"{path}: not a readable TFLite model exported by export.py ({first_line(err)})") from err
    return ExportedModel(path, contract, lambda x: runners["raw"](rgb=x)["network_output"],
                         lambda x: runners["serving_default"](images=x)["depth_m"], "tflite", interpreter)


def load_onnx(path, threads):
    session = onnx_session(path, threads)
    contract = exported_contract(path, session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY))
    return ExportedModel(path, contract, lambda x: session.run(["network_output"], {"rgb": x})[0],
                         lambda x: session.run(["depth_m"], {"images": x})[0], "onnx", session)


def load_openvino(path, threads):
    """An OpenVINO IR on the CPU: one input rgb, two outputs (network_output, depth_m); see export.py."""
    import openvino

    model = openvino_model(path)
    contract = exported_contract(path, openvino_metadata(model, CONTRACT_KEY))
    core = openvino.Core()
    compiled = core.compile_model(model, "CPU", openvino_config(core, contract, threads))
    request = compiled.create_infer_request()
    outputs = {name: compiled.output(name) for name in ("network_output", "depth_m")}

    def run(x, name):  # the request reuses its buffers: copy the result out
        return np.array(request.infer({"rgb": x})[outputs[name]], dtype=np.float32)

    return ExportedModel(path, contract, lambda x: run(x, "network_output"),
                         lambda x: run(x.astype(np.float32) / 255.0, "depth_m"), "openvino", compiled)


def openvino_config(core, contract, threads):
    """OpenVINO's CPU settings for core (an openvino.Core): latency (one request, every core), and the
    precision the export computes at where it is not int8: bfloat16 where the CPU has bfloat16 instructions
    and the export asks for it."""
    compute = contract.export.get("compute", "float32")
    capable = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return {"INFERENCE_NUM_THREADS": runtime_threads(threads), "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if compute == "bfloat16" and capable else "f32"}
