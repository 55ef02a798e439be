"""Derived decompositions: SVD/QR truncation is exactly the method's own decompose(); truncated HOSVD and
few-iteration CP score close to the full decompositions the final model gets."""
import keras
import numpy as np
import pytest

from edgecompress.factorize import get
from edgecompress.graph.layers import describe
from edgecompress.select.capture import capture
from edgecompress.select.factorcache import FactorCache
from edgecompress.select.score import LayerScorer
from edgecompress.select.similarity import get_metric
from tests.conftest import single_layer_model


def _layer(kind):
    rng = np.random.default_rng(0)
    if kind == "dense":
        layer, shape = keras.layers.Dense(12, activation="relu"), (20,)
    else:
        layer, shape = keras.layers.Conv2D(12, 3, padding="same", activation="relu"), (8, 8, 10)
    model = single_layer_model(layer, shape)
    return layer, describe(model)[-1], model, rng.normal(size=(16,) + shape).astype(np.float32)


@pytest.mark.parametrize("method", ["svd", "qr"])
def test_matrix_truncation_equals_decompose_at_that_rank(method, monkeypatch):
    layer, info, _, _ = _layer("dense")
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    direct = {rank: get(method).decompose(info, kernel, bias, rank).arrays for rank in [(1,), (5,), (12,)]}
    calls = []
    original = type(get(method)).decompose
    monkeypatch.setattr(type(get(method)), "decompose", lambda *args: calls.append(args) or original(*args))
    cache = FactorCache(info, kernel, bias)
    for rank, arrays in direct.items():
        derived = cache.search(method, rank).arrays
        for key in arrays:
            np.testing.assert_allclose(derived[key], arrays[key], atol=1e-10)
    assert len(calls) == 1, "one full-rank decomposition serves every rank"


@pytest.mark.parametrize("method, rank", [("tucker", (4, 5)), ("cp", (6,))])
def test_search_factors_score_close_to_final_factors(method, rank):
    layer, info, model, x = _layer("conv")
    samples = capture(model, x, [info], samples_per_layer=400).layers[info.name]
    scorer = LayerScorer(info, layer.kernel.numpy(), layer.bias.numpy(), samples, get_metric("nmse"))
    fast = scorer.similarity(method, rank)
    _, final = scorer.final(method, rank)
    assert final >= fast - 0.02
    assert abs(final - fast) < 0.1


def test_truncated_hosvd_reconstructs_at_full_rank():
    layer, info, _, _ = _layer("conv")
    factors = FactorCache(info, layer.kernel.numpy(), None).search("tucker", (10, 12)).arrays
    rebuilt = np.einsum("hwab,ia,ob->hwio", factors["core"], factors["u_in"], factors["u_out"])
    np.testing.assert_allclose(rebuilt, layer.kernel.numpy(), atol=1e-6)


def test_balanced_cp_keeps_the_tensor_and_evens_the_scales():
    import tensorly

    from edgecompress.factorize.cp import balanced_cp

    rng = np.random.default_rng(0)
    factors = [rng.normal(size=(n, 4)) * s for n, s in [(3, 0.01), (5, 1.0), (6, 300.0)]]
    weights = np.array([2.0, -1.0, 0.5, 3.0])
    balanced = balanced_cp(weights, factors)
    np.testing.assert_allclose(tensorly.cp_to_tensor((np.ones(4), balanced)),
                               tensorly.cp_to_tensor((weights, factors)), atol=1e-9)
    norms = np.stack([np.linalg.norm(f, axis=0) for f in balanced])
    np.testing.assert_allclose(norms, np.broadcast_to(norms[0], norms.shape), rtol=1e-9)
