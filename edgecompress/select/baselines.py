"""Rank-selection baselines behind one interface: each maps (layer, method, kernel, knob) to a rank.

- vbmf: analytic empirical VBMF (Nakajima et al., JMLR 2013) on the unfoldings whose ranks the method
  uses; knob scales those ranks (1.0 = pure VBMF; with a budget, scaled down or up to meet it, so it is
  compared at the same params as the others).
- energy: the smallest rank per unfolding keeping a `knob` fraction of the singular-value energy.
- uniform: the same rank fraction `knob` for every layer.
Each method names the unfoldings whose ranks set its rank (`Method.unfoldings`, `Method.rank_from_unfoldings`).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.optimize

from edgecompress.errors import UnsupportedLayerError
from edgecompress.factorize import get
from edgecompress.graph.layers import LayerInfo

DEFAULT_KNOBS = {"vbmf": 1.0, "energy": 0.9, "uniform": 0.25}
# With --methods hybrid, a baseline needs one method per layer: the classic Tucker-2 for convs, SVD for matrices.
HYBRID_DEFAULT = {"conv": "tucker", "matrix": "svd"}


def hybrid_method(info: LayerInfo) -> str:
    return HYBRID_DEFAULT["matrix" if info.is_pointwise else "conv"]


def singular_values(unfoldings: list[np.ndarray]) -> list[np.ndarray]:
    return [np.linalg.svd(m.astype(np.float64), compute_uv=False) for m in unfoldings]


def energy_rank(values: np.ndarray, fraction: float) -> int:
    energy = np.cumsum(values ** 2)
    return int(np.searchsorted(energy, fraction * energy[-1] - 1e-12 * energy[-1]) + 1)


def _evb_objective(sigma2: float, rows: int, cols: int, values: np.ndarray, residual: float, x_bar: float) -> float:
    alpha = rows / cols
    x = values ** 2 / (cols * sigma2)
    big, small = x[x > x_bar], x[x <= x_bar]
    tau = 0.5 * (big - (1 + alpha) + np.sqrt((big - (1 + alpha)) ** 2 - 4 * alpha))
    return float(np.sum(small - np.log(small)) + np.sum(big - tau) + np.sum(np.log((tau + 1) / big))
                 + alpha * np.sum(np.log(tau / alpha + 1)) + residual / (cols * sigma2)
                 + (rows - len(values)) * np.log(sigma2))


def evbmf_rank(values: np.ndarray, shape: tuple[int, int]) -> int:
    """Rank EVBMF keeps for a matrix of `shape` with singular `values` (noise variance estimated too)."""
    rows, cols = sorted(shape)
    values = np.asarray(values[:rows], dtype=np.float64)
    alpha = rows / cols
    tau_bar = 2.5129 * math.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    bound_index = int(min(math.ceil(rows / (1 + alpha)) - 1, rows)) - 1
    upper = float(np.sum(values ** 2)) / (rows * cols)
    tail = values[bound_index + 1:] if bound_index + 1 < len(values) else values[-1:]
    lower = max(float(tail[0] ** 2) / (cols * x_bar), float(np.mean(tail ** 2)) / cols)
    if not upper > lower > 0:
        return 1
    sigma2 = scipy.optimize.minimize_scalar(_evb_objective, args=(rows, cols, values, 0.0, x_bar),
                                            bounds=(lower, upper), method="bounded").x
    threshold = math.sqrt(cols * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(1, int(np.sum(values > threshold)))


class LayerBasis:
    """One layer's singular values for one method, computed once and reused for every knob value."""

    def __init__(self, info: LayerInfo, method: str, kernel: np.ndarray):
        self.info, self.method = info, method
        unfoldings = get(method).unfoldings(info, kernel)
        self.shapes = [m.shape for m in unfoldings]
        self.values = singular_values(unfoldings)
        self._vbmf: list[int] | None = None

    def vbmf(self) -> list[int]:
        if self._vbmf is None:
            self._vbmf = [evbmf_rank(v, s) for v, s in zip(self.values, self.shapes)]
        return self._vbmf

    def rank(self, select: str, knob: float) -> tuple[int, ...]:
        method = get(self.method)
        if select == "uniform":
            return method.resolve(self.info, float(knob))
        if select == "energy":
            per_mode = [energy_rank(v, knob) for v in self.values]
        elif select == "vbmf":
            per_mode = [max(1, int(round(r * knob))) for r in self.vbmf()]
        else:
            raise UnsupportedLayerError(f"unknown rank selection {select!r}; use similarity, vbmf, energy or uniform")
        full = method.full_rank(self.info)
        return tuple(int(min(r, f)) for r, f in zip(method.rank_from_unfoldings(self.info, per_mode), full))

    def choice(self, select: str, knob: float) -> tuple[tuple[int, ...] | None, str | None]:
        """(rank, None) when the block is cheaper than the layer, else (None, reason)."""
        rank = self.rank(select, knob)
        problem = get(self.method).rank_problem(self.info, rank)
        return (None, f"{select}: {problem}") if problem else (rank, None)


def knob_cost(bases: dict[str, LayerBasis], select: str, knob: float, kind: str) -> int:
    total = 0
    for basis in bases.values():
        rank, _ = basis.choice(select, knob)
        cost = get(basis.method).cost(basis.info, rank) if rank else None
        total += getattr(cost, kind) if cost else getattr(basis.info, kind)
    return total


VBMF_MAX_SCALE = 64.0


def knob_for_budget(bases: dict[str, LayerBasis], select: str, kind: str, limit: int,
                    steps: int = 30) -> float | None:
    """The largest knob whose choices cost <= limit (cost is non-decreasing in the knob): in (0, 1], or for
    vbmf up to VBMF_MAX_SCALE, so that its ranks use the budget like every other selection's."""
    high = VBMF_MAX_SCALE if select == "vbmf" else 1.0
    if knob_cost(bases, select, high, kind) <= limit:
        return high
    low = 0.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (middle, high) if knob_cost(bases, select, middle, kind) <= limit else (low, middle)
    return low if low > 0 and knob_cost(bases, select, low, kind) <= limit else None
