"""Filter pruning: dependency groups, exact function when the pruned channels are dead, analytic accounting,
round trips, the criteria registry and bad input.

Tolerances: a pruned model whose removed channels were identically zero matches the original within 1e-5
relative (float32 through the same ops); params and FLOPs match the analytic count exactly.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

from edgecompress.errors import BudgetError, ConfigError
from edgecompress.graph.layers import describe
from edgecompress.prune import CRITERIA, Pruner, prune, remove_channels
from edgecompress.prune.groups import DEPTHWISE, SEPARABLE
from edgecompress.prune.surgery import layer_masks
from tests.graph.architectures import ARCHITECTURES

RELATIVE_TOLERANCE = 1e-5


def _inputs(model: keras.Model, count: int = 4) -> list[np.ndarray] | np.ndarray:
    rng = np.random.default_rng(1)
    arrays = [rng.random((count, *tensor.shape[1:]), dtype=np.float32) for tensor in model.inputs]
    return arrays[0] if len(arrays) == 1 else arrays


def _randomize_batchnorm(model: keras.Model) -> None:
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def _kill(model: keras.Model, masks) -> dict[str, list[int]]:
    """Zero everything that makes the masked-out channels non-zero (filters, biases, BatchNorm shifts, depthwise
    biases), so removing them must not change the function. Returns the producer channels to remove."""
    channels = {}
    for name, mask in masks.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        if mask.outputs is not None and not mask.outputs.all():
            dead = ~mask.outputs
            kernel_index = 1 if isinstance(layer, SEPARABLE) else 0
            weights[kernel_index][..., dead] = 0
            if layer.use_bias:
                weights[-1][dead] = 0
            channels[name] = np.flatnonzero(dead).tolist()
        elif isinstance(layer, keras.layers.BatchNormalization) and not mask.inputs.all():
            names = [w.path.split("/")[-1] for w in layer.weights]
            for index in (names.index("beta"), names.index("moving_mean")):
                weights[index][~mask.inputs] = 0
        elif isinstance(layer, DEPTHWISE) and layer.use_bias and not mask.inputs.all():
            weights[1][np.repeat(~mask.inputs, layer.depth_multiplier)] = 0
        layer.set_weights(weights)
    return channels


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def architecture(request):
    keras.utils.set_random_seed(0)
    model = ARCHITECTURES[request.param]()
    _randomize_batchnorm(model)
    return request.param, model


def test_dead_channels_prune_without_changing_the_function(architecture):
    name, model = architecture
    pruner = Pruner(model)
    assert pruner.order, f"{name}: nothing prunable"
    removed = set(pruner.order[: max(1, len(pruner.order) // 3)])
    channels = _kill(model, layer_masks(pruner.graph, removed))
    pruned = remove_channels(model, channels)
    x = _inputs(model)
    assert pruned.model.count_params() < model.count_params()
    for expected, got in zip(_outputs(model, x), _outputs(pruned.model, x)):
        assert np.max(np.abs(got - expected)) <= RELATIVE_TOLERANCE * max(1.0, np.max(np.abs(expected)))


def _outputs(model: keras.Model, x) -> list[np.ndarray]:
    outputs = model(x, training=False)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def test_params_and_flops_match_the_analytic_count(architecture):
    name, model = architecture
    pruner = Pruner(model)
    for removed in (set(pruner.order[:2]), set(pruner.order)):
        predicted = pruner.cost.per_layer(removed)
        built = {info.name: (info.params, info.flops) for info in describe(pruner.pruned(removed).model)}
        assert built == {layer: predicted[layer] for layer in built}, name


def test_dependency_groups_tie_residual_adds():
    pruner = Pruner(ARCHITECTURES["resnet_style"]())
    groups = [group for group in pruner.pruned(set()).groups if len(group) > 1]
    assert groups, "the residual adds tie the stem and the second conv of each block into one group"
    pruned = pruner.by_ratio(0.5)
    for group in groups:
        assert len({pruned.channels[layer][1] for layer in group}) == 1, group


def test_output_layer_and_shared_layers_are_listed_not_pruned():
    inputs = keras.Input((8, 8, 3))
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")
    x = shared(keras.layers.Conv2D(4, 3, padding="same", name="first")(inputs))
    x = shared(x)
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(x))
    pruned = prune(keras.Model(inputs, outputs), ratio=0.3)
    assert "output" in pruned.unprunable["logits"]
    assert "shared" in pruned.unprunable["shared"]
    assert "first" in pruned.unprunable  # feeds the shared layer


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_keras_round_trip_and_export_parity(tmp_path, to):
    import edgecompress

    pruned = prune(ARCHITECTURES["resnet_style"](), ratio=0.4)
    pruned.model.save(tmp_path / "pruned.keras")
    reloaded = keras.models.load_model(tmp_path / "pruned.keras")
    x = _inputs(pruned.model)
    np.testing.assert_allclose(reloaded(x), pruned.model(x), rtol=0, atol=1e-6)
    artifact = edgecompress.export(reloaded, tmp_path / f"pruned.{to}", to=to)
    assert artifact.audit["builtin_only"]
    assert artifact.audit["parity"]["relative_diff"] < 1e-4


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_orders_every_removable_class(criterion):
    model = ARCHITECTURES["sequential_cnn"]()
    pruner = Pruner(model, criterion, _inputs(model, 32))
    assert set(pruner.order) <= set(pruner.graph.removable())
    assert len(pruner.order) > 0.5 * len(pruner.graph.removable())


def test_criteria_remove_dead_channels_first():
    model = ARCHITECTURES["sequential_cnn"]()
    first = model.layers[0]
    kernel, bias = first.get_weights()
    kernel[..., :3] = 0
    first.set_weights([kernel, bias])
    for criterion in ("l1", "l2"):
        pruned = Pruner(model, criterion).by_ratio(0.05)
        assert pruned.channels[first.name][1] <= first.filters - 3, criterion


@pytest.mark.parametrize("kind", ["params", "flops"])
def test_budget_is_met_with_the_fewest_removals(kind):
    pruner = Pruner(ARCHITECTURES["resnet_style"]())
    pruned = pruner.by_fraction(kind, 0.5)
    total = sum(getattr(info, kind) for info in describe(pruned.model) if info.kind)
    original = sum(getattr(info, kind) for info in describe(pruner.model) if info.kind)
    assert total <= 0.5 * original
    with pytest.raises(BudgetError, match="cannot reach"):
        pruner.by_fraction(kind, 1e-4)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, -0.2])
def test_ratio_outside_the_open_interval_is_refused(ratio):
    with pytest.raises(ConfigError, match=r"outside \(0, 1\)"):
        prune(ARCHITECTURES["sequential_cnn"](), ratio=ratio)


def test_pruning_every_channel_of_a_layer_is_refused():
    model = ARCHITECTURES["sequential_cnn"]()
    first = model.layers[0]
    with pytest.raises(ConfigError, match="every output channel"):
        remove_channels(model, {first.name: list(range(first.filters))})
    with pytest.raises(ConfigError, match="output"):
        remove_channels(model, {model.layers[-1].name: [0]})
    with pytest.raises(ConfigError, match="criterion"):
        Pruner(model, "nope")
    with pytest.raises(ConfigError, match="calibration data"):
        Pruner(model, "energy")


def test_refit_restores_a_channel_the_kept_ones_predict():
    """A duplicated filter: the copy is exactly the original channel, so the least-squares refit moves its
    weight onto the original and the function survives (ridge 1e-4: within 1e-3 relative); dropping it does not."""
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inputs)
    outputs = keras.layers.Dense(4, name="head")(keras.layers.Flatten()(keras.layers.Conv2D(5, 3, name="c2")(x)))
    model = keras.Model(inputs, outputs)
    kernel, bias = model.get_layer("c1").get_weights()
    kernel[..., 5], bias[5] = kernel[..., 0], bias[0]
    model.get_layer("c1").set_weights([kernel, bias])
    data = np.random.default_rng(3).random((256, 10, 10, 3), dtype=np.float32)
    expected = np.asarray(model(data[:16]))
    for refit, within in ((True, True), (False, False)):
        pruner = Pruner(model, "l1", data, refit=refit)
        copy = pruner.graph.find(int(pruner.graph.producers["c1"][5]))
        got = np.asarray(pruner.pruned({copy}).model(data[:16]))
        assert (np.max(np.abs(got - expected)) <= 1e-3 * np.max(np.abs(expected))) == within, refit
