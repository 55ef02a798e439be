"""Building bricks shared by the methods: builtin Keras layers per layer kind, analytic cost chains,
and putting factor arrays into built layers. Nothing here decomposes anything."""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from edgecompress.factorize.base import Cost
from edgecompress.factorize.layers import depthwise_flops
from edgecompress.graph.layers import LayerInfo
from edgecompress.graph.shapes import conv_out_shape, prod

CONV_CLASSES = {"conv1d": keras.layers.Conv1D, "conv2d": keras.layers.Conv2D, "conv3d": keras.layers.Conv3D}
DEPTHWISE_CLASSES = {"conv1d": keras.layers.DepthwiseConv1D, "conv2d": keras.layers.DepthwiseConv2D}


def block_name(layer: LayerInfo, method: str, index: int) -> str:
    return f"{layer.name}_{method}_{index}"


def last_factor_args(layer: LayerInfo) -> dict:
    """Bias and activation live on a block's last factor only, so converters fuse them into it."""
    return {"use_bias": layer.use_bias, "activation": layer.activation}


def conv(layer: LayerInfo, name: str, filters: int, kernel_size: Sequence[int], strides=None,
         dilation=None, padding: str = "valid", use_bias: bool = False, activation=None):
    ndim = len(layer.kernel_size)
    return CONV_CLASSES[layer.kind](
        filters=filters,
        kernel_size=tuple(kernel_size),
        strides=tuple(strides or (1,) * ndim),
        dilation_rate=tuple(dilation or (1,) * ndim),
        padding=padding,
        use_bias=use_bias,
        activation=activation,
        name=name,
    )


def pointwise(layer: LayerInfo, name: str, filters: int, strides=None, padding: str = "valid",
              use_bias: bool = False, activation=None):
    """A matrix applied per position: Dense for dense layers, a 1x1 conv for conv layers."""
    if layer.kind == "dense":
        return keras.layers.Dense(filters, use_bias=use_bias, activation=activation, name=name)
    ones = (1,) * len(layer.kernel_size)
    return conv(layer, name, filters, ones, strides=strides, padding=padding, use_bias=use_bias,
                activation=activation)


def axis_only(values: Sequence[int], axis: int, fill: int = 1) -> tuple[int, ...]:
    """(k0, k1, k2), axis=1 -> (1, k1, 1): a per-axis kernel/stride/dilation."""
    return tuple(v if i == axis else fill for i, v in enumerate(values))


class CostChain:
    """Accumulates params and FLOPs of factors applied in sequence, tracking the spatial shape."""

    def __init__(self, layer: LayerInfo):
        self.spatial = tuple(layer.input_shape[:-1])
        self.params = 0
        self.flops = 0

    def conv(self, kernel, cin, cout, strides=None, dilation=None, padding="valid", bias=False,
             depthwise=False) -> "CostChain":
        ndim = len(kernel)
        if ndim:
            self.spatial = conv_out_shape(self.spatial, kernel, strides or (1,) * ndim,
                                          dilation or (1,) * ndim, padding)
        weights = prod(kernel) * (1 if depthwise else cin) * cout
        self.params += weights + (cout if bias else 0)
        self.flops += 2 * prod(self.spatial) * weights
        return self

    def depthwise(self, kernel, channels, strides, dilation, padding) -> "CostChain":
        """A 2-D (or 1-D) depthwise conv run as depthwise_any_strides runs it."""
        flops, self.spatial = depthwise_flops(self.spatial, kernel, strides, dilation, padding, channels)
        self.params += prod(kernel) * channels
        self.flops += flops
        return self

    def pointwise(self, layer: LayerInfo, cin, cout, strides=None, padding="valid", bias=False):
        """Dense over the leading dims, or a 1x1 conv (possibly strided) for conv layers."""
        kernel = (1,) * len(layer.kernel_size)
        return self.conv(kernel, cin, cout, strides=strides, padding=padding, bias=bias)

    def add(self, params: int, flops: int) -> "CostChain":
        self.params += params
        self.flops += flops
        return self

    def cost(self) -> Cost:
        return Cost(int(self.params), int(self.flops))


def assemble(layers_and_weights: Sequence[tuple[keras.layers.Layer, list[np.ndarray]]],
             input_shape: Sequence[int | None]) -> list[keras.layers.Layer]:
    """Build each layer on the shape its predecessor produces and load its weights."""
    shape = (None,) + tuple(input_shape)
    layers = []
    for layer, weights in layers_and_weights:
        layer.build(shape)
        layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
        shape = tuple(layer.compute_output_shape(shape))
        layers.append(layer)
    return layers


def with_bias(weights: list[np.ndarray], bias: np.ndarray | None) -> list[np.ndarray]:
    return weights + ([bias] if bias is not None else [])


def pointwise_kernel(layer: LayerInfo, matrix: np.ndarray) -> np.ndarray:
    """A (cin, cout) matrix as the kernel of a Dense or 1x1 conv of this layer's kind."""
    ones = (1,) * len(layer.kernel_size)
    return matrix.reshape(ones + matrix.shape)
