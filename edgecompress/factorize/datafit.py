"""Data-aware factorization: fit low-rank factors to a layer's outputs on calibration patches, not to its weights.

A layer is linear up to its activation: on a receptive-field patch x (a row of length d = prod(span) * Cin,
flattened from (span..., Cin) with the channel fastest, as `select.capture.gather_patches` cuts it) its
pre-activation output is y = x W + b, with W the kernel reshaped to (d, Cout). Replacing W by Ŵ changes the
output by x (W - Ŵ), so on calibration patches X (N, d) the error to minimise is

    E‖x (W - Ŵ)‖² = trace((W - Ŵ)ᵀ C (W - Ŵ)),   C = XᵀX / N   (the uncentred second moment: b cancels),

instead of ‖W - Ŵ‖². With a Cholesky factor L L^T = C (+ εI), that is ‖Lᵀ (W - Ŵ)‖²: whitening the weights
by Lᵀ turns the data-aware problem into a plain one (SVD-LLM), and L⁻ᵀ maps the answer back.

Pure numpy/scipy, float64 inside; callers cast the factors to their own dtype.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

DEFAULT_RELATIVE_EPS = 1e-6
DEFAULT_RIDGE_RELATIVE = 1e-4
# ε is raised tenfold from relative_eps up to this share of C's mean diagonal; a C still not positive definite then
# is no second moment (rounding makes a PSD one fail only at ε near float64 precision).
MAX_RELATIVE_EPS = 1.0
# Smallest relative ε tried (about float64 precision): relative_eps = 0 still gets a factor of a singular C.
MIN_RELATIVE_EPS = 1e-15
# Rows per float64 block when accumulating XᵀX: about 2**24 values (128 MB) at a time, whatever d.
ACCUMULATE_VALUES = 1 << 24


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous: compare by identity
class InputStats:
    """What a layer's input patches say about its output error: C = XᵀX / N, mean of x, N, and the patch shape.

    `patch_shape` is (span..., Cin): the flat index of patch entry (s..., c) is np.ravel_multi_index((s..., c),
    patch_shape), as `gather_patches` flattens it. Dense layers have span () or (1, ..., 1).
    """

    second_moment: np.ndarray  # (d, d) float64, symmetric positive semi-definite
    mean: np.ndarray  # (d,) float64
    samples: int
    patch_shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(self.second_moment.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.patch_shape[-1])

    @property
    def span(self) -> tuple[int, ...]:
        return tuple(self.patch_shape[:-1])


SecondMoment = InputStats | np.ndarray


def input_stats(patches: np.ndarray, patch_shape: Sequence[int]) -> InputStats:
    """C = XᵀX / N and mean(X) of patches X (N, d), accumulated in float64 blocks of rows (X is never copied whole).

    N = 0 gives C = 0 and mean 0 (whitening() then falls back to the plain Frobenius norm).
    """
    patch_shape = tuple(int(n) for n in patch_shape)
    patches = np.asarray(patches)
    size = math.prod(patch_shape)
    if patches.ndim != 2 or patches.shape[1] != size:
        raise ValueError(f"patches of shape {patches.shape} do not flatten patch shape {patch_shape}: "
                         f"expected (N, {size})")
    count = patches.shape[0]
    second_moment = np.zeros((size, size))
    total = np.zeros(size)
    rows = max(1, ACCUMULATE_VALUES // max(size, 1))
    for start in range(0, count, rows):
        block = patches[start:start + rows].astype(np.float64)
        second_moment += block.T @ block
        total += block.sum(axis=0)
    scale = 1.0 / max(count, 1)
    second_moment = (second_moment + second_moment.T) * (0.5 * scale)  # exactly symmetric
    return InputStats(second_moment, total * scale, count, patch_shape)


def tap_indices(span: Sequence[int], kernel_size: Sequence[int], dilation: Sequence[int] | None,
                in_channels: int) -> np.ndarray:
    """Flat patch indices (prod(kernel_size) * Cin,) of the entries a dilated kernel's taps meet.

    Ordered as kernel.reshape(-1, Cout) orders its rows, so x_span @ dilate(kernel).reshape(-1, Cout) ==
    x_span[:, tap_indices(...)] @ kernel.reshape(-1, Cout): the taps sit at 0, d, 2d, ... along each axis,
    as `select.score.dilate` spreads them.
    """
    span, kernel_size = tuple(span), tuple(kernel_size)
    dilation = tuple(dilation) if dilation else (1,) * len(kernel_size)
    expected = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation))
    if len(kernel_size) != len(span) or len(dilation) != len(span) or expected != span:
        raise ValueError(f"kernel {kernel_size} with dilation {dilation} spans {expected}, not the patch's {span}")
    flat = np.arange(math.prod(span) * in_channels).reshape(span + (in_channels,))
    return flat[tuple(slice(None, None, d) for d in dilation)].reshape(-1)


def kernel_taps(stats: InputStats, kernel_size: Sequence[int], dilation: Sequence[int] | None) -> InputStats:
    """The stats of the patch entries a dilated kernel's taps meet: C[idx, idx], mean[idx], with idx = tap_indices.

    They pair with the kernel reshaped (prod(kernel_size) * Cin, Cout) without dilation; the entries between taps
    meet zeros of the spread kernel and add nothing to x W. Identity when no axis is dilated.
    """
    kernel_size = tuple(kernel_size)
    if not dilation or all(d == 1 for d in dilation):
        if kernel_size and kernel_size != stats.span:
            raise ValueError(f"kernel {kernel_size} does not match the patch's span {stats.span}")
        return stats
    index = tap_indices(stats.span, kernel_size, dilation, stats.in_channels)
    return InputStats(stats.second_moment[np.ix_(index, index)], stats.mean[index], stats.samples,
                      kernel_size + (stats.in_channels,))


def channel_stats(stats: InputStats) -> InputStats:
    """The Cin x Cin second moment averaged over the patch's T = prod(span) taps: (1/T) Σ_t E[x_tᵀ x_t].

    For methods whose input factor acts on channels only (Tucker-2, CP, TT): it weighs each channel direction by
    how strongly it is excited at a tap, ignoring correlations between taps. The patch shape becomes (1.., Cin).
    """
    taps, channels = math.prod(stats.span), stats.in_channels
    blocks = stats.second_moment.reshape(taps, channels, taps, channels)
    second_moment = np.einsum("tatb->ab", blocks) / taps
    mean = stats.mean.reshape(taps, channels).mean(axis=0)
    return InputStats(second_moment, mean, stats.samples, (1,) * len(stats.span) + (channels,))


def whitening(second_moment: SecondMoment, relative_eps: float = DEFAULT_RELATIVE_EPS) -> np.ndarray:
    """Lower-triangular L (d, d) with L Lᵀ = C + εI, ε = relative_eps * trace(C) / d.

    ε makes the Cholesky factorization exist on rank-deficient C (dead or zero-padded channels, constant
    channels, fewer samples than d) and is raised tenfold until it does; a C that needs more than ε = trace(C) / d
    is far from positive semi-definite (ValueError). trace(C) = 0 (no signal at all) gives ε = 1, L = I: the data
    say nothing, and every whitened method reduces to its plain version.
    """
    matrix = _moment_matrix(second_moment)
    size = matrix.shape[0]
    if not np.all(np.isfinite(matrix)):
        raise ValueError("second moment has non-finite entries: the calibration patches hold NaN or inf")
    matrix = 0.5 * (matrix + matrix.T)
    mean_diagonal = float(np.trace(matrix)) / max(size, 1)
    scale = mean_diagonal if mean_diagonal > 0 else 1.0
    eps = max(relative_eps, MIN_RELATIVE_EPS) * scale if mean_diagonal > 0 else scale
    while True:
        try:
            return np.linalg.cholesky(matrix + eps * np.eye(size))
        except np.linalg.LinAlgError:
            if eps >= MAX_RELATIVE_EPS * scale:
                break
            eps = min(10.0 * eps, MAX_RELATIVE_EPS * scale)
    raise ValueError(f"second moment stays indefinite with ε = {eps:g} (its mean diagonal): it is not XᵀX / N")


def whitened_singular_values(weights: np.ndarray, second_moment: SecondMoment,
                             relative_eps: float = DEFAULT_RELATIVE_EPS) -> np.ndarray:
    """Singular values σ of Lᵀ W, decreasing: the output error of whitened_svd at rank r is Σ_{i>r} σ_i²
    (up to the ε‖W - Ŵ‖² the regularisation adds), so ranks can be chosen without reconstructing."""
    weights = _weights_for(weights, second_moment)
    return np.linalg.svd(whitening(second_moment, relative_eps).T @ weights, compute_uv=False)


def whitened_svd_full(weights: np.ndarray, second_moment: SecondMoment,
                      relative_eps: float = DEFAULT_RELATIVE_EPS) -> tuple[np.ndarray, np.ndarray]:
    """Full-rank SVD-LLM factors of W (d, n): first (d, k) = L⁻ᵀ U Σ^½, second (k, n) = Σ^½ Vᵀ, k = min(d, n).

    Lᵀ W = U Σ Vᵀ, columns ordered by decreasing σ, so first[:, :r] @ second[:r] is the Ŵ of rank r minimising
    ‖Lᵀ (W - Ŵ)‖² = E‖x (W - Ŵ)‖² + ε‖W - Ŵ‖² (Eckart-Young in the whitened space). At r = k the product is
    W itself, whatever C.
    """
    weights = _weights_for(weights, second_moment)
    lower = whitening(second_moment, relative_eps)
    u, s, vt = np.linalg.svd(lower.T @ weights, full_matrices=False)
    root_s = np.sqrt(s)
    first = scipy.linalg.solve_triangular(lower, u * root_s, lower=True, trans="T")
    return first, root_s[:, None] * vt


def whitened_svd(weights: np.ndarray, second_moment: SecondMoment, rank: int,
                 relative_eps: float = DEFAULT_RELATIVE_EPS) -> tuple[np.ndarray, np.ndarray]:
    """The rank-r SVD-LLM factors: the first r columns / rows of whitened_svd_full (ranks above min(d, n) give
    the full factors)."""
    if rank < 0:
        raise ValueError(f"rank must be non-negative, got {rank}")
    first, second = whitened_svd_full(weights, second_moment, relative_eps)
    return first[:, :rank], second[:rank]


def whitened_qr_full(weights: np.ndarray, second_moment: SecondMoment,
                     relative_eps: float = DEFAULT_RELATIVE_EPS) -> tuple[np.ndarray, np.ndarray]:
    """Column-pivoted QR in the whitened space: Lᵀ W P = Q R, first (d, k) = L⁻ᵀ Q, second (k, n) = R Pᵀ.

    The data-aware analogue of the plain QR method (W P = Q R, first = Q_r, second = R_r Pᵀ): first[:, :r] @
    second[:r] leaves the whitened residual ‖Lᵀ (W - Ŵ)‖ = ‖R[r:]‖, which the pivoting keeps small, instead of
    ‖W - Ŵ‖. At r = k = min(d, n) the product is W itself.
    """
    weights = _weights_for(weights, second_moment)
    lower = whitening(second_moment, relative_eps)
    q, r, pivots = scipy.linalg.qr(lower.T @ weights, mode="economic", pivoting=True)
    r_unpivoted = np.empty_like(r)
    r_unpivoted[:, pivots] = r
    return scipy.linalg.solve_triangular(lower, q, lower=True, trans="T"), r_unpivoted


def input_transform(second_moment: SecondMoment,
                    relative_eps: float = DEFAULT_RELATIVE_EPS) -> tuple[np.ndarray, np.ndarray]:
    """(forward, back) = (Lᵀ, L⁻ᵀ), both (c, c), for methods that factor a kernel's input-channel mode.

    Whiten the kernel with whiten_kernel(kernel, forward), decompose it with the plain method, then map its
    input-side factor back: u_in ← back @ u_in (the kernel is whiten_kernel(kernel', back)). For a matrix kernel
    W this is exact SVD-LLM: plain SVD of Lᵀ W = U Σ Vᵀ, then back @ (U Σ^½) equals whitened_svd's first factor.
    For conv kernels use channel_stats' C: the error it weighs ignores correlations between taps.
    """
    lower = whitening(second_moment, relative_eps)
    back = scipy.linalg.solve_triangular(lower, np.eye(lower.shape[0]), lower=True, trans="T")
    return lower.T.copy(), back


def whiten_kernel(kernel: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """The mode product on the input-channel axis: W'[..., i, o] = Σ_j forward[i, j] W[..., j, o].

    kernel is (k..., Cin, Cout), or (Cin, Cout) for a matrix; forward is (Cin, Cin). Returns float64.
    """
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim < 2 or forward.shape != (kernel.shape[-2],) * 2:
        raise ValueError(f"transform {forward.shape} does not act on the input channels of kernel {kernel.shape}")
    return np.einsum("ij,...jo->...io", forward, kernel)


def ridge_refit(features: np.ndarray, targets: np.ndarray, ridge_relative: float = DEFAULT_RIDGE_RELATIVE,
                fit_intercept: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Least squares T ≈ F W + b with a small ridge on W (not on b): returns W (r, n), b (n,).

    With F, T centred: (FᵀF + λI) W = FᵀT, λ = ridge_relative * trace(FᵀF) / r (λ = 1 when the features are all
    constant), and b = mean(T) - mean(F) W. The ridge keeps the solve defined for rank-deficient or constant
    features; it shrinks W by about λ / (eigenvalue of FᵀF) along each feature direction. Without
    `fit_intercept` (a block with no bias) nothing is centred and b = 0.
    """
    features = np.asarray(features, np.float64)
    targets = np.asarray(targets, np.float64)
    if features.ndim != 2 or targets.ndim != 2 or len(features) != len(targets):
        raise ValueError(f"features {features.shape} and targets {targets.shape} must be (N, r) and (N, n)")
    if len(features) == 0:
        return np.zeros((features.shape[1], targets.shape[1])), np.zeros(targets.shape[1])
    if fit_intercept:
        feature_mean, target_mean = features.mean(axis=0), targets.mean(axis=0)
    else:
        feature_mean, target_mean = np.zeros(features.shape[1]), np.zeros(targets.shape[1])
    centred = features - feature_mean
    gram = centred.T @ centred
    trace = float(np.trace(gram))
    ridge = ridge_relative * trace / max(gram.shape[0], 1) if trace > 0 else 1.0
    ridge = max(ridge, np.finfo(np.float64).tiny)
    rhs = centred.T @ (targets - target_mean)
    try:
        weights = scipy.linalg.solve(gram + ridge * np.eye(gram.shape[0]), rhs, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        weights = np.linalg.lstsq(gram + ridge * np.eye(gram.shape[0]), rhs, rcond=None)[0]
    return weights, target_mean - feature_mean @ weights


def output_error(weights_true: np.ndarray, weights_approx: np.ndarray, stats: SecondMoment) -> float:
    """E‖x (W - Ŵ)‖² = trace((W - Ŵ)ᵀ C (W - Ŵ)): the mean squared pre-activation output error on the calibration
    patches, the quantity whitened_svd minimises (without its ε term)."""
    delta = np.asarray(weights_true, np.float64) - np.asarray(weights_approx, np.float64)
    delta = _weights_for(delta, stats)
    return float(np.sum(delta * (_moment_matrix(stats) @ delta)))


def _moment_matrix(second_moment: SecondMoment) -> np.ndarray:
    matrix = second_moment.second_moment if isinstance(second_moment, InputStats) else second_moment
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"second moment must be a square matrix, got shape {matrix.shape}")
    return matrix


def _weights_for(weights: np.ndarray, second_moment: SecondMoment) -> np.ndarray:
    """W as a float64 (d, n) matrix whose d matches the second moment's."""
    weights = np.asarray(weights, np.float64)
    size = _moment_matrix(second_moment).shape[0]
    if weights.ndim != 2 or weights.shape[0] != size:
        raise ValueError(f"weights of shape {weights.shape} do not pair with a {size} x {size} second moment: "
                         f"reshape the kernel to (d, Cout), taking kernel_taps() for dilated convs")
    return weights
