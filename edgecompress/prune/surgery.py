"""Remove channel classes from a model: slice every weight that reads or writes them, rebuild the graph.

The same slicing rule gives the analytic params/FLOPs of a removal without building anything, so budgets can
bisect over it (`PrunedCost`), and the built model's accounting must agree with it (tested).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import keras
import numpy as np

from edgecompress.graph.layers import describe
from edgecompress.graph.rebuild import rebuild
from edgecompress.prune.groups import DEPTHWISE, SEPARABLE, ChannelGraph


@dataclass
class Masks:
    """Which input channels a layer still reads and which output channels it still writes (None: all)."""

    inputs: np.ndarray | None
    outputs: np.ndarray | None

    @property
    def changed(self) -> bool:
        return any(mask is not None and not mask.all() for mask in (self.inputs, self.outputs))


def layer_masks(graph: ChannelGraph, removed: set[int]) -> dict[str, Masks]:
    """Masks of every layer with channel-sliced weights, for a set of removed classes."""
    def keep(atoms):
        return np.array([graph.find(a) not in removed for a in atoms.tolist()], dtype=bool)

    masks = {use.layer: Masks(keep(use.input_atoms), None) for use in graph.uses}
    for name, atoms in graph.producers.items():
        masks.setdefault(name, Masks(None, None)).outputs = keep(atoms)
    return masks


def _axis_masks(layer, masks: Masks, weight_index: int, ndim: int) -> dict[int, np.ndarray]:
    """{axis: keep mask} of one weight of `layer` (its get_weights() order)."""
    inputs, outputs = masks.inputs, masks.outputs
    if isinstance(layer, SEPARABLE):
        multiplier = layer.depth_multiplier
        middle = None if inputs is None else np.repeat(inputs, multiplier)
        by_weight = [{ndim - 2: inputs}, {ndim - 2: middle, ndim - 1: outputs}, {0: outputs}]
        return by_weight[weight_index]
    if isinstance(layer, DEPTHWISE):
        repeated = None if inputs is None else np.repeat(inputs, layer.depth_multiplier)
        return {ndim - 2: inputs} if weight_index == 0 else {0: repeated}
    if isinstance(layer, keras.layers.BatchNormalization):
        return {0: inputs}
    if weight_index == 0:  # Conv / Dense kernel (..., in, out)
        return {ndim - 2: inputs, ndim - 1: outputs}
    return {0: outputs}


def sliced_weights(layer, masks: Masks, weights: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """The layer's weights (or `weights` in their place, e.g. refitted) without the masked-out channels."""
    weights = weights if weights is not None else layer.get_weights()
    result = []
    for index, weight in enumerate(weights):
        for axis, mask in _axis_masks(layer, masks, index, weight.ndim).items():
            if mask is not None:
                weight = np.compress(mask, weight, axis=axis)
        result.append(weight)
    return result


def sliced_params(layer, masks: Masks) -> int:
    total = 0
    for index, weight in enumerate(layer.weights):
        shape = list(weight.shape)
        for axis, mask in _axis_masks(layer, masks, index, len(shape)).items():
            if mask is not None:
                shape[axis] = int(mask.sum())
        total += int(np.prod(shape))
    return total


def _fraction(mask: np.ndarray | None) -> float:
    return 1.0 if mask is None or not len(mask) else float(mask.mean())


def sliced_flops(layer, masks: Masks, flops_before: int) -> int:
    """FLOPs scale with the kept fraction of each contracted channel axis (accounting.py's formulas)."""
    inputs, outputs = _fraction(masks.inputs), _fraction(masks.outputs)
    if isinstance(layer, DEPTHWISE):
        return int(round(flops_before * inputs))
    if isinstance(layer, SEPARABLE):
        taps = int(np.prod(layer.kernel_size))
        depthwise_share = taps / (taps + layer.filters)  # per position: k*C*m vs C*m*filters
        return int(round(flops_before * inputs * (depthwise_share + (1 - depthwise_share) * outputs)))
    return int(round(flops_before * inputs * outputs))


class PrunedCost:
    """Params and FLOPs of the model's layers after a removal, computed from the slicing rule alone."""

    def __init__(self, model: keras.Model, graph: ChannelGraph):
        self.model, self.graph = model, graph
        self.infos = {info.name: info for info in describe(model)}
        self.candidates = [name for name, info in self.infos.items() if info.kind is not None]

    def per_layer(self, removed: set[int]) -> dict[str, tuple[int, int]]:
        """{layer: (params, flops)} after removing `removed`, for every layer with weights or FLOPs."""
        masks = layer_masks(self.graph, removed)
        result = {}
        for name, info in self.infos.items():
            if name in masks:
                layer = self.model.get_layer(name)
                result[name] = (sliced_params(layer, masks[name]), sliced_flops(layer, masks[name], info.flops))
            else:
                result[name] = (info.params, info.flops)
        return result

    def candidate_total(self, removed: set[int], kind: str) -> int:
        """Total params or FLOPs of the Conv/Dense layers (what params=/flops= budgets count)."""
        costs = self.per_layer(removed)
        return sum(costs[name][0 if kind == "params" else 1] for name in self.candidates)


def pruned_model(model: keras.Model, graph: ChannelGraph, removed: set[int],
                 replacements: Mapping[str, list[np.ndarray]] | None = None) -> keras.Model:
    """A new model without the removed classes; every layer keeps its name. `replacements`: full weights to
    slice instead of a layer's own (refit.py's reconstruction)."""
    replacements = replacements or {}
    masks = {name: m for name, m in layer_masks(graph, removed).items() if m.changed}
    substitutes, weights = {}, {}
    for name, layer_masks_ in masks.items():
        layer = model.get_layer(name)
        config = layer.get_config()
        if "filters" in config and layer_masks_.outputs is not None:
            config["filters"] = int(layer_masks_.outputs.sum())
        if "units" in config and layer_masks_.outputs is not None:
            config["units"] = int(layer_masks_.outputs.sum())
        substitutes[name] = [type(layer).from_config(config)]
        weights[name] = sliced_weights(layer, layer_masks_, replacements.get(name))
    new_model = rebuild(model, substitutes)
    for name, arrays in weights.items():
        new_model.get_layer(name).set_weights(arrays)
    return new_model


def kept_channels(graph: ChannelGraph, removed: set[int]) -> Mapping[str, tuple[int, int]]:
    """{producer: (output channels before, kept)}."""
    result = {}
    for name, atoms in graph.producers.items():
        kept = sum(graph.find(a) not in removed for a in atoms.tolist())
        result[name] = (len(atoms), int(kept))
    return result
