"""Params and FLOPs of built Keras layers, counted from their configs and shapes.

Convention: FLOPs = 2 x multiply-accumulates of the conv/dense/depthwise contractions (1 MAC = 2 FLOPs);
bias adds, batch norm and activations are not counted. Params are `count_params()` (weights incl. bias).
"""
from __future__ import annotations

from typing import Callable, Sequence

import keras

from edgecompress.graph.shapes import prod

Shape = Sequence[int | None]


def _conv_flops(layer, in_shape: Shape, out_shape: Shape) -> int:
    cin = in_shape[-1]
    kernel_positions = prod(layer.kernel_size)
    groups = getattr(layer, "groups", 1) or 1
    return 2 * prod(out_shape[1:-1]) * kernel_positions * (cin // groups) * layer.filters


def _conv_transpose_flops(layer, in_shape: Shape, out_shape: Shape) -> int:
    return 2 * prod(in_shape[1:-1]) * prod(layer.kernel_size) * in_shape[-1] * layer.filters


def _depthwise_flops(layer, in_shape: Shape, out_shape: Shape) -> int:
    return 2 * prod(out_shape[1:-1]) * prod(layer.kernel_size) * in_shape[-1] * layer.depth_multiplier


def _separable_flops(layer, in_shape: Shape, out_shape: Shape) -> int:
    cin = in_shape[-1]
    depthwise = prod(out_shape[1:-1]) * prod(layer.kernel_size) * cin * layer.depth_multiplier
    pointwise = prod(out_shape[1:-1]) * cin * layer.depth_multiplier * layer.filters
    return 2 * (depthwise + pointwise)


def _dense_flops(layer, in_shape: Shape, out_shape: Shape) -> int:
    return 2 * prod(in_shape[1:-1]) * in_shape[-1] * layer.units


# Order matters: subclasses before their bases (SeparableConv and transposes are not BaseConv in
# Keras 3, but a user subclass of Conv2D is, and is counted like one).
_FLOP_RULES: list[tuple[type, Callable]] = [
    (keras.layers.Conv1DTranspose, _conv_transpose_flops),
    (keras.layers.Conv2DTranspose, _conv_transpose_flops),
    (keras.layers.Conv3DTranspose, _conv_transpose_flops),
    (keras.layers.SeparableConv1D, _separable_flops),
    (keras.layers.SeparableConv2D, _separable_flops),
    (keras.layers.DepthwiseConv1D, _depthwise_flops),
    (keras.layers.DepthwiseConv2D, _depthwise_flops),
    (keras.layers.Conv1D, _conv_flops),
    (keras.layers.Conv2D, _conv_flops),
    (keras.layers.Conv3D, _conv_flops),
    (keras.layers.Dense, _dense_flops),
]


def layer_flops(layer, in_shape: Shape, out_shape: Shape) -> int:
    """FLOPs of one call of `layer`; layers of ours answer through `count_flops(in_shape)`."""
    if hasattr(layer, "count_flops"):
        return int(layer.count_flops(in_shape))
    for cls, rule in _FLOP_RULES:
        if isinstance(layer, cls):
            return int(rule(layer, in_shape, out_shape))
    return 0


def chain_cost(layers: Sequence[keras.layers.Layer], in_shape: Shape) -> tuple[int, int]:
    """(params, flops) of layers applied one after another to an input of `in_shape` (with batch)."""
    params = flops = 0
    shape = tuple(in_shape)
    for layer in layers:
        if not layer.built:
            layer.build(shape)
        out_shape = tuple(layer.compute_output_shape(shape))
        params += layer.count_params()
        flops += layer_flops(layer, shape, out_shape)
        shape = out_shape
    return params, flops
