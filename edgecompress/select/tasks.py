"""What the selection must decide for each candidate layer, after methods, applicability and per-layer
overrides are taken into account: search it, use a fixed (method, rank), or keep it (and why)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from edgecompress.factorize import get
from edgecompress.graph.layers import LayerInfo
from edgecompress.select.overrides import LayerOverride


@dataclass
class LayerTask:
    info: LayerInfo
    methods: list[str] = field(default_factory=list)  # applicable methods to choose among
    fixed: tuple[str, tuple[int, ...]] | None = None    # an override's (method, rank)
    reason: str | None = None                           # why the layer is kept, when it is

    @property
    def searched(self) -> bool:
        return self.fixed is None and self.reason is None


def make_tasks(infos: Sequence[LayerInfo], methods: Sequence[str],
               overrides: Mapping[str, LayerOverride]) -> dict[str, LayerTask]:
    tasks = {}
    for info in infos:
        override = overrides.get(info.name, LayerOverride())
        tasks[info.name] = _task(info, list(override.methods or methods), override)
    return tasks


def _task(info: LayerInfo, methods: list[str], override: LayerOverride) -> LayerTask:
    if info.reason:
        return LayerTask(info, reason=info.reason)
    if override.skip:
        return LayerTask(info, reason="kept by a per-layer override (skip)")
    if override.fixed:
        method = methods[0]
        problem = get(method).why_not(info)
        rank = get(method).resolve(info, override.rank)
        problem = problem or get(method).rank_problem(info, rank)
        if problem:
            return LayerTask(info, reason=f"override {method}:{override.rank} not applied: {problem}")
        return LayerTask(info, [method], fixed=(method, rank))
    verdicts = {name: get(name).why_not(info) for name in methods}
    usable = [name for name, reason in verdicts.items() if reason is None and get(name).ranks(info)]
    if not usable:
        reasons = "; ".join(f"{name}: {reason or 'no rank cheaper than the layer'}" for name, reason in verdicts.items())
        return LayerTask(info, reason=f"no method applies ({reasons})")
    return LayerTask(info, usable)
