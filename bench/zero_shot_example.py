"""The zero-shot table on generated data: synthetic rooms written in iBims-1's and DIODE's own layouts, then
evaluate.py over both, with and without the camera correction (docs/datasets.md shows its output).

    python bench/zero_shot_example.py [--rooms 4] [--out zero_shot_data] [--align none]

Each benchmark's rooms are rendered through that benchmark's camera (its focal length over the width), so
the files' cameras are the truth and --camera-scale both shows what the correction does. The built-in
model (trained on the synthetic rooms through NYU's Kinect) is evaluated unless --model is given.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evaluate
from benchmarks import DIODE_CAMERA, IBIMS1_CAMERA, IBIMS1_DEPTH_FULL_SCALE_M
from camera import NYU_CAMERA
from synthetic import render_scene

HEIGHT, WIDTH = 240, 320


def focal_scale(camera):
    """The synthetic camera's focal scale that sees as `camera` does (focal length over the width)."""
    return camera.fx / NYU_CAMERA.fx


def write_ibims1(root, rooms):
    """iBims-1's PNG release: imagelist.txt, rgb/, depth/ (x 65535 / 50 m), mask_invalid/, mask_transp/."""
    names = [f"room_{i:02d}" for i in range(rooms)]
    for folder in ("rgb", "depth", "mask_invalid", "mask_transp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        rgb, depth = render_scene(1000 + i, HEIGHT, WIDTH, focal_scale(IBIMS1_CAMERA))
        Image.fromarray(rgb).save(root / "rgb" / f"{name}.png")
        raw = np.round(np.clip(depth, 0, IBIMS1_DEPTH_FULL_SCALE_M) * 65535 / IBIMS1_DEPTH_FULL_SCALE_M)
        Image.fromarray(raw.astype(np.uint16)).save(root / "depth" / f"{name}.png")
        valid = np.full(depth.shape, 255, np.uint8)
        Image.fromarray(valid).save(root / "mask_invalid" / f"{name}.png")
        Image.fromarray(valid).save(root / "mask_transp" / f"{name}.png")
    (root / "imagelist.txt").write_text("".join(f"{name}\n" for name in names))


def write_diode_indoors(root, rooms):
    """DIODE's val/indoors/scene_*/scan_*/ID.png with ID_depth.npy (metres, H x W x 1) and ID_depth_mask.npy."""
    for i in range(rooms):
        folder = root / "val" / "indoors" / f"scene_{i:05d}" / f"scan_{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{i:05d}_{i:05d}_indoors_000_010"
        rgb, depth = render_scene(2000 + i, HEIGHT, WIDTH, focal_scale(DIODE_CAMERA))
        Image.fromarray(rgb).save(f"{stem}.png")
        np.save(f"{stem}_depth.npy", depth.astype(np.float32)[..., None])
        np.save(f"{stem}_depth_mask.npy", (depth > 0).astype(np.float32))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=4, help="rooms per benchmark (default 4)")
    parser.add_argument("--out", default="zero_shot_data", help="where the two layouts are written")
    parser.add_argument("--align", default="none", help="evaluate.py --align (default none)")
    parser.add_argument("--model", help="the model to evaluate (default: evaluate.py's)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    write_ibims1(out / "ibims1", args.rooms)
    write_diode_indoors(out / "diode", args.rooms)
    command = ["--data", f"ibims1:{out / 'ibims1'}", "--data", f"diode-indoors:{out / 'diode'}",
               "--camera-scale", "both", "--align", args.align, *(["--model", args.model] if args.model else [])]
    print("python evaluate.py " + " ".join(command), flush=True)
    evaluate.main(command)


if __name__ == "__main__":
    main()
