"""Passes that remove standalone layers by folding them into the layer before: BatchNormalization, activations."""
from __future__ import annotations

import keras

from edgecompress.graph.batchnorm import fold_batchnorm
from edgecompress.graph.rebuild import rebuild
from edgecompress.lower.compose import carries_bias_or_activation
from edgecompress.lower.naming import block_original
from edgecompress.lower.passes import PassResult, fresh_copy, linear_links

# Activations every runtime fuses into the conv / fully-connected op before them.
FUSED_ACTIVATIONS = frozenset({"relu", "relu6"})
_WITH_ACTIVATION = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense,
                    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


def fold_batchnorm_pass(model: keras.Model) -> PassResult:
    """BatchNormalization right after a conv/dense is folded into its kernel and bias (exact at inference)."""
    folded_model, pairs = fold_batchnorm(model)
    if not pairs:
        return PassResult(model, False, "no BatchNormalization directly after a conv/dense layer")
    where = [f"{bn}->{layer}" for layer, bn in pairs]
    return PassResult(folded_model, True, f"folded {len(pairs)} BatchNormalization layer(s)", where)


def activation_name(layer) -> str | None:
    """'relu' / 'relu6' for a standalone activation layer the runtimes can fuse, else None."""
    if isinstance(layer, keras.layers.ReLU):
        plain = not layer.negative_slope and not layer.threshold
        if plain and layer.max_value is None:
            return "relu"
        return "relu6" if plain and layer.max_value == 6 else None
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        name = name.get("config", {}).get("name") if isinstance(name, dict) else name
        return name if name in FUSED_ACTIVATIONS else None
    return None


def _is_linear_producer(layer) -> bool:
    return isinstance(layer, _WITH_ACTIVATION) and layer.activation is keras.activations.linear


def fuse_activation_pass(model: keras.Model) -> PassResult:
    """A standalone ReLU/ReLU6 after a conv/dense without activation moves into it, so converters fuse it."""
    by_name = {layer.name: layer for layer in model.layers}
    substitutes, where = {}, []
    for producer_name, consumer_name in linear_links(model).items():
        producer, consumer = by_name.get(producer_name), by_name.get(consumer_name)
        name = activation_name(consumer) if consumer is not None else None
        if name and _is_linear_producer(producer) and producer_name not in substitutes:
            substitutes[producer_name] = [fresh_copy(producer, {"activation": name})]
            substitutes[consumer_name] = []
            where.append(f"{consumer_name}->{producer_name}")
    problems = _activations_inside_blocks(model)
    if not substitutes:
        reason = "no standalone ReLU/ReLU6 after a conv/dense layer without activation"
        return PassResult(model, False, reason + (f"; {problems}" if problems else ""))
    return PassResult(rebuild(model, substitutes), True, f"fused {len(where)} activation layer(s)", where)


def _activations_inside_blocks(model: keras.Model) -> str:
    """Factors other than a block's last that carry a bias or activation (the converter cannot fuse those)."""
    links = linear_links(model)
    offenders = []
    for layer in model.layers:
        block = block_original(layer.name)
        same_block = block is not None and layer.name in links and block_original(links[layer.name]) == block
        if same_block and carries_bias_or_activation(layer):
            offenders.append(layer.name)
    return f"bias/activation on non-last factors: {', '.join(offenders)}" if offenders else ""
