"""Per layer and method, bisect over the method's candidate ranks on similarity; per layer, keep every point
measured and the Pareto front of (cost, similarity) across methods: the hybrid choice set.

Similarity is near-monotone in rank and `Method.ranks()` lists ranks cheapest first, so for each target
level we bisect for the cheapest rank meeting it; the levels share one recursion (a rank scored for one
level serves all), and the cheapest rank is always scored so the cheapest plan stays reachable.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from edgecompress.factorize import get
from edgecompress.graph.layers import LayerInfo
from edgecompress.progress import Progress
from edgecompress.select.score import LayerScorer

# Target similarity levels: denser near 1, where the budgets people use end up.
DEFAULT_LEVELS = (0.5, 0.75, 0.88, 0.94, 0.97, 0.985, 0.993, 0.998)
# Ranks whose search decomposition costs more multiply-accumulates are not searched (CP-ALS at high ranks on
# 3x3x512x512 kernels: minutes per layer). About 2 s of one core; 64-channel 3x3 convs are never affected.
MAX_SEARCH_WORK_MACS = 1e10


@dataclass(frozen=True)
class Point:
    """One choice for a layer: a (method, rank) block, or the layer kept as it is (method None)."""

    method: str | None
    rank: tuple[int, ...] | None
    params: int
    flops: int
    similarity: float
    latency_ms: float = math.nan  # measured on a target for latency budgets, else unknown

    def cost(self, kind: str) -> float:
        return {"params": self.params, "flops": self.flops, "latency": self.latency_ms}[kind]


def cheapest_meeting(count: int, score: Callable[[int], float], levels: Sequence[float]) -> dict[float, int | None]:
    """For each level, the first index in 0..count-1 whose score >= level (None if none), by bisection.

    Assumes score is non-decreasing in the index; one recursion serves all levels, each index scored once.
    """
    answer: dict[float, int | None] = {}

    def solve(low: int, high: int, pending: list[float]) -> None:
        # Invariant: each pending level's answer is in [low, high]; high == count means "none".
        if not pending:
            return
        if low == high:
            answer.update({level: (low if low < count else None) for level in pending})
            return
        middle = (low + high) // 2
        value = score(middle)
        solve(low, middle, [level for level in pending if level <= value])
        solve(middle + 1, high, [level for level in pending if level > value])

    solve(0, count, sorted(levels))
    return answer


def pareto(points: Sequence[Point], kind: str) -> list[Point]:
    """Points no other point beats on both cost and similarity, cheapest first (similarity rising)."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.cost(kind), -p.similarity)):
        if not front or point.similarity > front[-1].similarity:
            front.append(point)
    return front


@dataclass
class LayerFront:
    """Everything measured for one layer; `front(kind)` is its Pareto front, the layer-as-is included."""

    info: LayerInfo
    points: list[Point]
    reasons: dict[str, str] = field(default_factory=dict)
    ranks: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)
    original_latency_ms: float = math.nan

    @property
    def original(self) -> Point:
        return Point(None, None, self.info.params, self.info.flops, 1.0, self.original_latency_ms)

    def front(self, kind: str) -> list[Point]:
        """Pareto front on `kind`; for latency only the points measured on the target take part."""
        candidates = self.points + [self.original]
        return pareto([p for p in candidates if not math.isnan(p.cost(kind))], kind)

    def with_latencies(self, latency_ms: dict, original_ms: float) -> "LayerFront":
        """A copy whose points carry the latencies measured for them ({(method, rank): ms})."""
        points = [dataclasses.replace(p, latency_ms=latency_ms.get((p.method, p.rank), math.nan)) for p in self.points]
        return LayerFront(self.info, points, self.reasons, self.ranks, original_ms)


def search_method(scorer: LayerScorer, method: str, ranks: Sequence[tuple[int, ...]],
                  levels: Sequence[float]) -> list[Point]:
    """Scored points of one method on one layer: the cheapest rank and every rank the bisection tried."""
    scored: dict[int, float] = {}

    def score(index: int) -> float:
        if index not in scored:
            scored[index] = scorer.similarity(method, ranks[index])
        return scored[index]

    score(0)
    cheapest_meeting(len(ranks), score, levels)
    chosen = get(method)
    return [Point(method, ranks[i], *_cost(chosen, scorer.info, ranks[i]), scored[i]) for i in sorted(scored)]


def _cost(method, info: LayerInfo, rank) -> tuple[int, int]:
    cost = method.cost(info, rank)
    return cost.params, cost.flops


def offered_ranks(info: LayerInfo, methods: Sequence[str],
                  rank_multiple: int = 1) -> tuple[dict[str, list], dict[str, str]]:
    """Candidate ranks per applicable method (aligned to the runtime's channel tile `rank_multiple`), and the
    reason for each method left out."""
    ranks, reasons = {}, {}
    for name in methods:
        method = get(name)
        reason = method.why_not(info)
        cheaper = [] if reason else method.ranks(info, rank_multiple)
        candidates = [rank for rank in cheaper if method.search_work(info, rank) <= MAX_SEARCH_WORK_MACS]
        if cheaper and not candidates:
            reason = (f"{name} at its lowest rank {cheaper[0]} needs over {MAX_SEARCH_WORK_MACS:.0e} "
                      f"multiply-accumulates to decompose: too slow for the search on a kernel this large")
        if reason or not candidates:
            reasons[name] = reason or f"no {name} rank gives a block cheaper than the layer"
        else:
            ranks[name] = candidates
    return ranks, reasons


def search(scorers: Mapping[str, LayerScorer], methods: Mapping[str, Sequence[str]],
           levels: Sequence[float] = DEFAULT_LEVELS, progress: Progress | None = None,
           rank_multiple: int = 1, jobs: int = 1) -> dict[str, LayerFront]:
    """Fronts for every layer in `methods` ({layer name: method names}), scored by its scorer.

    `jobs` > 1 searches that many layers at once in threads: each layer's search is independent and
    deterministic, and numpy, tensorly and TensorFlow run their heavy kernels outside the GIL, so the fronts are
    the same as with one job (tested) without copying the captured samples into other processes.
    """
    def one(name: str) -> LayerFront:
        scorer = scorers[name]
        ranks, reasons = offered_ranks(scorer.info, methods[name], rank_multiple)
        points = [point for method, candidates in ranks.items()
                  for point in search_method(scorer, method, candidates, levels)]
        return LayerFront(scorer.info, points, reasons, ranks)

    if jobs <= 1 or len(methods) <= 1:
        fronts = {}
        for done, name in enumerate(methods, start=1):
            fronts[name] = one(name)
            if progress:
                progress("search", done, len(methods))
        return fronts
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, name): name for name in methods}
        found = {}
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            found[futures[future]] = future.result()
            if progress:
                progress("search", done, len(methods))
    return {name: found[name] for name in methods}


__all__ = ["DEFAULT_LEVELS", "LayerFront", "Point", "cheapest_meeting", "pareto",
           "search", "search_method", "offered_ranks"]
