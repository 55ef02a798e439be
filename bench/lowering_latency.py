"""Does a FLOPs cut become a latency cut once lowered? Host LiteRT (XNNPACK, 1 thread) and ONNX Runtime (1 thread).

Part 1, models compressed at fixed ranks: original and compressed, both through edgecompress.lower (static batch
1, passes), timed interleaved in one process; ratio = (latency speedup) / (FLOPs cut). A "naive" column converts
both without passes and with a dynamic batch (as the issue's hand measurement did).
Part 2, one layer vs its factorized block, per block shape and method, at FLOPs cuts near 2x/4x/8x/16x: where a
block stops paying (speedup < 1) and how close the speedup gets to the FLOPs cut.
Part 3, rank alignment: the same block at ranks just below, at and above multiples of 16 (XNNPACK's channel tile).

    python bench/lowering_latency.py [--quick] [--out bench/results/lowering_latency]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from edgecompress import factorize  # noqa: E402
from edgecompress.bench.costtable import CostTable  # noqa: E402
from edgecompress.bench.layercosts import layer_costs  # noqa: E402
from edgecompress.graph.layers import describe  # noqa: E402
from edgecompress.graph.surgery import compress_model  # noqa: E402
from edgecompress.lower import lower  # noqa: E402
from edgecompress.lower import onnx as onnx_export  # noqa: E402
from edgecompress.lower import tflite as tflite_export  # noqa: E402
from edgecompress.ondevice import runner  # noqa: E402

CUT_TARGETS = (2.0, 4.0, 8.0, 16.0)
# Per segment (fresh interpreters, load order alternating between segments); the latency is the median over segments
# of each segment's p50, so a burst of load from other jobs on this shared machine moves one segment, not the result.
TIMING = dict(segments=3, min_runs=100, min_secs=0.4, max_secs=2.0)
QUICK_TIMING = dict(segments=1, min_runs=100, min_secs=0.4, max_secs=2.0)


# ----------------------------------------------------------------------------------------------- models
def vgg32() -> keras.Model:
    """VGG-like at 32x32x3, where convolutions dominate: 3 blocks of two 3x3 convs (32..256 channels)."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for block, (first, second) in enumerate(((32, 64), (128, 128), (256, 256)), start=1):
        x = keras.layers.Conv2D(first, 3, padding="same", activation="relu", name=f"b{block}c1")(x)
        x = keras.layers.Conv2D(second, 3, padding="same", activation="relu", name=f"b{block}c2")(x)
        x = keras.layers.MaxPooling2D(name=f"b{block}pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="vgg32")


def fashion_cnn() -> keras.Model:
    """The small Fashion-MNIST CNN: two convs, two pools, Flatten, a 1568 -> 64 FC and the logits."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="fashion_cnn")


def zoo(name: str):
    def build() -> keras.Model:
        from edgecompress.zoo import build as build_zoo

        return build_zoo(name)
    return build


# (model builder, conv method, dense method, rank fractions); every applicable layer but the logits is compressed
MODEL_CASES = {
    "vgg32": (vgg32, "tucker", "svd", (0.5, 0.25, 0.125)),
    "vgg32-cp": (vgg32, "cp", "svd", (0.03, 0.015)),
    "fashion_cnn": (fashion_cnn, "tucker", "svd", (0.5, 0.25, 0.125)),
    "zoo:conv1d": (zoo("conv1d"), "tucker", "svd", (0.5, 0.25)),
    "zoo:conv3d": (zoo("conv3d"), "tucker", "svd", (0.5, 0.25)),
}
QUICK_MODELS = ("vgg32", "fashion_cnn")


def plan_for(model: keras.Model, conv_method: str, dense_method: str, fraction: float) -> dict:
    """{layer: (method, fraction)} for each layer (not the logits) where the block is cheaper than the layer."""
    choices = {}
    for info in describe(model):
        method = dense_method if info.kind == "dense" else conv_method
        if info.kind is None or info.name == "logits" or factorize.get(method).why_not(info):
            continue
        if factorize.get(method).rank_problem(info, fraction) is None:
            choices[info.name] = (method, fraction)
    return choices


def model_flops(model: keras.Model) -> int:
    return sum(info.flops for info in describe(model))


# ----------------------------------------------------------------------------------------------- lowering
def naive_tflite(model: keras.Model) -> bytes:
    """Direct conversion, dynamic batch, no passes: the baseline lowering."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32)
    function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [convert_variables_to_constants_v2(function.get_concrete_function())])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def artifacts(model: keras.Model, with_naive: bool) -> dict:
    """{'tflite': bytes, 'onnx': bytes, 'naive': bytes?, 'flops': lowered FLOPs}."""
    lowered_tflite, _ = lower(model, "tflite")
    lowered_onnx, _ = lower(model, "onnx")
    out = {"tflite": tflite_export.convert(lowered_tflite), "onnx": onnx_export.convert(lowered_onnx),
           "flops": model_flops(lowered_tflite)}
    if with_naive:
        try:
            out["naive"] = naive_tflite(model)
        except Exception as error:  # noqa: BLE001 - e.g. MaxPool3D: no builtin without the layout pass
            print(f"naive lowering of {model.name} fails: {str(error).splitlines()[0][:120]}", flush=True)
    return out


# ----------------------------------------------------------------------------------------------- timing
def _segment(paths: list[str], model_class, timing: dict, reverse: bool) -> list[float]:
    """One segment: load every model (in reverse order when asked), warm up, time round by round; p50 each."""
    loaded = [None] * len(paths)
    for index in (reversed(range(len(paths))) if reverse else range(len(paths))):
        model = model_class(paths[index], 1, None)
        loaded[index] = {"model": model,
                         "feeds": runner.timed_feeds(model, None, paths[index], None, np.random.default_rng(0))}
    runner.interleaved_runs(loaded, 20, 0.2, 2.0)  # warm-up
    samples = runner.interleaved_runs(loaded, timing["min_runs"], timing["min_secs"], timing["max_secs"])
    return [float(np.median(s)) for s in samples]


def time_interleaved(contents: list[bytes], suffix: str, timing: dict) -> list[float]:
    """Latency (ms) of each model, 1 thread, timed interleaved in this process with the runner's loop."""
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for index, content in enumerate(contents):
            paths.append(os.path.join(directory, f"m{index}{suffix}"))
            Path(paths[-1]).write_bytes(content)
        model_class = runner.MODEL_CLASSES[suffix.lstrip(".")]
        segments = [_segment(paths, model_class, timing, reverse=k % 2 == 1) for k in range(timing["segments"])]
    return [float(np.median(per_model)) for per_model in zip(*segments)]


def compare(base: dict, other: dict, timing: dict) -> dict:
    """Latencies, speedups and speedup / FLOPs-cut ratios of `other` against `base` on each runtime."""
    cut = base["flops"] / other["flops"]
    row = {"flops_before": base["flops"], "flops_after": other["flops"], "flops_cut": cut}
    for key, suffix in (("tflite", ".tflite"), ("onnx", ".onnx"), ("naive", ".tflite")):
        if key in base and key in other:
            before_ms, after_ms = time_interleaved([base[key], other[key]], suffix, timing)
            row[key] = {"before_ms": before_ms, "after_ms": after_ms, "speedup": before_ms / after_ms,
                        "ratio": before_ms / after_ms / cut}
    return row


# ----------------------------------------------------------------------------------------------- part 1
def model_rows(names, timing) -> list[dict]:
    rows = []
    for name in names:
        build, conv_method, dense_method, fractions = MODEL_CASES[name]
        keras.utils.set_random_seed(0)
        original = build()
        base = artifacts(original, with_naive=True)
        for fraction in fractions:
            plan = plan_for(original, conv_method, dense_method, fraction)
            compressed = compress_model(original, plan)
            row = compare(base, artifacts(compressed, with_naive=True), timing)
            row.update(model=name, methods=f"{conv_method}+{dense_method}", fraction=fraction, layers=len(plan),
                       alone=layers_alone(original, compressed, row))
            rows.append(row)
            print(format_model_row(row), flush=True)
    return rows


def layers_alone(original: keras.Model, compressed: keras.Model, row: dict) -> dict:
    """The conv/dense layers (a block's factors together) each timed alone on host LiteRT (the export audit's
    --time-layers), summed: their speedup / FLOPs cut, and what the rest of the compressed model (pools, GAP,
    reshapes, the invoke) takes of its whole-model LiteRT time."""
    table = CostTable("host")
    before_ms, after_ms = (sum(r["ms"] for r in layer_costs(m, table)["layers"]) for m in (original, compressed))
    rest_ms = row["tflite"]["after_ms"] - after_ms if "tflite" in row else float("nan")
    return {"before_ms": before_ms, "after_ms": after_ms, "ratio": before_ms / after_ms / row["flops_cut"],
            "rest_ms": rest_ms, "rest_share": rest_ms / row["tflite"]["after_ms"] if "tflite" in row else None}


# ----------------------------------------------------------------------------------------------- part 2
# (label, kind, input shape without batch, out channels, kernel size)
BLOCK_SHAPES = [
    ("conv2d 32x32 64->64 k3", "conv2d", (32, 32, 64), 64, 3),
    ("conv2d 16x16 128->128 k3", "conv2d", (16, 16, 128), 128, 3),
    ("conv2d 8x8 256->256 k3", "conv2d", (8, 8, 256), 256, 3),
    ("conv2d 14x14 16->32 k3", "conv2d", (14, 14, 16), 32, 3),
    ("conv2d 4x4 32->32 k3", "conv2d", (4, 4, 32), 32, 3),
    ("conv2d 16x16 128->128 k1", "conv2d", (16, 16, 128), 128, 1),
    ("conv1d L128 128->128 k3", "conv1d", (128, 128), 128, 3),
    ("conv1d L28 64->128 k3", "conv1d", (28, 64), 128, 3),
    ("conv3d 8x16x16 32->32 k3", "conv3d", (8, 16, 16, 32), 32, 3),
    ("conv3d 4x14x14 8->16 k3", "conv3d", (4, 14, 14, 8), 16, 3),
    ("dense 2048->2048", "dense", (2048,), 2048, None),
    ("dense 512->512", "dense", (512,), 512, None),
    ("dense 1568->64", "dense", (1568,), 64, None),
]
QUICK_SHAPES = ("conv2d 16x16 128->128 k3", "conv2d 4x4 32->32 k3", "conv1d L28 64->128 k3",
                "conv3d 4x14x14 8->16 k3", "dense 512->512")
SAME_BLOCK_AS = {"qr": "svd"}  # QR builds the same two-matrix block as SVD: same ops, same latency
LAYER_CLASSES = {"conv1d": keras.layers.Conv1D, "conv2d": keras.layers.Conv2D, "conv3d": keras.layers.Conv3D}


def single_layer(kind: str, input_shape: tuple, out_channels: int, kernel) -> keras.Model:
    inputs = keras.Input(input_shape)
    if kind == "dense":
        layer = keras.layers.Dense(out_channels, activation="relu", name="layer")
    else:
        layer = LAYER_CLASSES[kind](out_channels, kernel, padding="same", activation="relu", name="layer")
    return keras.Model(inputs, layer(inputs))


def ranks_near_cuts(method, info) -> list:
    """For each target FLOPs cut, the candidate rank whose cut is closest (each rank once)."""
    candidates = method.ranks(info)
    cuts = [info.flops / max(1, method.cost(info, rank).flops) for rank in candidates]
    chosen = []
    for target in CUT_TARGETS:
        best = min(range(len(candidates)), key=lambda i: abs(np.log(cuts[i] / target)), default=None)
        if best is not None and candidates[best] not in chosen and 0.7 < cuts[best] / target < 1.4:
            chosen.append(candidates[best])
    return chosen


def block_rows(labels, timing) -> list[dict]:
    rows = []
    for label, kind, shape, out_channels, kernel in BLOCK_SHAPES:
        if label not in labels:
            continue
        keras.utils.set_random_seed(0)
        original = single_layer(kind, shape, out_channels, kernel)
        info = describe(original)[0]
        base = artifacts(original, with_naive=False)
        for name, method in factorize.registry().items():
            if method.why_not(info) or name in SAME_BLOCK_AS:
                continue
            for rank in ranks_near_cuts(method, info):
                block = compress_model(original, {"layer": (name, rank)})
                row = compare(base, artifacts(block, with_naive=False), timing)
                row.update(shape=label, method=name, rank=list(method.resolve(info, rank)))
                rows.append(row)
                print(format_block_row(row), flush=True)
    return rows


def break_even(rows: list[dict]) -> list[dict]:
    """Per (shape, method) and runtime: the FLOPs cut a block needs to match the layer's latency, estimated at the
    smallest measured cut that pays as cut / speedup (None: no measured cut pays), and the ratio at each cut."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["shape"], row["method"]), []).append(row)
    summary = []
    for (shape, method), group in groups.items():
        group = sorted(group, key=lambda r: r["flops_cut"])
        entry = {"shape": shape, "method": method, "cuts": [r["flops_cut"] for r in group]}
        for key in ("tflite", "onnx"):
            paying = [r for r in group if r[key]["speedup"] >= 1.0]
            entry[f"{key}_break_even_cut"] = paying[0]["flops_cut"] / paying[0][key]["speedup"] if paying else None
            entry[f"{key}_ratios"] = [r[key]["ratio"] for r in group]
        summary.append(entry)
    return summary


# ----------------------------------------------------------------------------------------------- part 3
ALIGNMENT_SHAPE = ("conv2d 16x16 128->128 k3", "conv2d", (16, 16, 128), 128, 3)
ALIGNMENT_RANKS = (15, 16, 17, 31, 32, 33, 47, 48, 49)


def alignment_rows(timing) -> list[dict]:
    label, kind, shape, out_channels, kernel = ALIGNMENT_SHAPE
    keras.utils.set_random_seed(0)
    original = single_layer(kind, shape, out_channels, kernel)
    base = artifacts(original, with_naive=False)
    rows = []
    for rank in ALIGNMENT_RANKS:
        row = compare(base, artifacts(compress_model(original, {"layer": ("tucker", rank)}), False), timing)
        row.update(shape=label, method="tucker", rank=[rank, rank])
        rows.append(row)
        print(format_block_row(row), flush=True)
    return rows


# ----------------------------------------------------------------------------------------------- output
def _runtime_cells(row: dict, key: str) -> str:
    if key not in row:
        return "| - | - | - "
    cell = row[key]
    return f"| {cell['before_ms']:.3f} -> {cell['after_ms']:.3f} | {cell['speedup']:.2f}x | {cell['ratio']:.2f} "


def format_model_row(row: dict) -> str:
    return (f"| {row['model']} | {row['methods']} @ {row['fraction']} ({row['layers']} layers) | "
            f"{row['flops_before'] / 1e6:.2f}M -> {row['flops_after'] / 1e6:.2f}M | {row['flops_cut']:.2f}x "
            + _runtime_cells(row, "tflite") + _runtime_cells(row, "naive") + _runtime_cells(row, "onnx")
            + _alone_cells(row.get("alone")) + "|")


def _alone_cells(alone: dict | None) -> str:
    if not alone:
        return "| - | - | - "
    return (f"| {alone['before_ms']:.3f} -> {alone['after_ms']:.3f} | {alone['ratio']:.2f} | "
            f"{alone['rest_ms']:.3f} ({100 * alone['rest_share']:.0f}%) ")


def format_block_row(row: dict) -> str:
    pays = "yes" if row["tflite"]["speedup"] >= 1.0 else "**no**"
    return (f"| {row['shape']} | {row['method']} {tuple(row['rank'])} | {row['flops_cut']:.2f}x "
            + _runtime_cells(row, "tflite") + _runtime_cells(row, "onnx") + f"| {pays} |")


def break_even_line(entry: dict) -> str:
    def cut(value):
        return "not within measured cuts" if value is None else f"{value:.2f}x"

    def ratios(values):
        return " / ".join(f"{v:.2f}" for v in values)

    cells = [entry["shape"], entry["method"], ratios(entry["cuts"]), cut(entry["tflite_break_even_cut"]),
             ratios(entry["tflite_ratios"]), cut(entry["onnx_break_even_cut"]), ratios(entry["onnx_ratios"])]
    return "| " + " | ".join(cells) + " |"


MODEL_HEADER = ("| model | compression | FLOPs | FLOPs cut | LiteRT ms (orig -> comp) | speedup | ratio "
                "| naive LiteRT ms | speedup | ratio | ORT ms | speedup | ratio | conv/dense alone ms | ratio alone "
                "| rest of comp. ms |\n" + "|---" * 16 + "|")
BLOCK_HEADER = ("| block shape | method (rank) | FLOPs cut | LiteRT ms (layer -> block) | speedup | ratio "
                "| ORT ms | speedup | ratio | pays on LiteRT |\n" + "|---" * 10 + "|")


def write_results(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Lowering latency (bench/lowering_latency.py)", "",
             f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
             f"Machine: {result['system']['cpu_model']}, {result['system']['cpu_count']} cores (shared with "
             f"other jobs: read small differences as noise); LiteRT {result['runtimes']['tflite']}, "
             f"onnxruntime {result['runtimes']['onnx']}; 1 thread; p50 of interleaved runs.", "",
             "ratio = latency speedup / FLOPs cut (1.0 = latency follows FLOPs). `conv/dense alone`: the "
             "conv and dense layers (a block's factors together) each timed alone on host LiteRT and summed, as "
             "`edgecompress export --time-layers` does, and their ratio; `rest of comp.`: what the compressed "
             "model's other ops (pools, GAP, reshapes) and the invoke take of its LiteRT time (whole - alone).", "",
             "## Models compressed at fixed ranks", "", MODEL_HEADER,
             *map(format_model_row, result["models"]), "",
             "## One layer vs its factorized block", "", BLOCK_HEADER, *map(format_block_row, result["blocks"]), "",
             "## Rank alignment: Tucker ranks around multiples of 16", "", BLOCK_HEADER,
             *map(format_block_row, result["alignment"]), "",
             "## Where factorizing stops paying", "",
             "Break-even = the FLOPs cut at which the block runs as fast as the layer, estimated from the smallest "
             "measured cut that pays (cut / speedup); below it, factorizing this shape costs latency.", "",
             "| block shape | method | measured FLOPs cuts | LiteRT break-even | LiteRT ratios | ORT break-even "
             "| ORT ratios |", "|---|---|---|---|---|---|---|"]
    lines += [break_even_line(entry) for entry in result["break_even"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two models, five block shapes, shorter timing")
    parser.add_argument("--out", default="bench/results/lowering_latency", help="results path without suffix")
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--skip-blocks", action="store_true")
    parser.add_argument("--from-json", metavar="RESULTS.json", help="rewrite the tables from saved results only")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        result["break_even"] = break_even(result["blocks"])
        write_results(Path(args.out), result)
        print(f"rewrote {args.out}.md from {args.from_json}")
        return 0
    timing = QUICK_TIMING if args.quick else TIMING
    import ai_edge_litert
    import onnxruntime

    result = {"command": "python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])),
              "date": time.strftime("%Y-%m-%d %H:%M"), "system": runner.system_info(),
              "runtimes": {"tflite": getattr(ai_edge_litert, "__version__", runner.find_tflite_runtime()[1]),
                           "onnx": onnxruntime.__version__}}
    print(MODEL_HEADER)
    result["models"] = [] if args.skip_models else model_rows(QUICK_MODELS if args.quick else MODEL_CASES, timing)
    print(BLOCK_HEADER)
    labels = QUICK_SHAPES if args.quick else [shape[0] for shape in BLOCK_SHAPES]
    result["blocks"] = [] if args.skip_blocks else block_rows(labels, timing)
    result["break_even"] = break_even(result["blocks"])
    result["alignment"] = [] if args.skip_blocks else alignment_rows(timing)
    write_results(Path(args.out), result)
    print(f"wrote {args.out}.md and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
