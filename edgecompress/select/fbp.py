"""Filter pruning as a selection (`--select fbp`, the paper's FBP baseline) and as a first stage (`--prune F`).

A `Pruner` (edgecompress.prune) holds one global removal order; here each budget kind picks a prefix of it:
params/flops by the analytic cost of the Conv/Dense layers, accuracy-drop by bisecting on the params fraction
with the caller's accuracy judge, latency by timing every pruned Conv/Dense layer alone on the target's cost
table (the same accounting as factorization's latency budgets). Writes the plan's per-layer records too.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from edgecompress.errors import BudgetError
from edgecompress.graph.layers import LayerInfo, describe
from edgecompress.prune import Pruned, Pruner
from edgecompress.select.budgets import Budget
from edgecompress.select.plan import LayerPlan

DEFAULT_RATIO = 0.3  # --select fbp without a budget: remove this fraction of the prunable channels
ACCURACY_SEARCH_STEPS = 7


def candidate_latency_ms(model: keras.Model, table) -> float:
    """Summed latency of the model's Conv/Dense layers, each timed alone on the cost table's target."""
    infos = [info for info in describe(model) if info.kind is not None and info.input_shape is not None]
    requests = [([model.get_layer(info.name)], tuple(info.input_shape)) for info in infos]
    return float(sum(table.latency_many(requests))) if requests else 0.0


def prune_for_budget(pruner: Pruner, budget: Budget | None, judge: Callable[[keras.Model], float] | None = None,
                     table=None, stats: dict | None = None) -> Pruned:
    """The pruned model meeting `budget` (None: DEFAULT_RATIO of the channels); `stats` gets what was measured."""
    stats = stats if stats is not None else {}
    if budget is None:
        return pruner.by_ratio(DEFAULT_RATIO)
    if budget.kind in ("params", "flops"):
        return pruner.by_fraction(budget.kind, budget.value)
    if budget.kind == "accuracy-drop":
        return _for_accuracy(pruner, budget, judge, stats)
    return _for_latency(pruner, budget, table, stats)


def _for_accuracy(pruner: Pruner, budget: Budget, judge, stats: dict) -> Pruned:
    """Bisect the params fraction: the smallest whose pruned model loses at most the budget's top-1 points."""
    before_pct = judge(pruner.model)
    low, high = pruner.reachable("params"), 1.0
    best = pruner.pruned(set())
    best_pct = before_pct
    for _ in range(ACCURACY_SEARCH_STEPS):
        middle = (low + high) / 2
        candidate = pruner.by_fraction("params", middle)
        accuracy_pct = judge(candidate.model)
        if before_pct - accuracy_pct <= budget.value:
            high, best, best_pct = middle, candidate, accuracy_pct
        else:
            low = middle
    stats.update(accuracy_before=before_pct, accuracy_compressed=best_pct, params_fraction=high)
    return best


def _for_latency(pruner: Pruner, budget: Budget, table, stats: dict) -> Pruned:
    """The fewest removals whose Conv/Dense layers, timed alone, take at most the budget's fraction."""
    before_ms = candidate_latency_ms(pruner.model, table)
    order = pruner.order
    latency_of: dict[int, tuple[float, Pruned]] = {}

    def measured(count: int) -> tuple[float, Pruned]:
        if count not in latency_of:
            pruned = pruner.pruned(set(order[:count]))
            latency_of[count] = (candidate_latency_ms(pruned.model, table), pruned)
        return latency_of[count]

    if measured(len(order))[0] > budget.value * before_ms:
        raise BudgetError(f"budget {budget.text!r} cannot be met by filter pruning: removing every prunable "
                          f"channel reaches {measured(len(order))[0] / before_ms:.3f} of the layers' latency on "
                          f"{budget.target}; ask for a larger fraction")
    low, high = 0, len(order)
    while low < high:  # latency is near-monotone in the prefix; bisection takes the first prefix that fits
        middle = (low + high) // 2
        low, high = (low, middle) if measured(middle)[0] <= budget.value * before_ms else (middle + 1, high)
    after_ms, pruned = measured(high)
    stats.update(latency_before_ms=before_ms, latency_after_ms=after_ms)
    return pruned


def pruned_layer_plans(original: Sequence[LayerInfo], pruned: Pruned,
                       factorized: Mapping[str, LayerPlan] | None = None) -> list[LayerPlan]:
    """One LayerPlan per Conv/Dense layer of the original model: channels kept by pruning, then the
    factorization chosen on the pruned layer (if any); costs before are the original layer's."""
    after = {info.name: info for info in describe(pruned.model)}
    factorized = factorized or {}
    plans = []
    for info in original:
        if info.kind is None:
            continue
        channels = pruned.channels.get(info.name)
        step = factorized.get(info.name)
        shrunk = bool(channels and channels[1] < channels[0])
        if step is not None:
            reason = f"pruned; not factorized ({step.reason})" if shrunk and step.method is None else step.reason
            plan = LayerPlan(info.name, info.kind, step.method, step.rank, step.similarity, info.params,
                             step.params_after, info.flops, step.flops_after, reason, notes=step.notes)
        else:
            now = after.get(info.name, info)
            reason = "pruned, not factorized" if shrunk else (
                pruned.unprunable.get(info.name) or info.reason or "kept: pruning removed none of its channels")
            plan = LayerPlan(info.name, info.kind, None, None, 1.0, info.params, now.params, info.flops,
                             now.flops, reason)
        plan.channels = tuple(channels) if channels else None
        plans.append(plan)
    return plans


def scaled_budget(budget: Budget, before: float, after_pruning: float) -> Budget:
    """A params/flops/latency budget given on the original, restated on the pruned model (at most 1)."""
    if budget.kind == "accuracy-drop" or not after_pruning:
        return budget
    return Budget(budget.kind, float(np.clip(budget.value * before / after_pruning, 1e-6, 1.0)), budget.target)
