"""The DenseDepth network (Alhashim & Wonka 2018): a DenseNet encoder and an up-sampling decoder.

    from model import create_model, load_model
    net = create_model()                       # DenseNet-169, ImageNet weights, full-width decoder
    net = create_model(weights=None, decoder_width=0.5)   # the reference code's half-width variant
    net = load_model("nyu.h5")                 # the authors' Keras 2 file, or a .keras file we saved

The network maps RGB in [0, 1] of any size to the normalised depth target at half the input resolution
(see depth.depth_norm). Loading a model and turning its output into metres is estimator.py's;
`python model.py` prints the summary and parameter counts.
"""
import argparse
import contextlib
import functools
import zipfile
from pathlib import Path

import numpy as np

from utils import HeavyModule, InputError, set_precision

# Keras (and TensorFlow under it) is imported on first use, so that settings.py and the scripts' --help
# read this module's facts without waiting for it.
keras = HeavyModule("keras")
ops = HeavyModule("keras.ops")

# ---------------------------------------------------------------------------------------------------------
# The network's layout
# ---------------------------------------------------------------------------------------------------------

# Encoder feature maps the decoder concatenates with, from 1/16 to 1/2 of the input resolution.
SKIP_LAYERS = ("pool3_pool", "pool2_pool", "pool1", "conv1_relu")
BLOCK_NAMES = ("up1", "up2", "up3", "up4")
BLOCK_CONVS = ("convA", "convB")
LEAKY_RELU_SLOPE = 0.2
# Which convolutions of each decoder block a LeakyReLU(0.2) follows. The paper's appendix table: convB only,
# as the authors' model.py had it when nyu.h5 and kitti.h5 were trained (January 2019, 2124ac9). Their code
# added one after convA on 2019-03-11 (ea4a455, "missing ReLU"): train.py --recipe reference builds that.
PAPER_LEAKY_RELU = ("convB",)
REFERENCE_LEAKY_RELU = ("convA", "convB")
# Encoders and the channels of their last feature map. "tiny" is a four-stage DenseNet of two layers per
# stage for tests and --smoke: the same skip connections and layer names.
ENCODER_CHANNELS = {"densenet169": 1664, "densenet201": 1920, "tiny": 64}


def encoder_of(layer_names):
    """Which ENCODERS entry a network's layer names come from (DenseNet-201 has 48 layers in stage 4)."""
    names = set(layer_names)
    if "conv4_block48_concat" in names:
        return "densenet201"
    return "densenet169" if "conv4_block12_concat" in names else "tiny"


# Tiny: DenseNet's own layers and names (conv1_relu, pool1, pool2_pool, pool3_pool, relu) at a few layers
# per stage, so tests and --smoke run every code path that does not depend on DenseNet-169's size.
TINY_BLOCKS = (2, 2, 2, 2)
TINY_GROWTH = 16
TINY_STEM_FILTERS = 32
BN_EPSILON = 1.001e-5  # keras.applications' DenseNet
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# The up-sampling's pixel conventions, by the code each reproduces (see ResizeToMatch):
#   half_pixel     TensorFlow 2's tf.image.resize: new models, and the reference code since September 2020;
#   align_corners  TensorFlow 1's resize_images(..., align_corners=True): the authors' nyu.h5 and kitti.h5;
#   tf1_legacy     TensorFlow 1's default (neither), for a file that was trained with it.
UPSAMPLING_CONVENTIONS = {"half_pixel": (False, True), "align_corners": (True, False), "tf1_legacy": (False, False)}
DEFAULT_UPSAMPLING = "half_pixel"


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


ENCODERS = {"densenet169": lambda **kwargs: keras.applications.DenseNet169(**kwargs),
            "densenet201": lambda **kwargs: keras.applications.DenseNet201(**kwargs),
            "tiny": tiny_densenet}


@functools.cache
def resize_layer():
    """The ResizeToMatch layer class, defined (and registered for loading) when Keras is first needed."""

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

    return ResizeToMatch


def __getattr__(name):  # model.ResizeToMatch, without importing Keras with this module
    if name == "ResizeToMatch":
        return resize_layer()
    raise AttributeError(f"module 'model' has no attribute '{name}'")


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
    except (OSError, ValueError) as err:  # a failed download (URLError and HTTPError are OSErrors), a bad file
        if weights == "imagenet":
            raise InputError(
                f"could not download the ImageNet weights of {encoder} ({type(err).__name__}: {err}); "
                f"with no network, pass a local '{encoder}_weights_tf_dim_ordering_tf_kernels_notop.h5' "
                "as the weights path, or 'none' to start from random weights") from err
        raise InputError(f"{weights}: not {encoder} encoder weights ({type(err).__name__}: {err})") from err


def upsampling_block(x, skip, filters, name, leaky_relu_after=PAPER_LEAKY_RELU, upsampling=DEFAULT_UPSAMPLING):
    """Up-sample x to skip's size, concatenate them, then two 3x3 convolutions (LeakyReLU as asked)."""
    x = resize_layer()(upsampling, name=f"{name}_upsampling2d")(x, skip)
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
# What a built network is, and running it
# ---------------------------------------------------------------------------------------------------------

def architecture(model):
    """The create_model arguments a built network has: encoder, decoder_width, leaky_relu_after, upsampling."""
    names = {layer.name for layer in model.layers}
    encoder = encoder_of(names)
    conventions = {layer.convention for layer in model.layers if isinstance(layer, resize_layer())}
    return {"encoder": encoder, "decoder_width": model.get_layer("conv2").filters / ENCODER_CHANNELS[encoder],
            "leaky_relu_after": tuple(conv for conv in BLOCK_CONVS if f"up1_{conv}_leakyrelu" in names),
            "upsampling": conventions.pop() if conventions else None}


class CompiledForward:
    """A Keras model's forward pass, compiled once per input shape (size and batch) and reused.

    Called eagerly, TensorFlow runs the graph op by op from Python; a tf.function traces it once per new
    shape and then runs the whole graph in its runtime. Under JAX, predict_on_batch keeps one compiled
    program per shape. traces: how many shapes were compiled so far (TensorFlow).
    """

    def __init__(self, model):
        self.model = model
        self._call = None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # No reduce_retracing: a shape seen again reuses its own graph, fully specialised to it.
            self._call = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32))

    @property
    def traces(self):
        return self._call.experimental_get_tracing_count() if self._call is not None else None

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._call is None:
            return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)
        return self._call(batch).numpy()


# ---------------------------------------------------------------------------------------------------------
# Loading: our .keras files, and the authors' Keras 2.2.4 HDF5 files through legacy.py
# ---------------------------------------------------------------------------------------------------------


def load_model(path, precision=None):
    """A DenseDepth Keras model from a .keras file we saved or one of the authors' Keras 2 HDF5 files.

    precision: "float32", "bfloat16" or "float16" (utils.PRECISION_POLICIES): the loaded model computes at
    it, Keras' global policy left as it was; None: at the policy in force.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    with precision_scope(precision):
        if path.suffix in (".h5", ".hdf5"):
            from legacy import assign_weights_by_name, read_legacy_h5  # legacy.py reads on top of this module

            architecture, weights = read_legacy_h5(path)
            model = create_model(weights=None, **architecture)
            assign_weights_by_name(model, weights, path)
            return model
        if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
            raise InputError(f"{path}: not a readable Keras model file (not a complete .keras zip archive: "
                             "truncated or corrupt?)")
        resize_layer()  # registered before Keras looks its name up
        try:
            model = keras.models.load_model(path, compile=False)
        except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f"{path}: not a readable Keras model file ({type(err).__name__}: {err})") from err
        return at_global_policy(model)


@contextlib.contextmanager
def precision_scope(precision):
    """Keras' global dtype policy set to precision's for the block, and restored after it (None: kept)."""
    if precision is None:
        yield
        return
    saved = keras.mixed_precision.global_policy()
    set_precision(precision)  # refuses an unknown precision in one line
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(saved)


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
