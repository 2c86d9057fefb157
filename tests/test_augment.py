"""Augmentation: observed rates over many draws, joint mirroring, depth never permuted, seeding."""
import numpy as np
import pytest
import tensorflow as tf

from augment import augment, seed_for

N = 4000


def draws(permute_probability=0.25, base_seed=7):
    """Augment N tiny pairs inside tf.data; return (image, target) arrays."""
    image = np.zeros((2, 3, 3), np.float32)
    image[..., 0], image[..., 1], image[..., 2] = 1.0, 2.0, 3.0
    image[:, 0] += 10.0  # mark the left column so mirroring is visible
    target = np.zeros((1, 2, 2), np.float32)
    target[:, 0, 0] = 5.0
    target[:, 0, 1] = 1.0  # a second channel (mask) must follow the depth channel
    ds = tf.data.Dataset.from_tensors((image, target)).repeat(N).enumerate()
    ds = ds.map(lambda i, pair: augment(*pair, seed=seed_for(i, base_seed),
                                        permute_probability=permute_probability))
    out = list(ds.batch(N).as_numpy_iterator())[0]
    return image, target, out[0], out[1]


@pytest.mark.parametrize("permute_probability", [0.25, 0.5])
def test_observed_rates(permute_probability):
    image, target, images, targets = draws(permute_probability)
    flipped = targets[:, 0, 0, 0] == 0.0
    flip_rate = flipped.mean()
    # Binomial standard error at N=4000 is under 0.008: allow four of them.
    assert abs(flip_rate - 0.5) < 0.032
    channel_means = images.mean(axis=(1, 2)) - images.mean(axis=(1, 2)).min(axis=1, keepdims=True)
    permuted = ~np.all(np.isclose(channel_means, [0.0, 1.0, 2.0]), axis=1)
    assert abs(permuted.mean() - permute_probability) < 0.032
    # Every non-identity ordering appears, each about equally often.
    orders = {tuple(np.argsort(m)) for m in channel_means[permuted]}
    assert len(orders) == 5


def test_image_and_depth_are_mirrored_together_and_depth_is_never_permuted():
    image, target, images, targets = draws()
    flipped_target = targets[:, 0, 0, 0] == 0.0
    flipped_image = images[:, 0, 0].max(axis=-1) < 10.0
    np.testing.assert_array_equal(flipped_target, flipped_image)
    # The target keeps its values and its channel order in every draw.
    for t, f in zip(targets, flipped_target):
        np.testing.assert_array_equal(t, target[:, ::-1] if f else target)


def test_same_seed_same_draws_other_seed_other_draws():
    a = draws(base_seed=1)[2]
    b = draws(base_seed=1)[2]
    c = draws(base_seed=2)[2]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
