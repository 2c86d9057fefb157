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
e.g. nyu_data.zip), a KITTI split file, or `synthetic`. With no --model: nyu.h5 here if present, else the
newest model under runs/.
"""
import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data import DEFAULT_EVAL_DATA, camera_of, open_dataset
from depth import NYU, NYU_IMAGE_HW, NYU_REFERENCE, DepthRange
from estimator import DepthEstimator
from kitti import KITTI_GT_NPZ, KITTI_RAW
from metrics import (
    AUTHORS_SCRIPT_RERUN,
    CROPS,
    DEFAULT_CROP,
    PAPER_RESULTS,
    PAPER_RESULTS_COMPUTED,
    REPORTED_METRICS,
    crop_box,
    evaluation_mask,
    image_record,
    summary,
)
from outputs import save_sample_montages
from settings import add_model_flags, check_model_flags
from utils import InputError, check_writable, image_size, quiet_tensorflow, write_json

PROTOCOLS = ("paper", "reference")
# The KITTI ground truths the paper's row can be compared with (data.py names each dataset's).
COMPARABLE_KITTI_GROUND_TRUTH = (KITTI_RAW, KITTI_GT_NPZ)


# ---------------------------------------------------------------------------------------------------------
# Prediction and the evaluation loop
# ---------------------------------------------------------------------------------------------------------


def same_size_batches(pairs, batch_size):
    """Lists of up to batch_size consecutive (name, rgb, gt) triples whose images and depths share sizes."""
    batch = []
    for pair in pairs:
        sizes = (pair[1].shape, pair[2].shape)
        if batch and (len(batch) == batch_size or sizes != (batch[0][1].shape, batch[0][2].shape)):
            yield batch
            batch = []
        batch.append(pair)
    if batch:
        yield batch  # the last, possibly short, batch: every image is evaluated


@dataclass(frozen=True)
class EvalSettings:
    """How a set of images is evaluated. kind and depth_range: the data's (which crops apply, which pixels
    count). flip: the paper's mirror average. input_hw: the network's input size, if not each image's own.
    protocol "reference" adds abs rel in the authors' order. camera_scale: scale each prediction by its
    picture's camera over the model's training camera. quality: the paper's quality measures too. keep: how
    many best and worst images to keep for montages."""

    kind: str = "nyu"
    depth_range: DepthRange = NYU
    crop: str = "eigen"
    flip: bool = True
    batch_size: int = 4
    quality: bool = False
    keep: int = 0
    input_hw: tuple | None = None
    protocol: str = "paper"
    camera_scale: bool = True


def evaluate(estimator, pairs, settings=EvalSettings(), total=None, predictions=None, skipped=None):
    """(records, kept): one record per image with its name, evaluated pixels, metrics (and quality).

    pairs: an iterable of (name, rgb uint8 (H, W, 3), ground-truth depth in metres (H', W')[, camera]);
    predictions are made at the ground truth's size by estimator (a DepthEstimator, whose depth range reads
    and clips them), scaled by each picture's camera.Camera over the model's training camera unless
    settings.camera_scale is False (each record's "camera_scale" says by how much). kept: the settings.keep
    best and worst images by abs rel, as (abs_rel, index, rgb, gt, pred, evaluated mask), best first.
    total: the number of pairs, for the progress bar. predictions: a list that receives every prediction.
    skipped: a list that receives the names of images without valid ground truth inside the crop, which
    are then left out with a warning (without it, such an image stops the evaluation).
    """
    kind, depth_range, crop, batch_size, keep = (settings.kind, settings.depth_range, settings.crop,
                                                 settings.batch_size, settings.keep)
    records, kept = [], []
    with tqdm(total=total, desc="evaluating", unit="image") as bar:
        for batch in same_size_batches(pairs, batch_size):
            names, rgbs, gts, cameras = zip(*(pair if len(pair) == 4 else (*pair, None) for pair in batch))
            scaled_by = list(cameras) if settings.camera_scale else None
            preds = estimator.predict(np.stack(rgbs), settings.flip, max_side=0, input_hw=settings.input_hw,
                                      output_hw=gts[0].shape, batch_size=batch_size, camera=scaled_by)
            scales = estimator.depth_scales(scaled_by, len(batch))
            for name, rgb, gt, pred, scale, camera in zip(names, rgbs, gts, preds, scales, cameras):
                mask = evaluation_mask(gt, kind, crop, depth_range)
                if skipped is not None and not mask.any():
                    tqdm.write(f"skipped {name}: no valid ground truth inside the evaluation crop", file=sys.stderr)
                    skipped.append(name)
                    continue
                box = crop_box(*gt.shape, kind, crop) if settings.quality else None
                records.append({**image_record(name, gt, pred, mask, box, depth_range, settings.protocol, camera),
                                "camera_scale": float(scale)})
                if predictions is not None:
                    predictions.append(pred)
                if keep:
                    item = (records[-1]["abs_rel"], len(records) - 1, rgb, gt, pred, mask)
                    kept = with_extremes(kept, item, keep)
            bar.update(len(batch))
    return records, kept


def with_extremes(kept, item, keep):
    """kept plus item, trimmed to the `keep` lowest and `keep` highest by their first field."""
    kept = sorted(kept + [item], key=lambda entry: entry[0])
    if len(kept) > 2 * keep:
        del kept[keep]  # 2 keep + 1 entries: the middle one is neither among the best nor the worst
    return kept


# ---------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------


def results_table(results, kind, ground_truth=None):
    """The metrics as a text table, each published row under the row of ours computed the same way:
    the paper's under the per-image means, the re-run of the authors' script under pooled, reference order."""
    names = REPORTED_METRICS[kind]
    width = 38
    rows = [f"{'':<{width}}" + "".join(f"{k:>9}" for k in names)]
    labelled = [("pooled", results["pooled"])]
    if "pooled_reference_order" in results:
        reference = {**results["pooled"], "abs_rel": results["pooled_reference_order"]["abs_rel"]}
        labelled.append(("pooled, reference order", reference))
        if kind in AUTHORS_SCRIPT_RERUN:
            labelled.append(("  published re-runs of their script", AUTHORS_SCRIPT_RERUN[kind]))
    labelled += [("per image", results["per_image"]),
                 (f"  paper ({kind.upper()}, {PAPER_RESULTS_COMPUTED})", PAPER_RESULTS[kind])]
    for label, values in labelled:
        rows.append(f"{label:<{width}}" + "".join(f"{values[k]:>9.3f}" if values.get(k) is not None else f"{'-':>9}"
                                                  for k in names))
    if "pooled_reference_order" in results:
        rows.append("reference order: abs rel as the authors' script computes it, |gt - pred| / pred (their "
                    "compute_errors(pred, gt)); the other rows divide by ground truth, as the paper defines it")
    if kind == "kitti" and ground_truth and ground_truth not in COMPARABLE_KITTI_GROUND_TRUTH:
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
        return f"camera: not rescaled (--no-camera-scale): the data's camera ({data}) taken as the model's ({model})"
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
    parser.add_argument("--data", default=DEFAULT_EVAL_DATA,
                        help=f"test data: the Eigen arrays zip (default {DEFAULT_EVAL_DATA}), an NYU-format zip "
                             "or folder (nyu_data.zip: its test CSV), a KITTI split .txt, or 'synthetic'")
    parser.add_argument("--gt-depths", metavar="NPZ",
                        help="with a raw KITTI split file (eigen_test_files.txt): read each frame's ground truth from "
                             "this gt_depths.npz (the export of the common KITTI evaluation scripts, in the split "
                             "file's order) instead of projecting its velodyne scan")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"),
                        help="which split of --data to evaluate (default test)")
    parser.add_argument("--protocol", default="paper", choices=PROTOCOLS,
                        help="paper (default): the paper's protocol, predictions clipped to the dataset's range "
                             "(NYU 0.4-10 m); reference: the authors' evaluate.py step by step (NYU only: clip "
                             "to 0.1-10 m, flip, Eigen crop) with an extra row of abs rel in their argument order")
    parser.add_argument("--bs", type=int, default=4, help="images per forward pass (default 4)")
    parser.add_argument("--no-camera-scale", action="store_true",
                        help="leave depth as the network gives it: by default each image's depth is scaled by its "
                             "camera's focal length (the dataset's: NYU's Kinect, KITTI's per-frame focal, the "
                             "synthetic rooms' own) over the model's training camera's, which is 1 for a model "
                             "evaluated on its own camera")
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
    if args.bs < 1:
        parser.error(f"--bs must be at least 1, got {args.bs}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.protocol == "reference":
        contradicting = [flag for flag, given in (("--no-flip", not args.flip), ("--input-size", args.input_size),
                                                  ("--crop", args.crop not in (None, "eigen"))) if given]
        if contradicting:
            parser.error(f"--protocol reference fixes flip on, the Eigen crop and each image's own size: drop "
                         f"{', '.join(contradicting)}")
    return args


def protocol_settings(estimator, dataset, args):
    """(the estimator read with the protocol's clip, the network's input size or None, warnings).

    The model's max depth reads its output (y = max_m / depth); the protocol sets the clip floor: the
    dataset's minimum (the paper) or 0.1 m (the authors' script).
    """
    contract, warnings = estimator.contract, []
    if contract.dataset not in (None, "synthetic", dataset.kind):
        warnings.append(f"{estimator.path} was trained on {contract.dataset} data and is evaluated on "
                        f"{dataset.kind} data")
    floor = NYU_REFERENCE.min_m if args.protocol == "reference" else dataset.depth_range.min_m
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


def checked_inputs(args):
    """(dataset, samples, crop) once the data, the crop and every output place are known to work."""
    dataset = open_dataset(args.data, gt_depths=args.gt_depths)
    if args.protocol == "reference" and dataset.kind != "nyu":
        raise InputError(f"{dataset.name}: --protocol reference is the authors' NYU evaluation; "
                         f"{dataset.kind} data takes the paper's protocol")
    crop = args.crop or DEFAULT_CROP[dataset.kind]
    crop_box(*NYU_IMAGE_HW, dataset.kind, crop)  # an impossible crop fails before the model loads
    if args.quality and dataset.sparse:
        raise InputError(f"{dataset.name}: --quality needs dense ground truth, and this dataset is sparse")
    for path in (args.json, args.per_image, args.save_predictions):  # before the work, not after it
        if path:
            check_writable(path)
    if args.save_samples:
        check_writable(args.save_samples, folder=True)
    return dataset, dataset.samples(args.split)[:args.limit], crop


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()
    try:
        dataset, samples, crop = checked_inputs(args)
        estimator = DepthEstimator.load(args.model, args.depth_range, args.precision, args.threads,
                                        fallback_range=dataset.depth_range, fallback_name="the dataset",
                                        fallback_camera=dataset.camera)
        estimator, input_hw, warnings = protocol_settings(estimator, dataset, args)
        print(estimator.describe())
        for warning in estimator.warnings + tuple(warnings):
            print(f"warning: {warning}")
        pairs = ((s.name, rgb, gt, camera_of(dataset, s, rgb.shape[1])) for s in samples
                 for rgb, gt in [dataset.read(s)])
        predictions = [] if args.save_predictions else None
        keep = args.samples if args.save_samples else 0
        skipped = []
        settings = EvalSettings(dataset.kind, dataset.depth_range, crop, args.flip, args.bs, args.quality, keep,
                                input_hw, args.protocol, not args.no_camera_scale)
        records, kept = evaluate(estimator, pairs, settings, len(samples), predictions, skipped)
        if not records:
            raise InputError(f"{dataset.name}: none of the {len(samples)} images has valid ground truth inside "
                             f"the {crop} crop: nothing to evaluate")
    except InputError as err:
        sys.exit(f"error: {err}")
    if skipped:
        print(f"skipped {len(skipped)} of {len(samples)} images without valid ground truth inside the {crop} crop "
              f"(first: {skipped[0]}); the figures are over the other {len(records)}")
    results = summary(records, args.quality, args.protocol)
    results["camera"] = camera_summary(records, estimator.camera, dataset.camera, not args.no_camera_scale)
    size = f", network input {input_hw[0]}x{input_hw[1]}" if input_hw else ""
    print(f"{estimator.path} on {dataset.name} ({args.split}, {len(records)} images, {args.protocol} protocol, {crop} "
          f"crop, flip {'on' if args.flip else 'off'}, predictions clipped to {estimator.depth_range.min_m:g}-"
          f"{estimator.depth_range.max_m:g} m, {args.precision}{size})")
    ground_truth = getattr(dataset, "ground_truth", None)
    print(results_table(results, dataset.kind, ground_truth))
    settings = {"model": str(estimator.path), "contract": estimator.contract.to_dict(), "data": dataset.name,
                "kind": dataset.kind,
                "split": args.split, "images": len(records), "pixels": int(sum(r["pixels"] for r in records)),
                "crop": crop, "flip": args.flip, "input_size": input_hw, "precision": args.precision,
                "batch_size": args.bs, "limit": args.limit,
                "prediction_clip_m": [estimator.depth_range.min_m, estimator.depth_range.max_m],
                "depth_range_m": [dataset.depth_range.min_m, dataset.depth_range.max_m],
                "eval_min_depth_m": dataset.depth_range.eval_min_m}
    settings["skipped_images"] = len(skipped)
    published = {"paper": PAPER_RESULTS[dataset.kind], "paper_computed": PAPER_RESULTS_COMPUTED,
                 "ground_truth": ground_truth,
                 "comparable_with_paper": dataset.kind != "kitti" or ground_truth in COMPARABLE_KITTI_GROUND_TRUTH}
    if args.protocol == "reference" and dataset.kind in AUTHORS_SCRIPT_RERUN:
        published["authors_script_rerun"] = AUTHORS_SCRIPT_RERUN[dataset.kind]
    write_outputs(args, {**settings, **results, **published}, records, kept, predictions)
    return results


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
