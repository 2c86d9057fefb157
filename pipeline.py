"""The tf.data input pipeline: pictures prepared for the network, and training and validation batches.

    from pipeline import network_input, pipeline
    batches = pipeline(open_dataset("synthetic"), "train", batch_size=8, input_hw=(480, 640))

network_input is the one preparation of pictures for training, evaluation and inference. pipeline reads a
dataset (data.py) in a shuffled, per-pass reproducible order, augments it (augment.py) and makes the
paper's targets (depth.depth_norm at half resolution); training_inputs hands them to a distribution
strategy.
"""
import threading
from dataclasses import dataclass

import numpy as np

from augment import PERMUTE_PROBABILITY
from depth import depth_norm
from utils import InputError

# ---------------------------------------------------------------------------------------------------------
# Pictures for the network
# ---------------------------------------------------------------------------------------------------------


def network_input(images, hw=None):
    """What the network takes: float32 RGB in [0, 1], resized (bilinear, antialiased) to hw = (H, W).

    The one preparation of pictures for training (inside tf.data graphs), evaluation and inference.
    images: (H, W, 3) or (N, H, W, 3), uint8 or float in [0, 1], arrays or tensors; returns a tensor.
    """
    import tensorflow as tf

    images = tf.image.convert_image_dtype(images, tf.float32)
    if hw is None or tuple(images.shape[-3:-1]) == tuple(hw):
        return images
    resize = lambda: tf.clip_by_value(tf.image.resize(images, hw, antialias=True), 0.0, 1.0)  # noqa: E731
    if None not in images.shape[-3:-1]:
        return resize()
    # Decoded images have no static size: check at run time too, a same-size resize costs a full pass.
    same = tf.reduce_all(tf.shape(images)[-3:-1] == tf.constant(hw))
    return tf.cond(same, lambda: images, resize)


# ---------------------------------------------------------------------------------------------------------
# Training and validation batches
# ---------------------------------------------------------------------------------------------------------


class SampleErrors:
    """Bad samples met while reading (thread-safe): the first message, and a count when skipping."""

    def __init__(self):
        self._lock = threading.Lock()
        self.messages = []

    def record(self, message):
        with self._lock:
            self.messages.append(message)

    @property
    def count(self):
        return len(self.messages)

    @property
    def first(self):
        return self.messages[0] if self.messages else None


@dataclass(frozen=True)
class PipelineSettings:
    """How samples become network pairs, the same for the training and the validation pipeline.

    input_hw: the network's input size (dataset.train_hw is each dataset's own). seed: the shuffle and
    augmentation seed. skip_bad: count unreadable samples and go on instead of stopping. target: how depth
    becomes the target (TARGETS). canonical_focal: a focal length relative to the picture's width; each
    sample's depth is scaled by it over the sample's own (data.camera_of), the depth the same picture would
    have in that canonical camera (Metric3D's label-space transform).
    """

    input_hw: tuple
    seed: int = 0
    skip_bad: bool = False
    permute_probability: float = PERMUTE_PROBABILITY
    target: str = "paper"
    canonical_focal: float | None = None


def pipeline(dataset, split, batch_size, settings, training=True, errors=None, start_index=0, shard=(1, 0)):
    """Batches of (image (B, H, W, 3) float32 in [0, 1], target (B, H/2, W/2, 1 or 2)) for Keras.

    settings: a PipelineSettings (or an (height, width) input size: the defaults otherwise). training:
    shuffled with the seed, repeated, augmented and with whole batches only; otherwise one ordered pass over
    every sample. Targets are depth.depth_norm of the depth resized to the output size; sparse datasets add
    a validity-mask channel. start_index skips that many samples of the shuffled stream, so a resumed run
    sees what an uninterrupted one would have. shard=(n, i) keeps every n-th sample of that stream from the
    i-th (one input pipeline per worker machine).
    """
    import tensorflow as tf

    from augment import augment, seed_for

    if not isinstance(settings, PipelineSettings):
        settings = PipelineSettings(tuple(settings))
    input_hw, seed, skip_bad = settings.input_hw, settings.seed, settings.skip_bad
    samples = dataset.samples(split)
    errors = errors if errors is not None else SampleErrors()
    read = _sample_reader(dataset, samples, skip_bad, errors, settings.canonical_focal)
    if training:
        first_pass, offset = divmod(start_index, len(samples))
        ds = tf.data.Dataset.counter(first_pass).flat_map(lambda p: tf.data.Dataset.from_tensor_slices(
            pass_order(len(samples), seed, p)))
        ds = ds.skip(offset).enumerate(start=start_index)
    else:
        ds = tf.data.Dataset.range(len(samples)).enumerate().skip(start_index)
    ds = ds.shard(*shard)
    ds = ds.map(lambda k, i: (k, *read(i)), num_parallel_calls=tf.data.AUTOTUNE)
    if skip_bad:
        ds = ds.filter(lambda k, image, depth, ok: ok)

    def to_pair(k, image, depth, ok):
        image, y = network_pair(image, depth, input_hw, dataset, seed_for(k, seed), training, settings.target)
        if training:
            image, y = augment(image, y, seed_for(k, seed + 1), permute_probability=settings.permute_probability)
        return image, y

    ds = ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def training_inputs(dataset, batch_size, settings, strategy, errors):
    """(train_input(start_index) -> training batches as the strategy takes them, validation dataset), both
    made with settings (PipelineSettings).

    A tf.distribute strategy gets one pipeline per input worker, each its share of the global batch_size; a
    keras.distribution (JAX) or a single device takes the global batches and splits them itself.
    """
    import tensorflow as tf

    from distribute import is_tf_distribute

    def train_input(start_index):
        if not is_tf_distribute(strategy):
            return pipeline(dataset, "train", batch_size, settings, errors=errors, start_index=start_index)

        def dataset_fn(context):
            return pipeline(dataset, "train", context.get_per_replica_batch_size(batch_size), settings,
                            errors=errors, start_index=start_index,
                            shard=(context.num_input_pipelines, context.input_pipeline_id))
        return strategy.distribute_datasets_from_function(dataset_fn)

    val_ds = pipeline(dataset, "val", batch_size, settings, training=False, errors=errors)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return train_input, val_ds.with_options(options)


def validation_shared_by(dataset, devices):
    """(kept, count): the dataset's validation split cut to its first multiple of `devices` pairs, since a
    keras.distribution (JAX) stops on a last batch its devices cannot share evenly (tf.distribute pads it)."""
    count = len(dataset.samples("val"))
    kept = count - count % devices
    if not kept:
        raise InputError(f"{count} validation pairs cannot be shared by {devices} devices: use fewer --cpu-devices "
                         "or --gpus, or more --val-samples")
    if kept < count:
        dataset.limit("val", kept)
    return kept, count


def pass_order(count, seed, pass_index):
    """The sample order of one pass over the training set: a permutation drawn from (seed, pass) alone.

    Stateless on purpose: tf.data's shuffle(reshuffle_each_iteration=True) draws a new order for every
    iterator made of the dataset, and Keras makes an extra one when it first builds a model, so a fresh run
    and a resumed one would not see the same stream.
    """
    import tensorflow as tf

    pass_seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(pass_index, tf.int64)])
    return tf.cast(tf.argsort(tf.random.stateless_uniform([count], seed=pass_seed), stable=True), tf.int64)


def _sample_reader(dataset, samples, skip_bad, errors, canonical_focal=None):
    """A tf function index -> (uint8 image, depth metres, ok) that reads one sample in Python."""
    import tensorflow as tf

    def read_numpy(index):
        sample = samples[int(index)]
        try:
            rgb, depth, valid, camera = dataset.read(sample)
            if not np.any(valid & (depth > dataset.spec.depth_range.eval_min_m)):
                # Holes become far targets: an all-hole map would train and score as a perfect wall.
                raise InputError(f"{dataset.name}:{sample.depth}: no valid depth (every pixel is zero, "
                                 "negative or not finite)")
            if canonical_focal:
                depth = depth * np.float32(canonical_focal / (camera or dataset.camera).fx)
            return rgb, depth, True
        except InputError as err:
            errors.record(f"{err} ({sample.where})")
            if not skip_bad:
                raise
            return np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.float32), False

    def read(index):
        rgb, depth, ok = tf.numpy_function(read_numpy, [index], [tf.uint8, tf.float32, tf.bool], stateful=False)
        rgb.set_shape([None, None, 3])
        depth.set_shape([None, None])
        ok.set_shape([])
        return rgb, depth, ok

    return read


# How depth becomes the training target y = max_m / depth at the output size:
#   paper     depth area-averaged to the output size, clipped to the range, then inverted (the appendix);
#   released  the authors' January 2019 data.py, with which nyu.h5 was trained: inverted at full size with no
#             lower clip, then down-sampled with a blur (their scikit-image resize with anti-aliasing; here
#             TensorFlow's antialiased bilinear). A zero would give an infinite target: it is taken as the
#             smallest depth the 8-bit training PNGs store (max_m / 255). Dense data only.
TARGETS = ("paper", "released")


def network_pair(rgb, depth_m, input_hw, dataset, seed, training, target="paper"):
    """(image float32 (H, W, 3) in [0, 1], target (H/2, W/2, C)) at the network's input size, for training
    and validation alike (a spec with train_crop, KITTI's: a random crop when training, the bottom-centre one
    otherwise)."""
    import tensorflow as tf

    image = tf.image.convert_image_dtype(rgb, tf.float32)
    depth_m = depth_m[..., None]
    spec = dataset.spec
    if spec.train_crop:
        image, depth_m = _fixed_crop(image, depth_m, spec.train_hw, seed, training)
    image = network_input(image, input_hw)
    out_hw = (input_hw[0] // 2, input_hw[1] // 2)
    if spec.sparse:
        # Measured points must not be blended with holes: nearest keeps measured values only.
        depth_m = tf.image.resize(depth_m, out_hw, method="nearest")
        mask = tf.cast(depth_m > spec.depth_range.eval_min_m, tf.float32)
        return image, tf.concat([depth_norm(depth_m, spec.depth_range), mask], axis=-1)
    if target == "released":
        max_m = spec.depth_range.max_m
        y = max_m / tf.maximum(depth_m, max_m / 255.0)
        return image, tf.image.resize(y, out_hw, method="bilinear", antialias=True)
    depth_m = tf.image.resize(depth_m, out_hw, method="area")
    return image, depth_norm(depth_m, spec.depth_range)


def _fixed_crop(image, depth_m, crop_hw, seed, training):
    """A dataset's fixed training size (KITTI's): a random window when training, the bottom-centre one
    otherwise."""
    import tensorflow as tf

    crop_h, crop_w = crop_hw
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if training:
        top = tf.random.stateless_uniform([], seed, 0, height - crop_h + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([], seed + 7, 0, width - crop_w + 1, dtype=tf.int32)
    else:
        top, left = height - crop_h, (width - crop_w) // 2
    both = tf.concat([image, depth_m], axis=-1)[top:top + crop_h, left:left + crop_w]
    both.set_shape([crop_h, crop_w, 4])
    return both[..., :3], both[..., 3:]
