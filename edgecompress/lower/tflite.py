"""Keras model -> .tflite bytes with builtin ops only: fp32, fp16 weights, dynamic-range int8, or full int8.

Full int8 quantizes every op per channel from a representative set and keeps float32 input/output (QUANTIZE and
DEQUANTIZE at the ends), so the file is a drop-in replacement for the fp32 one.
"""
from __future__ import annotations

import re
import warnings

import keras
import numpy as np

from edgecompress.errors import ExportError
from edgecompress.lower.naming import layer_in_op_name
from edgecompress.lower.runtime import quiet_native_logs
from edgecompress.lower.trace import frozen_function

CALIBRATION_SAMPLES = 200


def _fp32(converter, calibration):
    converter.target_spec.supported_ops = [_ops().TFLITE_BUILTINS]


def _fp16(converter, calibration):
    import tensorflow as tf

    _fp32(converter, calibration)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _dynamic(converter, calibration):
    import tensorflow as tf

    _fp32(converter, calibration)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _int8(converter, calibration):
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [_ops().TFLITE_BUILTINS_INT8]
    samples = np.asarray(calibration[:CALIBRATION_SAMPLES], np.float32)
    converter.representative_dataset = lambda: ([sample[None]] for sample in samples)


def _ops():
    import tensorflow as tf

    return tf.lite.OpsSet


CONFIGURE = {"fp32": _fp32, "fp16": _fp16, "dynamic": _dynamic, "int8": _int8}


def convert(model: keras.Model, precision: str = "fp32", calibration: np.ndarray | None = None) -> bytes:
    """The .tflite flatbuffer; raises ExportError naming the layer the converter could not express."""
    import tensorflow as tf

    if precision == "int8" and calibration is None:
        raise ExportError("--precision int8 needs --data CALIB.npz (representative inputs to calibrate "
                          "activation ranges); or use --precision dynamic, which needs none")
    function = frozen_function(model)
    try:
        with warnings.catch_warnings(), quiet_native_logs():
            warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs": our I/O stays float
            # A frozen function (no trackable object): the path that folds weights into constants, not variables.
            converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
            CONFIGURE[precision](converter, calibration)
            return bytes(converter.convert())
    except Exception as error:  # noqa: BLE001 - ConverterError and friends: all mean "not expressible"
        raise conversion_error(str(error), model, function, precision) from None


def rejected_op_types(text: str) -> list[str]:
    """TF op types a converter error names: "'tf.Digamma' op is neither..." or "TF Select ops: A, B"."""
    found = re.findall(r"'tf\.(\w+)' op", text)
    select = re.search(r"TF Select ops: ([^\n]+)", text)
    if select:
        found += [name.strip() for name in select.group(1).split(",")]
    return list(dict.fromkeys(found))


def conversion_error(text: str, model: keras.Model, function, precision: str) -> ExportError:
    """An ExportError naming the layer(s) whose TF ops the TFLite converter rejected (found in the traced graph)."""
    op_types = rejected_op_types(text)
    names = [layer.name for layer in model.layers]
    nodes = [node.name for node in function.graph.as_graph_def().node if node.op in op_types]
    culprits = list(dict.fromkeys(hit for hit in (layer_in_op_name(n, names) for n in nodes) if hit))
    if culprits:
        classes = {layer.name: type(layer).__name__ for layer in model.layers}
        where = ", ".join(f"{name!r} ({classes[name]})" for name in culprits)
        return ExportError(f"layer {where} uses TensorFlow op(s) {', '.join(op_types)} that TFLite builtins cannot "
                           f"express at {precision}; replace it with builtin-lowerable layers or remove it")
    first = next((line.strip() for line in text.splitlines() if "error" in line.lower()), text.strip()[:200])
    return ExportError(f"TFLite conversion at {precision} failed: {first[:300]}")
