"""Rank selection behind one interface (`Selector`), so ours and the baselines run side by side through the
same code: `choose(kind, limit, fixed_cost)` -> {layer: Point} meeting a limit, `default(knob)` without one."""
from __future__ import annotations

import math
from typing import Mapping, Protocol, Sequence

from edgecompress.errors import BudgetError, ConfigError
from edgecompress.factorize import get
from edgecompress.factorize.base import SEARCH_ITERATIONS
from edgecompress.graph.layers import layer_weights
from edgecompress.progress import Progress
from edgecompress.select import allocate, baselines
from edgecompress.select.capture import Capture
from edgecompress.select.factorcache import FactorCache
from edgecompress.select.score import LayerScorer
from edgecompress.select.search import LayerFront, Point, search
from edgecompress.select.similarity import Metric
from edgecompress.select.tasks import LayerTask

RULES = ("allocate", "threshold")


class Selector(Protocol):
    """What `compress` asks of a rank selection. `scorers` give the final factors of the chosen blocks and
    their similarity; `reasons` say why a layer the selection considered was kept."""

    name: str
    scorers: dict[str, LayerScorer]
    reasons: dict[str, str]

    def cheapest(self, kind: str) -> float:
        """The lowest total cost of the searched layers this selection can reach."""

    def choose(self, kind: str, limit: float, fixed_cost: float = 0) -> dict[str, Point]:
        """A choice whose searched layers cost at most `limit` - `fixed_cost` in `kind`."""

    def default(self, knob: float) -> dict[str, Point]:
        """A choice without a budget: the similarity threshold (ours) or the baseline's knob."""


DECOMPOSITIONS = ("data-aware", "plain")


def make_scorers(model, tasks: Mapping[str, LayerTask], capture: Capture, metric: Metric,
                 search_iterations: int = SEARCH_ITERATIONS, decompose: str = "plain") -> dict[str, LayerScorer]:
    """A scorer for every layer not kept. decompose="data-aware" fits the blocks to the layer's outputs on the
    captured samples (whitened decomposition, then a refit of the output factor); "plain" to its weights."""
    if decompose not in DECOMPOSITIONS:
        raise ConfigError(f"unknown decomposition {decompose!r}; use {' or '.join(DECOMPOSITIONS)}")
    scorers = {}
    for name, task in tasks.items():
        if task.reason is None:
            kernel, bias = layer_weights(model.get_layer(name))
            samples = capture.layers[name]
            moment = samples.channel_second_moment(task.info.dilation) if decompose == "data-aware" else None
            cache = FactorCache(task.info, kernel, bias, search_iterations, moment)
            scorers[name] = LayerScorer(task.info, kernel, bias, samples, metric, cache,
                                        refit=decompose == "data-aware")
    return scorers


class SimilaritySelector:
    """Ours: Pareto fronts from the bisection search, then greedy allocation or one threshold."""

    name = "similarity"

    def __init__(self, tasks: Mapping[str, LayerTask], scorers: Mapping[str, LayerScorer], levels: Sequence[float],
                 rule: str = "allocate", progress: Progress | None = None, loss: str = allocate.DEFAULT_LOSS,
                 rank_multiple: int = 1, jobs: int = 1):
        if rule not in RULES or loss not in allocate.LOSSES:
            raise ConfigError(f"unknown allocation rule {rule!r} or loss {loss!r}; rules: {', '.join(RULES)}, "
                              f"losses: {', '.join(allocate.LOSSES)}")
        searched = {name: task.methods for name, task in tasks.items() if task.searched}
        self.fronts: dict[str, LayerFront] = search(scorers, searched, levels, progress, rank_multiple, jobs)
        self.scorers = dict(scorers)
        self.rule, self.loss = rule, loss
        self.reasons: dict[str, str] = {}  # why a searched layer was kept, when the plan needs more than the budget

    @property
    def evaluations(self) -> int:
        return sum(scorer.evaluations for scorer in self.scorers.values())

    def cheapest(self, kind: str) -> int:
        return allocate.cheapest_total(self.fronts, kind)

    def choose(self, kind: str, limit: int, fixed_cost: int = 0) -> dict[str, Point]:
        if self.rule == "allocate":
            return allocate.allocate_greedy(self.fronts, kind, limit, fixed_cost, self.loss)
        return allocate.allocate_threshold(self.fronts, kind, limit, fixed_cost)

    def attach_latency(self, table, model) -> None:
        """Measure on `table`'s target each layer as it is and every block on its params front (one runner
        call for all shapes not cached yet); the fronts then answer for kind "latency"."""
        requests, keys = [], []
        for name, front in self.fronts.items():
            shape = tuple(front.info.input_shape)
            requests.append(([model.get_layer(name)], shape))
            keys.append((name, None))
            for point in front.front("params"):
                if point.method is not None:
                    factors = self.scorers[name].cache.search(point.method, point.rank)
                    requests.append((get(point.method).build(front.info, factors), shape))
                    keys.append((name, (point.method, point.rank)))
        measured: dict[str, dict] = {name: {} for name in self.fronts}
        for (name, key), latency_ms in zip(keys, table.latency_many(requests)):
            measured[name][key] = latency_ms
        self.fronts = {name: front.with_latencies(measured[name], measured[name].pop(None))
                       for name, front in self.fronts.items()}

    def restricted(self, methods: Sequence[str]) -> "SimilaritySelector":
        """The same search seen through fewer methods (single-method runs): layers none of them applies to
        drop out of the fronts and count as kept. Shares the scorers, so nothing is searched again."""
        view = object.__new__(SimilaritySelector)
        view.__dict__.update(self.__dict__)
        view.fronts = {}
        for name, front in self.fronts.items():
            points = [p for p in front.points if p.method in methods]
            if points:
                ranks = {m: r for m, r in front.ranks.items() if m in methods}
                view.fronts[name] = LayerFront(front.info, points, front.reasons, ranks)
        return view

    def default(self, threshold: float) -> dict[str, Point]:
        """Without a budget: each layer's cheapest point at or above `threshold`."""
        return allocate.threshold_choice(self.fronts, "params", threshold)


class BaselineSelector:
    """VBMF, energy or uniform ranks; one method per layer; a budget tunes the baseline's one knob."""

    def __init__(self, model, tasks: Mapping[str, LayerTask], select: str, hybrid: bool,
                 scorers: Mapping[str, LayerScorer]):
        self.name = select
        self.scorers = dict(scorers)
        self.bases: dict[str, baselines.LayerBasis] = {}
        self.reasons: dict[str, str] = {}
        self.excluded: list = []  # searchable layers this baseline's method does not apply to: kept
        for name, task in tasks.items():
            if task.searched:
                method = baselines.hybrid_method(task.info) if hybrid else task.methods[0]
                if method not in task.methods:
                    self.reasons[name] = f"{select} with hybrid methods uses {method} here, which does not apply"
                    self.excluded.append(task.info)
                    continue
                self.bases[name] = baselines.LayerBasis(task.info, method, layer_weights(model.get_layer(name))[0])
        self.knob = math.nan

    @property
    def evaluations(self) -> int:
        return sum(scorer.evaluations for scorer in self.scorers.values())

    def cheapest(self, kind: str) -> int:
        return baselines.knob_cost(self.bases, self.name, 1e-9, kind) + self._excluded_cost(kind)

    def _excluded_cost(self, kind: str) -> int:
        return sum(getattr(info, kind) for info in self.excluded)

    def choose(self, kind: str, limit: int, fixed_cost: int = 0) -> dict[str, Point]:
        knob = baselines.knob_for_budget(self.bases, self.name, kind, limit - fixed_cost - self._excluded_cost(kind))
        if knob is None:
            raise BudgetError(f"{self.name} cannot meet the budget with any knob value")
        return self.default(knob)

    def default(self, knob: float) -> dict[str, Point]:
        self.knob = knob
        choices = {}
        for name, basis in self.bases.items():
            rank, reason = basis.choice(self.name, knob)
            if rank is None:
                self.reasons[name] = reason
                continue
            cost = get(basis.method).cost(basis.info, rank)
            choices[name] = Point(basis.method, rank, cost.params, cost.flops, math.nan)
        return choices


def rank_selections() -> list[str]:
    """The selections that choose a factorization rank per layer: ours first, then the baselines."""
    return ["similarity", *baselines.DEFAULT_KNOBS]


def selections() -> list[str]:
    """Every selection: the rank selections, then filter pruning (select/fbp.py), which factorizes nothing."""
    return [*rank_selections(), "fbp"]


def check_select(select: str) -> None:
    if select not in selections():
        raise ConfigError(f"unknown selection {select!r}; use {', '.join(selections())}")
