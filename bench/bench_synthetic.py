"""Speed of the synthetic scene renderer, and a montage of its pictures to look at.

Renders --n scenes (seeds 0..n-1) at --height x --width, prints the seconds per RGB-depth pair and the
time 1000 pairs would take on one core, and with --save writes a montage of the first --show pairs, each
as RGB | colourised depth (plasma, near dark to far bright, scaled to each picture's own depth range).

    python bench/bench_synthetic.py                       # 50 pairs at 640x480
    python bench/bench_synthetic.py --n 20 --save /tmp/synthetic_montage.png
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repo root holds the modules

import numpy as np
from tqdm import tqdm

import synthetic
from depth import NYU_IMAGE_HW
from outputs import colorize


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="number of scenes to render (default 50)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first scene (default 0)")
    parser.add_argument("--height", type=int, default=NYU_IMAGE_HW[0], help="image height in pixels (default 480)")
    parser.add_argument("--width", type=int, default=NYU_IMAGE_HW[1], help="image width in pixels (default 640)")
    parser.add_argument("--save", metavar="PNG", help="write a montage of RGB | depth pairs to this PNG file")
    parser.add_argument("--show", type=int, default=8, help="number of pairs in the montage (default 8)")
    return parser.parse_args()


def main():
    args = parse_args()
    pairs, seconds = [], []
    for seed in tqdm(range(args.first_seed, args.first_seed + args.n), desc="render", unit="pair"):
        start = time.perf_counter()
        rgb, depth_m = synthetic.render_scene(seed, args.height, args.width)
        seconds.append(time.perf_counter() - start)
        if len(pairs) < args.show:
            pairs.append((rgb, depth_m))
    per_pair = float(np.mean(seconds))
    print(f"{args.width}x{args.height}: {per_pair:.3f} s per pair (median {np.median(seconds):.3f}, "
          f"max {np.max(seconds):.3f}); 1000 pairs would take {1000 * per_pair / 60:.1f} min on one core")
    if args.save:
        save_montage(pairs, args.save)
        print(f"wrote {args.save}")


def save_montage(pairs, path):
    """Writes the pairs as rows of RGB | depth, two pairs per row, to a PNG file."""
    from PIL import Image

    tiles = [np.concatenate([rgb, colorize(depth_m)], axis=1) for rgb, depth_m in pairs]
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + 2], axis=1) for i in range(0, len(tiles), 2)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


if __name__ == "__main__":
    main()
