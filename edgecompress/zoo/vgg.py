"""A small VGG-style net: 3 blocks of two 3x3 conv + BN + ReLU and a max-pool, then a 432 -> 512 -> 256 FC head.

Channels 16/32/48 keep the float32 .keras file under 2 MB (0.41 M params, 87% of them in the FC head, so FC
compression matters as it does in the original VGG; with 64 channels in block 3 the file was 2.1 MB).
"""
from __future__ import annotations

import keras

from edgecompress.zoo.blocks import conv_bn_act
from edgecompress.zoo.registry import register

BLOCK_FILTERS = (16, 32, 48)


@register("vgg", view="image", kinds=("conv2d", "dense"))
def vgg(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for block, filters in enumerate(BLOCK_FILTERS, start=1):
        x = conv_bn_act(x, filters, 3, name=f"block{block}_conv1")
        x = conv_bn_act(x, filters, 3, name=f"block{block}_conv2")
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(512, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3, name="fc1_dropout")(x)
    x = keras.layers.Dense(256, activation="relu", name="fc2")(x)
    x = keras.layers.Dropout(0.3, name="fc2_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg")
