"""Local reconstruction: a few hundred Adam steps per block on its captured samples, labels not needed.

Each block is trained alone, as the function it is on one receptive-field patch (`score.patch_info`), to make
its outputs after the layer's activation match the original layer's at the same positions (mean squared
error), in the spirit of BRECQ / AdaRound for quantization. The closed-form steps before it (whitened
decomposition, least-squares refit of the last factor) only move one factor; this moves all of them, which is
the only data-aware fit a format without a separate output factor (TT-matrix) gets.

A fifth of the samples is held out: the trained weights are kept only where they score a higher similarity
there than the block had before, so reconstruction never makes a block worse on data it was not fitted to.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import keras
import numpy as np
import tensorflow as tf

from edgecompress.factorize import Factors, get
from edgecompress.graph.layers import LayerInfo
from edgecompress.select.similarity import Metric

BATCH_SIZE = 256
HELD_OUT_FRACTION = 0.2
# Adam's step is about the learning rate per weight, whatever the gradient's scale: tied to the block's own
# weight scale so blocks of very different magnitudes move by the same relative amount.
RELATIVE_LEARNING_RATE = 0.01


@dataclass
class Reconstruction:
    """What local reconstruction did to one block: its weights (None: not kept) and the held-out similarity
    before and after."""

    weights: list[list[np.ndarray]] | None
    held_out_before: float
    held_out_after: float
    similarity: float | None  # on every sample, where kept

    @property
    def kept(self) -> bool:
        return self.weights is not None


def patch_block(method: str, patch_info: LayerInfo, factors: Factors, activation: str) -> tuple[keras.Model, list]:
    """The block on one patch, (N, *patch_shape) -> (N, Cout), with the layer's activation at its end; and the
    block's own layers in it."""
    layers = get(method).build(patch_info, factors)
    inputs = keras.Input(tuple(patch_info.input_shape))
    outputs = reduce(lambda x, layer: layer(x), layers, inputs)
    outputs = keras.layers.Activation(activation)(keras.layers.Reshape((patch_info.out_channels,))(outputs))
    return keras.Model(inputs, outputs), layers


def reconstruct_block(method: str, patch_info: LayerInfo, factors: Factors, inputs: np.ndarray,
                      outputs: np.ndarray, activation: str, metric: Metric, steps: int,
                      seed: int = 0) -> Reconstruction:
    """Train the block built from `factors` for `steps` Adam steps on (inputs: patches (N, patch_size), outputs:
    the original layer's post-activation outputs (N, Cout)); keep the result where it scores higher on the
    held-out fifth."""
    model, layers = patch_block(method, patch_info, factors, activation)
    shaped = np.asarray(inputs, np.float32).reshape((len(inputs),) + tuple(patch_info.input_shape))
    order = np.random.default_rng(seed).permutation(len(shaped))
    held_out = max(1, int(len(order) * HELD_OUT_FRACTION)) if len(order) > 1 else 0
    train, test = order[held_out:], order[:held_out] if held_out else order

    def similarity(rows: np.ndarray) -> float:
        predicted = np.asarray(model.predict(shaped[rows], batch_size=4096, verbose=0))
        return float(metric(outputs[rows], predicted))

    before = similarity(test)
    weight_rms = np.sqrt(np.mean(np.concatenate([np.ravel(w) ** 2 for w in model.get_weights()])))
    rate = RELATIVE_LEARNING_RATE * float(weight_rms or 1.0)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(rate, steps)),
                  loss="mean_squared_error")
    batches = (tf.data.Dataset.from_tensor_slices((shaped[train], np.asarray(outputs[train], np.float32)))
               .shuffle(len(train), seed=seed).repeat().batch(BATCH_SIZE))
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # shuffled above
    after = similarity(test)
    if after <= before:
        return Reconstruction(None, before, after, None)
    return Reconstruction([layer.get_weights() for layer in layers], before, after, similarity(order))


__all__ = ["Reconstruction", "patch_block", "reconstruct_block"]
