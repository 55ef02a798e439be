"""Collapse a chain of linear conv/dense factors into the one conv/dense layer it equals, by probing it with impulses.

Exact where the algebra is: no bias or activation before the last factor, one padding mode, per spatial axis at
most one strided factor with no kernel after it, and (for 'same' padding) at most one factor with a kernel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from edgecompress.factorize.layers import AxisDepthwise3D, TTMatrixDense
from edgecompress.lower.passes import fresh_copy

CONV_CLASSES = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
          keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, AxisDepthwise3D)
_POINTWISE = (keras.layers.Dense, TTMatrixDense)
PROBE_CHUNK_FLOATS = 4_000_000  # bounds probe memory (~16 MB per chunk)


@dataclass
class ChainGeometry:
    """Per-axis kernel positions, dilation, stride and the padding of the equivalent single conv."""

    kernel: tuple[int, ...]
    dilation: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str
    span: tuple[int, ...]  # extent in input positions of the composed, undilated-probe kernel


def spatial_config(layer, ndim: int) -> tuple[tuple, tuple, tuple, str | None]:
    """(kernel, strides, dilation, padding) of a factor over `ndim` spatial axes; pointwise layers have k = 1."""
    if isinstance(layer, _CONVS):
        return tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate), layer.padding
    strides = tuple(getattr(layer, "strides", None) or (1,) * ndim)
    return (1,) * ndim, strides, (1,) * ndim, None


def carries_bias_or_activation(layer) -> bool:
    activation = getattr(layer, "activation", None)
    return bool(getattr(layer, "use_bias", False)) or activation not in (None, keras.activations.linear)


def why_not_composable(layers, ndim: int) -> str | None:
    for layer in layers:
        if not isinstance(layer, _CONVS + _POINTWISE):
            return f"{layer.name} ({type(layer).__name__}) is not a linear conv/dense factor"
        if getattr(layer, "groups", 1) != 1 or getattr(layer, "data_format", "channels_last") != "channels_last":
            return f"{layer.name} is grouped or channels_first"
    for layer in layers[:-1]:
        if carries_bias_or_activation(layer):
            return f"{layer.name} has a bias or activation before the last factor"
    if ndim == 0 and not all(isinstance(layer, keras.layers.Dense) for layer in layers):
        return "a TT-matrix factor on a flat input has no single-layer equivalent here"
    return None


def geometry(layers, ndim: int) -> ChainGeometry | str:
    """The single conv's geometry, or the reason the chain has none."""
    configs = [spatial_config(layer, ndim) for layer in layers]
    paddings = {pad for k, _, _, pad in configs if pad is not None and any(v > 1 for v in k)}
    if len(paddings) > 1 or "causal" in paddings:
        return f"factors mix paddings {sorted(paddings)}"
    padding = paddings.pop() if paddings else "valid"
    axes = [_axis_geometry([(k[a], s[a], d[a]) for k, s, d, _ in configs], padding) for a in range(ndim)]
    problem = next((axis for axis in axes if isinstance(axis, str)), None)
    if problem:
        return problem
    kernel, dilation, strides, span = zip(*axes) if axes else ((), (), (), ())
    return ChainGeometry(tuple(kernel), tuple(dilation), tuple(strides), padding, tuple(span))


def _axis_geometry(factors: list[tuple[int, int, int]], padding: str):
    """(kernel, dilation, stride, span) along one axis from each factor's (k, stride, dilation)."""
    with_kernel = [i for i, (k, _, _) in enumerate(factors) if k > 1]
    strided = [i for i, (_, s, _) in enumerate(factors) if s > 1]
    dilations = {factors[i][2] for i in with_kernel}
    if len(strided) > 1 or (strided and any(i > strided[0] for i in with_kernel)):
        return "a stride comes before a kernel along the same axis"
    if padding == "same" and len(with_kernel) > 1:
        return "two 'same'-padded kernels along one axis do not compose exactly at the borders"
    if len(dilations) > 1:
        return "factors along one axis use different dilations"
    dilation = dilations.pop() if dilations else 1
    span = 1 + sum((k - 1) * d for k, _, d in factors)
    stride = factors[strided[0]][1] if strided else 1
    return (span - 1) // dilation + 1, dilation, stride, span


def _probe_copies(layers, probe_shape: tuple):
    copies, shape = [], probe_shape
    for layer in layers:
        overrides = {key: value for key, value in (("padding", "valid"), ("activation", None), ("use_bias", False))
                     if key in layer.get_config()}
        if "strides" in layer.get_config():
            overrides["strides"] = None if isinstance(layer, TTMatrixDense) else (1,) * len(layer.strides)
        bias = getattr(layer, "bias", None)
        weights = [w.numpy() for w in layer.weights if w is not bias]
        copies.append(fresh_copy(layer, overrides, weights, input_shape=shape))
        shape = tuple(copies[-1].compute_output_shape(shape))
    return copies


def composed_kernel(layers, in_channels: int, geo: ChainGeometry) -> np.ndarray:
    """The (k..., Cin, Cout) kernel of the chain's linear part: flip of its response to a centred impulse."""
    probe_spatial = tuple(2 * s - 1 for s in geo.span)
    copies = _probe_copies(layers, (None,) + probe_spatial + (in_channels,))
    centre = tuple(s - 1 for s in geo.span)
    chunk = max(1, PROBE_CHUNK_FLOATS // max(1, math.prod(probe_spatial) * in_channels))
    responses = []
    for start in range(0, in_channels, chunk):
        channels = np.arange(start, min(in_channels, start + chunk))
        impulses = np.zeros((len(channels),) + probe_spatial + (in_channels,), np.float32)
        impulses[(np.arange(len(channels)),) + centre + (channels,)] = 1.0
        out = impulses
        for copy in copies:
            out = copy(out)
        responses.append(keras.ops.convert_to_numpy(out))
    response = np.concatenate(responses)  # (Cin, span..., Cout)
    kernel = np.flip(response, axis=tuple(range(1, 1 + len(geo.span))))
    kernel = kernel[(slice(None),) + tuple(slice(None, None, d) for d in geo.dilation)]
    return np.moveaxis(kernel, 0, -2)


def compose(layers, input_shape: tuple, name: str):
    """One built layer equal to `layers` applied in order (bias and activation of the last), or a reason string."""
    ndim = len(input_shape) - 2
    reason = why_not_composable(layers, ndim)
    geo = geometry(layers, ndim) if reason is None else reason
    if isinstance(geo, str):
        return geo
    last = layers[-1]
    kernel = composed_kernel(layers, int(input_shape[-1]), geo)
    activation = getattr(last, "activation", None)
    common = {"use_bias": bool(getattr(last, "use_bias", False)), "activation": activation, "name": name}
    if ndim == 0 or all(isinstance(layer, keras.layers.Dense) for layer in layers):
        merged = keras.layers.Dense(kernel.shape[-1], **common)
        kernel = kernel.reshape(kernel.shape[-2:])
    else:
        merged = CONV_CLASSES[ndim](kernel.shape[-1], geo.kernel, strides=geo.strides, dilation_rate=geo.dilation,
                                    padding=geo.padding, **common)
    merged.build(input_shape)
    merged.set_weights([kernel] + ([last.bias.numpy()] if common["use_bias"] else []))
    return merged
