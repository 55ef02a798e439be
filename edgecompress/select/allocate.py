"""Meet a global params/FLOPs budget by choosing one point per layer on its front.

Two rules, compared in bench/compress_table.py:
- `allocate_greedy`: start every layer at its most similar point and repeatedly take the step with the
  least similarity loss per unit of cost saved, along each front's lower convex hull (the classic greedy
  for the multiple-choice knapsack; near-optimal when hull steps are small next to the budget).
- `allocate_threshold`: one similarity threshold for all layers, the highest whose cheapest points fit.
Both end with `fill`, which spends what is left of the budget on larger ranks of each layer's method
(analytic costs; similarity is near-monotone in rank, so a larger rank is not worse).
"""
from __future__ import annotations

import heapq
import math
from typing import Callable, Mapping

from edgecompress.factorize import get
from edgecompress.select.search import LayerFront, Point

Choices = dict[str, Point]
# How much a layer's similarity s costs the model. "log" treats layers as a chain whose similarities multiply
# (sum of -log s); "linear" sums 1 - s. Default by measurement: bench/results/similarity_vs_accuracy.md, where
# the mean of cosine similarities ranks configurations' fine-tuned top-1 best (Spearman 0.872 vs 0.855 for log).
LOSSES: dict[str, Callable[[float], float]] = {
    "log": lambda s: -math.log(min(max(s, 1e-3), 1.0)),
    "linear": lambda s: 1.0 - s,
}
DEFAULT_LOSS = "linear"


def total_cost(choices: Mapping[str, Point], kind: str, fixed_cost: int = 0) -> int:
    return fixed_cost + sum(point.cost(kind) for point in choices.values())


def cheapest_total(fronts: Mapping[str, LayerFront], kind: str, fixed_cost: int = 0) -> int:
    return fixed_cost + sum(min(p.cost(kind) for p in front.front(kind)) for front in fronts.values())


def hull_steps(front: list[Point], kind: str, loss: str = DEFAULT_LOSS) -> list[tuple[float, Point]]:
    """From the most similar point towards cheaper ones along the lower convex hull of (cost, loss(similarity)):
    [(loss per unit cost saved, point after the step)], slopes non-decreasing."""
    current = front[-1]
    steps = []
    of = LOSSES[loss]
    while True:
        cheaper = [p for p in front if p.cost(kind) < current.cost(kind)]
        if not cheaper:
            return steps
        slope = lambda p: (of(p.similarity) - of(current.similarity)) / (current.cost(kind) - p.cost(kind))  # noqa: E731
        best = min(cheaper, key=lambda p: (slope(p), p.cost(kind)))
        steps.append((slope(best), best))
        current = best


def allocate_greedy(fronts: Mapping[str, LayerFront], kind: str, limit: int, fixed_cost: int = 0,
                    loss: str = DEFAULT_LOSS) -> Choices:
    """Least total loss (sum over layers of loss(similarity)) found greedily, total cost <= limit."""
    choices = {name: front.front(kind)[-1] for name, front in fronts.items()}
    steps = {name: hull_steps(front.front(kind), kind, loss) for name, front in fronts.items()}
    heap = [(layer_steps[0][0], name, 0) for name, layer_steps in steps.items() if layer_steps]
    heapq.heapify(heap)
    total = total_cost(choices, kind, fixed_cost)
    while total > limit and heap:
        _, name, index = heapq.heappop(heap)
        point = steps[name][index][1]
        total += point.cost(kind) - choices[name].cost(kind)
        choices[name] = point
        if index + 1 < len(steps[name]):
            heapq.heappush(heap, (steps[name][index + 1][0], name, index + 1))
    return fill(choices, fronts, kind, limit, fixed_cost)


def threshold_choice(fronts: Mapping[str, LayerFront], kind: str, threshold: float) -> Choices:
    """Each layer's cheapest point with similarity >= threshold (the layer as it is always qualifies)."""
    return {name: next(p for p in front.front(kind) if p.similarity >= threshold) for name, front in fronts.items()}


def allocate_threshold(fronts: Mapping[str, LayerFront], kind: str, limit: int, fixed_cost: int = 0) -> Choices:
    """The highest single threshold whose choices fit the limit, found by bisection over measured levels."""
    levels = sorted({p.similarity for front in fronts.values() for p in front.front(kind)}, reverse=True)
    low, high = 0, len(levels) - 1  # levels[high] (the lowest) is assumed to fit: the cheapest plan
    while low < high:
        middle = (low + high) // 2
        fits = total_cost(threshold_choice(fronts, kind, levels[middle]), kind, fixed_cost) <= limit
        low, high = (low, middle) if fits else (middle + 1, high)
    return fill(threshold_choice(fronts, kind, levels[low]), fronts, kind, limit, fixed_cost)


def fill(choices: Choices, fronts: Mapping[str, LayerFront], kind: str, limit: int, fixed_cost: int = 0) -> Choices:
    """Spend the slack under `limit`, least similar layers first: a measured point of any method that is more
    similar and fits, else the largest rank of the layer's method that fits (carrying the old similarity as
    a lower bound), else nothing; the original layer when it fits."""
    choices = dict(choices)
    changed = True
    while changed:
        changed = False
        for name in sorted(choices, key=lambda n: choices[n].similarity):
            slack = limit - total_cost(choices, kind, fixed_cost)
            upgrade = _best_upgrade(fronts[name], choices[name], kind, slack)
            if upgrade is not None:
                choices[name], changed = upgrade, True
    return choices


def _best_upgrade(front: LayerFront, current: Point, kind: str, slack: int) -> Point | None:
    if current.method is None or slack <= 0:
        return None
    budget = current.cost(kind) + slack
    if front.original.cost(kind) <= budget:
        return front.original
    measured = [p for p in front.points if p.similarity > current.similarity and p.cost(kind) <= budget]
    if measured:
        return max(measured, key=lambda p: (p.similarity, -p.cost(kind)))
    return _larger_rank(front, current, kind, budget)


def _larger_rank(front: LayerFront, current: Point, kind: str, budget: int) -> Point | None:
    """The largest listed rank of the method that fits, then one mode at a time (+1, cheapest step first)
    while a step still fits: fine steps are what bring a total within a hair of the limit. Analytic costs
    only: latencies are known for measured points alone, so a timed front (latency budget or guard) takes no
    unmeasured rank: it might be slower than the layer, or off the runtime's channel tile."""
    if kind == "latency" or not math.isnan(front.original_latency_ms):
        return None
    method = get(current.method)
    larger = [r for r in front.ranks.get(current.method, [])
              if r != current.rank and all(a >= b for a, b in zip(r, current.rank))]
    fitting = [r for r in larger if getattr(method.cost(front.info, r), kind) <= budget]
    rank = max(fitting, key=lambda r: (getattr(method.cost(front.info, r), kind), r)) if fitting else current.rank
    rank = _ascend(method, front.info, rank, kind, budget)
    if rank == current.rank:
        return None
    cost = method.cost(front.info, rank)
    return Point(current.method, rank, cost.params, cost.flops, current.similarity)


def _ascend(method, info, rank: tuple[int, ...], kind: str, budget: int) -> tuple[int, ...]:
    full = method.full_rank(info)
    while True:
        steps = [rank[:i] + (rank[i] + 1,) + rank[i + 1:] for i in range(len(rank)) if rank[i] < full[i]]
        steps = [r for r in steps if method.rank_problem(info, r) is None]
        steps = [(getattr(method.cost(info, r), kind), r) for r in steps]
        steps = [(cost, r) for cost, r in steps if cost <= budget]
        if not steps:
            return rank
        rank = min(steps)[1]


__all__ = ["allocate_greedy", "allocate_threshold", "cheapest_total", "fill", "hull_steps", "threshold_choice",
           "total_cost"]
