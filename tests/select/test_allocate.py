"""The allocator meets params and FLOPs budgets within 1% below the target on a small model, by both rules,
never picking a block that costs more than its layer; greedy loses less similarity than one threshold."""
import math

import pytest

from edgecompress.select import allocate
from edgecompress.select.search import LayerFront, Point

BUDGETS = [("params", 0.3), ("params", 0.12), ("flops", 0.5), ("flops", 0.25)]


@pytest.mark.parametrize("rule", ["allocate", "threshold"])
@pytest.mark.parametrize("kind, fraction", BUDGETS)
def test_budget_met_within_one_percent_below(tiny_run, rule, kind, fraction):
    run, selector = tiny_run
    selector.rule = rule
    total = run.total(kind)
    limit = math.floor(fraction * total)
    choices = selector.choose(kind, limit, 0)
    reached = allocate.total_cost(choices, kind)
    assert 0.99 * limit <= reached <= limit
    for name, point in choices.items():
        info = run.tasks[name].info
        assert point.method is None or (point.params < info.params and point.flops <= info.flops)


def test_greedy_loses_no_more_than_one_threshold(tiny_run):
    run, selector = tiny_run
    limit = math.floor(0.2 * run.total("params"))
    loss = allocate.LOSSES[allocate.DEFAULT_LOSS]
    greedy = allocate.allocate_greedy(selector.fronts, "params", limit)
    threshold = allocate.allocate_threshold(selector.fronts, "params", limit)
    total_loss = lambda choices: sum(loss(p.similarity) for p in choices.values())  # noqa: E731
    assert total_loss(greedy) <= total_loss(threshold) + 1e-9


def test_hull_steps_have_rising_slopes_and_end_at_the_cheapest_point(tiny_run):
    _, selector = tiny_run
    for front in selector.fronts.values():
        points = front.front("params")
        steps = allocate.hull_steps(points, "params")
        slopes = [slope for slope, _ in steps]
        assert slopes == sorted(slopes)
        assert not steps or steps[-1][1] == points[0]


def test_fill_spends_slack_on_larger_ranks():
    import keras

    from edgecompress.factorize import get
    from edgecompress.graph.layers import describe
    from tests.conftest import single_layer_model

    info = describe(single_layer_model(keras.layers.Dense(32), (64,)))[-1]
    ranks = get("svd").ranks(info)
    cost = get("svd").cost(info, ranks[0])
    front = LayerFront(info, [Point("svd", ranks[0], cost.params, cost.flops, 0.5)], ranks={"svd": ranks})
    limit = info.params // 2
    filled = allocate.fill({"d": front.points[0]}, {"d": front}, "params", limit)
    assert filled["d"].rank > ranks[0] and filled["d"].params <= limit
    assert limit - filled["d"].params < get("svd").cost(info, (2,)).params - cost.params


def test_accuracy_drop_budget_keeps_the_measured_drop_within_the_budget(tiny_run):
    from edgecompress.compress import CHOOSERS, CompressConfig, CompressionRun
    from edgecompress.finetune import top1_pct
    from tests.select.models import calibration, trained_tiny_cnn

    _, selector = tiny_run
    x, y = calibration(256)
    run = CompressionRun(trained_tiny_cnn(), x, y, CompressConfig(budget="accuracy-drop=2"), None)
    choices = CHOOSERS["accuracy-drop"](run, selector)
    compressed, _ = run.build(selector, choices, final=False)
    drop = run.stats["accuracy_before"] - top1_pct(compressed, x, y)
    assert drop <= 2.0
    assert run.stats["params_fraction"] < 1.0 and choices


def test_accuracy_drop_judged_after_a_brief_finetune_cuts_deeper(tiny_run):
    """With labelled fine-tuning data the accuracy-drop budget judges each candidate after a brief fine-tune
    (what one-shot fine-tuning at least recovers), so it reaches a smaller params fraction than judging the
    raw compressed model, and the brief recovery really keeps the drop within the budget."""
    from edgecompress.compress import CHOOSERS, CompressConfig, CompressionRun
    from edgecompress.finetune import brief_recovery_accuracy
    from tests.select.models import calibration, fashion, trained_tiny_cnn

    _, selector = tiny_run
    x, y = calibration(256)
    x_train, y_train, _, _ = fashion()
    runs = {}
    for judged in ("before", "after"):
        run = CompressionRun(trained_tiny_cnn(), x, y, CompressConfig(budget="accuracy-drop=2"), None)
        run.recovery = (x_train[:2000], y_train[:2000]) if judged == "after" else None
        runs[judged] = (run, CHOOSERS["accuracy-drop"](run, selector))
    before, after = runs["before"][0].stats, runs["after"][0].stats
    assert after["accuracy_judged"] == "after a brief fine-tune" and before["accuracy_judged"] == "before fine-tuning"
    assert after["params_fraction"] < before["params_fraction"]
    run, choices = runs["after"]
    compressed, _ = run.build(selector, choices, final=False)
    recovered = brief_recovery_accuracy(compressed, x_train[:2000], y_train[:2000], x, y)
    assert after["accuracy_before"] - recovered <= 2.0


def test_latency_guard_offers_only_blocks_timed_faster_than_their_layer(tmp_path, monkeypatch):
    """latency_guard='host': every layer and each block on its params front is timed on host LiteRT (cost
    table); what stays on offer is no slower than its layer, what was dropped is counted, and a layer left with
    nothing says why in the plan."""
    from edgecompress.bench import costtable
    from edgecompress.compress import CompressConfig, CompressionRun
    from tests.select.conftest import TEST_LEVELS
    from tests.select.models import calibration, trained_tiny_cnn

    monkeypatch.setattr(costtable, "DEFAULT_CACHE", tmp_path / "latency_cache.json")  # fresh, not the user's
    config = CompressConfig(samples_per_layer=256, levels=TEST_LEVELS, budget="params=0.5", latency_guard="host",
                            cost_table=costtable.CostTable)
    run = CompressionRun(trained_tiny_cnn(), *calibration(128), config, None)
    selector = run.make_selector()
    offered = [p for front in selector.fronts.values() for p in front.points]
    for front in selector.fronts.values():
        assert all(p.latency_ms <= front.original_latency_ms for p in front.points)
    assert run.stats["latency_guard"] == "host" and run.stats["latency_guard_dropped"] >= 0
    assert offered or run.stats["latency_guard_dropped"] > 0
    for name, front in selector.fronts.items():
        if not front.points:
            assert "no block is faster" in selector.reasons[name]


def test_an_unknown_latency_guard_target_fails_before_any_work():
    from edgecompress.bench import CostTable
    from edgecompress.compress import CompressConfig, CompressionRun
    from edgecompress.errors import TargetError
    from tests.select.models import calibration, trained_tiny_cnn

    config = CompressConfig(latency_guard="no-such-board", cost_table=CostTable)
    run = CompressionRun(trained_tiny_cnn(), *calibration(64), config, None)
    with pytest.raises(TargetError, match="no-such-board"):
        run.make_selector()
    assert "capture_s" not in run.stats
