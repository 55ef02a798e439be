"""Global budgets: parse `params=F`, `flops=F`, `accuracy-drop=D`, `latency=F@TARGET`, and the cost limit
they put on the candidate layers. Parsing and validation live here only, so the CLI and API agree."""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgecompress.errors import BudgetError

FRACTION_KINDS = ("params", "flops")
KINDS = FRACTION_KINDS + ("accuracy-drop", "latency")
SYNTAX = "params=0.15 | flops=0.3 | accuracy-drop=1.0 | latency=0.5@host"


@dataclass(frozen=True)
class Budget:
    """kind: params/flops (value = fraction of the candidate layers' original), accuracy-drop (value = top-1
    points), latency (value = fraction of the original's latency on `target`)."""

    kind: str
    value: float
    target: str | None = None

    @property
    def text(self) -> str:
        return f"{self.kind}={self.value:g}" + (f"@{self.target}" if self.target else "")

    def to_json(self) -> dict:
        return {"text": self.text, "kind": self.kind, "value": self.value, "target": self.target}


def parse_budget(text: str | Budget | None) -> Budget | None:
    """'params=0.15' -> Budget('params', 0.15); raise BudgetError naming the problem and the syntax."""
    if text is None or isinstance(text, Budget):
        return text
    kind, sep, value_text = str(text).strip().partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise BudgetError(f"budget {text!r}: expected KIND=VALUE with KIND one of {', '.join(KINDS)} ({SYNTAX})")
    target = None
    if kind == "latency":
        value_text, at, target = value_text.partition("@")
        if not at or not target.strip():
            raise BudgetError(f"budget {text!r}: latency needs a target, e.g. latency=0.5@host")
        target = target.strip()
    value = _number(text, value_text)
    if kind == "accuracy-drop":
        if not 0.0 <= value < 100.0:
            raise BudgetError(f"budget {text!r}: accuracy drop is in top-1 points, 0 <= D < 100 (e.g. 1.0)")
    elif not 0.0 < value <= 1.0:
        raise BudgetError(f"budget {text!r}: {kind} is a fraction of the original, 0 < F <= 1 (e.g. {kind}=0.25)")
    return Budget(kind, value, target)


def _number(text: str, value_text: str) -> float:
    try:
        value = float(value_text)
    except ValueError:
        raise BudgetError(f"budget {text!r}: {value_text.strip()!r} is not a number ({SYNTAX})") from None
    if not math.isfinite(value):
        raise BudgetError(f"budget {text!r}: value must be finite ({SYNTAX})")
    return value


def cost_limit(budget: Budget, original_total: int) -> int:
    """The largest total cost of the candidate layers that meets a params/flops budget."""
    return int(math.floor(budget.value * original_total))


def unreachable(budget: Budget, best_total: float, original_total: float, methods: str) -> BudgetError:
    best = best_total / (original_total or 1)
    suggestion = f"{budget.kind}>={best:.4f}" + (f"@{budget.target}" if budget.target else "")
    error = BudgetError(f"budget {budget.text!r} cannot be met: the cheapest plan with methods {methods} keeps "
                        f"{best:.4f} of the candidate layers' {budget.kind}; use {suggestion} or allow more methods")
    error.reachable_fraction = best  # for callers that would rather take the cheapest plan (the demo)
    return error
