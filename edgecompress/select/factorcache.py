"""Decompositions of one layer's kernel per (method, rank) for the search and for the final model.

Each method says how it derives a search rank cheaply (`Method.search_factors`: SVD/QR truncate one full
decomposition, Tucker truncates one HOSVD, CP warm-starts a few ALS iterations) and what the final model gets
(`Method.final_factors`); this cache only keeps each method's state for the layer between calls.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgecompress.factorize import Factors, get
from edgecompress.factorize.cp import CP_SEARCH_ITERATIONS
from edgecompress.graph.layers import LayerInfo


class FactorCache:
    """Factors for one layer; `search()` is fast, `final()` is what goes into the compressed model."""

    def __init__(self, info: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None,
                 search_iterations: int = CP_SEARCH_ITERATIONS):
        self.info = info
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.bias = bias
        self._states: dict[str, dict] = defaultdict(lambda: {"search_iterations": search_iterations})

    def search(self, method: str, rank) -> Factors:
        return get(method).search_factors(self.info, self.kernel, self.bias, rank, self._states[method])

    def final(self, method: str, rank) -> Factors:
        return get(method).final_factors(self.info, self.kernel, self.bias, rank, self._states[method])
