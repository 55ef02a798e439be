"""Latency budgets met in context. The cost table prices each block timed alone, which misjudges the whole model:
on ResNet-20 a plan at 0.7 of its searched layers' table latency ran at 0.45 of the whole model on the host
(bench/results/latency_default.md). So the fraction asked of the table is searched until the whole compressed
model, timed against the original on the target, lands in [(1 - tolerance) x asked, asked].

    fit = fit_in_context(budget, floor_fraction, choose, measure)
    fit.chosen, fit.measured["ratio"], fit.tries   # [(table fraction, whole-model fraction), ...]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from edgecompress.errors import BudgetError
from edgecompress.select.budgets import Budget

TOLERANCE = 0.1  # the whole-model fraction is taken once it is within 10% below the asked one
MAX_PLANS_TIMED = 6  # each costs one build and export of the model and ~1 s of timing (ResNet-20: ~4 s in all)
MIN_STEP = 1e-3  # table fractions closer than this give the same plan


@dataclass
class LatencyFit:
    """The plan taken, the table fraction that chose it, its whole-model timing against the original
    ({"ratio", "original_ms", "candidate_ms"}), every (table fraction, whole-model fraction) tried and how many
    distinct plans were timed."""

    chosen: dict
    table_fraction: float
    measured: Mapping[str, float]
    tries: list[tuple[float, float]] = field(default_factory=list)
    plans_timed: int = 0


def fit_in_context(budget: Budget, floor_fraction: float, choose: Callable[[float], dict],
                   measure: Callable[[dict], Mapping[str, float]], tolerance: float = TOLERANCE,
                   max_plans: int = MAX_PLANS_TIMED, progress: Callable | None = None) -> LatencyFit:
    """Secant search on the table fraction (`choose(fraction)` -> plan; `measure(plan)` -> whole-model timing)
    for the slowest plan at or under the asked whole-model fraction. `floor_fraction` is the table's cheapest
    plan; when even that measures over the budget, a BudgetError says what is reachable."""
    asked, aim = budget.value, budget.value * (1 - tolerance / 2)
    timed: dict[tuple, Mapping[str, float]] = {}
    tries: list[tuple[float, float]] = []

    def attempt(fraction: float) -> tuple[dict, Mapping[str, float]]:
        chosen = choose(fraction)
        key = _plan_key(chosen)
        if key not in timed:
            timed[key] = measure(chosen)
            if progress:
                progress("latency in context", len(timed), max_plans)
        tries.append((fraction, timed[key]["ratio"]))
        return chosen, timed[key]

    best: LatencyFit | None = None
    low = high = None  # (table fraction, whole-model fraction) under / over the budget
    fraction = min(max(asked, floor_fraction), 1.0)
    while fraction is not None and len(timed) < max_plans and len(tries) < 4 * max_plans:
        chosen, measured = attempt(fraction)
        ratio = measured["ratio"]
        if ratio <= asked:
            if best is None or ratio > best.measured["ratio"]:
                best = LatencyFit(chosen, fraction, measured)
            if ratio >= (1 - tolerance) * asked:
                break
            low = (fraction, ratio)
        elif fraction <= floor_fraction:
            raise unreachable_in_context(budget, ratio)
        else:
            high = (fraction, ratio)
        fraction = _next_fraction(fraction, ratio, aim, low, high, floor_fraction, tries)
    if best is None:  # every plan timed was over the budget: the cheapest one decides
        chosen, measured = attempt(floor_fraction)
        if measured["ratio"] > asked:
            raise unreachable_in_context(budget, measured["ratio"])
        best = LatencyFit(chosen, floor_fraction, measured)
    best.tries, best.plans_timed = tries, len(timed)
    if progress:  # done: fewer plans than the most allowed were needed
        progress("latency in context", len(timed), len(timed))
    return best


def _next_fraction(fraction: float, ratio: float, aim: float, low, high, floor_fraction: float,
                   tries: list[tuple[float, float]]) -> float | None:
    """The next table fraction: the secant through the bracket's ends, else through the last two plans timed,
    else `fraction` scaled by aim / measured (the whole model's time is near-affine in the searched layers');
    None when the bracket is closed or the fraction was tried."""
    if low and high:
        f_low, f_high = low[0], high[0]
        if f_high - f_low < MIN_STEP:
            return None
        nxt = min(max(_secant(low, high, aim), f_low + MIN_STEP / 2), f_high - MIN_STEP / 2)
    else:
        earlier = [(f, m) for f, m in tries if abs(f - fraction) >= MIN_STEP and m != ratio]
        nxt = _secant(earlier[-1], (fraction, ratio), aim) if earlier else fraction * aim / max(ratio, 1e-9)
        nxt = min(max(nxt, floor_fraction), 1.0)
    return None if any(abs(nxt - f) < MIN_STEP / 4 for f, _ in tries) else nxt


def _secant(first: tuple[float, float], second: tuple[float, float], aim: float) -> float:
    (f1, m1), (f2, m2) = first, second
    return f2 + (aim - m2) * (f2 - f1) / (m2 - m1)


def unreachable_in_context(budget: Budget, cheapest_ratio: float) -> BudgetError:
    suggestion = f"latency>={cheapest_ratio:.3f}@{budget.target}"
    error = BudgetError(f"budget {budget.text!r} cannot be met: the cheapest plan runs at {cheapest_ratio:.3f} of "
                        f"the original model's latency on {budget.target} (whole models timed); use {suggestion} "
                        f"or allow more methods")
    error.reachable_fraction = cheapest_ratio  # the demo takes the cheapest plan instead
    return error


def _plan_key(chosen: Mapping[str, Any]) -> tuple:
    return tuple(sorted((name, str(point.method), str(point.rank)) for name, point in chosen.items()))
