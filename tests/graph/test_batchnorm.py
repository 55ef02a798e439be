"""Folding BatchNorm into the conv/dense before it is exact in inference mode (within 1e-5 relative)."""
import keras
import numpy as np
import pytest

from edgecompress.graph.batchnorm import fold_batchnorm
from tests.graph.architectures import resnet_style, sequential_cnn


def randomize_bn(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([np.random.uniform(0.5, 1.5, gamma.shape), np.random.randn(*beta.shape),
                               np.random.randn(*mean.shape), np.random.uniform(0.5, 2.0, var.shape)])


@pytest.mark.parametrize("build", [sequential_cnn, resnet_style])
def test_folded_model_equals_original(build):
    model = build()
    randomize_bn(model)
    x = np.random.rand(4, 16, 16, 3).astype(np.float32)
    expected = model(x, training=False).numpy()
    folded, pairs = fold_batchnorm(model)
    assert pairs, "expected at least one foldable conv -> BN pair"
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in folded.layers if layer.name in {bn for _, bn in pairs})
    actual = folded(x, training=False).numpy()
    assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()


def test_bn_after_activation_is_not_folded():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.BatchNormalization()])
    folded, pairs = fold_batchnorm(model)
    assert pairs == [] and folded is model
