"""pipeline.py: the tf.data pipeline over a dataset: images in [0, 1] and depth targets without inf or NaN,
KITTI's fixed training crop, seeded and resumable passes, and unreadable samples named or skipped and counted."""
import numpy as np
import pytest
import tensorflow as tf

from data import open_dataset
from datagen import encoded, kitti_folder, nyu_members, write_zip
from helpers import first_batch
from pipeline import PipelineSettings, SampleErrors, pipeline


def test_images_are_scaled_to_unit_range(nyu_zip):
    dataset = open_dataset(nyu_zip)
    rgb, _ = dataset.read(dataset.samples("test")[0])[:2]
    images, _ = first_batch(dataset, "test")
    np.testing.assert_allclose(images[0].numpy(), rgb / 255.0, atol=1e-6)


def test_kitti_training_crop_is_fixed_size(tmp_path):
    dataset = open_dataset(kitti_folder(tmp_path / "kitti"))
    images, targets = next(iter(pipeline(dataset, "train", 2, dataset.spec.train_hw, training=True)))
    assert images.shape == (2, 352, 1216, 3) and targets.shape == (2, 176, 608, 2)


def test_depth_holes_never_become_inf_or_nan(tmp_path):
    members = nyu_members(test_depth_mm=2500)
    half = np.full((32, 48), 2500, np.uint16)
    half[:, :24] = 0  # holes: the far limit, target 1; 2.5 m: target 4
    members["data/nyu2_test/00000_depth.png"] = encoded(half)
    dataset = open_dataset(write_zip(tmp_path / "holes.zip", members))
    _, targets = first_batch(dataset, "test")
    assert np.all(np.isfinite(targets)) and targets.numpy().min() == 1.0 and targets.numpy().max() == 4.0
    # A map of holes only has no ground truth at all: a bad sample named by its file, not a perfect far wall.
    members["data/nyu2_test/00000_depth.png"] = encoded(np.zeros((32, 48), np.uint16))
    dataset = open_dataset(write_zip(tmp_path / "all_holes.zip", members))
    with pytest.raises(Exception, match="00000_depth.png: no valid depth"):
        first_batch(dataset, "test")


def test_training_pipeline_is_seeded_and_resumable(nyu_zip):
    dataset = open_dataset(nyu_zip)

    def run(seed, start=0):
        settings = PipelineSettings((32, 48), seed=seed)
        return [b[0].numpy() for b in pipeline(dataset, "train", 2, settings, start_index=start).take(4)]

    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # Skipping 4 samples (2 batches) gives the third and fourth batches of the uninterrupted run.
    resumed = run(1, start=4)
    np.testing.assert_array_equal(resumed[0], a[2])
    np.testing.assert_array_equal(resumed[1], a[3])


def test_every_iterator_of_a_training_pipeline_sees_one_stream_of_whole_passes(nyu_zip):
    """Keras makes an extra iterator when it first builds a model: a stream that changed with each iterator
    would give a fresh run other batches than a resumed one. Each pass holds every sample once, in an order
    of its own; a start inside a later pass continues that pass."""
    dataset = open_dataset(nyu_zip)
    settings = PipelineSettings((32, 48), seed=3, permute_probability=0.5)
    ds = pipeline(dataset, "train", 1, settings)
    # A picture's mean survives mirroring and channel permutation: it names the sample.
    names = lambda batches: [round(float(b[0].numpy().mean()), 4) for b in batches]  # noqa: E731
    first, second = names(ds.take(12)), names(ds.take(12))
    assert first == second
    passes = [first[i:i + 3] for i in range(0, 12, 3)]
    assert all(sorted(p) == sorted(passes[0]) and len(set(p)) == 3 for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # reshuffled between passes
    resumed = names(pipeline(dataset, "train", 1, settings, start_index=7).take(5))
    assert resumed == first[7:12]


def test_corrupt_image_in_zip_is_named_or_skipped_and_counted(tmp_path):
    members = nyu_members()
    members["data/nyu2_test/00001_colors.png"] = b"\x89PNG\r\n\x1a\n broken"
    dataset = open_dataset(write_zip(tmp_path / "bad.zip", members))
    errors = SampleErrors()
    with pytest.raises(tf.errors.OpError):
        first_batch(dataset, "test", errors=errors)
    assert errors.first.startswith(f"{tmp_path / 'bad.zip'}:data/nyu2_test/00001_colors.png: cannot decode image")
    assert "data/nyu2_test.csv row 2" in errors.first
    errors = SampleErrors()
    images, _ = first_batch(dataset, "test", errors=errors, skip_bad=True)
    assert images.shape[0] == 1 and errors.count == 1


def test_a_benchmark_trains_with_its_holes_masked(tmp_path):
    """iBims-1 read for fine-tuning: its invalid and transparent pixels travel as a mask channel (the loss
    then ignores them), and the target elsewhere is the depth's, on the spec's range."""
    from test_benchmarks import ibims1_masks, write_ibims1_png

    from datasets import spec_named
    from depth import depth_norm

    write_ibims1_png(tmp_path, ["a", "b"])
    dataset = open_dataset(f"ibims1:{tmp_path}")
    assert dataset.spec is spec_named("ibims1") and len(dataset.samples("train")) == 2
    _, targets = next(iter(pipeline(dataset, "train", 2, (12, 16), training=False)))
    targets = np.asarray(targets)
    assert targets.shape == (2, 6, 8, 2)
    _, depth, valid, _ = dataset.read(dataset.samples("train")[0])
    half_valid = valid[1::2, 1::2]  # a nearest resize of 12x16 to 6x8 takes every other pixel, from the second
    assert not ibims1_masks()[1][1::2, 1::2][half_valid].any() and not half_valid.all()  # holes are masked
    np.testing.assert_array_equal(targets[0, ..., 1], half_valid.astype(np.float32))
    expected = np.asarray(depth_norm(depth[1::2, 1::2][half_valid], dataset.spec.depth_range))
    np.testing.assert_allclose(targets[0, ..., 0][half_valid], expected, rtol=1e-5)
