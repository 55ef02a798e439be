"""BenchResult: one benchmark run on one target, the complete record that the JSON report is."""
from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass, field

SCHEMA = "edgecompress.bench/1"
EMULATED_NOTE = ("emulated timing ({host_cpu}): never compare these times with a device's; peak RSS includes "
                 "the emulator")


@dataclass
class BenchResult:
    """Per-model records (runner.py's `models`), paired comparisons, the target and the system measured on.

    Every model record holds: name, path, format, size_bytes, runtime {name, version}, init_ms, first_run_ms,
    rss_delta_bytes, runs, latency_ms {p50, p90, p99, mean, std, min, max, n}, samples_ms and accuracy
    ({n, top1, top1_accuracy} or None).
    """

    target: dict
    system: dict
    threads: int | None
    settings: dict
    models: list[dict]
    comparisons: list[dict]
    peak_rss_bytes: int | None
    notes: list[str] = field(default_factory=list)
    created_utc: str = ""
    schema: str = SCHEMA

    @classmethod
    def from_runner(cls, runner_json: dict, target: dict) -> "BenchResult":
        notes = list(runner_json.get("notes", []))
        if target.get("emulated"):
            notes.insert(0, EMULATED_NOTE.format(host_cpu=runner_json["system"].get("cpu_model", "this machine")))
        return cls(target=target, system=runner_json["system"], threads=runner_json.get("threads"),
                   settings=runner_json.get("settings", {}), models=runner_json["models"],
                   comparisons=runner_json.get("comparisons", []), peak_rss_bytes=runner_json.get("peak_rss_bytes"),
                   notes=notes, created_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def from_dict(cls, data: dict) -> "BenchResult":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    @property
    def emulated(self) -> bool:
        return bool(self.target.get("emulated"))

    @property
    def timing_label(self) -> str:
        """"emulated" or "device": what kind of time every latency in this result is."""
        return "emulated" if self.emulated else "device"

    def to_dict(self) -> dict:
        return {**asdict(self), "timing": self.timing_label}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
