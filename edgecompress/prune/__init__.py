"""Structured filter pruning (FBP): remove output channels of Conv1D/2D/3D and Dense layers and the matching
input channels of everything that reads them, with residual adds, concatenations and depthwise convs pruned
together as dependency groups.

    pruned = prune(model, ratio=0.3)                            # 30% of the prunable channels, by filter L1 norm
    pruned = prune(model, budget="params=0.5", criterion="energy", data=x)
    pruned.model, pruned.channels, pruned.unprunable

groups.py reads the dependency graph, criteria.py scores channels, choose.py picks what to remove under a ratio
or budget, surgery.py slices the weights and rebuilds the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from edgecompress.errors import BudgetError, ConfigError
from edgecompress.graph.rebuild import normalize
from edgecompress.prune.choose import check_ratio, removal_for_limit, removal_for_ratio, removal_order
from edgecompress.prune.criteria import CRITERIA, DEFAULT_CRITERION, get_criterion
from edgecompress.prune.groups import ChannelGraph, channel_graph
from edgecompress.prune.refit import refitted_weights
from edgecompress.prune.surgery import PrunedCost, kept_channels, pruned_model


@dataclass
class Pruned:
    model: keras.Model
    channels: dict[str, tuple[int, int]]                      # producer -> (output channels before, kept)
    groups: list[list[str]]                                   # producers whose channels are removed together
    unprunable: dict[str, str] = field(default_factory=dict)  # producer -> why none of its channels can go
    criterion: str | None = None
    refitted: bool = False                                    # readers of pruned channels refitted (refit.py)

    def to_json(self) -> dict:
        """plan.json's "pruning" record."""
        return {"criterion": self.criterion, "refit": self.refitted,
                "groups": [{"layers": group, "channels_before": sum(self.channels[n][0] for n in group),
                            "channels_kept": sum(self.channels[n][1] for n in group)} for group in self.groups],
                "unprunable": dict(sorted(self.unprunable.items()))}


def dependency_groups(graph: ChannelGraph) -> list[list[str]]:
    """Producers linked by a shared removable class, each group in graph order."""
    owner: dict[str, str] = {name: name for name in graph.producers}

    def root(name: str) -> str:
        while owner[name] != name:
            name = owner[name]
        return name

    for members in graph.removable().values():
        names = [name for name, _ in members]
        for other in names[1:]:
            owner[root(other)] = root(names[0])
    groups: dict[str, list[str]] = {}
    for name in graph.producers:
        groups.setdefault(root(name), []).append(name)
    prunable = {name for members in graph.removable().values() for name, _ in members}
    return [group for group in groups.values() if any(name in prunable for name in group)]


class Pruner:
    """One model's dependency graph, scores and removal order, reused for every ratio or budget asked."""

    def __init__(self, model: keras.Model, criterion: str | None = None, x: np.ndarray | None = None,
                 multiple: int = 1, refit: bool = True):
        """`x`: calibration inputs, for the energy criterion and (with `refit`) the least-squares refit of the
        layers that read pruned channels (refit.py). Default criterion: energy with `x`, else l1."""
        criterion = criterion or (DEFAULT_CRITERION if x is not None else "l1")
        self.model = normalize(model)
        self.criterion, self.x, self.refit = criterion, x, refit and x is not None
        self.graph = channel_graph(self.model)
        self.cost = PrunedCost(self.model, self.graph)
        self.order = removal_order(self.graph, get_criterion(criterion)(self.model, self.graph, x), multiple)

    def fraction(self, removed: set[int], kind: str) -> float:
        """Candidate-layer params or FLOPs after the removal, over before."""
        return self.cost.candidate_total(removed, kind) / max(1, self.cost.candidate_total(set(), kind))

    def by_ratio(self, ratio: float) -> Pruned:
        return self.pruned(removal_for_ratio(self.graph, self.order, ratio))

    def by_fraction(self, kind: str, fraction: float) -> Pruned:
        """The fewest removals that bring the Conv/Dense layers' params or FLOPs to `fraction` of the original."""
        limit = fraction * self.cost.candidate_total(set(), kind)
        return self.pruned(removal_for_limit(self.order, lambda r: self.cost.candidate_total(r, kind), limit,
                                             f"budget {kind}={fraction:g}"))

    def reachable(self, kind: str) -> float:
        return self.fraction(set(self.order), kind)

    def pruned(self, removed: set[int]) -> Pruned:
        replacements = refitted_weights(self.model, self.graph, removed, self.x) if self.refit and removed else None
        return make_pruned(self.model, self.graph, removed, self.criterion, replacements)


def make_pruned(model: keras.Model, graph: ChannelGraph, removed: set[int], criterion: str | None,
                replacements: dict | None = None) -> Pruned:
    return Pruned(pruned_model(model, graph, removed, replacements), kept_channels(graph, removed),
                  dependency_groups(graph), graph.unprunable(), criterion, replacements is not None)


def prune(model: keras.Model, ratio: float | None = None, *, budget: str | None = None,
          criterion: str | None = None, data: np.ndarray | None = None) -> Pruned:
    """Remove `ratio` of the prunable channels, or as few as meet a params=F / flops=F budget. With `data`
    (calibration inputs) the default criterion is energy and the layers reading pruned channels are refitted;
    without, filter L1 norm and no refit.

    Raises:
        ConfigError: a ratio outside (0, 1), an unknown criterion, both or neither of ratio and budget.
        BudgetError: a budget that is not params/flops, or one pruning cannot reach.
    """
    from edgecompress.select.budgets import FRACTION_KINDS, parse_budget

    if (ratio is None) == (budget is None):
        raise ConfigError("prune: give a ratio (fraction of prunable channels to remove) or a params=/flops= budget")
    if ratio is not None:
        check_ratio(ratio)
    pruner = Pruner(model, criterion, data)
    if ratio is not None:
        return pruner.by_ratio(ratio)
    parsed = parse_budget(budget)
    if parsed.kind not in FRACTION_KINDS:
        raise BudgetError(f"prune: budget {parsed.text!r} is not params=F or flops=F (compress --select fbp takes "
                          f"the other kinds)")
    return pruner.by_fraction(parsed.kind, parsed.value)


def remove_channels(model: keras.Model, channels: dict[str, list[int]]) -> Pruned:
    """Remove the named output channels (and every channel tied to them) of the named layers.

    Raises:
        ConfigError: an unknown layer, a channel out of range, a pinned channel, or every channel of a layer.
    """
    model = normalize(model)
    graph = channel_graph(model)
    pinned, removed = graph.pinned_classes(), set()
    for name, indices in channels.items():
        if name not in graph.producers:
            why = graph.unprunable().get(name, "not a Conv1D/2D/3D or Dense layer of this model")
            raise ConfigError(f"cannot prune {name!r}: {why}")
        atoms = graph.producers[name]
        for index in indices:
            if not 0 <= index < len(atoms):
                raise ConfigError(f"cannot prune channel {index} of {name!r}: it has channels 0..{len(atoms) - 1}")
            root = graph.find(int(atoms[index]))
            if root in pinned:
                raise ConfigError(f"cannot prune channel {index} of {name!r}: it {pinned[root]}")
            removed.add(root)
    for name, (before, kept) in kept_channels(graph, removed).items():
        if kept == 0:
            raise ConfigError(f"pruning would remove every output channel of {name!r} ({before} of {before}); "
                              f"a layer keeps at least one")
    return make_pruned(model, graph, removed, None)

__all__ = ["CRITERIA", "Pruned", "Pruner", "check_ratio", "dependency_groups", "make_pruned", "prune", "remove_channels"]
