"""A Conv1D net on the 'seq1d' view (28 steps = image rows, 28 features = pixels): 4 convs, 2 pools, FC head."""
from __future__ import annotations

import keras

from edgecompress.zoo.blocks import conv_bn_act
from edgecompress.zoo.registry import register


@register("conv1d", view="seq1d", kinds=("conv1d", "dense"))
def conv1d(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="sequence")
    x = inputs
    for block, filters in enumerate((64, 128), start=1):
        x = conv_bn_act(x, filters, 3, name=f"block{block}_conv1")
        x = conv_bn_act(x, filters, 3, name=f"block{block}_conv2")
        x = keras.layers.MaxPooling1D(2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3, name="fc1_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conv1d")
