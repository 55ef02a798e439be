"""Data-aware factorization (factorize.datafit): whitened SVD / QR minimise the output error E‖x(W - Ŵ)‖² on
calibration patches, the patch bookkeeping (dilated taps, channel averages) matches the conventions of
select.capture and select.score, and nothing breaks on rank-deficient data."""
import numpy as np
import pytest
import scipy.linalg

from edgecompress.factorize import datafit
from edgecompress.select.score import dilate


def correlated_patches(rng, samples, size, condition=1e3, offset=0.5):
    """X = Z M + offset: M with singular values from 1 down to 1/condition in random bases (strong correlation)."""
    left = np.linalg.qr(rng.standard_normal((size, size)))[0]
    right = np.linalg.qr(rng.standard_normal((size, size)))[0]
    mixing = left @ np.diag(np.logspace(0, -np.log10(condition), size)) @ right
    return rng.standard_normal((samples, size)) @ mixing + offset * rng.standard_normal(size)


def plain_svd(weights, rank):
    u, s, vt = np.linalg.svd(weights, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def plain_qr(weights, rank):
    """What factorize/qr.py builds: W P = Q R, first = Q_r, second = R_r Pᵀ."""
    q, r, pivots = scipy.linalg.qr(weights, mode="economic", pivoting=True)
    r_unpivoted = np.empty_like(r)
    r_unpivoted[:, pivots] = r
    return q[:, :rank] @ r_unpivoted[:rank]


def relative(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def deficient_patches(case, rng):
    """Patches (N, d) whose second moment is singular in the named way, d = 3 * 3 * 4."""
    samples = 5 if case == "fewer samples than d" else 200
    patches = rng.standard_normal((samples, 36))
    if case == "zero channels":
        patches.reshape(samples, 9, 4)[:, :, 1:3] = 0.0
    elif case == "constant channel":
        patches.reshape(samples, 9, 4)[:, :, 0] = 2.5
    elif case == "all zero":
        patches[:] = 0.0
    elif case == "one sample":
        patches = patches[:1]
    return patches


SHAPES = [(24, 16), (16, 24), (20, 20)]
DEFICIENT = ["zero channels", "constant channel", "fewer samples than d", "all zero", "one sample"]


@pytest.mark.parametrize("size, outputs", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_whitened_svd_beats_plain_svd_at_every_rank(size, outputs, seed):
    rng = np.random.default_rng(seed)
    stats = datafit.input_stats(correlated_patches(rng, 2000, size), (size,))
    weights = rng.standard_normal((size, outputs))
    first, second = datafit.whitened_svd_full(weights, stats)
    # Tolerance: whitened_svd minimises E + ε‖ΔW‖² (ε = 1e-6 x mean diagonal of C), so it may lose up to ε‖W‖²
    # (plus rounding) to the plain SVD in E alone.
    slack = 1e-6 * np.trace(stats.second_moment) / size * np.sum(weights**2) + 1e-12
    gains = []
    for rank in range(1, min(size, outputs) + 1):
        whitened = datafit.output_error(weights, first[:, :rank] @ second[:rank], stats)
        plain = datafit.output_error(weights, plain_svd(weights, rank), stats)
        assert whitened <= plain + slack, rank
        gains.append((plain - whitened) / plain)
    # Strictly better somewhere: at least 10% less error than plain SVD at some rank (typically 50-99%).
    assert max(gains) > 0.1


@pytest.mark.parametrize("rank", [1, 5, 12])
def test_whitened_svd_with_identity_moment_is_plain_svd(rank):
    rng = np.random.default_rng(2)
    weights = rng.standard_normal((20, 12))
    first, second = datafit.whitened_svd(weights, np.eye(20), rank)
    assert first.shape == (20, rank) and second.shape == (rank, 12)
    assert relative(first @ second, plain_svd(weights, rank)) <= 1e-8  # tolerance: 1e-8 relative, as specified


@pytest.mark.parametrize("size, outputs", SHAPES)
def test_discarded_whitened_spectrum_is_the_output_error(size, outputs):
    rng = np.random.default_rng(3)
    stats = datafit.input_stats(correlated_patches(rng, 1000, size, condition=1e2), (size,))
    weights = rng.standard_normal((size, outputs))
    spectrum = datafit.whitened_singular_values(weights, stats, relative_eps=1e-13)
    for rank in range(min(size, outputs)):
        first, second = datafit.whitened_svd(weights, stats, rank, relative_eps=1e-13)
        error = datafit.output_error(weights, first @ second, stats)
        # Tolerance: 1e-6 relative; the ε = 1e-13 x mean diagonal term is far below it.
        assert error == pytest.approx(np.sum(spectrum[rank:] ** 2), rel=1e-6), rank


@pytest.mark.parametrize("case", DEFICIENT + ["full rank"])
@pytest.mark.parametrize("outputs", [8, 50])
def test_full_rank_factors_reproduce_the_layer_on_the_data(case, outputs):
    rng = np.random.default_rng(4)
    patches = deficient_patches(case, rng) if case != "full rank" else rng.standard_normal((100, 36))
    stats = datafit.input_stats(patches, (3, 3, 4))
    weights = rng.standard_normal((36, outputs))
    exact = patches @ weights
    for first, second in (datafit.whitened_svd_full(weights, stats), datafit.whitened_qr_full(weights, stats)):
        assert first.shape == (36, min(36, outputs)) and second.shape == (min(36, outputs), outputs)
        # Tolerance: 1e-8 of ‖X W‖ (absolute 1e-10 where X W = 0); the factors multiply back to W itself.
        assert np.linalg.norm(exact - patches @ first @ second) <= 1e-8 * np.linalg.norm(exact) + 1e-10
        assert relative(first @ second, weights) <= 1e-8


@pytest.mark.parametrize("rank", [1, 4, 9, 16])
@pytest.mark.parametrize("size, outputs", SHAPES)
def test_whitening_the_kernel_then_plain_svd_is_whitened_svd(size, outputs, rank):
    rng = np.random.default_rng(5)
    stats = datafit.input_stats(correlated_patches(rng, 500, size), (size,))
    weights = rng.standard_normal((size, outputs))
    forward, back = datafit.input_transform(stats)
    u, s, vt = np.linalg.svd(datafit.whiten_kernel(weights, forward), full_matrices=False)
    first = back @ (u[:, :rank] * np.sqrt(s[:rank]))
    second = np.sqrt(s[:rank])[:, None] * vt[:rank]
    expected_first, expected_second = datafit.whitened_svd(weights, stats, rank)
    # Tolerance: 1e-8 relative on the product (the factors themselves agree up to singular-vector signs).
    assert relative(first @ second, expected_first @ expected_second) <= 1e-8
    assert relative(back @ forward, np.eye(size)) <= 1e-8


def test_whiten_kernel_mixes_the_input_channel_mode_of_a_conv_kernel():
    rng = np.random.default_rng(6)
    kernel = rng.standard_normal((3, 2, 5, 7))
    forward = rng.standard_normal((5, 5))
    whitened = datafit.whiten_kernel(kernel, forward)
    expected = np.stack([forward @ kernel[i, j] for i in range(3) for j in range(2)]).reshape(kernel.shape)
    assert np.allclose(whitened, expected, rtol=1e-12, atol=1e-12)  # tolerance: float64 rounding


@pytest.mark.parametrize("case", DEFICIENT)
def test_rank_deficient_moments_give_finite_results(case):
    rng = np.random.default_rng(7)
    patches = deficient_patches(case, rng)
    stats = datafit.input_stats(patches, (3, 3, 4))
    weights = rng.standard_normal((36, 10))
    lower = datafit.whitening(stats)
    # L Lᵀ = C + εI with ε > 0 (tolerance: 1e-10 of the largest entry, Cholesky rounding).
    residual = lower @ lower.T - stats.second_moment
    eps = residual[0, 0]
    assert np.allclose(lower, np.tril(lower)) and eps > 0
    assert np.allclose(residual, eps * np.eye(36), atol=1e-10 * max(1.0, np.abs(stats.second_moment).max()))
    channels = datafit.channel_stats(stats)
    outputs = [
        lower, datafit.whitened_singular_values(weights, stats), *datafit.whitened_svd_full(weights, stats),
        *datafit.whitened_svd(weights, stats, 3), *datafit.whitened_qr_full(weights, stats),
        *datafit.input_transform(channels), channels.second_moment, channels.mean,
        datafit.whiten_kernel(weights.reshape(3, 3, 4, 10), datafit.input_transform(channels)[0]),
        np.array(datafit.output_error(weights, 0 * weights, stats)),
        *datafit.ridge_refit(patches @ datafit.whitened_svd(weights, stats, 3)[0], patches @ weights),
    ]
    assert all(np.all(np.isfinite(array)) for array in outputs)


def test_whitening_escalates_eps_until_cholesky_succeeds():
    rng = np.random.default_rng(15)
    basis = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    # A small negative eigenvalue (-5e-6; mean diagonal 0.9): ε = 0.9e-6 fails, ten times that succeeds.
    nearly = basis @ np.diag(np.r_[np.ones(9), -5e-6]) @ basis.T
    lower = datafit.whitening(nearly)
    eps = 10 * 1e-6 * np.trace(nearly) / 10
    # Tolerance: 1e-12 absolute, Cholesky rounding on O(1) entries.
    assert np.allclose(lower @ lower.T, nearly + eps * np.eye(10), rtol=0, atol=1e-12)
    singular = basis[:, :3] @ basis[:, :3].T
    assert np.all(np.isfinite(datafit.whitening(singular, relative_eps=0.0)))  # floored at 1e-15 relative
    with pytest.raises(ValueError, match="indefinite"):
        datafit.whitening(np.diag([3.0, -2.0, 0.5]))  # mean diagonal 0.5 cannot lift -2


def test_all_zero_moment_falls_back_to_plain_svd():
    rng = np.random.default_rng(8)
    weights = rng.standard_normal((12, 9))
    first, second = datafit.whitened_svd(weights, np.zeros((12, 12)), 4)
    assert relative(first @ second, plain_svd(weights, 4)) <= 1e-10  # tolerance: L = I exactly, rounding only


def test_no_samples_gives_zero_stats():
    stats = datafit.input_stats(np.zeros((0, 6), np.float32), (1, 6))
    assert stats.samples == 0 and not stats.second_moment.any() and not stats.mean.any()


def test_input_stats_accumulates_in_blocks(monkeypatch):
    rng = np.random.default_rng(9)
    patches = rng.standard_normal((1000, 12)).astype(np.float32)
    whole = datafit.input_stats(patches, (2, 2, 3))
    monkeypatch.setattr(datafit, "ACCUMULATE_VALUES", 12 * 7)  # 7 rows per block, a ragged last one
    blocked = datafit.input_stats(patches, (2, 2, 3))
    exact = patches.astype(np.float64).T @ patches.astype(np.float64) / 1000
    # Tolerance: float64 accumulation of float32 data, summation order only.
    assert np.allclose(blocked.second_moment, exact, rtol=1e-12, atol=1e-12)
    assert np.allclose(whole.second_moment, exact, rtol=1e-12, atol=1e-12)
    assert np.allclose(blocked.mean, patches.astype(np.float64).mean(axis=0), rtol=1e-12, atol=1e-12)
    assert blocked.samples == 1000 and blocked.patch_shape == (2, 2, 3)
    with pytest.raises(ValueError, match="patch shape"):
        datafit.input_stats(patches, (3, 3, 3))


@pytest.mark.parametrize("kernel_size, dilation", [((3, 3), (2, 2)), ((3, 2), (1, 3)), ((3,), (4,)),
                                                   ((2, 2, 2), (2, 1, 3))])
def test_kernel_taps_pick_the_entries_the_dilated_kernel_meets(kernel_size, dilation):
    rng = np.random.default_rng(10)
    channels, outputs = 3, 5
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation))
    kernel = rng.standard_normal(kernel_size + (channels, outputs))
    patches = rng.standard_normal((300, int(np.prod(span)) * channels))
    index = datafit.tap_indices(span, kernel_size, dilation, channels)
    assert index.shape == (int(np.prod(kernel_size)) * channels,)
    spread = dilate(kernel, dilation).reshape(-1, outputs)
    # Tolerance: float64 rounding; the skipped entries meet exact zeros of the spread kernel.
    assert np.allclose(patches @ spread, patches[:, index] @ kernel.reshape(-1, outputs), rtol=1e-12, atol=1e-12)
    stats = datafit.input_stats(patches, span + (channels,))
    taps = datafit.kernel_taps(stats, kernel_size, dilation)
    direct = datafit.input_stats(patches[:, index], kernel_size + (channels,))
    assert taps.patch_shape == direct.patch_shape and taps.samples == direct.samples
    assert np.allclose(taps.second_moment, direct.second_moment, rtol=1e-12, atol=1e-12)
    assert np.allclose(taps.mean, direct.mean, rtol=1e-12, atol=1e-12)
    approx = kernel.reshape(-1, outputs) * 0.9
    assert datafit.output_error(kernel.reshape(-1, outputs), approx, taps) == pytest.approx(
        datafit.output_error(spread, dilate(approx.reshape(kernel.shape), dilation).reshape(-1, outputs), stats),
        rel=1e-10)


def test_kernel_taps_is_identity_without_dilation():
    rng = np.random.default_rng(11)
    stats = datafit.input_stats(rng.standard_normal((50, 18)), (3, 3, 2))
    assert datafit.kernel_taps(stats, (3, 3), (1, 1)) is stats
    assert datafit.kernel_taps(stats, (3, 3), None) is stats
    with pytest.raises(ValueError, match="spans"):
        datafit.tap_indices((5, 5), (3, 3), (3, 3), 2)


@pytest.mark.parametrize("span", [(3, 3), (5,), (1, 1), ()])
def test_channel_stats_average_the_per_tap_blocks(span):
    rng = np.random.default_rng(12)
    channels, taps = 4, int(np.prod(span))
    patches = correlated_patches(rng, 400, taps * channels)
    stats = datafit.channel_stats(datafit.input_stats(patches, span + (channels,)))
    per_tap = patches.reshape(400, taps, channels)
    expected = sum(per_tap[:, t].T @ per_tap[:, t] for t in range(taps)) / (400 * taps)
    # Tolerance: float64 rounding.
    assert np.allclose(stats.second_moment, expected, rtol=1e-12, atol=1e-12)
    assert np.allclose(stats.mean, per_tap.mean(axis=(0, 1)), rtol=1e-12, atol=1e-12)
    assert stats.patch_shape == (1,) * len(span) + (channels,)


@pytest.mark.parametrize("rank, outputs", [(4, 6), (10, 3)])
def test_ridge_refit_recovers_a_known_affine_map(rank, outputs):
    rng = np.random.default_rng(13)
    features = rng.standard_normal((300, rank)) + 3.0
    weights, bias = rng.standard_normal((rank, outputs)), rng.standard_normal(outputs)
    targets = features @ weights + bias
    fitted, fitted_bias = datafit.ridge_refit(features, targets, ridge_relative=1e-12)
    # Tolerance: 1e-6 relative, with a negligible ridge (noiseless data).
    assert relative(fitted, weights) <= 1e-6 and relative(fitted_bias, bias) <= 1e-6
    shrunk, shrunk_bias = datafit.ridge_refit(features, targets)
    # Tolerance: the default ridge (1e-4 x mean eigenvalue) shrinks W by about 1e-4 on well-conditioned features.
    assert relative(shrunk, weights) <= 1e-3 and relative(features @ shrunk + shrunk_bias, targets) <= 1e-3


def test_ridge_refit_on_constant_and_duplicate_features_is_finite():
    rng = np.random.default_rng(14)
    targets = rng.standard_normal((50, 3))
    weights, bias = datafit.ridge_refit(np.full((50, 4), 7.0), targets)
    # Constant features explain nothing: W = 0 and b = mean(T) (tolerance: rounding).
    assert np.allclose(weights, 0.0, atol=1e-12) and np.allclose(bias, targets.mean(axis=0), atol=1e-12)
    column = rng.standard_normal((50, 1))
    duplicated = np.hstack([column, column, np.zeros((50, 1))])
    weights, bias = datafit.ridge_refit(duplicated, 2.0 * column + 1.0)
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))
    assert relative(duplicated @ weights + bias, 2.0 * column + 1.0) <= 1e-3  # tolerance: ridge shrinkage
    empty_weights, empty_bias = datafit.ridge_refit(np.zeros((0, 2)), np.zeros((0, 3)))
    assert empty_weights.shape == (2, 3) and empty_bias.shape == (3,)


@pytest.mark.parametrize("size, outputs", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_whitened_qr_beats_plain_qr_on_correlated_data(size, outputs, seed):
    rng = np.random.default_rng(20 + seed)
    patches = correlated_patches(rng, 2000, size)
    stats = datafit.input_stats(patches, (size,))
    weights = rng.standard_normal((size, outputs))
    first, second = datafit.whitened_qr_full(weights, stats)
    assert relative(patches @ first @ second, patches @ weights) <= 1e-8  # tolerance: rounding, as for SVD
    ranks = range(1, min(size, outputs))
    whitened = [datafit.output_error(weights, first[:, :r] @ second[:r], stats) for r in ranks]
    plain = [datafit.output_error(weights, plain_qr(weights, r), stats) for r in ranks]
    # Pivoted QR is greedy, not optimal, so compare the sum over ranks (no tolerance: it must be strictly lower).
    assert sum(whitened) < sum(plain)
    # And the whitened residual is the tail of R: ‖Lᵀ(W - Ŵ_r)‖² = ‖R[r:]‖² (tolerance: 1e-8 relative).
    lower = datafit.whitening(stats)
    r_rows = datafit.whitened_qr_full(weights, stats)[1]
    for r in ranks:
        residual = np.sum((lower.T @ (weights - first[:, :r] @ second[:r])) ** 2)
        assert residual == pytest.approx(np.sum(r_rows[r:] ** 2), rel=1e-8)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="second moment"):
        datafit.whitened_svd(np.ones((5, 3)), np.eye(4), 2)
    with pytest.raises(ValueError, match="input channels"):
        datafit.whiten_kernel(np.ones((3, 3, 4, 2)), np.eye(5))
    with pytest.raises(ValueError, match="non-finite"):
        datafit.whitening(np.full((2, 2), np.nan))
