"""Keras model -> .onnx bytes via tf2onnx from a static batch-1 tf.function (opset 17), checked by onnx.checker.

tf2onnx's optimizer leaves one NHWC<->NCHW Transpose pair at the model's input/output for channels-last convs.
"""
from __future__ import annotations

import logging

import keras
import numpy as np

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


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ExportError(f"ONNX export supports --precision {', '.join(PRECISIONS)}, not {precision}; "
                          f"quantize with onnxruntime.quantization, or export --to tflite for {precision}")


def split_fused_conv_add(model_proto) -> list[str]:
    """Conv(x, w, b, addend) -> Add(Conv(x, w, b), addend as (C, 1, ...)).

    Keras' TensorFlow backend adds a tensor that squeezes to one channel vector as a BiasAdd (a residual Add at
    1x1 spatial size with batch 1, e.g. EfficientNet-B0's block6b_add at 32x32 input); tf2onnx then folds the
    conv's bias and that BiasAdd into one Conv with a fourth input, which ONNX's Conv does not take.
    """
    import onnx

    ranks = {init.name: len(init.dims) for init in model_proto.graph.initializer}
    nodes, fixed = [], []
    for node in model_proto.graph.node:
        if node.op_type != "Conv" or len(node.input) != 4 or node.input[1] not in ranks:
            nodes.append(node)
            continue
        addend, summed = node.input[3], node.output[0]
        axes = f"{node.name}__axes"
        spatial_axes = list(range(1, ranks[node.input[1]] - 1))  # the addend is (C,): broadcast it as (C, 1, ...)
        model_proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(spatial_axes, np.int64), axes))
        del node.input[3]
        node.output[0] = f"{summed}__conv"
        nodes += [node,
                  onnx.helper.make_node("Unsqueeze", [addend, axes], [f"{summed}__addend"], name=f"{node.name}__unsq"),
                  onnx.helper.make_node("Add", [node.output[0], f"{summed}__addend"], [summed], name=f"{node.name}__add")]
        fixed.append(node.name)
    if fixed:
        del model_proto.graph.node[:]
        model_proto.graph.node.extend(nodes)
    return fixed


def convert(model: keras.Model, precision: str = "fp32") -> bytes:
    import tf2onnx

    check_precision(precision)
    function, specs = inference_function(model)
    logging.disable(logging.ERROR)  # tf2onnx logs each unsupported op; _check reports them in one line instead
    try:
        model_proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=OPSET)
    except Exception as error:  # noqa: BLE001 - tf2onnx raises many types for one meaning
        raise ExportError(f"ONNX conversion of model {model.name!r} failed: {str(error).strip()[:300]}") from None
    finally:
        logging.disable(logging.NOTSET)
    split_fused_conv_add(model_proto)
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
