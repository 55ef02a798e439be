"""Reading a model's own graph: its nodes, and each layer's call sites in it (not in other models it was used in)."""
from __future__ import annotations

import keras


def graph_of(model: keras.Model):
    """The Functional graph behind a model (a Sequential keeps one in `_functional`), or None if subclassed."""
    graph = getattr(model, "_functional", None) or model
    return graph if hasattr(graph, "_run_through_graph") and hasattr(graph, "_nodes_by_depth") else None


def graph_nodes(model: keras.Model) -> list:
    """Every node of the model's graph; [] for a subclassed model."""
    graph = graph_of(model)
    return [node for nodes in graph._nodes_by_depth.values() for node in nodes] if graph is not None else []


def call_sites(model: keras.Model) -> dict[int, list]:
    """{id(layer): its nodes in this model's graph}. A Sequential loaded from .keras has stale extra call records
    on its layers (one per layer re-added while loading): only the graph's own nodes are call sites."""
    sites: dict[int, list] = {}
    for node in graph_nodes(model):
        if node.operation is not None and not node.is_input:
            sites.setdefault(id(node.operation), []).append(node)
    return sites
