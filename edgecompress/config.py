"""CompressConfig: everything `compress` can be told, as one plain dataclass (its own module so the stages that
read it, compress and pruning, need not import each other)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from edgecompress.factorize.base import SEARCH_ITERATIONS
from edgecompress.finetune import FinetuneConfig
from edgecompress.prune.criteria import DEFAULT_CRITERION
from edgecompress.select import budgets
from edgecompress.select.allocate import DEFAULT_LOSS
from edgecompress.select.capture import DEFAULT_MEMORY_CAP_BYTES, DEFAULT_SAMPLES_PER_LAYER
from edgecompress.select.search import DEFAULT_LEVELS
from edgecompress.select.similarity import DEFAULT_METRIC


@dataclass
class CompressConfig:
    """Everything `compress` can be told; `layers` overrides it per layer (see select/overrides.py)."""

    methods: str | Sequence[str] = "hybrid"   # "hybrid" = all registered methods, or e.g. "tucker,svd"
    select: str = "similarity"                # or a baseline: "vbmf", "energy", "uniform"
    budget: str | budgets.Budget | None = None  # e.g. "params=0.15"; None: `threshold` (ours) / `knob` (baselines)
    metric: str = DEFAULT_METRIC
    decompose: str = "data-aware"             # fit blocks to the layer's outputs on calibration data, or "plain"
    capture: str = "sequential"               # refit each final block on the inputs the compressed prefix gives
    reconstruct_steps: int = 0                # Adam steps per final block on its samples (select/reconstruct.py)
    rule: str = "allocate"                    # "allocate" (greedy on the fronts) or "threshold" (one for all)
    loss: str = DEFAULT_LOSS                  # what the allocation minimises: "log" (sum -log s) or "linear"
    threshold: float = 0.95                   # per-layer similarity kept when there is no budget
    knob: float | None = None                 # a baseline's knob when there is no budget (None: its default)
    layers: Mapping[str, Any] = field(default_factory=dict)
    memory_cap_bytes: int = DEFAULT_MEMORY_CAP_BYTES
    samples_per_layer: int = DEFAULT_SAMPLES_PER_LAYER
    levels: Sequence[float] = DEFAULT_LEVELS
    search_iterations: int = SEARCH_ITERATIONS
    finetune: FinetuneConfig | None = None
    latency_guard: str | None = None           # a target, e.g. "host": offer only blocks timed no slower there
    # target name -> its latency cost table (e.g. edgecompress.bench.CostTable: .target.name, .runtime,
    # .latency_many(blocks), .channel_multiple(), optionally .model_ratios(original, models, x)); needed by latency
    # budgets and the latency guard. The CLI and the demo pass edgecompress.bench.CostTable and guard on "host".
    cost_table: Callable[[str], Any] | None = None
    int8_faithful: bool = False                # hybrid leaves out int8-fragile methods (Method.int8_fragile): for
                                               # plans shipped as full int8; implied by an int8 cost table's CLI
    latency_in_context: bool = True            # a latency budget's plan timed whole against the original, where
                                               # the cost table can (select/incontext.py); False: layers alone
    align_ranks: bool = True                   # with a cost table: offer ranks on the target's channel tile
    calibration_name: str = "calibration data"
    seed: int = 0
    prune: float | str | None = None          # remove this fraction of the prunable channels, then factorize;
                                              # "auto": the fraction in AUTO_PRUNE_RATIOS that judges best
    prune_criterion: str = DEFAULT_CRITERION  # energy, l1 or l2 (edgecompress.prune.criteria)
    prune_refit: bool = True                  # refit the layers reading pruned channels on the calibration data
    jobs: int | None = None                   # layers searched at once, in threads; None: the cores available
