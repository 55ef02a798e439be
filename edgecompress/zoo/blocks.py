"""Building blocks shared by zoo models: conv + BatchNorm + activation, in 1-D, 2-D or 3-D."""
from __future__ import annotations

import keras

CONV_BY_RANK = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}


def conv_bn_act(x, filters: int, kernel_size, name: str, strides=1, activation: str = "relu",
                bn_momentum: float = 0.99):
    """Conv (no bias: BatchNorm's shift replaces it) -> BatchNorm -> activation, on a 1/2/3-D feature map."""
    conv = CONV_BY_RANK[len(x.shape) - 2]
    x = conv(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x) if activation else x
