"""Which classes to remove: one global order by score, cut where a budget or a ratio says.

The order removes the lowest-scoring class first and skips a class that would leave a layer with fewer than
MIN_KEEP_FRACTION of its channels (at least one), so every prefix of it is a valid removal and its cost falls
with its length: a budget is met by bisecting on the prefix length.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable

from edgecompress.errors import BudgetError, ConfigError
from edgecompress.prune.groups import ChannelGraph

MIN_KEEP_FRACTION = 0.05


def removal_order(graph: ChannelGraph, scores: dict[int, float], multiple: int = 1) -> list[int]:
    """Removable classes, lowest score first, never emptying a layer below its minimum."""
    members = graph.removable()
    left = {name: len(atoms) for name, atoms in graph.producers.items()}
    floor = {name: max(1, math.ceil(MIN_KEEP_FRACTION * count), min(multiple, count)) for name, count in left.items()}
    order = []
    for root in sorted(members, key=lambda r: (scores.get(r, 0.0), r)):
        taken = Counter(name for name, _ in members[root])
        if all(left[name] - count >= floor[name] for name, count in taken.items()):
            order.append(root)
            for name, count in taken.items():
                left[name] -= count
    return order


def check_ratio(ratio: float) -> float:
    if not isinstance(ratio, (int, float)) or not 0.0 < float(ratio) < 1.0:
        raise ConfigError(f"prune ratio {ratio!r} is outside (0, 1): give the fraction of prunable channels to "
                          f"remove, e.g. 0.3")
    return float(ratio)


def removal_for_ratio(graph: ChannelGraph, order: list[int], ratio: float) -> set[int]:
    """The first `ratio` of all removable classes in the order (fewer when layers reach their minimum)."""
    count = int(round(check_ratio(ratio) * len(graph.removable())))
    return set(order[:count])


def removal_for_limit(order: list[int], cost_of: Callable[[set[int]], float], limit: float,
                      what: str) -> set[int]:
    """The shortest prefix of the order whose cost is at most `limit`.

    Raises:
        BudgetError: even the whole order costs more; says the fraction pruning can reach.
    """
    if cost_of(set(order)) > limit:
        error = BudgetError(f"{what}: filter pruning cannot reach it (every layer keeps at least "
                            f"{MIN_KEEP_FRACTION:.0%} of its channels, and channels that reach the output or feed "
                            f"a layer pruning cannot follow stay); ask for a larger budget")
        raise error
    low, high = 0, len(order)  # cost(order[:high]) <= limit
    while low < high:
        middle = (low + high) // 2
        if cost_of(set(order[:middle])) <= limit:
            high = middle
        else:
            low = middle + 1
    return set(order[:high])
