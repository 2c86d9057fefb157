"""What bench_train.py and bench_infer.py share when they run on a chosen Keras backend (--backend).

Nothing here imports TensorFlow unless the backend is TensorFlow, so the benches run on a machine that has
JAX or PyTorch and no TensorFlow. Keras reads KERAS_BACKEND once, at its first import: select_backend
must come before anything imports keras (model.py, loss.py).
"""
import os
import resource

BACKENDS = ("tensorflow", "jax", "torch")
# The compute precisions a backend run takes, as Keras dtype policies (float32 weights under mixed ones).
BACKEND_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
GFLOP_480x640 = 245.4  # the paper's network, forward, per 480x640 image (bench_infer.py counts it)


def select_backend(backend):
    """Make Keras use backend; refuses if Keras was already imported with another one."""
    import sys

    os.environ["KERAS_BACKEND"] = backend
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise SystemExit(f"error: Keras already runs on {keras.backend.backend()}, not {backend}")
    if backend == "jax":
        # Compiled programs survive the process, even the small ones: building the network initialises
        # each weight shape by an eagerly compiled op (about 35 s on 2 CPU cores the first time, 8 s
        # with this cache), and a rerun of a configuration skips XLA's compile of its step.
        import jax

        jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_CACHE_DIR", "/tmp/jax_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def device_name(backend):
    """The accelerator the backend computes on, in words, or the CPU."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        kind = getattr(device, "device_kind", "")
        return device.platform.upper() + (f" {kind}" if kind and kind.lower() != device.platform else "")
    if backend == "torch":
        import torch

        return f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({len(gpus)})" if gpus else "CPU"


def peak_memory_mb(backend):
    """(peak MB so far, where): the accelerator's peak allocation, else the process's peak resident set."""
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**20, "device"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20, "device"
    else:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, "device"
    return own_peak_rss_mib(), "host RSS"


def own_peak_rss_mib():
    """This process's own peak resident memory in MiB: VmHWM of /proc/self/status.

    Not ru_maxrss: on Linux a child keeps its parent's ru_maxrss across fork and exec, so a child started by
    a parent that had grown large reports the parent's peak. VmHWM starts afresh with each program. Where
    /proc is missing (not Linux), ru_maxrss is the best there is.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_memory(backend):
    """Start the peak over where the backend allows it (PyTorch, TensorFlow); JAX's only grows."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")


def is_out_of_memory(err):
    """Whether an exception is the accelerator (or host) running out of memory, on any backend."""
    text = f"{type(err).__name__}: {err}".lower()
    return isinstance(err, MemoryError) or any(
        marker in text for marker in ("resource_exhausted", "out of memory", "outofmemory", "oom"))


DECODER_PARTS = ("conv2", "up1", "up2", "up3", "up4", "conv3")  # the decoder's layers are named after these


def network_part(layer_name):
    """The part of the network a layer belongs to, for FLOP and time splits: "encoder stem", "encoder
    block 1" .. "encoder block 4" (a dense block with the transition before it), or the decoder's own layer
    ("conv2", "up1" .. "up4", "conv3"). DenseNet's layers are named conv2_block1_..., pool2_...: a decoder
    prefix alone would take them for the decoder's conv2 and conv3."""
    if layer_name in ("conv2", "conv3"):
        return f"decoder {layer_name}"
    head = layer_name.split("_")[0]
    if head in DECODER_PARTS[1:5]:
        return f"decoder {head}"
    if head in ("conv2", "conv3", "conv4", "conv5"):
        return f"encoder block {int(head[-1]) - 1}"
    if head in ("pool2", "pool3", "pool4"):  # the transition into the next dense block
        return f"encoder block {int(head[-1])}"
    if head in ("bn", "relu"):  # DenseNet's final normalisation, after block 4
        return "encoder block 4"
    return "encoder stem"


def conv_flops_by_part(model, height, width):
    """{network_part: FLOPs per image}: 2 x multiply-accumulates of every Conv2D at height x width."""
    import keras

    # A copy with a fixed input size, so that every layer's output shape is known.
    model = keras.models.clone_model(model, input_tensors=keras.Input((height, width, 3)))
    parts = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        _, out_h, out_w, _ = layer.output.shape
        kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
        part = network_part(layer.name)
        parts[part] = parts.get(part, 0) + 2 * out_h * out_w * kernel_h * kernel_w * channels_in * channels_out
    return parts


def conv_flops(model, height, width):
    """(encoder, decoder) FLOPs per image, from conv_flops_by_part."""
    parts = conv_flops_by_part(model, height, width)
    decoder = sum(flops for part, flops in parts.items() if part.startswith("decoder"))
    return sum(parts.values()) - decoder, decoder


def error_line(err, limit=160):
    """An exception as one short line for a table cell."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
