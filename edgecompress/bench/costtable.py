"""Latency cost tables for the DSE's `latency=` budget and the latency guard: the measured p50 latency of a candidate
block on a target (less the runner's fixed cost per invoke), cached per (target, runtime and version, threads,
precision, block shape) in a JSON file so each shape is timed once; the runtime's preferred channel multiple; and
whole models timed in context against the original (`model_ratios`), which a latency budget is finally checked on.

    table = CostTable("rpi4")
    latency_ms = table.latency_ms([Conv2D(16, 1), Conv2D(16, 3, padding="same"), Conv2D(64, 1)], (32, 32, 64))
    many_ms = table.latency_many([(block_a, shape_a), (block_b, shape_b)])   # one runner call for all misses
    table.model_ratios(original_model, [compressed_model])[0]["ratio"]     # whole models, interleaved
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from edgecompress.bench.settings import BenchSettings
from edgecompress.errors import TargetError
from edgecompress.io import atomic_path

CACHE_VERSION = 1
DEFAULT_CACHE = Path("~/.cache/edgecompress/latency_cache.json")
COST_SETTINGS = BenchSettings(threads=1, min_runs=20, min_secs=0.2, max_secs=10.0, warmup_runs=2, warmup_secs=0.05,
                              segments=1, compare=False, alone_memory=False)
# Whole models in context: the original and a candidate interleaved in 3 segments, so their ratio is paired.
CONTEXT_SETTINGS = BenchSettings(threads=1, min_runs=30, min_secs=0.3, max_secs=6.0, warmup_runs=3, warmup_secs=0.1,
                                 segments=3, compare=True, alone_memory=False)
# The channel-tile probe: a 3x3 conv on a 16x16x64 map at output widths 4k and 4k+1 (k = 1..12). A runtime whose
# kernels work on tiles of m output channels takes a step up in time just past multiples of m.
TILE_PROBE_CHANNELS = tuple(c for k in range(1, 13) for c in (4 * k, 4 * k + 1))
TILE_PROBE_INPUT_SHAPE = (16, 16, 64)
TILE_STEP = 1.08  # the smallest time ratio t(m+1)/t(m) read as a step (timing noise stays below ~3%)
MIN_LATENCY_MS = 1e-4  # a block timed at or below the invoke overhead still costs something
IGNORED_CONFIG_SUFFIXES = ("_initializer", "_regularizer", "_constraint")  # weights' origin, not their cost
Block = Any  # a list of Keras layers, a keras.Model, or the path of a .tflite file


def block_latency_ms(target: Any, layers: Block, input_shape: Sequence[int] | None = None, *,
                     cache_path: str | os.PathLike | None = None, settings: BenchSettings | None = None,
                     precision: str = "fp32") -> float:
    """p50 latency (ms, batch 1) of `layers` applied to an input of `input_shape` (no batch axis) on `target`."""
    table = CostTable(target, cache_path=cache_path, settings=settings, precision=precision)
    return table.latency_ms(layers, input_shape)


class CostTable:
    """Measured block latencies on one target, backed by a JSON cache shared by every target."""

    def __init__(self, target: Any = "host", cache_path: str | os.PathLike | None = None,
                 settings: BenchSettings | None = None, precision: str = "fp32", allow_emulated: bool = False):
        from edgecompress.bench.api import get_target

        self.target = get_target(target)
        if self.target.emulated and not allow_emulated:
            raise TargetError(f"target {self.target.name}: its times are emulated, useless as a latency budget; "
                              f"build the cost table on the device (or pass allow_emulated=True for a dry run)")
        self.settings = settings or COST_SETTINGS
        self.precision = precision  # as `edgecompress export --precision`: fp32, fp16, dynamic or int8
        self.cache_path = Path(os.path.expanduser(cache_path or DEFAULT_CACHE))
        self._runtime: str | None = None

    @property
    def runtime(self) -> str:
        """"name version" of the TFLite runtime on the target, asked once (it is part of every cache key)."""
        if self._runtime is None:
            tflite = (self.target.probe().get("runtimes") or {}).get("tflite") or {}
            self._runtime = f"{tflite.get('name')} {tflite.get('version')}"
        return self._runtime

    def key(self, block: Block, input_shape: Sequence[int] | None) -> str:
        return (f"{self.target.name}|{self.runtime}|threads={self.settings.threads}|{self.precision}|"
                f"{block_key(block, input_shape)}")

    def latency_ms(self, block: Block, input_shape: Sequence[int] | None = None) -> float:
        return self.latency_many([(block, input_shape)])[0]

    def latency_many(self, blocks: Sequence[tuple[Block, Sequence[int] | None]]) -> list[float]:
        """Latencies of several blocks, each less the runner's own cost around one invoke on its input shape
        (`overhead_ms`): every block is timed as a model of its own, with its input copied in and its output
        copied out; summing that once per layer would price a model of many small layers as if factorizing them
        could barely pay. The uncached blocks are timed in one runner call."""
        shapes = [tuple(shape) if shape is not None else (1,) for _, shape in blocks]
        timed = self.timed_ms(list(blocks) + [_overhead_probe(shape) for shape in dict.fromkeys(shapes)])
        overhead_ms = dict(zip(dict.fromkeys(shapes), timed[len(blocks):]))
        return [max(latency_ms - overhead_ms[shape], MIN_LATENCY_MS) for latency_ms, shape in zip(timed, shapes)]

    def overhead_ms(self, input_shape: Sequence[int] = (1,)) -> float:
        """p50 of a model of one RELU on `input_shape`: what a block on that input pays besides its own ops."""
        return self.timed_ms([_overhead_probe(tuple(input_shape))])[0]

    def timed_ms(self, blocks: Sequence[tuple[Block, Sequence[int] | None]]) -> list[float]:
        """The p50s as measured, each block a model of its own, from the cache or timed now."""
        keys = [self.key(block, shape) for block, shape in blocks]
        cache = load_cache(self.cache_path)
        missing = {key: item for key, item in zip(keys, blocks) if key not in cache}
        if missing:
            cache = {**load_cache(self.cache_path), **self._measure(missing)}
            save_cache(self.cache_path, cache)
        return [cache[key]["latency_ms"] for key in keys]

    def channel_multiple(self) -> int:
        """The output-channel multiple the target's kernels prefer at this precision (1: none found), from
        the probe convs' latencies; measured once, then read from the cache."""
        import keras

        blocks = [([keras.layers.Conv2D(c, 3, padding="same")], TILE_PROBE_INPUT_SHAPE) for c in TILE_PROBE_CHANNELS]
        return channel_tile(dict(zip(TILE_PROBE_CHANNELS, self.timed_ms(blocks))))

    def model_ratios(self, original: Any, candidates: Sequence[Any], calibration: Any = None) -> list[dict]:
        """Each candidate whole model timed in context against `original` on the target, as `edgecompress
        export` would ship them (lowered, converted at this table's precision; int8 calibrated on
        `calibration`): {"ratio": candidate p50 / original p50 (paired, interleaved), "original_ms",
        "candidate_ms"} per candidate. Cached by the files' bytes, so a rerun of the same plan times nothing."""
        with tempfile.TemporaryDirectory(prefix="edgecompress-context-") as scratch:
            files = [model_file(model, Path(scratch) / f"model{i}.tflite", self.precision, calibration)
                     for i, model in enumerate([original, *candidates])]
            keys = [f"{self.key(files[0], None)}|vs|{block_key(path, None)}" for path in files[1:]]
            cache = load_cache(self.cache_path)
            missing = [(key, path) for key, path in zip(keys, files[1:]) if key not in cache]
            if missing:
                cache = {**load_cache(self.cache_path), **self._measure_in_context(files[0], dict(missing))}
                save_cache(self.cache_path, cache)
        return [cache[key] for key in keys]

    def _measure_in_context(self, original: Path, candidates: dict[str, Path]) -> dict[str, dict]:
        from edgecompress.bench.api import run

        result = run([original, *candidates.values()], target=self.target, settings=CONTEXT_SETTINGS)
        original_ms = result.models[0]["latency_ms"]["p50"]
        return {key: {"ratio": 1.0 / comparison["speedup"], "original_ms": original_ms,
                      "candidate_ms": model["latency_ms"]["p50"], "target": self.target.name,
                      "runtime": self.runtime}
                for key, model, comparison in zip(candidates, result.models[1:], result.comparisons)}

    def _measure(self, blocks: dict[str, tuple[Block, Sequence[int] | None]]) -> dict[str, dict]:
        from edgecompress.bench.api import run

        with tempfile.TemporaryDirectory(prefix="edgecompress-costs-") as scratch:
            files = [block_file(block, shape, Path(scratch) / f"block{i}.tflite", self.precision)
                     for i, (block, shape) in enumerate(blocks.values())]
            result = run(files, target=self.target, settings=self.settings)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return {key: {"latency_ms": model["latency_ms"]["p50"], "mean_ms": model["latency_ms"]["mean"],
                      "runs": model["runs"], "target": self.target.name, "runtime": self.runtime,
                      "emulated": self.target.emulated, "measured_utc": now}
                for key, model in zip(blocks, result.models)}


def _overhead_probe(input_shape: tuple) -> tuple[list, tuple]:
    import keras

    return [keras.layers.ReLU()], input_shape


def channel_tile(latency_ms_by_channels: dict[int, float]) -> int:
    """The greatest common divisor of the channel counts c after which time steps up (t(c+1) >= TILE_STEP *
    t(c)), or 1 when there is no step. XNNPACK fp32 on an AVX-512 host steps at 16 and 32 (not at 48: its
    32-wide kernel), so 16."""
    times = latency_ms_by_channels
    steps = [c for c in sorted(times) if c + 1 in times and times[c + 1] >= TILE_STEP * times[c]]
    return functools.reduce(math.gcd, steps) if steps else 1


def block_key(block: Block, input_shape: Sequence[int] | None) -> str:
    """A stable hash of what decides a block's cost: layer classes and configs (names and initializers
    left out) and the input shape; or the bytes of a .tflite file."""
    if isinstance(block, (str, os.PathLike)):
        return "file-" + hashlib.sha256(Path(block).read_bytes()).hexdigest()[:24]
    layers = _layers_of(block)
    if input_shape is None:
        raise TargetError("block_latency_ms needs input_shape (without the batch axis) for a block of layers")
    described = {"input_shape": [int(d) for d in input_shape],
                 "layers": [{"class": f"{type(layer).__module__}.{type(layer).__name__}",
                             "config": _cost_config(layer.get_config())} for layer in layers]}
    text = json.dumps(described, sort_keys=True, default=str)
    return "keras-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def block_file(block: Block, input_shape: Sequence[int] | None, path: Path, precision: str = "fp32") -> Path:
    """The block as a .tflite at `path`, lowered and converted exactly as `edgecompress export` does (so fused
    activations and merged factors are timed as they will ship); a .tflite block is used as it is."""
    if isinstance(block, (str, os.PathLike)):
        return Path(block)
    import keras
    import numpy as np

    inputs = keras.Input(shape=tuple(input_shape))
    outputs = inputs
    for layer in _layers_of(block):
        outputs = type(layer).from_config(layer.get_config())(outputs)  # fresh copies: the caller's stay unbuilt
    calibration = np.random.default_rng(0).standard_normal((16, *input_shape)).astype(np.float32)
    return model_file(keras.Model(inputs, outputs), path, precision, calibration)


def model_file(model: Any, path: Path, precision: str = "fp32", calibration: Any = None) -> Path:
    """A Keras model as a .tflite at `path`, lowered and converted as `edgecompress export` does."""
    from edgecompress.lower import convert, lower

    if precision == "int8" and calibration is None:
        raise TargetError("an int8 cost table needs calibration data to convert whole models")
    calibration = calibration if precision == "int8" else None
    lowered, _ = lower(model, "tflite", calibration)
    path.write_bytes(convert(lowered, "tflite", precision, calibration))
    return path


def _layers_of(block: Block) -> list:
    if hasattr(block, "layers") and not isinstance(block, (list, tuple)):
        return [layer for layer in block.layers if type(layer).__name__ != "InputLayer"]
    return list(block)


def _cost_config(config: dict) -> dict:
    return {key: value for key, value in config.items()
            if key not in ("name", "trainable") and not key.endswith(IGNORED_CONFIG_SUFFIXES)}


def load_cache(path: Path) -> dict[str, dict]:
    """The cached entries; a missing or unreadable cache is an empty one (it only saves time)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("entries", {}) if data.get("version") == CACHE_VERSION else {}


def save_cache(path: Path, entries: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True))
