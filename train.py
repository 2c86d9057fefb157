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
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Nothing imported here loads TensorFlow: --help answers at once.
from augment import PERMUTE_PROBABILITY, REFERENCE_PERMUTE_PROBABILITY
from camera import NYU_CAMERA
from data import DEFAULT_TRAIN_DATA  # noqa: E402
from legacy import ENCODER_CHANNELS, PAPER_LEAKY_RELU, REFERENCE_LEAKY_RELU
from metrics import THETA
from utils import PRECISION_POLICIES, InputError, check_writable, git_commit, parse_hw, quiet_tensorflow, write_json

# Defaults: the paper's (section 4.2) and the reference code's 20 epochs.
DATA = DEFAULT_TRAIN_DATA
EPOCHS = 20
BATCH_SIZE = 8          # global, over all replicas
LEARNING_RATE = 1e-4    # Adam, beta1 0.9, beta2 0.999
ENCODER = "densenet169"
DECODER_WIDTH = 1.0     # the paper's full-width decoder; the reference code used 0.5
WEIGHTS = "imagenet"
SEED = 0
RUN_DIR = "runs"
SAMPLE_IMAGES = 3       # validation images drawn into TensorBoard each epoch
# Recipes: the paper's (the default); "released", the authors' code of January 2019 with which nyu.h5 and
# kitti.h5 were trained (their README: --gpus 4 --bs 8, a batch multi_gpu_model split over the GPUs); and
# "reference", their code from March 2019 on (half-width decoder, a second LeakyReLU, batch 4). Each flag
# value applies where its flag is not written; config.json records the outcome. RECIPE_NETWORKS and
# RECIPE_TARGETS hold what no flag sets: the decoder's activations, the up-sampling and the targets.
RECIPES = {"paper": {},
           "released": {"amsgrad": True, "bs": 8, "decoder_width": 1.0, "permute_prob": REFERENCE_PERMUTE_PROBABILITY},
           "reference": {"amsgrad": True, "bs": 4, "decoder_width": 0.5, "permute_prob": REFERENCE_PERMUTE_PROBABILITY}}
RECIPE_NETWORKS = {"paper": {"leaky_relu_after": PAPER_LEAKY_RELU, "upsampling": "half_pixel"},
                   "released": {"leaky_relu_after": PAPER_LEAKY_RELU, "upsampling": "align_corners"},
                   "reference": {"leaky_relu_after": REFERENCE_LEAKY_RELU, "upsampling": "half_pixel"}}
RECIPE_TARGETS = {"paper": "paper", "released": "released", "reference": "paper"}
# Both the January and the later callbacks.py: ReduceLROnPlateau on the validation loss.
REFERENCE_LR_SCHEDULE = {"monitor": "val_loss", "factor": 0.7, "patience": 5, "min_lr": 9e-5, "min_delta": 1e-2}
# --smoke: the whole training code path in seconds, on the tiny encoder (model.tiny_densenet) and a few
# synthetic rooms. It checks an installation or a change; its model has learned nothing worth predicting with.
SMOKE = {"data": "synthetic:24:8", "epochs": 2, "steps_per_epoch": 3, "bs": 2, "input_size": (64, 96),
         "encoder": "tiny", "weights": "none", "val_samples": 4}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA, help=f"dataset: synthetic, nyu, a zip, folder or KITTI split (default {DATA})")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs to train in all (default {EPOCHS})")
    p.add_argument("--bs", type=int, default=BATCH_SIZE, help=f"global batch size over all replicas (default {BATCH_SIZE})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate (default {LEARNING_RATE}; with --init resume, replaces the run's own)")
    p.add_argument("--encoder", default=ENCODER, choices=sorted(ENCODER_CHANNELS),
                   help=f"DenseNet encoder (default {ENCODER}, the paper's; densenet201 its ablation; tiny: a few "
                        "layers with the same skip connections, random weights only, for tests and --smoke)")
    p.add_argument("--decoder-width", type=float, default=DECODER_WIDTH,
                   help="conv2 channels as a fraction of the encoder's (paper 1.0, reference code 0.5)")
    p.add_argument("--weights", default=WEIGHTS,
                   help="encoder initialisation: imagenet (downloaded), none, or a weights file path")
    p.add_argument("--init", default="scratch",
                   help="scratch (new run), resume (continue --name, or the newest run), or a model file "
                        "(.keras or the authors' nyu.h5 / kitti.h5) to start from")
    p.add_argument("--recipe", default="paper", choices=sorted(RECIPES),
                   help="paper (default): Adam, batch 8, full decoder, one LeakyReLU per block (after convB), "
                        "permutation 0.25, targets clipped to 0.4-10 m; released: how the authors' nyu.h5 was made "
                        "(their January 2019 code): AMSGrad, batch 8, full decoder, one LeakyReLU, align_corners "
                        "up-sampling, permutation 5/14, targets inverted before a blurred down-sampling and not "
                        "clipped, ReduceLROnPlateau(factor 0.7, patience 5, min_lr 9e-5); reference: their later code "
                        "(March 2019 on): AMSGrad, batch 4, half-width decoder, a LeakyReLU after convA and convB, "
                        "permutation 5/14, the same schedule")
    p.add_argument("--amsgrad", action="store_true", help="use AMSGrad (the reference code's choice)")
    p.add_argument("--precision", default="float32", choices=(*PRECISION_POLICIES, "mixed"),
                   help="compute precision, weights stay float32: float32 (default), bfloat16, float16, or mixed "
                        "(float16 on GPUs, bfloat16 on CPUs)")
    p.add_argument("--mixed-precision", dest="precision", action="store_const", const="mixed", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=SEED, help="seed of weights, data order and augmentation")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="training steps per epoch (default: one pass over the training set)")
    p.add_argument("--input-size", type=even_size, default=None,
                   help="train at HxW, e.g. 240x320 (even numbers; default: the dataset's native size)")
    p.add_argument("--val-samples", type=int, default=None, help="validate on the first N samples only")
    p.add_argument("--validation", default="test", choices=["test", "holdout"],
                   help="validation set: the test split (as the reference code) or held-out training scenes")
    p.add_argument("--canonical-focal", type=float, metavar="F",
                   help="train in a canonical camera of focal length F (relative to the picture's width; NYU's "
                        f"Kinect is {NYU_CAMERA.fx:.3f}): each sample's depth is scaled by F over its own focal "
                        "length, so data of several cameras agree; the model then answers for F and test.py / "
                        "evaluate.py rescale for each picture's camera (default: off, the dataset's own camera)")
    p.add_argument("--permute-prob", type=float, default=PERMUTE_PROBABILITY,
                   help=f"probability of a colour channel permutation (paper {PERMUTE_PROBABILITY}; the reference "
                        f"code's real rate is {REFERENCE_PERMUTE_PROBABILITY:.3f}: 0.5 over seven orders, two RGB)")
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
                   help="check that training works here, in seconds: the whole code path (data, model, loss, "
                        "checkpoints, logs, final.keras) on the tiny encoder and a few synthetic rooms; its model "
                        "is not for predictions. Sets " + ", ".join(f"{k}={v}" for k, v in SMOKE.items())
                        + " (flags you write win)")
    args = p.parse_args(argv)
    given = flags_given(p, sys.argv[1:] if argv is None else argv)
    for preset in (SMOKE if args.smoke else {}), RECIPES[args.recipe]:
        for key, value in preset.items():
            if key not in given:
                setattr(args, key, value)
                given.add(key)  # --smoke's values win over a recipe's
    check_args(p, args)
    return args


def even_size(text):
    """(height, width) from 'HxW', both even (the output is exactly half), for argparse."""
    try:
        return parse_hw(text, even=True)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


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
    if args.canonical_focal is not None and not 0.05 <= args.canonical_focal <= 20:
        parser.error(f"--canonical-focal is a focal length over the picture's width, between 0.05 and 20 "
                     f"(NYU's Kinect: {NYU_CAMERA.fx:.3f}), got {args.canonical_focal}")


# ---------------------------------------------------------------------------------------------------------
# Main: open the run folder, train, and turn every user mistake or interruption into one line
# ---------------------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()
    import keras

    from distribute import cluster_spec, split_host_cpu

    if keras.backend.backend() == "jax":
        split_host_cpu(args.cpu_devices)  # before JAX starts its runtime
    from runs import Interrupted, interrupt_handler, interrupted_message, open_run, remove_if_unused

    run = None
    with interrupt_handler() as interrupt:
        try:
            run = open_run(args.run_dir, args.name, args.init == "resume", args.data, cluster_spec()[2])
            return train(resumed(args, run) if args.init == "resume" else args, run, interrupt)
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
            print(interrupted_message(args, run, how), file=sys.stderr, flush=True)
            from runs import INTERRUPTED_EXIT

            sys.exit(INTERRUPTED_EXIT)


def resumed(args, run):
    """args with the run's saved settings, except the ones a resumed run may change (and --lr if given)."""
    from runs import SETTINGS_A_RESUME_MAY_CHANGE, saved_settings

    for key, value in saved_settings(run).items():
        if key not in SETTINGS_A_RESUME_MAY_CHANGE and not (key == "lr" and args.lr is not None):
            setattr(args, key, value)
    if args.input_size:  # JSON keeps it as a list ("HxW" in runs made before 0.2)
        args.input_size = parse_hw(args.input_size) if isinstance(args.input_size, str) else tuple(args.input_size)
    return args


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


def train(args, run, interrupt=None):
    """Train as args say into run's folder; returns the folder."""
    from data import open_dataset
    from distribute import (cluster_spec, is_tf_distribute, keras_multi_worker_fixes, make_strategy, replicas,
                            training_precision)
    from pipeline import SampleErrors, training_inputs, validation_shared_by
    from runs import RUN_BYTES_PER_PARAM, bad_samples_reported, initial_state, record_resume, saved_state

    check_writable(run.folder, folder=True)  # now, not after the data and the model are ready
    resuming = args.init == "resume"
    strategy = make_strategy(args.gpus, args.cpu_devices)  # before any other TensorFlow op
    precision = training_precision(args.precision)
    if args.bs % replicas(strategy):
        raise InputError(f"--bs {args.bs} is not divisible by the {replicas(strategy)} replicas")
    dataset = open_dataset(args.data, validation=args.validation, skip_bad=args.skip_bad, seed=args.seed)
    run.folder.mkdir(parents=True, exist_ok=True)
    if args.val_samples:
        dataset.limit("val", args.val_samples)
    if not is_tf_distribute(strategy):
        kept, count = validation_shared_by(dataset, replicas(strategy))
        if kept < count:
            print(f"validating on the first {kept} of {count} pairs, a multiple of the {replicas(strategy)} devices",
                  flush=True)
    input_hw = args.input_size or dataset.train_hw
    steps = args.steps_per_epoch or max(1, len(dataset.samples("train")) // args.bs)
    state = saved_state(run) if resuming else initial_state()
    lr = args.lr or LEARNING_RATE
    with strategy.scope():
        model = build_model(args, dataset.depth_range, lr)
        if resuming:
            state = restore(model, run, state, args.lr)
    check_writable(run.folder, RUN_BYTES_PER_PARAM * model.count_params(), folder=True)
    if cluster_spec()[0] > 1:
        keras_multi_worker_fixes(model, strategy)

    errors = SampleErrors()
    train_input, val_ds = training_inputs(dataset, args.bs, input_hw, strategy, errors, args.seed, args.skip_bad,
                                          args.permute_prob, recipe_target(args.recipe, dataset), args.canonical_focal)
    print_setup(args, strategy, input_hw, steps, precision, dataset, run)
    if run.is_chief and not resuming:
        write_first_files(args, run, model, dataset, input_hw, steps, precision, strategy, errors, val_ds)
    if run.is_chief and resuming:
        record_resume(run, state, args.epochs, lr)
    contract = contract_maker(model, args, dataset, input_hw)
    checkpoint, callbacks = make_callbacks(args, run, dataset, state, steps, val_ds, errors, contract, interrupt)
    with bad_samples_reported(errors):
        fit(model, train_input, val_ds, callbacks, state, steps, args.epochs, args.bs, checkpoint)
    if checkpoint.diverged:
        kept = state.get("checkpoint") or "none yet"
        raise TrainingDiverged(f"{checkpoint.diverged}: training stopped; the last good checkpoint ({kept}) is "
                               f"kept in {run.folder / 'checkpoints'}. Check the data, or resume with a lower --lr.")
    finish(run, model, contract(state), state, errors, dataset)
    return run.folder


# ---------------------------------------------------------------------------------------------------------
# The pieces train() is made of
# ---------------------------------------------------------------------------------------------------------


def build_model(args, depth_range, lr):
    """The network (new, or from --init's model file), compiled with Adam, the loss and the training metrics."""
    import keras

    from loss import depth_loss_function, training_metrics
    from model import create_model, load_model

    keras.utils.set_random_seed(args.seed)
    if args.init not in ("scratch", "resume"):
        model = load_model(args.init)
    else:
        weights = None if args.weights.lower() == "none" else args.weights
        model = create_model(args.encoder, weights=weights, decoder_width=args.decoder_width,
                             **RECIPE_NETWORKS[args.recipe])
    optimizer = keras.optimizers.Adam(lr, beta_1=0.9, beta_2=0.999, amsgrad=args.amsgrad)
    model.compile(optimizer=optimizer, loss=lambda y, p: depth_loss_function(y, p, theta=args.theta),
                  metrics=training_metrics(depth_range))
    return model


def restore(model, run, state, lr=None):
    """The state restored: weights, optimizer state and learning rate of the run's last checkpoint (lr: a new
    rate instead), or, where that file is damaged, of the one before it, with a line naming the damaged file."""
    model.optimizer.build(model.trainable_variables)
    folder = run.path / "checkpoints"
    try:
        load_checkpoint(model, folder / state["checkpoint"])
    except InputError as err:
        previous = state.get("previous")
        if not previous or not (folder / previous["checkpoint"]).is_file():
            raise
        print(f"warning: {err}; resuming from the checkpoint before it, {previous['checkpoint']} (step "
              f"{previous['global_step']})", flush=True)
        load_checkpoint(model, folder / previous["checkpoint"])
        state = dict(previous)
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


def print_setup(args, strategy, input_hw, steps, precision, dataset, run):
    """The run's one-line set-up (and where a non-chief worker writes)."""
    import keras

    from distribute import cluster_spec, replicas, strategy_name

    workers, index, _ = cluster_spec()
    count = replicas(strategy)
    print(f"strategy {strategy_name(strategy)} | workers {workers} | replicas {count} | global batch {args.bs} "
          f"| per-replica batch {args.bs // count} | steps/epoch {steps} | input {input_hw[0]}x{input_hw[1]} "
          f"| precision {precision} | backend {keras.backend.backend()} | {len(dataset.samples('train'))} train / "
          f"{len(dataset.samples('val'))} val pairs", flush=True)
    if not run.is_chief:
        print(f"worker {index} is not the chief: its checkpoints, logs and final.keras go to {run.folder}", flush=True)


def write_first_files(args, run, model, dataset, input_hw, steps, precision, strategy, errors, val_ds):
    """config.json, model_summary.txt and baseline.json of a new run."""
    import keras
    import tensorflow as tf

    from distribute import cluster_spec, replicas, strategy_name
    from pipeline import pipeline
    from runs import bad_samples_reported, mean_depth_baseline

    config = {"args": vars(args), "command": " ".join([sys.executable, *sys.argv]), "git_commit": git_commit(),
              "backend": keras.backend.backend(), "tensorflow": tf.__version__, "keras": keras.__version__,
              "strategy": strategy_name(strategy), "workers": cluster_spec()[0], "replicas": replicas(strategy),
              "global_batch": args.bs, "per_replica_batch": args.bs // replicas(strategy), "precision": precision,
              "recipe": {"name": args.recipe, "target": recipe_target(args.recipe, dataset),
                         **{k: list(v) if isinstance(v, tuple) else v
                            for k, v in RECIPE_NETWORKS[args.recipe].items()}},
              "steps_per_epoch": steps, "input_hw": list(input_hw), "train_pairs": len(dataset.samples("train")),
              "val_pairs": len(dataset.samples("val")), "depth_range": vars(dataset.depth_range)}
    write_json(run.folder / "config.json", config)
    with open(run.folder / "model_summary.txt", "w") as f:
        model.summary(print_fn=lambda line, **_: f.write(line + "\n"), line_length=120)
    baseline_ds = pipeline(dataset, "train", args.bs, input_hw, args.seed, training=False,
                           skip_bad=args.skip_bad, errors=errors)
    with bad_samples_reported(errors):
        baseline = mean_depth_baseline(baseline_ds, val_ds, dataset.depth_range)
    write_json(run.folder / "baseline.json", baseline)
    print("baseline, training-mean depth {mean_depth_m:.2f} m: val a1 {a1:.3f} abs_rel {abs_rel:.3f} "
          "rmse {rmse:.3f}".format(**baseline), flush=True)


def make_callbacks(args, run, dataset, state, steps, val_ds, errors, contract, interrupt):
    """(the RunCheckpoint, every callback of fit): progress, log.csv, TensorBoard, samples, checkpoints."""
    import keras

    from runs import Progress, RunCheckpoint, SamplePredictions, bad_samples_reported

    checkpoint = RunCheckpoint(run.folder, state, steps, args.save_every, contract, interrupt)
    with bad_samples_reported(errors):
        sample_images, sample_targets = next(iter(val_ds.unbatch().batch(SAMPLE_IMAGES)))
    # The checkpoint comes last: an epoch's log row is written before the checkpoint that counts it done.
    callbacks = [Progress(steps, args.bs, run.is_chief),
                 keras.callbacks.CSVLogger(str(run.folder / "log.csv"), append=args.init == "resume"),
                 keras.callbacks.TensorBoard(str(run.folder / "tensorboard"), write_graph=False, profile_batch=0),
                 SamplePredictions(sample_images.numpy(), sample_targets.numpy(),
                                   run.folder / "tensorboard" / "samples", dataset.depth_range),
                 checkpoint]
    callbacks = recipe_callbacks(args.recipe) + callbacks
    if interrupt:
        interrupt.armed = True  # from here on, Ctrl-C / SIGTERM saves a checkpoint at the next step
    return checkpoint, callbacks


def recipe_target(recipe, dataset):
    """How the recipe turns depth into targets on this dataset (data.TARGETS): the released recipe's
    blurred inverse depth is for dense data only, sparse data keeps the paper's."""
    return "paper" if dataset.sparse else RECIPE_TARGETS[recipe]


def recipe_callbacks(recipe):
    """The callbacks a recipe adds before the others: the reference code's learning-rate schedule."""
    import keras

    return [keras.callbacks.ReduceLROnPlateau(**REFERENCE_LR_SCHEDULE)] if recipe != "paper" else []


def contract_maker(model, args, dataset, input_hw):
    """A function of the training state giving the contract saved with best.keras and final.keras."""
    from contract import model_contract

    label = "synthetic" if str(args.data).startswith("synthetic") else dataset.kind

    def contract(state):
        a1 = state.get("best_val_a1")
        training = {"steps": state["global_step"], "epochs": state["epoch"], "global_batch": args.bs,
                    "best_epoch": state["best_epoch"], "best_val_delta1": None if a1 is None else float(a1),
                    "smoke": bool(args.smoke), "recipe": args.recipe}
        return model_contract(model, label, dataset.depth_range, input_hw, args.input_size is not None, training,
                              training_camera(args, dataset, input_hw))

    return contract


def training_camera(args, dataset, input_hw):
    """The camera the model learns depth for: the canonical one (--canonical-focal), else the dataset's."""
    from camera import Camera

    if args.canonical_focal is None:
        return dataset.camera
    height, width = input_hw
    return Camera(args.canonical_focal, args.canonical_focal * width / height, 0.5, 0.5,
                  f"canonical, train.py --canonical-focal {args.canonical_focal:g}")


def fit(model, train_input, val_ds, callbacks, state, steps, epochs, bs, checkpoint):
    """Train from where state stands to `epochs`: an interrupted epoch is finished first."""
    first_epoch = state["epoch"]
    if state["epoch_step"] and first_epoch < epochs:
        model.fit(train_input(state["global_step"] * bs), validation_data=val_ds, epochs=first_epoch + 1,
                  initial_epoch=first_epoch, steps_per_epoch=steps - state["epoch_step"], callbacks=callbacks,
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
    if getattr(dataset, "skipped", None):
        print(f"skipped {len(dataset.skipped)} listed pairs with missing files (first: {dataset.skipped[0]})")
    if run.is_chief:
        best = f"best.keras from epoch {state['best_epoch']}" if state["best_epoch"] else "no best.keras (no validation)"
        print(f"done: {run.path} (final.keras, {best}, log.csv, tensorboard/)")


if __name__ == "__main__":
    main()
