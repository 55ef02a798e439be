"""Bisection over ranks finds what a full scan finds; fronts are Pareto and never cost more than the layer."""
import keras
import numpy as np

from edgecompress.factorize import get
from edgecompress.graph.layers import describe
from edgecompress.select.capture import capture
from edgecompress.select.score import LayerScorer
from edgecompress.select.search import LayerFront, Point, cheapest_meeting, pareto, search_method
from edgecompress.select.similarity import get_metric
from tests.conftest import single_layer_model

LEVELS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def _full_scan(values, levels):
    return {level: next((i for i, v in enumerate(values) if v >= level), None) for level in levels}


def test_cheapest_meeting_equals_a_full_scan_on_monotone_sequences():
    rng = np.random.default_rng(0)
    for count in (1, 2, 7, 50):
        values = np.sort(rng.random(count))
        calls = []
        found = cheapest_meeting(count, lambda i: calls.append(i) or values[i], LEVELS)
        assert found == _full_scan(values, LEVELS)
        assert len(set(calls)) == len(calls)  # nothing scored twice


def test_bisection_equals_full_scan_on_a_small_layer():
    # A linear Dense layer: truncated-SVD similarity is exactly monotone in rank, so a full scan is the truth.
    layer = keras.layers.Dense(24)
    model = single_layer_model(layer, (40,))
    info = describe(model)[-1]
    x = np.random.default_rng(1).normal(size=(300, 40)).astype(np.float32)
    samples = capture(model, x, [info]).layers[info.name]
    scorer = LayerScorer(info, layer.kernel.numpy(), layer.bias.numpy(), samples, get_metric("nmse"))
    ranks = get("svd").ranks(info)
    scan = [scorer.similarity("svd", r) for r in ranks]
    assert np.all(np.diff(scan) >= -1e-9)
    expected = _full_scan(scan, LEVELS)
    bisected = cheapest_meeting(len(ranks), lambda i: scorer.similarity("svd", ranks[i]), LEVELS)
    assert bisected == expected


def test_search_method_scores_far_fewer_ranks_than_a_scan():
    layer = keras.layers.Conv2D(32, 3, padding="same", activation="relu")
    model = single_layer_model(layer, (8, 8, 32))
    info = describe(model)[-1]
    x = np.random.default_rng(2).normal(size=(20, 8, 8, 32)).astype(np.float32)
    samples = capture(model, x, [info], samples_per_layer=500).layers[info.name]
    scorer = LayerScorer(info, layer.kernel.numpy(), layer.bias.numpy(), samples, get_metric("nmse"))
    ranks = get("tucker").ranks(info)
    points = search_method(scorer, "tucker", ranks, LEVELS)
    assert points[0].rank == ranks[0]
    assert len(points) <= len(LEVELS) * np.ceil(np.log2(len(ranks))) < len(ranks) * 2
    assert len(points) < len(ranks)
    assert all(p.params < info.params and p.flops <= info.flops for p in points)


def test_pareto_keeps_only_undominated_points_cheapest_first():
    points = [Point("a", (1,), 10, 5, 0.5), Point("b", (1,), 12, 5, 0.4), Point("c", (2,), 20, 9, 0.9),
              Point("d", (3,), 20, 9, 0.8), Point("e", (4,), 30, 1, 0.95)]
    assert [p.method for p in pareto(points, "params")] == ["a", "c", "e"]
    assert [p.method for p in pareto(points, "flops")] == ["e"]


def test_layer_front_includes_the_layer_as_it_is():
    info = describe(single_layer_model(keras.layers.Dense(4), (6,)))[-1]
    front = LayerFront(info, [Point("svd", (1,), 14, 20, 0.7)])
    assert [p.method for p in front.front("params")] == ["svd", None]
    assert front.front("params")[-1].similarity == 1.0


def test_parallel_search_gives_the_same_plan_as_one_job():
    """--jobs N searches layers in threads; each layer's search is deterministic and independent, so the plan
    (methods, ranks, similarities to 1e-6 as written) is identical."""
    from edgecompress.compress import CompressConfig, compress
    from tests.graph.architectures import resnet_style

    model = resnet_style()
    x = np.random.default_rng(4).random((64, 16, 16, 3), dtype=np.float32)
    plans = [compress(model, x, CompressConfig(budget="params=0.4", methods="tucker,cp,svd", samples_per_layer=128,
                                               jobs=jobs)).plan.to_json() for jobs in (1, 2)]
    assert plans[0]["layers"] == plans[1]["layers"]
