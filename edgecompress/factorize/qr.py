"""Column-pivoted (rank-revealing) QR of a dense kernel: W P = Q R, so W = Q_r (R_r P^T)."""
from __future__ import annotations

import numpy as np
import scipy.linalg

from edgecompress.factorize import matrix
from edgecompress.factorize.base import Factors, register


@register("qr")
class QR(matrix.TwoFactorMethod):
    def decompose(self, layer, kernel, bias, rank) -> Factors:
        (rank_value,) = self.resolve(layer, rank)
        weights = matrix.as_matrix(kernel).astype(np.float64)
        # Pivoting orders W's columns by how much each adds, so truncating Q keeps the dominant ones.
        q, r, pivots = scipy.linalg.qr(weights, mode="economic", pivoting=True)
        r_unpivoted = np.empty_like(r)
        r_unpivoted[:, pivots] = r
        first = q[:, :rank_value]
        second = r_unpivoted[:rank_value]
        return Factors(self.name, (rank_value,), {"first": first, "second": second}, bias)
