"""Where the time goes: OpenVINO's own per-layer counters on an exported model, against the FLOPs of each
part of the network (encoder stem and dense blocks, the decoder's conv2, up1..up4, conv3).

    python bench/profile_engine.py outputs/bench_engines/speed_decoder_1/int8.xml
    python bench/profile_engine.py MODEL.xml --keras outputs/bench_engines/speed_decoder_1/paper_network.keras

The model runs --repeats times at its export's size with profiling on (every core, latency mode); each
executed node's median real time is summed by part. The IR converted from TensorFlow keeps no layer names
(its nodes are Convolution_7166, ...), so each convolution is matched to its Keras layer by what identifies
it: its kernel's shape and its input's height and width; the other nodes are counted by kind (the bilinear
up-sampling, the concatenations, the layout changes OpenVINO inserts). The FLOPs come from the Keras model
(--keras, default the paper_network.keras beside the file): 2 x multiply-accumulates of its convolutions.
The precision column is the one each convolution ran in (u8 / i8: quantised; f32: left in float).
"""
import argparse
import collections
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from backends import conv_flops_by_part, network_part  # noqa: E402


def keras_conv_parts(model, height, width):
    """{(out channels, in channels, kh, kw, input height, input width): network part} of model's Conv2Ds."""
    import keras

    model = keras.models.clone_model(model, input_tensors=keras.Input((height, width, 3)))
    parts = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, in_h, in_w, _ = layer.input.shape
            parts[cout, cin, kh, kw, in_h, in_w] = network_part(layer.name)
    return parts


def node_parts(ir_model, conv_parts):
    """{IR node name: part} for every convolution of the IR whose key matches a Keras layer."""
    parts = {}
    for op in ir_model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        _, _, in_h, in_w = (d.get_length() if d.is_static else None for d in op.input(0).get_partial_shape())
        cout, cin, kh, kw = (d.get_length() for d in op.input(1).get_partial_shape())
        parts[op.get_friendly_name()] = conv_parts.get((cout, cin, kh, kw, in_h, in_w), "other convolutions")
    return parts


KINDS = {"Interpolate": "bilinear up-sampling", "Concat": "concatenations"}


def profile(path, keras_path, repeats, threads):
    """({part: median ms per picture}, {part: runtime precisions seen}, (height, width), Keras model)."""
    import openvino

    from contract import CONTRACT_KEY, exported_contract, openvino_metadata, openvino_model
    from estimator import openvino_config
    from model import load_model

    model = openvino_model(path)
    contract = exported_contract(path, openvino_metadata(model, CONTRACT_KEY))
    height, width = contract.export["input_hw"]
    keras_model = load_model(keras_path)
    names = node_parts(model, keras_conv_parts(keras_model, height, width))
    core = openvino.Core()
    config = {**openvino_config(core, contract, threads), "PERF_COUNT": True}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    x = np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32)
    request.infer({"rgb": x})  # the first call pays the one-time set-up
    runs = []
    for _ in range(repeats):
        request.infer({"rgb": x})
        runs.append([(info.node_name, info.node_type, info.exec_type, info.real_time.total_seconds() * 1e3)
                     for info in request.profiling_info])
    by_part, precisions = collections.Counter(), collections.defaultdict(collections.Counter)
    for i, (name, node_type, exec_type, _) in enumerate(runs[0]):
        ms = float(np.median([run[i][3] for run in runs]))
        part = names.get(name) or KINDS.get(node_type, "other (layout changes, pads, quantise)")
        by_part[part] += ms
        precisions[part][exec_type.rsplit("_", 1)[-1]] += ms
    return by_part, precisions, (height, width), keras_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an OpenVINO .xml that export.py wrote")
    parser.add_argument("--keras", help="the Keras model it was exported from, for the FLOPs (default: "
                                        "paper_network.keras beside it)")
    parser.add_argument("--repeats", type=int, default=5, help="profiled calls, median per layer (default 5)")
    parser.add_argument("--threads", type=int, help="OpenVINO's threads (default: every core)")
    args = parser.parse_args(argv)
    keras_path = args.keras or Path(args.model).with_name("paper_network.keras")
    by_part, precisions, hw, keras_model = profile(args.model, keras_path, args.repeats, args.threads)
    flops = conv_flops_by_part(keras_model, *hw)
    total_ms = sum(by_part.values())
    print(f"{args.model} at {hw[0]}x{hw[1]}: {total_ms:.0f} ms per picture in OpenVINO's counters "
          f"({sum(flops.values()) / 1e9:.1f} GFLOP)")
    print(f"{'part':<40}{'ms':>8}{'share':>7}{'GFLOP':>7}{'GOP/s':>7}  ran in")
    order = sorted(set(by_part) | set(flops),
                   key=lambda p: (not p.startswith("encoder"), not p.startswith("decoder"), p))
    for part in order:
        ms, gflop = by_part.get(part, 0.0), flops.get(part, 0) / 1e9
        rate = f"{gflop / (ms / 1e3):>7.0f}" if gflop and ms else f"{'':>7}"
        kinds = ", ".join(f"{kind} {t / ms:.0%}" for kind, t in precisions[part].most_common()) if ms else ""
        print(f"{part:<40}{ms:>8.1f}{ms / total_ms:>7.0%}{gflop:>7.1f}{rate}  {kinds}")
    print(f"{'all':<40}{total_ms:>8.1f}{1:>7.0%}{sum(flops.values()) / 1e9:>7.1f}"
          f"{sum(flops.values()) / 1e9 / (total_ms / 1e3):>7.0f}")


if __name__ == "__main__":
    main()
