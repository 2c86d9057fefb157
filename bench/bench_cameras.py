"""The two tables of docs/cameras.md: a small network scored on rooms seen through other focal lengths,
with and without the camera correction, and the canonical camera's training against the alternatives.

    python bench/bench_cameras.py [--epochs 30] [--runs runs]

Trains camA (the Kinect's focal length), camB (focal lengths 0.5-2x, canonical camera 0.811) and camC (the
same rooms, no canonical camera) unless runs/<name>/final.keras exists, then evaluates each as the tables
do and prints them (per image, the paper's protocol). About 10 minutes per training run on 2 cores.
"""
import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMON = ["--encoder", "tiny", "--weights", "none", "--input-size", "96x128"]
RUNS = {"camA": ["--data", "synthetic"],
        "camB": ["--data", "synthetic:600:100:f0.5-2", "--canonical-focal", "0.811"],
        "camC": ["--data", "synthetic:600:100:f0.5-2"]}


def trained(name, epochs, run_dir):
    """The run's final.keras, training it first if it is not there."""
    model = Path(run_dir) / name / "final.keras"
    if not model.is_file():
        command = [sys.executable, str(ROOT / "train.py"), *RUNS[name], *COMMON, "--epochs", str(epochs),
                   "--run-dir", str(run_dir), "--name", name]
        print("$ " + " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    return model


def scores(model, data, scale):
    """(delta1, abs rel, rms) per image of evaluate.py on data, camera-scaled or not."""
    import evaluate

    argv = ["--model", str(model), "--data", data, "--camera-scale", "on" if scale else "off"]
    print("$ python evaluate.py " + " ".join(argv), flush=True)
    result = evaluate.main(argv)
    return tuple(result["per_image"][k] for k in ("a1", "abs_rel", "rmse"))


def row(label, depth, values):
    return f"| {label} | {depth} | " + " | ".join(f"{v:.3f}" for v in values) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="epochs per training run (default 30)")
    parser.add_argument("--runs", default="runs", help="the run folder (default runs)")
    args = parser.parse_args(argv)
    models = {name: trained(name, args.epochs, args.runs) for name in RUNS}
    first = [row("Kinect's focal length (x1.0)", "as is (factor 1)", scores(models["camA"], "synthetic:2:100", True)),
             row("x0.6 (wide)", "not corrected", scores(models["camA"], "synthetic:2:100:f0.6", False)),
             row("x0.6 (wide)", "corrected, x 0.6", scores(models["camA"], "synthetic:2:100:f0.6", True)),
             row("x1.6 (tele)", "not corrected", scores(models["camA"], "synthetic:2:100:f1.6", False)),
             row("x1.6 (tele)", "corrected, x 1.6", scores(models["camA"], "synthetic:2:100:f1.6", True))]
    mixed = "synthetic:2:100:f0.5-2"
    second = [row("camA: the Kinect's focal length only", "not corrected", scores(models["camA"], mixed, False)),
              row("camA", "corrected", scores(models["camA"], mixed, True)),
              row("camC: mixed focal lengths, no canonical camera", "not corrected",
                  scores(models["camC"], mixed, False)),
              row("camC", "corrected (its contract: the rooms' typical camera)", scores(models["camC"], mixed, True)),
              row("camB: mixed focal lengths, canonical camera F = 0.811", "corrected (its depth is for F)",
                  scores(models["camB"], mixed, True)),
              row("camB", "not corrected", scores(models["camB"], mixed, False))]
    print("\n| test rooms | depth | delta1 | abs rel | rms (m) |\n| --- | --- | --- | --- | --- |")
    print("\n".join(first))
    print("\n| model | depth at test | delta1 | abs rel | rms (m) |\n| --- | --- | --- | --- | --- |")
    print("\n".join(second))


if __name__ == "__main__":
    main()
