"""What SVD and QR share: a layer that is a matrix (Dense, or a 1x1 conv) split into two matrix factors."""
from __future__ import annotations

import numpy as np

from edgecompress.factorize import blocks
from edgecompress.factorize.base import Cost, Method

MATRIX_KINDS = frozenset({"dense", "conv1d", "conv2d", "conv3d"})


def as_matrix(kernel: np.ndarray) -> np.ndarray:
    """A Dense kernel or a 1x1 conv kernel (1.., Cin, Cout) as a (Cin, Cout) matrix."""
    return kernel.reshape(kernel.shape[-2], kernel.shape[-1])


def pointwise_problem(layer) -> str | None:
    if layer.is_pointwise:
        return None
    return f"kernel {layer.kernel_size} is not 1x1: matrix methods apply to Dense and pointwise convs"


class TwoFactorMethod(Method):
    """x -> x A (rank r, no bias) -> (x A) B (bias, activation); strides go on the first factor."""

    kinds = MATRIX_KINDS

    def shape_problem(self, layer):
        return pointwise_problem(layer)

    def full_rank(self, layer):
        return (min(layer.in_channels, layer.out_channels),)

    def cost(self, layer, rank) -> Cost:
        (rank_value,) = self.resolve(layer, rank)
        chain = blocks.CostChain(layer)
        chain.pointwise(layer, layer.in_channels, rank_value, layer.strides or None, layer.padding)
        chain.pointwise(layer, rank_value, layer.out_channels, bias=layer.use_bias)
        return chain.cost()

    def build(self, layer, factors):
        (rank_value,) = factors.rank
        name = lambda i: blocks.block_name(layer, self.name, i)  # noqa: E731
        first = blocks.pointwise(layer, name(0), rank_value, layer.strides or None, layer.padding)
        second = blocks.pointwise(layer, name(1), layer.out_channels, **blocks.last_factor_args(layer))
        return blocks.assemble([
            (first, [blocks.pointwise_kernel(layer, factors.arrays["first"])]),
            (second, blocks.with_bias([blocks.pointwise_kernel(layer, factors.arrays["second"])], factors.bias)),
        ], layer.input_shape)
