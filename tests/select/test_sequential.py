"""Sequential capture: a layer's final block is refitted on the inputs the compressed layers before it give."""
import keras
import numpy as np
import pytest

from edgecompress.compress import CompressConfig, compress
from edgecompress.errors import ConfigError
from edgecompress.graph.layers import describe
from edgecompress.graph.surgery import compress_model
from edgecompress.select.capture import capture
from edgecompress.select.sequential import prefix_patches
from tests.select.models import calibration, trained_tiny_cnn


def three_conv_net() -> keras.Model:
    inputs = keras.Input((10, 9, 6))
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="valid", activation="relu", name="conv2")(x)
    return keras.Model(inputs, keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="conv3")(x))


def test_prefix_patches_are_the_compressed_prefix_inputs_at_the_sampled_positions():
    """Against a direct computation: run the model whose conv1 is a rank-2 Tucker block, take conv2's and
    conv3's whole input maps, pad them as the layers do and cut the patches at the recorded positions."""
    model = three_conv_net()
    x = np.random.default_rng(0).normal(size=(5, 10, 9, 6)).astype(np.float32)
    infos = [info for info in describe(model) if info.kind]
    samples = capture(model, x, infos, samples_per_layer=40).layers
    prefix = compress_model(model, {"conv1": ("tucker", 2)})
    for name, padding in (("conv2", ((0, 0), (0, 0))), ("conv3", ((2, 2), (2, 2)))):
        layer_samples = samples[name]
        maps = keras.Model(prefix.inputs, prefix.get_layer(name).input).predict(x, verbose=0)
        padded = np.pad(maps, ((0, 0), *padding, (0, 0)))
        span, strides = layer_samples.geometry.span, layer_samples.geometry.strides
        expected = np.stack([padded[i, r * strides[0]:r * strides[0] + span[0], c * strides[1]:c * strides[1] + span[1]]
                             .reshape(-1) for i, r, c in layer_samples.where])
        got = prefix_patches(prefix, name, x, layer_samples, batch_size=2)  # batches that split the images
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)  # float32 convs
        assert not np.allclose(got, layer_samples.patches, atol=1e-3), "the prefix changed this layer's inputs"


def test_sequential_capture_is_recorded_and_scores_the_blocks_on_the_compressed_prefix():
    """Each similarity in a sequential plan is measured on its compressed prefix's inputs; refitting there
    never scores lower than the independent block scored on those same inputs (refit_on keeps the better)."""
    model, data = trained_tiny_cnn(), calibration(128)
    results = {capture_mode: compress(model, data, CompressConfig(budget="params=0.3", capture=capture_mode,
                                                                  samples_per_layer=512))
               for capture_mode in ("independent", "sequential")}
    assert results["sequential"].plan.budget["capture"] == "sequential"
    first = next(layer for layer in results["independent"].plan.layers if layer.method)
    same_first = next(layer for layer in results["sequential"].plan.layers if layer.name == first.name)
    assert same_first.similarity == pytest.approx(first.similarity, abs=1e-9)  # nothing before it changed
    assert all(np.isfinite(layer.similarity) for layer in results["sequential"].plan.layers)


def test_an_unknown_capture_is_a_config_error():
    with pytest.raises(ConfigError, match="sequential"):
        compress(trained_tiny_cnn(), calibration(16), CompressConfig(capture="streaming"))


def test_rebuild_does_not_leave_call_records_on_the_original_blocks():
    """The prefix models of sequential capture get fresh block layers: the final model's blocks are called
    once."""
    model, data = trained_tiny_cnn(), calibration(64)
    result = compress(model, data, CompressConfig(budget="params=0.3", samples_per_layer=256))
    for layer in result.model.layers:
        assert len(layer._inbound_nodes) <= 1, layer.name
