"""Local reconstruction (select/reconstruct.py): each block trained alone on its captured patches, kept only where
it scores higher on the held-out samples; the trained weights are those of the deployed block."""
import keras
import numpy as np
import pytest

from edgecompress.compress import CompressConfig, compress
from edgecompress.errors import ConfigError
from edgecompress.factorize import get, registry
from edgecompress.select.factorcache import FactorCache
from edgecompress.select.reconstruct import patch_block, reconstruct_block
from edgecompress.select.score import patch_info
from edgecompress.select.similarity import get_metric
from tests.conftest import run_chain
from tests.select.models import calibration, trained_tiny_cnn
from tests.select.test_data_aware import correlated_inputs, layer_setup

STEPS = 60


def first_kind(method: str) -> str:
    return "dense" if get(method).pointwise_only else "conv2d"


def full_outputs_at_samples(info, samples, layers, inputs) -> np.ndarray:
    """The block built for the whole layer, run on the whole inputs, read at the positions capture sampled."""
    outputs = run_chain(layers, inputs)
    return outputs[tuple(samples.where.T)]


@pytest.mark.parametrize("method", sorted(registry()))
def test_reconstruction_keeps_only_what_scores_higher_held_out_and_deploys_into_the_real_block(method):
    """Every registered method, at its lowest rank: kept, as the held-out similarity rose; the kept weights
    load into the block built for the whole layer, which then gives the patch block's outputs at every sampled
    position (1e-4 of max |y|: float32 convs over different paddings)."""
    info, samples, kernel, bias = layer_setup(method, first_kind(method))
    factors = FactorCache(info, kernel, bias).final(method, get(method).ranks(info)[0])
    small = patch_info(info, samples)
    done = reconstruct_block(method, small, factors, samples.patches, samples.outputs, samples.activation,
                             get_metric("cosine"), STEPS)
    assert done.kept and done.held_out_after > done.held_out_before  # the lowest rank is far from the layer
    layers = get(method).build(info, factors)
    for layer, weights in zip(layers, done.weights, strict=True):
        layer.set_weights(weights)
    model, patch_layers = patch_block(method, small, factors, samples.activation)
    for layer, weights in zip(patch_layers, done.weights):
        layer.set_weights(weights)
    expected = model.predict(samples.patches.reshape((-1,) + tuple(small.input_shape)), verbose=0)
    got = full_outputs_at_samples(info, samples, layers, correlated_inputs(info.input_shape))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_reconstruction_improves_a_block_fitted_to_the_weights_alone():
    """A rank-2 plain SVD of a dense layer on strongly correlated inputs leaves output error that training on the
    outputs removes: kept, and the held-out cosine rises by more than 0.01."""
    info, samples, kernel, bias = layer_setup("svd", "dense")
    factors = FactorCache(info, kernel, bias).final("svd", (2,))
    done = reconstruct_block("svd", patch_info(info, samples), factors, samples.patches, samples.outputs,
                             samples.activation, get_metric("cosine"), 200)
    assert done.kept and done.held_out_after > done.held_out_before + 0.01


def test_a_block_that_already_reproduces_the_layer_is_left_as_it_is():
    """Full-rank SVD reproduces the layer (cosine 1 up to float32): training cannot score higher held out, so
    nothing is kept."""
    info, samples, kernel, bias = layer_setup("svd", "dense")
    factors = FactorCache(info, kernel, bias).final("svd", get("svd").full_rank(info))
    done = reconstruct_block("svd", patch_info(info, samples), factors, samples.patches, samples.outputs,
                             samples.activation, get_metric("cosine"), STEPS)
    assert done.held_out_before == pytest.approx(1.0, abs=1e-5)
    assert not done.kept and done.weights is None and done.similarity is None


@pytest.mark.parametrize("capture_mode", ["independent", "sequential"])
def test_compress_with_reconstruction_records_it_and_never_scores_lower(capture_mode):
    """The plan records the steps and how many blocks kept them; each layer's similarity is at least the one
    without reconstruction (the kept weights scored higher held out and cannot score lower on all samples by
    more than the held-out fifth's share; with sequential capture later layers also see a changed prefix: 0.05
    slack)."""
    model, data = trained_tiny_cnn(), calibration(128)
    base = CompressConfig(budget="params=0.3", capture=capture_mode, samples_per_layer=512)
    plain = compress(model, data, base)
    config = CompressConfig(budget="params=0.3", capture=capture_mode, samples_per_layer=512, reconstruct_steps=40)
    rebuilt = compress(model, data, config)
    assert rebuilt.plan.budget["reconstruct_steps"] == 40
    assert 0 <= rebuilt.plan.budget["reconstructions_kept"] <= sum(1 for layer in rebuilt.plan.layers if layer.method)
    before = {layer.name: layer.similarity for layer in plain.plan.layers if layer.method}
    for layer in rebuilt.plan.layers:
        if layer.name in before:
            assert layer.similarity >= before[layer.name] - 0.05
    assert np.isfinite(rebuilt.model.predict(data[0][:8], verbose=0)).all()
    assert "reconstruct_steps" not in plain.plan.budget


@pytest.mark.parametrize("steps", [-1, 2.5])
def test_bad_reconstruct_steps_are_a_config_error(steps):
    with pytest.raises(ConfigError, match="reconstruct"):
        compress(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), np.zeros((8, 4), np.float32),
                 CompressConfig(reconstruct_steps=steps))
