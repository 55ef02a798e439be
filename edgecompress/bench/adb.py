"""Kind `adb`: an Android phone over adb, timed by TFLite's own `benchmark_model` binary (pushed from a
path the user gives). benchmark_model uses random inputs and runs one model per process, so this kind
reports no accuracy, no percentiles beyond its median, and speedups without a confidence interval."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from edgecompress.bench.base import Target, last_line, run_process
from edgecompress.bench.settings import BenchSettings
from edgecompress.bench.targets import REQUIRED
from edgecompress.errors import TargetError

COUNT_LINE = re.compile(r"count=(?P<count>\d+)\s+first=(?P<first>[\d.]+)\s+curr=[\d.]+\s+min=(?P<min>[\d.]+)\s+"
                        r"max=(?P<max>[\d.]+)\s+avg=(?P<avg>[\d.e+]+)\s+std=(?P<std>[\d.]+)"
                        r"(?:\s+p5=[\d.]+\s+median=(?P<median>[\d.]+)\s+p95=(?P<p95>[\d.]+))?")
TIMINGS_LINE = re.compile(r"Inference timings in us: Init: (?P<init>[\d.]+), First inference: (?P<first>[\d.]+), "
                          r"Warmup \(avg\): (?P<warmup>[\d.e+]+), Inference \(avg\): (?P<avg>[\d.e+]+)")
FOOTPRINT_LINE = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=(?P<init>[\d.]+) "
                            r"overall=(?P<overall>[\d.]+)")
PEAK_LINE = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (?P<peak>[\d.]+)")
MB = 1024 * 1024


class AdbTarget(Target):
    KIND = "adb"
    FIELDS = {
        "benchmark_model": (str, REQUIRED, "path on this machine of TFLite's android_aarch64 benchmark_model"),
        "serial": (str, None, "device serial from `adb devices` (needed when several are attached)"),
        "adb": (str, "adb", "adb program (name on PATH or path)"),
        "workdir": (str, "/data/local/tmp/edgecompress", "directory on the phone for the binary and models"),
    }

    def benchmark(self, models: list[Path], data: Path | None, settings: BenchSettings) -> dict:
        serial = self.device_serial()
        binary = self._binary()
        remote_binary = self._push(serial, binary, "benchmark_model")
        self._adb(serial, ["shell", "chmod", "755", remote_binary], "chmod benchmark_model")
        records = [self._run_one(serial, remote_binary, index, path, settings) for index, path in enumerate(models)]
        notes = ["timed by TFLite benchmark_model on random inputs, one model per process: no interleaving, "
                 "no accuracy, no p90/p99, speedups without a confidence interval"]
        if data:
            notes.append(f"--data {data.name} was not used: benchmark_model cannot report accuracy")
        return {"schema": "edgecompress.bench.runner/1", "system": self._system(serial), "threads": settings.threads,
                "settings": {**settings.to_dict(), "interleaved": False, "batch": 1}, "models": records,
                "comparisons": [_plain_speedup(records[0], records[k], k) for k in range(1, len(records))],
                "peak_rss_bytes": max((r["peak_rss_alone_bytes"] or 0 for r in records), default=None) or None,
                "notes": notes}

    def probe(self) -> dict:
        serial = self.device_serial()
        return {"probe": True, "system": self._system(serial),
                "runtimes": {"tflite": {"name": "benchmark_model", "version": "unknown"}, "onnx": None}}

    def device_serial(self) -> str:
        """The serial to use, or a one-line error naming what is missing (adb, a device, the right serial)."""
        adb = shutil.which(os.path.expanduser(self.config["adb"]))
        if adb is None:
            raise TargetError(f"target {self.name}: adb not found ({self.config['adb']!r} is not on PATH): install "
                              f"Android platform-tools (apt-get install adb) or set 'adb' in the target file")
        proc = self._adb(None, ["devices"], "adb devices")
        states = dict(line.split("\t")[:2] for line in proc.stdout.decode(errors="replace").splitlines()
                      if "\t" in line)
        listed = ", ".join(f"{s} ({state})" for s, state in states.items()) or "none"
        serial = self.config["serial"] or (next(iter(states)) if len(states) == 1 else None)
        if serial is None:
            raise TargetError(f"target {self.name}: {'no Android device attached' if not states else 'several devices'}"
                              f" (adb devices lists: {listed}); connect the phone with USB debugging on"
                              f"{'' if not states else ' and set serial in the target file'}")
        if states.get(serial) != "device":
            raise TargetError(f"target {self.name}: device {serial} is not ready (adb devices lists: {listed}); "
                              f"connect it with USB debugging on and accept the authorization prompt")
        return serial

    def _binary(self) -> Path:
        binary = Path(os.path.expanduser(self.config["benchmark_model"]))
        if not binary.is_file():
            raise TargetError(f"target {self.name}: benchmark_model not found at {binary}: download TFLite's "
                              f"android_aarch64 benchmark_model and set 'benchmark_model' to its path")
        return binary

    def _run_one(self, serial: str, binary: str, index: int, path: Path, settings: BenchSettings) -> dict:
        remote_model = self._push(serial, path, f"m{index}_{path.name}")
        flags = [f"--graph={remote_model}", f"--num_runs={settings.min_runs}", f"--min_secs={settings.min_secs}",
                 f"--max_secs={settings.max_secs}", f"--warmup_runs={settings.warmup_runs}",
                 f"--warmup_min_secs={settings.warmup_secs}", "--report_peak_memory_footprint=true"]
        flags += [f"--num_threads={settings.threads}"] if settings.threads else []
        proc = self._adb(serial, ["shell", binary, *flags], f"benchmark_model on {path.name}",
                         timeout_s=self.config.run_timeout_s + settings.budget_s(1))
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        return dict(parse_benchmark_model(output, path.name), path=str(path), name=path.name, format="tflite",
                    size_bytes=path.stat().st_size)

    def _push(self, serial: str, local: Path, name: str) -> str:
        remote = f"{self.config['workdir']}/{name}"
        self._adb(serial, ["shell", "mkdir", "-p", self.config["workdir"]], "mkdir on the phone")
        self._adb(serial, ["push", str(local), remote], f"adb push {local.name}")
        return remote

    def _system(self, serial: str) -> dict:
        props = ["ro.product.model", "ro.soc.model", "ro.product.cpu.abi", "ro.build.version.release"]
        proc = self._adb(serial, ["shell", "; ".join(f"getprop {p}" for p in props)], "getprop")
        model, soc, abi, release = (proc.stdout.decode(errors="replace").splitlines() + [""] * 4)[:4]
        return {"cpu_model": f"{model.strip()} ({soc.strip() or 'unknown SoC'})", "machine": abi.strip(),
                "os": f"Android {release.strip()}", "serial": serial}

    def _adb(self, serial: str | None, args: list[str], what: str, timeout_s: float | None = None):
        command = [os.path.expanduser(self.config["adb"])] + (["-s", serial] if serial else []) + args
        proc = run_process(command, timeout_s or self.config.timeout_s + 60, f"target {self.name}: {what}")
        if proc.returncode != 0:
            raise TargetError(f"target {self.name}: {what} failed: {last_line(proc.stderr or proc.stdout)}")
        return proc


def parse_benchmark_model(output: str, model_name: str) -> dict:
    """A runner-style model record from benchmark_model's log (times in µs there, ms here)."""
    timings = TIMINGS_LINE.search(output)
    counts = list(COUNT_LINE.finditer(output))
    if not timings or not counts:
        raise TargetError(f"benchmark_model gave no timings for {model_name}: {last_line(output)}")
    timed = counts[-1]
    median = timed.group("median")
    footprint, peak = FOOTPRINT_LINE.search(output), PEAK_LINE.search(output)
    latency = {"p50": _ms(median) if median else None, "p90": None, "p99": None, "mean": _ms(timed.group("avg")),
               "std": _ms(timed.group("std")), "min": _ms(timed.group("min")), "max": _ms(timed.group("max")),
               "n": int(timed.group("count"))}
    return {"runtime": {"name": "benchmark_model", "version": "unknown"}, "inputs": [],
            "init_ms": _ms(timings.group("init")), "first_run_ms": _ms(timings.group("first")),
            "rss_delta_bytes": int(float(footprint.group("overall")) * MB) if footprint else None,
            "runs": int(timed.group("count")), "latency_ms": latency, "samples_ms": [], "accuracy": None,
            "peak_rss_alone_bytes": int(float(peak.group("peak")) * MB) if peak else None}


def _ms(microseconds: str) -> float:
    return float(microseconds) / 1000.0


def _plain_speedup(base: dict, other: dict, index: int) -> dict:
    return {"speedup": base["latency_ms"]["mean"] / other["latency_ms"]["mean"], "ci95": None,
            "statistic": "mean(baseline ms) / mean(candidate ms), separate processes", "baseline": 0,
            "candidate": index}

