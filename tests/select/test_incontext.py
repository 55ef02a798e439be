"""select.incontext: the latency budget met on the whole model. A stand-in 'model' is one layer whose rank is the
table fraction in percent; its whole-model time is fixed + proportional, as a model with layers the search cannot
touch. Exact arithmetic, so the tolerances are the module's own (within 10% below the asked fraction)."""
import math

import pytest

from edgecompress.errors import BudgetError
from edgecompress.select.budgets import parse_budget
from edgecompress.select.incontext import MAX_PLANS_TIMED, TOLERANCE, fit_in_context
from edgecompress.select.search import Point


def choose(fraction: float, steps: int = 100) -> dict:
    rank = max(1, math.floor(fraction * steps))  # a discrete plan: the largest rank within the fraction
    return {"layer": Point("svd", (rank,), rank, rank, 1.0)}


def affine(fixed: float, steps: int = 100):
    def measure(plan: dict) -> dict:
        ratio = fixed + (1 - fixed) * plan["layer"].rank[0] / steps
        return {"ratio": ratio, "original_ms": 1.0, "candidate_ms": ratio}
    return measure


@pytest.mark.parametrize("asked", [0.3, 0.5, 0.7, 0.95])
@pytest.mark.parametrize("fixed", [0.0, 0.25])
@pytest.mark.parametrize("table_power", [0.5, 1.0, 2.0])
def test_the_whole_model_lands_within_tolerance_below_the_budget(asked, fixed, table_power):
    """table_power: how far the table's fraction is off the whole model's, both 1 at the full model (the fit
    must not care)."""
    if fixed >= asked:
        pytest.skip("unreachable, tested below")
    measure = affine(fixed)
    fit = fit_in_context(parse_budget(f"latency={asked}@host"), 1e-4,
                         lambda f: choose(f ** table_power), measure)
    assert (1 - TOLERANCE) * asked <= fit.measured["ratio"] <= asked
    assert 1 <= fit.plans_timed <= MAX_PLANS_TIMED
    assert fit.measured == measure(fit.chosen)


def test_a_budget_the_cheapest_plan_misses_names_what_is_reachable():
    with pytest.raises(BudgetError, match=r"cheapest plan runs at 0\.4.. of the original model's latency on host.*"
                                          r"latency>=0\.4..@host") as caught:
        fit_in_context(parse_budget("latency=0.3@host"), 0.2, choose, affine(0.3))
    assert 0.4 <= caught.value.reachable_fraction <= 0.5


def test_a_budget_every_plan_meets_takes_the_slowest_plan():
    fit = fit_in_context(parse_budget("latency=1.0@host"), 0.05, choose, affine(0.0))
    assert fit.chosen["layer"].rank == (100,) and fit.measured["ratio"] == 1.0


def test_a_plan_timed_once_is_not_timed_again():
    timed, reported = [], []

    def measure(plan):
        timed.append(plan["layer"].rank)
        return affine(0.2, steps=4)(plan)

    fit = fit_in_context(parse_budget("latency=0.5@host"), 0.25, lambda f: choose(f, steps=4), measure,
                         progress=lambda *line: reported.append(line))
    assert len(timed) == len(set(timed)) == fit.plans_timed and fit.measured["ratio"] <= 0.5
    assert reported[-1] == ("latency in context", fit.plans_timed, fit.plans_timed)  # the last line says done
