"""The compression API: `compress(model, calibration, config) -> Compressed(model, plan)`.

Read top-down: `compress` checks its inputs, then a `CompressionRun` folds BatchNorm, captures calibration
samples, builds a `Selector` (our similarity search or a baseline), lets the budget kind's chooser
(`CHOOSERS`) pick a (method, rank) per layer, and replaces the chosen layers; the plan is written from the
choices (select/plan.py), and the whole model is optionally fine-tuned once. The model is not changed; the
returned one shares no weights with it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np

from edgecompress.config import CompressConfig
from edgecompress.errors import BudgetError, ConfigError, ExportError, UnsupportedLayerError
from edgecompress.factorize import available, get
from edgecompress.finetune import FinetuneConfig, finetune, judge_accuracy_pct, top1_pct
from edgecompress.graph.batchnorm import fold_batchnorm
from edgecompress.graph.layers import describe
from edgecompress.graph.rebuild import normalize, rebuild
from edgecompress.graph.surgery import check_finite_weights, check_labels
from edgecompress.progress import Progress
from edgecompress.prune.criteria import get_criterion
from edgecompress.pruning import AUTO_PRUNE_RATIOS, check_prune, compress_pruning
from edgecompress.select import allocate, budgets
from edgecompress.select.baselines import DEFAULT_KNOBS
from edgecompress.select.capture import DEFAULT_MEMORY_CAP_BYTES, MIN_SAMPLES_PER_LAYER, capture, check_calibration
from edgecompress.select.incontext import fit_in_context
from edgecompress.select.overrides import resolve_overrides
from edgecompress.select.plan import Plan, achieved_fractions, layer_plans
from edgecompress.select.reconstruct import reconstruct_block
from edgecompress.select.search import Point
from edgecompress.select.selectors import (
    DECOMPOSITIONS,
    BaselineSelector,
    Selector,
    SimilaritySelector,
    check_select,
    make_scorers,
)
from edgecompress.select.sequential import CAPTURES, prefix_patches
from edgecompress.select.similarity import get_metric
from edgecompress.select.tasks import LayerTask, make_tasks

ACCURACY_SEARCH_STEPS = 7
CONTEXT_CALIBRATION_SAMPLES = 64  # inputs an int8 cost table calibrates whole models on


@dataclass
class Compressed:
    model: keras.Model
    plan: Plan
    stats: dict[str, Any] = field(default_factory=dict)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [n.strip() for n in names if n.strip()]
    if names == ["hybrid"]:
        return available()
    for name in names:
        get(name)  # raises UnsupportedLayerError listing the available methods
    if not names:
        raise ConfigError("no methods given; use hybrid or a comma-separated list like tucker,svd")
    return names


def _methods_for(config: CompressConfig) -> tuple[list[str], list[str]]:
    """The methods to search, and those hybrid leaves out for int8-faithful plans (a named method is kept)."""
    methods = parse_methods(config.methods)
    is_hybrid = isinstance(config.methods, str) and config.methods.strip() == "hybrid"
    if not (config.int8_faithful and is_hybrid):
        return methods, []
    fragile = [name for name in methods if get(name).int8_fragile]
    return [name for name in methods if name not in fragile], fragile


CALIBRATION_LIMIT = 4096  # samples taken from a tf.data.Dataset, an iterator or a folder
CALIBRATION_BYTES = DEFAULT_MEMORY_CAP_BYTES  # ... and no more inputs than fit in this (float32)


def calibration_limit(model: keras.Model | None) -> int:
    """Samples read from a streamed source for calibration: CALIBRATION_LIMIT, fewer where that many inputs would
    take more than CALIBRATION_BYTES (224x224x3 inputs: 1783), never fewer than MIN_SAMPLES_PER_LAYER."""
    if model is None:
        return CALIBRATION_LIMIT
    sample_bytes = 4 * sum(math.prod(int(n or 1) for n in tensor.shape[1:]) for tensor in model.inputs)
    return max(MIN_SAMPLES_PER_LAYER, min(CALIBRATION_LIMIT, CALIBRATION_BYTES // max(sample_bytes, 1)))


def as_calibration(calibration, model: keras.Model | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """An array of inputs, an (x, y) pair, a mapping with 'x' (and 'y'), or any source edgecompress.sources
    opens (a tf.data.Dataset or iterator of x or (x, y) batches, a folder, TFRecords: its first
    calibration_limit(model) samples)."""
    if isinstance(calibration, Mapping):
        return np.asarray(calibration["x"]), calibration.get("y")
    if isinstance(calibration, (tuple, list)) and len(calibration) == 2:
        return np.asarray(calibration[0]), (None if calibration[1] is None else np.asarray(calibration[1]))
    if isinstance(calibration, np.ndarray):
        return calibration, None
    from edgecompress.sources import open_source

    source = open_source(calibration, model=model)
    return source.arrays(None if source.in_memory else calibration_limit(model))


def _finetune_inputs(data, model: keras.Model):
    """(x or a streamed tf.data.Dataset, labels or None, the first samples as (x, y) arrays for checks and the
    accuracy judge). A Dataset is streamed by finetune, never read whole; anything else is read as calibration."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        from edgecompress.sources import open_source

        return data, None, open_source(data, model=model).arrays(calibration_limit(model))
    x, y = as_calibration(data, model)
    return x, y, (x, y)


def _task_cost(task: LayerTask, kind: str) -> int:
    if task.fixed:
        method, rank = task.fixed
        return getattr(get(method).cost(task.info, rank), kind)
    return getattr(task.info, kind)


def _fixed_cost(tasks: Mapping[str, LayerTask], kind: str) -> int:
    return sum(_task_cost(task, kind) for task in tasks.values() if not task.searched)


def _analytic_cheapest(tasks: Mapping[str, LayerTask], kind: str) -> int:
    """The cheapest total any selection could reach: every searched layer at its cheapest offered rank."""
    total = _fixed_cost(tasks, kind)
    for task in tasks.values():
        if task.searched:
            total += min(getattr(get(m).cost(task.info, r), kind)
                         for m in task.methods for r in get(m).ranks(task.info))
    return total


def _check_inputs(budget: budgets.Budget | None, y, config: CompressConfig) -> None:
    check_select(config.select)
    get_metric(config.metric)
    if config.decompose not in DECOMPOSITIONS:
        raise ConfigError(f"unknown decomposition {config.decompose!r}; use {' or '.join(DECOMPOSITIONS)}")
    if config.capture not in CAPTURES:
        raise ConfigError(f"unknown capture {config.capture!r}; use {' or '.join(CAPTURES)}")
    if (config.latency_guard or (budget and budget.kind == "latency")) and config.cost_table is None:
        raise ConfigError("a latency budget or guard needs CompressConfig(cost_table=...) to time blocks on the "
                          "target; pass cost_table=edgecompress.bench.CostTable")
    if budget and budget.kind == "latency":
        if config.select not in ("similarity", "fbp"):
            raise BudgetError(f"budget {budget.text!r}: latency budgets work with --select similarity or fbp; "
                              f"give {config.select} a params= or flops= budget")
    if config.prune is not None:
        check_prune(config.prune)
        if config.select == "fbp":
            raise ConfigError("--prune F prunes before factorizing; with --select fbp the budget sets the pruning")
    get_criterion(config.prune_criterion)
    if not isinstance(config.reconstruct_steps, int) or config.reconstruct_steps < 0:
        raise ConfigError(f"reconstruct steps must be a whole number >= 0 (0: off), got {config.reconstruct_steps!r}")
    if config.jobs is not None and (not isinstance(config.jobs, int) or config.jobs < 1):
        raise ConfigError(f"jobs must be a whole number >= 1, got {config.jobs!r}")
    if budget and budget.kind == "accuracy-drop" and y is None:
        raise BudgetError(f"budget {budget.text!r} needs labelled calibration data to measure accuracy; add "
                          f"y=integer labels to the calibration .npz, or use a params= or flops= budget")


def _check_reachable(budget, tasks, cheapest: int, methods: Sequence[str]) -> None:
    if budget and budget.kind in budgets.FRACTION_KINDS:
        original = sum(getattr(task.info, budget.kind) for task in tasks.values())
        if cheapest > budgets.cost_limit(budget, original):
            raise budgets.unreachable(budget, cheapest, original, ",".join(methods))


def compress(model: keras.Model, calibration, config: CompressConfig | None = None, *,
             finetune_data=None, progress: Progress | None = None) -> Compressed:
    """Compress `model` under `config`, choosing ranks on `calibration` (inputs, or (inputs, labels)).

    `finetune_data` (inputs, labels-or-None), or a tf.data.Dataset of (x, y) batches streamed through the
    fine-tune, fine-tunes the whole compressed model once afterwards (under config.finetune.distribute); with
    config.finetune.distill the original model's outputs are the targets, so labels may be None.
    `config.select="fbp"` prunes filters instead of factorizing; `config.prune` prunes first, then factorizes.

    Raises:
        DataError: calibration data does not fit the model; BudgetError: bad or unreachable budget;
        ConfigError: an unknown method, selection, metric or rule.
    """
    config = config or CompressConfig()
    x, y = as_calibration(calibration, model)
    check_calibration(model, x, config.calibration_name)
    check_labels(model, y, config.calibration_name)
    recovery = None
    if finetune_data is not None:  # checked before the search, which may take minutes
        fx, fy, first = _finetune_inputs(finetune_data, model)
        check_calibration(model, first[0], "fine-tuning data")
        check_labels(model, first[1], "fine-tuning data")
        recovery = first if first[1] is not None else None
    if config.select == "fbp" or config.prune is not None:
        _check_inputs(budgets.parse_budget(config.budget), y, config)
        compressed, plan, stats = compress_pruning(model, x, y, config, recovery, progress, _factorize)
    else:
        compressed, plan, stats = _factorize(model, x, y, config, recovery, progress)
    if finetune_data is not None:
        started = time.perf_counter()
        result = finetune(compressed, fx, fy, config.finetune or FinetuneConfig(), teacher=model, progress=progress)
        stats.update(finetune_s=time.perf_counter() - started, finetune_epochs=result.epochs_run,
                     finetune_learning_rate=result.learning_rate, finetune_strategy=result.strategy,
                     finetune_replicas=result.replicas)
    return Compressed(compressed, plan, stats)


def _factorize(model: keras.Model, x, y, config: CompressConfig, recovery, progress,
               reference_pct: float | None = None) -> tuple[keras.Model, Plan, dict]:
    """The similarity DSE or a rank baseline: choose, replace the layers, write the plan."""
    run = CompressionRun(model, x, y, config, progress)
    check_finite_weights(run.folded)
    run.recovery, run.reference_pct = recovery, reference_pct
    selector = run.make_selector()
    started = time.perf_counter()
    choices = run.choose(selector)
    compressed, finals = run.build(selector, choices)
    run.stats.update(choose_s=time.perf_counter() - started, evaluations=selector.evaluations)
    return compressed, run.plan(selector, choices, finals, compressed), run.stats


class CompressionRun:
    """One compression run, step by step (what `compress` does, open for benchmarks that reuse one search):
    the folded model and its tasks; `make_selector()` captures and searches; `choose()`, `build()`, `plan()`."""

    def __init__(self, model: keras.Model, x, y, config: CompressConfig, progress: Progress | None):
        self.original, self.x, self.y, self.config, self.progress = model, x, y, config, progress
        self.budget = budgets.parse_budget(config.budget)
        self.methods, self.left_out_for_int8 = _methods_for(config)
        _check_inputs(self.budget, y, config)
        self.folded, _ = fold_batchnorm(normalize(model))
        infos = [info for info in describe(self.folded) if info.kind is not None]
        overrides = resolve_overrides([i.name for i in infos if i.is_candidate], config.layers)
        self.tasks = make_tasks(infos, self.methods, overrides)
        self.stats: dict[str, Any] = {}
        self.recovery: tuple[np.ndarray, np.ndarray] | None = None  # labelled data for brief fine-tunes
        self.reference_pct: float | None = None  # accuracy-drop measured from this, not this model (--prune)
        self.latency_table = None  # the cost table on the budget's or the guard's target, once asked for

    @property
    def budget_kind(self) -> str | None:
        return self.budget.kind if self.budget else None

    def total(self, kind: str) -> int:
        return sum(getattr(task.info, kind) for task in self.tasks.values())

    def make_selector(self) -> Selector:
        """Fail fast (an unreachable budget, an unknown target), then capture, then search or score."""
        table = self.latency_table = self._latency_table()
        if self.budget_kind in budgets.FRACTION_KINDS:
            _check_reachable(self.budget, self.tasks, _analytic_cheapest(self.tasks, self.budget_kind), self.methods)
        samples = self._capture()
        started = time.perf_counter()
        if self.config.select == "similarity":
            selector = self._similarity_selector(samples, table)
        else:
            selector = self._baseline_selector(samples)
        self.stats["search_s"] = time.perf_counter() - started
        return selector

    def _latency_table(self):
        """The cost table on the budget's or the guard's target, its runtime asked for now: an unknown,
        emulated or unreachable target fails here, before the capture."""
        if self.budget_kind == "latency":
            target = self.budget.target
        elif self.config.latency_guard and self.config.select == "similarity":
            target = self.config.latency_guard
        else:
            return None
        table = self.config.cost_table(target)
        self.stats["latency_runtime"] = table.runtime
        self.stats["latency_precision"] = getattr(table, "precision", "fp32")
        return table

    def _capture(self):
        scored = [task.info for task in self.tasks.values() if task.reason is None]
        if not scored:
            reasons = "; ".join(f"{n}: {t.reason}" for n, t in self.tasks.items()) or "no Conv1D/2D/3D or Dense layer"
            raise UnsupportedLayerError(f"model {self.original.name!r} has no layer to compress ({reasons})")
        started, config = time.perf_counter(), self.config
        samples = capture(self.folded, self.x, scored, config.memory_cap_bytes, config.samples_per_layer,
                          config.seed, self.progress)
        self.stats.update(capture_s=time.perf_counter() - started, capture_bytes=samples.nbytes)
        return samples

    def _scorers(self, samples) -> dict:
        config = self.config
        return make_scorers(self.folded, self.tasks, samples, get_metric(config.metric), config.search_iterations,
                            config.decompose)

    def _similarity_selector(self, samples, table) -> SimilaritySelector:
        config = self.config
        rank_multiple = self._rank_multiple(table)
        selector = SimilaritySelector(self.tasks, self._scorers(samples), config.levels, config.rule, self.progress,
                                      config.loss, rank_multiple, config.jobs or available_cores())
        if self.budget_kind == "latency":
            self._measure_latency(selector, table)
        elif table is not None:
            self._guard_latency(selector, table)
        return selector

    def _rank_multiple(self, table) -> int:
        """The channel multiple the target's kernels prefer (measured once per target and precision), or 1."""
        if table is None or not self.config.align_ranks:
            return 1
        self.stats["rank_multiple"] = table.channel_multiple()
        return self.stats["rank_multiple"]

    def _baseline_selector(self, samples) -> BaselineSelector:
        config = self.config
        selector = BaselineSelector(self.folded, self.tasks, config.select, config.methods == "hybrid",
                                    self._scorers(samples))
        if self.budget_kind in budgets.FRACTION_KINDS:
            cheapest = selector.cheapest(self.budget_kind) + _fixed_cost(self.tasks, self.budget_kind)
            _check_reachable(self.budget, self.tasks, cheapest, self.methods)
        return selector

    def _measure_latency(self, selector: SimilaritySelector, table) -> None:
        """Latency budgets price the searched layers' blocks, each timed alone on the target (cost table); a
        table that also times whole models (model_ratios) then checks the plan in context, so the table's own
        floor is no limit here."""
        started = time.perf_counter()
        selector.attach_latency(table, self.folded)
        original_ms = sum(front.original_latency_ms for front in selector.fronts.values())
        cheapest_ms = allocate.cheapest_total(selector.fronts, "latency")
        self.stats.update(latency_s=time.perf_counter() - started, latency_before_ms=original_ms,
                          latency_floor_fraction=cheapest_ms / original_ms)
        if cheapest_ms > self.budget.value * original_ms and not self.in_context:
            raise budgets.unreachable(self.budget, cheapest_ms, original_ms, ",".join(self.methods))

    @property
    def in_context(self) -> bool:
        """Whether a latency budget is checked on whole models (the config allows it and the table can)."""
        return self.config.latency_in_context and hasattr(self.latency_table, "model_ratios")

    def measure_in_context(self, selector: Selector, chosen: Mapping[str, Point]) -> Mapping[str, float]:
        """The model of `chosen` (search factors: the final blocks have the same shapes) timed whole against the
        original on the latency budget's target."""
        model = self.build(selector, chosen, final=False)[0]
        return self.latency_table.model_ratios(self.original, [model], self.x[:CONTEXT_CALIBRATION_SAMPLES])[0]

    def _guard_latency(self, selector: SimilaritySelector, table) -> None:
        """Time every layer and each block on its params front on the table's target, and drop the blocks that
        are not faster than their layer: on small layers the extra ops of a block can cost more than the FLOPs
        it saves (measured: the demo's LeNet-5 ran at 0.82x with a CP block on conv2)."""
        started = time.perf_counter()
        selector.attach_latency(table, self.folded)
        dropped = 0
        for name, front in selector.fronts.items():
            paying = [p for p in front.points if p.latency_ms <= front.original_latency_ms]
            dropped += len(front.points) - len(paying)
            selector.fronts[name] = dataclasses.replace(front, points=paying)
            if front.points and not paying:
                selector.reasons[name] = f"kept: no block is faster than the layer on {table.target.name}"
        self.stats.update(latency_guard=table.target.name, latency_guard_s=time.perf_counter() - started,
                          latency_guard_dropped=dropped)

    def choose(self, selector: Selector) -> dict[str, Point]:
        """The budget kind's chooser, then the overrides' fixed (method, rank) on top."""
        chosen = CHOOSERS[self.budget_kind](self, selector)
        for name, task in self.tasks.items():
            if task.fixed:
                cost = get(task.fixed[0]).cost(task.info, task.fixed[1])
                chosen[name] = Point(task.fixed[0], task.fixed[1], cost.params, cost.flops, math.nan)
        chosen = {name: point for name, point in chosen.items() if point.method is not None}
        if "latency_guard" in self.stats:
            self._record_guarded_latency(selector, chosen)
        return chosen

    def _record_guarded_latency(self, selector: Selector, chosen: Mapping[str, Point]) -> None:
        """The guarded layers' summed latency on the guard's target (cost table), before and as chosen."""
        before_ms = after_ms = 0.0
        for name, front in selector.fronts.items():
            before_ms += front.original_latency_ms
            point = chosen.get(name)
            after_ms += point.latency_ms if point and not math.isnan(point.latency_ms) else front.original_latency_ms
        self.stats.update(latency_guard_before_ms=before_ms, latency_guard_after_ms=after_ms)

    def default_knob(self) -> float:
        """Without a budget: the similarity threshold (ours) or the baseline's knob."""
        if self.config.select == "similarity":
            return self.config.threshold
        return self.config.knob if self.config.knob is not None else DEFAULT_KNOBS[self.config.select]

    def judged_accuracy_pct(self, selector: Selector, choices: Mapping[str, Point]) -> float:
        """Top-1 (%) on the labelled calibration data of the model built from search factors; after a brief
        fine-tune when there is labelled fine-tuning data."""
        model = self.build(selector, choices, final=False)[0]
        return judge_accuracy_pct(model, self.x, self.y, self.recovery, self.config.seed)

    def build(self, selector: Selector, choices: Mapping[str, Point], final: bool = True) -> tuple[keras.Model, dict]:
        """The folded model with every chosen layer replaced; with final=True also {layer: (rank the
        decomposition reached, similarity)} (TT-SVD may reach a lower rank than asked)."""
        chosen = {name: choices[name] for name in self.tasks if name in choices and choices[name].method}
        if not final:
            factors_of = {name: selector.scorers[name].cache.search(p.method, p.rank) for name, p in chosen.items()}
            return rebuild(self.folded, self._blocks(factors_of)), {}
        sequential = self.config.capture == "sequential"
        factors_of, finals = {}, {}
        for done, (name, point) in enumerate(chosen.items(), start=1):
            scorer = selector.scorers[name]
            if sequential:  # refitted below, on the compressed prefix
                factors_of[name] = scorer.cache.final(point.method, point.rank)
            else:
                factors_of[name], similarity = scorer.final(point.method, point.rank)
                finals[name] = (tuple(factors_of[name].rank), similarity)
            if self.progress:
                self.progress("decompose", done, len(chosen))
        blocks = self._blocks(factors_of)
        compressed = rebuild(self.folded, blocks)
        if sequential:
            finals = self._refit_on_prefixes(selector, chosen, factors_of, blocks, compressed)
        elif self.config.reconstruct_steps:
            for done, (name, point) in enumerate(chosen.items(), start=1):
                similarity = self._reconstruct(selector, name, point, factors_of[name], blocks[name],
                                               selector.scorers[name].samples.patches)
                if similarity is not None:
                    finals[name] = (finals[name][0], similarity)
                if self.progress:
                    self.progress("reconstruct", done, len(chosen))
        self.stats["refits_kept"] = sum(s.refits_kept for s in selector.scorers.values())
        return compressed, finals

    def _refit_on_prefixes(self, selector: Selector, chosen: Mapping[str, Point], factors_of: Mapping[str, Any],
                           blocks: Mapping[str, list], compressed: keras.Model) -> dict[str, tuple]:
        """Sequential capture, in graph order: each block's output factor is refitted on the inputs the already
        refitted blocks before it produce, and written into its layers in place, so the next one sees it."""
        finals = {}
        for done, (name, point) in enumerate(chosen.items(), start=1):
            scorer = selector.scorers[name]
            inputs = prefix_patches(compressed, blocks[name][0].name, self.x, scorer.samples)
            factors, similarity = scorer.refit_on(point.method, factors_of[name], inputs)
            for layer, refitted in zip(blocks[name], get(point.method).build(self.tasks[name].info, factors)):
                layer.set_weights(refitted.get_weights())
            if self.config.reconstruct_steps:
                reconstructed = self._reconstruct(selector, name, point, factors, blocks[name], inputs)
                similarity = similarity if reconstructed is None else reconstructed
            finals[name] = (tuple(factors.rank), similarity)
            if self.progress:
                stage = "refit and reconstruct" if self.config.reconstruct_steps else "refit"
                self.progress(f"{stage} on the compressed prefix", done, len(chosen))
        return finals

    def _reconstruct(self, selector: Selector, name: str, point: Point, factors, layers: list,
                     inputs: np.ndarray) -> float | None:
        """Local reconstruction of one final block (written into `layers` where it scores higher on held-out
        samples); its similarity on `inputs` then, else None."""
        started = time.perf_counter()
        scorer = selector.scorers[name]
        done = reconstruct_block(point.method, scorer.patch_info, factors, inputs, scorer.samples.outputs,
                                 scorer.samples.activation, scorer.metric, self.config.reconstruct_steps,
                                 self.config.seed)
        if done.kept:
            for layer, weights in zip(layers, done.weights):
                layer.set_weights(weights)
        self.stats["reconstructions_kept"] = self.stats.get("reconstructions_kept", 0) + done.kept
        self.stats["reconstruct_s"] = self.stats.get("reconstruct_s", 0.0) + time.perf_counter() - started
        return done.similarity

    def _blocks(self, factors_of: Mapping[str, Any]) -> dict[str, list]:
        return {name: get(factors.method).build(self.tasks[name].info, factors) for name, factors in factors_of.items()}

    def plan(self, selector: Selector, choices: Mapping[str, Point], finals: Mapping[str, tuple],
             compressed: keras.Model) -> Plan:
        layers = layer_plans(self.tasks, choices, finals, selector.reasons, self._kept_reason())
        for layer in layers:
            if layer.name in selector.scorers:
                layer.notes = tuple(selector.scorers[layer.name].samples.input_notes())
        flops_before = sum(info.flops for info in describe(self.folded))
        flops_after = sum(info.flops for info in describe(compressed))
        return Plan(self._budget_record(layers), layers, flops_before, flops_after)

    def _kept_reason(self) -> str:
        if self.budget is None and self.config.select == "similarity":
            return f"kept: no cheaper block reaches similarity {self.config.threshold:g} ({self.config.metric})"
        return "kept: the budget was met without compressing it"

    def _budget_record(self, layers) -> dict:
        """plan.json's "budget": what was asked, how it was chosen, and what was achieved."""
        config = self.config
        data = self.budget.to_json() if self.budget else {"text": None, "kind": None, "value": None, "target": None}
        data.update(select=config.select, methods=self.methods, metric=config.metric, decompose=config.decompose,
                    capture=config.capture, achieved=achieved_fractions(layers))
        if config.int8_faithful:
            data["int8_faithful"] = {"left_out": self.left_out_for_int8}
        if config.reconstruct_steps:
            data.update(reconstruct_steps=config.reconstruct_steps,
                        reconstructions_kept=self.stats.get("reconstructions_kept", 0))
        data["rule"] = config.rule if config.select == "similarity" else None
        data["loss"] = config.loss if config.select == "similarity" and config.rule == "allocate" else None
        if self.budget is None:
            data["threshold" if config.select == "similarity" else "knob"] = self.default_knob()
        if "latency_after_ms" in self.stats:  # the whole model's where it was timed in context, else the layers'
            table_fraction = self.stats["latency_after_ms"] / self.stats["latency_before_ms"]
            data["achieved"]["latency"] = round(self.stats.get("latency_measured", table_fraction), 6)
            data["latency_measured_as"] = "whole model" if "latency_measured" in self.stats else "layers timed alone"
        for key in ("latency_guard", "latency_runtime", "latency_precision", "rank_multiple", "latency_plans_timed",
                    "latency_in_context_skipped"):
            if key in self.stats:
                data[key] = self.stats[key]
        for key in ("accuracy_before", "accuracy_compressed", "params_fraction", "latency_before_ms",
                    "latency_after_ms", "latency_model_before_ms", "latency_model_after_ms", "latency_table_fraction",
                    "latency_guard_before_ms", "latency_guard_after_ms"):
            if key in self.stats:
                data[key] = round(float(self.stats[key]), 6)
        if "accuracy_judged" in self.stats:
            data["accuracy_judged"] = self.stats["accuracy_judged"]
        return data


# --- choosers: one per budget kind (None: no budget) ------------------------------------------------------
def _choose_within_fraction(run: CompressionRun, selector: Selector) -> dict[str, Point]:
    kind = run.budget_kind
    limit = budgets.cost_limit(run.budget, run.total(kind))
    return selector.choose(kind, limit, _fixed_cost(run.tasks, kind))


def _choose_within_latency(run: CompressionRun, selector: Selector) -> dict[str, Point]:
    """The whole compressed model within the budget's fraction of the original's latency, timed in context
    (select.incontext) where the cost table can time whole models; else the searched layers' blocks, each
    timed alone, within that fraction of the layers' own latency."""
    before_ms = run.stats["latency_before_ms"]
    chosen = None
    if run.in_context:
        started = time.perf_counter()
        try:
            fit = fit_in_context(run.budget, run.stats["latency_floor_fraction"],
                                 lambda fraction: selector.choose("latency", fraction * before_ms, 0),
                                 lambda plan: run.measure_in_context(selector, plan), progress=run.progress)
        except ExportError as error:  # e.g. a layer TFLite cannot express outside the searched ones
            run.stats["latency_in_context_skipped"] = f"the whole model does not convert to TFLite ({error})"
        else:
            chosen = fit.chosen
            run.stats.update(latency_in_context_s=time.perf_counter() - started,
                             latency_measured=fit.measured["ratio"],
                             latency_model_before_ms=fit.measured["original_ms"],
                             latency_model_after_ms=fit.measured["candidate_ms"],
                             latency_table_fraction=fit.table_fraction, latency_plans_timed=fit.plans_timed)
    if chosen is None:
        if run.stats["latency_floor_fraction"] > run.budget.value:
            raise budgets.unreachable(run.budget, run.stats["latency_floor_fraction"] * before_ms, before_ms,
                                      ",".join(run.methods))
        chosen = selector.choose("latency", run.budget.value * before_ms, 0)
    run.stats["latency_after_ms"] = allocate.total_cost(chosen, "latency")
    return chosen


def _choose_for_accuracy(run: CompressionRun, selector: Selector) -> dict[str, Point]:
    """Bisect the params fraction: the smallest whose compressed model (search factors) loses at most the
    budget's top-1 points on the labelled calibration data. With labelled fine-tuning data the loss is
    judged after a brief fine-tune (brief_recovery_accuracy), else before any fine-tuning."""
    accuracy_before_pct = run.reference_pct if run.reference_pct is not None else top1_pct(run.folded, run.x, run.y)
    total, fixed = run.total("params"), _fixed_cost(run.tasks, "params")
    low, high = (selector.cheapest("params") + fixed) / total, 1.0
    best = selector.choose("params", total, fixed)
    best_pct = run.judged_accuracy_pct(selector, best)
    for step in range(ACCURACY_SEARCH_STEPS):
        middle = (low + high) / 2
        choices = selector.choose("params", int(middle * total), fixed)
        accuracy_pct = run.judged_accuracy_pct(selector, choices)
        if accuracy_before_pct - accuracy_pct <= run.budget.value:
            high, best, best_pct = middle, choices, accuracy_pct
        else:
            low = middle
        if run.progress:
            run.progress("accuracy search", step + 1, ACCURACY_SEARCH_STEPS)
    run.stats.update(accuracy_before=accuracy_before_pct, accuracy_compressed=best_pct, params_fraction=high,
                     accuracy_judged="after a brief fine-tune" if run.recovery else "before fine-tuning")
    return best


def _choose_without_budget(run: CompressionRun, selector: Selector) -> dict[str, Point]:
    return selector.default(run.default_knob())


CHOOSERS: dict[str | None, Callable[[CompressionRun, Selector], dict[str, Point]]] = {
    "params": _choose_within_fraction, "flops": _choose_within_fraction, "latency": _choose_within_latency,
    "accuracy-drop": _choose_for_accuracy, None: _choose_without_budget,
}


__all__ = ["AUTO_PRUNE_RATIOS", "CompressConfig", "Compressed", "CompressionRun", "FinetuneConfig", "check_prune",
           "compress", "parse_methods"]
