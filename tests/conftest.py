"""Shared test setup: quiet TensorFlow, fixed seeds, and small model builders."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import edgecompress  # noqa: E402,F401  (registers our Keras layers)


@pytest.fixture(autouse=True)
def _seed():
    import keras

    np.random.seed(0)
    keras.utils.set_random_seed(0)


def single_layer_model(layer, input_shape):
    """A Functional model around one layer, so describe() sees its shapes."""
    import keras

    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, layer(inputs))


def run_chain(layers, x):
    for layer in layers:
        x = layer(x)
    return np.asarray(x)
