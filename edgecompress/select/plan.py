"""The Plan: per layer the chosen method and rank (or why the layer was kept), with costs and similarity;
serialised as DESIGN.md's plan.json (version 1) and read back from it."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from edgecompress.errors import DataError
from edgecompress.factorize import get

PLAN_VERSION = 1


@dataclass
class LayerPlan:
    name: str
    kind: str
    method: str | None
    rank: tuple[int, ...] | None
    similarity: float | None
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    reason: str | None = None
    channels: tuple[int, int] | None = None  # filter pruning: (output channels before, kept)
    notes: tuple[str, ...] = ()  # what was unusual about the layer's calibration inputs (capture)

    def to_json(self) -> dict:
        data = asdict(self)
        data["rank"] = list(self.rank) if self.rank is not None else None
        data["similarity"] = _finite_or_none(self.similarity)
        if self.method is not None:
            data.pop("reason")
        if self.channels is None:
            data.pop("channels")
        else:
            data["channels"] = list(self.channels)
        if self.notes:
            data["notes"] = list(self.notes)
        else:
            data.pop("notes")
        return data


@dataclass
class Plan:
    budget: dict[str, Any]
    layers: list[LayerPlan]
    model_flops_before: int = 0
    model_flops_after: int = 0
    version: int = PLAN_VERSION
    pruning: dict[str, Any] | None = None  # filter pruning: criterion, dependency groups, unprunable layers
    data: dict[str, Any] | None = None     # where the calibration / fine-tuning data came from (sources.py)

    def choices(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """{layer: (method, rank)} of the layers replaced: what graph.surgery.compress_model takes."""
        return {layer.name: (layer.method, layer.rank) for layer in self.layers if layer.method}

    def totals(self) -> dict[str, Any]:
        totals: dict[str, Any] = {}
        for group, kinds in (("conv", ("conv1d", "conv2d", "conv3d")), ("dense", ("dense",))):
            members = [layer for layer in self.layers if layer.kind in kinds]
            totals[group] = {"params_before": sum(layer.params_before for layer in members),
                             "params_after": sum(layer.params_after for layer in members)}
        totals["flops_before"] = self.model_flops_before
        totals["flops_after"] = self.model_flops_after
        return totals

    def cut(self, group: str) -> float:
        """Fraction of params removed from conv or dense layers (0 when the model has none)."""
        entry = self.totals()[group]
        return 1.0 - entry["params_after"] / entry["params_before"] if entry["params_before"] else 0.0

    def to_json(self) -> dict:
        data = {"version": self.version, "budget": self.budget, "layers": [layer.to_json() for layer in self.layers],
                "totals": self.totals()}
        if self.pruning is not None:
            data["pruning"] = self.pruning
        if self.data is not None:
            data["data"] = self.data
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        if data.get("version") != PLAN_VERSION:
            raise DataError(f"plan version {data.get('version')!r} is not supported; this edgecompress reads "
                            f"version {PLAN_VERSION}: recompress the model to write a new plan")
        layers = [LayerPlan(**{**entry, "rank": tuple(entry["rank"]) if entry.get("rank") else None,
                               "channels": tuple(entry["channels"]) if entry.get("channels") else None,
                               "notes": tuple(entry.get("notes", ()))})
                  for entry in data["layers"]]
        totals = data.get("totals", {})
        return cls(data.get("budget", {}), layers, totals.get("flops_before", 0), totals.get("flops_after", 0),
                   pruning=data.get("pruning"), data=data.get("data"))


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


def layer_plans(tasks: Mapping[str, Any], choices: Mapping[str, Any], finals: Mapping[str, tuple],
                kept_reasons: Mapping[str, str], kept_otherwise: str) -> list[LayerPlan]:
    """One LayerPlan per task: the chosen (method, final rank, similarity) with its costs, or why it was kept
    (the task's own reason, else the selector's, else `kept_otherwise`)."""
    layers = []
    for name, task in tasks.items():
        info, point = task.info, choices.get(name)
        if point is None:
            reason = task.reason or kept_reasons.get(name) or kept_otherwise
            layers.append(LayerPlan(name, info.kind, None, None, 1.0, info.params, info.params, info.flops,
                                    info.flops, reason))
            continue
        rank, similarity = finals[name]
        cost = get(point.method).cost(info, rank)
        layers.append(LayerPlan(name, info.kind, point.method, rank, similarity, info.params, cost.params,
                                info.flops, cost.flops))
    return layers


def achieved_fractions(layers: Sequence[LayerPlan]) -> dict[str, float]:
    """Params and FLOPs after / before over the candidate layers."""
    return {kind: round(sum(getattr(layer, f"{kind}_after") for layer in layers) /
                        max(1, sum(getattr(layer, f"{kind}_before") for layer in layers)), 6)
            for kind in ("params", "flops")}
