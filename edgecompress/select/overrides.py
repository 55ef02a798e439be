"""Per-layer overrides of a CompressConfig: keys are exact layer names, 're:PATTERN' (full match, first
pattern that matches wins) or '_default'; exact names beat patterns, patterns beat '_default'.

Values: a dict {"methods": [...], "rank": R, "skip": bool} or a short string: "skip", "tucker",
"tucker,cp" (search only these), "tucker:0.25" (fixed method and rank, not searched).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from edgecompress.errors import ConfigError, InvalidRankError
from edgecompress.factorize import Rank, get, parse_rank_text


@dataclass(frozen=True)
class LayerOverride:
    methods: tuple[str, ...] | None = None
    rank: Rank | None = None
    skip: bool = False

    @property
    def fixed(self) -> bool:
        return self.rank is not None


def parse_override(key: str, value: Any) -> LayerOverride:
    if isinstance(value, LayerOverride):
        return value
    if isinstance(value, str):
        value = _parse_text(value)
    if not isinstance(value, Mapping) or set(value) - {"methods", "rank", "skip"}:
        raise ConfigError(f"override {key!r}: expected a dict with keys methods/rank/skip or a string "
                                    f"like 'skip', 'tucker,cp' or 'tucker:0.25', got {value!r}")
    methods = value.get("methods")
    methods = tuple(methods.split(",")) if isinstance(methods, str) else (tuple(methods) if methods else None)
    for name in methods or ():
        get(name)  # raises naming the available methods
    override = LayerOverride(methods, value.get("rank"), bool(value.get("skip", False)))
    if override.fixed and (not methods or len(methods) != 1):
        raise InvalidRankError(f"override {key!r}: a fixed rank needs exactly one method, e.g. 'tucker:0.25'")
    return override


def _parse_text(text: str) -> dict:
    text = text.strip()
    if text == "skip":
        return {"skip": True}
    methods, _, rank = text.partition(":")
    return {"methods": methods, **({"rank": parse_rank_text(rank)} if rank else {})}


def resolve_overrides(layer_names: Sequence[str], overrides: Mapping[str, Any] | None) -> dict[str, LayerOverride]:
    """The override that applies to each layer (layers with none are left out)."""
    overrides = dict(overrides or {})
    parsed = {key: parse_override(key, value) for key, value in overrides.items()}
    exact = {k: v for k, v in parsed.items() if not k.startswith("re:") and k != "_default"}
    patterns = [(re.compile(k[3:]), k, v) for k, v in parsed.items() if k.startswith("re:")]
    _check_all_used(layer_names, exact, patterns)
    resolved = {}
    for name in layer_names:
        match = exact.get(name) or next((v for rx, _, v in patterns if rx.fullmatch(name)), None)
        match = match or parsed.get("_default")
        if match is not None:
            resolved[name] = match
    return resolved


def _check_all_used(layer_names, exact, patterns) -> None:
    unknown = [k for k in exact if k not in layer_names]
    unknown += [key for rx, key, _ in patterns if not any(rx.fullmatch(n) for n in layer_names)]
    if unknown:
        raise ConfigError(f"override {', '.join(map(repr, unknown))} matches no candidate layer; "
                                    f"candidates: {', '.join(layer_names)}")
