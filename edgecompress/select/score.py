"""Score a candidate block on a layer's captured samples: Ŷ = activation(patches @ W_block + b) vs Y.

Every block the methods build is linear up to its last activation, so on a receptive-field patch it acts
as one matrix W_block. `effective_kernel` reads that matrix off the block the method actually builds (by
feeding it the identity patches): it works for any registered method and scores exactly the operator
deployed. For the six built-in methods `fast_kernel` rebuilds the same matrix from the factors with numpy,
about 30x cheaper (no Keras layers); tests/select/test_score.py checks the two agree for every method,
layer kind, stride, padding and dilation.
"""
from __future__ import annotations

import dataclasses
from functools import reduce

import keras
import numpy as np
from tensorly.tt_matrix import tt_matrix_to_tensor
from tensorly.tt_tensor import tt_to_tensor

from edgecompress.factorize import Factors, get
from edgecompress.graph.layers import LayerInfo
from edgecompress.select.capture import LayerSamples
from edgecompress.select.factorcache import FactorCache
from edgecompress.select.similarity import Metric

PROBE_BATCH = 2048


def patch_info(info: LayerInfo, samples: LayerSamples) -> LayerInfo:
    """The layer as seen on one receptive-field patch: 'valid' padding, one output position, no activation."""
    ndim = len(samples.geometry.span)
    return dataclasses.replace(info, input_shape=samples.geometry.patch_shape, padding="valid",
                               output_shape=(1,) * ndim + (info.out_channels,), activation="linear")


def effective_kernel(method: str, info: LayerInfo, factors: Factors) -> tuple[np.ndarray, np.ndarray]:
    """(W (patch_size, Cout), b (Cout,)) of the block built from `factors` on `info`'s patch input."""
    layers = get(method).build(info, factors)
    patch_size = int(np.prod(info.input_shape))
    probes = np.concatenate([np.zeros((1, patch_size), np.float32), np.eye(patch_size, dtype=np.float32)])
    responses = []
    for start in range(0, len(probes), PROBE_BATCH):
        batch = probes[start:start + PROBE_BATCH].reshape((-1,) + tuple(info.input_shape))
        output = reduce(lambda x, layer: layer(x), layers, batch)
        responses.append(keras.ops.convert_to_numpy(output).reshape(len(batch), -1))
    response = np.concatenate(responses)
    return response[1:] - response[0], response[0]


def _tucker(arrays, info):
    return np.einsum("...ab,ia,ob->...io", arrays["core"], arrays["u_in"], arrays["u_out"], optimize=True)


def _cp(arrays, info):
    """Sum of rank-1 terms as one GEMM: (k..., Cin, R) @ (R, Cout); cp_to_tensor would form a (k...Cout, R)
    Khatri-Rao product first (1.8 s per call on a 3x3x256x256 kernel, measured)."""
    axes = [arrays[f"axis{i}"] for i in range(len(info.kernel_size))]
    spatial = reduce(lambda acc, factor: acc[..., None, :] * factor, axes, np.ones(arrays["in"].shape[1]))
    return (spatial[..., None, :] * arrays["in"]) @ arrays["out"].T


def _tt(arrays, info):
    cores = [arrays[f"core{i}"] for i in range(len(info.kernel_size) + 2)]
    return np.moveaxis(tt_to_tensor(cores), 0, -2)


def _ttm(arrays, info):
    cores = [arrays[f"core{i}"] for i in range(len(arrays))]
    matrix = tt_matrix_to_tensor(cores)
    return _pointwise(matrix.reshape(info.in_channels, info.out_channels), info)


def _pointwise(matrix, info):
    return matrix.reshape((1,) * len(info.kernel_size) + matrix.shape)


KERNEL_FROM_FACTORS = {
    "tucker": _tucker, "cp": _cp, "tt": _tt, "ttm": _ttm,
    "svd": lambda arrays, info: _pointwise(arrays["first"] @ arrays["second"], info),
    "qr": lambda arrays, info: _pointwise(arrays["first"] @ arrays["second"], info),
}


def dilate(kernel: np.ndarray, dilation) -> np.ndarray:
    """The kernel spread over its dilated span, zeros between taps: what it applies to a receptive field."""
    ndim = kernel.ndim - 2
    if ndim == 0 or all(d == 1 for d in dilation):
        return kernel
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape[:ndim], dilation))
    spread = np.zeros(span + kernel.shape[ndim:], kernel.dtype)
    spread[tuple(slice(None, None, d) for d in dilation)] = kernel
    return spread


def fast_kernel(method: str, info: LayerInfo, factors: Factors) -> tuple[np.ndarray, np.ndarray]:
    """What `effective_kernel` returns, from the factors with numpy; falls back to it for other methods."""
    if method not in KERNEL_FROM_FACTORS:
        return effective_kernel(method, info, factors)
    kernel = dilate(KERNEL_FROM_FACTORS[method](factors.arrays, info), info.dilation or ())
    bias = factors.bias if factors.bias is not None else np.zeros(info.out_channels)
    return kernel.reshape(-1, info.out_channels).astype(np.float32), np.asarray(bias, np.float32)


def apply_activation(name: str, values: np.ndarray) -> np.ndarray:
    if name == "linear":
        return values
    if name == "relu":
        return np.maximum(values, 0.0)
    return keras.ops.convert_to_numpy(keras.activations.get(name)(values))


class LayerScorer:
    """Similarity of (method, rank) candidates for one layer, memoised; decompositions via a FactorCache."""

    def __init__(self, info: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None, samples: LayerSamples,
                 metric: Metric, cache: FactorCache | None = None):
        self.info = info
        self.samples = samples
        self.metric = metric
        self.cache = cache or FactorCache(info, kernel, bias)
        self.patch_info = patch_info(info, samples)
        self._memo: dict[tuple, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self._memo)

    def similarity(self, method: str, rank) -> float:
        """Similarity of the fast (search) decomposition at `rank`."""
        key = ("search", method, get(method).resolve(self.info, rank))
        if key not in self._memo:
            self._memo[key] = self.score_factors(method, self.cache.search(method, rank))
        return self._memo[key]

    def final(self, method: str, rank) -> tuple[Factors, float]:
        """The factors for the compressed model, and their similarity."""
        factors = self.cache.final(method, rank)
        return factors, self.score_factors(method, factors)

    def score_factors(self, method: str, factors: Factors) -> float:
        weights, bias = fast_kernel(method, self.patch_info, factors)
        predicted = apply_activation(self.samples.activation, self.samples.patches @ weights + bias)
        return float(self.metric(self.samples.outputs, predicted))
