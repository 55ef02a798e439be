"""Tiny models and data shared by the select, compress and finetune tests (cached per test session)."""
from __future__ import annotations

from functools import lru_cache

import keras
import numpy as np


def tiny_cnn(input_shape=(28, 28, 1), classes: int = 10) -> keras.Model:
    """conv+BN+ReLU, two convs (relu), a strided 1x1 conv, two dense layers: every kind of candidate the DSE sees."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Conv2D(32, 1, strides=2, activation="relu", name="proj")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


@lru_cache(maxsize=1)
def fashion(n_train: int = 3000, n_test: int = 600):
    """(x_train, y_train, x_test, y_test) from the Fashion-MNIST subset shipped in the package."""
    from edgecompress import data

    ds = data.load_fashion_mnist(source="embedded", view="image", train_limit=n_train, test_limit=n_test)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


@lru_cache(maxsize=1)
def trained_tiny_cnn() -> keras.Model:
    """tiny_cnn trained for a few epochs (about 80% test top-1); callers must not train it further."""
    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = fashion()
    model = tiny_cnn()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=64, epochs=4, verbose=0)
    return model


def calibration(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    x_train, y_train, _, _ = fashion()
    return x_train[-n:], y_train[-n:]
