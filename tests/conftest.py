"""Shared test set-up: quiet TensorFlow, fixed seeds, and a small network built once per session."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests are CPU-only and must never wait for a GPU

import numpy as np
import pytest


@pytest.fixture(scope="session")
def full_model():
    """The paper's network (DenseNet-169, full-width decoder) with random weights, seeded."""
    import keras

    from model import create_model

    keras.utils.set_random_seed(0)
    return create_model(weights=None)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A small random DenseDepth (no contract) whose output is scaled into the depth range (mostly 1-10 m),
    so depth varies and is not clipped."""
    from helpers import varied_tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    varied_tiny_model(seed=0).save(path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
