"""One streamed pass of the (BatchNorm-folded) model over calibration data, keeping for each candidate layer
the receptive-field patches of a few sampled output positions and the post-activation outputs there.

Why patches and not whole feature maps: every block we score is linear up to its final activation, so its
output at one position depends only on that position's receptive field. Keeping (patch, output) pairs at
randomly sampled positions of *every* calibration image bounds memory by the number of samples, not by
image size, and spreads the samples over all images instead of keeping whole maps of a few. The patch
is cut from the zero-padded input exactly as the layer's 'same'/'valid' padding and strides place it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np

from edgecompress.errors import DataError
from edgecompress.factorize.datafit import input_stats
from edgecompress.graph.layers import LayerInfo
from edgecompress.progress import Progress

DEFAULT_MEMORY_CAP_BYTES = 1 << 30
DEFAULT_SAMPLES_PER_LAYER = 4096
MIN_SAMPLES_PER_LAYER = 16
MAX_BATCH = 256
# Share of the cap for the samples kept; the rest bounds one batch of activations in flight.
STORED_SHARE = 0.75
# A channel whose variance is below this share of the mean squared input counts as constant (float32 noise).
CONSTANT_VARIANCE_SHARE = 1e-10


@dataclass(frozen=True)
class Geometry:
    """Where the receptive field of each output position of a layer lies in its (padded) input."""

    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    span: tuple[int, ...]
    strides: tuple[int, ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]
    in_channels: int

    @property
    def patch_shape(self) -> tuple[int, ...]:
        return self.span + (self.in_channels,)

    @property
    def patch_size(self) -> int:
        return math.prod(self.patch_shape)

    @property
    def positions(self) -> int:
        return math.prod(self.out_spatial)


def geometry_of(info: LayerInfo, in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
    """Geometry from the layer's config and the shapes (no batch axis) it was actually called with."""
    in_spatial, out_spatial = tuple(in_shape[:-1]), tuple(out_shape[:-1])
    ndim = len(in_spatial)
    if info.kind == "dense" or not info.kernel_size:
        ones, zeros = (1,) * ndim, (0,) * ndim
        return Geometry(in_spatial, out_spatial, ones, ones, zeros, zeros, int(in_shape[-1]))
    span = tuple((k - 1) * d + 1 for k, d in zip(info.kernel_size, info.dilation))
    pad_total = [0] * ndim
    if info.padding == "same":
        pad_total = [max((o - 1) * s + k - n, 0) for o, s, k, n in zip(out_spatial, info.strides, span, in_spatial)]
    before = tuple(t // 2 for t in pad_total)
    after = tuple(t - b for t, b in zip(pad_total, before))
    return Geometry(in_spatial, out_spatial, span, tuple(info.strides), before, after, int(in_shape[-1]))


def gather_patches(inputs: np.ndarray, geometry: Geometry, images: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(n, patch_size) receptive fields of output `positions` (n, ndim) of `images` (n,) in a batch of inputs."""
    ndim = len(geometry.span)
    if any(geometry.pad_before) or any(geometry.pad_after):
        pads = [(0, 0)] + list(zip(geometry.pad_before, geometry.pad_after)) + [(0, 0)]
        inputs = np.pad(inputs, pads)
    index = [images.reshape((-1,) + (1,) * ndim)]
    for axis in range(ndim):
        starts = positions[:, axis] * geometry.strides[axis]
        window = starts[:, None] + np.arange(geometry.span[axis])[None, :]
        shape = [len(images)] + [1] * ndim
        shape[axis + 1] = geometry.span[axis]
        index.append(window.reshape(shape))
    return inputs[tuple(index)].reshape(len(images), -1)


def output_tap(model: keras.Model, layer) -> tuple[object, str]:
    """The tensor to compare against and the activation to apply to a block's output to match it.

    A linear layer whose only consumer is an Activation/ReLU layer is compared after that activation:
    ReLU hides errors on negative pre-activations, and the similarity should not count them.
    """
    own = keras.activations.serialize(layer.activation) if hasattr(layer, "activation") else "linear"
    own = own if isinstance(own, str) else own.get("config", {}).get("name", "linear")
    consumers = [node.operation for node in layer._outbound_nodes]
    if own == "linear" and len(consumers) == 1:
        follower = _activation_name(consumers[0])
        if follower and consumers[0] in model.layers:
            return consumers[0].output, follower
    return layer.output, own


def _activation_name(layer) -> str | None:
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        return name if isinstance(name, str) else None
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        plain = config["max_value"] is None and not config["negative_slope"] and not config["threshold"]
        return "relu" if plain else None
    return None


def check_calibration(model: keras.Model, x: np.ndarray, source: str = "calibration data") -> None:
    """Raise DataError naming both shapes when samples do not fit the model's input."""
    if len(model.inputs) != 1:
        shapes = ", ".join(str(tuple(t.shape[1:])) for t in model.inputs)
        raise DataError(f"model {model.name!r} has {len(model.inputs)} inputs ({shapes}); edgecompress compresses "
                        f"single-input models: compress the single-input sub-model that holds the convs")
    expected = tuple(model.inputs[0].shape[1:])
    got = tuple(x.shape[1:])
    fits = len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))
    if not fits:
        shown = tuple("?" if e is None else e for e in expected)
        raise DataError(f"{source}: samples have shape {got} but model {model.name!r} takes inputs of shape "
                        f"{shown}; give calibration data of the model's input shape (channels-last)")
    if len(x) == 0:
        raise DataError(f"{source}: has no samples; give at least one calibration input")


@dataclass
class LayerSamples:
    """What the search needs of one layer: input patches and outputs at the same sampled positions."""

    name: str
    geometry: Geometry
    patches: np.ndarray  # (samples, patch_size) float32
    outputs: np.ndarray  # (samples, out_channels) float32, after `activation`
    activation: str
    where: np.ndarray    # (samples, 1 + ndim) int32: image index in the calibration data, output position
    filled: int = 0

    @property
    def nbytes(self) -> int:
        return int(self.patches.nbytes + self.outputs.nbytes + self.where.nbytes)

    def channel_second_moment(self, dilation: Sequence[int] | None = None) -> np.ndarray:
        """E[x_t x_tᵀ] (Cin, Cin), float64, over the input-channel vectors x_t at the kernel's taps of every
        sampled patch (taps every `dilation` positions of the span): what data-aware decomposition whitens by."""
        geometry = self.geometry
        taps = self.patches.reshape((len(self.patches),) + geometry.patch_shape)
        if dilation and any(d > 1 for d in dilation):
            taps = taps[(slice(None),) + tuple(slice(None, None, d) for d in dilation)]
        return input_stats(taps.reshape(-1, geometry.in_channels), (geometry.in_channels,)).second_moment

    def input_notes(self) -> list[str]:
        """What about these calibration inputs makes the input covariance rank-deficient (data-aware
        decomposition regularizes it): zero or constant input channels, fewer patches than patch entries."""
        geometry, notes = self.geometry, []
        if len(self.patches) < geometry.patch_size:
            notes.append(f"calibration: {len(self.patches)} input patches, fewer than the patch size "
                         f"{geometry.patch_size}: input covariance regularized")
        channels = self.patches.reshape(-1, geometry.in_channels).astype(np.float64)
        if not len(channels):
            return notes
        scale = max(float(np.mean(channels ** 2)), np.finfo(np.float32).tiny)
        zero = np.all(channels == 0.0, axis=0)
        constant = ~zero & (channels.var(axis=0) <= CONSTANT_VARIANCE_SHARE * scale)
        if zero.all():
            notes.append("calibration: the input is all zero")
        elif zero.any():
            notes.append(f"calibration: {int(zero.sum())} of {geometry.in_channels} input channels are zero")
        if constant.all():
            notes.append("calibration: the input is constant")
        elif constant.any():
            notes.append(f"calibration: {int(constant.sum())} of {geometry.in_channels} input channels are constant")
        return notes


@dataclass
class Capture:
    layers: dict[str, LayerSamples]
    images: int
    batch_size: int
    memory_cap_bytes: int

    @property
    def nbytes(self) -> int:
        return sum(samples.nbytes for samples in self.layers.values())


def samples_per_image(images: int, positions: int, target: int) -> np.ndarray:
    """How many distinct output positions to sample from each image: about `target` in all, spread evenly."""
    counts = np.full(images, target // images, dtype=np.int64)
    counts[: target % images] += 1
    return np.minimum(counts, positions)


def _tap_model(model: keras.Model, infos: Sequence[LayerInfo]) -> tuple[keras.Model, list[str]]:
    tensors, activations = [], []
    for info in infos:
        layer = model.get_layer(info.name)
        output, activation = output_tap(model, layer)
        tensors += [layer.input, output]
        activations.append(activation)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, tensors, name=f"{model.name}_taps"), activations


def _plan_samples(infos, first, activations, images: int, cap_bytes: int, target: int) -> tuple[dict, dict, int]:
    """Allocate empty sample arrays, as many samples per layer as the cap allows (the same for all layers)."""
    geometries = [geometry_of(info, first[2 * i].shape[1:], first[2 * i + 1].shape[1:])
                  for i, info in enumerate(infos)]
    per_image_bytes = sum(4 * (a.size + b.size) for a, b in zip(first[::2], first[1::2]))
    batch = int(np.clip((cap_bytes * (1 - STORED_SHARE)) // max(per_image_bytes, 1), 1, MAX_BATCH))
    bytes_per_sample = sum(4 * (g.patch_size + info.out_channels + 1 + len(g.out_spatial))
                           for g, info in zip(geometries, infos))
    affordable = int(cap_bytes * STORED_SHARE // max(bytes_per_sample, 1))
    if affordable < MIN_SAMPLES_PER_LAYER:
        raise DataError(f"memory cap of {cap_bytes} bytes keeps fewer than {MIN_SAMPLES_PER_LAYER} samples per "
                        f"layer; raise it to at least {MIN_SAMPLES_PER_LAYER * bytes_per_sample / STORED_SHARE:.0f}")
    layers, counts = {}, {}
    for info, geometry, activation in zip(infos, geometries, activations):
        counts[info.name] = samples_per_image(images, geometry.positions, min(target, affordable))
        total = int(counts[info.name].sum())
        layers[info.name] = LayerSamples(info.name, geometry, np.empty((total, geometry.patch_size), np.float32),
                                         np.empty((total, info.out_channels), np.float32), activation,
                                         np.empty((total, 1 + len(geometry.out_spatial)), np.int32))
    return layers, counts, batch


def _record(samples: LayerSamples, inputs, outputs, counts: np.ndarray, rng: np.random.Generator,
            first_image: int) -> None:
    geometry = samples.geometry
    images = np.repeat(np.arange(len(counts)), counts)
    flat = np.concatenate([rng.choice(geometry.positions, c, replace=False) for c in counts]) if len(images) else \
        np.zeros(0, np.int64)
    positions = np.stack(np.unravel_index(flat, geometry.out_spatial), axis=1) if geometry.out_spatial else \
        np.zeros((len(images), 0), np.int64)
    end = samples.filled + len(images)
    samples.patches[samples.filled:end] = gather_patches(inputs, geometry, images, positions)
    samples.outputs[samples.filled:end] = outputs[(images,) + tuple(positions.T)]
    samples.where[samples.filled:end] = np.column_stack([images + first_image, positions])
    samples.filled = end


def capture(model: keras.Model, x: np.ndarray, infos: Sequence[LayerInfo],
            memory_cap_bytes: int = DEFAULT_MEMORY_CAP_BYTES, samples_per_layer: int = DEFAULT_SAMPLES_PER_LAYER,
            seed: int = 0, progress: Progress | None = None) -> Capture:
    """Run `model` (BatchNorm already folded) once over `x`, batch by batch, sampling every layer in `infos`."""
    check_calibration(model, x)
    taps, activations = _tap_model(model, infos)
    first = [np.asarray(t) for t in taps(_as_float(x[:1]), training=False)]
    layers, counts, batch = _plan_samples(infos, first, activations, len(x), memory_cap_bytes, samples_per_layer)
    rngs = {name: np.random.default_rng([seed, index]) for index, name in enumerate(layers)}
    for start in range(0, len(x), batch):
        tensors = taps.predict_on_batch(_as_float(x[start:start + batch]))
        for index, (name, samples) in enumerate(layers.items()):
            _record(samples, np.asarray(tensors[2 * index]), np.asarray(tensors[2 * index + 1]),
                    counts[name][start:start + batch], rngs[name], start)
        if progress:
            progress("capture", min(start + batch, len(x)), len(x))
    return Capture(layers, len(x), batch, memory_cap_bytes)


def _as_float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else x.astype(np.float32)
