"""A small MobileNet-style net (Howard et al. 2017): depthwise 3x3 + pointwise 1x1 blocks with BN and ReLU6.

Depthwise convs are not factorization candidates (one filter per channel); the stem and pointwise convs are.
"""
from __future__ import annotations

import keras

from edgecompress.zoo.blocks import conv_bn_act
from edgecompress.zoo.registry import register

# (pointwise filters, depthwise stride) of each separable block.
SEPARABLE_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1))


def separable_block(x, filters: int, strides: int, name: str):
    x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    return conv_bn_act(x, filters, 1, name=f"{name}_pw", activation="relu6")


@register("mobilenet", view="image", kinds=("conv2d", "dense"))
def mobilenet(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_act(inputs, 16, 3, name="stem", activation="relu6")
    for index, (filters, strides) in enumerate(SEPARABLE_BLOCKS, start=1):
        x = separable_block(x, filters, strides, name=f"sep{index}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet")
