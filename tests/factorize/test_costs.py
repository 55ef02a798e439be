"""cost() is exact: its params equal the built block's weight count and its FLOPs a count over the built
layers (2 x MACs, bias/activation excluded), for every method x kind at rank fractions 0.1, 0.25, 0.5."""
import numpy as np
import pytest

from edgecompress import factorize
from edgecompress.graph.accounting import chain_cost
from edgecompress.graph.layers import describe, layer_weights
from tests.conftest import single_layer_model
from tests.factorize.layer_cases import make_layer

FRACTIONS = (0.1, 0.25, 0.5)


def realistic_layer(method, kind):
    """Channel counts of a real net, so low-rank blocks can be cheaper than the layer."""
    if kind == "dense":
        return make_layer(method, kind, cin=128, cout=96)
    if kind == "conv3d":  # CP-ALS on a 3-D kernel is the slowest decomposition: keep it small here
        return make_layer(method, kind, stride=2, padding="same", cin=12, cout=16)
    return make_layer(method, kind, stride=2, padding="same", cin=32, cout=48)


@pytest.mark.parametrize("method, kind", factorize.applicable_pairs())
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_cost_matches_built_block(method, kind, fraction):
    layer, input_shape = realistic_layer(method, kind)
    info = describe(single_layer_model(layer, input_shape))[0]
    chosen = factorize.get(method)
    assert chosen.why_not(info) is None
    kernel, bias = layer_weights(layer)
    block = chosen.build(info, chosen.decompose(info, kernel, bias, fraction))
    params, flops = chain_cost(block, (None,) + input_shape)
    predicted = chosen.cost(info, fraction)
    assert (predicted.params, predicted.flops) == (params, flops)
    assert params == sum(int(np.prod(w.shape)) for layer in block for w in layer.weights)


@pytest.mark.parametrize("method, kind", factorize.applicable_pairs())
def test_offered_ranks_are_cheaper_or_refused_with_reason(method, kind):
    layer, input_shape = realistic_layer(method, kind)
    info = describe(single_layer_model(layer, input_shape))[0]
    chosen = factorize.get(method)
    original = (info.params, info.flops)
    for fraction in FRACTIONS:
        cost = chosen.cost(info, fraction)
        problem = chosen.rank_problem(info, fraction)
        if problem is None:
            assert cost.params < original[0] and cost.flops <= original[1]
        else:
            assert "not below the layer" in problem
    for rank in chosen.ranks(info):
        assert chosen.cost(info, rank).cheaper_than(chosen.original_cost(info))


def test_layer_flops_follow_the_convention():
    """A 3x3 conv 4->6 on 9x8, same padding: 2 * 9*8 * 3*3*4*6 FLOPs; params 3*3*4*6 + 6."""
    import keras

    info = describe(single_layer_model(keras.layers.Conv2D(6, 3, padding="same"), (9, 8, 4)))[0]
    assert info.flops == 2 * 9 * 8 * 3 * 3 * 4 * 6
    assert info.params == 3 * 3 * 4 * 6 + 6
