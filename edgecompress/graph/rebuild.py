"""Rebuild a Sequential or Functional model with some layers substituted by chains of new layers.

Every layer not substituted is copied (config + weights), so the new model shares no state with the
original: fine-tuning the compressed model never touches the teacher.
"""
from __future__ import annotations

from functools import reduce
from typing import Mapping, Sequence

import keras


def _copy_layer(layer):
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer)
    if not isinstance(layer, keras.layers.Layer):
        return layer  # a stateless keras.ops operation: safe to reuse
    return type(layer).from_config(layer.get_config())


class _Chain:
    """Layers called one after another; extra call arguments (e.g. `training`) are not passed on."""

    def __init__(self, layers: Sequence):
        self.layers = list(layers)

    def __call__(self, inputs, *args, **kwargs):
        return reduce(lambda x, layer: layer(x), self.layers, inputs)


def rebuild(model: keras.Model, substitutes: Mapping[str, Sequence]) -> keras.Model:
    """A copy of `model` where each layer named in `substitutes` is replaced by its chain of layers.

    An empty chain drops the layer (identity): how a folded BatchNormalization disappears.
    """
    copies: dict[str, object] = {}

    def operation_for(op):
        if op.name in substitutes:
            return _Chain(substitutes[op.name])
        if op.name not in copies:
            copies[op.name] = _copy_layer(op)
        return copies[op.name]

    if isinstance(model, keras.Sequential):
        new_model = _rebuild_sequential(model, operation_for)
    else:
        new_inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name)
                      for t in model.inputs]
        outputs = model._run_through_graph(new_inputs, operation_fn=operation_for)
        inputs = new_inputs[0] if len(new_inputs) == 1 and not isinstance(model.input, list) else new_inputs
        new_model = keras.Model(inputs, outputs, name=model.name)
    _copy_weights(model, copies)
    return new_model


def _rebuild_sequential(model: keras.Sequential, operation_for) -> keras.Model:
    source = model.inputs[0]
    inputs = keras.Input(batch_shape=source.shape, dtype=source.dtype)
    new_layers = []
    for layer in model.layers:
        replacement = operation_for(layer)
        new_layers.extend(replacement.layers if isinstance(replacement, _Chain) else [replacement])
    return keras.Sequential([inputs, *new_layers], name=model.name)


def _copy_weights(model: keras.Model, copies: Mapping[str, object]) -> None:
    for layer in model.layers:
        twin = copies.get(layer.name)
        if isinstance(twin, keras.layers.Layer) and twin is not layer and layer.weights:
            twin.set_weights(layer.get_weights())
