"""Per-layer cost of a model on a target, for the export audit (`edgecompress export --time-layers`): each original
layer's compute, a factorized block's factors together or the layer itself, timed alone through the cost table
(lowered and converted as export does, batch 1, the runner's fixed cost per invoke subtracted), next to its FLOPs.
LiteRT's Python interpreter has no op profiler; timing each layer as a model of its own is the equivalent, and is
what the latency guard and latency budgets price plans with.

    costs = layer_costs(keras_model, CostTable("host"))
    costs["layers"][0]   # {"layer": "conv2", "factors": 4, "flops": 18874368, "ms": 0.0412, "gflops_per_s": 458.1}
"""
from __future__ import annotations

from typing import Any

COMPUTE_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                  "SeparableConv2D", "Dense", "EinsumDense")


def layer_groups(model: Any) -> dict[str, list]:
    """{original layer name: its Keras layers in order}: a factorized block's factors, or one compute layer."""
    from edgecompress.lower.naming import block_original

    groups: dict[str, list] = {}
    for layer in model.layers:
        original = block_original(layer.name)
        if original is not None:
            groups.setdefault(original, []).append(layer)
        elif type(layer).__name__ in COMPUTE_LAYERS:
            groups[layer.name] = [layer]
    return groups


def layer_costs(model: Any, table: Any) -> dict:
    """Each group of `layer_groups(model)` timed alone on `table`'s target (one runner call for what the cache
    lacks), with its FLOPs (multiply-adds x 2, batch 1)."""
    from edgecompress.graph.accounting import chain_cost

    groups = layer_groups(model)
    requests = [(layers, tuple(layers[0].input.shape[1:])) for layers in groups.values()]
    latencies_ms = table.latency_many(requests) if requests else []
    rows = []
    for (name, layers), (_, shape), ms in zip(groups.items(), requests, latencies_ms):
        flops = chain_cost([type(layer).from_config(layer.get_config()) for layer in layers], (1, *shape))[1]
        rows.append({"layer": name, "factors": len(layers) if len(layers) > 1 else 0, "flops": int(flops),
                     "ms": round(float(ms), 6), "gflops_per_s": round(flops / (ms * 1e6), 2) if ms > 0 else None})
    return {"target": table.target.name, "runtime": table.runtime, "precision": table.precision,
            "threads": table.settings.threads, "timed": "each layer alone, batch 1, invoke overhead subtracted",
            "layers": rows}
