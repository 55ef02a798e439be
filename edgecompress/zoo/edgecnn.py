"""The demo's default: a mid-size edge CNN with real compute (about 65 M MACs at 28x28), where factorization pays.

Five 3x3 conv + BN + ReLU layers (32, 64 | 128, 128 | 128 channels, pooling between stages), global average pooling
and the logits. 0.41 M params keep the float32 .keras file under the 2 MB shipping limit; 98% of them and all of
the compute sit in convolutions wide enough (64-128 channels) for XNNPACK to turn a FLOPs cut into milliseconds.
"""
from __future__ import annotations

import keras

from edgecompress.zoo.blocks import conv_bn_act
from edgecompress.zoo.registry import register

STAGES = ((32, 64), (128, 128), (128,))


@register("edgecnn", view="image", kinds=("conv2d", "dense"))
def edgecnn(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    layer = 0
    for stage, widths in enumerate(STAGES, start=1):
        if stage > 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage - 1}")(x)
        for filters in widths:
            layer += 1
            x = conv_bn_act(x, filters, 3, name=f"conv{layer}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="edgecnn")
