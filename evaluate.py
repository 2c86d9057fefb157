"""Evaluate a DenseDepth model on a test set: the paper's metrics and, on request, its quality measures.

NYU protocol (paper section 4.3, --protocol paper, the default): predict on the whole 640x480 image,
upsample the 320x240 prediction 2x, average it with the mirrored prediction of the mirrored image
(--no-flip turns this off), clip depth to the dataset's range (0.4-10 m), evaluate inside the Eigen crop
where ground truth is above 1 mm. KITTI: 80 m cap, the Garg crop (--crop eigen for Eigen's), only where
the sparse LiDAR ground truth lies in (1 mm, 80 m], and KITTI's seven metrics (with sq rel and RMSE log).
Every test image is evaluated. The metrics are printed pooled over all evaluated pixels and averaged per
image; each published row sits under ours computed the same way: the paper's (per-image means, as the
authors' compute_errors averaged until August 2019: its rms 0.465 is per image, 0.549 pooled) under the
per-image row. On KITTI the table says which ground truth was read: the paper's row is on Eigen's 697
test images against projected raw LiDAR (a raw KITTI split file, or the gt_depths.npz the common
evaluation scripts export, with --gt-depths); the annotated depth maps of the BTS split files give figures
that are not comparable with it.

--protocol reference is the authors' evaluate.py step by step: predictions clipped to [0.1, 10] m, the
2x up-sampling, flip averaging in metres, the Eigen crop, pooled metrics, and an extra row with abs rel
in the authors' argument order (their compute_errors(pred, gt) divides by the prediction), with the
published re-runs of their script on nyu.h5 under it (delta1 0.847, abs rel 0.127, rms 0.549, pooled).

The depth range, dataset and training size come from the model's saved contract (printed in one line);
--depth-range overrides it, with a warning where the two disagree.

    python evaluate.py --model nyu.h5 --data nyu_test.zip          # the authors' model on the Eigen split
    python evaluate.py --model nyu.h5 --data nyu_test.zip --protocol reference   # their script's figures
    python evaluate.py --data synthetic --quality --json eval.json --per-image eval.csv --save-samples samples
    python evaluate.py --model kitti.h5 --data kitti_raw/eigen_test_files.txt      # the paper's KITTI ground truth
    python evaluate.py --model kitti.h5 --data kitti_raw/eigen_test_files.txt --gt-depths gt_depths.npz
    python evaluate.py --model runs/kitti/final.keras --data kitti/eigen_test_files_with_gt.txt --crop eigen

--data takes nyu_test.zip (the Eigen arrays), an NYU-format zip or folder (its data/nyu2_test.csv pairs,
e.g. nyu_data.zip), a KITTI split file, `synthetic`, or a benchmark as NAME:PATH; given several times, each
dataset is evaluated with its own protocol (crop, cap, camera) and one table puts them side by side with
their mean, as zero-shot comparisons do (--align median, scale-shift, scale-shift-disparity for models
without metric scale; published rows appear only beside figures made the same way). With no --model:
nyu.h5 here if present, else the newest model under runs/, else the built-in model.

    python evaluate.py --model nyu.h5 --data ibims1:ibims1 --data diode-indoors:diode/val --data sunrgbd:SUNRGBD
    python evaluate.py --model nyu.h5 --data ibims1:ibims1 --align median --camera-scale both
"""
import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data import DEFAULT_EVAL_DATA, open_dataset
from datasets import AUTHORS_SCRIPT_RERUN, NYU_SPEC, PAPER, SPECS, DatasetSpec, trained_elsewhere
from depth import NYU_IMAGE_HW, NYU_REFERENCE, DepthRange
from estimator import DepthEstimator
from metrics import ALIGNMENTS, METRIC_NAMES, aligned, clip_tae, evaluation_mask, image_record, summary
from outputs import save_sample_montages
from settings import add_model_flags, check_model_flags
from utils import InputError, batches, check_writable, image_size, quiet_tensorflow, write_json
from video import TEMPORAL_MODES

PROTOCOLS = ("paper", "reference")
CROPS = ("none", *sorted({crop for spec in SPECS.values() for crop in spec.crops}))
# --camera-scale: "spec" rescales only where the dataset's protocol does (the synthetic rooms and your own
# folders, whose pairs list their focal lengths); the paper's benchmarks and the zero-shot ones score the
# model as it is unless asked; "both" gives each dataset's row with and without the correction.
CAMERA_SCALING = ("spec", "on", "off", "both")
# The published metrics' usual names in the combined table's JSON.
USUAL_NAMES = {"a1": "delta1", "a2": "delta2", "a3": "delta3"}


# ---------------------------------------------------------------------------------------------------------
# Prediction and the evaluation loop
# ---------------------------------------------------------------------------------------------------------


def pair_sizes(named_pair):
    """The picture's and the depth's shapes of a (name, datasets.Pair): a batch holds one of each."""
    _, pair = named_pair
    return pair.rgb.shape, pair.depth.shape


@dataclass(frozen=True)
class EvalSettings:
    """How a set of images is evaluated. spec: the data's (which crops apply, which pixels count); crop: one
    of its crops (None: its protocol's). flip: the paper's mirror average. input_hw: the network's input
    size, if not each image's own. protocol "reference" adds abs rel in the authors' order. camera_scale:
    scale each prediction by its picture's camera over the model's training camera. align: metrics.aligned's
    mode. quality: the paper's quality measures too. keep: how many best and worst images to keep.
    temporal: on clips, "flow" steadies each prediction (video.DepthStabiliser), "none" keeps it per frame."""

    spec: DatasetSpec = NYU_SPEC
    crop: str | None = None
    flip: bool = True
    batch_size: int = 4
    quality: bool = False
    keep: int = 0
    input_hw: tuple | None = None
    protocol: str = "paper"
    camera_scale: bool = True
    align: str = "none"
    temporal: str = "flow"


def evaluate(estimator, pairs, settings=EvalSettings(), total=None, predictions=None, skipped=None):
    """(records, kept): one record per image with its name, evaluated pixels, metrics (and quality).

    pairs: an iterable of (name, datasets.Pair); predictions are made at the ground truth's size by
    estimator (a DepthEstimator, whose depth range reads and clips them), scaled by each picture's camera
    over the model's training camera unless settings.camera_scale is False (each record's "camera_scale"
    says by how much), then aligned to the ground truth as settings.align says. kept: the settings.keep
    best and worst images by abs rel, as (abs_rel, index, rgb, gt, pred, evaluated mask), best first.
    total: the number of pairs, for the progress bar. predictions: a list that receives every prediction.
    skipped: a list that receives the names of images without valid ground truth inside the crop, which
    are then left out with a warning (without it, such an image stops the evaluation).
    """
    spec, crop, batch_size, keep = settings.spec, settings.crop, settings.batch_size, settings.keep
    cap = spec.eval_cap_m or estimator.depth_range.max_m
    records, kept = [], []
    with tqdm(total=total, desc="evaluating", unit="image") as bar:
        for batch in batches(pairs, batch_size, key=pair_sizes):
            preds, scales = predicted_batch(estimator, [pair for _, pair in batch], settings)
            for (name, pair), pred, scale in zip(batch, preds, scales):
                mask = evaluation_mask(pair.depth, spec, crop, pair.valid)
                if skipped is not None and not mask.any():
                    tqdm.write(f"skipped {name}: no valid ground truth inside the evaluation crop", file=sys.stderr)
                    skipped.append(name)
                    continue
                pred, record = scored(name, pair, pred, mask, scale, settings, cap)
                records.append(record)
                if predictions is not None:
                    predictions.append(pred)
                if keep:
                    item = (record["abs_rel"], len(records) - 1, pair.rgb, pair.depth, pred, mask)
                    kept = with_extremes(kept, item, keep)
            bar.update(len(batch))
    return records, kept


def predicted_batch(estimator, pairs, settings):
    """(predictions at the ground truth's size, depth scales) of datasets.Pairs of one size, each scaled by
    its picture's camera unless settings.camera_scale is False."""
    cameras = [pair.camera for pair in pairs] if settings.camera_scale else None
    preds = estimator.predict(np.stack([pair.rgb for pair in pairs]), settings.flip, max_side=0,
                              input_hw=settings.input_hw, output_hw=pairs[0].depth.shape,
                              batch_size=settings.batch_size, camera=cameras)
    return preds, estimator.depth_scales(cameras, len(pairs))


def scored(name, pair, pred, mask, scale, settings, cap):
    """(the prediction as scored: aligned as settings.align says, its record: metrics, quality if asked,
    camera scale)."""
    spec = settings.spec
    pred = aligned(pair.depth, pred, mask, settings.align, cap)
    box = spec.crop_box(*pair.depth.shape, settings.crop) if settings.quality else None
    record = image_record(name, pair.depth, pred, mask, box, spec.depth_range, settings.protocol, pair.camera)
    return pred, {**record, "camera_scale": float(scale)}


def evaluate_clips(estimator, dataset, settings=EvalSettings(), limit=None):
    """(records, tae) over a reader of clips with poses (sequences.py), each clip in time order.

    Each frame is predicted as evaluate() predicts an image, steadied as settings.temporal says, and scored
    as an image; tae: the temporal alignment error of each clip (metrics.clip_tae, as Video Depth
    Anything's eval_tae.py computes it), the mean over clips. limit: at most this many frames of each clip.
    A clip's predictions are kept until its TAE is taken: evaluate long sequences a part at a time.
    """
    from video import DepthStabiliser

    spec, crop = settings.spec, settings.crop
    cap = spec.eval_cap_m or estimator.depth_range.max_m
    clips = {name: samples[:limit] for name, samples in dataset.sequences().items()}
    records, taes = [], []
    with tqdm(total=sum(map(len, clips.values())), desc="evaluating", unit="frame") as bar:
        for name, samples in clips.items():
            steady = None
            stretch = []  # (prediction, ground truth, mask, pose, camera) since the last unknown pose
            for group in batches(iter(samples), settings.batch_size):
                pairs = [dataset.read(sample) for sample in group]
                preds, scales = predicted_batch(estimator, pairs, settings)
                for sample, pair, pred, scale in zip(group, pairs, preds, scales):
                    if settings.temporal == "flow":
                        steady = steady or DepthStabiliser(camera=pair.camera or spec.camera or estimator.camera)
                        pred = steady(pair.rgb, pred)
                    mask = evaluation_mask(pair.depth, spec, crop, pair.valid)
                    if mask.any():
                        records.append({**scored(sample.name, pair, pred, mask, scale, settings, cap)[1], "clip": name})
                    try:
                        stretch.append((pred, pair.depth, mask, dataset.pose(sample), pair.camera))
                    except InputError:  # tracking lost (ScanNet's -inf poses): TAE resumes after it
                        taes += stretch_tae(stretch, cap)
                        stretch = []
                bar.update(len(group))
            taes += stretch_tae(stretch, cap)
    return records, float(np.mean(taes)) if taes else None


def stretch_tae(stretch, cap):
    """[TAE] of frames with known poses in a row (none for fewer than two)."""
    if len(stretch) < 2:
        return []
    depths, truth, masks, poses, cameras = zip(*stretch)
    return [clip_tae(depths, truth, masks, poses, cameras[0].pixels(*truth[0].shape), cap)]


def with_extremes(kept, item, keep):
    """kept plus item, trimmed to the `keep` lowest and `keep` highest by their first field."""
    kept = sorted(kept + [item], key=lambda entry: entry[0])
    if len(kept) > 2 * keep:
        del kept[keep]  # 2 keep + 1 entries: the middle one is neither among the best nor the worst
    return kept


# ---------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------


def results_table(results, spec=NYU_SPEC, ground_truth=None):
    """The metrics as a text table, each published row under the row of ours computed the same way: the
    paper's (and any other published row made with the same alignment) under the per-image means, the
    re-run of the authors' script under pooled, reference order."""
    names, align = spec.reported, results.get("align", "none")
    width = 38
    rows = [f"{'':<{width}}" + "".join(f"{k:>9}" for k in names)]
    labelled = [("pooled", results["pooled"])]
    if "pooled_reference_order" in results:
        reference = {**results["pooled"], "abs_rel": results["pooled_reference_order"]["abs_rel"]}
        labelled.append(("pooled, reference order", reference))
        if spec.reference_protocol:
            labelled.append(("  published re-runs of their script", AUTHORS_SCRIPT_RERUN.metrics))
    labelled.append(("per image", results["per_image"]))
    labelled += [(f"  {published_label(row, spec)}", row.metrics) for row in spec.published_rows(align)]
    for label, values in labelled:
        rows.append(f"{label:<{width}}" + "".join(f"{values[k]:>9.3f}" if values.get(k) is not None else f"{'-':>9}"
                                                  for k in names))
    if "pooled_reference_order" in results:
        rows.append("reference order: abs rel as the authors' script computes it, |gt - pred| / pred (their "
                    "compute_errors(pred, gt)); the other rows divide by ground truth, as the paper defines it")
    if align != "none":
        hidden = len(spec.published) - len(spec.published_rows(align))
        rows.append(f"aligned per image: {align}" + (f" ({hidden} published rows made without it not shown)"
                                                     if hidden else ""))
    if not ground_truth_comparable(spec, ground_truth):
        rows.append(f"ground truth: {ground_truth}: NOT comparable with the paper's row, which is on Eigen's 697 "
                    "test images against projected raw LiDAR (use a raw KITTI split file or gt_depths.npz)")
    elif ground_truth:
        rows.append(f"ground truth: {ground_truth}")
    if results.get("camera"):
        rows.append(camera_line(results["camera"]))
    if results["quality"]:
        q = results["quality"]
        rows.append(f"quality: mSSIM {q['mssim']:.3f}, edge F1 {q['edge_f1']:.3f}, "
                    f"normal cosine distance {q['normal_distance']:.4f}")
    return "\n".join(rows)


def published_label(row, spec):
    """How the table names a published row: the paper's as "paper (NYU, per image)"."""
    who = "paper" if row.model == PAPER else row.model
    return f"{who} ({spec.name.upper()}, {row.computed})" if who == "paper" else f"{who} ({row.computed})"


def ground_truth_comparable(spec, ground_truth):
    """Whether the published rows were computed on the ground truth this reader reads."""
    return not spec.comparable_ground_truth or ground_truth in spec.comparable_ground_truth


def combined_table(rows, align):
    """One line per dataset (per-image means of its reported metrics, the common columns) and their mean, with
    the published rows made the same way under each: the zero-shot table of the field."""
    names = ("a1", "abs_rel", "rmse", "log10")
    width = 44
    lines = [f"{'':<{width}}{'images':>8}" + "".join(f"{USUAL_NAMES.get(k, k):>9}" for k in names)]
    for label, spec, result in rows:
        values = result["per_image"]
        lines.append(f"{label:<{width}}{result['images']:>8}" + "".join(f"{values[k]:>9.3f}" for k in names))
        for row in spec.published_rows(align):
            lines.append(f"{'  ' + published_label(row, spec):<{width}}{'':>8}"
                         + "".join(f"{row.metrics[k]:>9.3f}" if k in row.metrics else f"{'-':>9}" for k in names))
    for scaled in sorted({result["camera"]["applied"] for _, _, result in rows}):
        mean = mean_row([result for _, _, result in rows if result["camera"]["applied"] == scaled])
        label = "mean (camera-scaled)" if scaled else "mean"
        lines.append(f"{label:<{width}}{'':>8}" + "".join(f"{mean[k]:>9.3f}" for k in names))
    lines.append(f"alignment: {align}; per-image means; published rows only where made with the same alignment")
    return "\n".join(lines)


def mean_row(results):
    """Each metric's mean over the datasets' per-image means (every dataset weighs the same)."""
    return {k: float(np.mean([r["per_image"][k] for r in results])) for k in METRIC_NAMES}


def camera_summary(records, model_camera, data_camera, applied):
    """What the JSON and the table say about cameras: the two cameras and the scales applied to depth."""
    scales = [r["camera_scale"] for r in records]
    return {"applied": applied, "rescaled": applied and any(s != 1 for s in scales),
            "scale_min": min(scales), "scale_max": max(scales), "model_camera": model_camera.to_dict(),
            "data_camera": data_camera.to_dict()}


def camera_line(camera):
    """The table's line on cameras."""
    model, data = camera["model_camera"]["source"], camera["data_camera"]["source"]
    if not camera["applied"]:
        return (f"camera: not rescaled (--camera-scale on rescales): the data's camera ({data}) taken as the model's "
                f"({model})")
    if not camera["rescaled"]:
        return f"camera: not rescaled: the data's camera is the model's ({model})"
    spread = (f"x {camera['scale_min']:.3f}" if camera["scale_min"] == camera["scale_max"]
              else f"x {camera['scale_min']:.3f}-{camera['scale_max']:.3f}")
    return f"camera: depth rescaled {spread}, the data's focal length ({data}) over the model's ({model})"


def write_per_image_csv(records, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append",
                        help=f"test data: the Eigen arrays zip (default {DEFAULT_EVAL_DATA}), an NYU-format zip "
                             "or folder (nyu_data.zip: its test CSV), a KITTI split .txt, 'synthetic', or a "
                             "benchmark as NAME:PATH (ibims1, diode, diode-indoors, diode-outdoor, eth3d, sunrgbd, "
                             "scannet, sintel, sintel-clean, tum); give it several times for one table over all")
    parser.add_argument("--align", default="none", choices=ALIGNMENTS,
                        help="align each prediction to its ground truth before scoring, as zero-shot tables do: "
                             "none (default: metric depth as it is), median (median scaling), scale-shift "
                             "(least squares in depth), scale-shift-disparity (least squares in inverse depth)")
    parser.add_argument("--gt-depths", metavar="NPZ",
                        help="with a raw KITTI split file (eigen_test_files.txt): read each frame's ground truth from "
                             "this gt_depths.npz (the export of the common KITTI evaluation scripts, in the split "
                             "file's order) instead of projecting its velodyne scan")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out samples whose files are missing or unreadable (each named, their count "
                             "reported) instead of stopping at the first")
    parser.add_argument("--temporal", default="flow", choices=TEMPORAL_MODES,
                        help="on clips (synthetic-video, scannet, sintel, tum): flow (default) steadies each frame's "
                             "depth with the previous ones moved by the camera's motion, as test.py does for videos; "
                             "none: per-frame prediction. Either way the temporal alignment error (TAE) is reported")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"),
                        help="which split of --data to evaluate (default test)")
    parser.add_argument("--protocol", default="paper", choices=PROTOCOLS,
                        help="paper (default): the paper's protocol, predictions clipped to the dataset's range "
                             "(NYU 0.4-10 m); reference: the authors' evaluate.py step by step (NYU only: clip "
                             "to 0.1-10 m, flip, Eigen crop) with an extra row of abs rel in their argument order")
    parser.add_argument("--bs", type=int, default=4, help="images per forward pass (default 4)")
    parser.add_argument("--camera-scale", default="spec", choices=CAMERA_SCALING,
                        help="scale each image's depth by its camera's focal length (from the dataset's files) over "
                             "the model's training camera's: spec (default) where the dataset's protocol does (the "
                             "synthetic rooms, your own folders), not on the paper's or the zero-shot benchmarks; "
                             "on; off; both: each dataset with and without it, to read the correction's effect")
    parser.add_argument("--no-camera-scale", dest="camera_scale", action="store_const", const="off",
                        help="the same as --camera-scale off: depth as the network gives it")
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="turn off the mirrored test-time augmentation (on by default, as in the paper)")
    parser.add_argument("--crop", choices=CROPS, help="evaluation crop (default: eigen for NYU-style data, "
                                                      "garg for KITTI; 'none' evaluates the whole image)")
    parser.add_argument("--input-size", metavar="HxW", type=image_size,
                        help="resize the images to HxW for the network, e.g. 96x128 for a model trained at that "
                             "size; the prediction is still upsampled to the ground truth (default: the reduced "
                             "size a model was trained at, from its contract; else each image's own size, the "
                             "paper's protocol)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images (a quick look, not a result)")
    parser.add_argument("--quality", action="store_true",
                        help="also the paper's quality measures: mSSIM, edge F1, normal cosine distance")
    parser.add_argument("--json", metavar="FILE", help="write the results and the settings used to this JSON file")
    parser.add_argument("--per-image", metavar="CSV", help="write each image's metrics to this CSV file")
    parser.add_argument("--save-samples", metavar="DIR",
                        help="write image | ground truth | prediction | error montages of the worst and best images")
    parser.add_argument("--samples", type=int, default=3,
                        help="how many worst and how many best images --save-samples shows (default 3)")
    parser.add_argument("--save-predictions", metavar="NPZ",
                        help="write every prediction (metres, at ground-truth resolution) to this .npz file")
    add_model_flags(parser, max_side=False)
    args = parser.parse_args(argv)
    check_model_flags(parser, args)
    several = [flag for flag, given in (("--gt-depths", args.gt_depths), ("--per-image", args.per_image),
                                        ("--save-samples", args.save_samples),
                                        ("--save-predictions", args.save_predictions)) if given]
    if (len(args.data or ()) > 1 or args.camera_scale == "both") and several:
        parser.error(f"{', '.join(several)} take one --data and one camera scaling; run them one dataset at a time")
    if args.bs < 1:
        parser.error(f"--bs must be at least 1, got {args.bs}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.protocol == "reference":
        contradicting = [flag for flag, given in (("--no-flip", not args.flip), ("--input-size", args.input_size),
                                                  ("--crop", args.crop not in (None, "eigen")),
                                                  ("--align", args.align != "none")) if given]
        if contradicting:
            parser.error(f"--protocol reference fixes flip on, the Eigen crop and each image's own size: drop "
                         f"{', '.join(contradicting)}")
    return args


def protocol_settings(estimator, dataset, args):
    """(the estimator read with the protocol's clip, the network's input size or None, warnings).

    The model's max depth reads its output (y = max_m / depth); the protocol sets the clip floor: the
    dataset's minimum (the paper) or 0.1 m (the authors' script).
    """
    contract, spec, warnings = estimator.contract, dataset.spec, []
    if trained_elsewhere(contract.dataset, spec):
        warnings.append(f"{estimator.path} was trained on {contract.dataset} data and is evaluated on "
                        f"{spec.name} data")
    floor = NYU_REFERENCE.min_m if args.protocol == "reference" else spec.depth_range.min_m
    estimator = estimator.with_depth_range(DepthRange(min_m=floor, max_m=estimator.depth_range.max_m))
    fixed = estimator.input_hw
    if fixed and args.input_size and tuple(args.input_size) != fixed:
        raise InputError(f"{estimator.path}: takes {fixed[0]}x{fixed[1]} pictures only; drop --input-size "
                         f"{args.input_size[0]}x{args.input_size[1]} or export it again at that size")
    if args.protocol == "reference" and fixed and fixed != NYU_IMAGE_HW:
        raise InputError(f"{estimator.path}: --protocol reference runs the network at 480x640 and this model "
                         f"takes {fixed[0]}x{fixed[1]}")
    input_hw = fixed or args.input_size
    if input_hw is None and args.protocol == "paper" and contract.reduced_input:
        input_hw = contract.input_hw
    return estimator, input_hw, warnings


def checked_inputs(args, data):
    """(dataset, samples, crop) once the data and its crop are known to work."""
    dataset = open_dataset(data, skip_bad=args.skip_bad, gt_depths=args.gt_depths)
    spec = dataset.spec
    if args.protocol == "reference" and not spec.reference_protocol:
        raise InputError(f"{dataset.name}: --protocol reference is the authors' NYU evaluation; "
                         f"{spec.name} data takes the paper's protocol")
    crop = args.crop or spec.default_crop
    spec.crop_box(*NYU_IMAGE_HW, crop)  # an impossible crop fails before the model loads
    if args.quality and spec.sparse:
        raise InputError(f"{dataset.name}: --quality needs dense ground truth, and this dataset is sparse")
    return dataset, dataset.samples(args.split)[:args.limit], crop


def check_outputs(args):
    """Every output place known to work, before the work, not after it."""
    for path in (args.json, args.per_image, args.save_predictions):
        if path:
            check_writable(path)
    if args.save_samples:
        check_writable(args.save_samples, folder=True)


def scalings(choice, spec):
    """The camera scalings to evaluate a dataset with (True: rescaled), from --camera-scale."""
    return {"spec": (spec.camera_scale,), "on": (True,), "off": (False,), "both": (False, True)}[choice]


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()
    try:
        inputs = [checked_inputs(args, data) for data in args.data or [DEFAULT_EVAL_DATA]]
        check_outputs(args)
        first = inputs[0][0]
        estimator = DepthEstimator.load(args.model, args.depth_range, args.precision, args.threads,
                                        fallback_range=first.spec.depth_range, fallback_name="the dataset",
                                        fallback_camera=first.camera)
        print(estimator.describe())
        for warning in estimator.warnings:
            print(f"warning: {warning}")
        outcomes = [evaluate_dataset(estimator, dataset, samples, crop, camera_scale, args)
                    for dataset, samples, crop in inputs for camera_scale in scalings(args.camera_scale, dataset.spec)]
    except InputError as err:
        sys.exit(f"error: {err}")
    if len(outcomes) == 1:
        result, records, kept, predictions = outcomes[0]
        write_outputs(args, result, records, kept, predictions)
        return result
    rows = [(f"{result['kind']}" + (" (camera-scaled)" if result["camera"]["applied"] else ""), SPECS[result["kind"]],
             result) for result, *_ in outcomes]
    print()
    print(combined_table(rows, args.align))
    results = [result for result, *_ in outcomes]
    combined = {"model": results[0]["model"], "align": args.align, "datasets": results,
                "mean": mean_row([r for r in results if r["camera"]["applied"] == results[0]["camera"]["applied"]])}
    combined["mean_usual_names"] = {USUAL_NAMES.get(k, k): v for k, v in combined["mean"].items()}
    write_outputs(args, combined, [], [], None)
    return combined


def evaluate_dataset(estimator, dataset, samples, crop, camera_scale, args):
    """(result, records, kept, predictions) of one dataset, its header and table printed."""
    estimator, input_hw, warnings = protocol_settings(estimator, dataset, args)
    for warning in warnings:
        print(f"warning: {warning}")
    spec = dataset.spec
    bad = list(dataset.skipped)
    pairs = readable_pairs(dataset, samples, bad if args.skip_bad else None)
    predictions = [] if args.save_predictions else None
    skipped = []
    settings = EvalSettings(spec, crop, args.flip, args.bs, args.quality, args.samples if args.save_samples else 0,
                            input_hw, args.protocol, camera_scale, args.align, args.temporal)
    tae = None
    if is_clips(dataset):
        records, tae = evaluate_clips(estimator, dataset, settings, args.limit)
        kept = []
    else:
        records, kept = evaluate(estimator, pairs, settings, len(samples), predictions, skipped)
    if not records:
        raise InputError(f"{dataset.name}: none of the {len(samples)} images has valid ground truth inside "
                         f"the {crop} crop: nothing to evaluate")
    if skipped:
        print(f"skipped {len(skipped)} of {len(samples)} images without valid ground truth inside the {crop} crop "
              f"(first: {skipped[0]}); the figures are over the other {len(records)}")
    if bad:
        print(f"skipped {len(bad)} bad samples of {dataset.name} (--skip-bad; first: {bad[0]})")
    results = {**summary(records, args.quality, args.protocol), "align": args.align}
    if tae is not None:
        results.update(tae=tae, temporal=args.temporal)
    results["camera"] = camera_summary(records, estimator.camera, dataset.camera, camera_scale)
    size = f", network input {input_hw[0]}x{input_hw[1]}" if input_hw else ""
    aligned_by = f", aligned: {args.align}" if args.align != "none" else ""
    print(f"{estimator.path} on {dataset.name} ({args.split}, {len(records)} images, {args.protocol} protocol, {crop} "
          f"crop, flip {'on' if args.flip else 'off'}, predictions clipped to {estimator.depth_range.min_m:g}-"
          f"{estimator.depth_range.max_m:g} m{aligned_by}, {args.precision}{size})")
    print(results_table(results, spec, dataset.ground_truth))
    if tae is not None:
        print(f"temporal alignment error (TAE x 100, each clip aligned in disparity as eval_tae.py does): {tae:.3f} "
              f"over {len(dataset.sequences())} clips, temporal {args.temporal}")
    settings = {"model": str(estimator.path), "contract": estimator.contract.to_dict(), "data": dataset.name,
                "kind": spec.name, "split": args.split, "images": len(records),
                "pixels": int(sum(r["pixels"] for r in records)), "crop": crop, "flip": args.flip,
                "input_size": input_hw, "precision": args.precision, "batch_size": args.bs, "limit": args.limit,
                "prediction_clip_m": [estimator.depth_range.min_m, estimator.depth_range.max_m],
                "depth_range_m": [spec.depth_range.min_m, spec.depth_range.max_m],
                "eval_min_depth_m": spec.depth_range.eval_min_m, "eval_cap_m": spec.eval_cap_m,
                "skipped_images": len(skipped), "bad_samples": len(bad)}
    return {**settings, **results, **published_results(spec, dataset.ground_truth, args)}, records, kept, predictions


def readable_pairs(dataset, samples, bad=None):
    """(name, Pair) of each sample; with a list `bad`, an unreadable one is named there and left out."""
    for sample in samples:
        try:
            yield sample.name, dataset.read(sample)
        except InputError as err:
            if bad is None:
                raise
            tqdm.write(f"skipped: {err}", file=sys.stderr)
            bad.append(str(err))


def is_clips(dataset):
    """Whether a reader holds clips with camera poses, whose frames are evaluated in time order with TAE."""
    from sequences import SequenceReader

    return isinstance(dataset, SequenceReader)


def published_results(spec, ground_truth, args):
    """The published rows the JSON keeps apart from ours: the paper's under "paper", every row made with
    this alignment under "published", with their sources."""
    rows = spec.published_rows(args.align)
    published = {"published": [{"model": row.model, "metrics": row.metrics, "source": row.source,
                                "align": row.align, "computed": row.computed} for row in rows],
                 "ground_truth": ground_truth, "comparable_with_paper": ground_truth_comparable(spec, ground_truth)}
    paper = [row for row in rows if row.model == PAPER]
    if paper:
        published.update(paper=paper[0].metrics, paper_computed=paper[0].computed)
    if args.protocol == "reference" and spec.reference_protocol:
        published["authors_script_rerun"] = AUTHORS_SCRIPT_RERUN.metrics
    return published


def write_outputs(args, results, records, kept, predictions):
    """The files asked for: --json, --per-image, --save-samples, --save-predictions (one line if one fails)."""
    try:
        if args.json:
            write_json(args.json, results)
            print(f"wrote {args.json}")
        if args.per_image:
            write_per_image_csv(records, args.per_image)
            print(f"wrote {args.per_image}")
        if args.save_samples:
            paths = save_sample_montages(kept, records, args.save_samples, args.samples)
            print(f"wrote {len(paths)} montages to {args.save_samples}")
        if args.save_predictions:
            np.savez_compressed(args.save_predictions, **{f"{i:05d}": p for i, p in enumerate(predictions)},
                                names=np.array([r["name"] for r in records]))
            print(f"wrote {args.save_predictions}")
    except OSError as err:  # the place filled up or went away during the evaluation
        sys.exit(f"error: {err.filename or 'output'}: cannot write ({err.strerror or err}); the results are "
                 "printed above")


if __name__ == "__main__":
    main()
