"""What SVD and QR share: a layer that is a matrix (Dense, or a 1x1 conv) split into two matrix factors."""
from __future__ import annotations

import numpy as np

from edgecompress.factorize import blocks
from edgecompress.factorize.base import Cost, Factors, Method, replaced

MATRIX_KINDS = frozenset({"dense", "conv1d", "conv2d", "conv3d"})


def as_matrix(kernel: np.ndarray) -> np.ndarray:
    """A Dense kernel or a 1x1 conv kernel (1.., Cin, Cout) as a (Cin, Cout) matrix."""
    return kernel.reshape(kernel.shape[-2], kernel.shape[-1])


def as_pointwise_kernel(matrix: np.ndarray, layer) -> np.ndarray:
    """A (Cin, Cout) matrix as the kernel of the layer's kind: (1.., Cin, Cout)."""
    return matrix.reshape((1,) * len(layer.kernel_size) + matrix.shape)


class TwoFactorMethod(Method):
    """x -> x A (rank r, no bias) -> (x A) B (bias, activation); strides go on the first factor."""

    kinds = MATRIX_KINDS
    pointwise_only = True
    whitens_inputs = True

    def full_rank(self, layer):
        return (min(layer.in_channels, layer.out_channels),)

    def search_factors(self, layer, kernel, bias, rank, state) -> Factors:
        """The first r columns of A and rows of B of one full-rank decomposition: exactly decompose() at rank r
        for SVD and for column-pivoted QR."""
        if "full" not in state:
            state["full"] = self.decompose(layer, kernel, bias, self.full_rank(layer))
        (rank_value,) = self.resolve(layer, rank)
        arrays = state["full"].arrays
        truncated = {"first": arrays["first"][:, :rank_value], "second": arrays["second"][:rank_value]}
        return Factors(self.name, (rank_value,), truncated, bias)

    def final_factors(self, layer, kernel, bias, rank, state) -> Factors:
        return self.search_factors(layer, kernel, bias, rank, state)

    def map_input_channels(self, factors, back):
        return replaced(factors, first=back @ factors.arrays["first"])

    def output_factor(self, factors):
        return factors.arrays["second"]

    def with_output_factor(self, factors, matrix, bias):
        return replaced(factors, bias, second=matrix)

    def kernel_from_factors(self, layer, factors):
        return as_pointwise_kernel(factors.arrays["first"] @ factors.arrays["second"], layer)

    def unfoldings(self, layer, kernel):
        return [as_matrix(kernel)]

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
