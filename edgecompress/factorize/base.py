"""The interface every factorization method implements, the registry that finds them, and the Factors format.

A method is one file: `decompose()` returns plain numpy factors, `build()` turns them into Keras layers,
`cost()` answers analytically from the layer's shapes and the rank, touching no weights.
"""
from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import tensorly
from threadpoolctl import threadpool_limits

from edgecompress.errors import ConfigError, UnsupportedLayerError
from edgecompress.factorize.ranks import Rank, resolve_rank
from edgecompress.graph.layers import LayerInfo

# Rank fractions tried when listing candidate ranks; the DSE bisects over this grid.
RANK_FRACTIONS = tuple(np.round(np.linspace(0.02, 1.0, 50), 4))
# Iterations per rank an iterative method (CP's ALS) runs for the search, warm-started from the last rank.
SEARCH_ITERATIONS = 10


@dataclass(frozen=True)
class Cost:
    """Params (weights incl. bias) and FLOPs (2 x MACs, bias and activation excluded) of one call."""

    params: int
    flops: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.flops + other.flops)

    def cheaper_than(self, other: "Cost") -> bool:
        return self.params < other.params and self.flops <= other.flops


@dataclass
class Factors:
    """Plain factors of one layer: named numpy arrays, the resolved rank, and the bias (or None)."""

    method: str
    rank: tuple[int, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    bias: np.ndarray | None = None


class Method(ABC):
    """Base of the six methods. Subclasses set `name`, `kinds` and implement the five hooks below."""

    name: str = ""
    kinds: frozenset[str] = frozenset()
    # Tensor methods on a 1x1 conv factor a matrix at more cost than SVD for the same fit: not offered there.
    spatial_kernels_only: bool = False
    # Matrix methods factor a (Cin, Cout) matrix: Dense layers and 1x1 convs only.
    pointwise_only: bool = False
    # Each rank entry is the channel count of a feature map inside the block, so a runtime's channel tile applies
    # to it (ranks(layer, multiple)); False where ranks are internal, e.g. TT-matrix cores reshaped between ops.
    ranks_are_channels: bool = True
    # The block loses full-int8 fidelity that the other methods keep (each intermediate map gets one per-tensor
    # activation scale): hybrid leaves it out when asked for int8-faithful plans (CompressConfig.int8_faithful).
    int8_fragile: bool = False

    # --- hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def full_rank(self, layer: LayerInfo) -> tuple[int, ...]:
        """The largest rank per mode; at it the block reconstructs the layer exactly."""

    @abstractmethod
    def cost(self, layer: LayerInfo, rank: Rank) -> Cost:
        """Params and FLOPs of the block at `rank`, from shapes alone."""

    @abstractmethod
    def decompose(self, layer: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None, rank: Rank) -> Factors:
        """Plain numpy factors of the layer's weights at `rank` (a library decomposition)."""

    @abstractmethod
    def build(self, layer: LayerInfo, factors: Factors) -> list:
        """Keras layers, built and holding the factors, to be called one after another."""

    # --- hooks with defaults: what the search and the baselines need to know of a method's format ----------
    def search_factors(self, layer: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None, rank: Rank,
                       state: dict) -> Factors:
        """Factors at `rank` for the search to score, as cheaply as the format allows. `state` is this method's
        scratch space for this layer, kept across calls (one full decomposition to truncate, a warm start);
        it arrives with "search_iterations" for iterative methods. Default: decompose()."""
        return self.decompose(layer, kernel, bias, rank)

    def final_factors(self, layer: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None, rank: Rank,
                      state: dict) -> Factors:
        """Factors at the chosen `rank` for the compressed model (the same `state` as the search's)."""
        return self.decompose(layer, kernel, bias, rank)

    def kernel_from_factors(self, layer: LayerInfo, factors: Factors) -> np.ndarray | None:
        """The (k..., Cin, Cout) kernel the built block applies, dilation not spread, from the factors with numpy;
        None when the format has no such shortcut (the search then probes the built block)."""
        return None

    def unfoldings(self, layer: LayerInfo, kernel: np.ndarray) -> list[np.ndarray]:
        """The matrices whose ranks set this method's rank, one per entry of the rank tuple (the VBMF and energy
        baselines read their spectra). Default: the kernel's Cin and Cout unfoldings."""
        return [tensorly.unfold(kernel, kernel.ndim - 2), tensorly.unfold(kernel, kernel.ndim - 1)]

    def rank_from_unfoldings(self, layer: LayerInfo, per_unfolding: Sequence[int]) -> tuple[int, ...]:
        """This method's rank from one rank per unfolding (default: the tuple as is)."""
        return tuple(int(r) for r in per_unfolding)

    def search_work(self, layer: LayerInfo, rank: Rank) -> float:
        """Multiply-accumulates of one search decomposition at `rank`; 0 where that is negligible (SVD-based)."""
        return 0.0

    def shape_problem(self, layer: LayerInfo) -> str | None:
        """Method-specific reason the layer does not fit (e.g. not pointwise); None when it does."""
        return None

    # --- data-aware hooks: fitting the block to the layer's outputs (factorize/datafit.py, select/factorcache.py) --
    # A method whose block starts with one linear map of the input channels says so: data-aware decomposition then
    # whitens the kernel's input-channel mode by the calibration inputs' second moment, decomposes, and folds the
    # inverse whitening into that first factor (map_input_channels).
    whitens_inputs: bool = False

    def map_input_channels(self, factors: Factors, back: np.ndarray) -> Factors:
        """The factors of the block that first maps its input channels by `back` (Cin, Cin): x -> x back, folded
        into the input-side factor. Needed where `whitens_inputs`."""
        raise NotImplementedError(f"{self.name} does not say how to map its input channels")

    def output_factor(self, factors: Factors) -> np.ndarray | None:
        """The (r, Cout) matrix of the block's last linear factor (which carries bias and activation), or None
        when the format has no such factor; the final refit solves for it by least squares."""
        return None

    def with_output_factor(self, factors: Factors, matrix: np.ndarray, bias: np.ndarray | None) -> Factors:
        """The factors with the last linear factor replaced by `matrix` (r, Cout) and the bias by `bias`."""
        raise NotImplementedError(f"{self.name} has no output factor to replace")

    # --- shared behaviour ----------------------------------------------------------------------
    def resolve(self, layer: LayerInfo, rank: Rank) -> tuple[int, ...]:
        return resolve_rank(rank, self.full_rank(layer), layer.name, self.name)

    def original_cost(self, layer: LayerInfo) -> Cost:
        return Cost(layer.params, layer.flops)

    def why_not(self, layer: LayerInfo) -> str | None:
        """None when the method can be offered for this layer, else the reason."""
        if layer.reason:
            return layer.reason
        if layer.kind not in self.kinds:
            return f"{self.name} applies to {', '.join(sorted(self.kinds))} layers, not {layer.kind}"
        if self.spatial_kernels_only and layer.kind != "dense" and layer.is_pointwise:
            return (f"a 1x1 conv is a matrix: a {self.name} block fits it no better than SVD at the same rank and "
                    f"costs more; svd/qr/ttm factorize it")
        if self.pointwise_only and not layer.is_pointwise:
            return f"kernel {layer.kernel_size} is not 1x1: {self.name} applies to Dense and pointwise convs"
        problem = self.shape_problem(layer)
        if problem:
            return problem
        return self._not_cheaper_at_rank_1(layer)

    def _not_cheaper_at_rank_1(self, layer: LayerInfo) -> str | None:
        """Why even the rank-1 block does not pay, naming the cost that fails (params, FLOPs or both)."""
        smallest, original = self.cost(layer, 1), self.original_cost(layer)
        if smallest.cheaper_than(original):
            return None
        failing = []
        if smallest.params >= original.params:
            failing.append(f"{smallest.params} params vs the layer's {original.params}")
        if smallest.flops > original.flops:
            failing.append(f"{smallest.flops} FLOPs vs the layer's {original.flops}")
        return f"{self.name} block is not cheaper than the layer even at rank 1: {' and '.join(failing)}"

    def rank_problem(self, layer: LayerInfo, rank: Rank) -> str | None:
        """None when `rank` gives a block cheaper than the layer, else why it is not offered."""
        block = self.cost(layer, rank)
        if block.cheaper_than(self.original_cost(layer)):
            return None
        return (f"{self.name} at rank {self.resolve(layer, rank)} costs {block.params} params / "
                f"{block.flops} FLOPs, not below the layer's {layer.params} / {layer.flops}")

    def ranks(self, layer: LayerInfo, multiple: int = 1) -> list[tuple[int, ...]]:
        """Candidate ranks whose block is cheaper than the layer, cheapest first. With `multiple` > 1 (the
        runtime's channel tile), entries of at least one tile are rounded down to a whole number of tiles:
        a channel past a multiple costs a whole tile of time, one below saves none."""
        seen: dict[tuple[int, ...], Cost] = {}
        for fraction in RANK_FRACTIONS:
            rank = self.resolve(layer, float(fraction))
            if multiple > 1 and self.ranks_are_channels:
                aligned = align_rank(rank, multiple)
                rank = aligned if self.rank_problem(layer, aligned) is None else rank
            if rank not in seen and self.rank_problem(layer, rank) is None:
                seen[rank] = self.cost(layer, rank)
        return sorted(seen, key=lambda r: (seen[r].params, seen[r].flops))


def align_rank(rank: Sequence[int], multiple: int) -> tuple[int, ...]:
    """Each entry of at least `multiple` rounded down to a multiple of it; smaller entries as they are."""
    return tuple(r - r % multiple if r >= multiple else r for r in rank)


_REGISTRY: dict[str, Method] = {}


def _one_blas_thread(decompose: Callable) -> Callable:
    """Decompositions run with one BLAS thread: with TensorFlow's threads (or anything else) on the other core,
    multi-threaded OpenBLAS spins; measured on 2 cores: SVD of 4096x1024 8.5 s -> 2.0 s, Tucker-2 of
    3x3x256x256 14 s -> 1.0 s (bench/decompose_speed.py)."""

    @functools.wraps(decompose)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return decompose(*args, **kwargs)

    return wrapper


def replaced(factors: Factors, bias: np.ndarray | None = None, **arrays: np.ndarray) -> Factors:
    """A copy of `factors` with some arrays (and the bias, when given) replaced; the original is not changed."""
    return Factors(factors.method, factors.rank, {**factors.arrays, **arrays},
                   factors.bias if bias is None else bias)


def sequential_unfoldings(tensor: np.ndarray) -> list[np.ndarray]:
    """(n1, n2...n_d), (n1 n2, n3...n_d), ...: the unfoldings whose ranks a tensor train's TT-SVD sets."""
    return [tensor.reshape(math.prod(tensor.shape[:k]), -1) for k in range(1, tensor.ndim)]


def register(name: str) -> Callable[[type], type]:
    """Class decorator: `@register("tucker")` makes the method available under that name."""

    def decorate(cls: type) -> type:
        cls.name = name
        for hook in ("decompose", "search_factors", "final_factors"):
            if hook in vars(cls):
                setattr(cls, hook, _one_blas_thread(vars(cls)[hook]))
        _REGISTRY[name] = cls()
        return cls

    return decorate


def registry() -> dict[str, Method]:
    return dict(_REGISTRY)


def get(name: str) -> Method:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def check_finite(layer: LayerInfo, arrays: Sequence[np.ndarray | None]) -> None:
    for array in arrays:
        if array is not None and not np.all(np.isfinite(array)):
            raise UnsupportedLayerError(
                f"layer {layer.name!r} has NaN or Inf weights; retrain or repair the model before compressing"
            )
