"""Score a candidate block on a layer's captured samples: Ŷ = activation(patches @ W_block + b) vs Y.

Every block the methods build is linear up to its last activation, so on a receptive-field patch it acts
as one matrix W_block. `effective_kernel` reads that matrix off the block the method actually builds (by
feeding it the identity patches): it works for any registered method and scores exactly the operator
deployed. Where a method has `kernel_from_factors`, `fast_kernel` rebuilds the same matrix from the factors with numpy,
about 30x cheaper (no Keras layers); tests/select/test_score.py checks the two agree for every method,
layer kind, stride, padding and dilation.
"""
from __future__ import annotations

import dataclasses
from functools import reduce

import keras
import numpy as np

from edgecompress.factorize import Factors, get
from edgecompress.factorize.datafit import ridge_refit
from edgecompress.graph.layers import LayerInfo
from edgecompress.select.capture import LayerSamples
from edgecompress.select.factorcache import FactorCache
from edgecompress.select.similarity import Metric

PROBE_BATCH = 2048
# Whether the search scores each candidate after its output-factor refit (the block that would be deployed) instead
# of the bare decomposition. Measured not to pay (bench/results/search_refit.md, search_refit_hybrid.md): hybrid lost
# 0.12 pt more on average over 24 rows without fine-tuning, single methods gained 0.2 pt, and the search took 1.5x
# as long; the refit is fitted and scored on the same samples, so it flatters every candidate. Off by default.
SEARCH_REFIT = False


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
    """What `effective_kernel` returns, from the method's `kernel_from_factors` where it has one."""
    kernel = get(method).kernel_from_factors(info, factors)
    if kernel is None:
        return effective_kernel(method, info, factors)
    kernel = dilate(kernel, info.dilation or ())
    bias = factors.bias if factors.bias is not None else np.zeros(info.out_channels)
    return kernel.reshape(-1, info.out_channels).astype(np.float32), np.asarray(bias, np.float32)


def apply_activation(name: str, values: np.ndarray) -> np.ndarray:
    if name == "linear":
        return values
    if name == "relu":
        return np.maximum(values, 0.0)
    return keras.ops.convert_to_numpy(keras.activations.get(name)(values))


def refit_output_factor(method: str, info: LayerInfo, factors: Factors, inputs: np.ndarray,
                        original_inputs: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> Factors | None:
    """The factors with the block's last linear factor and bias refitted by ridge least squares: on `inputs`
    (patches, N x patch_size) the block's pre-activation output matches the original layer's on
    `original_inputs` (the same positions of the uncompressed model: x W + b). With independent capture both are
    the captured patches; with sequential capture `inputs` come from the compressed layers before this one.
    None where the method has no output factor or no numpy kernel. The bias absorbs the mean shift."""
    chosen = get(method)
    last = chosen.output_factor(factors)
    if last is None:
        return None
    head = chosen.kernel_from_factors(info, chosen.with_output_factor(factors, np.eye(last.shape[0]), None))
    if head is None:
        return None
    head_matrix = dilate(head, info.dilation or ()).reshape(-1, last.shape[0])
    targets = original_inputs @ dilate(kernel, info.dilation or ()).reshape(-1, info.out_channels)
    if bias is not None:
        targets = targets + bias
    matrix, fitted_bias = ridge_refit(inputs @ head_matrix.astype(np.float32), targets,
                                      fit_intercept=bias is not None)
    return chosen.with_output_factor(factors, matrix, fitted_bias if bias is not None else None)


class LayerScorer:
    """Similarity of (method, rank) candidates for one layer, memoised; decompositions via a FactorCache.
    With `refit`, the output factor is refitted on the samples where that scores higher: for the final factors,
    and with `search_refit` (default SEARCH_REFIT) for every candidate the search scores too."""

    def __init__(self, info: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None, samples: LayerSamples,
                 metric: Metric, cache: FactorCache | None = None, refit: bool = False,
                 search_refit: bool | None = None):
        self.info = info
        self.samples = samples
        self.metric = metric
        self.cache = cache or FactorCache(info, kernel, bias)
        self.patch_info = patch_info(info, samples)
        self.kernel, self.bias, self.refit = kernel, bias, refit
        self.search_refit = refit and (SEARCH_REFIT if search_refit is None else search_refit)
        self.refits_kept = 0
        self._memo: dict[tuple, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self._memo)

    def similarity(self, method: str, rank) -> float:
        """Similarity of the fast (search) decomposition at `rank`."""
        key = ("search", method, get(method).resolve(self.info, rank))
        if key not in self._memo:
            factors = self.cache.search(method, rank)
            if self.search_refit:
                self._memo[key] = self._better_of_refit(method, factors, self.samples.patches)[1]
            else:
                self._memo[key] = self.score_factors(method, factors)
        return self._memo[key]

    def final(self, method: str, rank) -> tuple[Factors, float]:
        """The factors for the compressed model, and their similarity."""
        factors = self.cache.final(method, rank)
        if self.refit:
            return self.refit_on(method, factors, self.samples.patches)
        return factors, self.score_factors(method, factors)

    def refit_on(self, method: str, factors: Factors, inputs: np.ndarray) -> tuple[Factors, float]:
        """Refit the output factor on `inputs` (patches at the samples' positions) against the original outputs,
        and keep the refit only where it scores higher there; returns the factors and their similarity on
        `inputs`."""
        factors, similarity, refitted = self._better_of_refit(method, factors, inputs)
        self.refits_kept += refitted
        return factors, similarity

    def _better_of_refit(self, method: str, factors: Factors, inputs: np.ndarray) -> tuple[Factors, float, bool]:
        """The factors or their refit on `inputs`, whichever scores higher there; its similarity; whether refitted."""
        similarity = self.score_factors(method, factors, inputs)
        refitted = refit_output_factor(method, self.info, factors, inputs, self.samples.patches, self.kernel,
                                       self.bias)
        refitted_similarity = self.score_factors(method, refitted, inputs) if refitted is not None else -np.inf
        if refitted_similarity > similarity:  # a refit that scores lower is not kept
            return refitted, refitted_similarity, True
        return factors, similarity, False

    def score_factors(self, method: str, factors: Factors, inputs: np.ndarray | None = None) -> float:
        """Similarity of the block's outputs on `inputs` (default: the captured patches) to the original's."""
        weights, bias = fast_kernel(method, self.patch_info, factors)
        inputs = self.samples.patches if inputs is None else inputs
        predicted = apply_activation(self.samples.activation, inputs @ weights + bias)
        return float(self.metric(self.samples.outputs, predicted))
