"""Sequential capture: the inputs a layer sees once the layers before it are compressed.

Each block is first fitted on the original model's inputs (independent capture). With sequential capture the
final blocks are built in graph order, and each layer's output factor is refitted on the patches its input
has in the model whose earlier layers are already replaced, against the original layer's outputs at the same
positions, so the errors of earlier blocks are corrected instead of compounded (asymmetric reconstruction,
Zhang et al., TPAMI 2015). The patches are cut at the positions capture sampled (`LayerSamples.where`), so
memory stays bounded by the number of samples, not by the size of the feature maps.
"""
from __future__ import annotations

import keras
import numpy as np

from edgecompress.select.capture import MAX_BATCH, LayerSamples, gather_patches

CAPTURES = ("sequential", "independent")


def prefix_patches(model: keras.Model, layer_name: str, x: np.ndarray, samples: LayerSamples,
                   batch_size: int = MAX_BATCH) -> np.ndarray:
    """(samples, patch_size) float32: the patches of layer `layer_name`'s input in `model` (the layer, or the
    first layer of the block that replaced it) at the positions where capture sampled the original layer, computed
    over only the calibration images that hold a sample."""
    tap = keras.Model(model.inputs, model.get_layer(layer_name).input)
    images = samples.where[:, 0]
    patches = np.empty_like(samples.patches)
    wanted = np.unique(images)
    for start in range(0, len(wanted), batch_size):
        chunk = wanted[start:start + batch_size]
        inputs = np.asarray(tap.predict_on_batch(np.asarray(x[chunk], np.float32)))
        rows = np.flatnonzero(np.isin(images, chunk))
        local_images = np.searchsorted(chunk, images[rows])
        patches[rows] = gather_patches(inputs, samples.geometry, local_images, samples.where[rows, 1:])
    return patches
