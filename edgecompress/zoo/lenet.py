"""LeNet-5 (LeCun et al. 1998) for 28x28 inputs: two 5x5 convs with pooling, then 400 -> 120 -> 84 -> classes."""
from __future__ import annotations

import keras

from edgecompress.zoo.registry import register


@register("lenet5", view="image", kinds=("conv2d", "dense"))
def lenet5(input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    # 'same' on the first conv turns 28x28 into the 32x32-padded geometry of the original: 28 -> 14 -> 10 -> 5.
    x = keras.layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(120, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet5")
