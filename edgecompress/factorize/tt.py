"""Tensor-Train of a conv kernel over (Cin, k_1..k_d, Cout): 1x1 (Cin->r1), one full conv per spatial axis
with the kernel along that axis only (r_i -> r_i+1), 1x1 (r_last->Cout). A true TT, pure builtin convs."""
from __future__ import annotations

import math

import numpy as np
from tensorly.decomposition import tensor_train
from tensorly.tt_tensor import tt_to_tensor

from edgecompress.factorize import blocks
from edgecompress.factorize.base import Cost, Factors, Method, register, replaced, sequential_unfoldings
from edgecompress.factorize.ranks import feasible_tt_ranks


def tt_mode_sizes(layer) -> tuple[int, ...]:
    return (layer.in_channels,) + tuple(layer.kernel_size) + (layer.out_channels,)


@register("tt")
class TensorTrain(Method):
    kinds = frozenset({"conv1d", "conv2d", "conv3d"})
    spatial_kernels_only = True
    whitens_inputs = True

    def full_rank(self, layer):
        sizes = tt_mode_sizes(layer)
        return tuple(min(math.prod(sizes[:k]), math.prod(sizes[k:])) for k in range(1, len(sizes)))

    def resolve(self, layer, rank):
        return feasible_tt_ranks(super().resolve(layer, rank), tt_mode_sizes(layer))

    def cost(self, layer, rank) -> Cost:
        ranks = self.resolve(layer, rank)
        chain = blocks.CostChain(layer)
        chain.pointwise(layer, layer.in_channels, ranks[0])
        for axis, _ in enumerate(layer.kernel_size):
            chain.conv(blocks.axis_only(layer.kernel_size, axis), ranks[axis], ranks[axis + 1],
                       blocks.axis_only(layer.strides, axis), blocks.axis_only(layer.dilation, axis), layer.padding)
        chain.pointwise(layer, ranks[-1], layer.out_channels, bias=layer.use_bias)
        return chain.cost()

    def decompose(self, layer, kernel, bias, rank) -> Factors:
        ranks = self.resolve(layer, rank)
        channels_first = np.moveaxis(kernel.astype(np.float64), -2, 0)  # (Cin, k_1..k_d, Cout)
        cores = tensor_train(channels_first, rank=[1, *ranks, 1]).factors
        achieved = tuple(int(core.shape[-1]) for core in cores[:-1])
        return Factors(self.name, achieved, {f"core{i}": c for i, c in enumerate(cores)}, bias)

    def map_input_channels(self, factors, back):
        """core0 is (1, Cin, r1): its Cin rows take the map."""
        return replaced(factors, core0=(back @ factors.arrays["core0"][0])[None])

    def output_factor(self, factors):
        return factors.arrays[self._last_core(factors)][:, :, 0]

    def with_output_factor(self, factors, matrix, bias):
        return replaced(factors, bias, **{self._last_core(factors): matrix[:, :, None]})

    @staticmethod
    def _last_core(factors) -> str:
        return f"core{len(factors.arrays) - 1}"

    def kernel_from_factors(self, layer, factors):
        cores = [factors.arrays[f"core{i}"] for i in range(len(layer.kernel_size) + 2)]
        return np.moveaxis(tt_to_tensor(cores), 0, -2)

    def unfoldings(self, layer, kernel):
        return sequential_unfoldings(np.moveaxis(kernel, -2, 0))

    def build(self, layer, factors):
        ranks = factors.rank
        arrays = factors.arrays
        ndim = len(layer.kernel_size)
        name = lambda i: blocks.block_name(layer, self.name, i)  # noqa: E731
        parts = [(blocks.pointwise(layer, name(0), ranks[0]), [blocks.pointwise_kernel(layer, arrays["core0"][0])])]
        for axis, k in enumerate(layer.kernel_size):
            kernel_size = blocks.axis_only(layer.kernel_size, axis)
            core = arrays[f"core{axis + 1}"]  # (r_in, k, r_out)
            spatial_conv = blocks.conv(layer, name(axis + 1), ranks[axis + 1], kernel_size,
                                       blocks.axis_only(layer.strides, axis),
                                       blocks.axis_only(layer.dilation, axis), layer.padding)
            parts.append((spatial_conv, [np.transpose(core, (1, 0, 2)).reshape(kernel_size + core.shape[::2])]))
        last_core = arrays[f"core{ndim + 1}"][:, :, 0]  # (r_last, Cout)
        last = blocks.pointwise(layer, name(ndim + 1), layer.out_channels, **blocks.last_factor_args(layer))
        parts.append((last, blocks.with_bias([blocks.pointwise_kernel(layer, last_core)], factors.bias)))
        return blocks.assemble(parts, layer.input_shape)
