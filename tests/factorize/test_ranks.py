"""Rank specs mean the same for every method; bad ranks fail with InvalidRankError naming layer and range."""
import keras
import numpy as np
import pytest

from edgecompress import factorize
from edgecompress.errors import ConfigError, InvalidRankError, UnsupportedLayerError
from edgecompress.factorize.ranks import feasible_tt_ranks, parse_rank_text, resolve_rank
from edgecompress.graph.layers import describe, layer_weights
from tests.conftest import single_layer_model
from tests.factorize.layer_cases import make_layer


def test_int_fraction_and_tuple_resolve():
    assert resolve_rank(8, (16, 4), "c", "tucker") == (8, 4)
    assert resolve_rank(0.25, (16, 40), "c", "tucker") == (4, 10)
    assert resolve_rank(1.0, (16, 40), "c", "tucker") == (16, 40)
    assert resolve_rank((3, 5), (16, 40), "c", "tucker") == (3, 5)
    assert resolve_rank(0.001, (16,), "c", "svd") == (1,)


@pytest.mark.parametrize("bad", [0, -3, 41, 0.0, 1.5, -0.2, (0, 5), (3, 41), (3,), "x", True])
def test_bad_rank_names_layer_and_range(bad):
    with pytest.raises(InvalidRankError) as error:
        resolve_rank(bad, (16, 40), "block2_conv1", "tucker")
    message = str(error.value)
    assert "block2_conv1" in message and "tucker" in message and "1..40" in message


def test_parse_rank_text():
    assert parse_rank_text("16") == 16
    assert parse_rank_text("0.25") == 0.25
    assert parse_rank_text("8,16") == (8, 16)
    with pytest.raises(InvalidRankError):
        parse_rank_text("half")


def test_tt_ranks_are_clipped_to_realisable_cores():
    # modes (32, 3, 3, 48): the middle rank cannot exceed 3 * r1 nor 3 * r3
    assert feasible_tt_ranks((3, 14, 5), (32, 3, 3, 48)) == (3, 9, 5)


@pytest.mark.parametrize("method, kind", factorize.applicable_pairs())
def test_every_method_rejects_out_of_range_rank(method, kind):
    layer, input_shape = make_layer(method, kind)
    info = describe(single_layer_model(layer, input_shape))[0]
    kernel, bias = layer_weights(layer)
    too_big = max(factorize.get(method).full_rank(info)) + 1
    for bad in (0, -1, too_big):
        with pytest.raises(InvalidRankError, match=info.name):
            factorize.factorize(info, kernel, bias, method, bad)


def test_nan_kernel_is_refused_naming_the_layer():
    layer = keras.layers.Dense(8, name="fc_bad")
    info = describe(single_layer_model(layer, (16,)))[0]
    kernel, bias = layer_weights(layer)
    kernel[0, 0] = np.nan
    with pytest.raises(UnsupportedLayerError, match="fc_bad.*NaN"):
        factorize.factorize(info, kernel, bias, "svd", 0.5)


def test_method_not_applying_is_refused_with_reason():
    layer = keras.layers.Conv2D(8, 3, name="conv_k3")
    info = describe(single_layer_model(layer, (9, 9, 4)))[0]
    kernel, bias = layer_weights(layer)
    with pytest.raises(UnsupportedLayerError, match="conv_k3.*not 1x1"):
        factorize.factorize(info, kernel, bias, "svd", 0.5)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        factorize.factorize(info, kernel, bias, "nope", 0.5)
