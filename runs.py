"""The run folder of a training run, and the Keras callbacks that write it.

    runs/<name>/config.json        resolved settings, command line, git commit, versions; one entry per resume
    runs/<name>/baseline.json      what predicting the training set's mean depth scores on validation
    runs/<name>/log.csv            per epoch: loss, its terms, a1 / abs_rel / rmse (training and validation)
    runs/<name>/tensorboard/       the same curves and sample predictions
    runs/<name>/checkpoints/       weights + optimizer + progress (state.json), written atomically
    runs/<name>/best.keras, final.keras   the network with its contract (model.save_model)

A run stopped by Ctrl-C or SIGTERM saves a checkpoint where it stands and prints the command that
resumes it (exit 130).
"""
import contextlib
import dataclasses
import datetime
import json
import math
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from contract import save_model
from depth import inverse_depth_norm
from outputs import colorize
from utils import InputError, atomic_write, git_commit, write_json

INTERRUPTED_EXIT = 130  # the shell's code for a process stopped by Ctrl-C
RUN_BYTES_PER_PARAM = 4 * 8  # float32: two checkpoints (weights + Adam's two moments) at once, best + final


# ---------------------------------------------------------------------------------------------------------
# Where a run lives
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """path: the run's folder; folder: where this process writes (path on the chief, a scratch folder on
    the other workers); created: the outermost folder this process made (removed if the start fails)."""

    path: Path
    folder: Path
    created: Path = None
    is_chief: bool = True


def open_run(run_dir, name, resume, data, is_chief=True):
    """The Run of a new run (named name, or by date and data) or of the one to resume (name, or the newest).

    Resuming a multi-worker run needs the run folder on storage every worker can read.
    """
    root = Path(run_dir)
    if resume:
        path = root / (name or newest_run(root))
        if not (path / "checkpoints" / "state.json").is_file():
            raise InputError(f"{path}: no checkpoint to resume from (checkpoints/state.json missing)")
    else:
        path = root / (name or f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{Path(data).stem.replace(':', '_')}")
        if (path / "checkpoints" / "state.json").exists():
            raise InputError(f"{path}: a run with this name exists; use --init resume or another --name")
    folder = path if is_chief else Path(tempfile.mkdtemp(prefix="densedepth-worker-"))
    created = None if folder.exists() else folder
    while created and not created.parent.exists():
        created = created.parent
    return Run(path, folder, created, is_chief)


def newest_run(root):
    """The name of the most recently checkpointed run under root."""
    states = sorted(root.glob("*/checkpoints/state.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        raise InputError(f"{root}: no run to resume (no */checkpoints/state.json)")
    return states[-1].parent.parent.name


def remove_if_unused(run):
    """A run folder this process created and that holds no checkpoint is removed: a failed start leaves nothing."""
    if run and run.created and run.created.is_dir() and not (run.folder / "checkpoints" / "state.json").exists():
        shutil.rmtree(run.created, ignore_errors=True)


def saved_settings(run):
    """The settings the run was started with (config.json's "settings", settings.TrainSettings.to_dict)."""
    return json.loads((run.path / "config.json").read_text())["settings"]


@dataclass
class TrainingState:
    """A run's progress, as checkpoints/state.json stores it: epochs done, steps into the next one, steps in
    all, the best validation so far, the newest checkpoint file, and the state of the one before it (the
    fallback for a resume whose newest file is damaged)."""

    epoch: int = 0
    epoch_step: int = 0
    global_step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_val_a1: float | None = None
    checkpoint: str | None = None
    previous: "TrainingState | None" = None

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, content):
        previous = content.get("previous")
        return cls(**{**content, "previous": cls.from_dict(previous) if previous else None})

    def alone(self):
        """This state without the one before it."""
        return dataclasses.replace(self, previous=None)


def saved_state(run):
    """Progress of the last checkpoint."""
    return TrainingState.from_dict(json.loads((run.path / "checkpoints" / "state.json").read_text()))


def record_resume(run, state, epochs, lr):
    """Note the resume in config.json, and drop log.csv rows of epochs the checkpoint does not count as done.

    Those rows were written by the interrupted process (an epoch's row comes just before its checkpoint,
    and a NaN stop logs the failed epoch); the resumed run writes them again.
    """
    config = json.loads((run.folder / "config.json").read_text())
    config.setdefault("resumes", []).append(
        {"command": " ".join([sys.executable, *sys.argv]), "git_commit": git_commit(),
         "time": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}", "global_step": state.global_step,
         "epochs": epochs, "lr": lr})
    write_json(run.folder / "config.json", config)
    log = run.folder / "log.csv"
    if log.is_file():
        header, *rows = log.read_text().splitlines(keepends=True) or [""]  # empty if stopped in epoch 1
        kept = [row for row in rows if int(row.split(",", 1)[0]) < state.epoch]
        with atomic_write(log) as partial:
            partial.write_text("".join([header, *kept]))


# ---------------------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------------------


class RunCheckpoint(keras.callbacks.Callback):
    """Resumable checkpoints (weights + optimizer + progress), best.keras, and a stop on NaN / inf loss.

    Each checkpoint is written under a new name, then state.json is atomically pointed at it, so an
    interruption at any moment leaves the previous consistent checkpoint in place. The newest two are kept,
    and state.json's "previous" holds the older one's state: a resume falls back to it when the newest file
    is damaged (a copy cut short, a bad disk). contract(state) is
    saved with best.keras; interrupt (an Interrupt) asks for a checkpoint and a stop after the current step.
    """

    def __init__(self, folder, state, steps_per_epoch, save_every, contract, interrupt=None):
        super().__init__()
        self.folder, self.state, self.contract = Path(folder), state, contract
        self.steps_per_epoch, self.save_every = steps_per_epoch, save_every
        self.diverged = None  # what went non-finite, and at which step
        self.interrupt = interrupt
        # The state of the newest checkpoint on disk: it becomes the fallback when the next one is written.
        self.saved = state.alone() if state.checkpoint else None

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        self.state.global_step += 1
        if not math.isfinite(loss):
            self.stop(f"loss became {loss}")
        elif self.save_every and self.state.global_step % self.save_every == 0:
            self.save(epoch_done=False)
        # At an epoch's last step, on_epoch_end (after validation) saves and stops instead.
        if (self.interrupt and self.interrupt.signal and not self.diverged
                and self.state.global_step - self.state.epoch * self.steps_per_epoch < self.steps_per_epoch):
            self.save(epoch_done=False)
            self.stop_interrupted()

    def stop(self, what):
        self.diverged = f"{what} at step {self.state.global_step}"
        self.model.stop_training = True

    def stop_interrupted(self):
        if not self.diverged:
            raise Interrupted(self.interrupt.signal)

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged:
            return
        val_loss = (logs or {}).get("val_loss")
        if val_loss is not None and not math.isfinite(val_loss):
            # A validation image without valid depth gives NaN: no epoch is chosen on a made-up score.
            return self.stop(f"validation loss became {val_loss} in epoch {epoch + 1} (a validation "
                             "image without valid depth?)")
        self.state.epoch = epoch + 1
        if val_loss is not None and val_loss < self.state.best_val_loss:
            a1 = (logs or {}).get("val_a1")
            self.state.best_val_loss, self.state.best_epoch = float(val_loss), epoch + 1
            self.state.best_val_a1 = None if a1 is None else float(a1)
            save_model(self.model, self.folder / "best.keras", self.contract(self.state))
        self.save(epoch_done=True)
        if self.interrupt and self.interrupt.signal:
            self.stop_interrupted()

    def save(self, epoch_done):
        # A finite loss does not prove finite weights: the step's own update comes after it.
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            return self.stop("weights became non-finite")
        ckpt_dir = self.folder / "checkpoints"
        ckpt_dir.mkdir(exist_ok=True)
        name = f"ckpt-{self.state.global_step:09d}.weights.h5"
        self.model.save_weights(ckpt_dir / name)  # every worker must take part in reading variables
        done_steps = self.state.global_step - self.state.epoch * self.steps_per_epoch
        self.state.epoch_step, self.state.checkpoint = 0 if epoch_done else done_steps, name
        if self.saved and self.saved.checkpoint != name:
            self.state.previous = self.saved  # kept for a resume whose newest file turns out damaged
        write_json(ckpt_dir / "state.json", self.state.to_dict())
        self.saved = self.state.alone()
        keep = {name, self.state.previous.checkpoint if self.state.previous else None}
        for old in ckpt_dir.glob("ckpt-*.weights.h5"):  # older ones, and any a killed run left half-written
            if old.name not in keep:
                old.unlink(missing_ok=True)


class Progress(keras.callbacks.Callback):
    """A tqdm bar per epoch with the running loss and images per second, and a line of metrics after."""

    SHOWN = ("loss", "val_loss", "val_a1", "val_abs_rel", "val_rmse")

    def __init__(self, steps, global_batch, enabled):
        super().__init__()
        self.steps, self.global_batch, self.enabled = steps, global_batch, enabled

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm

        self.bar = tqdm(total=self.params.get("steps") or self.steps, desc=f"epoch {epoch + 1}", unit="step",
                        disable=not self.enabled, dynamic_ncols=True)
        self.start = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.start is None:  # the first step includes tracing: leave it out of the rate
            self.start, self.timed = now, 0
        else:
            self.timed += 1
        rate = self.timed * self.global_batch / max(now - self.start, 1e-9)
        self.bar.set_postfix(loss=f"{float(logs.get('loss', float('nan'))):.4f}",
                             img_s=f"{rate:.1f}" if self.timed else "-")
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        if self.enabled and logs:
            print(f"epoch {epoch + 1}: " + "  ".join(f"{k} {logs[k]:.4f}" for k in self.SHOWN if k in logs),
                  flush=True)


class SamplePredictions(keras.callbacks.Callback):
    """Validation images | ground truth | prediction, coloured, in TensorBoard each epoch."""

    def __init__(self, images, targets, log_dir, depth_range):
        import tensorflow as tf

        super().__init__()
        self.images, self.targets, self.depth_range = images, targets, depth_range
        self.writer = tf.summary.create_file_writer(str(log_dir))

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from estimator import DepthEstimator

        pred_m = DepthEstimator.from_keras(self.model, depth_range=self.depth_range).network_depth(self.images)
        rows = [self.row(img, tgt[..., 0], p) for img, tgt, p in zip(self.images, self.targets, pred_m)]
        with self.writer.as_default():
            tf.summary.image("val_samples", np.stack(rows), step=epoch + 1, max_outputs=len(rows))
        self.writer.flush()

    def row(self, image, target, pred_m):
        from pipeline import network_input

        gt_m = inverse_depth_norm(target, self.depth_range)  # the training target back in metres
        limits = dict(vmin=self.depth_range.min_m, vmax=float(np.max(gt_m)))
        small = np.asarray(network_input(image, gt_m.shape))
        return np.concatenate([(small * 255).astype(np.uint8), colorize(gt_m, **limits),
                               colorize(pred_m, **limits)], axis=1)


@contextlib.contextmanager
def bad_samples_reported(errors):
    """A sample that cannot be read stops TensorFlow with an OpError: report it as the one-line InputError."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError:
        if errors.first:
            raise InputError(f"{errors.first} (use --skip-bad to skip and count bad samples)") from None
        raise


# ---------------------------------------------------------------------------------------------------------
# The mean-depth baseline: what a model must beat
# ---------------------------------------------------------------------------------------------------------


def mean_depth_baseline(train_ds, val_ds, depth_range, batches=20):
    """{'mean_depth_m', 'a1', 'abs_rel', 'rmse'} of a constant prediction at the training mean depth."""
    from loss import MONITORED_METRICS, split_target, training_metrics

    depths = []
    for _, t in train_ds.take(batches).as_numpy_iterator():
        target, mask = (keras.ops.convert_to_numpy(v) for v in split_target(t))
        depths.append(inverse_depth_norm(target[mask > 0], depth_range))
    depths = np.concatenate(depths) if depths else np.zeros(0)
    if not depths.size:
        raise InputError(f"no valid depth in the first {batches} training batches: the mean-depth baseline "
                         "has nothing to average")
    mean_m = float(np.mean(depths))
    metrics = {m.__name__: m for m in training_metrics(depth_range)}
    sums, count = dict.fromkeys(MONITORED_METRICS, 0.0), 0
    for _, target in val_ds.as_numpy_iterator():
        pred = np.full(target.shape[:-1] + (1,), depth_range.max_m / mean_m, np.float32)
        values = {name: keras.ops.convert_to_numpy(metrics[name](target, pred)) for name in sums}
        scored = np.isfinite(values["abs_rel"])  # NaN: an image without valid depth, not a perfect score
        for name in sums:
            sums[name] += float(np.sum(values[name][scored]))
        count += int(np.sum(scored))
    if not count:
        raise InputError("no validation image has valid depth: nothing to score the baseline (or a model) on")
    return {"mean_depth_m": mean_m, **{k: v / count for k, v in sums.items()}}


# ---------------------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM: save where the run stands, say how to resume, exit 130
# ---------------------------------------------------------------------------------------------------------


class Interrupted(Exception):
    """Training stopped on a signal, after RunCheckpoint saved a checkpoint where the run stood."""


class Interrupt:
    """The SIGINT / SIGTERM handler: once training runs (armed), the first signal asks RunCheckpoint to save
    and stop after the current step; before that, or a second time, it stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.signal, self.armed, self.received = None, False, "SIGINT"

    def __call__(self, signum, frame):
        self.received = signal.Signals(signum).name
        if not self.armed or self.signal:
            raise KeyboardInterrupt
        self.signal = self.received
        print(f"\n{self.signal}: saving a checkpoint after this step (once more to stop at once)",
              file=sys.stderr, flush=True)


@contextlib.contextmanager
def interrupt_handler():
    """An Interrupt installed for SIGINT and SIGTERM (main thread only), the previous handlers restored after."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupt
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def resume_command(args, run, script="train.py", default_run_dir="runs"):
    """The exact command that continues this run (the flags a resumed run takes from its command line)."""
    parts = ["python", script, "--init", "resume"]
    if args.run_dir != default_run_dir:
        parts += ["--run-dir", args.run_dir]
    parts += ["--name", run.path.name, "--epochs", str(args.epochs)]
    for flag, value, default in (("--save-every", args.save_every, 0), ("--gpus", args.gpus, None),
                                 ("--cpu-devices", args.cpu_devices, 1)):
        if value != default:
            parts += [flag, str(value)]
    if args.skip_bad:
        parts.append("--skip-bad")
    return " ".join(shlex.quote(str(p)) for p in parts)


def interrupted_message(args, run, how, script="train.py"):
    """One line: what stopped the run, the checkpoint kept, and the resume command (or that nothing was kept)."""
    state_file = run.folder / "checkpoints" / "state.json" if run else None
    if not state_file or not state_file.is_file():
        return f"interrupted ({how}) before training started: nothing to resume"
    state = TrainingState.from_dict(json.loads(state_file.read_text()))
    return (f"interrupted ({how}) at step {state.global_step} (epoch {state.epoch + 1}, step "
            f"{state.epoch_step} of it): checkpoint {state.checkpoint} kept in {run.folder / 'checkpoints'}; "
            f"resume with: {resume_command(args, run, script)}")
