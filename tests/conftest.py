"""Shared test set-up: quiet TensorFlow, fixed seeds, and one fixture per kind of model and dataset.

Every fixture here is session-scoped and built once: the small network (the tiny encoder, model.tiny_densenet,
with the paper's decoder), saved with and without a contract; the paper's full-size network (slow tests only);
the synthetic rooms the training subprocesses read; and the environment those subprocesses run in.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests are CPU-only and must never wait for a GPU

import numpy as np
import pytest

SYNTHETIC = "synthetic:24:8"  # the rooms every training subprocess reads (train.py --smoke's own)


@pytest.fixture(scope="session")
def full_model():
    """The paper's network (DenseNet-169, full-width decoder) with random weights, seeded."""
    import keras

    from model import create_model

    keras.utils.set_random_seed(0)
    return create_model(weights=None)


@pytest.fixture(scope="session")
def small_model():
    """The small network (tiny encoder, the paper's decoder) whose output is scaled into the depth range
    (mostly 1-10 m), so depth varies and is not clipped: a flipped, shifted or half-size prediction shows."""
    from helpers import varied_small_model

    return varied_small_model(seed=0)


@pytest.fixture(scope="session")
def small_model_path(small_model, tmp_path_factory):
    """small_model saved as a .keras file without a contract (as models saved before contracts were)."""
    path = tmp_path_factory.mktemp("models") / "small.keras"
    small_model.save(path)
    return path


@pytest.fixture(scope="session")
def contract_model(small_model, tmp_path_factory):
    """(path, contract) of small_model saved with a contract: synthetic rooms, NYU's range, trained at 65x97
    from reduced pictures for 5000 steps (so no 'barely trained' warning)."""
    from contract import model_contract, save_model
    from depth import NYU

    contract = model_contract(small_model, "synthetic", NYU, (65, 97), reduced_input=True, training={"steps": 5000})
    path = tmp_path_factory.mktemp("models") / "contract.keras"
    save_model(small_model, path, contract)
    return path, contract


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A cache folder (DENSEDEPTH_CACHE) holding the SYNTHETIC rooms, rendered once."""
    from synthetic import synthetic_dataset_path

    cache = tmp_path_factory.mktemp("cache")
    synthetic_dataset_path(SYNTHETIC, cache)
    return cache


@pytest.fixture(scope="session")
def script_env(synthetic_cache, tmp_path_factory):
    """The environment of the scripts the tests start: CPU only, quiet, the rendered rooms, scratch TMPDIR."""
    scratch = tmp_path_factory.mktemp("scratch")  # non-chief workers' folders (tempfile honours TMPDIR)
    environ = {**os.environ, "DENSEDEPTH_CACHE": str(synthetic_cache), "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(scratch), "KERAS_BACKEND": "tensorflow"}
    environ.pop("TF_CONFIG", None)
    return environ


@pytest.fixture
def nyu_zip(tmp_path):
    """A small NYU Depth v2 zip (datagen.nyu_members: 3 training and 2 test pairs) in the test's tmp_path."""
    from datagen import nyu_members, write_zip

    return write_zip(tmp_path / "nyu_data.zip", nyu_members())


@pytest.fixture
def rng():
    return np.random.default_rng(0)
