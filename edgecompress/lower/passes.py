"""The pass interface (a function model -> PassResult) and the graph queries passes share; no pass lives here.

A pass returns the model it produced, whether it changed anything, a reason (what it did, or why it did not
apply), and the layers it touched, so the audit can say which pass fired where.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import keras

from edgecompress.graph.nodes import call_sites, graph_nodes

@dataclass
class PassResult:
    model: keras.Model
    changed: bool
    reason: str
    where: list[str] = field(default_factory=list)

    def record(self, name: str) -> dict:
        return {"pass": name, "changed": self.changed, "reason": self.reason, "where": list(self.where)}


Pass = Callable[[keras.Model], PassResult]


def run_passes(model: keras.Model, passes: Sequence[Pass]) -> tuple[keras.Model, list[dict]]:
    """Apply passes in order; returns the final model and one record per pass."""
    records = []
    for lowering_pass in passes:
        result = lowering_pass(model)
        records.append(result.record(lowering_pass.__name__))
        model = result.model
    return model, records


def _producer(tensor):
    return tensor._keras_history.operation


def linear_links(model: keras.Model) -> dict[str, str]:
    """{producer: consumer} for every edge where the consumer's only input is the producer's only use."""
    uses: dict[int, int] = {}
    for node in graph_nodes(model):
        for tensor in node.input_tensors:
            uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    for tensor in model.outputs:
        uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    links, sites = {}, call_sites(model)
    layers = {id(layer) for layer in model.layers}  # not bare ops (x + 3.0 in MobileNetV3 is an Add op, no layer)
    for node in graph_nodes(model):
        inputs = node.input_tensors
        if len(inputs) != 1 or id(node.operation) not in layers or len(sites.get(id(node.operation), [])) != 1:
            continue
        producer = _producer(inputs[0])
        if not isinstance(producer, keras.layers.InputLayer) and uses[id(inputs[0])] == 1:
            links[producer.name] = node.operation.name
    return links


def layer_chains(model: keras.Model) -> list[list]:
    """Maximal runs of layers each feeding only the next, in graph order (a lone layer is a run of one)."""
    links = linear_links(model)
    followers = set(links.values())
    by_name = {layer.name: layer for layer in model.layers}
    chains = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name in followers:
            continue
        chain = [layer]
        while chain[-1].name in links:
            chain.append(by_name[links[chain[-1].name]])
        chains.append(chain)
    return chains


def input_shape_of(layer) -> tuple:
    """The (batch-included) input shape of a layer's single call site. The passes work on models rebuilt from
    fresh layers (graph.rebuild), where each layer's first call record is its only one."""
    return tuple(layer._inbound_nodes[0].input_tensors[0].shape)


def fresh_copy(layer, overrides: dict | None = None, weights: list | None = None, input_shape=None, name=None):
    """A new built layer from `layer`'s config (with overrides) holding `weights` (default: the layer's own)."""
    config = {**layer.get_config(), **(overrides or {})}
    if name:
        config["name"] = name
    copy = type(layer).from_config(config)
    copy.build(input_shape or input_shape_of(layer))
    copy.set_weights(layer.get_weights() if weights is None else weights)
    return copy
