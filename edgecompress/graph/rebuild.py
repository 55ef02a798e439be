"""Rebuild a Sequential or Functional model with some layers substituted by chains of new layers.

Every layer not substituted is copied (config + weights), so the new model shares no state with the
original: fine-tuning the compressed model never touches the teacher. `normalize` also inlines nested
Sequential/Functional sub-models, so every later stage sees one flat graph whose layers have exactly the
call sites the graph uses (a Sequential loaded from .keras keeps a stale call record per layer re-added).
"""
from __future__ import annotations

from functools import reduce
from typing import Mapping, Sequence

import keras

from edgecompress.graph.nodes import graph_of

def is_inlinable(layer) -> bool:
    """A nested model whose graph can be spliced into its caller's."""
    return isinstance(layer, keras.Model) and graph_of(layer) is not None and layer.built


class _Chain:
    """Layers called one after another; extra call arguments (e.g. `training`) are not passed on."""

    def __init__(self, layers: Sequence):
        self.layers = list(layers)

    def __call__(self, inputs, *args, **kwargs):
        return reduce(lambda x, layer: layer(x), self.layers, inputs)


class _Copies:
    """operation_fn for `_run_through_graph`: one copy per original operation, names unique across sub-models."""

    def __init__(self, substitutes: Mapping[str, Sequence], inline: bool):
        self.substitutes, self.inline = substitutes, inline
        self.pairs: dict[int, tuple] = {}
        self.names: set[str] = set()
        self.prefix = ""

    def __call__(self, op):
        if op.name in self.substitutes:
            return _Chain(self.substitutes[op.name])
        if id(op) not in self.pairs:
            self.pairs[id(op)] = (op, self._inliner(op) if self.inline and is_inlinable(op) else self._copy(op))
        return self.pairs[id(op)][1]

    def _inliner(self, model: keras.Model):
        def run(inputs, *args, **kwargs):
            outer, self.prefix = self.prefix, f"{self.prefix}{model.name}_"
            try:
                return graph_of(model)._run_through_graph(inputs, operation_fn=self)
            finally:
                self.prefix = outer
        return run

    def _copy(self, op):
        if not isinstance(op, keras.layers.Layer):
            return op  # a stateless keras.ops operation: safe to reuse
        if isinstance(op, keras.Model):
            return keras.models.clone_model(op)
        config = op.get_config()
        name = op.name if op.name not in self.names else f"{self.prefix}{op.name}"
        while name in self.names:
            name += "_"
        self.names.add(name)
        return type(op).from_config({**config, "name": name})

    def copy_weights(self) -> None:
        for original, twin in self.pairs.values():
            if isinstance(twin, keras.layers.Layer) and twin is not original and original.weights:
                twin.set_weights(original.get_weights())


def rebuild(model: keras.Model, substitutes: Mapping[str, Sequence]) -> keras.Model:
    """A copy of `model` where each layer named in `substitutes` is replaced by its chain of layers.

    An empty chain drops the layer (identity): how a folded BatchNormalization disappears.
    """
    copies = _Copies(substitutes, inline=False)
    if isinstance(model, keras.Sequential):
        new_model = _rebuild_sequential(model, copies)
    else:
        new_model = _rebuild_functional(model, copies)
    copies.copy_weights()
    return new_model


def normalize(model: keras.Model) -> keras.Model:
    """A flat Functional copy of `model`: nested Sequential/Functional models inlined, one call record per call.

    A subclassed model (no graph to read) is returned as it is.
    """
    if graph_of(model) is None:
        return model
    copies = _Copies({}, inline=True)
    new_model = _rebuild_functional(model, copies)
    copies.copy_weights()
    return new_model


def _rebuild_functional(model: keras.Model, copies: _Copies) -> keras.Model:
    new_inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name)
                  for t in model.inputs]
    graph = graph_of(model)
    outputs = graph._run_through_graph(new_inputs, operation_fn=copies)
    single = len(new_inputs) == 1 and not isinstance(graph._inputs_struct, (list, tuple, dict))
    return keras.Model(new_inputs[0] if single else new_inputs, outputs, name=model.name)


def _rebuild_sequential(model: keras.Sequential, operation_for) -> keras.Model:
    source = model.inputs[0]
    inputs = keras.Input(batch_shape=source.shape, dtype=source.dtype)
    new_layers = []
    for layer in model.layers:
        replacement = operation_for(layer)
        new_layers.extend(replacement.layers if isinstance(replacement, _Chain) else [replacement])
    return keras.Sequential([inputs, *new_layers], name=model.name)
