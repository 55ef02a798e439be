"""Rank specifications, parsed and validated in one place for every method.

A rank is an int (the same rank for every mode, clipped to each mode's maximum), a per-mode tuple of
ints, or a fraction 0 < f <= 1 of each mode's maximum. Every method resolves a spec to a tuple of ints
through `resolve_rank`, so "0.25" means the same thing for Tucker, CP, TT, SVD, QR and TT-matrix.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

from edgecompress.errors import InvalidRankError

Rank = Union[int, float, tuple[int, ...]]


def parse_rank_text(text: str) -> Rank:
    """'16' -> 16, '0.25' -> 0.25, '8,16' -> (8, 16)."""
    text = text.strip()
    try:
        if "," in text:
            return tuple(int(part) for part in text.split(","))
        if any(ch in text for ch in ".eE"):
            return float(text)
        return int(text)
    except ValueError:
        raise InvalidRankError(
            f"rank {text!r} is not an int, a fraction like 0.25, or a comma-separated tuple like 8,16"
        ) from None


def resolve_rank(spec: Rank, full: Sequence[int], layer: str, method: str) -> tuple[int, ...]:
    """Turn a rank spec into one int per mode, each within 1..full[i].

    Raises:
        InvalidRankError: naming the layer, the method and the valid range.
    """
    full = tuple(int(f) for f in full)
    valid = _valid_range_text(full)
    where = f"layer {layer!r}, method {method!r}"
    if isinstance(spec, bool):
        raise InvalidRankError(f"{where}: rank {spec!r} is not a number; valid: {valid}")
    if isinstance(spec, (tuple, list)):
        return _resolve_tuple(tuple(spec), full, where, valid)
    if isinstance(spec, float):
        return _resolve_fraction(spec, full, where, valid)
    if isinstance(spec, int):
        if spec < 1 or spec > max(full):
            raise InvalidRankError(f"{where}: rank {spec} is out of range; valid: {valid}")
        return tuple(min(spec, f) for f in full)
    raise InvalidRankError(f"{where}: rank {spec!r} has unsupported type; valid: {valid}")


def _resolve_tuple(spec: tuple, full: tuple[int, ...], where: str, valid: str) -> tuple[int, ...]:
    if len(spec) != len(full):
        raise InvalidRankError(
            f"{where}: rank {spec} has {len(spec)} modes but this block has {len(full)}; valid: {valid}"
        )
    for value, limit in zip(spec, full):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise InvalidRankError(f"{where}: rank {spec} is out of range; valid: {valid}")
    return tuple(int(v) for v in spec)


def _resolve_fraction(spec: float, full: tuple[int, ...], where: str, valid: str) -> tuple[int, ...]:
    if not (0.0 < spec <= 1.0) or math.isnan(spec):
        raise InvalidRankError(f"{where}: rank fraction {spec} must be in (0, 1]; valid: {valid}")
    return tuple(max(1, min(f, int(round(spec * f)))) for f in full)


def _valid_range_text(full: tuple[int, ...]) -> str:
    if len(full) == 1:
        return f"an int in 1..{full[0]} or a fraction in (0, 1]"
    per_mode = ", ".join(f"1..{f}" for f in full)
    return f"an int in 1..{max(full)}, a tuple ({per_mode}), or a fraction in (0, 1]"


def feasible_tt_ranks(ranks: Sequence[int], mode_sizes: Sequence[int]) -> tuple[int, ...]:
    """Clip inner TT ranks so each core is realisable: r_k <= r_(k-1) * n_(k-1) and r_k <= r_(k+1) * n_k.

    A fraction applied to each rank's own maximum can break these (TT-SVD could not reach the rank), which
    would make the analytic cost disagree with the block actually built.
    """
    full = [1, *ranks, 1]
    for k in range(1, len(full) - 1):
        full[k] = min(full[k], full[k - 1] * mode_sizes[k - 1])
    for k in range(len(full) - 2, 0, -1):
        full[k] = min(full[k], full[k + 1] * mode_sizes[k])
    return tuple(full[1:-1])
