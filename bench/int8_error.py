"""Where full-int8 loses agreement with fp32 on a factorized model (issue 13, Deliver 4): per-tensor quantization
error from TensorFlow's QuantizationDebugger, and what keeping the worst tensors in float or merging factors buys.

The model is a zoo model compressed with the defaults (no fine-tuning). For each tensor the debugger reports the
RMSE between its quantized and float values in units of its quantization step (rmse/scale; 0.29 is rounding
alone, more is error carried in from upstream). Variants, each exported, run on LiteRT and compared with the fp32
export's top-1 on the test images: the default int8 export; without channel equalization; the k worst tensors
kept in float (debugger denylist); every adjacent pair of depthwise factors merged (what the merge pass composes
them into: a full conv). The last table times the default and merged int8 files, interleaved, 1 thread.

Run (about 4 min on 2 cores): python bench/int8_error.py [--model edgecnn] [--test 2000]
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lowering_latency  # noqa: E402  (bench/ is on sys.path when this script runs)
from edgecompress import data, zoo  # noqa: E402
from edgecompress.compress import CompressConfig, compress  # noqa: E402
from edgecompress.lower import lower, merge  # noqa: E402
from edgecompress.lower import tflite as tflite_export  # noqa: E402
from edgecompress.lower.runtime import run_tflite  # noqa: E402
from edgecompress.lower.trace import frozen_function  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EQUALIZE_SAMPLES = 200
DENYLIST_SIZES = (1, 2, 4, 8)
TIMING = dict(segments=5, min_runs=200, min_secs=0.5, max_secs=2.0)


def int8_converter(lowered: keras.Model, calibration: np.ndarray):
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen_function(lowered)])
    tflite_export.CONFIGURE["int8"](converter, calibration)
    return converter


def tensor_errors(converter, calibration: np.ndarray) -> list[dict]:
    """Per quantized tensor: op, name and rmse/scale, worst first."""
    samples = calibration[:tflite_export.CALIBRATION_SAMPLES]
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                         debug_dataset=lambda: ([s[None]] for s in samples))
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"])
        error = float(row["mean_squared_error"]) ** 0.5 / scale if scale else 0.0
        rows.append(dict(op=row["op_name"], tensor=row["tensor_name"], rmse_per_step=error))
    return sorted(rows, key=lambda r: -r["rmse_per_step"])


def denylisted(converter, calibration: np.ndarray, tensors: list[str]) -> bytes:
    samples = calibration[:tflite_export.CALIBRATION_SAMPLES]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=tensors)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([s[None]] for s in samples), debug_options=options)
    return debugger.get_nondebug_quantized_model()


def merged_depthwise_int8(model: keras.Model, calibration: np.ndarray) -> bytes:
    """int8 export with every adjacent depthwise pair of a block merged, whatever it costs."""
    def accept(candidate, layers, input_shape):
        depthwise = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
        return all(isinstance(layer, depthwise) for layer in layers) or original(candidate, layers, input_shape)

    original, merge.not_costlier = merge.not_costlier, accept
    try:
        lowered, _ = lower(model, "tflite", calibration[:EQUALIZE_SAMPLES])
    finally:
        merge.not_costlier = original
    return tflite_export.convert(lowered, "int8", calibration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edgecnn")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--out", default=str(RESULTS / "int8_error"))
    args = parser.parse_args()
    dataset = data.load_fashion_mnist(view=zoo.dataset_for(args.model), train_limit=2512, test_limit=args.test)
    calibration = dataset.x_train[:2000].astype(np.float32)
    x, y = dataset.x_test.astype(np.float32), dataset.y_test
    compressed = compress(zoo.pretrained(args.model), (dataset.x_train[-512:], dataset.y_train[-512:]),
                          CompressConfig()).model
    reference = run_tflite(tflite_export.convert(lower(compressed, "tflite")[0], "fp32"), x).argmax(1)
    lowered, _ = lower(compressed, "tflite", calibration[:EQUALIZE_SAMPLES])
    converter = int8_converter(lowered, calibration)
    errors = tensor_errors(converter, calibration)
    default_int8 = tflite_export.convert(lowered, "int8", calibration)
    merged = merged_depthwise_int8(compressed, calibration)
    variants = {"default int8 (equalized)": default_int8,
                "without channel equalization": tflite_export.convert(lower(compressed, "tflite")[0], "int8",
                                                                      calibration)}
    for count in DENYLIST_SIZES:
        variants[f"{count} worst tensors kept float"] = denylisted(converter, calibration,
                                                                   [r["tensor"] for r in errors[:count]])
    variants["depthwise pairs merged"] = merged
    lines = [f"# Where int8 loses agreement ({args.model}, compressed with the defaults, no fine-tuning)", "",
             f"Command: `python {' '.join(sys.argv)}`  ", f"fp32 top-1 on {len(x)} test images: "
             f"{100 * (reference == y).mean():.2f}%.", "", "| rmse / step | op | tensor |", "|---:|---|---|"]
    lines += [f"| {r['rmse_per_step']:.3f} | {r['op']} | `{r['tensor'][:70]}` |" for r in errors[:12]]
    lines += ["", "| variant | top-1 agreement with fp32 % | top-1 % |", "|---|---:|---:|"]
    for label, content in variants.items():
        predicted = run_tflite(content, x).argmax(1)
        lines.append(f"| {label} | {100 * (predicted == reference).mean():.2f} | {100 * (predicted == y).mean():.2f} |")
    default_ms, merged_ms = lowering_latency.time_interleaved([default_int8, merged], ".tflite", TIMING)
    lines += ["", "| int8 file | LiteRT ms (1 thread, interleaved median) |", "|---|---:|",
              f"| default | {default_ms:.4f} |", f"| depthwise pairs merged | {merged_ms:.4f} |"]
    text = "\n".join(lines) + "\n"
    out = Path(args.out).with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
