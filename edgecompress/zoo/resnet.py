"""ResNet-20 as in He et al. 2016 for CIFAR: a 3x3 stem, 3 stages x 3 basic blocks (16/32/64 channels), GAP, FC.

The shortcut where shape changes is a 1x1 conv + BN (option B), so every weighted layer is a builtin conv.
"""
from __future__ import annotations

import keras

from edgecompress.zoo.blocks import conv_bn_act
from edgecompress.zoo.registry import register

STAGE_FILTERS = (16, 32, 64)
BLOCKS_PER_STAGE = 3
# PyTorch's default (0.1 there). With Keras' 0.99 the moving statistics lagged the weights in a short CPU run:
# 91% train accuracy, 17% test (measured, 4 epochs on 10k images); the other zoo nets were fine with 0.99.
BN_MOMENTUM = 0.9


def basic_block(x, filters: int, strides: int, name: str):
    shortcut = x
    y = conv_bn_act(x, filters, 3, name=f"{name}_conv1", strides=strides, bn_momentum=BN_MOMENTUM)
    y = conv_bn_act(y, filters, 3, name=f"{name}_conv2", activation=None, bn_momentum=BN_MOMENTUM)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, name=f"{name}_shortcut", strides=strides, activation=None,
                               bn_momentum=BN_MOMENTUM)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


@register("resnet20", view="image", kinds=("conv2d", "dense"))
def resnet20(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_act(inputs, STAGE_FILTERS[0], 3, name="stem", bn_momentum=BN_MOMENTUM)
    for stage, filters in enumerate(STAGE_FILTERS, start=1):
        for block in range(1, BLOCKS_PER_STAGE + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, filters, strides, name=f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet20")
