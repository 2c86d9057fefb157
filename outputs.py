"""Depth as files and pictures: colour maps, 16-bit millimetres, .npy, PLY point clouds, glTF meshes, montages.

    from outputs import colorize, write_outputs
    Image.fromarray(colorize(depth_m)).save("depth.png")      # plasma, near dark, far bright
    write_outputs(folder, "photo", image, depth_m, intrinsics, npy=True, ply=True)

test.py, demo.py and evaluate.py write through these; each takes depth in metres.
"""
from pathlib import Path

import numpy as np

from camera import back_project

# ---------------------------------------------------------------------------------------------------------
# Pictures of depth
# ---------------------------------------------------------------------------------------------------------


def colorize(depth, vmin=None, vmax=None, cmap="plasma"):
    """An RGB uint8 picture of a depth map through a matplotlib colormap; NaN and inf show black.

    vmin/vmax default to the map's finite min and max.
    """
    import matplotlib

    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    finite = np.isfinite(depth)
    lo = float(np.min(depth[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(depth[finite])) if vmax is None and finite.any() else (vmax or 1.0)
    scaled = (np.where(finite, depth, lo) - lo) / max(hi - lo, 1e-12)
    rgb = matplotlib.colormaps[cmap](np.clip(scaled, 0.0, 1.0))[..., :3]
    rgb[~finite] = 0.0
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def save_depth_montage(items, path):
    """A figure of (title, image, depth in metres) rows: each image beside its depth (plasma, colour bar in m)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(items), 2, figsize=(9, 3.2 * len(items)), squeeze=False)
    for (name, image, depth_m), (left, right) in zip(items, axes):
        left.imshow(image)
        left.set_title(name, fontsize=8)
        shown = right.imshow(depth_m, cmap="plasma")
        fig.colorbar(shown, ax=right, fraction=0.046, pad=0.02, label="depth (m)")
        for ax in (left, right):
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# One picture's files
# ---------------------------------------------------------------------------------------------------------


MM_PER_M = 1000.0
PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def depth_mm_image(depth_m):
    """uint16 depth in millimetres, saturating at 65535."""
    return np.clip(np.round(depth_m * MM_PER_M), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def point_cloud(depth_m, image, intrinsics):
    """A structured array of coloured points (x, y, z in metres, camera frame; red, green, blue)."""
    points = back_project(depth_m, intrinsics).reshape(-1, 3)
    colors = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8).reshape(-1, 3)
    vertices = np.empty(len(points), PLY_VERTEX)
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = colors[:, i]
    return vertices


def write_ply(path, vertices):
    """A binary little-endian PLY file of the vertices point_cloud makes."""
    header = ("ply\nformat binary_little_endian 1.0\n"
              "comment DenseDepth prediction: metres, camera frame x right, y down, z forward\n"
              f"element vertex {len(vertices)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              "end_header\n")
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertices.tobytes())


def write_outputs(folder, stem, image, depth_m, intrinsics, npy=False, ply=False):
    """Every file promised for one picture; returns their paths."""
    from PIL import Image
    paths = [folder / f"{stem}_depth_color.png", folder / f"{stem}_depth_mm.png"]
    Image.fromarray(colorize(depth_m)).save(paths[0])
    Image.fromarray(depth_mm_image(depth_m)).save(paths[1])
    if npy:
        paths.append(folder / f"{stem}_depth_m.npy")
        np.save(paths[-1], depth_m.astype(np.float32))
    if ply:
        paths.append(folder / f"{stem}.ply")
        write_ply(paths[-1], point_cloud(depth_m, image, intrinsics))
    return paths


# ---------------------------------------------------------------------------------------------------------
# The demo's views: a colour bar and a glTF mesh
# ---------------------------------------------------------------------------------------------------------


MESH_MAX_SIDE = 256  # the 3D view samples the point cloud on a grid at most this many vertices across
MESH_MAX_DEPTH_RATIO = 1.1  # a triangle whose far corner is 10 % deeper than its near one spans an edge: dropped


def depth_view(depth_m):
    """RGB uint8 picture: colorize's map (the _depth_color.png file) beside a colour bar in metres."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = depth_m.shape
    lo, hi = float(depth_m.min()), float(depth_m.max())
    fig = Figure(figsize=(6.4, max(2.0, 6.4 * height / width * 0.85)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(colorize(depth_m), interpolation="nearest")
    ax.axis("off")
    bar = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(lo, max(hi, lo + 1e-6)), cmap="plasma")
    fig.colorbar(bar, ax=ax, fraction=0.046, pad=0.02, label="depth (m)")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def mesh_arrays(vertices, max_side=MESH_MAX_SIDE, max_depth_ratio=MESH_MAX_DEPTH_RATIO):
    """(positions (N, 3) float32 in glTF axes, colours (N, 4) uint8, triangles (M, 3) uint32) from test.py's
    point cloud laid out as its picture (H, W): a grid of at most max_side vertices across, every vertex one
    of the .ply's points, triangles across depth edges left out."""

    height, width = vertices.shape
    step = max(1, -(-max(height, width) // max_side))
    grid = vertices[::step, ::step]
    rows, cols = grid.shape
    # camera frame (x right, y down, z forward) -> glTF (x right, y up, looking down -z)
    positions = np.stack([grid["x"], -grid["y"], -grid["z"]], axis=-1).reshape(-1, 3).astype(np.float32)
    colours = np.stack([grid["red"], grid["green"], grid["blue"], np.full_like(grid["red"], 255)], axis=-1)
    index = np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    triangles = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    z = grid["z"].reshape(-1)[triangles]
    keep = (z.min(axis=1) > 0) & (z.max(axis=1) <= z.min(axis=1) * max_depth_ratio)
    return positions, colours.reshape(-1, 4).astype(np.uint8), triangles[keep]


def write_glb(path, positions, colours, triangles):
    """A binary glTF 2.0 file: one unlit mesh with vertex colours (what Gradio's 3D viewer shows)."""
    import json
    import struct

    blobs = [positions.astype("<f4").tobytes(), colours.astype(np.uint8).tobytes(),
             triangles.astype("<u4").tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()  # every length is a multiple of 4
    gltf = {
        "asset": {"version": "2.0", "generator": "DenseDepth demo.py"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "COLOR_0": 1}, "indices": 2, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0},
                       "doubleSided": True, "extensions": {"KHR_materials_unlit": {}}}],
        "extensionsUsed": ["KHR_materials_unlit"],
        "buffers": [{"byteLength": offsets[-1]}],
        "bufferViews": [{"buffer": 0, "byteOffset": offsets[i], "byteLength": len(blob), "target": target}
                        for i, (blob, target) in enumerate(zip(blobs, (34962, 34962, 34963)))],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(positions), "type": "VEC3",
             "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()},
            {"bufferView": 1, "componentType": 5121, "normalized": True, "count": len(colours), "type": "VEC4"},
            {"bufferView": 2, "componentType": 5125, "count": triangles.size, "type": "SCALAR"},
        ],
    }
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = b"".join(blobs)
    with open(path, "wb") as f:
        f.write(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(binary)))
        f.write(struct.pack("<I4s", len(text), b"JSON") + text)
        f.write(struct.pack("<I4s", len(binary), b"BIN\0") + binary)


# ---------------------------------------------------------------------------------------------------------
# Evaluation montages
# ---------------------------------------------------------------------------------------------------------


SAMPLE_ERROR_MAX = 0.5  # the error panel of --save-samples spans relative errors 0..50 %


def save_sample_montages(kept, records, folder, keep):
    """image | ground truth | prediction | relative error PNGs of the worst and best images; their paths.

    Ground truth and prediction share one colour scale (plasma, near dark); the error panel shows
    |pred - gt| / gt on the evaluated pixels only, black elsewhere (outside the crop, no ground truth).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keep = min(keep, len(kept))
    paths = []
    for tag, items in (("worst", kept[::-1][:keep]), ("best", kept[:keep])):
        for rank, (_, index, rgb, gt, pred, mask) in enumerate(items, start=1):
            record = records[index]
            lo, hi = float(gt[mask].min()), float(gt[mask].max())
            error = np.where(mask, np.abs(pred - gt) / np.where(mask, gt, 1.0), np.nan)
            panels = [(rgb, record["name"]),
                      (colorize(np.where(gt > 0, gt, np.nan), lo, hi), f"ground truth ({lo:.2f}-{hi:.2f} m)"),
                      (colorize(pred, lo, hi), "prediction (same scale)"),
                      (colorize(error, 0.0, SAMPLE_ERROR_MAX, "magma"),
                       f"|error| / depth, 0-{SAMPLE_ERROR_MAX:.0%}: abs rel {record['abs_rel']:.3f}, "
                       f"a1 {record['a1']:.3f}")]
            fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
            for ax, (picture, title) in zip(axes, panels):
                ax.imshow(picture)
                ax.set_title(title, fontsize=8)
                ax.axis("off")
            fig.tight_layout()
            path = folder / f"{tag}_{rank:02d}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            paths.append(path)
    return paths
