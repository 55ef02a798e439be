"""The pruning stage of `compress`: `--select fbp` (filter pruning to the budget) and `--prune F|auto` (prune,
then factorize what is left under the budget restated on the pruned model). compress hands in its factorization
step as a callable, so this module does not import compress.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import keras
import numpy as np

from edgecompress.config import CompressConfig
from edgecompress.errors import BudgetError
from edgecompress.finetune import judge_accuracy_pct, top1_pct
from edgecompress.graph.batchnorm import fold_batchnorm
from edgecompress.graph.layers import describe
from edgecompress.graph.rebuild import normalize
from edgecompress.graph.surgery import check_finite_weights
from edgecompress.prune import Pruned, Pruner, check_ratio
from edgecompress.select import budgets, fbp
from edgecompress.select.plan import Plan, achieved_fractions

# --prune auto: the pruning fractions tried before factorizing (0: factorize only); the one whose compressed model
# judges best on the calibration data is kept, the smaller fraction on a tie.
AUTO_PRUNE_RATIOS = (0.0, 0.1, 0.2)
# compress's factorization step: (model, x, y, config, recovery, progress, reference_pct) -> (model, plan, stats)
Factorize = Callable[..., tuple[keras.Model, Plan, dict]]


def check_prune(prune: float | str) -> float | str:
    """A pruning fraction in (0, 1), or "auto"."""
    return prune if prune == "auto" else check_ratio(prune)


def compress_pruning(model: keras.Model, x, y, config: CompressConfig, recovery, progress,
                     factorize: Factorize) -> tuple[keras.Model, Plan, dict]:
    """--select fbp: prune to the budget. --prune F (or auto): prune, then factorize the rest under the budget
    restated on the pruned model (`factorize`: compress's own step); the plan records both steps per layer, costs
    against the original. The config is checked by the caller."""
    budget = budgets.parse_budget(config.budget)
    folded, _ = fold_batchnorm(normalize(model))
    check_finite_weights(folded)
    started, stats = time.perf_counter(), {}
    pruner = Pruner(folded, config.prune_criterion, x, refit=config.prune_refit)
    table = config.cost_table(budget.target) if budget and budget.kind == "latency" else None
    if config.select == "fbp":
        pruned = fbp.prune_for_budget(pruner, budget, lambda m: judge_accuracy_pct(m, x, y, recovery, config.seed),
                                      table, stats)
        layers = fbp.pruned_layer_plans(describe(folded), pruned)
        compressed = pruned.model
    else:
        compressed, layers, pruned, stats = _prune_then_factorize(folded, pruner, x, y, config, budget, table,
                                                                  recovery, progress, factorize)
    stats.update(prune_s=time.perf_counter() - started, prune_criterion=config.prune_criterion)
    record = _pruning_record(budget, config, layers, stats)
    flops = [sum(info.flops for info in describe(m)) for m in (folded, compressed)]
    return compressed, Plan(record, layers, *flops, pruning=pruned.to_json()), stats


def _prune_then_factorize(folded: keras.Model, pruner: Pruner, x, y, config: CompressConfig, budget, table,
                          recovery, progress, factorize: Factorize) -> tuple[keras.Model, list, Pruned, dict]:
    """--prune F: prune F of the channels, then factorize under the restated budget. --prune auto: do that for
    each fraction in AUTO_PRUNE_RATIOS and keep the compressed model that judges best on the calibration data
    (top-1 with labels, else top-1 agreement with the original), the smaller fraction on a tie."""
    ratios = AUTO_PRUNE_RATIOS if config.prune == "auto" else (config.prune,)
    reference_pct = top1_pct(folded, x, y) if budget and budget.kind == "accuracy-drop" else None
    best, judged, last_error = None, {}, None
    # without labels the candidates are judged against the original's top-1, predicted once
    reference_top1 = np.argmax(folded.predict(x, verbose=0), axis=-1) if len(ratios) > 1 and y is None else None
    for ratio in ratios:
        pruned = pruner.by_ratio(ratio) if ratio else pruner.pruned(set())
        inner_budget, before = _budget_after_pruning(budget, folded, pruned, table)
        # the restated latency budget counts the layers timed alone, as pruning's own latency budget does
        inner = dataclasses.replace(config, prune=None, budget=inner_budget, latency_in_context=False)
        try:
            compressed, inner_plan, stats = factorize(pruned.model, x, y, inner, recovery, progress, reference_pct)
        except BudgetError as error:
            if len(ratios) == 1:
                raise
            last_error = error
            continue
        if budget and budget.kind == "latency":  # the factorized layers' ms against the original's
            stats["latency_before_ms"] = before
        layers = fbp.pruned_layer_plans(describe(folded), pruned, {layer.name: layer for layer in inner_plan.layers})
        stats.update(budget_after_pruning=inner_plan.budget, prune_ratio=ratio)
        if len(ratios) > 1:
            judged[ratio] = _judged_fidelity_pct(compressed, reference_top1, x, y, recovery, config.seed)
            if progress:
                progress(f"prune {ratio:g} then factorize: judged {judged[ratio]:.2f}%", len(judged), len(ratios))
        if best is None or judged.get(ratio, 0.0) > judged[best[3]["prune_ratio"]]:
            best = (compressed, layers, pruned, stats)
    if best is None:
        raise last_error
    if judged:
        best[3]["prune_judged_pct"] = {f"{ratio:g}": round(pct, 4) for ratio, pct in judged.items()}
    return best


def _judged_fidelity_pct(model: keras.Model, reference_top1: np.ndarray | None, x, y, recovery, seed: int) -> float:
    """Top-1 (%) on the labelled calibration data (after a brief fine-tune with fine-tuning data), or without
    labels the share (%) of calibration inputs where the model's top-1 is the original's (`reference_top1`)."""
    if y is not None:
        return judge_accuracy_pct(model, x, y, recovery, seed)
    return 100.0 * float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == reference_top1))


def _budget_after_pruning(budget, folded: keras.Model, pruned: Pruned, table) -> tuple[Any, float | None]:
    """The budget on the original, restated on the pruned model (accuracy-drop: unchanged), and the original's
    cost in the budget's kind."""
    if budget is None or budget.kind == "accuracy-drop":
        return budget, None
    if budget.kind == "latency":
        before, after = (fbp.candidate_latency_ms(m, table) for m in (folded, pruned.model))
    else:
        before, after = (sum(getattr(i, budget.kind) for i in describe(m) if i.kind) for m in (folded, pruned.model))
    return fbp.scaled_budget(budget, before, after), before


def _pruning_record(budget, config: CompressConfig, layers, stats: dict) -> dict:
    """plan.json's "budget" for a run that pruned: what was asked and what was achieved."""
    data = budget.to_json() if budget else {"text": None, "kind": None, "value": None, "target": None}
    data.update(select=config.select, prune=stats.get("prune_ratio", config.prune), criterion=config.prune_criterion,
                achieved=achieved_fractions(layers))
    if config.prune == "auto":
        data.update(prune_asked="auto", prune_judged_pct=stats.get("prune_judged_pct"))
    if config.select == "fbp" and budget is None:
        data["prune"] = fbp.DEFAULT_RATIO
    if "budget_after_pruning" in stats:
        inner = stats["budget_after_pruning"]
        data.update(factorization={key: inner.get(key) for key in ("text", "methods", "decompose", "capture",
                                                                   "metric", "rule", "latency_guard",
                                                                   "rank_multiple", "threshold")})
    for key in ("accuracy_before", "accuracy_compressed", "params_fraction", "latency_before_ms",
                "latency_after_ms"):
        if key in stats:
            data[key] = round(float(stats[key]), 6)
    if "latency_after_ms" in stats and "latency_before_ms" in stats:
        data["achieved"]["latency"] = round(stats["latency_after_ms"] / stats["latency_before_ms"], 6)
        data["latency_measured_as"] = "layers timed alone"
    return data
