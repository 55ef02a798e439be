"""int8 channel equalization inside factorized blocks: the float function is unchanged, every link of every
method's block is found, the intermediate maps' channel ranges come out balanced, and int8 gets closer to fp32."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from edgecompress.factorize import applicable_pairs
from edgecompress.lower import convert, lower
from edgecompress.lower.equalize import channel_scales, equalize_pass, links
from edgecompress.lower.runtime import run_tflite
from tests.lower.cases import block_model, sample_inputs

FLOAT_RTOL = 1e-5  # rescaling by powers within 1e3 moves float32 results by rounding only


@pytest.mark.parametrize("method, kind", applicable_pairs())
def test_equalized_block_computes_the_same_function(method, kind):
    lowered, _ = lower(block_model(method, kind), "tflite")
    x = sample_inputs(lowered, 32)
    before = lowered.predict(x, verbose=0)
    result = equalize_pass(lowered, x)
    after = result.model.predict(x, verbose=0)
    np.testing.assert_allclose(after, before, rtol=FLOAT_RTOL, atol=FLOAT_RTOL * np.abs(before).max())
    assert result.changed == bool(links(lowered)) and len(result.where) == len(links(lowered))
    np.testing.assert_array_equal(lowered.predict(x, verbose=0), before)  # the input model is left alone


def test_channel_scales_bring_depthwise_inputs_to_one_range_and_balance_mixing_ones():
    activation = np.array([1.0, 10.0, 100.0, 0.0])
    full = channel_scales(activation, None)
    np.testing.assert_allclose((activation * full)[:3], 100.0)
    assert full[3] == 1.0  # a dead channel is left alone
    weights = np.array([4.0, 1.0, 0.25, 1.0])
    balanced = channel_scales(activation, weights)
    scaled_activation, scaled_weights = activation * balanced, weights / balanced
    ratio = scaled_activation[:3] / scaled_weights[:3]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # a_c s_c and w_c / s_c in one proportion
    assert scaled_activation.max() == pytest.approx(100.0)


def imbalanced_cp_model() -> keras.Model:
    """A CP-shaped chain (1x1 -> depthwise 3x1 -> depthwise 1x3 -> 1x1) whose components span 1e-2..1e2 in scale,
    as a decomposition can leave them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 16))
    layers = [keras.layers.Conv2D(24, 1, use_bias=False, name="b_cp_0"),
              keras.layers.DepthwiseConv2D((3, 1), padding="same", use_bias=False, name="b_cp_1"),
              keras.layers.DepthwiseConv2D((1, 3), padding="same", use_bias=False, name="b_cp_2"),
              keras.layers.Conv2D(16, 1, activation="relu", name="b_cp_3")]
    x = inputs
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, x)
    spread = np.logspace(-2, 2, 24).astype(np.float32)
    first, last = layers[0].get_weights()[0], layers[3].get_weights()
    layers[0].set_weights([first * spread])
    layers[3].set_weights([last[0] / spread[:, None], last[1] + 0.1])
    return model


def test_int8_error_falls_after_equalization():
    model = imbalanced_cp_model()
    x = np.random.default_rng(1).standard_normal((200, 12, 12, 16)).astype(np.float32)
    reference = model.predict(x[:50], verbose=0)
    errors = {}
    for name, calibration in (("plain", None), ("equalized", x)):
        lowered, _ = lower(model, "tflite", calibration)
        content = convert(lowered, "tflite", "int8", x)
        errors[name] = np.abs(run_tflite(content, x[:50]) - reference).mean()
    assert errors["equalized"] < 0.5 * errors["plain"], errors
