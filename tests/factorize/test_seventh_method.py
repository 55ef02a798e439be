"""A seventh method is one new file: a toy method registered inside this test (SVD of the kernel flattened to
(k... x Cin, Cout): a kxk conv to rank r, then a 1x1 conv) goes through inspect, the DSE under every selection and
the four budgets, and lowering to TFLite and ONNX with the audit, with no other file edited.

It defines only what every method must (its kinds and the four abstract hooks): the search decomposes at every
rank and scores by probing the built block (no kernel_from_factors); the baselines read the default unfoldings.
"""
import keras
import numpy as np
import pytest

from edgecompress.commands.inspect import inspect_model
from edgecompress.compress import CompressConfig, compress
from edgecompress.factorize import base, blocks
from edgecompress.factorize.base import Factors, Method
from edgecompress.lower import export
from edgecompress.select.selectors import rank_selections

TOLERANCE = 1e-4


class FlatSVD(Method):
    kinds = frozenset({"conv1d", "conv2d", "conv3d"})

    def full_rank(self, layer):
        return (min(int(np.prod(layer.kernel_size)) * layer.in_channels, layer.out_channels),)

    def cost(self, layer, rank):
        (rank_value,) = self.resolve(layer, rank)
        chain = blocks.CostChain(layer)
        chain.conv(layer.kernel_size, layer.in_channels, rank_value, layer.strides, layer.dilation, layer.padding)
        chain.pointwise(layer, rank_value, layer.out_channels, bias=layer.use_bias)
        return chain.cost()

    def decompose(self, layer, kernel, bias, rank):
        (rank_value,) = self.resolve(layer, rank)
        u, s, vt = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]).astype(np.float64), full_matrices=False)
        first = (u[:, :rank_value] * s[:rank_value]).reshape(kernel.shape[:-1] + (rank_value,))
        return Factors(self.name, (rank_value,), {"first": first, "second": vt[:rank_value]}, bias)

    def build(self, layer, factors):
        (rank_value,) = factors.rank
        name = lambda i: blocks.block_name(layer, self.name, i)  # noqa: E731
        first = blocks.conv(layer, name(0), rank_value, layer.kernel_size, layer.strides, layer.dilation,
                            layer.padding)
        second = blocks.pointwise(layer, name(1), layer.out_channels, **blocks.last_factor_args(layer))
        return blocks.assemble([
            (first, [factors.arrays["first"]]),
            (second, blocks.with_bias([blocks.pointwise_kernel(layer, factors.arrays["second"])], factors.bias)),
        ], layer.input_shape)


@pytest.fixture(scope="module")
def flat_method():
    base.register("flatsvd")(FlatSVD)
    yield "flatsvd"
    base._REGISTRY.pop("flatsvd")


@pytest.fixture(scope="module")
def model_and_data():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 8))
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(24, 3, strides=2, activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    rng = np.random.default_rng(0)
    x_calib = rng.normal(size=(64, 12, 12, 8)).astype(np.float32)
    return model, x_calib, model.predict(x_calib, verbose=0).argmax(1)


FAST = dict(samples_per_layer=128, memory_cap_bytes=32 << 20)


def test_inspect_offers_it(flat_method, model_and_data):
    rows = {row["name"]: row for row in inspect_model(model_and_data[0])}
    assert flat_method in rows["conv_a"]["methods"] and flat_method in rows["conv_b"]["methods"]
    assert flat_method not in rows["head"]["methods"]


@pytest.mark.parametrize("select", rank_selections())
def test_every_selection_chooses_it(flat_method, model_and_data, select):
    model, x, _ = model_and_data
    result = compress(model, x, CompressConfig(methods=flat_method, select=select, budget="params=0.5", **FAST))
    assert {layer.method for layer in result.plan.layers if layer.method} == {flat_method}
    assert result.plan.budget["achieved"]["params"] <= 0.5


@pytest.mark.parametrize("budget", ["params=0.4", "flops=0.5", "accuracy-drop=50", "latency=0.9@host"])
def test_every_budget_meets_it_with_it(flat_method, model_and_data, budget, tmp_path):
    from edgecompress.bench import CostTable

    table = lambda target: CostTable(target, cache_path=tmp_path / "t.json")  # noqa: E731
    model, x, y = model_and_data
    result = compress(model, (x, y), CompressConfig(methods=flat_method, budget=budget, cost_table=table, **FAST))
    kind, value = budget.split("=")
    assert any(layer.method == flat_method for layer in result.plan.layers)
    if kind in ("params", "flops"):
        assert result.plan.budget["achieved"][kind] <= float(value)


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_it_lowers_with_parity_and_an_audit(flat_method, model_and_data, to, tmp_path):
    model, x, _ = model_and_data
    result = compress(model, x, CompressConfig(methods=flat_method, budget="params=0.5", **FAST))
    artifact = export(result.model, tmp_path / f"flat.{to}", to=to, data=x[:8])
    audit = artifact.audit
    assert audit["builtin_only"]
    assert audit["parity"]["max_abs_diff"] <= TOLERANCE * audit["parity"]["max_abs_reference"]
    traced = {row["layer"] for row in audit["layers"]}
    assert {layer.name for layer in result.plan.layers if layer.method} <= traced
