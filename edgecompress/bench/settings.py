"""How long and how to measure: one config object, turned into runner.py arguments."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BenchSettings:
    """Measurement settings, with TFLite benchmark_model's defaults where it has one.

    threads: interpreter threads (1 by default, so numbers compare across runs; a Pi 4 user may want 4).
    min_runs, min_secs, max_secs: timed runs go on until both minimums are met, capped by max_secs.
    warmup_runs, warmup_secs: untimed runs first, until both are met.
    segments: with several models, reload them this many times in alternating order (see runner.speedup_ci).
    max_samples: accuracy over at most this many data samples (None: all).
    outputs: bring back every sample's raw output (for parity checks such as bench/arm64_check.py).
    runtime: force one TFLite runtime ("ai_edge_litert", "tflite_runtime", "tensorflow") instead of the first found.
    compare: compute the paired speedups of models 2..N against model 1.
    alone_memory: with several models, also each one's peak RSS in a process of its own (a child per model).
    """

    threads: int | None = 1
    min_runs: int = 50
    min_secs: float = 1.0
    max_secs: float = 60.0
    warmup_runs: int = 1
    warmup_secs: float = 0.5
    segments: int = 6
    max_samples: int | None = None
    outputs: bool = False
    runtime: str | None = None
    compare: bool = True
    seed: int = 0
    alone_memory: bool = True

    def runner_args(self) -> list[str]:
        """Command-line arguments for runner.py (model and data paths excluded)."""
        args = ["--min-runs", str(self.min_runs), "--min-secs", repr(float(self.min_secs)),
                "--max-secs", repr(float(self.max_secs)), "--warmup-runs", str(self.warmup_runs),
                "--warmup-secs", repr(float(self.warmup_secs)), "--segments", str(self.segments),
                "--seed", str(self.seed)]
        optional = {"--threads": self.threads, "--max-samples": self.max_samples, "--runtime": self.runtime}
        args += [item for flag, value in optional.items() if value is not None for item in (flag, str(value))]
        args += ["--outputs"] if self.outputs else []
        args += [] if self.alone_memory else ["--alone-memory", "off"]
        return args + ([] if self.compare else ["--no-compare"])

    def budget_s(self, model_count: int) -> float:
        """A generous upper bound of the runner's timed phase, for transport timeouts."""
        return (self.max_secs + self.warmup_secs + 5.0 * self.segments) * max(model_count, 1)

    def to_dict(self) -> dict:
        return asdict(self)
