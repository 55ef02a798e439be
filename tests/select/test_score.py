"""Scoring through the effective kernel is exact: for every method x layer kind x variant (from the registry),
the block run on whole feature maps equals activation(patches @ W_block + b) at the sampled positions."""
import numpy as np
import pytest

from edgecompress.factorize import applicable_pairs, get
from edgecompress.graph.layers import describe
from edgecompress.select.capture import capture
from edgecompress.select.score import apply_activation, effective_kernel, fast_kernel, patch_info
from tests.conftest import run_chain, single_layer_model
from tests.factorize.layer_cases import make_layer, variant_cases


def _setup(method, kind, stride, padding, dilation):
    layer, input_shape = make_layer(method, kind, stride, padding, dilation)
    model = single_layer_model(layer, input_shape)
    info = describe(model)[-1]
    x = np.random.default_rng(0).normal(size=(4,) + input_shape).astype(np.float32)
    samples = capture(model, x, [info], samples_per_layer=60).layers[info.name]
    return layer, info, x, samples


@pytest.mark.parametrize("method, kind, stride, padding, dilation", variant_cases(applicable_pairs()))
def test_block_on_feature_maps_equals_patches_times_effective_kernel(method, kind, stride, padding, dilation):
    layer, info, x, samples = _setup(method, kind, stride, padding, dilation)
    chosen = get(method)
    rank = chosen.ranks(info)[len(chosen.ranks(info)) // 2] if chosen.ranks(info) else 0.5
    factors = chosen.decompose(info, layer.kernel.numpy(), layer.bias.numpy(), rank)
    full_maps = run_chain(chosen.build(info, factors), x)
    at_samples = full_maps[tuple(samples.where.T)]
    weights, bias = effective_kernel(method, patch_info(info, samples), factors)
    np.testing.assert_allclose(apply_activation(samples.activation, samples.patches @ weights + bias),
                               at_samples, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("method, kind", applicable_pairs())
def test_full_rank_effective_kernel_is_the_layer_kernel(method, kind):
    layer, info, x, samples = _setup(method, kind, 1, "same", 1)
    chosen = get(method)
    factors = chosen.decompose(info, layer.kernel.numpy(), layer.bias.numpy(), chosen.full_rank(info))
    weights, bias = effective_kernel(method, patch_info(info, samples), factors)
    np.testing.assert_allclose(weights, layer.kernel.numpy().reshape(weights.shape), atol=1e-4)
    np.testing.assert_allclose(bias, layer.bias.numpy(), atol=1e-5)


@pytest.mark.parametrize("method, kind, stride, padding, dilation", variant_cases(applicable_pairs()))
def test_numpy_kernel_from_factors_equals_the_built_blocks(method, kind, stride, padding, dilation):
    layer, info, x, samples = _setup(method, kind, stride, padding, dilation)
    chosen = get(method)
    rank = chosen.ranks(info)[0] if chosen.ranks(info) else 1
    factors = chosen.decompose(info, layer.kernel.numpy(), layer.bias.numpy(), rank)
    built = effective_kernel(method, patch_info(info, samples), factors)
    fast = fast_kernel(method, patch_info(info, samples), factors)
    np.testing.assert_allclose(fast[0], built[0], atol=1e-4)
    np.testing.assert_allclose(fast[1], built[1], atol=1e-5)
