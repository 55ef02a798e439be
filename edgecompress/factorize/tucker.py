"""Tucker-2 on a conv kernel's channel modes: 1x1 (Cin->R1), kxk core (R1->R2), 1x1 (R2->Cout)."""
from __future__ import annotations

import warnings

import numpy as np
from tensorly.decomposition import partial_tucker

from edgecompress.factorize import blocks
from edgecompress.factorize.base import Cost, Factors, Method, register


@register("tucker")
class Tucker(Method):
    kinds = frozenset({"conv1d", "conv2d", "conv3d"})
    spatial_kernels_only = True

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
