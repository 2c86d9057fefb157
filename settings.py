"""Training settings as one frozen value: the paper's by default, the recipes as changes to it.

    from settings import RECIPES, TrainSettings
    settings = dataclasses.replace(RECIPES["reference"], epochs=5)   # the authors' later code, 5 epochs

train.py builds its TrainSettings from the recipe, then --smoke's presets, then the flags written on the
command line (each layer wins over the one before); config.json stores it (to_dict) and a resumed run
reads it back (from_dict). Nothing here imports TensorFlow: train.py --help answers at once.
"""
import dataclasses
from dataclasses import dataclass

from augment import PERMUTE_PROBABILITY, REFERENCE_PERMUTE_PROBABILITY
from data import DEFAULT_TRAIN_DATA
from loss import THETA
from model import PAPER_LEAKY_RELU, REFERENCE_LEAKY_RELU


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run is made with. Defaults: the paper's section 4.2 (Adam 1e-4, batch 8 over
    all replicas, the full-width decoder on DenseNet-169 from ImageNet, one LeakyReLU per up-sampling block,
    half-pixel bilinear up-sampling, colour permutation 0.25) and the reference code's 20 epochs."""

    data: str = DEFAULT_TRAIN_DATA
    mix: tuple = ()  # further datasets trained on with data (train.py --data A --data B ...)
    mix_weights: tuple = ()  # each dataset's share of the training samples, data's first (default: equal)
    epochs: int = 20
    bs: int = 8  # global, over all replicas
    lr: float = 1e-4  # Adam, beta1 0.9, beta2 0.999
    encoder: str = "densenet169"
    decoder_width: float = 1.0
    weights: str = "imagenet"
    init: str = "scratch"
    recipe: str = "paper"
    amsgrad: bool = False
    precision: str = "float32"
    seed: int = 0
    steps_per_epoch: int | None = None
    input_size: tuple | None = None
    val_samples: int | None = None
    validation: str = "test"
    canonical_focal: float | None = None
    permute_prob: float = PERMUTE_PROBABILITY
    theta: float = THETA
    run_dir: str = "runs"
    name: str | None = None
    save_every: int = 0
    skip_bad: bool = False
    gpus: int | None = None
    cpu_devices: int = 1
    smoke: bool = False
    # What no flag sets: the recipe's network, targets and learning-rate schedule.
    leaky_relu_after: tuple = PAPER_LEAKY_RELU
    upsampling: str = "half_pixel"
    targets: str = "paper"
    lr_schedule: bool = False  # the authors' ReduceLROnPlateau (LR_SCHEDULE)

    def to_dict(self):
        """A JSON-ready dict (tuples as lists): config.json's "settings"."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, content):
        """The settings config.json stored (unknown keys are an error: the file is not this version's)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(content) - fields)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        tuples = {key: tuple(value) for key in ("input_size", "leaky_relu_after", "mix", "mix_weights")
                  if isinstance(value := content.get(key), list)}
        return cls(**{**content, **tuples})


PAPER = TrainSettings()
# "released": the authors' code of January 2019, with which nyu.h5 and kitti.h5 were trained (their README:
# --gpus 4 --bs 8); "reference": their code from March 2019 on (half-width decoder, a second LeakyReLU,
# batch 4). Both use AMSGrad, the permutation rate their code really has, and ReduceLROnPlateau.
RECIPES = {
    "paper": PAPER,
    "released": dataclasses.replace(PAPER, recipe="released", amsgrad=True, permute_prob=REFERENCE_PERMUTE_PROBABILITY,
                                    upsampling="align_corners", targets="released", lr_schedule=True),
    "reference": dataclasses.replace(PAPER, recipe="reference", amsgrad=True, bs=4, decoder_width=0.5,
                                     permute_prob=REFERENCE_PERMUTE_PROBABILITY, leaky_relu_after=REFERENCE_LEAKY_RELU,
                                     lr_schedule=True),
}
# Both the January and the later callbacks.py: ReduceLROnPlateau on the validation loss.
LR_SCHEDULE = {"monitor": "val_loss", "factor": 0.7, "patience": 5, "min_lr": 9e-5, "min_delta": 1e-2}
# --smoke: the whole training code path in seconds, on the tiny encoder (model.tiny_densenet) and a few
# synthetic rooms. It checks an installation or a change; its model has learned nothing worth predicting with.
SMOKE = {"data": "synthetic:24:8", "epochs": 2, "steps_per_epoch": 3, "bs": 2, "input_size": (64, 96),
         "encoder": "tiny", "weights": "none", "val_samples": 4}
# What a resumed run takes from its command line; everything else comes from its config.json (--lr too,
# when given: it replaces the rate the checkpoint restores).
RESUME_MAY_CHANGE = ("epochs", "init", "save_every", "gpus", "cpu_devices", "skip_bad", "name", "run_dir", "lr")


def train_settings(given):
    """The settings of a new run: the recipe's, then --smoke's presets, then the flags given (a dict)."""
    presets = SMOKE if given.get("smoke") else {}
    return dataclasses.replace(RECIPES[given.get("recipe", "paper")], **{**presets, **given})


def resumed_settings(saved, given):
    """A resumed run's settings: the saved ones, with the flags a resume may change that were given."""
    return dataclasses.replace(TrainSettings.from_dict(saved),
                               **{key: value for key, value in given.items() if key in RESUME_MAY_CHANGE})


# ---------------------------------------------------------------------------------------------------------
# The flags every script that loads a model shares: test.py, evaluate.py, demo.py (export.py: --depth-range)
# ---------------------------------------------------------------------------------------------------------

MODEL_HELP = ("a model file: .keras (ours), the authors' .h5, an export.py export (.tflite, .onnx, OpenVINO .xml, "
              "a SavedModel folder); or nyu / kitti, the authors' released models, downloaded once into Keras' "
              "cache (default: nyu.h5 here, else the newest *.keras under runs/, else the built-in model, which "
              "knows the synthetic rooms only)")


def add_depth_range_flag(parser):
    from depth import DEPTH_RANGES

    parser.add_argument("--depth-range", choices=sorted(DEPTH_RANGES),
                        help="the range the model's output is read with: nyu (0.4-10 m), nyu_reference (0.1-10 m) "
                             "or kitti (0.8-80 m) (default: the model's saved contract; for a model without one, "
                             "the data's, else nyu)")


def add_model_flags(parser, max_side=True):
    """--model, --threads, --precision, --depth-range (and --max-side) in a group of their own."""
    from utils import PRECISION_POLICIES

    group = parser.add_argument_group("model")
    group.add_argument("--model", help=MODEL_HELP)
    group.add_argument("--threads", type=int,
                       help="CPU threads the runtime uses (default: every core this process may use)")
    group.add_argument("--precision", default="float32", choices=tuple(PRECISION_POLICIES),
                       help="compute precision of a Keras model; bfloat16 is faster on CPUs with bfloat16 "
                            "instructions (default float32; an export computes as it was exported)")
    add_depth_range_flag(group)
    if max_side:
        group.add_argument("--max-side", type=int,
                           help="scale larger pictures down to this longer side for the network (0: never; "
                                "default: the longer side of the model's training size, 640 for NYU)")


def check_model_flags(parser, args):
    """parser.error for a --threads or --max-side no runtime can take."""
    from estimator import MIN_SIDE

    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    max_side = getattr(args, "max_side", None)
    if max_side is not None and (max_side < 0 or 0 < max_side < MIN_SIDE):
        parser.error(f"--max-side must be 0 or at least {MIN_SIDE}, got {max_side}")
