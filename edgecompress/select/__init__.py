"""Feature-map-similarity design-space exploration: capture, score, search, allocate under a budget, plan.

Baselines (VBMF, energy, uniform) run through the same selector interface. Nothing here edits a model;
edgecompress.compress applies the chosen plan.
"""
from edgecompress.select.budgets import Budget, parse_budget
from edgecompress.select.plan import PLAN_VERSION, LayerPlan, Plan
from edgecompress.select.similarity import DEFAULT_METRIC, get_metric, metric, metrics

__all__ = ["Budget", "DEFAULT_METRIC", "LayerPlan", "PLAN_VERSION", "Plan", "get_metric", "metric", "metrics",
           "parse_budget"]
