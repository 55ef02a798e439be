"""Channel equalization before int8: inside a factorized block, rescale each intermediate feature map's channels
so one per-tensor activation scale fits them all, moving the inverse scale into the next factor's weights.

A factorized block is a chain of linear ops with no activation between them (CP: 1x1 -> depthwise -> depthwise ->
1x1). Its factors come out of a decomposition with arbitrary per-component scales, so one channel of an
intermediate map can span 100x the range of another; full int8 gives each such map one scale (per tensor) and
rounds the small channels away. Scaling channel c of the map by s_c (the producer's output channel c and bias
times s_c, the consumer's input channel c divided by s_c) leaves the float function unchanged.
Choice of s_c, from the activation range a_c on calibration data and the consumer's input-channel weight range
w_c: into a depthwise consumer (per-channel weights) every channel is brought to the map's largest range; into a
mixing consumer (per-output-channel weights, shared across input channels) the two are balanced,
a_c * s_c = w_c / s_c (cross-layer equalization as in Nagel et al., "Data-Free Quantization", 2019, with measured
activation ranges in place of the producer's weight ranges).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from edgecompress.graph.nodes import call_sites
from edgecompress.lower.passes import PassResult

MIXING = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
MAX_SCALE = 1e3  # a dead channel (range ~0) is left alone rather than blown up


@dataclass(frozen=True)
class Link:
    """A producer whose only consumer is the next linear op of the same chain."""

    producer: keras.layers.Layer
    consumer: keras.layers.Layer


def _is_linear_op(layer) -> bool:
    if isinstance(layer, DEPTHWISE):
        return layer.depth_multiplier == 1
    return isinstance(layer, MIXING) and getattr(layer, "groups", 1) == 1


def links(model: keras.Model) -> list[Link]:
    """Producer -> consumer pairs inside linear chains, in graph order: the producer has no activation, one call
    site and one consumer, which reads its output directly."""
    sites = call_sites(model)
    consumers: dict[int, list] = {}
    for layer in model.layers:
        for node in sites.get(id(layer), []):
            for tensor in node.input_tensors:
                consumers.setdefault(id(tensor._keras_history.operation), []).append(layer)
    found = []
    for layer in model.layers:
        readers = consumers.get(id(layer), [])
        if (_is_linear_op(layer) and keras.activations.serialize(layer.activation) == "linear"
                and len(sites.get(id(layer), [])) == 1 and len(readers) == 1 and _is_linear_op(readers[0])
                and len(sites.get(id(readers[0]), [])) == 1):
            found.append(Link(layer, readers[0]))
    return found


def channel_scales(activation_range: np.ndarray, consumer_range: np.ndarray | None) -> np.ndarray:
    """s_c per channel: to the largest activation range (consumer_range None: depthwise), else balanced."""
    live = activation_range > 0
    scales = np.ones_like(activation_range)
    if consumer_range is None:
        scales[live] = activation_range.max() / activation_range[live]
    else:
        live &= consumer_range > 0
        scales[live] = np.sqrt(consumer_range[live] / activation_range[live])
        scales /= scales[live].max() if live.any() else 1.0
        scales[live] *= activation_range.max() / (activation_range[live] * scales[live]).max()
    return np.clip(scales, 1.0 / MAX_SCALE, MAX_SCALE)


def equalize(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> list[str]:
    """Equalize every link of `model` in place on calibration inputs `x`; the producers rescaled, in order."""
    done = []
    for link in links(model):
        probe = keras.Model(model.inputs, link.producer.output)
        outputs = probe.predict(x, batch_size=batch_size, verbose=0)
        activation_range = np.abs(outputs).reshape(-1, outputs.shape[-1]).max(axis=0)
        consumer_kernel = link.consumer.get_weights()[0]
        consumer_range = None if isinstance(link.consumer, DEPTHWISE) else \
            np.abs(np.moveaxis(consumer_kernel, -2, 0)).reshape(consumer_kernel.shape[-2], -1).max(axis=1)
        scales = channel_scales(activation_range, consumer_range).astype(np.float32)
        _scale_outputs(link.producer, scales)
        _scale_inputs(link.consumer, 1.0 / scales)
        done.append(link.producer.name)
    return done


def _scale_outputs(layer, scales: np.ndarray) -> None:
    weights = layer.get_weights()
    kernel = weights[0]
    if isinstance(layer, DEPTHWISE):  # (..., channels, 1): output channel c is input channel c
        weights[0] = kernel * scales[:, None]
    else:
        weights[0] = kernel * scales
    if layer.use_bias:
        weights[1] = weights[1] * scales
    layer.set_weights(weights)


def _scale_inputs(layer, scales: np.ndarray) -> None:
    weights = layer.get_weights()
    weights[0] = weights[0] * scales[:, None]  # input channel axis is -2 for Conv, Dense and Depthwise kernels
    layer.set_weights(weights)


def equalize_pass(model: keras.Model, x: np.ndarray) -> PassResult:
    """The int8 pass: a copy of `model` with every linear chain equalized on calibration inputs `x`."""
    if not links(model):
        return PassResult(model, False, "no linear chain (factorized block) to equalize")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    where = equalize(copy, np.asarray(x, np.float32))
    return PassResult(copy, True, f"equalized the channels after {len(where)} factors for int8", where)
