"""TT-matrix (t3f format) of a dense kernel or a 1x1 conv's: input and output dims split into d modes each,
the (n_1..n_d, m_1..m_d) tensor decomposed by TT-SVD (tensorly), run by our TTMatrixDense layer."""
from __future__ import annotations

import math

import numpy as np
from tensorly.decomposition import tensor_train_matrix
from tensorly.tt_matrix import tt_matrix_to_tensor

from edgecompress.factorize import blocks, matrix
from edgecompress.factorize.base import Cost, Factors, Method, register, sequential_unfoldings
from edgecompress.factorize.layers import TTMatrixDense, ttm_macs_per_row
from edgecompress.factorize.ranks import feasible_tt_ranks

MAX_CORES = 3


def prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors + ([n] if n > 1 else [])


def split_dim(n: int, parts: int) -> tuple[int, ...]:
    """n as `parts` balanced factors (largest prime factors placed first on the smallest part), e.g. 256, 3 -> (8, 8, 4)."""
    buckets = [1] * parts
    for p in sorted(prime_factors(n), reverse=True):
        buckets[buckets.index(min(buckets))] *= p
    return tuple(sorted(buckets, reverse=True))


def tt_modes(n_in: int, n_out: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Number of cores: as many as both dims allow, up to MAX_CORES."""
    cores = max(2, min(MAX_CORES, len(prime_factors(n_in)), len(prime_factors(n_out))))
    return split_dim(n_in, cores), split_dim(n_out, cores)


def full_ranks(in_modes, out_modes) -> tuple[int, ...]:
    sizes = [n * m for n, m in zip(in_modes, out_modes)]
    return tuple(min(math.prod(sizes[:k]), math.prod(sizes[k:])) for k in range(1, len(sizes)))


@register("ttm")
class TTMatrix(Method):
    kinds = matrix.MATRIX_KINDS
    pointwise_only = True
    ranks_are_channels = False  # TT ranks sit inside reshaped cores, not on a feature map's channel axis

    def modes(self, layer):
        return tt_modes(layer.in_channels, layer.out_channels)

    def shape_problem(self, layer):
        in_modes, out_modes = self.modes(layer)
        if sum(n * m > 1 for n, m in zip(in_modes, out_modes)) < 2:
            return f"{layer.in_channels}x{layer.out_channels} does not split into two or more TT-matrix modes"
        return None

    def full_rank(self, layer):
        return full_ranks(*self.modes(layer))

    def resolve(self, layer, rank):
        in_modes, out_modes = self.modes(layer)
        sizes = [n * m for n, m in zip(in_modes, out_modes)]
        return feasible_tt_ranks(super().resolve(layer, rank), sizes)

    def cost(self, layer, rank) -> Cost:
        ranks = (1,) + self.resolve(layer, rank) + (1,)
        in_modes, out_modes = self.modes(layer)
        params = sum(ranks[k] * n * m * ranks[k + 1] for k, (n, m) in enumerate(zip(in_modes, out_modes)))
        params += layer.out_channels if layer.use_bias else 0
        positions = blocks.CostChain(layer).pointwise(layer, 1, 1, layer.strides or None).spatial
        flops = 2 * math.prod(p for p in positions if p is not None) * ttm_macs_per_row(in_modes, out_modes, ranks)
        return Cost(int(params), int(flops))

    def decompose(self, layer, kernel, bias, rank) -> Factors:
        ranks = (1,) + self.resolve(layer, rank) + (1,)
        in_modes, out_modes = self.modes(layer)
        tensor = matrix.as_matrix(kernel).astype(np.float64).reshape(in_modes + out_modes)
        cores = tensor_train_matrix(tensor, rank=list(ranks)).factors
        achieved = tuple(int(core.shape[-1]) for core in cores[:-1])
        return Factors(self.name, achieved, {f"core{k}": c for k, c in enumerate(cores)}, bias)

    def kernel_from_factors(self, layer, factors):
        cores = [factors.arrays[f"core{k}"] for k in range(len(factors.arrays))]
        weights = tt_matrix_to_tensor(cores).reshape(layer.in_channels, layer.out_channels)
        return matrix.as_pointwise_kernel(weights, layer)

    def unfoldings(self, layer, kernel):
        """The TT-SVD's unfoldings: the kernel as (n1 m1, n2 m2, ..., nd md), cut between cores."""
        in_modes, out_modes = self.modes(layer)
        tensor = matrix.as_matrix(kernel).reshape(in_modes + out_modes)
        count = len(in_modes)
        interleaved = [axis for pair in zip(range(count), range(count, 2 * count)) for axis in pair]
        paired = np.transpose(tensor, interleaved).reshape([n * m for n, m in zip(in_modes, out_modes)])
        return sequential_unfoldings(paired)

    def build(self, layer, factors):
        in_modes, out_modes = self.modes(layer)
        cores = [factors.arrays[f"core{k}"] for k in range(len(in_modes))]
        dense = TTMatrixDense(in_modes, out_modes, (1,) + factors.rank + (1,),
                              strides=layer.strides or None, name=blocks.block_name(layer, self.name, 0),
                              **blocks.last_factor_args(layer))
        return blocks.assemble([(dense, blocks.with_bias(cores, factors.bias))], layer.input_shape)
