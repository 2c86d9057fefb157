"""Where the time goes: OpenVINO's own per-layer counters on an exported model, against the FLOPs of each
part of the network (encoder stem and dense blocks, the decoder's conv2, up1..up4, conv3).

    python bench/profile_engine.py outputs/bench_engines/speed_decoder_1/int8.xml
    python bench/profile_engine.py MODEL.xml --keras outputs/bench_engines/speed_decoder_1/paper_network.keras

The model runs --repeats times at its export's size with profiling on (one thread per core, latency
mode); each layer's median real time is summed by part. OpenVINO names a fused layer after the
convolution it absorbed (the TensorFlow graph's node: densedepth_169_1/up1_convA_1/convolution), so each
maps back to the Keras layer and its part; layout changes and reorders that belong to no layer are shown as
"other". The FLOPs come from the Keras model (--keras, default the paper_network.keras beside the file):
2 x multiply-accumulates of its convolutions. --peak-tops is the machine's 8-bit peak (default 1.5: two
Zen 4 cores with AVX-512 VNNI, 2 x 2 x 64 x 3.0 GHz x 2 ops... see docs/deployment.md for how it is reached).
"""
import argparse
import collections
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from backends import conv_flops_by_part, network_part  # noqa: E402

LAYER = re.compile(r"/([a-z0-9]+(?:_[a-zA-Z0-9]+)*?)(?:_\d+)?/")  # the Keras layer inside a TF node name


def layer_of(node_name):
    """The Keras layer name inside an OpenVINO node name, or None."""
    match = LAYER.search(node_name)
    return match.group(1) if match else None


def part_of(node_name):
    layer = layer_of(node_name)
    return network_part(layer) if layer else "other (layout, reorders)"


def profile(path, repeats, threads):
    """{part: median ms per picture}, {exec type: ms}, and the export's (height, width)."""
    import openvino

    from contract import CONTRACT_KEY, exported_contract, openvino_metadata, openvino_model
    from estimator import openvino_config

    model = openvino_model(path)
    contract = exported_contract(path, openvino_metadata(model, CONTRACT_KEY))
    height, width = contract.export["input_hw"]
    config = {**openvino_config(contract, threads), "PERF_COUNT": True}
    request = openvino.Core().compile_model(model, "CPU", config).create_infer_request()
    x = np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32)
    request.infer({"rgb": x})  # the first call pays the one-time set-up
    runs = []
    for _ in range(repeats):
        request.infer({"rgb": x})
        runs.append([(info.node_name, info.exec_type, info.real_time.total_seconds() * 1e3)
                     for info in request.profiling_info])
    by_part, by_type = collections.Counter(), collections.Counter()
    for i, (name, exec_type, _) in enumerate(runs[0]):
        ms = float(np.median([run[i][2] for run in runs]))
        by_part[part_of(name)] += ms
        by_type[exec_type] += ms
    return by_part, by_type, (height, width)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an OpenVINO .xml that export.py wrote")
    parser.add_argument("--keras", help="the Keras model it was exported from, for the FLOPs (default: "
                                        "paper_network.keras beside it)")
    parser.add_argument("--repeats", type=int, default=5, help="profiled calls, median per layer (default 5)")
    parser.add_argument("--threads", type=int, help="OpenVINO's threads (default: every core)")
    parser.add_argument("--peak-tops", type=float, default=1.5,
                        help="the machine's 8-bit peak in TOPS, for the fraction column (default 1.5)")
    args = parser.parse_args(argv)
    by_part, by_type, hw = profile(args.model, args.repeats, args.threads)
    from model import load_model

    keras_path = args.keras or Path(args.model).with_name("paper_network.keras")
    flops = conv_flops_by_part(load_model(keras_path), *hw)
    total_ms = sum(by_part.values())
    print(f"{args.model} at {hw[0]}x{hw[1]}: {total_ms:.0f} ms per picture in OpenVINO's counters "
          f"({sum(flops.values()) / 1e9:.1f} GFLOP)")
    print(f"{'part':<28}{'ms':>8}{'share':>8}{'GFLOP':>8}{'GOP/s':>8}{'of peak':>9}")
    order = sorted(set(by_part) | set(flops), key=lambda p: (not p.startswith("encoder"), p.startswith("other"), p))
    for part in order:
        ms, gflop = by_part.get(part, 0.0), flops.get(part, 0) / 1e9
        rate = gflop / (ms / 1e3) if ms else 0.0
        fraction = f"{rate / (1e3 * args.peak_tops):>9.0%}" if gflop and ms else f"{'':>9}"
        print(f"{part:<28}{ms:>8.1f}{ms / total_ms:>8.0%}{gflop:>8.1f}{rate:>8.0f}{fraction}")
    print(f"{'all':<28}{total_ms:>8.1f}{1:>8.0%}{sum(flops.values()) / 1e9:>8.1f}"
          f"{sum(flops.values()) / 1e9 / (total_ms / 1e3):>8.0f}"
          f"{sum(flops.values()) / 1e9 / (total_ms / 1e3) / (1e3 * args.peak_tops):>9.0%}")
    print("\nby kernel: " + ", ".join(f"{kind} {ms:.0f} ms" for kind, ms in by_type.most_common(8)))


if __name__ == "__main__":
    main()
