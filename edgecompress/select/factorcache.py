"""Decompositions of one layer's kernel per (method, rank), derived from a cheaper result where that is exact
or documented, so the search does not decompose a big kernel from scratch at every rank it tries.

- svd, qr: one full-rank decomposition; rank r is its first r columns/rows. Exact: the same arrays the
  method's own decompose() returns at rank r.
- tucker: search ranks use the truncated HOSVD (leading singular vectors of the Cin and Cout unfoldings,
  core by projection): exactly HOSVD at that rank, approximately the HOOI that tucker.decompose() runs;
  the chosen rank is decomposed again by tucker.decompose() for the final model.
- cp: search ranks run CP-ALS for a few iterations, warm-started from the nearest larger rank already
  computed (its strongest components) or from an SVD init; the final model refines the chosen rank for
  cp.CP_MAX_ITERATIONS more iterations from there. Each component's scale is spread evenly over its
  factors (same kernel, better-conditioned for fine-tuning; its effect on fine-tuned top-1 is not
  established: see the ResNet-20 note in bench/results/compress_table.md).
- any other method (tt, ttm, new ones): the method's own decompose(), already cheap for these.
"""
from __future__ import annotations

import warnings

import numpy as np
import tensorly
from tensorly.decomposition import parafac

from edgecompress.factorize import Factors, get
from edgecompress.factorize.cp import CP_MAX_ITERATIONS, CP_SEARCH_ITERATIONS
from edgecompress.graph.layers import LayerInfo


class FactorCache:
    """Factors for one layer; `search()` is fast, `final()` is what goes into the compressed model."""

    def __init__(self, info: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None,
                 cp_search_iterations: int = CP_SEARCH_ITERATIONS):
        self.info = info
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.bias = bias
        self.cp_search_iterations = cp_search_iterations
        self._full: dict[str, Factors] = {}
        self._hosvd: tuple[np.ndarray, np.ndarray] | None = None
        self._cp: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}
        self.decompositions = 0

    def search(self, method: str, rank) -> Factors:
        rank = get(method).resolve(self.info, rank)
        derive = {"svd": self._truncated_matrix, "qr": self._truncated_matrix, "tucker": self._truncated_hosvd,
                  "cp": self._cp_search}.get(method, self._decompose)
        return derive(method, rank)

    def final(self, method: str, rank) -> Factors:
        rank = get(method).resolve(self.info, rank)
        if method in ("svd", "qr"):
            return self._truncated_matrix(method, rank)
        if method == "cp":
            return self._cp_factors(rank[0], CP_MAX_ITERATIONS, refine=True)
        return self._decompose(method, rank)

    def _decompose(self, method: str, rank: tuple[int, ...]) -> Factors:
        self.decompositions += 1
        return get(method).decompose(self.info, self.kernel, self.bias, rank)

    def _truncated_matrix(self, method: str, rank: tuple[int, ...]) -> Factors:
        if method not in self._full:
            self._full[method] = self._decompose(method, get(method).full_rank(self.info))
        arrays = self._full[method].arrays
        (rank_value,) = rank
        truncated = {"first": arrays["first"][:, :rank_value], "second": arrays["second"][:rank_value]}
        return Factors(method, rank, truncated, self.bias)

    def _truncated_hosvd(self, method: str, rank: tuple[int, ...]) -> Factors:
        if self._hosvd is None:
            self.decompositions += 1
            modes = (self.kernel.ndim - 2, self.kernel.ndim - 1)
            self._hosvd = tuple(_leading_basis(tensorly.unfold(self.kernel, m)) for m in modes)
        u_in, u_out = self._hosvd[0][:, :rank[0]], self._hosvd[1][:, :rank[1]]
        core = np.tensordot(self.kernel, u_in, axes=([self.kernel.ndim - 2], [0]))  # (..., Cout, r_in)
        core = np.tensordot(core, u_out, axes=([self.kernel.ndim - 2], [0]))       # (..., r_in, r_out)
        return Factors(method, rank, {"u_in": u_in, "core": core, "u_out": u_out}, self.bias)

    def _cp_search(self, method: str, rank: tuple[int, ...]) -> Factors:
        return self._cp_factors(rank[0], self.cp_search_iterations, refine=False)

    def _cp_factors(self, rank_value: int, iterations: int, refine: bool) -> Factors:
        if refine or rank_value not in self._cp:
            init = self._cp_init(rank_value)
            self.decompositions += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tensorly warns when rank exceeds a mode's size at SVD init
                cp = parafac(self.kernel, rank=rank_value, init=init, n_iter_max=iterations, tol=1e-7,
                             random_state=0)
            weights, factors = cp
            if not refine:
                self._cp[rank_value] = (weights, factors)
        else:
            weights, factors = self._cp[rank_value]
        *spatial, f_in, f_out = balanced_cp(weights, factors)
        arrays = {"in": f_in, "out": f_out, **{f"axis{i}": f for i, f in enumerate(spatial)}}
        return Factors("cp", (rank_value,), arrays, self.bias)

    def _cp_init(self, rank_value: int):
        """The strongest components of the nearest computed rank >= rank_value, else tensorly's SVD init."""
        larger = sorted(r for r in self._cp if r >= rank_value)
        if not larger:
            return "svd"
        weights, factors = self._cp[larger[0]]
        strength = np.abs(weights) * np.prod([np.linalg.norm(f, axis=0) for f in factors], axis=0)
        keep = np.argsort(strength)[::-1][:rank_value]
        return tensorly.cp_tensor.CPTensor((weights[keep], [f[:, keep] for f in factors]))


def _leading_basis(matrix: np.ndarray) -> np.ndarray:
    """A complete orthonormal basis of the rows' space, leading singular vectors first (eigh of the Gram
    matrix: complete even when the matrix has fewer columns than rows, and small for wide unfoldings)."""
    values, vectors = np.linalg.eigh(matrix @ matrix.T)
    return vectors[:, np.argsort(values)[::-1]]


def balanced_cp(weights: np.ndarray, factors: list[np.ndarray]) -> list[np.ndarray]:
    """Factors of the same CP tensor with every component's scale shared equally by its factors."""
    norms = np.stack([np.linalg.norm(f, axis=0) for f in factors])
    norms = np.where(norms == 0, 1.0, norms)
    share = (np.abs(weights) * np.prod(norms, axis=0)) ** (1.0 / len(factors))
    signed = [f / n * share for f, n in zip(factors, norms)]
    signed[-1] = signed[-1] * np.sign(np.where(weights == 0, 1.0, weights))
    return signed
