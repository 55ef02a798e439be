"""Pass (ONNX): a Normalization layer as a per-channel multiply-add whose constants are weights.

Keras' Normalization keeps mean and variance as tensors computed when it was built, not as variables; traced in
a tf.function they are captured eager tensors, which tf2onnx turns into extra graph inputs instead of constants
(EfficientNet's front end: "Required inputs ... normalization/Sub/y:0 are missing"). Variables are frozen.
"""
from __future__ import annotations

import keras
import numpy as np

from edgecompress.graph.rebuild import rebuild
from edgecompress.lower.passes import PassResult, input_shape_of


@keras.saving.register_keras_serializable(package="edgecompress.lower")
class ChannelAffine(keras.layers.Layer):
    """y = x * scale + offset, both broadcast over the input like Normalization's mean and variance."""

    def __init__(self, broadcast_shape, **kwargs):
        super().__init__(**kwargs)
        self.broadcast_shape = tuple(int(d) for d in broadcast_shape)

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=self.broadcast_shape, initializer="ones", trainable=False)
        self.offset = self.add_weight(name="offset", shape=self.broadcast_shape, initializer="zeros",
                                      trainable=False)

    def call(self, inputs):
        return inputs * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "broadcast_shape": self.broadcast_shape}


def affine_of(layer: keras.layers.Normalization) -> ChannelAffine:
    mean = keras.ops.convert_to_numpy(layer.mean).astype(np.float32)
    variance = keras.ops.convert_to_numpy(layer.variance).astype(np.float32)
    spread = np.maximum(np.sqrt(variance), keras.backend.epsilon())
    scale, offset = (spread, mean) if layer.invert else (1.0 / spread, -mean / spread)
    affine = ChannelAffine(mean.shape, name=layer.name)
    affine.build(input_shape_of(layer))
    affine.set_weights([scale.astype(np.float32), offset.astype(np.float32)])
    return affine


def normalization_pass(model: keras.Model) -> PassResult:
    targets = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if not targets:
        return PassResult(model, False, "no Normalization layer")
    substitutes = {layer.name: [affine_of(layer)] for layer in targets}
    return PassResult(rebuild(model, substitutes), True, "Normalization as a multiply-add with frozen constants",
                      [layer.name for layer in targets])
