"""The paper's augmentation (section 3.3) as TensorFlow ops for tf.data pipelines, seeded and stateless.

- horizontal mirror of image and depth together, probability 0.5;
- permutation of the image's RGB channels, probability 0.25 (the reference code: 5/14, see
  REFERENCE_PERMUTE_PROBABILITY); when it fires, one of the five orderings that differ from RGB is drawn,
  so the observed rate is the probability.
  Depth is never colour-permuted.

    ds = ds.enumerate().map(lambda i, pair: augment(*pair, seed=seed_for(i, base_seed)))

Stateless ops keyed by (base seed, sample index) make a run reproducible and a resumed run draw the
same augmentations as an uninterrupted one. TensorFlow is imported by the ops, not by this module, so
the scripts' --help and the benches read the rates without starting it.
"""
import itertools

# Augmentation (paper section 3.3): mirror probability and colour-permutation probability.
FLIP_PROBABILITY = 0.5
PERMUTE_PROBABILITY = 0.25
# The reference code permutes colour channels with probability 0.5, drawing from seven orders of which two
# are RGB itself: a changed image 0.5 x 5/7 = 5/14 of the time (augment.py draws only real permutations).
REFERENCE_PERMUTE_PROBABILITY = 0.5 * 5 / 7

CHANNEL_ORDERS = tuple(p for p in itertools.permutations(range(3)) if p != (0, 1, 2))


def seed_for(index, base_seed):
    """A stateless-op seed, shape (2,), for sample number `index` of a run seeded with base_seed."""
    import tensorflow as tf

    return tf.stack([tf.cast(base_seed, tf.int64), tf.cast(index, tf.int64)])


def augment(image, target, seed, flip_probability=FLIP_PROBABILITY, permute_probability=PERMUTE_PROBABILITY):
    """(image, target) mirrored together and the image's channels permuted, at the given rates.

    image: (H, W, 3); target: (h, w, C) depth target (and mask channels), mirrored but never permuted.
    """
    import tensorflow as tf

    draws = tf.random.stateless_uniform([3], seed=seed)
    flip = draws[0] < flip_probability
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    target = tf.cond(flip, lambda: tf.reverse(target, axis=[1]), lambda: target)
    order = tf.constant(CHANNEL_ORDERS)[tf.cast(draws[2] * len(CHANNEL_ORDERS), tf.int32) % len(CHANNEL_ORDERS)]
    image = tf.cond(draws[1] < permute_probability, lambda: permuted_channels(image, order), lambda: image)
    return image, target


def permuted_channels(image, order):
    """image[..., order] as a product with a permutation matrix: exact, and ~4x faster than tf.gather."""
    import tensorflow as tf

    permutation = tf.one_hot(order, 3, dtype=image.dtype)
    return tf.reshape(tf.linalg.matmul(tf.reshape(image, [-1, 3]), permutation, transpose_b=True), tf.shape(image))
