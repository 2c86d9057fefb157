"""Train DenseDepth on every visible GPU (tf.distribute), on NYU Depth v2, KITTI or the synthetic rooms.

    python train.py --bs 8 --lr 0.0001                  # the paper's set-up on nyu_data.zip
    python train.py --smoke                             # a one-minute run through the whole code path
    python train.py --data synthetic --input-size 96x128 --weights none --epochs 12
    python train.py --init resume                       # continue the newest run where it stopped
    python train.py --init resume --name R --lr 0.00005 # continue run R at a lower learning rate
    python train.py --init nyu.h5 --data kitti_root     # fine-tune from a pretrained model file
    python train.py --recipe reference                  # the authors' set-up (AMSGrad, batch 4, half decoder, ...)

--bs is the global batch, split over the replicas (the paper: 8 over four GPUs). With TF_CONFIG set
for several workers, the same command on every machine trains one model with
MultiWorkerMirroredStrategy: each worker reads its own share of every global batch, and only the chief
writes the run folder (the others write to a scratch folder they print). A run stops with one line
"error: loss became nan ..." when the loss goes non-finite, keeping its last good checkpoint.

A run folder runs/<name>/ holds config.json (resolved settings, command line, git commit),
model_summary.txt, log.csv, tensorboard/ (loss terms, learning rate, delta1 / rel / rms, sample
predictions), checkpoints/ (model + optimizer + progress, written atomically every epoch and every
--save-every steps), best.keras (lowest validation loss) and final.keras. Both .keras files carry the
model's contract (dataset, depth range, training size, up-sampling convention, how far it trained), which
evaluate.py and test.py read.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from utils import (REFERENCE_PERMUTE_PROBABILITY, InputError, check_writable, git_commit, parse_hw,  # noqa: E402
                   write_json)  # (utils imports no TensorFlow)

# Defaults: the paper's (section 4.2) and the reference code's 20 epochs.
DATA = "nyu_data.zip"
EPOCHS = 20
BATCH_SIZE = 8          # global, over all replicas
LEARNING_RATE = 1e-4    # Adam, beta1 0.9, beta2 0.999
ENCODER = "densenet169"
DECODER_WIDTH = 1.0     # the paper's full-width decoder; the reference code used 0.5
WEIGHTS = "imagenet"
THETA = 0.1             # weight of the L1 term in the loss
SEED = 0
RUN_DIR = "runs"
SAMPLE_IMAGES = 3       # validation images drawn into TensorBoard each epoch
# --recipe reference: the authors' train.py and callbacks.py (PAPER.md), to compare with their released
# models. Each value applies where its flag is left at the default; config.json records the outcome.
RECIPES = {"paper": {},
           "reference": {"amsgrad": True, "bs": 4, "decoder_width": 0.5, "permute_prob": REFERENCE_PERMUTE_PROBABILITY}}
# The authors' ReduceLROnPlateau, used by --recipe reference.
REFERENCE_LR_SCHEDULE = {"monitor": "val_loss", "factor": 0.7, "patience": 5, "min_lr": 9e-5, "min_delta": 1e-2}
# --smoke: tiny and fast, through exactly the same code path.
SMOKE = {"data": "synthetic:24:8", "epochs": 2, "steps_per_epoch": 3, "bs": 2, "input_size": "64x96",
         "weights": "none", "val_samples": 4}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA, help=f"dataset: synthetic, nyu, a zip, folder or KITTI split (default {DATA})")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs to train in all (default {EPOCHS})")
    p.add_argument("--bs", type=int, default=BATCH_SIZE, help=f"global batch size over all replicas (default {BATCH_SIZE})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate (default {LEARNING_RATE}; with --init resume, replaces the run's own)")
    p.add_argument("--encoder", default=ENCODER, choices=["densenet169", "densenet201"], help="DenseNet encoder")
    p.add_argument("--decoder-width", type=float, default=DECODER_WIDTH,
                   help="conv2 channels as a fraction of the encoder's (paper 1.0, reference code 0.5)")
    p.add_argument("--weights", default=WEIGHTS,
                   help="encoder initialisation: imagenet (downloaded), none, or a weights file path")
    p.add_argument("--init", default="scratch",
                   help="scratch (new run), resume (continue --name, or the newest run), or a model file "
                        "(.keras or the authors' nyu.h5 / kitti.h5) to start from")
    p.add_argument("--recipe", default="paper", choices=sorted(RECIPES),
                   help="paper (default): Adam, batch 8, full decoder, permutation 0.25; reference: the authors' "
                        "code: AMSGrad, batch 4, half-width decoder, permutation rate 5/14, ReduceLROnPlateau("
                        "factor 0.7, patience 5, min_lr 9e-5)")
    p.add_argument("--amsgrad", action="store_true", help="use AMSGrad (the reference code's choice)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="compute in float16 on GPUs / bfloat16 on CPUs, keep float32 weights")
    p.add_argument("--seed", type=int, default=SEED, help="seed of weights, data order and augmentation")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="training steps per epoch (default: one pass over the training set)")
    p.add_argument("--input-size", default=None,
                   help="train at HxW, e.g. 240x320 (even numbers; default: the dataset's native size)")
    p.add_argument("--val-samples", type=int, default=None, help="validate on the first N samples only")
    p.add_argument("--validation", default="test", choices=["test", "holdout"],
                   help="validation set: the test split (as the reference code) or held-out training scenes")
    p.add_argument("--permute-prob", type=float, default=0.25,
                   help="probability of a colour channel permutation (paper 0.25; the reference code's real "
                        f"rate is {REFERENCE_PERMUTE_PROBABILITY:.3f}: 0.5 over seven orders, two of them RGB)")
    p.add_argument("--theta", type=float, default=THETA, help=f"weight of the L1 term (default {THETA})")
    p.add_argument("--run-dir", default=RUN_DIR, help=f"folder of all runs (default {RUN_DIR})")
    p.add_argument("--name", default=None, help="this run's folder name (default: date, time and data)")
    p.add_argument("--save-every", type=int, default=0,
                   help="also checkpoint every N steps inside an epoch (default 0: at epoch ends only)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable or missing samples and count them, instead of stopping")
    p.add_argument("--gpus", type=int, default=None, help="use only the first N GPUs (default: all)")
    p.add_argument("--cpu-devices", type=int, default=1,
                   help="split the CPU into N devices and mirror over them (tests distribution without GPUs)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run on synthetic data: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
    args = p.parse_args(argv)
    given = flags_given(p, sys.argv[1:] if argv is None else argv)
    for preset in (SMOKE if args.smoke else {}), RECIPES[args.recipe]:
        for key, value in preset.items():
            if key not in given:
                setattr(args, key, value)
                given.add(key)  # --smoke's values win over a recipe's
    check_args(p, args)
    args.lr_given = args.lr is not None  # a resumed run keeps its own rate unless --lr is given
    args.lr = LEARNING_RATE if args.lr is None else args.lr
    return args


def flags_given(parser, argv):
    """The destinations of the flags written on the command line (--bs 8 and --bs=8 alike)."""
    words = [word.split("=", 1)[0] for word in argv]
    return {action.dest for action in parser._actions if set(action.option_strings) & set(words)}


def check_args(parser, args):
    """parser.error for impossible values (one line, no traceback)."""
    positive = {"--epochs": args.epochs, "--bs": args.bs, "--cpu-devices": args.cpu_devices}
    positive.update({k: v for k, v in {"--steps-per-epoch": args.steps_per_epoch, "--gpus": args.gpus,
                                       "--val-samples": args.val_samples}.items() if v is not None})
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if args.lr is not None and (not args.lr > 0 or not math.isfinite(args.lr)):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.permute_prob <= 1:
        parser.error(f"--permute-prob must be in [0, 1], got {args.permute_prob}")
    if args.save_every < 0:
        parser.error("--save-every must be 0 or more")
    if args.input_size:
        try:
            args.input_hw = parse_hw(args.input_size, even=True)  # even: the output is exactly half
        except InputError as err:
            parser.error(f"--input-size {err}")
    else:
        args.input_hw = None


# ---------------------------------------------------------------------------------------------------------
# Devices and distribution
# ---------------------------------------------------------------------------------------------------------


def cluster_spec():
    """(number of workers, this worker's index, is chief) from TF_CONFIG; (1, 0, True) without it."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers <= 1:
        return 1, 0, True
    is_chief = task.get("type") == "chief" or ("chief" not in cluster and task.get("index", 0) == 0)
    return workers, task.get("index", 0), is_chief


def make_strategy(args):
    """MultiWorkerMirroredStrategy under a multi-worker TF_CONFIG, else MirroredStrategy over the devices."""
    import tensorflow as tf

    workers, _, _ = cluster_spec()
    gpus = tf.config.list_physical_devices("GPU")
    if args.gpus is not None:
        tf.config.set_visible_devices(gpus[: args.gpus], "GPU")
        gpus = gpus[: args.gpus]
    if args.cpu_devices > 1 and not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices)
    if workers > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if gpus:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.cpu_devices)])


def keras_multi_worker_fixes(model, strategy):
    """Let Keras 3's fit() run under MultiWorkerMirroredStrategy (keras-team/keras#20585, still open).

    Its TensorFlow trainer fails there twice: the symbolic build reduces the first batch's (x, y) tuple
    across workers ("Attempt to convert a value (PerReplica...)"), and each step's scalar logs are
    averaged with axis=0 ("Invalid reduction dimension 0 for input with 0 dimensions"). Build from this
    worker's own first batch, and average scalar logs over the replicas without an axis.
    """
    import types

    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

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


def set_precision(args):
    """Keras' dtype policy: float32, or mixed float16 on GPUs / bfloat16 on CPUs; returns its name."""
    import keras
    import tensorflow as tf

    from utils import set_precision as set_policy

    if args.mixed_precision:
        set_policy("float16" if tf.config.list_physical_devices("GPU") else "bfloat16")
    return keras.mixed_precision.global_policy().name


# ---------------------------------------------------------------------------------------------------------
# The run folder
# ---------------------------------------------------------------------------------------------------------


def run_folders(args, is_chief):
    """(the run's folder, where this process writes): the same on the chief, a scratch folder elsewhere.

    Resuming a multi-worker run needs the run folder on storage every worker can read.
    """
    root = Path(args.run_dir)
    if args.init == "resume":
        path = root / (args.name or newest_run(root))
        if not (path / "checkpoints" / "state.json").is_file():
            raise InputError(f"{path}: no checkpoint to resume from (checkpoints/state.json missing)")
    else:
        name = args.name or f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{Path(args.data).stem.replace(':', '_')}"
        path = root / name
        if (path / "checkpoints" / "state.json").exists():
            raise InputError(f"{path}: a run with this name exists; use --init resume or another --name")
    if not is_chief:
        return path, Path(tempfile.mkdtemp(prefix="densedepth-worker-"))
    return path, path


def record_resume(folder, state, args):
    """Note the resume in config.json, and drop log.csv rows of epochs the checkpoint does not count as done.

    Those rows were written by the interrupted process (an epoch's row comes just before its checkpoint,
    and a NaN stop logs the failed epoch); the resumed run writes them again.
    """
    config = json.loads((folder / "config.json").read_text())
    config.setdefault("resumes", []).append(
        {"command": " ".join([sys.executable, *sys.argv]), "git_commit": git_commit(),
         "time": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}", "global_step": state["global_step"],
         "epochs": args.epochs, "lr": args.lr})
    write_json(folder / "config.json", config)
    log = folder / "log.csv"
    if log.is_file():
        header, *rows = log.read_text().splitlines(keepends=True) or [""]  # empty if stopped in epoch 1
        kept = [row for row in rows if int(row.split(",", 1)[0]) < state["epoch"]]
        partial = Path(f"{log}.partial")
        partial.write_text("".join([header, *kept]))
        os.replace(partial, log)


def newest_run(root):
    """The name of the most recently checkpointed run under root."""
    states = sorted(root.glob("*/checkpoints/state.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        raise InputError(f"{root}: no run to resume (no */checkpoints/state.json)")
    return states[-1].parent.parent.name




def resumed_args(args, path):
    """On resume, the run's saved settings, except the ones a resumed run may change."""
    saved = json.loads((path / "config.json").read_text())["args"]
    keep = {"epochs", "init", "save_every", "gpus", "cpu_devices", "skip_bad", "name", "run_dir"}
    if args.lr_given:
        keep.add("lr")
    for key, value in saved.items():
        if key not in keep:
            setattr(args, key, value)
    args.input_hw = tuple(args.input_hw) if args.input_hw else None
    return args


# ---------------------------------------------------------------------------------------------------------
# Model, loss, metrics
# ---------------------------------------------------------------------------------------------------------


def build_model(args):
    """The network (new, or from --init model file), compiled with Adam, the loss and the monitoring metrics."""
    import keras

    from model import create_model, load_model

    keras.utils.set_random_seed(args.seed)
    if args.init not in ("scratch", "resume"):
        model = load_model(args.init)
    else:
        weights = None if args.weights.lower() == "none" else args.weights
        model = create_model(args.encoder, weights=weights, decoder_width=args.decoder_width)
    optimizer = keras.optimizers.Adam(args.lr, beta_1=0.9, beta_2=0.999, amsgrad=args.amsgrad)
    model.compile(optimizer=optimizer, loss=lambda y, p: depth_loss(y, p, args.theta),
                  metrics=monitoring_metrics(args.depth_range))
    return model


def depth_loss(y_true, y_pred, theta):
    from loss import depth_loss_function

    return depth_loss_function(y_true, y_pred, theta=theta)


def monitoring_metrics(depth_range):
    """Keras metrics: the three loss terms and delta1 / rel / rms in metres at the output resolution.

    Averaged per image over the batches, for monitoring; evaluate.py applies the paper's protocol.
    """
    import tensorflow as tf

    from loss import gradient_term, l1_term, split_target, ssim_term
    from utils import inverse_depth_norm

    def depths(y_true, y_pred):
        target, mask = split_target(y_true)
        gt = depth_range.max_m / tf.maximum(target, 1e-6)
        return gt, inverse_depth_norm(tf.cast(y_pred, tf.float32), depth_range), mask

    def per_image(values, mask):
        # 0 / 0 = NaN for an image without valid pixels: never a score that looks good.
        return tf.reduce_sum(tf.where(mask > 0, values, 0.0), axis=[1, 2, 3]) / tf.reduce_sum(mask, axis=[1, 2, 3])

    def l1(y_true, y_pred):
        target, mask = split_target(y_true)
        return l1_term(target, y_pred, mask)

    def grad(y_true, y_pred):
        target, mask = split_target(y_true)
        return gradient_term(target, y_pred, mask)

    def ssim(y_true, y_pred):
        target, mask = split_target(y_true)
        return ssim_term(target, y_pred, mask)

    def delta1(y_true, y_pred):
        gt, pred, mask = depths(y_true, y_pred)
        return per_image(tf.cast(tf.maximum(gt / pred, pred / gt) < 1.25, tf.float32), mask)

    def rel(y_true, y_pred):
        gt, pred, mask = depths(y_true, y_pred)
        return per_image(tf.abs(gt - pred) / gt, mask)

    def rms(y_true, y_pred):
        gt, pred, mask = depths(y_true, y_pred)
        return tf.sqrt(per_image(tf.square(gt - pred), mask))

    return [l1, grad, ssim, delta1, rel, rms]


# ---------------------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------------------


def callbacks_module():
    import keras
    import numpy as np
    import tensorflow as tf

    from model import save_model
    from utils import colorize, inverse_depth_norm

    class RunCheckpoint(keras.callbacks.Callback):
        """Resumable checkpoints (weights + optimizer + progress), best.keras, and a stop on NaN / inf loss.

        Each checkpoint is written under a new name, then state.json is atomically pointed at it, so
        an interruption at any moment leaves the previous consistent checkpoint in place.
        """

        def __init__(self, folder, state, steps_per_epoch, save_every, contract, interrupt=None):
            super().__init__()
            self.folder, self.state, self.contract = Path(folder), state, contract
            self.steps_per_epoch, self.save_every = steps_per_epoch, save_every
            self.diverged = None  # what went non-finite, and at which step
            self.interrupt = interrupt  # an Interrupt: Ctrl-C / SIGTERM seen

        def on_train_batch_end(self, batch, logs=None):
            loss = float((logs or {}).get("loss", 0.0))
            self.state["global_step"] += 1
            if not math.isfinite(loss):
                self.stop(f"loss became {loss}")
            elif self.save_every and self.state["global_step"] % self.save_every == 0:
                self.save(epoch_done=False)
            # At an epoch's last step, on_epoch_end (after validation) saves and stops instead.
            if (self.interrupt and self.interrupt.signal and not self.diverged
                    and self.state["global_step"] - self.state["epoch"] * self.steps_per_epoch < self.steps_per_epoch):
                self.save(epoch_done=False)
                self.stop_interrupted()

        def stop(self, what):
            self.diverged = f"{what} at step {self.state['global_step']}"
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
            self.state["epoch"] = epoch + 1
            if val_loss is not None and val_loss < self.state["best_val_loss"]:
                self.state["best_val_loss"] = float(val_loss)
                self.state["best_epoch"] = epoch + 1
                self.state["best_val_delta1"] = (logs or {}).get("val_delta1")
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
            name = f"ckpt-{self.state['global_step']:09d}.weights.h5"
            self.model.save_weights(ckpt_dir / name)  # every worker must take part in reading variables
            if not epoch_done:
                self.state["epoch_step"] = self.state["global_step"] - self.state["epoch"] * self.steps_per_epoch
            else:
                self.state["epoch_step"] = 0
            self.state["checkpoint"] = name
            write_json(ckpt_dir / "state.json", self.state)
            for old in ckpt_dir.glob("ckpt-*.weights.h5"):  # the previous one, and any a killed run left half-written
                if old.name != name:
                    old.unlink(missing_ok=True)

    class Progress(keras.callbacks.Callback):
        """A tqdm bar per epoch with the running loss and images per second, and a line of metrics after."""

        def __init__(self, steps, global_batch, enabled):
            super().__init__()
            self.steps, self.global_batch, self.enabled = steps, global_batch, enabled

        def on_epoch_begin(self, epoch, logs=None):
            from tqdm import tqdm

            self.epoch = epoch
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
                shown = ("loss", "val_loss", "val_delta1", "val_rel", "val_rms")
                print(f"epoch {epoch + 1}: " + "  ".join(f"{k} {logs[k]:.4f}" for k in shown if k in logs),
                      flush=True)

    class SamplePredictions(keras.callbacks.Callback):
        """Validation images | ground truth | prediction, coloured, in TensorBoard each epoch."""

        def __init__(self, images, targets, log_dir, depth_range):
            super().__init__()
            self.images, self.targets, self.depth_range = images, targets, depth_range
            self.writer = tf.summary.create_file_writer(str(log_dir))

        def on_epoch_end(self, epoch, logs=None):
            pred = np.asarray(self.model(self.images, training=False), np.float32)[..., 0]
            rows = [self.row(img, tgt[..., 0], p) for img, tgt, p in zip(self.images, self.targets, pred)]
            with self.writer.as_default():
                tf.summary.image("val_samples", np.stack(rows), step=epoch + 1, max_outputs=len(rows))
            self.writer.flush()

        def row(self, image, target, pred):
            gt_m = self.depth_range.max_m / np.maximum(target, 1e-6)
            pred_m = inverse_depth_norm(pred, self.depth_range)
            limits = dict(vmin=self.depth_range.min_m, vmax=float(np.max(gt_m)))
            small = tf.image.resize(image, gt_m.shape, antialias=True).numpy()
            return np.concatenate([(small * 255).astype(np.uint8), colorize(gt_m, **limits),
                                   colorize(pred_m, **limits)], axis=1)

    return RunCheckpoint, Progress, SamplePredictions


def contract_maker(model, args, dataset, input_hw):
    """A function of the training state giving the contract saved with best.keras and final.keras."""
    from model import model_contract

    label = "synthetic" if str(args.data).startswith("synthetic") else dataset.kind

    def contract(state):
        delta1 = state.get("best_val_delta1")
        training = {"steps": state["global_step"], "epochs": state["epoch"], "global_batch": args.bs,
                    "best_epoch": state["best_epoch"], "best_val_delta1": None if delta1 is None else float(delta1),
                    "smoke": bool(args.smoke), "recipe": args.recipe}
        return model_contract(model, label, dataset.depth_range, input_hw, args.input_hw is not None, training)

    return contract


# ---------------------------------------------------------------------------------------------------------
# Baseline: what predicting the training set's mean depth scores
# ---------------------------------------------------------------------------------------------------------


def mean_depth_baseline(train_ds, val_ds, depth_range, batches=20):
    """{'mean_depth_m', 'delta1', 'rel', 'rms'} of a constant prediction at the training mean depth."""
    import numpy as np
    import tensorflow as tf

    from loss import split_target

    depths = []
    for _, t in train_ds.take(batches):
        target, mask = (v.numpy() for v in split_target(t))
        depths.append(depth_range.max_m / target[mask > 0])
    depths = np.concatenate(depths) if depths else np.zeros(0)
    if not depths.size:
        raise InputError(f"no valid depth in the first {batches} training batches: the mean-depth baseline "
                         "has nothing to average")
    mean_m = float(np.mean(depths))
    metrics = {m.__name__: m for m in monitoring_metrics(depth_range)}
    constant_target = depth_range.max_m / mean_m
    sums, count = {"delta1": 0.0, "rel": 0.0, "rms": 0.0}, 0
    for _, target in val_ds:
        pred = tf.fill(tf.shape(split_target(target)[0]), constant_target)
        values = {name: metrics[name](target, pred).numpy() for name in sums}
        scored = np.isfinite(values["rel"])  # NaN: an image without valid depth, not a perfect score
        for name in sums:
            sums[name] += float(np.sum(values[name][scored]))
        count += int(np.sum(scored))
    if not count:
        raise InputError("no validation image has valid depth: nothing to score the baseline (or a model) on")
    return {"mean_depth_m": mean_m, **{k: v / count for k, v in sums.items()}}


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------


def train(args, interrupt=None):
    import keras
    import tensorflow as tf

    from data import SampleErrors, open_dataset, pipeline
    from model import save_model

    workers, worker_index, is_chief = cluster_spec()
    run_path, folder = run_folders(args, is_chief)
    check_writable(folder, folder=True)  # now, not after the data and the model are ready
    created = None if folder.exists() else folder  # the outermost folder this run creates, if any
    while created and not created.parent.exists():
        created = created.parent
    args.run_path, args.out_folder, args.created_folder = run_path, folder, created
    strategy = make_strategy(args)  # before any other TensorFlow op: devices are fixed from here on
    resuming = args.init == "resume"
    if resuming:
        args = resumed_args(args, run_path)
    precision = set_precision(args)
    replicas = strategy.num_replicas_in_sync
    strategy_name = "MultiWorkerMirroredStrategy" if workers > 1 else type(strategy).__name__
    if args.bs % replicas:
        raise InputError(f"--bs {args.bs} is not divisible by the {replicas} replicas")

    dataset = open_dataset(args.data, validation=args.validation, skip_bad=args.skip_bad, seed=args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    args.depth_range = dataset.depth_range
    n_train = len(dataset.samples("train"))
    steps = args.steps_per_epoch or max(1, n_train // args.bs)
    if args.val_samples:
        dataset.limit("val", args.val_samples)
    val_samples = dataset.samples("val")
    input_hw = args.input_hw or dataset.train_hw

    state = {"epoch": 0, "epoch_step": 0, "global_step": 0, "best_val_loss": float("inf"), "best_epoch": 0,
             "checkpoint": None}
    if resuming:
        state.update(json.loads((run_path / "checkpoints" / "state.json").read_text()))

    with strategy.scope():
        model = build_model(args)
        if resuming:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(run_path / "checkpoints" / state["checkpoint"])
            if args.lr_given:  # the checkpoint restored the run's rate along with Adam's moments
                model.optimizer.learning_rate = args.lr
    check_writable(folder, RUN_BYTES_PER_PARAM * model.count_params(), folder=True)
    if workers > 1:
        keras_multi_worker_fixes(model, strategy)

    errors = SampleErrors()
    per_replica = args.bs // replicas

    def train_input(start_index):
        def dataset_fn(context):
            return pipeline(dataset, "train", context.get_per_replica_batch_size(args.bs), input_hw, args.seed,
                            training=True, skip_bad=args.skip_bad, errors=errors,
                            permute_probability=args.permute_prob, start_index=start_index,
                            shard=(context.num_input_pipelines, context.input_pipeline_id))
        return strategy.distribute_datasets_from_function(dataset_fn)

    val_ds = pipeline(dataset, "val", args.bs, input_hw, training=False, skip_bad=args.skip_bad, errors=errors)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    val_ds = val_ds.with_options(options)

    print(f"strategy {strategy_name} | workers {workers} | replicas {replicas} | global batch "
          f"{args.bs} | per-replica batch {per_replica} | steps/epoch {steps} | input {input_hw[0]}x{input_hw[1]} "
          f"| precision {precision} | {len(dataset.samples('train'))} train / {len(val_samples)} val pairs",
          flush=True)
    if not is_chief:
        print(f"worker {worker_index} is not the chief: its checkpoints, logs and final.keras go to {folder}",
              flush=True)

    if is_chief and not resuming:
        config = {"args": {k: v for k, v in vars(args).items()
                           if k not in ("depth_range", "lr_given", "run_path", "out_folder", "created_folder")},
                  "command": " ".join([sys.executable, *sys.argv]), "git_commit": git_commit(),
                  "tensorflow": tf.__version__, "keras": keras.__version__, "strategy": strategy_name,
                  "replicas": replicas, "workers": workers, "precision": precision, "steps_per_epoch": steps,
                  "train_pairs": n_train, "val_pairs": len(val_samples), "depth_range": vars(dataset.depth_range)}
        write_json(folder / "config.json", config)
        with open(folder / "model_summary.txt", "w") as f:
            model.summary(print_fn=lambda line, **_: f.write(line + "\n"), line_length=120)
        baseline_ds = pipeline(dataset, "train", args.bs, input_hw, args.seed, training=False,
                               skip_bad=args.skip_bad, errors=errors)
        with bad_samples_reported(errors):
            baseline = mean_depth_baseline(baseline_ds, val_ds, dataset.depth_range)
        write_json(folder / "baseline.json", baseline)
        print("baseline, training-mean depth {mean_depth_m:.2f} m: val delta1 {delta1:.3f} rel {rel:.3f} "
              "rms {rms:.3f}".format(**baseline), flush=True)
    if is_chief and resuming:
        record_resume(folder, state, args)

    RunCheckpoint, Progress, SamplePredictions = callbacks_module()
    contract = contract_maker(model, args, dataset, input_hw)
    checkpoint = RunCheckpoint(folder, state, steps, args.save_every, contract, interrupt)
    with bad_samples_reported(errors):
        sample_images, sample_targets = next(iter(val_ds.unbatch().batch(SAMPLE_IMAGES)))
    # The checkpoint comes last: an epoch's log row is written before the checkpoint that counts it done.
    callbacks = [Progress(steps, args.bs, is_chief),
                 keras.callbacks.CSVLogger(str(folder / "log.csv"), append=resuming),
                 keras.callbacks.TensorBoard(str(folder / "tensorboard"), write_graph=False, profile_batch=0),
                 SamplePredictions(sample_images.numpy(), sample_targets.numpy(), folder / "tensorboard" / "samples",
                                   dataset.depth_range),
                 checkpoint]
    if args.recipe == "reference":
        callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(**REFERENCE_LR_SCHEDULE))

    if interrupt:
        interrupt.armed = True  # from here on, Ctrl-C / SIGTERM saves a checkpoint at the next step
    with bad_samples_reported(errors):
        first_epoch = state["epoch"]
        if state["epoch_step"] and first_epoch < args.epochs:  # interrupted mid-epoch: finish that epoch first
            remaining = steps - state["epoch_step"]
            model.fit(train_input(state["global_step"] * args.bs), validation_data=val_ds, epochs=first_epoch + 1,
                      initial_epoch=first_epoch, steps_per_epoch=remaining, callbacks=callbacks, verbose=0,
                      shuffle=False)
            first_epoch += 1
        if first_epoch < args.epochs and not checkpoint.diverged:
            model.fit(train_input(first_epoch * steps * args.bs), validation_data=val_ds, epochs=args.epochs,
                      initial_epoch=first_epoch, steps_per_epoch=steps, callbacks=callbacks, verbose=0,
                      shuffle=False)
    if checkpoint.diverged:
        kept = state.get("checkpoint") or "none yet"
        raise TrainingDiverged(f"{checkpoint.diverged}: training stopped; the last good checkpoint ({kept}) is "
                               f"kept in {folder / 'checkpoints'}. Check the data, or resume with a lower --lr.")
    save_model(model, folder / "final.keras", contract(state))
    if errors.count:
        print(f"skipped {errors.count} bad samples (first: {errors.first})")
    if getattr(dataset, "skipped", None):
        print(f"skipped {len(dataset.skipped)} listed pairs with missing files (first: {dataset.skipped[0]})")
    if is_chief:
        best = f"best.keras from epoch {state['best_epoch']}" if state["best_epoch"] else "no best.keras (no validation)"
        print(f"done: {run_path} (final.keras, {best}, log.csv, tensorboard/)")
    return folder


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


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


# ---------------------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM: save where the run stands, say how to resume, exit 130
# ---------------------------------------------------------------------------------------------------------

INTERRUPTED_EXIT = 130  # the shell's code for a process stopped by Ctrl-C
RUN_BYTES_PER_PARAM = 4 * 8  # float32: two checkpoints (weights + Adam's two moments) at once, best + final


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


def resume_command(args, run_path):
    """The exact command that continues this run (the flags a resumed run takes from its command line)."""
    script = os.path.relpath(Path(__file__).resolve()) if Path(__file__).is_absolute() else __file__
    parts = ["python", script, "--init", "resume"]
    if args.run_dir != RUN_DIR:
        parts += ["--run-dir", args.run_dir]
    parts += ["--name", Path(run_path).name, "--epochs", str(args.epochs)]
    for flag, value, default in (("--save-every", args.save_every, 0), ("--gpus", args.gpus, None),
                                 ("--cpu-devices", args.cpu_devices, 1)):
        if value != default:
            parts += [flag, str(value)]
    if args.skip_bad:
        parts.append("--skip-bad")
    return " ".join(shlex.quote(str(p)) for p in parts)


def interrupted_message(args, how):
    """One line: what stopped the run, the checkpoint kept, and the resume command (or that nothing was kept)."""
    folder = getattr(args, "out_folder", None)
    state_file = folder / "checkpoints" / "state.json" if folder else None
    if not state_file or not state_file.is_file():
        return f"interrupted ({how}) before training started: nothing to resume"
    state = json.loads(state_file.read_text())
    return (f"interrupted ({how}) at step {state['global_step']} (epoch {state['epoch'] + 1}, step "
            f"{state['epoch_step']} of it): checkpoint {state['checkpoint']} kept in {folder / 'checkpoints'}; "
            f"resume with: {resume_command(args, args.run_path)}")


def remove_unused_run_folder(args):
    """A run folder this process created and that holds no checkpoint is removed: a failed start leaves nothing."""
    folder, created = getattr(args, "out_folder", None), getattr(args, "created_folder", None)
    if created and created.is_dir() and not (folder / "checkpoints" / "state.json").exists():
        shutil.rmtree(created, ignore_errors=True)


def main(argv=None):
    args = parse_args(argv)
    with interrupt_handler() as interrupt:
        try:
            return train(args, interrupt)
        except InputError as err:
            remove_unused_run_folder(args)
            sys.exit(f"error: {err}")
        except TrainingDiverged as err:
            sys.exit(f"error: {err}")
        except (Interrupted, KeyboardInterrupt) as err:
            how = str(err) if isinstance(err, Interrupted) else interrupt.received
            remove_unused_run_folder(args)
            from tqdm import tqdm

            for bar in list(getattr(tqdm, "_instances", ())):  # the epoch's bar, else printed after the message
                bar.close()
            print(interrupted_message(args, how), file=sys.stderr, flush=True)
            sys.exit(INTERRUPTED_EXIT)


if __name__ == "__main__":
    main()
