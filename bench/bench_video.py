"""Depth on clips: does the video path's memory stay flat with the clip's length, and how many frames a second
does each engine give?

    python bench/bench_video.py --memory                  # 60 and 240 frames of 480x640, peak memory of each
    python bench/bench_video.py --memory --small          # the same at 240x320
    python bench/bench_video.py --fps                     # frames/s at 480x640: Keras, ONNX, OpenVINO, TFLite
    python bench/bench_video.py --fps --frames 16 --only keras onnx

--memory renders a walk through a synthetic room (synthetic.render_clip) as an H.264 mp4 of --frames frames
and one four times as long, and runs the video path on each in a fresh process: `test.py --input CLIP
--output OUT --npy` (NAME_depth.mp4 and the streaming NAME_depth_m.npy), or, with --via loop (and by itself
where test.py fails on a clip), the same loop written out: DepthEstimator.video_depths over open_clip's
frames into DepthVideoWriter and NpyFramesWriter. Each process reports its own peak resident memory (VmHWM
of /proc/self/status: model, runtime, decoder, encoder; not the parent's) and its seconds. Frames are decoded,
predicted, steadied and written a few at a time, so the long clip's peak should be within 20 % of the short
one's.

--fps times DepthEstimator.video_depths (network, resize to the frame, and for temporal flow the
stabiliser; decoding and encoding excluded: they are the same for every engine) over --frames decoded frames
of a --size clip, after --warmup frames, with temporal flow and none, for the model (default: the built-in
models/synthetic_tiny.keras) in Keras and exported by export.py (float32) to ONNX, OpenVINO and TFLite at the
size Keras takes a frame through the network (the model's training size, or --max-side), each engine in a
fresh process. An engine whose export or runtime is missing gets a row saying why.

Each mode takes a few minutes on 2 CPU cores at its defaults; progress goes to the console as it runs.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402

BUILTIN = REPO / "models" / "synthetic_tiny.keras"
ENGINES = ("keras", "onnx", "openvino", "tflite")
EXPORT_SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}
LONG_FACTOR = 4  # --memory's second clip is this many times as long as the first
MEMORY_TARGET = 1.20  # the long clip's peak within 20 % of the short one's
CLIP_FPS = 30
COLOUR_SCALE_FRAMES = 8  # as test.py: the depth video's colour scale from the first frames

# The child of --memory --via test.py: test.py itself, then its own peak.
TEST_PY_CHILD = """
import runpy, sys, time
sys.path.insert(0, {bench!r})
from backends import own_peak_rss_mib
sys.argv = ["test.py", "--input", {clip!r}, "--model", {model!r}, "--output", {output!r}, "--npy"]
start = time.perf_counter()
try:
    runpy.run_path({script!r}, run_name="__main__")
finally:
    print(f"SECONDS {{time.perf_counter() - start:.2f}}", flush=True)
    print(f"PEAK {{own_peak_rss_mib():.1f}}", flush=True)
"""

# The child of --memory --via loop: what test.py does with a clip and --npy, written out.
LOOP_CHILD = """
import sys, time
sys.path.insert(0, {repo!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
import numpy as np
from backends import own_peak_rss_mib
start = time.perf_counter()
from estimator import DepthEstimator
from video import DepthVideoWriter, NpyFramesWriter, open_clip
estimator = DepthEstimator.load({model!r})
output = Path({output!r}); output.mkdir(parents=True, exist_ok=True)
writers, pending = [], []


def flush(clip):
    global writers, pending
    if not writers:
        values = np.concatenate([d[np.isfinite(d)].ravel() for _, d in pending])
        near, far = (float(v) for v in np.percentile(values, (2, 98)))
        writers = [DepthVideoWriter(output / "clip_depth.mp4", clip.fps, clip.height, clip.width,
                                    (near, max(far, near * 1.05))),
                   NpyFramesWriter(output / "clip_depth_m.npy", clip.height, clip.width)]
    for frame, depth in pending:
        writers[0].write(depth, frame)
        writers[1].write(depth)
    pending = []


with open_clip({clip!r}) as clip:
    for index, frame, depth in estimator.video_depths(clip.frames(), "flow"):
        pending.append((frame, depth))
        if writers or len(pending) >= {scale_frames}:
            flush(clip)
    if pending:
        flush(clip)
for writer in writers:
    writer.close()
print(f"SECONDS {{time.perf_counter() - start:.2f}}", flush=True)
print(f"PEAK {{own_peak_rss_mib():.1f}}", flush=True)
"""


def say(message):
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------------------


def write_room_clip(path, frames, height, width, seed=0, fps=CLIP_FPS):
    """An H.264 mp4 of a walk through synthetic room seed, frames long, rendered at height x width."""
    import av

    from synthetic import render_clip

    start = time.perf_counter()
    out = av.open(str(path), "w")
    try:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "20"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, (rgb, _, _) in enumerate(render_clip(seed, frames, "walk", height, width)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
            if (index + 1) % 30 == 0:
                say(f"    rendered {index + 1}/{frames} frames")
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    say(f"  wrote {path.name}: {frames} frames of {width}x{height} in {time.perf_counter() - start:.0f} s")
    return path


def run_child(code, what):
    """(seconds, peak MiB) a child program printed; None and its last error line if it failed."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    values = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()
              if line.startswith(("SECONDS ", "PEAK "))}
    if result.returncode != 0 or "PEAK" not in values:
        lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        return None, f"{what} failed (exit {result.returncode}): {lines[-1]}"
    return (values.get("SECONDS", float("nan")), values["PEAK"]), None


# ---------------------------------------------------------------------------------------------------------
# --memory
# ---------------------------------------------------------------------------------------------------------


def clips_in_test_py():
    """Whether this checkout's test.py reads video files (its clip flags are there)."""
    return "--temporal" in (REPO / "test.py").read_text()


def memory(args, scratch):
    height, width = args.hw
    counts = (args.frames, args.frames * LONG_FACTOR)
    via = args.via if args.via != "auto" else ("test.py" if clips_in_test_py() else "loop")
    say(f"clips of {width}x{height} at {CLIP_FPS} fps: {counts[0]} and {counts[1]} frames, model {args.model}; "
        f"the video path via {via}")
    rows = []
    for count in counts:
        clip = write_room_clip(scratch / f"room_{count}.mp4", count, height, width)
        figures, error, used = None, None, via
        if via == "test.py":
            code = TEST_PY_CHILD.format(bench=str(REPO / "bench"), clip=str(clip), model=str(args.model),
                                        output=str(scratch / f"out_{count}_test"), script=str(REPO / "test.py"))
            figures, error = run_child(code, "test.py")
            if figures is None and args.via == "auto":
                say(f"  {error}; running the same loop in the child instead")
                used = "loop"
        if figures is None and used == "loop":
            code = LOOP_CHILD.format(repo=str(REPO), bench=str(REPO / "bench"), clip=str(clip), model=str(args.model),
                                     output=str(scratch / f"out_{count}_loop"), scale_frames=COLOUR_SCALE_FRAMES)
            figures, error = run_child(code, "the video loop")
        if figures is None:
            sys.exit(f"error: {error}")
        seconds, peak = figures
        npy = next((scratch / f"out_{count}_{'test' if used == 'test.py' else 'loop'}").rglob("*_depth_m.npy"), None)
        if npy is not None:
            shape = np.load(npy, mmap_mode="r").shape
            if shape != (count, height, width):
                sys.exit(f"error: {npy.name} holds {shape}, expected ({count}, {height}, {width})")
        rows.append((count, seconds, peak, used))
        say(f"  {count} frames via {used}: {seconds:.1f} s, peak {peak:.0f} MiB")
    say(f"\n$ {command_line()}")
    say(f"{'frames':>7}{'size':>10}{'via':>9}{'seconds':>9}{'peak MiB':>10}")
    for count, seconds, peak, used in rows:
        say(f"{count:>7}{f'{width}x{height}':>10}{used:>9}{seconds:>9.1f}{peak:>10.0f}")
    ratio = rows[1][2] / rows[0][2]
    verdict = "within" if ratio <= MEMORY_TARGET else "OVER"
    say(f"peak long / short: {ratio:.3f} ({verdict} the target of {MEMORY_TARGET:.2f}); seconds include "
        f"starting TensorFlow and loading the model")


# ---------------------------------------------------------------------------------------------------------
# --fps
# ---------------------------------------------------------------------------------------------------------


def export(model, engine, input_hw, folder):
    """The model exported by export.py for one engine at input_hw (float32), or (None, why not)."""
    path = Path(folder) / f"model_{input_hw[0]}x{input_hw[1]}{EXPORT_SUFFIXES[engine]}"
    if path.exists():
        return path, None
    start = time.perf_counter()
    command = [sys.executable, str(REPO / "export.py"), "--model", str(model), "--format", engine,
               "--input-size", f"{input_hw[0]}x{input_hw[1]}", "--output", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0 or not path.exists():
        lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        return None, f"export failed: {lines[-1]}"
    say(f"  exported {engine} in {time.perf_counter() - start:.0f} s")
    return path, None


def network_hw(model, height, width, max_side):
    """The (height, width) Keras takes a height x width frame through the network at, read in a child (so this
    process stays free of TensorFlow)."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom estimator import DepthEstimator\n"
            f"e = DepthEstimator.load({str(model)!r})\nprint('HW', *e.network_hw({height}, {width}, {max_side!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    lines = [line for line in result.stdout.splitlines() if line.startswith("HW ")]
    if result.returncode != 0 or not lines:
        sys.exit(f"error: cannot load {model}: {(result.stderr.strip() or 'no output').splitlines()[-1]}")
    return tuple(int(v) for v in lines[-1].split()[1:])


def time_engine(config):
    """{temporal: frames/s} of one model file over a clip's frames (decoded beforehand), in this process."""
    from backends import own_peak_rss_mib
    from estimator import DepthEstimator
    from video import open_clip

    start = time.perf_counter()
    estimator = DepthEstimator.load(config["path"], threads=config["threads"])
    load_s = time.perf_counter() - start
    with open_clip(config["clip"]) as clip:
        frames = list(clip.frames())
    warmup, timed = frames[:config["warmup"]], frames[config["warmup"]:]
    result = {"load_s": load_s, "runtime": estimator.runtime}
    for temporal in config["temporal"]:
        for _ in estimator.video_depths(warmup, temporal, batch_size=config["batch"], max_side=config["max_side"]):
            pass
        start = time.perf_counter()
        count = 0
        for _ in estimator.video_depths(timed, temporal, batch_size=config["batch"], max_side=config["max_side"]):
            count += 1
        result[temporal] = count / (time.perf_counter() - start)
    result["peak_mib"] = own_peak_rss_mib()
    return result


def fps(args, scratch):
    height, width = args.hw
    model = Path(args.model)
    net_hw = network_hw(model, height, width, args.max_side)
    engines = args.only or ENGINES
    say(f"video depth at {width}x{height} (the network at {net_hw[1]}x{net_hw[0]}), {args.frames} frames after "
        f"{args.warmup} warm-up, batch {args.batch}, model {model}; engines: {', '.join(engines)}")
    clip = write_room_clip(scratch / "room.mp4", args.frames + args.warmup, height, width)
    rows = []
    for engine in engines:
        path, error = (model, None) if engine == "keras" else export(model, engine, net_hw, scratch)
        if path is None:
            rows.append((engine, None, error))
            say(f"  {engine}: {error}")
            continue
        config = {"path": str(path), "clip": str(clip), "warmup": args.warmup, "batch": args.batch,
                  "max_side": args.max_side, "threads": args.threads, "temporal": ["flow", "none"]}
        result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)],
                                capture_output=True, text=True, cwd=REPO,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or not lines:
            error = f"failed: {(result.stderr.strip() or result.stdout.strip() or 'no output').splitlines()[-1]}"
            rows.append((engine, None, error))
            say(f"  {engine}: {error}")
            continue
        timing = json.loads(lines[-1])
        rows.append((engine, timing, None))
        say(f"  {engine}: {timing['flow']:.2f} frames/s with flow, {timing['none']:.2f} without")
    say(f"\n$ {command_line()}")
    say(f"{os.cpu_count()} CPU cores; {width}x{height} frames, network {net_hw[1]}x{net_hw[0]}, {args.frames} "
        f"timed frames, batch {args.batch}; frames/s of video_depths (decoding and encoding excluded)")
    say("flow cost: the steadying's time per frame; x keras: temporal none against Keras")
    keras = next((t for e, t, _ in rows if e == "keras" and t), None)
    say(f"{'engine':<10}{'runtime':<13}{'flow f/s':>9}{'none f/s':>9}{'flow cost':>10}{'x keras':>8}{'load s':>7}"
        f"{'peak MiB':>9}")
    for engine, timing, error in rows:
        if timing is None:
            say(f"{engine:<10}{error}")
            continue
        cost = f"{(1 / timing['flow'] - 1 / timing['none']) * 1000:.0f} ms"  # the steadying per frame
        relative = f"{timing['none'] / keras['none']:.2f}" if keras else ""
        say(f"{engine:<10}{timing['runtime']:<13}{timing['flow']:>9.2f}{timing['none']:>9.2f}{cost:>10}"
            f"{relative:>8}{timing['load_s']:>7.1f}{timing['peak_mib']:>9.0f}")


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------


def command_line():
    return " ".join(shlex.quote(a) for a in ["python", "bench/bench_video.py", *sys.argv[1:]])


def size(text):
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--memory", action="store_true", help="peak memory of a clip and one four times as long")
    mode.add_argument("--fps", action="store_true", help="frames per second of video depth per engine")
    mode.add_argument("--child", help=argparse.SUPPRESS)  # --fps's per-engine process
    parser.add_argument("--frames", type=int,
                        help="--memory: the short clip's frames (default 60; the long one 4x); --fps: timed frames "
                             "(default 48)")
    parser.add_argument("--size", type=size, dest="hw", default=(480, 640), metavar="HxW",
                        help="frame size (default 480x640)")
    parser.add_argument("--small", action="store_const", const=(240, 320), dest="hw", help="frames of 240x320")
    parser.add_argument("--model", default=str(BUILTIN), help="the model (default: the built-in %(default)s)")
    parser.add_argument("--via", choices=("auto", "test.py", "loop"), default="auto",
                        help="--memory: run test.py on each clip, or the same loop written out (auto: test.py where "
                             "it takes clips, else the loop)")
    parser.add_argument("--only", nargs="+", choices=ENGINES, help="--fps: these engines only")
    parser.add_argument("--warmup", type=int, default=8, help="--fps: frames predicted before timing (default 8)")
    parser.add_argument("--batch", type=int, default=4, help="--fps: frames per network call (default 4)")
    parser.add_argument("--max-side", type=int, help="--fps: the network's longer side (default: the model's)")
    parser.add_argument("--threads", type=int, help="--fps: the runtime's CPU threads (default: all cores)")
    parser.add_argument("--keep", help="keep the clips, outputs and exports in this folder")
    args = parser.parse_args(argv)
    if args.frames is None:
        args.frames = 60 if args.memory else 48
    if args.frames < 1 or args.warmup < 1 or args.batch < 1:
        parser.error("--frames, --warmup and --batch must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        print(json.dumps(time_engine(json.loads(args.child))), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-video-") as temporary:
        scratch = Path(args.keep or temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        (memory if args.memory else fps)(args, scratch)
        say(f"({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
