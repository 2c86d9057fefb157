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

Clips (.mp4, .mov, .mkv, .webm, .avi, animated .gif; or, with --sequence, the pictures given taken as the
frames of one clip) are decoded, predicted a few frames at a time, steadied (--temporal flow: each frame's
depth blended with the ones before it, moved by the camera's motion; metric, without drift) and written as they
come, so memory does not grow with the clip's length. For an input NAME.mp4:

    NAME_depth.mp4        the colour-mapped depth at the clip's frame rate and size (its rotation applied),
                          on one colour scale for the whole clip (set from its first frames), with a colour
                          bar; --side-by-side puts the picture beside it. The audio is not carried over.
    NAME_depth_m.npy      float32 metres of every frame, shape (frames, H, W), written frame by frame (--npy)
    NAME_depth_mm/        16-bit millimetre PNGs, one per frame (--png16)

Ctrl-C stops cleanly: what was written stays playable, and the line says how many frames it holds.

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
from video import (
    TEMPORAL_MODES,
    VIDEO_SUFFIXES,
    ClipWriters,
    DepthVideoWriter,
    NpyFramesWriter,
    Png16FramesWriter,
    frame_folder_clip,
    is_video,
    open_clip,
)

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
            found = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES | set(VIDEO_SUFFIXES) and p.is_file())
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
    clips = parser.add_argument_group("clips", "Video files, animated GIFs, or with --sequence the pictures as frames.")
    clips.add_argument("--sequence", action="store_true",
                       help="take the pictures given (a folder or glob of frames, in name order) as one clip")
    clips.add_argument("--fps", type=float, default=30.0, help="the frame rate of a --sequence clip (default 30)")
    clips.add_argument("--temporal", default="flow", choices=TEMPORAL_MODES,
                       help="flow (default): steady depth, each frame blended with the ones before it, moved by "
                            "the camera's motion (estimated from the frames); none: each frame predicted alone")
    clips.add_argument("--side-by-side", action="store_true", help="the picture beside its depth in NAME_depth.mp4")
    clips.add_argument("--png16", action="store_true",
                       help="also write each frame's depth as a 16-bit millimetre PNG in NAME_depth_mm/")
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
    if not args.fps > 0:
        parser.error(f"--fps must be positive, got {args.fps}")
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


def is_clip(path):
    """Whether an input is a clip: a video file, or a GIF of more than one frame."""
    if path.suffix.lower() != ".gif":
        return is_video(path)
    from PIL import Image

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except OSError:
        return False  # load_image names the problem


def write_clip(estimator, clip, stem, folder, args):
    """Predict and write every frame of an open clip as it comes; (frames, files written, first frame's
    montage row). On an error or an interruption, what was written is closed into playable files and the
    exception carries on, its `frames_written` set."""
    camera, line = picture_camera(None, clip.height, clip.width, estimator.camera, use_exif=False, fx=args.fx,
                                  fy=args.fy, cx=args.cx, cy=args.cy, fov=args.fov, focal_35mm=args.focal_35mm)
    tqdm.write(f"{clip.path.name}: {line}: depth x {estimator.depth_scale(camera):.3f}")
    first = None
    frames = estimator.video_depths(clip.frames(), args.temporal, max_side=args.max_side,
                                    camera=None if args.no_camera_scale else camera)
    outputs = ClipWriters(lambda near_far: clip_writers(folder, stem, clip, near_far, args),
                          (estimator.depth_range.min_m, estimator.depth_range.max_m))
    bar = tqdm(total=clip.frame_count, desc=clip.path.name, unit="frame", leave=False)
    try:
        with outputs:
            for index, frame, depth in frames:
                first = first or montage_row(clip.path.name, frame, depth)
                outputs.write(depth, frame)
                bar.update(index + 1 - bar.n)
    except BaseException as err:
        err.frames_written = outputs.frames
        raise
    finally:
        bar.close()
    return outputs.frames, len(outputs.writers), first


def clip_writers(folder, stem, clip, depth_range_m, args):
    """The writers of a clip's outputs: NAME_depth.mp4, and NAME_depth_m.npy / NAME_depth_mm/ if asked."""
    folder.mkdir(parents=True, exist_ok=True)
    writers = [DepthVideoWriter(folder / f"{stem}_depth.mp4", clip.fps, clip.height, clip.width, depth_range_m,
                                side_by_side=args.side_by_side)]
    if args.npy:
        writers.append(NpyFramesWriter(folder / f"{stem}_depth_m.npy", clip.height, clip.width))
    if args.png16:
        writers.append(Png16FramesWriter(folder / f"{stem}_depth_mm"))
    return writers


def clip_summary(clip, frames, files):
    """One line on what a clip gave."""
    turned = f", turned {clip.rotation} degrees upright" if clip.rotation else ""
    audio = "; its audio is not carried over" if clip.has_audio else ""
    return (f"{clip.path.name}: {frames} frames at {clip.fps:g} fps, {clip.width}x{clip.height}{turned}: "
            f"{files} outputs{audio}")


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
    shown, written, done, clips = [], 0, 0, 0  # shown: the montage's rows only, downsized; nothing else is kept
    if args.sequence:
        inputs = [(Path(args.input[0].rstrip("/")), output_stems([Path(args.input[0].rstrip("/"))])[0], paths)]
    else:
        inputs = [(path, stem, None) for path, stem in zip(paths, output_stems(paths))]
    for path, stem, frames in tqdm(inputs, desc="predicting", unit="input"):
        if frames is not None or is_clip(path):
            try:
                clip = frame_folder_clip(frames, args.fps) if frames is not None else open_clip(path)
                with clip:
                    count, files, first = write_clip(estimator, clip, stem, folder, args)
                tqdm.write(clip_summary(clip, count, files))
            except InputError as err:
                kept = getattr(err, "frames_written", 0)
                tqdm.write(f"skipped {err}" + (f" ({kept} frames written before it)" if kept else ""), file=sys.stderr)
                failed.append(str(err))
                continue
            except KeyboardInterrupt as err:
                sys.exit(f"interrupted at frame {getattr(err, 'frames_written', 0)} of {path.name}: its outputs in "
                         f"{folder} hold the frames written, and play")
            except OSError as err:
                sys.exit(f"error: {err.filename or folder}: cannot write ({err.strerror or err})")
            written += files
            done, clips = done + 1, clips + 1
            if first and len(shown) < MONTAGE_MAX_ROWS:
                shown.append(first)
            continue
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
        print(f"wrote {written} files for {done} {'inputs' if clips else 'images'} and montage.png to {folder}")
    if failed:
        sys.exit(f"error: {len(failed)} of {len(inputs) + len(unmatched)} inputs could not be used: "
                 + "; ".join(failed))


if __name__ == "__main__":
    main()
