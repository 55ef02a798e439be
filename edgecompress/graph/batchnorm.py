"""Fold a BatchNormalization that directly follows a conv/dense layer into that layer's kernel and bias."""
from __future__ import annotations

from collections import Counter

import keras
import numpy as np

from edgecompress.graph.layers import CANDIDATE_KINDS, layer_weights, model_layers
from edgecompress.graph.nodes import call_sites, graph_nodes
from edgecompress.graph.rebuild import rebuild


def _consumer_counts(model: keras.Model) -> Counter:
    counts: Counter = Counter()
    for node in graph_nodes(model):
        for tensor in node.input_tensors:
            counts[id(tensor)] += 1
    for tensor in model.outputs:
        counts[id(tensor)] += 1
    return counts


def foldable_pairs(model: keras.Model) -> list[tuple]:
    """(producer layer, BatchNormalization layer) pairs where folding is exact."""
    counts, sites = _consumer_counts(model), call_sites(model)
    pairs = []
    for bn in model_layers(model):
        if not isinstance(bn, keras.layers.BatchNormalization) or len(sites.get(id(bn), [])) != 1:
            continue
        source = sites[id(bn)][0].input_tensors[0]
        producer = source._keras_history.operation
        if _can_fold(producer, bn, counts[id(source)], len(sites.get(id(producer), []))):
            pairs.append((producer, bn))
    return pairs


def _can_fold(producer, bn, consumers: int, producer_calls: int) -> bool:
    is_candidate = any(isinstance(producer, cls) for cls in CANDIDATE_KINDS) and hasattr(producer, "kernel")
    return (is_candidate and consumers == 1 and producer_calls == 1
            and producer.activation is keras.activations.linear
            and bn.axis in (-1, len(bn.input.shape) - 1))


def folded_weights(producer, bn) -> tuple[np.ndarray, np.ndarray]:
    kernel, bias = layer_weights(producer)
    bias = np.zeros(kernel.shape[-1], kernel.dtype) if bias is None else bias
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    return kernel * scale, (bias - bn.moving_mean.numpy()) * scale + beta


def _folded_copy(producer, bn, input_shape):
    config = {**producer.get_config(), "use_bias": True}
    layer = type(producer).from_config(config)
    layer.build(input_shape)
    layer.set_weights(list(folded_weights(producer, bn)))
    return layer


def fold_batchnorm(model: keras.Model) -> tuple[keras.Model, list[tuple[str, str]]]:
    """A copy of the model with every foldable BatchNormalization folded; also the (layer, bn) names folded."""
    pairs = foldable_pairs(model)
    if not pairs:
        return model, []
    substitutes, sites = {}, call_sites(model)
    for producer, bn in pairs:
        input_shape = sites[id(producer)][0].input_tensors[0].shape
        substitutes[producer.name] = [_folded_copy(producer, bn, input_shape)]
        substitutes[bn.name] = []
    return rebuild(model, substitutes), [(p.name, b.name) for p, b in pairs]
