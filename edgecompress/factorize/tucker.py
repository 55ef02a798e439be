"""Tucker-2 on a conv kernel's channel modes: 1x1 (Cin->R1), kxk core (R1->R2), 1x1 (R2->Cout).

The search scores the truncated HOSVD (leading singular vectors of the Cin and Cout unfoldings, core by
projection): exactly HOSVD at that rank, approximately the HOOI that decompose() runs for the final model.
"""
from __future__ import annotations

import warnings

import numpy as np
import tensorly
from tensorly.decomposition import partial_tucker

from edgecompress.factorize import blocks
from edgecompress.factorize.base import Cost, Factors, Method, register, replaced


@register("tucker")
class Tucker(Method):
    kinds = frozenset({"conv1d", "conv2d", "conv3d"})
    spatial_kernels_only = True
    whitens_inputs = True

    def full_rank(self, layer):
        return (layer.in_channels, layer.out_channels)

    def cost(self, layer, rank) -> Cost:
        rank_in, rank_out = self.resolve(layer, rank)
        chain = blocks.CostChain(layer)
        chain.pointwise(layer, layer.in_channels, rank_in)
        chain.conv(layer.kernel_size, rank_in, rank_out, layer.strides, layer.dilation, layer.padding)
        chain.pointwise(layer, rank_out, layer.out_channels, bias=layer.use_bias)
        return chain.cost()

    def decompose(self, layer, kernel, bias, rank) -> Factors:
        rank_in, rank_out = self.resolve(layer, rank)
        channel_modes = [kernel.ndim - 2, kernel.ndim - 1]
        with warnings.catch_warnings():  # tensorly warns when a rank equals a small mode's size
            warnings.simplefilter("ignore", UserWarning)
            (core, (u_in, u_out)), _ = partial_tucker(
                kernel.astype(np.float64), rank=[rank_in, rank_out], modes=channel_modes,
                init="svd", n_iter_max=20, random_state=0,
            )
        return Factors(self.name, (rank_in, rank_out), {"u_in": u_in, "core": core, "u_out": u_out}, bias)

    def search_factors(self, layer, kernel, bias, rank, state) -> Factors:
        if "bases" not in state:
            modes = (kernel.ndim - 2, kernel.ndim - 1)
            state["bases"] = tuple(leading_basis(tensorly.unfold(kernel, m)) for m in modes)
        rank_in, rank_out = self.resolve(layer, rank)
        u_in, u_out = state["bases"][0][:, :rank_in], state["bases"][1][:, :rank_out]
        core = np.tensordot(kernel, u_in, axes=([kernel.ndim - 2], [0]))  # (..., Cout, r_in)
        core = np.tensordot(core, u_out, axes=([kernel.ndim - 2], [0]))  # (..., r_in, r_out)
        return Factors(self.name, (rank_in, rank_out), {"u_in": u_in, "core": core, "u_out": u_out}, bias)

    def map_input_channels(self, factors, back):
        return replaced(factors, u_in=back @ factors.arrays["u_in"])

    def output_factor(self, factors):
        return factors.arrays["u_out"].T

    def with_output_factor(self, factors, matrix, bias):
        return replaced(factors, bias, u_out=matrix.T)

    def kernel_from_factors(self, layer, factors):
        arrays = factors.arrays
        return np.einsum("...ab,ia,ob->...io", arrays["core"], arrays["u_in"], arrays["u_out"], optimize=True)

    def build(self, layer, factors):
        rank_in, rank_out = factors.rank
        arrays = factors.arrays
        name = lambda i: blocks.block_name(layer, self.name, i)  # noqa: E731
        return blocks.assemble([
            (blocks.pointwise(layer, name(0), rank_in), [blocks.pointwise_kernel(layer, arrays["u_in"])]),
            (blocks.conv(layer, name(1), rank_out, layer.kernel_size, layer.strides, layer.dilation,
                         layer.padding), [arrays["core"]]),
            (blocks.pointwise(layer, name(2), layer.out_channels, **blocks.last_factor_args(layer)),
             blocks.with_bias([blocks.pointwise_kernel(layer, arrays["u_out"].T)], factors.bias)),
        ], layer.input_shape)


def leading_basis(matrix: np.ndarray) -> np.ndarray:
    """A complete orthonormal basis of the rows' space, leading singular vectors first (eigh of the Gram
    matrix: complete even when the matrix has fewer columns than rows, and small for wide unfoldings)."""
    values, vectors = np.linalg.eigh(matrix @ matrix.T)
    return vectors[:, np.argsort(values)[::-1]]
