"""Pass (TFLite): a dilated Conv3D as an undilated one whose kernel has the zeros between taps written out.

TensorFlow traces a dilated 3-D conv through SpaceToBatchND/BatchToSpaceND on 5-D tensors, which no TFLite builtin
expresses. The zero-filled kernel gives the same outputs with builtin CONV_3D, at the FLOPs of its larger extent.
Runs after the layout pass, so only Conv3D layers that stay 3-D (kernel on depth and on height/width) are touched.
"""
from __future__ import annotations

import keras
import numpy as np

from edgecompress.graph.rebuild import rebuild
from edgecompress.lower.passes import PassResult, fresh_copy


def zero_filled_kernel(kernel: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """(k..., cin, cout) dilated by `dilation` -> ((k-1)*d+1 ..., cin, cout) with zeros between the taps."""
    spatial = kernel.shape[:-2]
    extent = tuple((k - 1) * d + 1 for k, d in zip(spatial, dilation))
    dense = np.zeros(extent + kernel.shape[-2:], kernel.dtype)
    dense[tuple(slice(None, None, d) for d in dilation)] = kernel
    return dense


def _undilated(layer: keras.layers.Conv3D) -> keras.layers.Conv3D:
    kernel, *rest = layer.get_weights()
    dense = zero_filled_kernel(kernel, tuple(layer.dilation_rate))
    overrides = {"kernel_size": dense.shape[:-2], "dilation_rate": (1, 1, 1)}
    return fresh_copy(layer, overrides, [dense, *rest])


def undilate_conv3d_pass(model: keras.Model) -> PassResult:
    targets = [layer for layer in model.layers
               if isinstance(layer, keras.layers.Conv3D) and any(d > 1 for d in layer.dilation_rate)]
    if not targets:
        return PassResult(model, False, "no dilated Conv3D left after the layout pass")
    substitutes = {layer.name: [_undilated(layer)] for layer in targets}
    return PassResult(rebuild(model, substitutes), True, "dilated Conv3D as CONV_3D with a zero-filled kernel",
                      [layer.name for layer in targets])
