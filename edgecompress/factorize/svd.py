"""Truncated SVD of a dense kernel (or a 1x1 conv's): two matrices, sqrt of the singular values in each."""
from __future__ import annotations

import numpy as np

from edgecompress.factorize import matrix
from edgecompress.factorize.base import Factors, register


@register("svd")
class SVD(matrix.TwoFactorMethod):
    def decompose(self, layer, kernel, bias, rank) -> Factors:
        (rank_value,) = self.resolve(layer, rank)
        weights = matrix.as_matrix(kernel)
        u, s, vt = np.linalg.svd(weights.astype(np.float64), full_matrices=False)
        root_s = np.sqrt(s[:rank_value])
        first = u[:, :rank_value] * root_s
        second = root_s[:, None] * vt[:rank_value]
        return Factors(self.name, (rank_value,), {"first": first, "second": second}, bias)
