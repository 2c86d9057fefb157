"""The authors' released Keras 2.2.4 files (nyu.h5, kitti.h5) and the network layout they fix.

Their weights load by layer name, so our network keeps their names: the skip connections, the decoder's
blocks and convolutions, the LeakyReLU slope and each encoder's width are defined here and model.py builds
with them. Their files hold a whole model in HDF5 (the Keras 2 config and the weights by layer name):
read_legacy_h5 reads which network the config describes (DenseNet-169, full-width decoder, TensorFlow 1's
align_corners up-sampling, one LeakyReLU per block, as trained in January 2019), checks that its wiring is
the one create_model builds, and returns the weights; model.load_model rebuilds it and loads them.
contract.legacy_contract infers what the files carry no record of: which dataset, range and picture size.
"""
import json
from pathlib import Path

import numpy as np

from depth import KITTI, NYU_REFERENCE
from model import BLOCK_CONVS, BLOCK_NAMES, ENCODER_CHANNELS, LEAKY_RELU_SLOPE, SKIP_LAYERS, encoder_of
from utils import InputError

# They were trained with TensorFlow 1's resize_images(..., align_corners=True) (model.UPSAMPLING_CONVENTIONS).
LEGACY_UPSAMPLING = "align_corners"


# The authors' released files predict depth clipped to [0.1, 10] m (NYU) as their predict() does; the
# range of their KITTI training was never published: we assume KITTI's 80 m cap.
LEGACY_DEPTH_RANGES = {"nyu": NYU_REFERENCE, "kitti": KITTI}
# The picture size each released file was made for: NYU's frames, and for kitti.h5 the 384x1248 its author
# tells users to feed it (near KITTI's average frame, divisible by 32; DenseDepth issue #12).
LEGACY_INPUT_HW = {"nyu": (480, 640), "kitti": (384, 1248)}


def legacy_file_architecture(path):
    """legacy_architecture of an HDF5 file (InputError if it is not one of the authors' kind)."""
    import h5py

    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file (corrupt or truncated download?)")
    with h5py.File(path, "r") as f:
        return legacy_architecture(_legacy_model_config(f, path), path)


def read_legacy_h5(path):
    """(create_model arguments, {layer name: weights}) of a Keras 2 whole-model HDF5 file, its decoder wiring
    checked to be the one create_model builds (InputError naming the file otherwise)."""
    import h5py

    path = Path(path)
    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file (corrupt or truncated download?)")
    with h5py.File(path, "r") as f:
        config = _legacy_model_config(f, path)
        architecture = legacy_architecture(config, path)
        file_weights = _legacy_weights(f, path)
    check_legacy_wiring(config, architecture["leaky_relu_after"], path)
    return architecture, file_weights


def _as_str(value):
    """h5py 3 returns legacy string attributes as bytes; older files store str."""
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _legacy_model_config(f, path):
    """The JSON model_config attribute of a whole-model HDF5 file, parsed."""
    if "model_config" not in f.attrs:
        raise InputError(f"{path}: no model_config attribute: not a whole-model Keras HDF5 file")
    try:
        return json.loads(_as_str(f.attrs["model_config"]))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: model_config is not valid JSON ({err})") from err


def _normalized(name):
    """Keras 2 DenseNet layer names use '/' (conv1/conv) where Keras 3 uses '_'."""
    return name.replace("/", "_")


def legacy_architecture(config, path="model"):
    """create_model arguments (encoder, decoder_width, leaky_relu_after, ...) read from a Keras 2 config.

    The authors' Keras 2 files were trained with resize_images(..., align_corners=True) (LEGACY_UPSAMPLING).
    """
    layers = {_normalized(layer["name"]): layer for layer in config["config"]["layers"]}
    if "conv2" not in layers or "conv3" not in layers:
        raise InputError(f"{path}: not a DenseDepth model (no 'conv2'/'conv3' decoder layers)")
    encoder = encoder_of(layers)
    filters = layers["conv2"]["config"]["filters"]
    consumers = _consumer_classes(config["config"]["layers"])
    per_block = {
        tuple(conv for conv in BLOCK_CONVS if "LeakyReLU" in consumers.get(f"{block}_{conv}", ()))
        for block in BLOCK_NAMES
    }
    if len(per_block) != 1:
        raise InputError(f"{path}: up-sampling blocks differ in their LeakyReLU layout: {sorted(per_block)}")
    return {"encoder": encoder, "decoder_width": filters / ENCODER_CHANNELS[encoder],
            "leaky_relu_after": per_block.pop(), "upsampling": LEGACY_UPSAMPLING}


def check_legacy_wiring(config, leaky_relu_after, path="model"):
    """InputError in one line where the file's decoder is wired otherwise than create_model wires it.

    Weights load by name and shape, which a reversed concatenation (the same shapes) or a missing activation
    would pass: so each decoder layer's inputs, in order, the activations between them and the LeakyReLU
    slope are compared with the network rebuilt from the file.
    """
    layers = {_normalized(layer["name"]): layer for layer in config["config"]["layers"]}
    inputs = {name: _inbound_names(layer) for name, layer in layers.items()}
    consumers = {}
    for name, sources in inputs.items():
        for source in sources:
            consumers.setdefault(source, []).append(name)

    def expect(layer, wanted, what):
        got = inputs.get(layer, [])[:len(wanted)] if what == "first input" else inputs.get(layer, [])
        if got != wanted:
            raise InputError(f"{path}: '{layer}' takes {got or 'nothing'} where the DenseDepth network takes "
                             f"{wanted} ({what}): not the network this code rebuilds")

    def activation_after(layer, allowed):
        """The LeakyReLU after layer, if allowed; InputError for any other activation or slope."""
        following = [n for n in consumers.get(layer, []) if layers[n]["class_name"] in ACTIVATION_CLASSES]
        if not following:
            if allowed:
                raise InputError(f"{path}: '{layer}' is not followed by a LeakyReLU, as in the other blocks")
            return layer
        name = following[0]
        slope = layers[name]["config"].get("alpha", layers[name]["config"].get("negative_slope"))
        if not allowed or layers[name]["class_name"] != "LeakyReLU":
            raise InputError(f"{path}: '{layer}' is followed by a {layers[name]['class_name']} the DenseDepth "
                             "network does not have there")
        if slope is None or abs(float(slope) - LEAKY_RELU_SLOPE) > 1e-6:
            raise InputError(f"{path}: the LeakyReLU after '{layer}' has slope {slope}, the network's is "
                             f"{LEAKY_RELU_SLOPE}")
        return name

    for name, layer in layers.items():
        if layer["class_name"] == "Conv2D" and layer["config"].get("activation", "linear") != "linear":
            raise InputError(f"{path}: '{name}' has a built-in {layer['config']['activation']} activation the "
                             "DenseDepth network does not have")
    expect("conv2", ["relu"], "the encoder's last feature map")
    previous = activation_after("conv2", allowed=False)
    for block, skip in zip(BLOCK_NAMES, SKIP_LAYERS):
        expect(f"{block}_upsampling2d", [previous], "first input")
        expect(f"{block}_concat", [f"{block}_upsampling2d", skip], "up-sampled first, skip connection second")
        previous = f"{block}_concat"
        for conv in BLOCK_CONVS:
            expect(f"{block}_{conv}", [previous], "the layer before it")
            previous = activation_after(f"{block}_{conv}", allowed=conv in leaky_relu_after)
    expect("conv3", [previous], "the last block's output")


ACTIVATION_CLASSES = {"LeakyReLU", "Activation", "ReLU", "PReLU", "ELU", "ThresholdedReLU"}


def _inbound_names(layer):
    """The normalised names of the layers feeding a Keras 2 config layer, in order (first node only)."""
    nodes = layer.get("inbound_nodes") or []
    return [_normalized(inbound[0]) for inbound in nodes[0]] if nodes else []


def _consumer_classes(layers):
    """For each layer name, the class names of the layers that take its output (Keras 2 node format)."""
    consumers = {}
    for layer in layers:
        for node in layer.get("inbound_nodes", []):
            for inbound in node:
                consumers.setdefault(_normalized(inbound[0]), set()).add(layer["class_name"])
    return consumers


def _legacy_weights(f, path):
    """{normalised layer name: [arrays]} for every layer with weights in the file."""
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in group.attrs:
        raise InputError(f"{path}: no layer_names attribute: not a Keras HDF5 weights layout")
    weights = {}
    for layer_name in map(_as_str, group.attrs["layer_names"]):
        layer_group = group[layer_name]
        names = [_as_str(n) for n in layer_group.attrs.get("weight_names", [])]
        if names:
            weights[_normalized(layer_name)] = [np.asarray(layer_group[n]) for n in names]
    return weights


def assign_weights_by_name(model, file_weights, path):
    """Set each layer's weights from the file, refusing at the first layer whose name or shapes differ."""
    remaining = dict(file_weights)
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = remaining.pop(layer.name, None)
        if arrays is None:
            raise InputError(f"{path}: layer '{layer.name}' of the network is missing from the file")
        expected = [tuple(w.shape) for w in layer.weights]
        found = [tuple(a.shape) for a in arrays]
        if expected != found:
            raise InputError(f"{path}: layer '{layer.name}' does not match: file has {found}, "
                             f"network expects {expected}")
        layer.set_weights(arrays)
    if remaining:
        raise InputError(f"{path}: layer '{next(iter(remaining))}' in the file has no counterpart in the network")


# ---------------------------------------------------------------------------------------------------------
# The released files by name: --model nyu / --model kitti
# ---------------------------------------------------------------------------------------------------------

# Where the authors' README links them (Google Drive since 2020; 165 MB each).
RELEASED_IDS = {"nyu": "19dfvGvDfCRYaqxVKypp1fRHwK7XtSjVu", "kitti": "19flUnbJ_6q2xtjuUQvjt1Y1cJRwOr-XY"}
RELEASED_PAGE = "https://drive.google.com/file/d/{id}/view"
RELEASED_DOWNLOAD = "https://drive.google.com/uc?export=download&id={id}"
MIRROR_VARIABLE = "DENSEDEPTH_MODEL_MIRROR"  # a folder URL holding nyu.h5 and kitti.h5 instead (a local mirror)
DOWNLOAD_TIMEOUT_S = 15  # per connection and read: offline, the first attempt fails within this


def released_path(name):
    """Where the released file name ("nyu", "kitti") is kept: Keras' cache folder (KERAS_HOME, else ~/.keras)."""
    import os

    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return home / "models" / "densedepth" / f"{name}.h5"


def released_url(name):
    """(the URL the file is fetched from, the link shown to a person): the mirror's, else Google Drive's."""
    import os

    mirror = os.environ.get(MIRROR_VARIABLE)
    if mirror:
        return f"{mirror.rstrip('/')}/{name}.h5", f"{mirror.rstrip('/')}/{name}.h5"
    return RELEASED_DOWNLOAD.format(id=RELEASED_IDS[name]), RELEASED_PAGE.format(id=RELEASED_IDS[name])


def fetch_released(name):
    """The path of the authors' released file name ("nyu" or "kitti"): the cached copy, else downloaded from its
    published link (a progress bar on stderr), checked to be the released kind (an HDF5 file whose layout and
    wiring are the authors'), and kept. InputError naming the link and where to put the file by hand if the
    download or the check fails; nothing partial is left behind."""
    import urllib.error

    from utils import atomic_write

    target = released_path(name)
    if target.is_file():
        return target
    url, link = released_url(name)
    try:
        with atomic_write(target) as partial:
            download(url, partial, f"{name}.h5")
            legacy_file_architecture(partial)
    except (OSError, urllib.error.URLError, InputError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise InputError(f"cannot fetch the authors' {name}.h5 from {link} ({reason}): download it by hand and "
                         f"put it at {target}, or pass --model PATH") from err
    return target


def download(url, path, label):
    """url's content into path, with a progress bar; Google Drive's "cannot scan for viruses" page for large
    files is answered as a person would (its form's confirmation), any other web page is an error."""
    import urllib.request

    from tqdm import tqdm

    response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    if response.headers.get_content_type() == "text/html":
        response = urllib.request.urlopen(confirmed_url(response.read(1 << 20).decode("utf-8", "replace"), url),
                                          timeout=DOWNLOAD_TIMEOUT_S)
        if response.headers.get_content_type() == "text/html":
            raise ValueError("the link answered with a web page, not the file")
    total = int(response.headers.get("Content-Length") or 0) or None
    with open(path, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
        while chunk := response.read(1 << 20):
            f.write(chunk)
            bar.update(len(chunk))


def confirmed_url(page, url):
    """The download URL behind Google Drive's confirmation page: its form's action and hidden fields."""
    import html
    import re
    import urllib.parse

    form = re.search(r'<form[^>]*action="([^"]+)"', page)
    if not form:
        raise ValueError("the link answered with a web page that offers no download")
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    action = urllib.parse.urljoin(url, html.unescape(form.group(1)))
    return f"{action}?{urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()})}"
