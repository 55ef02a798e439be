"""Reconstruct what the removed channels carried: each layer that reads pruned channels gets its kept input
weights and bias refitted by least squares on the calibration data (He et al., "Channel Pruning for
Accelerating Very Deep Neural Networks", ICCV 2017, without the lasso; ThiNet's reconstruction step).

A removed input x_R is predicted from the kept ones, x_R ~ A x_S + a (ridge least squares on the channel second
moments E[x x^T] and means, one regression shared by the kernel's taps), and the consumer's weights on x_R move
onto x_S: W_S += A^T W_R per tap, bias += sum over taps of W_R^T a. Exact when the removed channels are linear
in the kept ones; never worse in expectation than dropping them. The constant term ignores zero padding at
borders. A Dense read through a Flatten regresses over flattened positions, up to MAX_FEATURES of them.
"""
from __future__ import annotations

import keras
import numpy as np

from edgecompress.prune.groups import DEPTHWISE, SEPARABLE, ChannelGraph
from edgecompress.prune.surgery import layer_masks

MAX_FEATURES = 4096
RIDGE = 1e-4       # of each kept channel's own second moment: shrinks every coefficient by about 1e-4
DEAD_RIDGE = 1e-8  # of the mean second moment: keeps the system solvable when a channel is never active
REFIT_SAMPLES = 512


def consumers(model: keras.Model, graph: ChannelGraph) -> list[str]:
    """Layers that mix their input channels with one kernel (Conv/Dense), small enough to refit."""
    names = []
    for use in graph.uses:
        layer = model.get_layer(use.layer)
        if isinstance(layer, DEPTHWISE + SEPARABLE + (keras.layers.BatchNormalization,)):
            continue
        if len(use.input_atoms) <= MAX_FEATURES:
            names.append(use.layer)
    return names


def input_moments(model: keras.Model, names: list[str], x: np.ndarray,
                  batch_size: int = 64) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (E[x x^T], E[x])} over the batch and positions of each named layer's input on `x`."""
    if not names:
        return {}
    probe = keras.Model(model.input, [model.get_layer(name).input for name in names])
    second = {name: 0.0 for name in names}
    first = {name: 0.0 for name in names}
    rows = {name: 0 for name in names}
    for start in range(0, len(x), batch_size):
        outputs = probe(np.asarray(x[start:start + batch_size], dtype=np.float32), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, tensor in zip(names, outputs):
            values = np.asarray(tensor, dtype=np.float64)
            values = values.reshape(-1, values.shape[-1])
            second[name] = second[name] + values.T @ values
            first[name] = first[name] + values.sum(axis=0)
            rows[name] += len(values)
    return {name: (second[name] / rows[name], first[name] / rows[name]) for name in names}


def regression(second: np.ndarray, mean: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, a) with x_removed ~ A x_kept + a, by ridge least squares on the moments."""
    removed = ~kept
    count = int(kept.sum())
    gram = np.empty((count + 1, count + 1))
    gram[:count, :count] = second[np.ix_(kept, kept)]
    gram[:count, count] = gram[count, :count] = mean[kept]
    gram[count, count] = 1.0
    cross = np.concatenate([second[np.ix_(removed, kept)], mean[removed][:, None]], axis=1)
    diagonal = np.diag(gram)
    ridge = RIDGE * diagonal + DEAD_RIDGE * max(float(np.mean(diagonal)), 1e-12)  # each coefficient shrinks alike
    solution = np.linalg.solve(gram + np.diag(ridge), cross.T).T
    return solution[:, :count], solution[:, count]


def refitted_weights(model: keras.Model, graph: ChannelGraph, removed: set[int],
                     x: np.ndarray) -> dict[str, list[np.ndarray]]:
    """{consumer: its full (unsliced) weights with the removed inputs' contribution moved onto the kept ones}."""
    masks = layer_masks(graph, removed)
    names = [name for name in consumers(model, graph) if masks[name].inputs is not None
             and not masks[name].inputs.all() and masks[name].inputs.any()]
    moments = input_moments(model, names, x[:REFIT_SAMPLES])
    refits = {}
    for name in names:
        kept = masks[name].inputs
        moved, offset = regression(*moments[name], kept)
        layer = model.get_layer(name)
        weights = [w.astype(np.float64) for w in layer.get_weights()]
        kernel = weights[0]
        gone = np.compress(~kept, kernel, axis=-2)             # (..., removed, out)
        kernel[..., kept, :] += np.einsum("rs,...ro->...so", moved, gone)
        if layer.use_bias:
            weights[1] = weights[1] + np.einsum("r,...ro->...o", offset, gone).reshape(-1, gone.shape[-1]).sum(0)
        refits[name] = [w.astype(np.float32) for w in weights]
    return refits
