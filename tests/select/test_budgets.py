"""Budget strings: every kind parses; every malformed one raises a BudgetError that shows the syntax."""
import pytest

from edgecompress.errors import BudgetError
from edgecompress.select.budgets import Budget, cost_limit, parse_budget


@pytest.mark.parametrize("text, expected", [
    ("params=0.15", Budget("params", 0.15)),
    ("flops=1", Budget("flops", 1.0)),
    (" accuracy-drop=1.0 ", Budget("accuracy-drop", 1.0)),
    ("latency=0.5@host", Budget("latency", 0.5, "host")),
    ("PARAMS=0.2", Budget("params", 0.2)),
])
def test_parse_each_kind(text, expected):
    assert parse_budget(text) == expected
    assert parse_budget(parse_budget(text).text) == expected


@pytest.mark.parametrize("text, message", [
    ("params", "KIND=VALUE"), ("size=0.1", "params"), ("params=abc", "not a number"), ("params=0", "0 < F"),
    ("flops=1.5", "0 < F"), ("accuracy-drop=-1", "points"), ("latency=0.5", "target"), ("latency=0.5@", "target"),
    ("params=nan", "finite"),
])
def test_malformed_budgets_say_what_is_wrong(text, message):
    with pytest.raises(BudgetError, match=message):
        parse_budget(text)


def test_cost_limit_rounds_down():
    assert cost_limit(Budget("params", 0.3), 1001) == 300


