"""Predict depth for your own pictures with a trained DenseDepth model, and write it in several forms.

    python test.py --input examples/*.png
    python test.py --input photos/ "more/*.jpg" --model runs/synthetic/final.keras --output out --npy --ply

--input takes files, globs and folders; pictures of any size and mode (grayscale, RGBA, 16-bit). Each one
goes through the network at its own size (scaled down first if its longer side exceeds --max-side, by
default the longer side of the size the model was trained at), and the half-resolution prediction is
upsampled back, so every output lines up pixel for pixel with its input. The model's saved contract says
its depth range (NYU 10 m, KITTI 80 m) and training size; its one-line summary is printed first.
For an input NAME.png, --output receives:

    NAME_depth_color.png  the depth through matplotlib's plasma colormap, near dark and far bright, scaled
                          to the picture's own nearest and farthest depth
    NAME_depth_mm.png     16-bit grayscale, depth in millimetres (65535 = 65.5 m and beyond)
    NAME_depth_m.npy      float32 depth in metres (with --npy)
    NAME.ply              a coloured point cloud in metres, camera frame x right, y down, z forward, from
                          the picture's camera (with --ply)
    montage.png           the inputs beside their depth maps, as in the paper's figures

A network answers depth for the camera it was trained with: each picture's camera (--fx / --fov /
--focal-35mm, else its EXIF focal length, else the model's training camera) scales its depth by its focal
length over the training camera's, both relative to the picture's width, and shapes the point cloud.

An unreadable file is reported by name and the others are still processed; the script then exits with an
error that lists the files it skipped. With no --model: nyu.h5 here if present, else the newest model
under runs/.
"""
import argparse
import glob
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from camera import NYU_CAMERA, picture_camera
from depth import NYU_IMAGE_HW, resize_depth
from estimator import DepthEstimator
from outputs import save_depth_montage, write_outputs
from settings import add_model_flags, check_model_flags
from utils import InputError, check_writable, load_image, quiet_tensorflow

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
MONTAGE_MAX_ROWS = 12
MONTAGE_SIDE = 480  # the montage's pictures are kept at most this large


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------


def expand_inputs(patterns):
    """(image paths in the order given, patterns that matched nothing): files, folders, globs."""
    paths, unmatched = [], []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
        if found:
            paths.extend(p for p in found if p not in paths)
        else:
            unmatched.append(pattern)
    return paths, unmatched


def output_stems(paths):
    """A distinct file stem per input: photo, photo_2, ... when two inputs share a name."""
    stems, seen = [], {}
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        stems.append(path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}")
    return stems


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", default=["examples"],
                        help="image files, globs (quote them) or folders (default: examples)")
    parser.add_argument("--output", default="outputs", help="folder for the results (default: outputs)")
    parser.add_argument("--npy", action="store_true", help="also write float32 depth in metres as .npy")
    parser.add_argument("--ply", action="store_true", help="also write a coloured point cloud as .ply")
    camera = parser.add_argument_group(
        "camera", "The pictures' camera: flags, else each picture's EXIF focal length, else the model's training "
                  "camera (one line per picture says which). Depth is scaled by its focal length over the training "
                  "camera's, and --ply back-projects with it.")
    camera.add_argument("--fx", type=float, help="focal length in pixels of the input pictures (fy: the same "
                                                 "times the training camera's fy / fx)")
    for name, key in (("--fy", "fy"), ("--cx", "cx"), ("--cy", "cy")):
        camera.add_argument(name, type=float, help=f"camera {key} in pixels of the input pictures (default: the "
                                                   f"training camera's, NYU's Kinect: {key} = "
                                                   f"{NYU_CAMERA.pixels(*NYU_IMAGE_HW)[key]:.1f} at 640x480)")
    camera.add_argument("--fov", type=float, metavar="DEGREES", help="horizontal field of view, instead of --fx")
    camera.add_argument("--focal-35mm", type=float, metavar="MM",
                        help="35 mm-equivalent focal length (a phone's main camera: about 26), matched on the "
                             "picture's longer side (36 mm), instead of --fx")
    camera.add_argument("--no-exif", action="store_true", help="ignore the pictures' EXIF focal lengths")
    camera.add_argument("--no-camera-scale", action="store_true",
                        help="leave depth as the network gives it, as if taken with the training camera (the "
                             "camera still shapes --ply)")
    add_model_flags(parser)
    args = parser.parse_args(argv)
    check_model_flags(parser, args)
    for key in ("fx", "fy", "focal_35mm"):
        if getattr(args, key) is not None and getattr(args, key) <= 0:
            parser.error(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if args.fov is not None and not 0 < args.fov < 180:
        parser.error(f"--fov must be between 0 and 180 degrees, got {args.fov}")
    focal_flags = [flag for flag in ("fx", "fov", "focal_35mm") if getattr(args, flag) is not None]
    if len(focal_flags) > 1:
        parser.error(f"--{' and --'.join(f.replace('_', '-') for f in focal_flags)} each give the focal length: "
                     "pass one")
    return args


def montage_row(name, image, depth_m, side=MONTAGE_SIDE):
    """(name, picture, depth) downsized to at most side pixels on the longer side: the montage draws each row
    a few hundred pixels wide, and a 12-megapixel photo kept whole costs 150 MB until it is drawn."""
    scale = side / max(image.shape[:2])
    if scale >= 1:
        return name, image, depth_m
    hw = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    return name, resize_depth(np.moveaxis(image, -1, 0), *hw).transpose(1, 2, 0), resize_depth(depth_m, *hw)


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()
    paths, unmatched = expand_inputs(args.input)
    try:
        if not paths:
            raise InputError(f"no images found in {' '.join(args.input)}")
        check_writable(args.output, folder=True)  # before the model loads and the pictures are predicted
        estimator = DepthEstimator.load(args.model, args.depth_range, args.precision, args.threads)
    except InputError as err:
        sys.exit(f"error: {err}")
    print(estimator.describe())
    for warning in estimator.warnings:
        print(f"warning: {warning}")
    folder = Path(args.output)  # made at the first picture that works: no empty folder when none does
    failed = [f"{pattern}: no such file" for pattern in unmatched]
    shown, written, done = [], 0, 0  # shown: the montage's rows only, downsized; nothing else is kept
    for path, stem in tqdm(list(zip(paths, output_stems(paths))), desc="predicting", unit="image"):
        try:
            image = load_image(path)
        except InputError as err:
            tqdm.write(f"skipped {err}", file=sys.stderr)
            failed.append(str(err))
            continue
        height, width = image.shape[:2]
        camera, line = picture_camera(path, height, width, estimator.camera, use_exif=not args.no_exif,
                                      fx=args.fx, fy=args.fy, cx=args.cx, cy=args.cy, fov=args.fov,
                                      focal_35mm=args.focal_35mm)
        scale = estimator.depth_scale(camera)
        applied = "not applied (--no-camera-scale)" if args.no_camera_scale else "applied"
        tqdm.write(f"{path.name}: {line}: depth x {scale:.3f}" + (f", {applied}" if scale != 1 else ""))
        depth_m = estimator.predict(image, max_side=args.max_side, camera=None if args.no_camera_scale else camera)
        intrinsics = camera.pixels(height, width)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            written += len(write_outputs(folder, stem, image, depth_m, intrinsics, args.npy, args.ply))
        except OSError as err:  # the place filled up or went away since the check
            sys.exit(f"error: {err.filename or folder}: cannot write ({err.strerror or err}); {written} files "
                     f"written for {done} images before it")
        done += 1
        if len(shown) < MONTAGE_MAX_ROWS:
            shown.append(montage_row(path.name, image, depth_m))
        del image, depth_m  # a folder of phone photos: one picture in memory at a time
    if shown:
        try:
            save_depth_montage(shown, folder / "montage.png")
        except OSError as err:
            sys.exit(f"error: {folder / 'montage.png'}: cannot write ({err.strerror or err})")
        print(f"wrote {written} files for {done} images and montage.png to {folder}")
    if failed:
        sys.exit(f"error: {len(failed)} of {len(paths) + len(unmatched)} inputs could not be used: "
                 + "; ".join(failed))


if __name__ == "__main__":
    main()
