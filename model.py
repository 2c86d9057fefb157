"""The DenseDepth network (Alhashim & Wonka 2018): a DenseNet encoder and an up-sampling decoder.

    from model import create_model, load_model
    net = create_model()                       # DenseNet-169, ImageNet weights, full-width decoder
    net = create_model(weights=None, decoder_width=0.5)   # the reference code's half-width variant
    net = load_model("nyu.h5")                 # the authors' Keras 2 file, or a .keras file we saved

The network maps RGB in [0, 1] of any size to the normalised depth target at half the input resolution
(see utils.depth_norm). `python model.py` prints the summary and parameter counts.
"""
import argparse
import json
import os
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off the console

import keras
import numpy as np
from keras import ops

from utils import (ENCODER_CHANNELS, KITTI, NYU_REFERENCE, PAPER_LEAKY_RELU, VERSION, DepthRange, InputError,
                   git_commit, set_precision)

# Tiny: DenseNet's own layers and names (conv1_relu, pool1, pool2_pool, pool3_pool, relu) at a few layers
# per stage, so tests and --smoke run every code path that does not depend on DenseNet-169's size.
TINY_BLOCKS = (2, 2, 2, 2)
TINY_GROWTH = 16
TINY_STEM_FILTERS = 32
BN_EPSILON = 1.001e-5  # keras.applications' DenseNet
# Encoder feature maps the decoder concatenates with, from 1/16 to 1/2 of the input resolution.
SKIP_LAYERS = ("pool3_pool", "pool2_pool", "pool1", "conv1_relu")
BLOCK_NAMES = ("up1", "up2", "up3", "up4")
BLOCK_CONVS = ("convA", "convB")
LEAKY_RELU_SLOPE = 0.2
# The authors' released files predict depth clipped to [0.1, 10] m (NYU) as their predict() does; the
# range of their KITTI training was never published: we assume KITTI's 80 m cap.
LEGACY_DEPTH_RANGES = {"nyu": NYU_REFERENCE, "kitti": KITTI}
# The picture size each released file was made for: NYU's frames, and for kitti.h5 the 384x1248 its author
# tells users to feed it (near KITTI's average frame, divisible by 32; DenseDepth issue #12).
LEGACY_INPUT_HW = {"nyu": (480, 640), "kitti": (384, 1248)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# The up-sampling's pixel conventions, by the code each reproduces (see ResizeToMatch):
#   half_pixel     TensorFlow 2's tf.image.resize: new models, and the reference code since September 2020;
#   align_corners  TensorFlow 1's resize_images(..., align_corners=True): the authors' nyu.h5 and kitti.h5;
#   tf1_legacy     TensorFlow 1's default (neither), for a file that was trained with it.
UPSAMPLING_CONVENTIONS = {"half_pixel": (False, True), "align_corners": (True, False), "tf1_legacy": (False, False)}
DEFAULT_UPSAMPLING = "half_pixel"
LEGACY_UPSAMPLING = "align_corners"


def tiny_densenet(include_top=False, weights=None, input_tensor=None):
    """A DenseNet of TINY_BLOCKS layers per stage, built like keras.applications' (same layer names).

    It exists for tests and --smoke: random weights only, ENCODER_CHANNELS["tiny"] output channels.
    """
    if include_top or weights is not None:
        raise InputError("the tiny encoder has no pretrained weights or classifier: use weights 'none'")
    layers = keras.layers
    x = layers.ZeroPadding2D(3)(input_tensor)
    x = layers.Conv2D(TINY_STEM_FILTERS, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, blocks in enumerate(TINY_BLOCKS, start=2):
        for block in range(1, blocks + 1):
            x = _dense_layer(x, f"conv{stage}_block{block}")
        if stage < 1 + len(TINY_BLOCKS):
            x = _transition(x, f"pool{stage}")
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    return keras.Model(keras.utils.get_source_inputs(input_tensor), x, name="tiny_densenet")


def _dense_layer(x, name):
    """DenseNet's conv_block: BN-ReLU-1x1 conv (4 x growth)-BN-ReLU-3x3 conv (growth), concatenated to x."""
    layers = keras.layers
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_0_bn")(x)
    y = layers.Activation("relu", name=f"{name}_0_relu")(y)
    y = layers.Conv2D(4 * TINY_GROWTH, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv2D(TINY_GROWTH, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, name):
    """DenseNet's transition_block: BN-ReLU-1x1 conv to half the channels, 2x2 average pooling."""
    layers = keras.layers
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(x.shape[-1] // 2, 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


ENCODERS = {"densenet169": keras.applications.DenseNet169, "densenet201": keras.applications.DenseNet201,
            "tiny": tiny_densenet}


def encoder_of(layer_names):
    """Which ENCODERS entry a network's layer names come from (DenseNet-201 has 48 layers in stage 4)."""
    names = set(layer_names)
    if "conv4_block48_concat" in names:
        return "densenet201"
    return "densenet169" if "conv4_block12_concat" in names else "tiny"


@keras.saving.register_keras_serializable(package="densedepth")
class ResizeToMatch(keras.layers.Layer):
    """Bilinear resize of `x` to the height and width of `skip`: 2x up-sampling for sizes divisible by 32.

    Taking the size from the skip tensor at run time lets any input size (250x333, say) and several sizes
    in one process work. `convention` (UPSAMPLING_CONVENTIONS) says where source and target pixels sit:
    the authors' layers.py called resize_images(..., align_corners=True) from its first commit (January
    2019, when nyu.h5 and kitti.h5 were trained) until September 2020, when it became TF 2's resize.

    The resize is resize_bilinear (keras.ops) on every backend but TensorFlow, which keeps its own
    ResizeBilinear kernel: on a CPU the matrix products take 4.5x its time forward and backward
    (tests/test_backends.py holds the two equal). Either keeps x's dtype, so mixed precision stays intact.
    """

    def __init__(self, convention=DEFAULT_UPSAMPLING, half_pixel_centers=None, **kwargs):
        super().__init__(**kwargs)
        if half_pixel_centers is not None:  # files saved before conventions had names
            convention = "half_pixel" if half_pixel_centers else "tf1_legacy"
        if convention not in UPSAMPLING_CONVENTIONS:
            raise InputError(f"unknown up-sampling convention '{convention}': choose one of "
                             f"{', '.join(UPSAMPLING_CONVENTIONS)}")
        self.convention = convention

    def call(self, x, skip):
        if keras.backend.backend() == "tensorflow":
            return _tensorflow_resize_bilinear(x, skip, self.convention)
        _, height, width, _ = ops.shape(skip)
        return resize_bilinear(x, height, width, self.convention)

    def compute_output_shape(self, x_shape, skip_shape):
        return (x_shape[0], skip_shape[1], skip_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "convention": self.convention}


def resize_bilinear(x, height, width, convention=DEFAULT_UPSAMPLING):
    """Bilinear resize of x (B, H, W, C) to height x width in the convention, in x's dtype.

    Two matrix products, rows then columns, with interpolation_matrix's weights: exact for every
    convention (keras.ops.image.resize has no align_corners), any size, and matmul work for a GPU. Under
    TensorFlow's graph mode height and width may be scalar tensors.
    """
    _, in_h, in_w, _ = ops.shape(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    rows = interpolation_matrix(in_h, height, convention, dtype)
    columns = interpolation_matrix(in_w, width, convention, dtype)
    return ops.einsum("pw,bowc->bopc", columns, ops.einsum("oh,bhwc->bowc", rows, x))


def _tensorflow_resize_bilinear(x, skip, convention):
    """TensorFlow's own ResizeBilinear kernel, the same resize as resize_bilinear (imported only here)."""
    import tensorflow as tf

    align_corners, half_pixel_centers = UPSAMPLING_CONVENTIONS[convention]
    resized = tf.raw_ops.ResizeBilinear(images=x, size=tf.shape(skip)[1:3], align_corners=align_corners,
                                        half_pixel_centers=half_pixel_centers)
    return tf.cast(resized, x.dtype)  # the op always returns float32; keep mixed precision intact


def interpolation_matrix(in_size, out_size, convention=DEFAULT_UPSAMPLING, dtype="float32"):
    """(out_size, in_size) weights of 1-D bilinear interpolation, as TensorFlow's ResizeBilinear takes them.

    Output pixel i samples the input at src = (i + 0.5) * scale - 0.5 (half-pixel centres) or i * scale,
    with scale = in / out, or (in - 1) / (out - 1) with align_corners; its weights are 1 - frac(src) on
    max(floor(src), 0) and frac(src) on min(ceil(src), in - 1). Computed in float32 like TensorFlow's
    kernel, so every convention matches it to rounding. Sizes may be Python ints or scalar tensors.
    """
    align_corners, half_pixel_centers = UPSAMPLING_CONVENTIONS[convention]
    in_f, out_f = ops.cast(in_size, "float32"), ops.cast(out_size, "float32")
    scale = in_f / out_f
    if align_corners:
        scale = ops.where(out_f > 1, (in_f - 1) / ops.maximum(out_f - 1, 1), scale)
    index = ops.cast(ops.arange(out_size), "float32")
    src = (index + 0.5) * scale - 0.5 if half_pixel_centers else index * scale
    src_floor = ops.floor(src)
    lerp = ops.expand_dims(src - src_floor, 1)
    lower = ops.expand_dims(ops.maximum(src_floor, 0.0), 1)
    upper = ops.expand_dims(ops.minimum(ops.ceil(src), in_f - 1), 1)
    column = ops.expand_dims(ops.cast(ops.arange(in_size), "float32"), 0)
    weights = (ops.cast(ops.equal(column, lower), "float32") * (1.0 - lerp)
               + ops.cast(ops.equal(column, upper), "float32") * lerp)
    return ops.cast(weights, dtype)


def create_model(encoder="densenet169", weights="imagenet", decoder_width=1.0,
                 leaky_relu_after=PAPER_LEAKY_RELU, imagenet_normalization=False, upsampling=DEFAULT_UPSAMPLING):
    """The DenseDepth network as a functional Keras model.

    Args:
        encoder: "densenet169" (the paper), "densenet201" (its ablation) or "tiny" (tests and --smoke).
        weights: "imagenet" (downloaded by Keras), None / "none", or a path to an encoder weights file.
        decoder_width: channels of `conv2` as a fraction of the encoder's output channels; 1.0 is the
            paper's decoder (1664 on DenseNet-169), 0.5 the reference code's default.
        leaky_relu_after: which convolutions of each up-sampling block a LeakyReLU(0.2) follows: the
            paper's ("convB",), as in the authors' released files; ("convA", "convB") is their later code.
        imagenet_normalization: subtract ImageNet mean and divide by std inside the model (off in the
            paper, whose inputs are RGB in [0, 1] as they are).
        upsampling: the up-sampling's pixel convention (UPSAMPLING_CONVENTIONS): "half_pixel" for new
            models, "align_corners" for the authors' released ones.

    Example:
        >>> net = create_model(weights=None)
        >>> net(np.zeros((1, 64, 64, 3), "float32")).shape
        TensorShape([1, 32, 32, 1])
    """
    if encoder not in ENCODERS:
        raise InputError(f"unknown encoder '{encoder}': choose one of {', '.join(ENCODERS)}")
    if not 0.0 < decoder_width <= 4.0:
        raise InputError(f"decoder_width must be in (0, 4], got {decoder_width}")
    image = keras.Input(shape=(None, None, 3), name="image")
    x = imagenet_normalizer()(image) if imagenet_normalization else image
    base = encoder_network(encoder, weights, x)
    filters = int(ENCODER_CHANNELS[encoder] * decoder_width)
    x = keras.layers.Conv2D(filters, 1, padding="same", name="conv2")(base.output)
    for name, skip in zip(BLOCK_NAMES, SKIP_LAYERS):
        filters //= 2
        x = upsampling_block(x, base.get_layer(skip).output, filters, name, leaky_relu_after, upsampling)
    # Float32 output keeps the loss exact under mixed precision.
    depth = keras.layers.Conv2D(1, 3, padding="same", name="conv3", dtype="float32")(x)
    return keras.Model(image, depth, name=f"densedepth_{encoder}")


def imagenet_normalizer():
    """A weightless layer computing (x - mean) / std with ImageNet's RGB statistics."""
    scale = [1.0 / s for s in IMAGENET_STD]
    offset = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    return keras.layers.Rescaling(scale=scale, offset=offset, name="imagenet_norm")


def encoder_network(encoder, weights, input_tensor):
    """The Keras DenseNet without its classifier, built on input_tensor, with the requested weights."""
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise InputError(f"{weights}: encoder weights file not found (use 'imagenet', 'none' or a path)")
    try:
        return ENCODERS[encoder](include_top=False, weights=weights, input_tensor=input_tensor)
    except InputError:  # the tiny encoder's own refusal, already one line
        raise
    except Exception as err:  # download errors come as URLError, HTTPError, OSError, ValueError...
        if weights == "imagenet":
            raise InputError(
                f"could not download the ImageNet weights of {encoder} ({type(err).__name__}: {err}); "
                f"with no network, pass a local '{encoder}_weights_tf_dim_ordering_tf_kernels_notop.h5' "
                "as the weights path, or 'none' to start from random weights") from None
        raise InputError(f"{weights}: not {encoder} encoder weights ({type(err).__name__}: {err})") from None


def upsampling_block(x, skip, filters, name, leaky_relu_after=PAPER_LEAKY_RELU, upsampling=DEFAULT_UPSAMPLING):
    """Up-sample x to skip's size, concatenate them, then two 3x3 convolutions (LeakyReLU as asked)."""
    x = ResizeToMatch(upsampling, name=f"{name}_upsampling2d")(x, skip)
    x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    for conv in BLOCK_CONVS:
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_{conv}")(x)
        if conv in leaky_relu_after:
            x = keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, name=f"{name}_{conv}_leakyrelu")(x)
    return x


def parameter_counts(model):
    """(trainable, total) parameter counts."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, trainable + sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


# ---------------------------------------------------------------------------------------------------------
# The contract a model carries: what its output means and how it was made
# ---------------------------------------------------------------------------------------------------------

CONTRACT_MEMBER = "densedepth.json"  # inside the .keras zip, beside Keras' own config.json (Keras ignores it)
CONTRACT_FORMAT = 1
BARELY_TRAINED_STEPS = 1000  # fewer training steps than this: say the model has hardly learned


def model_contract(model, dataset, depth_range, input_hw, reduced_input=False, training=None):
    """The facts a user of a saved model needs, as a JSON-ready dict.

    dataset: "nyu", "kitti" or "synthetic"; depth_range: utils.DepthRange of the targets (max_m is the
    numerator of y = max_m / depth, min_m the clip); input_hw: the training input size, and reduced_input
    whether the images were resized to it (so evaluation and inference resize them too); training: how far
    it was trained ({"steps", "epochs", "best_val_delta1", "smoke", "recipe"}).
    """
    upsampling = {layer.convention for layer in model.layers if isinstance(layer, ResizeToMatch)}
    conv2 = model.get_layer("conv2")
    names = {layer.name for layer in model.layers}
    encoder = encoder_of(names)
    return {"format": CONTRACT_FORMAT, "dataset": dataset,
            "depth_range_m": [depth_range.min_m, depth_range.max_m],
            "input_hw": list(input_hw) if input_hw else None, "reduced_input": bool(reduced_input),
            "upsampling": upsampling.pop() if upsampling else None,
            "encoder": encoder, "decoder_width": conv2.filters / ENCODER_CHANNELS[encoder],
            "leaky_relu_after": [conv for conv in BLOCK_CONVS if f"up1_{conv}_leakyrelu" in names],
            "training": training or {}, "version": VERSION, "git_commit": git_commit()}


def save_model(model, path, contract):
    """Save the network without its optimizer (a third of the size) and with its contract, atomically."""
    import zipfile

    path = Path(path)
    partial = path.with_name(f"partial-{path.name}")
    keras.Model(model.input, model.output, name=model.name).save(partial)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(CONTRACT_MEMBER, json.dumps(contract, indent=2))
    os.replace(partial, path)


def read_contract(path):
    """The contract of a model file: saved in our .keras files, inferred for the authors' .h5 files.

    A .keras file saved before contracts existed gives {}: the caller falls back to flags or the data.
    """
    import zipfile

    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        return legacy_contract(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if CONTRACT_MEMBER not in archive.namelist():
                return {}
            return json.loads(archive.read(CONTRACT_MEMBER))
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError, KeyError) as err:
        raise InputError(f"{path}: cannot read the model's contract ({type(err).__name__}: {err})") from None


def legacy_contract(path):
    """The contract of one of the authors' files: NYU or KITTI from the file name, else NYU, assumed.

    Both released files were trained with the January 2019 code and share its layout (full-width decoder,
    one LeakyReLU per block): nothing inside a file tells NYU from KITTI, so only a name containing
    "kitti" makes it KITTI. `assumed` says which evidence decided; the caller says it in one line.
    """
    import h5py

    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file (corrupt or truncated download?)")
    with h5py.File(path, "r") as f:
        architecture = legacy_architecture(_legacy_model_config(f, path), path)
    name = Path(path).name.lower()
    if "kitti" in name:
        dataset, assumed = "kitti", "kitti from the file name"
    elif "nyu" in name:
        dataset, assumed = "nyu", "nyu from the file name"
    else:
        dataset, assumed = "nyu", ("nyu: the name says neither nyu nor kitti, and the authors' two files have "
                                   "the same layout; pass --depth-range kitti for kitti.h5 under another name")
    depth_range = LEGACY_DEPTH_RANGES[dataset]
    return {"format": CONTRACT_FORMAT, "dataset": dataset, "depth_range_m": [depth_range.min_m, depth_range.max_m],
            "input_hw": list(LEGACY_INPUT_HW[dataset]), "upsampling": architecture["upsampling"], "encoder": architecture["encoder"],
            "decoder_width": architecture["decoder_width"], "leaky_relu_after": list(architecture["leaky_relu_after"]),
            "training": {}, "authors_file": True, "assumed": assumed}


def fixed_input_hw(contract, depth_range):
    """The one (height, width) every picture is resized to for this model, or None (any size).

    The authors' files were made for one size each: nyu.h5 480x640, kitti.h5 384x1248; a file read on
    KITTI's range (--depth-range kitti) takes KITTI's size whatever its name.
    """
    if not contract.get("authors_file"):
        return None
    return LEGACY_INPUT_HW["kitti" if depth_range.max_m == KITTI.max_m else "nyu"]


def contract_depth_range(contract):
    """utils.DepthRange of a contract, or None when the model carries none."""
    if not contract.get("depth_range_m"):
        return None
    low, high = contract["depth_range_m"]
    return DepthRange(min_m=float(low), max_m=float(high))


def model_depth_range(model_path, contract, flag=None, fallback=None, fallback_name="the fallback"):
    """The range a model's output is read with: --depth-range's (warning where it contradicts the
    contract), else the contract's, else fallback (with a warning that the model carries none)."""
    from utils import DEPTH_RANGES

    saved = contract_depth_range(contract)
    if flag:
        chosen = DEPTH_RANGES[flag]
        if saved and (saved.min_m, saved.max_m) != (chosen.min_m, chosen.max_m):
            print(f"warning: --depth-range {flag} ({chosen.min_m:g}-{chosen.max_m:g} m) overrides the "
                  f"{saved.min_m:g}-{saved.max_m:g} m range {model_path} was trained for")
        return chosen
    if saved:
        return saved
    print(f"warning: {model_path} carries no depth range: reading it with {fallback_name}'s "
          f"{fallback.min_m:g}-{fallback.max_m:g} m (pass --depth-range to choose)")
    return fallback


def describe_contract(contract):
    """One line: dataset, range, training size, convention and how far the model was trained."""
    if not contract:
        return "no saved contract (a model saved before contracts existed): depth range from flags or data"
    low, high = contract["depth_range_m"]
    parts = [f"{contract.get('dataset', 'unknown data')}"
             f"{' (assumed ' + contract['assumed'] + ')' if contract.get('assumed') else ''}",
             f"depth {low:g}-{high:g} m"]
    if "encoder" in contract:  # an export of a model saved before contracts existed knows only its range
        parts += [f"{contract['encoder']} decoder x{contract['decoder_width']:g}", f"up-sampling {contract['upsampling']}"]
    if contract.get("input_hw"):
        parts.append("trained at {}x{}".format(*contract["input_hw"]))
    training = contract.get("training") or {}
    if "steps" in training:
        delta1 = training.get("best_val_delta1")
        parts.append(f"{training['steps']} steps" + (f", best val delta1 {delta1:.3f}" if delta1 is not None else ""))
    if contract.get("authors_file"):
        parts.append("the authors' released file")
    if contract.get("export"):
        export = contract["export"]
        parts.append(f"exported as {export['format']} ({export['quantize']}) for "
                     f"{export['input_hw'][0]}x{export['input_hw'][1]} pictures")
    return ", ".join(parts)


def load_announced(path=None, precision=None, threads=None):
    """(path, model, contract) of the model a script uses, its choice, contract and any warning printed.

    path None: utils.find_default_model (nyu.h5 here, else the newest run's model). An exported model (a
    .tflite or .onnx file, a SavedModel folder) loads through export.load_exported and computes at the
    precision it was exported at. threads: the runtime's intra-op threads (None: its default).
    """
    from export import is_exported, load_exported
    from utils import find_default_model

    model_path = Path(path) if path else find_default_model()
    print(f"model: {model_path}{'' if path else ' (default: pass --model to choose)'}")
    if is_exported(model_path):
        if precision not in (None, "float32"):
            raise InputError(f"{model_path}: an exported model computes at the precision it was exported at; "
                             f"drop --precision {precision} (export.py --quantize chooses it)")
        model = load_exported(model_path, threads)
        contract = model.contract
    else:
        use_threads(threads)
        model = load_model(model_path, precision)
        contract = read_contract(model_path)
    print(f"contract: {describe_contract(contract)}")
    if contract_warning(contract):
        print(f"warning: {contract_warning(contract)}")
    return model_path, model, contract


def use_threads(threads):
    """TensorFlow's intra-op threads for what runs next (None: its default, all cores).

    TensorFlow fixes the count when it starts its runtime; where that already happened (a second model in
    one process), it keeps its count and a warning says so.
    """
    import tensorflow as tf

    if not threads or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        print(f"warning: --threads {threads}: TensorFlow has already started and keeps its own thread count")


def contract_warning(contract):
    """A warning line for a smoke run or a barely trained model, else None."""
    training = (contract or {}).get("training") or {}
    if training.get("smoke"):
        return ("this is a --smoke run's model: it has trained a few steps on tiny data, so expect nearly flat "
                "depth maps; train longer for real predictions")
    if "steps" in training and training["steps"] < BARELY_TRAINED_STEPS:
        return (f"this model trained only {training['steps']} steps (under {BARELY_TRAINED_STEPS}): expect "
                "coarse depth")
    return None


# ---------------------------------------------------------------------------------------------------------
# Loading: our .keras files and the authors' Keras 2.2.4 HDF5 files (nyu.h5, kitti.h5)
# ---------------------------------------------------------------------------------------------------------


def load_model(path, precision=None):
    """A DenseDepth model from a .keras file we saved or a legacy whole-model HDF5 file.

    precision: "float32", "bfloat16" or "float16" (utils.PRECISION_POLICIES) sets Keras' global policy
    and makes the loaded model compute at it; None keeps the policy in force.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    if precision is not None:
        set_precision(precision)
    if path.suffix in (".h5", ".hdf5"):
        return load_legacy_h5(path)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise InputError(f"{path}: not a readable Keras model file (not a complete .keras zip archive: "
                         "truncated or corrupt?)")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:
        raise InputError(f"{path}: not a readable Keras model file ({type(err).__name__}: {err})") from None
    return at_global_policy(model)


def at_global_policy(model):
    """The model computing at Keras' global dtype policy, its output layers kept as they are.

    A .keras file records every layer's dtype policy, so setting the global policy before loading is not
    enough: a model saved at another precision is rebuilt layer by layer and keeps its weights.
    """
    policy = keras.mixed_precision.global_policy().name
    output_layers = {id(tensor._keras_history[0]) for tensor in model.outputs}
    inner = [layer for layer in model.layers if id(layer) not in output_layers and layer.weights]
    if all(layer.dtype_policy.name == policy for layer in inner):
        return model

    def at_policy(layer):
        config = layer.get_config()
        if id(layer) not in output_layers:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    rebuilt = keras.models.clone_model(model, clone_function=at_policy)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def load_legacy_h5(path):
    """Rebuild the network a Keras 2 whole-model HDF5 file describes and load its weights by layer name."""
    import h5py

    path = Path(path)
    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file (corrupt or truncated download?)")
    with h5py.File(path, "r") as f:
        config = _legacy_model_config(f, path)
        architecture = legacy_architecture(config, path)
        file_weights = _legacy_weights(f, path)
    check_legacy_wiring(config, architecture["leaky_relu_after"], path)
    model = create_model(weights=None, **architecture)
    _assign_weights_by_name(model, file_weights, path)
    return model


def _as_str(value):
    """h5py 3 returns legacy string attributes as bytes; older files store str."""
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _legacy_model_config(f, path):
    """The JSON model_config attribute of a whole-model HDF5 file, parsed."""
    if "model_config" not in f.attrs:
        raise InputError(f"{path}: no model_config attribute: not a whole-model Keras HDF5 file")
    try:
        return json.loads(_as_str(f.attrs["model_config"]))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: model_config is not valid JSON ({err})") from None


def _normalized(name):
    """Keras 2 DenseNet layer names use '/' (conv1/conv) where Keras 3 uses '_'."""
    return name.replace("/", "_")


def legacy_architecture(config, path="model"):
    """create_model arguments (encoder, decoder_width, leaky_relu_after, ...) read from a Keras 2 config.

    The authors' Keras 2 files were trained with resize_images(..., align_corners=True) (LEGACY_UPSAMPLING).
    """
    layers = {_normalized(layer["name"]): layer for layer in config["config"]["layers"]}
    if "conv2" not in layers or "conv3" not in layers:
        raise InputError(f"{path}: not a DenseDepth model (no 'conv2'/'conv3' decoder layers)")
    encoder = encoder_of(layers)
    filters = layers["conv2"]["config"]["filters"]
    consumers = _consumer_classes(config["config"]["layers"])
    per_block = {
        tuple(conv for conv in BLOCK_CONVS if "LeakyReLU" in consumers.get(f"{block}_{conv}", ()))
        for block in BLOCK_NAMES
    }
    if len(per_block) != 1:
        raise InputError(f"{path}: up-sampling blocks differ in their LeakyReLU layout: {sorted(per_block)}")
    return {"encoder": encoder, "decoder_width": filters / ENCODER_CHANNELS[encoder],
            "leaky_relu_after": per_block.pop(), "upsampling": LEGACY_UPSAMPLING}


def check_legacy_wiring(config, leaky_relu_after, path="model"):
    """InputError in one line where the file's decoder is wired otherwise than create_model wires it.

    Weights load by name and shape, which a reversed concatenation (the same shapes) or a missing activation
    would pass: so each decoder layer's inputs, in order, the activations between them and the LeakyReLU
    slope are compared with the network rebuilt from the file.
    """
    layers = {_normalized(layer["name"]): layer for layer in config["config"]["layers"]}
    inputs = {name: _inbound_names(layer) for name, layer in layers.items()}
    consumers = {}
    for name, sources in inputs.items():
        for source in sources:
            consumers.setdefault(source, []).append(name)

    def expect(layer, wanted, what):
        got = inputs.get(layer, [])[:len(wanted)] if what == "first input" else inputs.get(layer, [])
        if got != wanted:
            raise InputError(f"{path}: '{layer}' takes {got or 'nothing'} where the DenseDepth network takes "
                             f"{wanted} ({what}): not the network this code rebuilds")

    def activation_after(layer, allowed):
        """The LeakyReLU after layer, if allowed; InputError for any other activation or slope."""
        following = [n for n in consumers.get(layer, []) if layers[n]["class_name"] in ACTIVATION_CLASSES]
        if not following:
            if allowed:
                raise InputError(f"{path}: '{layer}' is not followed by a LeakyReLU, as in the other blocks")
            return layer
        name = following[0]
        slope = layers[name]["config"].get("alpha", layers[name]["config"].get("negative_slope"))
        if not allowed or layers[name]["class_name"] != "LeakyReLU":
            raise InputError(f"{path}: '{layer}' is followed by a {layers[name]['class_name']} the DenseDepth "
                             "network does not have there")
        if slope is None or abs(float(slope) - LEAKY_RELU_SLOPE) > 1e-6:
            raise InputError(f"{path}: the LeakyReLU after '{layer}' has slope {slope}, the network's is "
                             f"{LEAKY_RELU_SLOPE}")
        return name

    for name, layer in layers.items():
        if layer["class_name"] == "Conv2D" and layer["config"].get("activation", "linear") != "linear":
            raise InputError(f"{path}: '{name}' has a built-in {layer['config']['activation']} activation the "
                             "DenseDepth network does not have")
    expect("conv2", ["relu"], "the encoder's last feature map")
    previous = activation_after("conv2", allowed=False)
    for block, skip in zip(BLOCK_NAMES, SKIP_LAYERS):
        expect(f"{block}_upsampling2d", [previous], "first input")
        expect(f"{block}_concat", [f"{block}_upsampling2d", skip], "up-sampled first, skip connection second")
        previous = f"{block}_concat"
        for conv in BLOCK_CONVS:
            expect(f"{block}_{conv}", [previous], "the layer before it")
            previous = activation_after(f"{block}_{conv}", allowed=conv in leaky_relu_after)
    expect("conv3", [previous], "the last block's output")


ACTIVATION_CLASSES = {"LeakyReLU", "Activation", "ReLU", "PReLU", "ELU", "ThresholdedReLU"}


def _inbound_names(layer):
    """The normalised names of the layers feeding a Keras 2 config layer, in order (first node only)."""
    nodes = layer.get("inbound_nodes") or []
    return [_normalized(inbound[0]) for inbound in nodes[0]] if nodes else []


def _consumer_classes(layers):
    """For each layer name, the class names of the layers that take its output (Keras 2 node format)."""
    consumers = {}
    for layer in layers:
        for node in layer.get("inbound_nodes", []):
            for inbound in node:
                consumers.setdefault(_normalized(inbound[0]), set()).add(layer["class_name"])
    return consumers


def _legacy_weights(f, path):
    """{normalised layer name: [arrays]} for every layer with weights in the file."""
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in group.attrs:
        raise InputError(f"{path}: no layer_names attribute: not a Keras HDF5 weights layout")
    weights = {}
    for layer_name in map(_as_str, group.attrs["layer_names"]):
        layer_group = group[layer_name]
        names = [_as_str(n) for n in layer_group.attrs.get("weight_names", [])]
        if names:
            weights[_normalized(layer_name)] = [np.asarray(layer_group[n]) for n in names]
    return weights


def _assign_weights_by_name(model, file_weights, path):
    """Set each layer's weights from the file, refusing at the first layer whose name or shapes differ."""
    remaining = dict(file_weights)
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = remaining.pop(layer.name, None)
        if arrays is None:
            raise InputError(f"{path}: layer '{layer.name}' of the network is missing from the file")
        expected = [tuple(w.shape) for w in layer.weights]
        found = [tuple(a.shape) for a in arrays]
        if expected != found:
            raise InputError(f"{path}: layer '{layer.name}' does not match: file has {found}, "
                             f"network expects {expected}")
        layer.set_weights(arrays)
    if remaining:
        raise InputError(f"{path}: layer '{next(iter(remaining))}' in the file has no counterpart in the network")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Build the DenseDepth network and print its summary and size.")
    parser.add_argument("--encoder", default="densenet169", choices=sorted(ENCODERS),
                        help="DenseNet encoder (the paper: densenet169; ablation: densenet201)")
    parser.add_argument("--decoder-width", type=float, default=1.0,
                        help="conv2 channels as a fraction of the encoder's (paper 1.0, reference code 0.5)")
    parser.add_argument("--summary", action="store_true", help="print the full layer-by-layer summary")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    net = create_model(args.encoder, weights=None, decoder_width=args.decoder_width)
    if args.summary:
        net.summary(line_length=120)
    trainable, total = parameter_counts(net)
    print(f"{net.name}: {trainable / 1e6:.2f}M trainable parameters, {total / 1e6:.2f}M in all")


if __name__ == "__main__":
    main()
