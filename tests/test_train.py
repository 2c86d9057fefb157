"""train.py end to end, each run in a fresh process (devices and TF_CONFIG are fixed when TensorFlow starts).

Every run trains the tiny encoder (model.tiny_densenet): the code paths here do not depend on DenseNet-169's
size. One smoke run is shared: its folder is checked whole, and copies of it are resumed, killed mid-epoch and
resumed again (ending as an uninterrupted run does), and pushed into a diverging loss. Distribution is checked
on CPU: MirroredStrategy over two logical devices, and MultiWorkerMirroredStrategy over two worker processes on
127.0.0.1, which must end with the same trained weights as each other and as the one-process, two-replica run,
which saw the same global batches. Under JAX: one device, two devices (keras.distribution.DataParallel), and
a resume. Runs that do not depend on each other start together. The one-line errors of train.py's flags and
data are rows of tests/test_bad_inputs.py, run in process.

Runs that should train alike are compared by their trainable weights against what training can move them:
Adam moves a weight by at most about lr per step, so runs that saw other batches or lost their optimizer
state differ by a sizeable part of lr x steps, while float32 sums taken in another order (two replicas'
gradients added in another order, another compiled program) leave them within a small fraction of it.
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTHETIC

from helpers import requires

pytestmark = pytest.mark.slow  # every test here trains in subprocesses

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "train.py")
# The small runs: the tiny encoder at 64x64, two validation images, two steps.
TINY = ["--data", SYNTHETIC, "--encoder", "tiny", "--weights", "none", "--input-size", "64x64", "--val-samples", "2",
        "--bs", "2", "--epochs", "1", "--steps-per-epoch", "2"]
LR = 1e-4  # train.py's default, which every run here uses
LOG_COLUMNS = {"epoch", "loss", "l1", "grad", "ssim", "val_loss", "val_a1", "val_abs_rel", "val_rmse"}
TIMEOUT_S = 900  # one training process; generous, for a loaded two-core machine
ROUNDING_FRACTION = 0.05  # of lr x steps: what rounding may leave between runs that trained alike


@pytest.fixture(scope="module")
def env(script_env):
    return script_env


def train(env, *args, cwd=REPO, timeout=TIMEOUT_S):
    return subprocess.run([sys.executable, TRAIN, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


class Background:
    """python train.py ARGS started now; result() waits for it (output goes to files: no pipe to fill)."""

    def __init__(self, env, *args):
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen([sys.executable, TRAIN, *args], cwd=REPO, env=env, stdout=self.out,
                                        stderr=self.err, text=True)
        self.completed = None

    def result(self, timeout=TIMEOUT_S):
        if self.completed is None:
            try:
                self.process.wait(timeout)
            finally:
                self.process.kill()
            self.out.seek(0)
            self.err.seek(0)
            self.completed = subprocess.CompletedProcess(self.process.args, self.process.returncode,
                                                         self.out.read(), self.err.read())
        return self.completed


def succeeded(result):
    assert result.returncode == 0, f"train.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def assert_one_line_error(result, *fragments):
    """Exit status != 0, no traceback, and the last line of stderr is the message."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "error: " in last, last
    for fragment in fragments:
        assert fragment in last, last
    return last


def log_rows(folder):
    with open(folder / "log.csv") as f:
        return list(csv.DictReader(f))


def read_state(folder):
    return json.loads((folder / "checkpoints" / "state.json").read_text())


def read_config(folder):
    return json.loads((folder / "config.json").read_text())


def head_commit():
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def assert_trained_alike(path, reference_path, steps, lr=LR):
    """The trainable weights of two saved models differ by under ROUNDING_FRACTION of lr x steps (root mean
    square over all of them), and no single weight by more than lr x steps: see the module docstring."""
    ours, reference = named_weights(path), named_weights(reference_path)
    assert ours.keys() == reference.keys()
    trainable = [name for name, (_, is_trainable) in reference.items() if is_trainable]
    differences = np.concatenate([(ours[n][0] - reference[n][0]).ravel() for n in trainable])
    rms, worst = float(np.sqrt(np.mean(differences ** 2))), float(np.abs(differences).max())
    assert rms < ROUNDING_FRACTION * lr * steps and worst < lr * steps, (rms, worst, lr * steps)
    return rms


def copy_run(folder, root):
    """A copy of a run folder to resume: checkpoints hard-linked (train.py never rewrites one), no .keras files."""
    def link_or_copy(src, dst):
        if src.endswith(".weights.h5"):
            try:
                return os.link(src, dst)
            except OSError:  # another file system
                pass
        shutil.copy2(src, dst)

    copy = root / folder.name
    shutil.copytree(folder, copy, copy_function=link_or_copy, ignore=shutil.ignore_patterns("*.keras"))
    return copy


def summaries(event_dir):
    """{tag: [(step, value)]} of the tensorboard event files in one folder."""
    import tensorflow as tf

    found = {}
    for path in sorted(event_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value))
    return found


# ---------------------------------------------------------------------------------------------------------
# The smoke run, and its run folder
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_runs(env, tmp_path_factory):
    """Started together: the smoke run, the same run for four epochs without a stop (what a resumed smoke
    run must end as), and the two-device run."""
    smoke_root, mirrored_root = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("mirrored")
    started = {"smoke": Background(env, "--smoke", "--run-dir", str(smoke_root), "--name", "smoke"),
               "smoke4": Background(env, "--smoke", "--epochs", "4", "--run-dir", str(smoke_root), "--name", "smoke4"),
               "mirrored": Background(env, *TINY, "--cpu-devices", "2", "--run-dir", str(mirrored_root),
                                      "--name", "two_devices")}
    folders = {"smoke": smoke_root / "smoke", "smoke4": smoke_root / "smoke4",
               "mirrored": mirrored_root / "two_devices"}
    yield {name: (folders[name], run) for name, run in started.items()}
    for run in started.values():
        run.process.kill()


def finished(first_runs, name):
    folder, run = first_runs[name]
    return folder, succeeded(run.result())


@pytest.fixture(scope="module")
def smoke(first_runs):
    return finished(first_runs, "smoke")


@pytest.fixture(scope="module")
def mirrored(first_runs):
    return finished(first_runs, "mirrored")


def test_smoke_run_leaves_a_complete_run_folder(smoke):
    folder, result = smoke
    config = read_config(folder)
    assert (config["strategy"], config["workers"], config["replicas"]) == ("MirroredStrategy", 1, 1)
    assert (config["global_batch"], config["per_replica_batch"], config["steps_per_epoch"]) == (2, 2, 3)
    assert (config["precision"], config["backend"], config["input_hw"]) == ("float32", "tensorflow", [64, 96])
    assert config["settings"]["smoke"] and config["settings"]["epochs"] == 2 and config["settings"]["weights"] == "none"
    assert config["settings"]["encoder"] == "tiny"  # --smoke trains the tiny encoder
    assert "train.py" in config["command"] and "--smoke" in config["command"]
    assert config["git_commit"] == head_commit()  # the tests run in a git checkout
    assert "Total params" in (folder / "model_summary.txt").read_text()
    banner = next(line for line in result.stdout.splitlines() if line.startswith("strategy"))
    assert "replicas 1 | global batch 2 | per-replica batch 2 | steps/epoch 3" in banner  # config.json's, said

    rows = log_rows(folder)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert LOG_COLUMNS <= set(rows[0])
    assert all(np.isfinite(float(r[c])) for r in rows for c in LOG_COLUMNS)

    train_tags = summaries(folder / "tensorboard" / "train")
    val_tags = summaries(folder / "tensorboard" / "validation")
    assert {"epoch_loss", "epoch_l1", "epoch_ssim"} <= set(train_tags), sorted(train_tags)
    assert {"epoch_loss", "epoch_a1", "epoch_rmse"} <= set(val_tags), sorted(val_tags)
    samples = summaries(folder / "tensorboard" / "samples")["val_samples"]
    assert [step for step, _ in samples] == [1, 2]
    assert samples[0][1].metadata.plugin_data.plugin_name == "images"

    state = read_state(folder)
    assert (state["epoch"], state["epoch_step"], state["global_step"]) == (2, 0, 6)
    assert (folder / "checkpoints" / state["checkpoint"]).is_file()
    # The newest two are kept, the older one's state beside the newest's: a fallback for a damaged file.
    assert sorted(p.name for p in (folder / "checkpoints").glob("*.weights.h5")) == \
        [state["previous"]["checkpoint"], state["checkpoint"]]
    assert (state["previous"]["epoch"], state["previous"]["global_step"]) == (1, 3)

    from contract import read_contract
    from depth import NYU
    from model import load_model

    contract = read_contract(folder / "final.keras")
    assert (contract.dataset, contract.depth_range, contract.input_hw) == ("synthetic", NYU, (64, 96))
    assert contract.reduced_input and contract.upsampling == "half_pixel"
    assert contract.training["steps"] == 6 and contract.training["smoke"] is True
    assert contract.training["recipe"] == "paper" and contract.git_commit == head_commit()
    assert contract.encoder == "tiny"
    assert read_contract(folder / "best.keras").training["best_epoch"] == state["best_epoch"]

    image = np.random.default_rng(0).random((1, 64, 96, 3), dtype=np.float32)
    for name in ("best.keras", "final.keras"):
        depth = np.asarray(load_model(folder / name).predict(image, verbose=0))
        assert depth.shape == (1, 32, 48, 1) and np.isfinite(depth).all()


# ---------------------------------------------------------------------------------------------------------
# Distribution on CPU: two logical devices, then two worker processes
# ---------------------------------------------------------------------------------------------------------


def test_mirrored_over_two_cpu_devices(mirrored):
    folder, _ = mirrored
    config = read_config(folder)
    assert (config["strategy"], config["workers"], config["replicas"]) == ("MirroredStrategy", 1, 2)
    assert (config["global_batch"], config["per_replica_batch"], config["steps_per_epoch"]) == (2, 1, 2)
    assert (folder / "final.keras").is_file()
    assert read_state(folder)["global_step"] == 2


def test_batch_not_divisible_by_replicas(env, tmp_path):
    result = train(env, "--data", SYNTHETIC, "--weights", "none", "--bs", "3", "--cpu-devices", "2",
                   "--run-dir", str(tmp_path))
    assert_one_line_error(result, "--bs 3 is not divisible by the 2 replicas")
    assert not any(tmp_path.iterdir())


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def named_weights(path):
    """{variable path: (array, trainable)} of a saved model."""
    from model import load_model

    return {w.path: (w.numpy(), w.trainable) for w in load_model(path).weights}


def test_two_workers_train_one_model(mirrored, env, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    configs = [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    workers = [Background({**env, "TF_CONFIG": config}, *TINY, "--run-dir", str(tmp_path), "--name", "two_workers")
               for config in configs]
    chief_run, other_run = (succeeded(w.result()) for w in workers)

    folder = tmp_path / "two_workers"  # worker 0 is the chief: it alone writes the run folder
    assert {"config.json", "log.csv", "tensorboard", "checkpoints", "final.keras"} <= {p.name for p in folder.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["two_workers"]
    config = read_config(folder)
    assert (config["strategy"], config["workers"], config["replicas"]) == ("MultiWorkerMirroredStrategy", 2, 2)
    assert (config["global_batch"], config["per_replica_batch"]) == (2, 1)
    line = next(line for line in other_run.stdout.splitlines() if line.startswith("worker 1 is not the chief"))
    scratch = Path(line.rsplit(" go to ", 1)[1])
    assert scratch.resolve() != folder.resolve() and (scratch / "final.keras").is_file()

    chief, other = named_weights(folder / "final.keras"), named_weights(scratch / "final.keras")
    trainable = [name for name, (_, is_trainable) in chief.items() if is_trainable]
    assert trainable and all(np.array_equal(chief[n][0], other[n][0]) for n in trainable)  # one all-reduce
    # Keras 3 keeps batch-norm moving averages per replica: each worker's come from the images it read.
    moving = [name for name in chief if name.endswith("moving_mean")]
    assert any(not np.array_equal(chief[n][0], other[n][0]) for n in moving)

    # Worker i read samples i, i + 2, ... of the shuffled stream, so every global batch is the one the
    # two-device run split between its replicas: the same trained weights, to rounding.
    assert_trained_alike(folder / "final.keras", mirrored[0] / "final.keras", steps=2)
    assert set(named_weights(mirrored[0] / "final.keras")) == set(chief)


# ---------------------------------------------------------------------------------------------------------
# Resume: a run killed mid-epoch continues from its last checkpoint; a diverging loss stops the run
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diverging(smoke, env, tmp_path_factory):
    """The smoke run resumed for one more epoch at an absurd learning rate, started in the background.

    Adam moves every weight by about lr on its first step, so the next loss overflows.
    """
    root = tmp_path_factory.mktemp("diverging")
    folder = copy_run(smoke[0], root)
    before = read_state(folder)
    run = Background(env, "--init", "resume", "--run-dir", str(root), "--name", folder.name, "--epochs", "3",
                     "--lr", "1e30")
    yield folder, before, run
    run.process.kill()


@pytest.mark.usefixtures("diverging")  # started now, in the background, for the test after this one
def test_killed_run_resumes_where_it_stopped(smoke, first_runs, env, tmp_path):
    folder = copy_run(smoke[0], tmp_path)
    resume = ["--init", "resume", "--run-dir", str(tmp_path), "--name", folder.name, "--epochs", "4"]

    # Extend the smoke run to 4 epochs, checkpointing every step, and kill it inside its third epoch.
    killed = Background(env, *resume, "--save-every", "1")
    deadline = time.monotonic() + TIMEOUT_S
    while killed.process.poll() is None and time.monotonic() < deadline:
        state = read_state(folder)
        if state["epoch"] == 2 and state["epoch_step"] > 0:
            killed.process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)  # the tiny network's epoch takes well under a second
    result = killed.result()
    assert result.returncode == -signal.SIGKILL, f"ended unkilled:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    state = read_state(folder)
    assert state["epoch"] == 2 and 0 < state["epoch_step"] < 3, state
    assert (folder / "checkpoints" / state["checkpoint"]).is_file()

    result = succeeded(train(env, *resume))
    assert "steps/epoch 3" in result.stdout
    rows = log_rows(folder)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    end = read_state(folder)
    assert (end["epoch"], end["epoch_step"], end["global_step"]) == (4, 0, 12)
    assert (folder / "final.keras").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert [r["global_step"] for r in config["resumes"]] == [6, state["global_step"]]
    # Weights, Adam's moments and the data position came back twice (at an epoch's end, then mid-epoch
    # after the kill): the run ends as the same four epochs run without a stop...
    uninterrupted, _ = finished(first_runs, "smoke4")
    assert_trained_alike(folder / "final.keras", uninterrupted / "final.keras", steps=12)
    # ...which the check can tell from the two-epoch run it started from (six steps short).
    with pytest.raises(AssertionError):
        assert_trained_alike(smoke[0] / "final.keras", uninterrupted / "final.keras", steps=12)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(diverging):
    folder, before, run = diverging
    last = assert_one_line_error(run.result())
    assert last.startswith("error: loss became"), last
    assert before["checkpoint"] in last
    assert read_state(folder) == before
    assert (folder / "checkpoints" / before["checkpoint"]).is_file()
    assert not (folder / "final.keras").exists()
    assert json.loads((folder / "config.json").read_text())["resumes"][-1]["lr"] == 1e30


# ---------------------------------------------------------------------------------------------------------
# KERAS_BACKEND=jax: one device, two devices through keras.distribution.DataParallel, and a resume
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jax_env(env):
    return {**env, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def jax_runs(jax_env, tmp_path_factory):
    """Three JAX runs of the tiny set-up, started together: two epochs on one device, the same on two
    devices, and three epochs on one device (what a resumed two-epoch run must end as)."""
    root = tmp_path_factory.mktemp("jax_runs")
    tiny = [*TINY, "--epochs", "2"]  # the last --epochs counts
    started = {"one": Background(jax_env, *tiny, "--run-dir", str(root), "--name", "one"),
               "two": Background(jax_env, *tiny, "--cpu-devices", "2", "--val-samples", "3", "--run-dir", str(root),
                                 "--name", "two"),
               "three_epochs": Background(jax_env, *tiny, "--epochs", "3", "--run-dir", str(root),
                                          "--name", "three_epochs")}
    yield {name: (root / name, run) for name, run in started.items()}
    for run in started.values():
        run.process.kill()


def jax_run(jax_runs, name):
    folder, run = jax_runs[name]
    return folder, succeeded(run.result())


@requires("jax")
def test_jax_run_leaves_a_complete_run_folder(jax_runs):
    from contract import read_contract
    from model import load_model

    folder, _ = jax_run(jax_runs, "one")
    config = read_config(folder)
    assert (config["backend"], config["strategy"]) == ("jax", "SingleDevice")
    assert (config["workers"], config["replicas"]) == (1, 1)
    assert (config["global_batch"], config["per_replica_batch"]) == (2, 2)
    rows = log_rows(folder)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(np.isfinite(float(r[c])) for r in rows for c in LOG_COLUMNS)
    state = read_state(folder)
    assert (state["epoch"], state["epoch_step"], state["global_step"]) == (2, 0, 4)
    samples = summaries(folder / "tensorboard" / "samples")["val_samples"]
    assert [step for step, _ in samples] == [1, 2]
    assert (folder / "best.keras").is_file()
    # TensorFlow (this process) reads the model JAX trained; tests/test_backends.py holds the two backends'
    # outputs of one file equal.
    assert read_contract(folder / "final.keras").training["steps"] == 4
    depth = np.asarray(load_model(folder / "final.keras").predict_on_batch(np.zeros((1, 64, 64, 3), np.float32)))
    assert depth.shape == (1, 32, 32, 1) and np.isfinite(depth).all()


@requires("jax")
def test_jax_data_parallel_over_two_devices_trains_as_one_device(jax_runs):
    one, _ = jax_run(jax_runs, "one")
    two, result = jax_run(jax_runs, "two")
    config = read_config(two)
    assert (config["strategy"], config["replicas"], config["global_batch"], config["per_replica_batch"]) == \
        ("DataParallel", 2, 2, 1)
    # Three validation pairs cannot be shared by two devices: the first two are, as in the one-device run.
    assert "validating on the first 2 of 3 pairs, a multiple of the 2 devices" in result.stdout, result.stdout
    assert config["val_pairs"] == 2 and [int(r["epoch"]) for r in log_rows(two)] == [0, 1]
    # The same global batches and the same mean gradient: only the order of summation differs.
    assert_trained_alike(two / "final.keras", one / "final.keras", steps=4)


@requires("jax")
def test_jax_resumed_run_ends_as_the_uninterrupted_one(jax_runs, jax_env, tmp_path):
    """Weights, Adam's moments, the epoch and the data position come back: two epochs and a resume to three
    end with the three-epoch run's weights, which the check tells from the two-epoch run's."""
    folder = copy_run(jax_run(jax_runs, "one")[0], tmp_path)
    succeeded(train(jax_env, "--init", "resume", "--run-dir", str(tmp_path), "--name", folder.name, "--epochs", "3"))
    uninterrupted, _ = jax_run(jax_runs, "three_epochs")
    assert read_state(folder)["global_step"] == 6
    assert [int(r["epoch"]) for r in log_rows(folder)] == [0, 1, 2]
    assert read_config(folder)["resumes"][0]["global_step"] == 4
    assert_trained_alike(folder / "final.keras", uninterrupted / "final.keras", steps=6)
    with pytest.raises(AssertionError):
        assert_trained_alike(jax_run(jax_runs, "one")[0] / "final.keras", uninterrupted / "final.keras", steps=6)
