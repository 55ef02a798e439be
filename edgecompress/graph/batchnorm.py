"""Fold a BatchNormalization that directly follows a conv/dense layer into that layer's kernel and bias."""
from __future__ import annotations

from collections import Counter

import keras
import numpy as np

from edgecompress.graph.layers import CANDIDATE_KINDS, model_layers
from edgecompress.graph.nodes import graph_nodes
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
    counts = _consumer_counts(model)
    pairs = []
    for bn in model_layers(model):
        if not isinstance(bn, keras.layers.BatchNormalization) or len(bn._inbound_nodes) != 1:
            continue
        source = bn._inbound_nodes[0].input_tensors[0]
        producer = source._keras_history.operation
        if _can_fold(producer, bn, counts[id(source)]):
            pairs.append((producer, bn))
    return pairs


def _can_fold(producer, bn, consumers: int) -> bool:
    is_candidate = any(isinstance(producer, cls) for cls in CANDIDATE_KINDS) and hasattr(producer, "kernel")
    return (is_candidate and consumers == 1 and len(producer._inbound_nodes) == 1
            and producer.activation is keras.activations.linear
            and bn.axis in (-1, len(bn.input.shape) - 1))


def folded_weights(producer, bn) -> tuple[np.ndarray, np.ndarray]:
    kernel = producer.kernel.numpy()
    bias = producer.bias.numpy() if producer.use_bias else np.zeros(kernel.shape[-1], kernel.dtype)
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    return kernel * scale, (bias - bn.moving_mean.numpy()) * scale + beta


def _folded_copy(producer, bn):
    config = {**producer.get_config(), "use_bias": True}
    layer = type(producer).from_config(config)
    layer.build(producer._inbound_nodes[0].input_tensors[0].shape)
    layer.set_weights(list(folded_weights(producer, bn)))
    return layer


def fold_batchnorm(model: keras.Model) -> tuple[keras.Model, list[tuple[str, str]]]:
    """A copy of the model with every foldable BatchNormalization folded; also the (layer, bn) names folded."""
    pairs = foldable_pairs(model)
    if not pairs:
        return model, []
    substitutes = {}
    for producer, bn in pairs:
        substitutes[producer.name] = [_folded_copy(producer, bn)]
        substitutes[bn.name] = []
    return rebuild(model, substitutes), [(p.name, b.name) for p, b in pairs]
