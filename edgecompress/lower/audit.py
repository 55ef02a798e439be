"""What an export contains and how close it runs to Keras: ops per original layer, builtin-only, Transpose/Reshape
counts, size, params, and parity (max |diff|, top-1 agreement) measured on the real runtime."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from edgecompress.lower.naming import layer_in_op_name, original_name

IO_BUCKET = "(input/output)"
TRANSPOSE_OPS = {"TRANSPOSE", "Transpose"}
RESHAPE_OPS = {"RESHAPE", "Reshape", "Squeeze", "Unsqueeze", "Flatten"}


@dataclass
class OpRecord:
    """One op in execution order: its name, the lowered layer and original layer it came from."""

    index: int
    op: str
    layer: str | None
    original: str
    builtin: bool = True
    fused_activation: str | None = None


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def _activation_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {code: name for name, code in vars(schema.ActivationFunctionType).items() if not name.startswith("_")}


def _op_name(model, op, builtin_names) -> tuple[str, bool]:
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = builtin_names.get(number, str(number))
    if name == "CUSTOM":
        return (code.customCode or b"?").decode(errors="replace"), False
    return name, True


def _weight_like(model, subgraph, producers) -> set[int]:
    """Tensors holding weights: constant buffers, or DEQUANTIZE outputs of constants (fp16 / int8 weights)."""
    constant = {i for i, t in enumerate(subgraph.tensors) if t.buffer and model.buffers[t.buffer].data is not None}
    dequantized = {op.outputs[0] for op in producers if op.inputs[0] in constant}
    return constant | dequantized


def _first_layer(names, layer_names) -> str | None:
    return next((hit for name in names if (hit := layer_in_op_name(name, layer_names))), None)


def _record(index, op, layer, builtin=True, fused=None) -> OpRecord:
    return OpRecord(index, op, layer, original_name(layer) if layer else IO_BUCKET, builtin, fused)


def tflite_ops(content: bytes, layer_names) -> list[OpRecord]:
    """Ops of the main subgraph in execution order, each traced to a layer through its weights' names, then its
    outputs' names, then (reshapes the converter named after the model output) the op that produced its input."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    subgraph = model.subgraphs[0]
    builtin_names, activations = _builtin_names(), _activation_names()
    tensor_name = lambda t: subgraph.tensors[t].name.decode(errors="replace")  # noqa: E731
    dequantize_ops = [op for op in subgraph.operators if _op_name(model, op, builtin_names)[0] == "DEQUANTIZE"]
    weights = _weight_like(model, subgraph, dequantize_ops)
    records, producer_layer = [], {}
    for index, op in enumerate(subgraph.operators):
        name, builtin = _op_name(model, op, builtin_names)
        named = [t for t in op.inputs if t in weights] + [t for t in op.outputs if t >= 0]
        layer = _first_layer([tensor_name(t) for t in named], layer_names)
        layer = layer or next((producer_layer[t] for t in op.inputs if t in producer_layer), None)
        producer_layer.update({t: layer for t in op.outputs if layer})
        fused = getattr(op.builtinOptions, "fusedActivationFunction", None)
        records.append(_record(index, name, layer, builtin, activations.get(fused) if fused else None))
    return _adopt_consumer_layer(records, [list(op.inputs) for op in subgraph.operators],
                                 [list(op.outputs) for op in subgraph.operators])


def _adopt_consumer_layer(records: list[OpRecord], inputs: list, outputs: list) -> list[OpRecord]:
    """Ops still untraced (e.g. DEQUANTIZE of an unnamed bias) belong to the layer of the op that consumes them."""
    consumer = {}
    for record, tensors in zip(records, inputs):
        for tensor in tensors:
            consumer.setdefault(tensor, record)
    for record, tensors in zip(reversed(records), reversed(outputs)):
        user = next((consumer[t] for t in tensors if t in consumer and consumer[t].layer), None)
        if record.layer is None and user is not None and record.op == "DEQUANTIZE":
            record.layer, record.original = user.layer, user.original
    return records


def onnx_ops(content: bytes, layer_names) -> list[OpRecord]:
    """Nodes in graph order, traced to a layer through the node name, its weights' names, then its producer."""
    import onnx

    graph = onnx.load_from_string(content).graph
    initializers = {init.name for init in graph.initializer}
    records, producer_layer = [], {}
    for index, node in enumerate(graph.node):
        names = [node.name] + [name for name in node.input if name in initializers]
        layer = _first_layer(names, layer_names)
        layer = layer or next((producer_layer[t] for t in node.input if t in producer_layer), None)
        producer_layer.update({t: layer for t in node.output if layer})
        standard = node.domain in ("", "ai.onnx") and onnx.defs.has(node.op_type, node.domain)
        records.append(_record(index, node.op_type, layer, standard))
    return records


OP_READERS = {"tflite": tflite_ops, "onnx": onnx_ops}


def ops_by_original(records: list[OpRecord]) -> dict[str, list[str]]:
    """{original layer: its ops in order}, layers in order of their first compute op (weight DEQUANTIZE ops of
    fp16 models all come first, so they do not count)."""
    grouped: dict[str, list[str]] = {}
    first_compute: dict[str, int] = {}
    for record in records:
        grouped.setdefault(record.original, []).append(record.op)
        if record.op != "DEQUANTIZE" or record.original == IO_BUCKET:
            first_compute.setdefault(record.original, record.index)
    return {name: grouped[name] for name in sorted(grouped, key=lambda n: first_compute.get(n, len(records)))}


def parity(reference: np.ndarray, measured: np.ndarray, labels: np.ndarray | None, source: str) -> dict:
    """max |diff| (absolute and relative to max |reference|) and, for class scores, top-1 agreement."""
    reference, measured = np.asarray(reference, np.float32), np.asarray(measured, np.float32)
    max_abs_ref = float(np.max(np.abs(reference))) if reference.size else 0.0
    max_abs_diff = float(np.max(np.abs(reference - measured))) if reference.size else 0.0
    result = {"samples": int(len(reference)), "data": source, "max_abs_diff": max_abs_diff,
              "max_abs_reference": max_abs_ref, "relative_diff": max_abs_diff / max_abs_ref if max_abs_ref else 0.0,
              "top1_agreement": None, "accuracy_keras": None, "accuracy_runtime": None}
    if reference.ndim == 2 and reference.shape[1] > 1:
        top_ref, top_run = reference.argmax(1), measured.argmax(1)
        result["top1_agreement"] = float(np.mean(top_ref == top_run))
        if labels is not None:
            result["accuracy_keras"] = float(np.mean(top_ref == labels[:len(top_ref)]))
            result["accuracy_runtime"] = float(np.mean(top_run == labels[:len(top_run)]))
    return result


def summarize(records: list[OpRecord]) -> dict:
    names = [record.op for record in records]
    non_builtin = sorted({record.op for record in records if not record.builtin})
    return {"op_total": len(names), "op_counts": dict(Counter(names).most_common()),
            "builtin_only": not non_builtin, "non_builtin_ops": non_builtin,
            "transpose_count": sum(name in TRANSPOSE_OPS for name in names),
            "reshape_count": sum(name in RESHAPE_OPS for name in names),
            "layers": [{"layer": layer, "ops": ops} for layer, ops in ops_by_original(records).items()],
            "ops": [asdict(record) for record in records]}
