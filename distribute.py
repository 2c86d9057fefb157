"""Where training runs: the tf.distribute strategy over this machine's devices (or several machines) on
TensorFlow, keras.distribution.DataParallel over the local devices on JAX, the compute precision, and the
one patch Keras needs for multi-worker fit().

    strategy = make_strategy(gpus=None, cpu_devices=1)    # over every visible GPU: MirroredStrategy / DataParallel
    replicas(strategy)                                     # how many devices share each global batch
    workers, index, is_chief = cluster_spec()              # from TF_CONFIG; (1, 0, True) without it

TensorFlow and Keras are imported inside the functions, so train.py answers --help at once.
"""
import contextlib
import json
import os

from utils import InputError, set_precision


def cluster_spec():
    """(number of workers, this worker's index, is chief) from TF_CONFIG; (1, 0, True) without it."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers <= 1:
        return 1, 0, True
    is_chief = task.get("type") == "chief" or ("chief" not in cluster and task.get("index", 0) == 0)
    return workers, task.get("index", 0), is_chief


def make_strategy(gpus=None, cpu_devices=1):
    """MultiWorkerMirroredStrategy under a multi-worker TF_CONFIG, else MirroredStrategy over the devices;
    on JAX, keras.distribution.DataParallel over the local devices (set as Keras' distribution).

    gpus: use only the first N GPUs; cpu_devices: without GPUs, split the CPU into N logical devices
    (to test distribution on a laptop or in CI).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return data_parallel(gpus, cpu_devices)
    import tensorflow as tf

    visible = tf.config.list_physical_devices("GPU")
    if gpus is not None:
        tf.config.set_visible_devices(visible[:gpus], "GPU")
        visible = visible[:gpus]
    if cpu_devices > 1 and not visible:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if cluster_spec()[0] > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if visible:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_devices)])


def split_host_cpu(cpu_devices):
    """Make JAX's CPU N devices, as TensorFlow's logical devices do; only before JAX starts its runtime."""
    if cpu_devices > 1:
        flag = f"--xla_force_host_platform_device_count={cpu_devices}"
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), flag]).strip()


def data_parallel(gpus, cpu_devices):
    """keras.distribution.DataParallel over the first `gpus` accelerators (default all), else over
    cpu_devices CPU devices (split_host_cpu must have run before JAX started), set as Keras' distribution;
    a SingleDevice where that is one device."""
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise InputError(f"train.py trains on the TensorFlow or JAX backend, not KERAS_BACKEND={backend}")
    if cluster_spec()[0] > 1:
        raise InputError("multi-worker training (TF_CONFIG) needs the TensorFlow backend; unset KERAS_BACKEND=jax")
    devices = keras.distribution.list_devices()  # the GPUs, or else the CPU devices
    if devices[0].startswith(("gpu", "cuda")):
        devices = devices[:gpus]
    elif len(devices) < cpu_devices:
        raise InputError(f"--cpu-devices {cpu_devices}: JAX started with {len(devices)} CPU device(s); "
                         f"set XLA_FLAGS=--xla_force_host_platform_device_count={cpu_devices} before it starts")
    else:
        devices = devices[:cpu_devices]
    if len(devices) == 1:
        return SingleDevice()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution


class SingleDevice:
    """JAX on one device, without a keras.distribution: a one-device DataParallel gives the first steps'
    variables different shardings, and Keras 3.15 compiles the training step three times instead of once."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def replicas(strategy):
    """How many devices share each global batch, under a tf.distribute strategy or a Keras distribution."""
    if hasattr(strategy, "num_replicas_in_sync"):
        return strategy.num_replicas_in_sync
    return strategy.device_mesh.devices.size


def is_tf_distribute(strategy):
    """Whether the strategy is tf.distribute's (which feeds per-replica datasets) or a Keras one (JAX)."""
    return hasattr(strategy, "distribute_datasets_from_function")


def strategy_name(strategy):
    """MultiWorkerMirroredStrategy, MirroredStrategy or DataParallel."""
    return "MultiWorkerMirroredStrategy" if cluster_spec()[0] > 1 else type(strategy).__name__


def has_gpu():
    """Whether the Keras backend computes on a GPU."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return keras.distribution.list_devices()[0].startswith(("gpu", "cuda"))


def training_precision(precision):
    """Set Keras' dtype policy for --precision (float32, bfloat16, float16, or mixed: float16 on GPUs and
    bfloat16 on CPUs); returns the policy's name."""
    import keras

    if precision == "mixed":
        precision = "float16" if has_gpu() else "bfloat16"
    set_precision(precision)
    return keras.mixed_precision.global_policy().name


# ---------------------------------------------------------------------------------------------------------
# Keras 3's fit() under MultiWorkerMirroredStrategy (keras-team/keras#20585, open)
# ---------------------------------------------------------------------------------------------------------

# The private Keras names the patch reads or replaces; checked before use.
PATCHED_NAMES = ("reduce_per_replica", "_collective_all_reduce_multi_worker")


def keras_multi_worker_fixes(model, strategy):
    """Let fit() run under MultiWorkerMirroredStrategy.

    Keras' TensorFlow trainer fails there twice: the symbolic build reduces the first batch's (x, y) tuple
    across workers ("Attempt to convert a value (PerReplica...)"), and each step's scalar logs are
    averaged with axis=0 ("Invalid reduction dimension 0 for input with 0 dimensions"). Build from this
    worker's own first batch, and average scalar logs over the replicas without an axis. A Keras whose
    private names differ gets one line naming its version, not a failure deep inside fit().
    """
    import types

    import keras

    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer
    except ImportError as err:
        raise InputError(f"multi-worker training needs a Keras 3 whose private modules it patches; Keras "
                         f"{keras.__version__} has none ({err})") from err
    missing = [name for name in PATCHED_NAMES if not hasattr(trainer, name)]
    if missing or not hasattr(model, "_symbolic_build"):
        raise InputError(f"multi-worker training patches Keras internals that Keras {keras.__version__} lacks "
                         f"({', '.join(missing or ['Model._symbolic_build'])}); use Keras 3.3-3.15 or one worker")

    def local(value):
        return strategy.experimental_local_results(value)[0]

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local, next(batches))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction, keras_reduce=trainer.reduce_per_replica):
        if (reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy)
                and all(local(v).shape.rank == 0 for v in tree.flatten(values))):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    if not getattr(trainer.reduce_per_replica, "multi_worker_fix", False):
        reduce_per_replica.multi_worker_fix = True
        trainer.reduce_per_replica = reduce_per_replica
