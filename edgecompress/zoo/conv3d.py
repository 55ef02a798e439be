"""A small Conv3D net on the 'clip3d' view (4 frames of a moving image): 3 conv + BN + ReLU stages, FC head."""
from __future__ import annotations

import keras

from edgecompress.zoo.blocks import conv_bn_act
from edgecompress.zoo.registry import register

# (filters, kernel, pool) per stage; the first pool keeps all frames so the second conv still sees motion.
STAGES = ((8, (3, 3, 3), (1, 2, 2)), (16, (3, 3, 3), (2, 2, 2)), (32, (2, 3, 3), (2, 2, 2)))


@register("conv3d", view="clip3d", kinds=("conv3d", "dense"))
def conv3d(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="clip")
    x = inputs
    for stage, (filters, kernel, pool) in enumerate(STAGES, start=1):
        x = conv_bn_act(x, filters, kernel, name=f"conv{stage}")
        x = keras.layers.MaxPooling3D(pool, padding="same", name=f"pool{stage}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3, name="fc1_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conv3d")
