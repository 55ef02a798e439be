"""Keras model -> .onnx bytes via tf2onnx from a static batch-1 tf.function (opset 17), checked by onnx.checker.

tf2onnx's optimizer leaves one NHWC<->NCHW Transpose pair at the model's input/output for channels-last convs.
"""
from __future__ import annotations

import logging

import keras

from edgecompress.errors import ExportError
from edgecompress.lower.naming import layer_in_op_name
from edgecompress.lower.trace import inference_function

OPSET = 17
PRECISIONS = ("fp32",)


def fix_conv_groups(model_proto) -> list[str]:
    """Set `group` on Conv nodes whose weights have fewer input channels than their input.

    tf2onnx derives `group` only for NHWC (2-D) convs, so a grouped NDHWC Conv3D arrives with group=1.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model_proto)
    shapes = {info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
              for info in list(inferred.graph.value_info) + list(inferred.graph.input)}
    weights = {init.name: list(init.dims) for init in model_proto.graph.initializer}
    fixed = []
    for node in model_proto.graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights or len(shapes.get(node.input[0], [])) < 2:
            continue
        channels, per_group = shapes[node.input[0]][1], weights[node.input[1]][1]
        if channels and per_group and channels != per_group:
            for attribute in [a for a in node.attribute if a.name == "group"]:
                node.attribute.remove(attribute)
            node.attribute.append(onnx.helper.make_attribute("group", channels // per_group))
            fixed.append(node.name)
    return fixed


def unsupported_nodes(model_proto) -> list:
    """Nodes whose op no ONNX opset defines (tf2onnx leaves TF ops it cannot convert in the graph)."""
    import onnx

    def known(node) -> bool:
        return onnx.defs.has(node.op_type, node.domain) if node.domain in ("", "ai.onnx") else False

    return [node for node in model_proto.graph.node if not known(node)]


def convert(model: keras.Model, precision: str = "fp32") -> bytes:
    import onnx
    import tf2onnx

    if precision not in PRECISIONS:
        raise ExportError(f"ONNX export supports --precision {', '.join(PRECISIONS)}, not {precision}; "
                          f"quantize with onnxruntime.quantization, or export --to tflite for {precision}")
    function, specs = inference_function(model)
    logging.disable(logging.ERROR)  # tf2onnx logs each unsupported op; _check reports them in one line instead
    try:
        model_proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=OPSET)
    except Exception as error:  # noqa: BLE001 - tf2onnx raises many types for one meaning
        raise ExportError(f"ONNX conversion of model {model.name!r} failed: {str(error).strip()[:300]}") from None
    finally:
        logging.disable(logging.NOTSET)
    fix_conv_groups(model_proto)
    _check(model_proto, model)
    return model_proto.SerializeToString()


def _check(model_proto, model: keras.Model) -> None:
    import onnx

    bad = unsupported_nodes(model_proto)
    if bad:
        classes = {layer.name: type(layer).__name__ for layer in model.layers}
        layers = dict.fromkeys(layer_in_op_name(node.name, classes) or node.name for node in bad)
        where = ", ".join(f"{name!r} ({classes.get(name, 'op')})" for name in layers)
        op_types = ", ".join(dict.fromkeys(node.op_type for node in bad))
        raise ExportError(f"layer {where} uses TensorFlow op(s) {op_types} that ONNX opset {OPSET} cannot "
                          f"express; replace it with builtin-lowerable layers or remove it")
    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"ONNX model fails onnx.checker: {str(error).strip().splitlines()[0][:300]}") from None
