"""Replace chosen layers of a model by factorized blocks: fold BatchNorm first, then rebuild the graph."""
from __future__ import annotations

from typing import Mapping

import keras

from edgecompress.errors import UnsupportedLayerError
from edgecompress.factorize import Rank, factorize
from edgecompress.graph.batchnorm import fold_batchnorm
from edgecompress.graph.layers import describe, layer_weights, model_layers
from edgecompress.graph.rebuild import rebuild


def check_layer_names(model: keras.Model, names) -> None:
    known = {layer.name for layer in model_layers(model)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise UnsupportedLayerError(
            f"no layer named {', '.join(map(repr, unknown))} in model {model.name!r}; "
            f"run `edgecompress inspect MODEL` to list its layers"
        )


def compress_model(model: keras.Model, choices: Mapping[str, tuple[str, Rank]],
                   fold_bn: bool = True) -> keras.Model:
    """A new model with each layer in `choices` ({name: (method, rank)}) replaced by its factorized block.

    BatchNormalization layers that directly follow a conv/dense are folded first (exact in inference mode).
    Raises UnsupportedLayerError / InvalidRankError naming the layer when a choice cannot be applied.
    """
    check_layer_names(model, choices)
    if fold_bn:
        model, _ = fold_batchnorm(model)
    infos = {info.name: info for info in describe(model)}
    layers = {layer.name: layer for layer in model_layers(model)}
    substitutes = {}
    for name, (method, rank) in choices.items():
        kernel, bias = layer_weights(layers[name])
        substitutes[name] = factorize(infos[name], kernel, bias, method, rank)
    return rebuild(model, substitutes)


def check_finite_weights(model: keras.Model) -> None:
    """Raise UnsupportedLayerError naming the first candidate layer whose weights hold NaN or Inf."""
    from edgecompress.factorize.base import check_finite

    layers = {layer.name: layer for layer in model_layers(model)}
    for info in describe(model):
        if info.kind is not None:
            check_finite(info, list(layer_weights(layers[info.name])))


def check_labels(model: keras.Model, y, source: str) -> None:
    """Labels must index the model's outputs: a DataError naming the file and the class count otherwise."""
    from edgecompress.errors import DataError

    classes = model.outputs[0].shape[-1]
    if y is not None and classes and len(y) and int(y.max()) >= classes:
        raise DataError(f"{source}: label {int(y.max())} is out of range for a model with {classes} outputs; "
                        f"labels must be integers in 0..{classes - 1}")
