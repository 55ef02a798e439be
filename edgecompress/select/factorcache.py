"""Decompositions of one layer's kernel per (method, rank) for the search and for the final model.

Each method says how it derives a search rank cheaply (`Method.search_factors`: SVD/QR truncate one full
decomposition, Tucker truncates one HOSVD, CP warm-starts a few ALS iterations) and what the final model gets
(`Method.final_factors`); this cache only keeps each method's state for the layer between calls.

Data-aware decomposition (given the second moment C of the layer's input channels on calibration data): a
method whose block starts with a linear map of the input channels (`Method.whitens_inputs`) decomposes the kernel
whitened by Lᵀ (L Lᵀ = C + εI), so its truncation error is the output error, and gets L⁻ᵀ folded into that
first factor (factorize/datafit.py). Other methods decompose the weights as they are.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgecompress.factorize import Factors, get
from edgecompress.factorize.base import SEARCH_ITERATIONS
from edgecompress.factorize.datafit import input_transform, whiten_kernel
from edgecompress.graph.layers import LayerInfo

# ε of the whitening, relative to C's mean diagonal: large enough that a dead or constant channel does not get
# a huge row in the first factor (which would also wreck int8 ranges), small against real channel energies.
WHITENING_RELATIVE_EPS = 1e-3


class FactorCache:
    """Factors for one layer; `search()` is fast, `final()` is what goes into the compressed model."""

    def __init__(self, info: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None,
                 search_iterations: int = SEARCH_ITERATIONS, channel_moment: np.ndarray | None = None):
        self.info = info
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.bias = bias
        self._states: dict[str, dict] = defaultdict(lambda: {"search_iterations": search_iterations})
        self._channel_moment = channel_moment
        self._whitened: tuple[np.ndarray, np.ndarray] | None = None  # made on first use by a whitening method

    @property
    def data_aware(self) -> bool:
        return self._channel_moment is not None

    def search(self, method: str, rank) -> Factors:
        chosen = get(method)
        kernel, back = self._kernel_for(chosen)
        factors = chosen.search_factors(self.info, kernel, self.bias, rank, self._states[method])
        return factors if back is None else chosen.map_input_channels(factors, back)

    def final(self, method: str, rank) -> Factors:
        chosen = get(method)
        kernel, back = self._kernel_for(chosen)
        factors = chosen.final_factors(self.info, kernel, self.bias, rank, self._states[method])
        return factors if back is None else chosen.map_input_channels(factors, back)

    def _kernel_for(self, method) -> tuple[np.ndarray, np.ndarray | None]:
        """The kernel the method decomposes, and the map to fold into its first factor afterwards (or None)."""
        if self._channel_moment is None or not method.whitens_inputs:
            return self.kernel, None
        if self._whitened is None:
            forward, back = input_transform(self._channel_moment, WHITENING_RELATIVE_EPS)
            self._whitened = (whiten_kernel(self.kernel, forward), back)
        return self._whitened
