"""Where a clip's flicker goes: TAE per synthetic clip with per-frame prediction, the stabiliser, and the
stabiliser given the exact correspondences instead of optical flow (what better flow could reach).

    python bench/bench_stabiliser.py [--clips 4] [--frames 24] [--model PATH]

Each clip's predictions (the model's contract input size, no flip) are scored as evaluate.py scores clips
(metrics.clip_tae). docs/video.md quotes its table.
"""
import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import quiet_tensorflow


def exact_correspondences(depth, pose, previous_pose, k):
    """(rows, cols): where each pixel of a frame was in the previous one, from the true depth and poses."""
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    x, y = (u + 0.5 - k["cx"]) / k["fx"] * depth, (v + 0.5 - k["cy"]) / k["fy"] * depth
    points = np.stack([x, y, depth, np.ones_like(depth)], -1) @ (np.linalg.inv(previous_pose) @ pose).T
    cols = points[..., 0] / points[..., 2] * k["fx"] + k["cx"] - 0.5
    rows = points[..., 1] / points[..., 2] * k["fy"] + k["cy"] - 0.5
    return rows.astype(np.float32), cols.astype(np.float32)


def steady(frames, raw, correspondences=None):
    """The stabiliser's depths, on optical flow or on the given correspondences per frame."""
    import video

    stabiliser = video.DepthStabiliser()
    out = []
    for t, (frame, depth) in enumerate(zip(frames, raw)):
        if correspondences is None or t == 0:
            out.append(stabiliser(frame.rgb, depth))
        else:
            with mock.patch.object(video, "_flow_to_previous", lambda *_, t=t: correspondences[t]):
                out.append(stabiliser(frame.rgb, depth))
    return np.stack(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="synthetic clips (default 4)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--model", help="the model (default: the built-in one)")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    from estimator import DepthEstimator
    from metrics import clip_tae
    from sequences import open_synthetic_video
    from synthetic import CLIP_PATHS

    reader = open_synthetic_video(f"synthetic-video:{args.clips}:{args.frames}")
    estimator = DepthEstimator.load(args.model)
    print(f"python bench/bench_stabiliser.py --clips {args.clips} --frames {args.frames}\n")
    print("| clip | path | TAE none | TAE flow | TAE exact correspondences |\n| --- | --- | --- | --- | --- |")
    for number, (name, samples) in enumerate(reader.sequences().items()):
        frames = [reader.read(sample) for sample in samples]
        poses = [reader.pose(sample) for sample in samples]
        k = frames[0].camera.pixels(*frames[0].depth.shape)
        raw = estimator.predict(np.stack([f.rgb for f in frames]), input_hw=estimator.contract.input_hw)
        exact = [None] + [exact_correspondences(frames[t].depth, poses[t], poses[t - 1], k)
                          for t in range(1, len(frames))]
        scores = [clip_tae(depths, [f.depth for f in frames], [f.valid for f in frames], poses, k, 10.0)
                  for depths in (raw, steady(frames, raw), steady(frames, raw, exact))]
        path = CLIP_PATHS[number % len(CLIP_PATHS)]
        print(f"| {name} | {path} | " + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
