"""Small CNNs trained once per session and compressed at fixed ranks: one on a few thousand Fashion-MNIST images,
one on synthetic, well-separated classes (whose wide margins make int8 top-1 agreement a stable gate)."""
import keras
import numpy as np
import pytest

CHOICES = {"conv2": ("tucker", (8, 16)), "fc1": ("svd", 24)}


def small_cnn(input_shape) -> keras.Model:
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="small_cnn")


def trained_and_compressed(train, test, learning_rate):
    """(original, compressed, train, test): one epoch of Adam, then CHOICES applied by compress_model."""
    from edgecompress.graph.surgery import compress_model

    keras.utils.set_random_seed(0)
    model = small_cnn(train[0].shape[1:])
    model.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*train, batch_size=64, epochs=1, verbose=0)
    return model, compress_model(model, CHOICES), train, test


def separable_images(count: int, seed: int, noise: float = 2.0):
    """28x28 images: one of 10 fixed blocky templates plus Gaussian noise of `noise` x the template scale."""
    templates = np.kron(np.random.default_rng(123).standard_normal((10, 7, 7)), np.ones((4, 4)))[..., None]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = templates[labels] + noise * rng.standard_normal((count, 28, 28, 1))
    return images.astype(np.float32), labels


@pytest.fixture(scope="session")
def fashion():
    from edgecompress.data import load_fashion_mnist

    data = load_fashion_mnist(view="image", train_limit=4000, test_limit=1000)
    return trained_and_compressed((data.x_train, data.y_train), (data.x_test, data.y_test.astype(np.int64)), 1e-3)


@pytest.fixture(scope="session")
def separable():
    return trained_and_compressed(separable_images(3000, 0), separable_images(1000, 1), 2e-3)
