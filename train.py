"""Train DenseDepth on every visible GPU, on NYU Depth v2, KITTI or the synthetic rooms.

    python train.py --bs 8 --lr 0.0001                  # the paper's set-up on nyu_data.zip
    python train.py --smoke                             # seconds: checks the whole training code path
    python train.py --data synthetic --input-size 96x128 --weights none --epochs 12
    python train.py --init resume                       # continue the newest run where it stopped
    python train.py --init resume --name R --lr 0.00005 # continue run R at a lower learning rate
    python train.py --init nyu.h5 --data kitti_root     # fine-tune from a pretrained model file
    python train.py --recipe released                   # how the authors made nyu.h5 (their January 2019 code)
    python train.py --recipe reference                  # their later code (AMSGrad, batch 4, half decoder, ...)
    KERAS_BACKEND=jax python train.py --smoke           # on JAX (tf.data still feeds it)

--bs is the global batch, split over the replicas (the paper: 8 over four GPUs): tf.distribute's
MirroredStrategy, or under JAX keras.distribution.DataParallel over the local devices. With TF_CONFIG set
for several workers (TensorFlow only), the same command on every machine trains one model with
MultiWorkerMirroredStrategy: each worker reads its own share of every global batch, and only the chief
writes the run folder (the others write to a scratch folder they print). A run stops with one line
"error: loss became nan ..." when the loss goes non-finite, keeping its last good checkpoint; Ctrl-C or
SIGTERM saves a checkpoint and prints the command that resumes (exit 130).

The run folder runs/<name>/ is described in runs.py; best.keras and final.keras carry the model's
contract (dataset, depth range, training size, up-sampling convention, how far it trained), which
evaluate.py and test.py read.
"""
import argparse
import math
import sys
from dataclasses import dataclass

# Nothing imported here loads TensorFlow: --help answers at once.
from camera import NYU_CAMERA
from model import ENCODER_CHANNELS
from settings import LR_SCHEDULE, PAPER, RECIPES, SMOKE, resumed_settings, train_settings
from utils import PRECISION_POLICIES, InputError, check_writable, git_commit, parse_hw, quiet_tensorflow, write_json

SAMPLE_IMAGES = 3  # validation images drawn into TensorBoard each epoch


def parse_flags(argv=None):
    """{setting: value} of the flags written on the command line, checked; flags not written are absent."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--data", action="append",
                   help=f"dataset: synthetic, nyu, a zip, folder or KITTI split, or a benchmark as NAME:PATH (ibims1, "
                        f"diode, eth3d, sunrgbd, scannet, sintel, tum; default {PAPER.data}); give it several times "
                        "to train on a mixture (with --canonical-focal where their cameras differ)")
    p.add_argument("--data-weights", type=weights_list, metavar="W1,W2,...",
                   help="with several --data: each one's share of the training samples (default: equal shares)")
    p.add_argument("--epochs", type=int, help=f"epochs to train in all (default {PAPER.epochs})")
    p.add_argument("--bs", type=int, help=f"global batch size over all replicas (default {PAPER.bs})")
    p.add_argument("--lr", type=float,
                   help=f"Adam learning rate (default {PAPER.lr}; with --init resume, replaces the run's own)")
    p.add_argument("--encoder", choices=sorted(ENCODER_CHANNELS),
                   help=f"DenseNet encoder (default {PAPER.encoder}, the paper's; densenet201 its ablation; tiny: a "
                        "few layers with the same skip connections, random weights only, for tests and --smoke)")
    p.add_argument("--decoder-width", type=float,
                   help="conv2 channels as a fraction of the encoder's (paper 1.0, reference code 0.5)")
    p.add_argument("--weights", help="encoder initialisation: imagenet (downloaded; the default), none, or a "
                                     "weights file path")
    p.add_argument("--init", help="scratch (new run; the default), resume (continue --name, or the newest run), or "
                                  "a model file (.keras or the authors' nyu.h5 / kitti.h5) to start from")
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="paper (default): Adam, batch 8, full decoder, one LeakyReLU per block (after convB), "
                        "permutation 0.25, targets clipped to 0.4-10 m; released: how the authors' nyu.h5 was made "
                        "(their January 2019 code): AMSGrad, batch 8, full decoder, one LeakyReLU, align_corners "
                        "up-sampling, permutation 5/14, targets inverted before a blurred down-sampling and not "
                        "clipped, ReduceLROnPlateau(factor 0.7, patience 5, min_lr 9e-5); reference: their later code "
                        "(March 2019 on): AMSGrad, batch 4, half-width decoder, a LeakyReLU after convA and convB, "
                        "permutation 5/14, the same schedule")
    p.add_argument("--amsgrad", action="store_true", help="use AMSGrad (the reference code's choice)")
    p.add_argument("--precision", choices=(*PRECISION_POLICIES, "mixed"),
                   help="compute precision, weights stay float32: float32 (default), bfloat16, float16, or mixed "
                        "(float16 on GPUs, bfloat16 on CPUs)")
    p.add_argument("--seed", type=int, help=f"seed of weights, data order and augmentation (default {PAPER.seed})")
    p.add_argument("--steps-per-epoch", type=int,
                   help="training steps per epoch (default: one pass over the training set)")
    p.add_argument("--input-size", type=even_size,
                   help="train at HxW, e.g. 240x320 (even numbers; default: the dataset's native size)")
    p.add_argument("--val-samples", type=int, help="validate on the first N samples only")
    p.add_argument("--validation", choices=["test", "holdout"],
                   help="validation set: the test split (as the reference code; the default) or held-out training "
                        "scenes")
    p.add_argument("--canonical-focal", type=float, metavar="F",
                   help="train in a canonical camera of focal length F (relative to the picture's width; NYU's "
                        f"Kinect is {NYU_CAMERA.fx:.3f}): each sample's depth is scaled by F over its own focal "
                        "length, so data of several cameras agree; the model then answers for F and test.py / "
                        "evaluate.py rescale for each picture's camera (default: off, the dataset's own camera)")
    p.add_argument("--permute-prob", type=float,
                   help=f"probability of a colour channel permutation (paper {PAPER.permute_prob}; the reference "
                        f"code's real rate is {RECIPES['reference'].permute_prob:.3f}: 0.5 over seven orders, two "
                        "RGB)")
    p.add_argument("--theta", type=float, help=f"weight of the L1 term (default {PAPER.theta})")
    p.add_argument("--run-dir", help=f"folder of all runs (default {PAPER.run_dir})")
    p.add_argument("--name", help="this run's folder name (default: date, time and data)")
    p.add_argument("--save-every", type=int,
                   help="also checkpoint every N steps inside an epoch (default 0: at epoch ends only)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable or missing samples and count them, instead of stopping")
    p.add_argument("--gpus", type=int, help="use only the first N GPUs (default: all)")
    p.add_argument("--cpu-devices", type=int,
                   help="split the CPU into N devices and mirror over them (tests distribution without GPUs)")
    p.add_argument("--smoke", action="store_true",
                   help="check that training works here, in seconds: the whole code path (data, model, loss, "
                        "checkpoints, logs, final.keras) on the tiny encoder and a few synthetic rooms; its model "
                        "is not for predictions. Sets " + ", ".join(f"{k}={v}" for k, v in SMOKE.items())
                        + " (flags you write win)")
    given = {key.replace("-", "_"): value for key, value in vars(p.parse_args(argv)).items()}
    check_flags(p, given)
    if "data" in given:
        given["data"], *mix = given["data"]
        given["mix"] = tuple(mix)
    if "data_weights" in given:
        given["mix_weights"] = given.pop("data_weights")
        if len(given["mix_weights"]) != 1 + len(given.get("mix", ())):
            p.error(f"--data-weights gives {len(given['mix_weights'])} weights for "
                    f"{1 + len(given.get('mix', ()))} --data")
    return given


def weights_list(text):
    """(w1, w2, ...) from 'W1,W2,...', each positive, for argparse."""
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 1,3, got {text!r}") from err
    if not all(w > 0 and math.isfinite(w) for w in weights):
        raise argparse.ArgumentTypeError(f"every weight must be positive, got {text!r}")
    return weights


def parse_args(argv=None):
    """The TrainSettings of a new run with these flags (a resumed run: resumed_settings in main)."""
    return train_settings(parse_flags(argv))


def even_size(text):
    """(height, width) from 'HxW', both even (the output is exactly half), for argparse."""
    try:
        return parse_hw(text, even=True)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def check_flags(parser, given):
    """parser.error for impossible values (one line, no traceback)."""
    for flag in ("epochs", "bs", "cpu_devices", "steps_per_epoch", "gpus", "val_samples"):
        if flag in given and given[flag] < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {given[flag]}")
    if "lr" in given and (not given["lr"] > 0 or not math.isfinite(given["lr"])):
        parser.error(f"--lr must be a positive number, got {given['lr']}")
    if not 0 <= given.get("permute_prob", 0) <= 1:
        parser.error(f"--permute-prob must be in [0, 1], got {given['permute_prob']}")
    if given.get("save_every", 0) < 0:
        parser.error("--save-every must be 0 or more")
    if given.get("canonical_focal") is not None and not 0.05 <= given["canonical_focal"] <= 20:
        parser.error(f"--canonical-focal is a focal length over the picture's width, between 0.05 and 20 "
                     f"(NYU's Kinect: {NYU_CAMERA.fx:.3f}), got {given['canonical_focal']}")


# ---------------------------------------------------------------------------------------------------------
# Main: open the run folder, train, and turn every user mistake or interruption into one line
# ---------------------------------------------------------------------------------------------------------


def main(argv=None):
    given = parse_flags(argv)
    settings = train_settings(given)
    quiet_tensorflow()
    import keras

    from distribute import cluster_spec, split_host_cpu

    if keras.backend.backend() == "jax":
        split_host_cpu(settings.cpu_devices)  # before JAX starts its runtime
    from runs import Interrupted, interrupt_handler, interrupted_message, open_run, remove_if_unused

    run = None
    with interrupt_handler() as interrupt:
        try:
            run = open_run(settings.run_dir, settings.name, settings.init == "resume", settings.data,
                           cluster_spec()[2])
            if settings.init == "resume":
                settings = resumed(run, given)
            return train(settings, run, interrupt, given.get("lr") if settings.init == "resume" else None)
        except InputError as err:
            remove_if_unused(run)
            sys.exit(f"error: {err}")
        except TrainingDiverged as err:
            sys.exit(f"error: {err}")
        except (Interrupted, KeyboardInterrupt) as err:
            remove_if_unused(run)
            from tqdm import tqdm

            for bar in list(getattr(tqdm, "_instances", ())):  # the epoch's bar, else printed after the message
                bar.close()
            how = str(err) if isinstance(err, Interrupted) else interrupt.received
            print(interrupted_message(settings, run, how), file=sys.stderr, flush=True)
            from runs import INTERRUPTED_EXIT

            sys.exit(INTERRUPTED_EXIT)


def resumed(run, given):
    """The settings run was started with, and the flags given that a resumed run may change."""
    from runs import saved_settings

    try:
        return resumed_settings(saved_settings(run), given)
    except (ValueError, TypeError) as err:
        raise InputError(f"{run.path / 'config.json'}: not the settings of this version's train.py ({err})") from err


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


def train(settings, run, interrupt=None, new_lr=None):
    """Train as settings say into run's folder; returns the folder. new_lr: a resumed run's new rate."""
    from data import open_training_data
    from distribute import (
        cluster_spec,
        is_tf_distribute,
        keras_multi_worker_fixes,
        make_strategy,
        replicas,
        training_precision,
    )
    from pipeline import PipelineSettings, SampleErrors, training_inputs, validation_shared_by
    from runs import RUN_BYTES_PER_PARAM, TrainingState, bad_samples_reported, record_resume, saved_state

    check_writable(run.folder, folder=True)  # now, not after the data and the model are ready
    resuming = settings.init == "resume"
    strategy = make_strategy(settings.gpus, settings.cpu_devices)  # before any other TensorFlow op
    precision = training_precision(settings.precision)
    if settings.bs % replicas(strategy):
        raise InputError(f"--bs {settings.bs} is not divisible by the {replicas(strategy)} replicas")
    dataset = open_training_data((settings.data, *settings.mix), settings.mix_weights, validation=settings.validation,
                                 skip_bad=settings.skip_bad, seed=settings.seed)
    run.folder.mkdir(parents=True, exist_ok=True)
    if settings.val_samples:
        dataset.limit("val", settings.val_samples)
    if not is_tf_distribute(strategy):
        kept, count = validation_shared_by(dataset, replicas(strategy))
        if kept < count:
            print(f"validating on the first {kept} of {count} pairs, a multiple of the {replicas(strategy)} devices",
                  flush=True)
    input_hw = settings.input_size or dataset.spec.train_hw
    steps = settings.steps_per_epoch or max(1, len(dataset.samples("train")) // settings.bs)
    state = saved_state(run) if resuming else TrainingState()
    with strategy.scope():
        model = build_model(settings, dataset.spec.depth_range)
        if resuming:
            state = restore(model, run, state, new_lr)
    check_writable(run.folder, RUN_BYTES_PER_PARAM * model.count_params(), folder=True)
    if cluster_spec()[0] > 1:
        keras_multi_worker_fixes(model, strategy)

    errors = SampleErrors()
    inputs = PipelineSettings(input_hw, settings.seed, settings.skip_bad, settings.permute_prob,
                              recipe_target(settings, dataset), settings.canonical_focal)
    train_input, val_ds = training_inputs(dataset, settings.bs, inputs, strategy, errors)
    setup = Setup(strategy, precision, input_hw, steps)
    print_setup(settings, setup, dataset, run)
    if run.is_chief and not resuming:
        write_first_files(settings, setup, run, model, dataset, errors, val_ds)
    if run.is_chief and resuming:
        record_resume(run, state, settings.epochs, new_lr or settings.lr)
    contract = contract_maker(model, settings, dataset, input_hw)
    from runs import RunCheckpoint

    checkpoint = RunCheckpoint(run.folder, state, steps, settings.save_every, contract, interrupt)
    callbacks = make_callbacks(settings, run, dataset, steps, val_ds, errors, checkpoint)
    if interrupt:
        interrupt.armed = True  # from here on, Ctrl-C / SIGTERM saves a checkpoint at the next step
    with bad_samples_reported(errors):
        fit(model, train_input, val_ds, callbacks, checkpoint, settings)
    if checkpoint.diverged:
        kept = state.checkpoint or "none yet"
        raise TrainingDiverged(f"{checkpoint.diverged}: training stopped; the last good checkpoint ({kept}) is "
                               f"kept in {run.folder / 'checkpoints'}. Check the data, or resume with a lower --lr.")
    finish(run, model, contract(state), state, errors, dataset)
    return run.folder


# ---------------------------------------------------------------------------------------------------------
# The pieces train() is made of
# ---------------------------------------------------------------------------------------------------------


def build_model(settings, depth_range):
    """The network (new, or from --init's model file), compiled with Adam, the loss and the training metrics."""
    import keras

    from loss import depth_loss_function, training_metrics
    from model import create_model, load_model

    keras.utils.set_random_seed(settings.seed)
    if settings.init not in ("scratch", "resume"):
        model = load_model(settings.init)
    else:
        weights = None if settings.weights.lower() == "none" else settings.weights
        model = create_model(settings.encoder, weights=weights, decoder_width=settings.decoder_width,
                             leaky_relu_after=settings.leaky_relu_after, upsampling=settings.upsampling)
    optimizer = keras.optimizers.Adam(settings.lr, beta_1=0.9, beta_2=0.999, amsgrad=settings.amsgrad)
    model.compile(optimizer=optimizer, loss=lambda y, p: depth_loss_function(y, p, theta=settings.theta),
                  metrics=training_metrics(depth_range))
    return model


def restore(model, run, state, lr=None):
    """The state restored: weights, optimizer state and learning rate of the run's last checkpoint (lr: a new
    rate instead), or, where that file is damaged, of the one before it, with a line naming the damaged file."""
    model.optimizer.build(model.trainable_variables)
    folder = run.path / "checkpoints"
    try:
        load_checkpoint(model, folder / state.checkpoint)
    except InputError as err:
        previous = state.previous
        if not previous or not (folder / previous.checkpoint).is_file():
            raise
        print(f"warning: {err}; resuming from the checkpoint before it, {previous.checkpoint} (step "
              f"{previous.global_step})", flush=True)
        load_checkpoint(model, folder / previous.checkpoint)
        state = previous
    if lr is not None:  # the checkpoint restored the run's rate along with Adam's moments
        model.optimizer.learning_rate = lr
    return state


def load_checkpoint(model, path):
    """model.load_weights(path), with InputError naming the file where it is missing, cut short or not ours."""
    import h5py

    if not path.is_file():
        raise InputError(f"{path}: checkpoint missing")
    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: damaged checkpoint (not a complete HDF5 file)")
    try:
        model.load_weights(path)
    except (OSError, KeyError, ValueError) as err:  # h5py's truncated-file and missing-dataset errors
        raise InputError(f"{path}: damaged checkpoint ({type(err).__name__}: {err})") from err


@dataclass(frozen=True)
class Setup:
    """What train() decided from the settings, the devices and the data."""

    strategy: object  # tf.distribute strategy or keras.distribution
    precision: str  # the Keras dtype policy
    input_hw: tuple
    steps: int  # per epoch


def print_setup(settings, setup, dataset, run):
    """The run's one-line set-up (and where a non-chief worker writes)."""
    import keras

    from distribute import cluster_spec, replicas, strategy_name

    workers, index, _ = cluster_spec()
    count = replicas(setup.strategy)
    height, width = setup.input_hw
    print(f"strategy {strategy_name(setup.strategy)} | workers {workers} | replicas {count} | global batch "
          f"{settings.bs} | per-replica batch {settings.bs // count} | steps/epoch {setup.steps} | input "
          f"{height}x{width} | precision {setup.precision} | backend {keras.backend.backend()} | "
          f"{len(dataset.samples('train'))} train / {len(dataset.samples('val'))} val pairs", flush=True)
    if not run.is_chief:
        print(f"worker {index} is not the chief: its checkpoints, logs and final.keras go to {run.folder}", flush=True)


def write_first_files(settings, setup, run, model, dataset, errors, val_ds):
    """config.json, model_summary.txt and baseline.json of a new run."""
    import keras
    import tensorflow as tf

    from distribute import cluster_spec, replicas, strategy_name
    from pipeline import PipelineSettings, pipeline
    from runs import bad_samples_reported, mean_depth_baseline

    replica_count = replicas(setup.strategy)
    config = {"settings": settings.to_dict(), "command": " ".join([sys.executable, *sys.argv]),
              "git_commit": git_commit(), "backend": keras.backend.backend(), "tensorflow": tf.__version__,
              "keras": keras.__version__, "strategy": strategy_name(setup.strategy), "workers": cluster_spec()[0],
              "replicas": replica_count, "global_batch": settings.bs, "per_replica_batch": settings.bs // replica_count,
              "precision": setup.precision, "target": recipe_target(settings, dataset), "steps_per_epoch": setup.steps,
              "input_hw": list(setup.input_hw), "train_pairs": len(dataset.samples("train")),
              "val_pairs": len(dataset.samples("val")), "depth_range": vars(dataset.spec.depth_range)}
    write_json(run.folder / "config.json", config)
    with open(run.folder / "model_summary.txt", "w") as f:
        model.summary(print_fn=lambda line, **_: f.write(line + "\n"), line_length=120)
    baseline_ds = pipeline(dataset, "train", settings.bs,
                           PipelineSettings(setup.input_hw, settings.seed, settings.skip_bad), training=False,
                           errors=errors)
    with bad_samples_reported(errors):
        baseline = mean_depth_baseline(baseline_ds, val_ds, dataset.spec.depth_range)
    write_json(run.folder / "baseline.json", baseline)
    print("baseline, training-mean depth {mean_depth_m:.2f} m: val a1 {a1:.3f} abs_rel {abs_rel:.3f} "
          "rmse {rmse:.3f}".format(**baseline), flush=True)


def make_callbacks(settings, run, dataset, steps, val_ds, errors, checkpoint):
    """Every callback of fit: progress, log.csv, TensorBoard, samples, the recipe's schedule, and the
    RunCheckpoint last."""
    import keras

    from runs import Progress, SamplePredictions, bad_samples_reported

    with bad_samples_reported(errors):
        sample_images, sample_targets = next(iter(val_ds.unbatch().batch(SAMPLE_IMAGES)))
    # The checkpoint comes last: an epoch's log row is written before the checkpoint that counts it done.
    callbacks = [Progress(steps, settings.bs, run.is_chief),
                 keras.callbacks.CSVLogger(str(run.folder / "log.csv"), append=settings.init == "resume"),
                 keras.callbacks.TensorBoard(str(run.folder / "tensorboard"), write_graph=False, profile_batch=0),
                 SamplePredictions(sample_images.numpy(), sample_targets.numpy(),
                                   run.folder / "tensorboard" / "samples", dataset.spec.depth_range),
                 checkpoint]
    return recipe_callbacks(settings) + callbacks


def recipe_target(settings, dataset):
    """How the recipe turns depth into targets on this dataset (pipeline.TARGETS): the released recipe's
    blurred inverse depth is for dense data only, sparse data keeps the paper's."""
    return "paper" if dataset.spec.sparse else settings.targets


def recipe_callbacks(settings):
    """The callbacks a recipe adds before the others: the authors' learning-rate schedule."""
    import keras

    return [keras.callbacks.ReduceLROnPlateau(**LR_SCHEDULE)] if settings.lr_schedule else []


def contract_maker(model, settings, dataset, input_hw):
    """A function of the training state giving the contract saved with best.keras and final.keras."""
    from contract import model_contract

    def contract(state):
        training = {"steps": state.global_step, "epochs": state.epoch, "global_batch": settings.bs,
                    "best_epoch": state.best_epoch, "best_val_delta1": state.best_val_a1,
                    "smoke": bool(settings.smoke), "recipe": settings.recipe,
                    "command": " ".join(["python", "train.py", *sys.argv[1:]])}
        return model_contract(model, dataset.spec.name, dataset.spec.depth_range, input_hw,
                              settings.input_size is not None, training, training_camera(settings, dataset, input_hw))

    return contract


def training_camera(settings, dataset, input_hw):
    """The camera the model learns depth for: the canonical one (--canonical-focal), else the dataset's."""
    from camera import Camera

    if settings.canonical_focal is None:
        return dataset.camera
    height, width = input_hw
    return Camera(settings.canonical_focal, settings.canonical_focal * width / height, 0.5, 0.5,
                  f"canonical, train.py --canonical-focal {settings.canonical_focal:g}")


def fit(model, train_input, val_ds, callbacks, checkpoint, settings):
    """Train from where the checkpoint's state stands to settings.epochs: an interrupted epoch is finished
    first."""
    state, steps, epochs, bs = checkpoint.state, checkpoint.steps_per_epoch, settings.epochs, settings.bs
    first_epoch = state.epoch
    if state.epoch_step and first_epoch < epochs:
        model.fit(train_input(state.global_step * bs), validation_data=val_ds, epochs=first_epoch + 1,
                  initial_epoch=first_epoch, steps_per_epoch=steps - state.epoch_step, callbacks=callbacks,
                  verbose=0, shuffle=False)
        first_epoch += 1
    if first_epoch < epochs and not checkpoint.diverged:
        model.fit(train_input(first_epoch * steps * bs), validation_data=val_ds, epochs=epochs,
                  initial_epoch=first_epoch, steps_per_epoch=steps, callbacks=callbacks, verbose=0, shuffle=False)


def finish(run, model, contract, state, errors, dataset):
    """final.keras (with its contract), and the closing lines."""
    from contract import save_model

    save_model(model, run.folder / "final.keras", contract)
    if errors.count:
        print(f"skipped {errors.count} bad samples (first: {errors.first})")
    if dataset.skipped:
        print(f"skipped {len(dataset.skipped)} listed pairs with missing files (first: {dataset.skipped[0]})")
    if run.is_chief:
        best = (f"best.keras from epoch {state.best_epoch}" if state.best_epoch
                else "no best.keras (no validation)")
        print(f"done: {run.path} (final.keras, {best}, log.csv, tensorboard/)")


if __name__ == "__main__":
    main()
