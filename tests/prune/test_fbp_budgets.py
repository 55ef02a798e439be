"""`compress --select fbp` under every budget kind, and `--prune F` before factorization under each: the
budget is met against the original model and the plan says how."""
from __future__ import annotations

import numpy as np
import pytest

from edgecompress.compress import AUTO_PRUNE_RATIOS, CompressConfig, compress
from edgecompress.finetune import top1_pct
from tests.graph.architectures import resnet_style
from tests.test_compress import _FlopsTable, _WholeFlopsTable

BUDGETS = [None, "params=0.5", "flops=0.5", "accuracy-drop=50", "latency=0.6@host"]


@pytest.fixture(scope="module")
def model_and_data():
    rng = np.random.default_rng(0)
    return resnet_style(), rng.random((48, 16, 16, 3), dtype=np.float32), rng.integers(0, 10, 48)


def _achieved(plan, kind):
    return plan.budget["achieved"][kind if kind != "latency" else "latency"]


@pytest.mark.parametrize("budget", BUDGETS)
def test_fbp_meets_every_budget_kind(model_and_data, budget):
    model, x, y = model_and_data
    result = compress(model, (x, y), CompressConfig(select="fbp", budget=budget, cost_table=_FlopsTable))
    plan = result.plan
    assert plan.pruning["groups"] and not any(layer.method for layer in plan.layers)
    assert sum(layer.params_after for layer in plan.layers) < sum(layer.params_before for layer in plan.layers)
    if budget is None:
        assert plan.budget["prune"] == pytest.approx(0.3)
        return
    kind, value = budget.split("=")
    if kind in ("params", "flops", "latency"):
        assert _achieved(plan, kind) <= float(value.split("@")[0])
    else:
        assert plan.budget["accuracy_before"] - plan.budget["accuracy_compressed"] <= float(value)


@pytest.mark.parametrize("budget", ["params=0.3", "flops=0.4", "latency=0.5@host"])
def test_prune_then_factorize_meets_the_budget_on_the_original(model_and_data, budget):
    model, x, y = model_and_data
    config = CompressConfig(prune=0.2, budget=budget, methods="tucker,svd", cost_table=_FlopsTable,
                            decompose="plain", capture="independent")
    plan = compress(model, (x, y), config).plan
    kind, value = budget.split("=")
    assert _achieved(plan, kind) <= float(value.split("@")[0]) + 1e-6
    assert plan.budget["prune"] == 0.2 and plan.pruning is not None
    assert any(layer.channels and layer.channels[1] < layer.channels[0] for layer in plan.layers)


def test_prune_then_factorize_counts_a_latency_budget_on_the_layers_alone(model_and_data):
    """After pruning, the restated latency budget is met as pruning meets it, on the layers timed alone: no whole
    pruned model is timed against itself as if it were the original."""
    model, x, y = model_and_data
    _WholeFlopsTable.timed_models = 0
    config = CompressConfig(prune=0.2, budget="latency=0.5@host", methods="tucker,svd", cost_table=_WholeFlopsTable,
                            decompose="plain", capture="independent")
    plan = compress(model, (x, y), config).plan
    assert plan.budget["latency_measured_as"] == "layers timed alone" and plan.budget["achieved"]["latency"] <= 0.5
    assert _WholeFlopsTable.timed_models == 0


@pytest.mark.parametrize("labelled", [True, False])
def test_prune_auto_keeps_the_fraction_that_judges_best(model_and_data, labelled):
    """--prune auto compresses at each fraction of AUTO_PRUNE_RATIOS under the same budget and keeps the one
    whose model judges best on the calibration data (top-1 with labels, top-1 agreement with the original
    without): the kept model's own score is the best recorded, and ties go to the smaller fraction."""
    model, x, y = model_and_data
    config = CompressConfig(prune="auto", budget="params=0.4", methods="tucker,svd", decompose="plain",
                            capture="independent")
    result = compress(model, (x, y) if labelled else x, config)
    budget = result.plan.budget
    judged = {float(ratio): pct for ratio, pct in budget["prune_judged_pct"].items()}
    assert budget["prune_asked"] == "auto" and set(judged) <= set(AUTO_PRUNE_RATIOS) and len(judged) >= 2
    best = max(judged.values())
    assert budget["prune"] == min(ratio for ratio, pct in judged.items() if pct == best)
    assert budget["achieved"]["params"] <= 0.4 + 1e-6
    if labelled:
        assert top1_pct(result.model, x, y) == pytest.approx(best, abs=1e-3)
    else:
        agreement = np.argmax(result.model.predict(x, verbose=0), -1) == np.argmax(model.predict(x, verbose=0), -1)
        assert 100 * agreement.mean() == pytest.approx(best, abs=1e-3)
