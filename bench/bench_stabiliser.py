"""Where a clip's flicker goes: TAE per synthetic clip with per-frame prediction, with the stabiliser, with
the stabiliser given the true camera motion instead of the one it estimates, and of the ground truth itself.

    python bench/bench_stabiliser.py [--clips 8] [--frames 24] [--model PATH]

Each clip's predictions are made and scored as `evaluate.py --data synthetic-video:N:F` makes and scores
them (the model's contract input size, the paper's flip; metrics.clip_tae). The last two columns are
bounds: what a perfect motion estimate could reach, and what the metric gives exact depth (the pixel grid's
rounding). r: how well the per-frame predictions' disparity follows the truth's over the clip (Pearson);
where it is low, eval_tae.py's alignment flattens the clip towards one depth, which no motion of the
camera can carry consistently: a floor no filter lowers. docs/video.md quotes its table.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import quiet_tensorflow
from video import DepthStabiliser


class TrueMotionStabiliser(DepthStabiliser):
    """The stabiliser fed the true motion between frames (from the poses) instead of its estimate."""

    def __init__(self, camera, poses):
        super().__init__(camera=camera)
        self.poses, self.frame = poses, 0

    def _motion_to_previous(self, grey, depth_m):
        self.frame += 1
        return np.linalg.inv(self.poses[self.frame - 1]) @ self.poses[self.frame]


def steady(frames, raw, stabiliser):
    return np.stack([stabiliser(frame.rgb, depth) for frame, depth in zip(frames, raw)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="synthetic clips (default 8)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--model", help="the model (default: the built-in one)")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    import evaluate
    from estimator import DepthEstimator
    from metrics import clip_tae
    from sequences import open_synthetic_video
    from synthetic import CLIP_PATHS

    reader = open_synthetic_video(f"synthetic-video:{args.clips}:{args.frames}")
    estimator = DepthEstimator.load(args.model)
    settings = evaluate.EvalSettings(reader.spec, input_hw=estimator.contract.input_hw, camera_scale=False)
    print(f"python bench/bench_stabiliser.py --clips {args.clips} --frames {args.frames}\n")
    print("| clip | path | r | TAE none | TAE stabiliser | TAE stabiliser, true motion | TAE of the truth |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    totals = []
    for number, (name, samples) in enumerate(reader.sequences().items()):
        frames = [reader.read(sample) for sample in samples]
        poses = [reader.pose(sample) for sample in samples]
        camera = frames[0].camera or reader.spec.camera
        k = camera.pixels(*frames[0].depth.shape)
        raw, _ = evaluate.predicted_batch(estimator, frames, settings)
        truth = np.stack([f.depth for f in frames])
        outputs = (raw, steady(frames, raw, DepthStabiliser(camera=camera)),
                   steady(frames, raw, TrueMotionStabiliser(camera, poses)), truth)
        scores = [clip_tae(depths, truth, [f.valid for f in frames], poses, k, 10.0) for depths in outputs]
        totals.append(scores)
        path = CLIP_PATHS[number % len(CLIP_PATHS)]
        valid = np.stack([f.valid for f in frames]) & (truth > 0)
        r = np.corrcoef(1.0 / raw[valid], 1.0 / truth[valid])[0, 1]
        print(f"| {name} | {path} | {r:.2f} | " + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)
    print("| mean | | | " + " | ".join(f"**{s:.3f}**" for s in np.mean(totals, axis=0)) + " |")


if __name__ == "__main__":
    main()
