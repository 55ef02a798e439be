"""Capture: patches cut where the layer's padding/strides/dilation put them, outputs at the same positions,
memory under the cap, and shape errors naming both shapes."""
import keras
import numpy as np
import pytest

from edgecompress.errors import DataError
from edgecompress.graph.batchnorm import fold_batchnorm
from edgecompress.graph.layers import describe
from edgecompress.select.capture import capture
from edgecompress.select.score import apply_activation
from tests.factorize.layer_cases import CONV_CLASSES, KERNELS, SPATIAL
from tests.select.models import tiny_cnn


def _model_around(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def _dilated(kernel, dilation):
    """The kernel spread over its dilated span, zeros in the gaps: what a dilated conv applies to a patch."""
    ndim = kernel.ndim - 2
    span = tuple((k - 1) * dilation + 1 for k in kernel.shape[:ndim])
    spread = np.zeros(span + kernel.shape[ndim:], kernel.dtype)
    spread[tuple(slice(None, None, dilation) for _ in range(ndim))] = kernel
    return spread


CASES = [(kind, stride, padding, dilation) for kind in CONV_CLASSES for stride, padding, dilation in
         [(1, "same", 1), (2, "same", 1), (2, "valid", 1), (1, "same", 2), (1, "valid", 2)]]


@pytest.mark.parametrize("kind, stride, padding, dilation", CASES)
def test_patches_times_kernel_give_the_captured_outputs(kind, stride, padding, dilation):
    layer = CONV_CLASSES[kind](5, KERNELS[kind], strides=stride, padding=padding, dilation_rate=dilation,
                               activation="relu")
    model = _model_around(layer, SPATIAL[kind] + (3,))
    x = np.random.default_rng(0).normal(size=(6,) + SPATIAL[kind] + (3,)).astype(np.float32)
    samples = capture(model, x, [describe(model)[0]], samples_per_layer=200).layers[layer.name]
    assert samples.filled == len(samples.patches) > 0
    kernel = _dilated(layer.kernel.numpy(), dilation).reshape(-1, 5)
    expected = apply_activation("relu", samples.patches @ kernel + layer.bias.numpy())
    np.testing.assert_allclose(samples.outputs, expected, atol=1e-4)


def test_dense_on_a_sequence_samples_positions():
    layer = keras.layers.Dense(4)
    model = _model_around(layer, (7, 3))
    x = np.random.default_rng(1).normal(size=(5, 7, 3)).astype(np.float32)
    samples = capture(model, x, [describe(model)[0]], samples_per_layer=20).layers[layer.name]
    assert samples.patches.shape == (20, 3)
    np.testing.assert_allclose(samples.outputs, samples.patches @ layer.kernel.numpy() + layer.bias.numpy(),
                               atol=1e-5)


def test_linear_conv_followed_by_relu_is_compared_after_the_relu():
    folded, _ = fold_batchnorm(tiny_cnn())
    infos = [info for info in describe(folded) if info.is_candidate]
    x = np.random.default_rng(2).random((8, 28, 28, 1), dtype=np.float32)
    layers = capture(folded, x, infos, samples_per_layer=64).layers
    assert layers["conv1"].activation == "relu" and layers["logits"].activation == "linear"
    assert layers["conv1"].outputs.min() >= 0.0


def test_capture_stays_under_its_memory_cap():
    folded, _ = fold_batchnorm(tiny_cnn())
    infos = [info for info in describe(folded) if info.is_candidate]
    x = np.random.default_rng(3).random((64, 28, 28, 1), dtype=np.float32)
    roomy = capture(folded, x, infos, samples_per_layer=4096)
    cap_bytes = roomy.nbytes // 4
    tight = capture(folded, x, infos, memory_cap_bytes=cap_bytes, samples_per_layer=4096)
    assert tight.nbytes <= cap_bytes < roomy.nbytes
    assert all(len(s.patches) >= 16 for s in tight.layers.values())
    with pytest.raises(DataError, match="memory cap"):
        capture(folded, x, infos, memory_cap_bytes=1000)


def test_calibration_of_the_wrong_shape_names_both_shapes():
    folded, _ = fold_batchnorm(tiny_cnn())
    x = np.zeros((4, 32, 32, 3), np.float32)
    with pytest.raises(DataError, match=r"\(32, 32, 3\).*\(28, 28, 1\)"):
        capture(folded, x, describe(folded)[:1])
