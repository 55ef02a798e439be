"""Lowering passes: each says whether it fired and why not, and the model it returns computes the same function."""
import keras
import numpy as np
import pytest

from edgecompress.factorize import factorize
from edgecompress.graph.layers import describe, layer_weights
from edgecompress.graph.surgery import compress_model
from edgecompress.lower import lower
from edgecompress.lower.compose import compose
from edgecompress.lower.fold import fuse_activation_pass
from edgecompress.lower.grouped3d import grouped_conv3d_pass
from edgecompress.lower.layout import SpatialView, layout_2d_pass
from edgecompress.lower.merge import merge_factors_pass
from tests.lower.cases import sample_inputs

CONVS = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}


def assert_same_function(a: keras.Model, b: keras.Model, tolerance: float = 1e-5):
    x = sample_inputs(a)
    expected, actual = a.predict(x, verbose=0), b.predict(x, verbose=0)
    assert np.max(np.abs(expected - actual)) <= tolerance * max(1.0, np.max(np.abs(expected)))


def record(records, name):
    return next(r for r in records if r["pass"] == name)


def conv_bn_relu_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(max_value=6, name="relu6")(x)
    x = keras.layers.Conv2D(4, 1, name="head")(x)
    x = keras.layers.LeakyReLU(name="leaky")(x)
    model = keras.Model(inputs, x)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-1, 1, 8).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, 8).astype("float32"))
    return model


def test_fold_and_fuse_remove_standalone_layers():
    model = conv_bn_relu_model()
    lowered, records = lower(model, "tflite")
    assert record(records, "fold_batchnorm_pass")["where"] == ["bn->conv"]
    assert record(records, "fuse_activation_pass")["where"] == ["relu6->conv"]
    names = [layer.name for layer in lowered.layers]
    assert "bn" not in names and "relu6" not in names and "leaky" in names  # LeakyReLU is not a fused activation
    assert keras.activations.serialize(lowered.get_layer("conv").activation) == "relu6"
    assert_same_function(model, lowered)


def test_passes_say_why_they_did_not_fire():
    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="relu")(inputs))
    _, records = lower(model, "tflite")
    assert not any(r["changed"] for r in records)
    assert all(r["reason"] for r in records)
    assert not grouped_conv3d_pass(model).changed


def dense_model(units=16):
    inputs = keras.Input((16,))
    return keras.Model(inputs, keras.layers.Dense(units, activation="relu", name="fc")(inputs))


def conv_model(ndim=2, channels=8, **kwargs):
    inputs = keras.Input((7, 8, 9, channels)[3 - ndim:] if ndim < 3 else (5, 6, 7, channels))
    layer = CONVS[ndim](channels, 3, activation="relu", name="conv", **kwargs)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("build, method, rank", [(dense_model, "svd", 1.0), (conv_model, "tucker", 1.0),
                                                 (conv_model, "cp", 1.0)])
def test_block_costlier_than_its_layer_collapses_to_it(build, method, rank):
    original = build()
    target = original.layers[-1].name
    compressed = compress_model(original, {target: (method, rank)})
    result = merge_factors_pass(compressed)
    assert result.changed and "collapsed" in result.where[0]
    assert [layer.name for layer in result.model.layers[1:]] == [target]
    assert result.model.count_params() <= compressed.count_params()
    assert_same_function(compressed, result.model, 1e-4)


def test_adjacent_factors_merge_when_one_layer_is_cheaper():
    # Tucker with R_in = C_in: the first 1x1 is a square matrix that folds into the k x k core for free.
    original = conv_model(channels=16)
    compressed = compress_model(original, {"conv": ("tucker", (16, 2))})
    result = merge_factors_pass(compressed)
    assert result.where == ["conv: merged conv_tucker_0+conv_tucker_1"]
    assert [layer.name for layer in result.model.layers[1:]] == ["conv_tucker_0", "conv_tucker_2"]
    assert_same_function(compressed, result.model)


def test_cheap_blocks_are_left_alone():
    compressed = compress_model(conv_model(channels=16), {"conv": ("tucker", 2)})
    result = merge_factors_pass(compressed)
    assert not result.changed and "cheaper" in result.reason


COMPOSE_CASES = [  # (method, ndim, conv kwargs)
    ("tucker", 2, {"strides": 2, "padding": "same"}),
    ("cp", 2, {"dilation_rate": 2, "padding": "valid"}),
    ("cp", 1, {"dilation_rate": 2, "padding": "same"}),
    ("tt", 3, {"strides": 2, "padding": "valid"}),
    ("cp", 3, {"padding": "same"}),
]


@pytest.mark.parametrize("method, ndim, kwargs", COMPOSE_CASES)
def test_compose_equals_the_block(method, ndim, kwargs):
    model = conv_model(ndim, channels=4, **kwargs)
    info = describe(model)[0]
    block = factorize(info, *layer_weights(model.get_layer("conv")), method, 3)
    merged = compose(block, (None,) + info.input_shape, "conv")
    assert isinstance(merged, CONVS[ndim])
    x = sample_inputs(model, 4)
    expected = x
    for layer in block:
        expected = layer(expected)
    np.testing.assert_allclose(merged(x), expected, rtol=1e-4, atol=1e-5)


def test_compose_refuses_what_has_no_exact_single_layer():
    relu_inside = [keras.layers.Dense(4, activation="relu"), keras.layers.Dense(4)]
    assert "activation" in compose(relu_inside, (None, 4), "x")
    twice_same = [keras.layers.Conv2D(4, 3, padding="same", use_bias=False), keras.layers.Conv2D(4, 3, padding="same")]
    for layer in twice_same:
        layer.build((None, 8, 8, 4))
    assert "borders" in compose(twice_same, (None, 8, 8, 4), "x")


@pytest.mark.parametrize("method, ndim, kwargs", [
    ("tucker", 1, {"padding": "same"}), ("cp", 1, {"strides": 2, "padding": "valid"}),
    ("cp", 3, {"padding": "same"}), ("tt", 3, {"strides": 2, "padding": "same"}),
    ("tucker", 3, {"padding": "valid"}), ("svd", 3, {}),
])
def test_layout_pass_runs_1d_and_3d_factors_as_2d_convs(method, ndim, kwargs):
    if method == "svd":
        inputs = keras.Input((4, 5, 6, 8))
        original = keras.Model(inputs, keras.layers.Conv3D(8, 1, activation="relu", name="conv")(inputs))
    else:
        original = conv_model(ndim, channels=8, **kwargs)
    compressed = compress_model(original, {"conv": (method, 2)})
    result = layout_2d_pass(compressed)
    assert result.changed
    classes = {type(layer) for layer in result.model.layers[1:]}
    assert not classes & {keras.layers.Conv1D, keras.layers.DepthwiseConv1D} and SpatialView in classes
    assert_same_function(compressed, result.model)


def test_fuse_pass_leaves_models_without_standalone_activations():
    result = fuse_activation_pass(dense_model())
    assert not result.changed and "no standalone" in result.reason


@pytest.mark.parametrize("pool", [keras.layers.MaxPooling3D((2, 2, 2), padding="same"),
                                  keras.layers.AveragePooling3D((1, 2, 2)),
                                  keras.layers.MaxPooling3D((3, 2, 2), strides=(2, 1, 2), padding="same")])
def test_3d_pooling_becomes_builtin_2d_pools(pool, tmp_path):
    from edgecompress.lower import export

    inputs = keras.Input((5, 6, 7, 4))
    x = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(pool(x)))
    artifact = export(model, tmp_path / "m.tflite")
    assert artifact.audit["builtin_only"]
    assert {"MAX_POOL_2D", "AVERAGE_POOL_2D"} & set(artifact.audit["op_counts"])
    assert artifact.audit["parity"]["relative_diff"] <= 1e-4


def test_merge_never_turns_2d_lowerable_conv3d_factors_into_a_full_conv3d():
    # TT on Conv3D: at these ranks one 3x3x3 conv has fewer FLOPs than the three per-axis convs, but it would run
    # as CONV_3D, outside XNNPACK, instead of three CONV_2D.
    compressed = compress_model(conv_model(3, channels=32), {"conv": ("tt", (8, 24, 24, 8))})
    result = merge_factors_pass(compressed)
    assert not any(isinstance(layer, keras.layers.Conv3D) and layer.kernel_size == (3, 3, 3)
                   for layer in result.model.layers)
