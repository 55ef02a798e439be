"""Benchmark runner: times .tflite/.onnx models on this machine and prints one JSON object on stdout.

Copied as a single file to boards, so it needs only the standard library, numpy and an interpreter
(ai_edge_litert, else tflite_runtime, else tensorflow.lite; onnxruntime for .onnx); it never imports
edgecompress, and tensorflow only as the last TFLite fallback. Python 3.7+ (Raspberry Pi OS Buster and later).

    python3 runner.py MODEL [MODEL2 ...] [--data TEST.npz] [--threads N] [--min-runs N] [--min-secs S] [--max-secs S]

Exit 0 with the result; exit 2 with {"error": {"kind": "model"|"data"|"runtime"|"usage", "message": ...}}
on stdout (and the message on stderr) for input the user can fix.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

try:
    import numpy as np
except ImportError:  # main() turns this into a clear "install numpy" error
    np = None

SCHEMA = "edgecompress.bench.runner/1"
EXIT_BAD_INPUT = 2
TFLITE_MAGIC = b"TFL3"
TIMED_FEEDS = 32  # distinct inputs cycled through the timed runs
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_BLOCKS = 500
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# ARM "CPU part" ids of the cores found on Raspberry Pi boards and common phones (from /proc/cpuinfo).
ARM_CPU_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
                 "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
                 "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1", "0xb76": "ARM1176"}
TFLITE_RUNTIMES = (  # (name, module, attribute path of Interpreter, distribution), in order of preference
    ("ai_edge_litert", "ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    ("tflite_runtime", "tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    ("tensorflow", "tensorflow", "lite.Interpreter", "tensorflow"),
)
PRIMER_TFLITE = (  # x -> relu(2x + 1) on a float32 [1, 4]: a few bytes that start the runtime up
    "HAAAAFRGTDMUACAAHAAYABQAEAAMAAAACAAEABQAAAAcAAAAHAAAAHQAAABUAQAAZAEAAGADAAADAAAAAAAAAAIAAAA0AAAABAAAANz/"
    "//8HAAAABAAAABMAAABDT05WRVJTSU9OX01FVEFEQVRBAAgADAAIAAQACAAAAAYAAAAEAAAAEwAAAG1pbl9ydW50aW1lX3ZlcnNpb24A"
    "CAAAANwAAADUAAAAwAAAAKQAAACcAAAAlAAAAHQAAAAEAAAAXv///wQAAABgAAAAEAAAAAAAAAAIAA4ACAAEAAgAAAAQAAAAJAAAAAAA"
    "BgAIAAQABgAAAAQAAAAAAAAADAAYABQAEAAMAAQADAAAADdlf7AXNt3tAwAAAAIAAAAEAAAABgAAADIuMjEuMAAAyv///wQAAAAQAAAA"
    "MS41LjAAAAAAAAAAAAAAAKj9//+s/f//7v///wQAAAAEAAAAAAAAQAAABgAIAAQABgAAAAQAAAAEAAAAAACAP9j9///c/f//DwAAAE1M"
    "SVIgQ29udmVydGVkLgABAAAAFAAAAAAADgAYABQAEAAMAAgABAAOAAAAFAAAABwAAACsAAAAsAAAALQAAAAEAAAAbWFpbgAAAAACAAAA"
    "ZAAAABQAAAAAAA4AGgAUABAADAALAAQADgAAABwAAAAAAAALHAAAACAAAAABAAAAAAAGAAgABwAGAAAAAAAAAQEAAAAEAAAAAgAAAAMA"
    "AAABAAAAAAAOABQAAAAQAAwACwAEAA4AAAAQAAAAAAAAFQwAAAAQAAAArP7//wEAAAADAAAAAgAAAAAAAAACAAAAAQAAAAQAAAABAAAA"
    "AAAAAAUAAADsAAAApAAAAHQAAABAAAAABAAAAD7///8AAAABEAAAABAAAAAFAAAAGAAAAAT///8IAAAASWRlbnRpdHkAAAAAAgAAAAEA"
    "AAAEAAAAdv///wAAAAEQAAAAEAAAAAQAAAAQAAAAPP///wMAAABtdWwAAgAAAAEAAAAEAAAApv///wAAAAEQAAAAEAAAAAMAAAAUAAAA"
    "bP///wUAAABtdWwveQAAAAAAAADS////AAAAARAAAAAQAAAAAgAAABQAAACY////BQAAAGFkZC95AAAAAAAAAAAAFgAYABQAAAAQAAwA"
    "CAAAAAAAAAAHABYAAAAAAAABEAAAABAAAAABAAAAEAAAANz///8BAAAAeAAAAAIAAAABAAAABAAAAAIAAAAcAAAACAAAAAQABAAEAAAA"
    "DAAMAAsAAAAAAAQADAAAABIAAAAAAAAS")
PRIMER_ONNX = "CAg6PgoMCgF4EgF5IgRSZWx1EgR3YXJtWhMKAXgSDgoMCAESCAoCCAEKAggEYhMKAXkSDgoMCAESCAoCCAEKAggEQgQKABAN"  # Relu on a float32 [1, 4]
INSTALL_TFLITE = ("pip install ai-edge-litert (64-bit OS, Python 3.9+) or pip install tflite-runtime "
                  "(32-bit Raspberry Pi OS)")


class RunnerError(Exception):
    """Bad input with a kind ("model", "data", "runtime", "usage") the host side maps to an exception type."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------- runtimes


def _module_version(module, distribution: str) -> str:
    try:
        from importlib import metadata
        return metadata.version(distribution)
    except Exception:  # noqa: BLE001 - Python 3.7 or no dist-info: fall back to the module attribute
        return str(getattr(module, "__version__", "unknown"))


def _import(module_name: str):
    import importlib
    return importlib.import_module(module_name)


def find_tflite_runtime(prefer: str | None = None):
    """(name, version, Interpreter class) of the first importable TFLite runtime, or RunnerError."""
    for name, module_name, attribute_path, distribution in TFLITE_RUNTIMES:
        if prefer and name != prefer:
            continue
        try:
            interpreter_class = _import(module_name)
        except ImportError:
            continue
        for attribute in attribute_path.split("."):
            interpreter_class = getattr(interpreter_class, attribute)
        return name, _module_version(_import(name), distribution), interpreter_class
    wanted = prefer or " or ".join(entry[0] for entry in TFLITE_RUNTIMES)
    raise RunnerError("runtime", "no TFLite interpreter (%s) importable by %s: %s"
                      % (wanted, sys.executable, INSTALL_TFLITE))


def find_onnx_runtime():
    try:
        import onnxruntime
    except ImportError:
        raise RunnerError("runtime", "onnxruntime is not importable by %s: pip install onnxruntime"
                          % sys.executable) from None
    return "onnxruntime", _module_version(onnxruntime, "onnxruntime"), onnxruntime


def probe() -> dict:
    """System facts and the runtime each format would use here (or why none), without loading a model."""
    runtimes = {}
    for kind, finder in (("tflite", find_tflite_runtime), ("onnx", find_onnx_runtime)):
        try:
            name, version = finder()[:2]
            runtimes[kind] = {"name": name, "version": version}
        except RunnerError as error:
            runtimes[kind] = {"name": None, "version": None, "missing": str(error)}
    return {"schema": SCHEMA, "probe": True, "system": system_info(), "runtimes": runtimes}


# ---------------------------------------------------------------- models


def check_model_file(path: str) -> str:
    """The model format ("tflite" or "onnx") after cheap checks that catch missing and truncated files."""
    if not os.path.isfile(path):
        raise RunnerError("model", "%s: no such model file" % path)
    size_bytes = os.path.getsize(path)
    if size_bytes == 0:
        raise RunnerError("model", "%s: file is empty; export the model again" % path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".tflite":
        with open(path, "rb") as handle:
            head = handle.read(8)
        if len(head) < 8 or head[4:8] != TFLITE_MAGIC:
            raise RunnerError("model", "%s: not a TFLite flatbuffer (no TFL3 identifier; truncated or corrupt "
                                       "file?); export it again" % path)
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    raise RunnerError("model", "%s: unsupported model type %r; give a .tflite or .onnx file" % (path, suffix))


class TFLiteModel:
    """One TFLite interpreter with batch-1 inputs; invoke() returns the first output."""

    def __init__(self, path: str, threads: int | None, runtime: str | None):
        self.runtime, self.version, interpreter_class = find_tflite_runtime(runtime)
        try:
            self.interpreter = interpreter_class(model_path=path, num_threads=threads)
            self._resize_dynamic_batch()
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise RunnerError("model", "%s: %s cannot load it (%s); the file is truncated, corrupt or uses "
                                       "ops this runtime lacks" % (path, self.runtime, _first_line(error))) from None
        self.inputs = [_tflite_spec(d) for d in self.interpreter.get_input_details()]
        self.output = _tflite_spec(self.interpreter.get_output_details()[0])

    def _resize_dynamic_batch(self) -> None:
        for detail in self.interpreter.get_input_details():
            signature = list(detail.get("shape_signature", detail["shape"]))
            if signature and signature[0] == -1:
                self.interpreter.resize_tensor_input(detail["index"], [1] + [abs(int(d)) for d in signature[1:]])

    def invoke(self, feeds: list):
        for spec, value in zip(self.inputs, feeds):
            self.interpreter.set_tensor(spec["index"], value)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])


def _tflite_spec(detail: dict) -> dict:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {"index": detail["index"], "name": detail["name"], "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


class OnnxModel:
    """One onnxruntime CPU session with batch-1 inputs; invoke() returns the first output."""

    ONNX_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
                   "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
                   "tensor(int64)": "int64"}

    def __init__(self, path: str, threads: int | None, runtime: str | None):
        self.runtime, self.version, ort = find_onnx_runtime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for a bad protobuf
            raise RunnerError("model", "%s: onnxruntime cannot load it (%s); the file is truncated or corrupt"
                              % (path, _first_line(error))) from None
        self.inputs = [self._spec(i) for i in self.session.get_inputs()]
        self.output = self._spec(self.session.get_outputs()[0])

    def _spec(self, node) -> dict:
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in node.shape]
        if shape and shape[0] == -1:
            shape[0] = 1
        return {"name": node.name, "shape": shape, "dtype": self.ONNX_DTYPES.get(node.type, "float32"),
                "scale": 0.0, "zero_point": 0}

    def invoke(self, feeds: list):
        return self.session.run([self.output["name"]], {s["name"]: v for s, v in zip(self.inputs, feeds)})[0]


MODEL_CLASSES = {"tflite": TFLiteModel, "onnx": OnnxModel}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


# ---------------------------------------------------------------- inputs


def load_data(path: str):
    """(x, y or None) from an .npz holding `x` and optionally integer labels `y`."""
    if not os.path.isfile(path):
        raise RunnerError("data", "%s: no such data file" % path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            x = archive["x"] if "x" in archive.files else None
            y = archive["y"] if "y" in archive.files else None
    except Exception as error:  # noqa: BLE001 - a bad zip or header is a data problem to the user
        raise RunnerError("data", "%s: not a readable .npz (%s)" % (path, _first_line(error))) from None
    if x is None or x.ndim < 2 or len(x) == 0:
        raise RunnerError("data", "%s: needs a non-empty array 'x' with a batch axis" % path)
    if y is not None:
        y = y.reshape(len(y), -1)[:, 0] if y.ndim == 2 else y
        if y.ndim != 1 or len(y) != len(x):
            raise RunnerError("data", "%s: 'y' must hold one integer label per sample of 'x'" % path)
    return x, y


def to_model_input(x, spec: dict, model_path: str, data_path: str):
    """Samples of `x` converted to what the model's first input takes (shape checked, quantized if needed)."""
    want = spec["shape"][1:]
    got = list(x.shape[1:])
    if len(want) != len(got) or any(w not in (-1, g) for w, g in zip(want, got)):
        raise RunnerError("data", "%s: samples have shape %s but %s takes %s (channels-last, batch axis first); "
                                  "reshape the data or give the matching model"
                          % (data_path, tuple(got), model_path, tuple(want)))
    dtype = np.dtype(spec["dtype"])
    if x.dtype == dtype:
        return x
    if dtype.kind in "iu" and spec["scale"] > 0:
        info = np.iinfo(dtype)
        quantized = np.round(x.astype(np.float32) / spec["scale"] + spec["zero_point"])
        return np.clip(quantized, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def random_input(spec: dict, rng, model_path: str):
    if any(d < 0 for d in spec["shape"][1:]):
        raise RunnerError("data", "%s: input %r has dynamic dimensions %s; give --data so the shape is known"
                          % (model_path, spec["name"], spec["shape"]))
    shape = [TIMED_FEEDS] + spec["shape"][1:]
    dtype = np.dtype(spec["dtype"])
    if dtype.itemsize == 1 and dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if dtype.kind in "iu":  # token ids and the like: small values stay in any vocabulary
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def timed_feeds(model, data_x, model_path: str, data_path: str | None, rng) -> list:
    """Inputs for warm-up and timed runs: the first data samples when given, else seeded random tensors."""
    if data_x is not None:
        if len(model.inputs) != 1:
            raise RunnerError("data", "%s: has %d inputs; --data feeds single-input models only"
                              % (model_path, len(model.inputs)))
        x = to_model_input(data_x[:TIMED_FEEDS], model.inputs[0], model_path, data_path)
        return [[x[i:i + 1]] for i in range(len(x))]
    per_input = [random_input(spec, rng, model_path) for spec in model.inputs]
    return [[values[i:i + 1] for values in per_input] for i in range(TIMED_FEEDS)]


# ---------------------------------------------------------------- measurement


def rss_bytes(field: str = "VmRSS") -> int | None:
    """A memory figure of this process from /proc/self/status (Linux), or None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int | None:
    """Peak RSS of this process. VmHWM first: getrusage's ru_maxrss survives exec on Linux, so a runner
    started by a large parent (Python with TensorFlow loaded) would report the parent's peak."""
    peak = rss_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def load_models(paths: list, args, data_x, reverse: bool = False) -> list:
    """Load every model (in reverse order if asked), recording init time, first-run time and added RSS;
    returned in the order of `paths`."""
    loaded = {}
    for k in (range(len(paths) - 1, -1, -1) if reverse else range(len(paths))):
        path = paths[k]
        model_format = check_model_file(path)
        rss_before = rss_bytes()
        start = time.perf_counter()
        model = MODEL_CLASSES[model_format](path, args.threads, args.runtime)
        init_ms = (time.perf_counter() - start) * 1e3
        # the same seed for every model: models with equal inputs are timed on equal tensors
        feeds = timed_feeds(model, data_x, path, args.data, np.random.default_rng(args.seed))
        first_ms = _time_one(model, feeds[0])
        rss_after = rss_bytes()
        loaded[k] = {"path": path, "format": model_format, "model": model, "feeds": feeds, "init_ms": init_ms,
                     "first_run_ms": first_ms,
                     "rss_delta_bytes": None if rss_before is None else rss_after - rss_before}
    return [loaded[k] for k in range(len(paths))]


def _time_one(model, feed) -> float:
    start = time.perf_counter_ns()
    model.invoke(feed)
    return (time.perf_counter_ns() - start) / 1e6


def interleaved_runs(loaded: list, min_runs: int, min_secs: float, max_secs: float) -> list:
    """Latency samples (ms) per model, all models run round by round; the order alternates each round
    (A B, B A, ...) so neither model always runs first. Stops when min_runs and min_secs are both met,
    or at max_secs."""
    samples = [[] for _ in loaded]
    order = list(range(len(loaded)))
    start = time.perf_counter()
    rounds = 0
    while True:
        for k in (order if rounds % 2 == 0 else order[::-1]):
            entry = loaded[k]
            samples[k].append(_time_one(entry["model"], entry["feeds"][rounds % len(entry["feeds"])]))
        rounds += 1
        elapsed_s = time.perf_counter() - start
        if elapsed_s >= max_secs or (rounds >= min_runs and elapsed_s >= min_secs):
            return samples


def latency_summary(samples_ms: list) -> dict:
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "min": float(values.min()),
            "max": float(values.max()), "n": int(len(values))}


def speedup_ci(base_segments: list, other_segments: list, seed: int = 0) -> dict:
    """Speedup of `other` over `base` (ratio of median latencies) with a 95% hierarchical bootstrap CI.

    Each segment holds interleaved rounds of freshly loaded models (load order alternating between
    segments, since where a model lands in memory shifts its speed by a fraction of a percent); rounds are
    grouped into blocks of consecutive rounds that keep their (base, other) medians paired. A resample
    draws segments with replacement, then blocks within each, so the CI holds both the noise within a
    run and the spread between loads. Percentile intervals from few segments are too narrow, so the
    interval is widened (in log space, around the estimate) by the small-sample factor
    sqrt(k / (k - 1)) * t(0.975, k - 1) / z(0.975) for k segments.
    """
    total_rounds = sum(min(len(b), len(o)) for b, o in zip(base_segments, other_segments))
    block = max(1, total_rounds // BOOTSTRAP_BLOCKS)
    pairs = [_paired_block_medians(b, o, block) for b, o in zip(base_segments, other_segments)]
    rng = np.random.default_rng(seed)
    ratios = np.empty(BOOTSTRAP_RESAMPLES)
    for r in range(BOOTSTRAP_RESAMPLES):
        drawn = [pairs[j] for j in rng.integers(0, len(pairs), size=len(pairs))]
        resampled = np.concatenate([seg[rng.integers(0, len(seg), size=len(seg))] for seg in drawn])
        ratios[r] = np.median(resampled[:, 0]) / np.median(resampled[:, 1])
    everything = np.concatenate(pairs)
    speedup = float(np.median(everything[:, 0]) / np.median(everything[:, 1]))
    widen = _small_sample_factor(len(pairs))
    low, high = (speedup * (q / speedup) ** widen for q in np.percentile(ratios, [2.5, 97.5]))
    return {"speedup": speedup, "ci95": [float(low), float(high)],
            "statistic": "median(baseline block medians) / median(candidate block medians)",
            "pairs": int(total_rounds), "segments": len(pairs), "block_rounds": int(block),
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES, "small_sample_factor": widen}


def _small_sample_factor(segments: int) -> float:
    if segments < 2:
        return 1.0
    t = T975[segments - 2] if segments - 2 < len(T975) else 1.959964
    return (segments / (segments - 1.0)) ** 0.5 * t / 1.959964


def _paired_block_medians(base_ms: list, other_ms: list, block: int):
    """(blocks, 2) array: medians of `block` consecutive rounds of each model; at least one block."""
    n = min(len(base_ms), len(other_ms))
    block = min(block, n)
    count = n // block
    paired = np.stack([np.asarray(base_ms[:count * block]), np.asarray(other_ms[:count * block])], axis=1)
    return np.median(paired.reshape(count, block, 2), axis=1)


def warm_up(loaded: list, runs: int, secs: float, max_secs: float) -> int:
    """Untimed interleaved runs until both `runs` rounds and `secs` seconds are done; returns the rounds."""
    if runs <= 0 and secs <= 0:
        return 0
    return len(interleaved_runs(loaded, max(runs, 1), secs, max_secs)[0])


def accuracy(entry: dict, x, y, args) -> dict:
    """Top-1 accuracy over the data (batch 1, the first output's argmax), and the raw outputs if asked."""
    model = entry["model"]
    count = len(x) if not args.max_samples else min(len(x), args.max_samples)
    inputs = to_model_input(x[:count], model.inputs[0], entry["path"], args.data)
    outputs = np.concatenate([np.asarray(model.invoke([inputs[i:i + 1]])).reshape(1, -1) for i in range(count)])
    top1 = outputs.argmax(axis=1)
    result = {"n": int(count), "top1": top1.astype(int).tolist()}
    if y is not None:
        result["top1_accuracy"] = float(np.mean(top1 == y[:count]))
    if args.outputs:
        result["outputs"] = outputs.tolist()
        result["output_quantization"] = {"scale": model.output["scale"], "zero_point": model.output["zero_point"],
                                         "dtype": model.output["dtype"]}
    return result


# ---------------------------------------------------------------- report


def system_info() -> dict:
    return {"cpu_model": cpu_model(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "os": platform.platform(), "python": platform.python_version(), "python_executable": sys.executable,
            "numpy": getattr(np, "__version__", None), "hostname": platform.node()}


def cpu_model() -> str:
    """The board or CPU name from /proc/cpuinfo ("Raspberry Pi 4 Model B ... (Cortex-A72)" on a Pi)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    core = ARM_CPU_PARTS.get(fields.get("CPU part", "").lower())
    name = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or fields.get("cpu model")
    name = name or platform.processor() or platform.machine() or "unknown"
    return "%s (%s)" % (name, core) if core and core not in name else name


def alone_peak_rss_bytes(path: str, args) -> int | None:
    """Peak RSS of a fresh runner process that loads only this model and runs it a few times: a per-model
    memory figure that does not depend on the other models in this process. None when no child can start
    (e.g. under qemu-user without binfmt_misc)."""
    import subprocess

    command = [sys.executable, os.path.abspath(__file__), path, "--min-runs", "5", "--min-secs", "0",
               "--warmup-secs", "0", "--segments", "1", "--no-compare", "--alone-memory", "off"]
    command += (["--threads", str(args.threads)] if args.threads else []) + (
        ["--runtime", args.runtime] if args.runtime else [])
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=600)
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])["peak_rss_bytes"]
    except (OSError, ValueError, KeyError, IndexError, subprocess.SubprocessError):
        return None


def model_record(entry: dict, samples_ms: list, data_result: dict | None) -> dict:
    model = entry["model"]
    return {"path": entry["path"], "name": os.path.basename(entry["path"]), "format": entry["format"],
            "size_bytes": os.path.getsize(entry["path"]),
            "runtime": {"name": model.runtime, "version": model.version},
            "inputs": [{k: s[k] for k in ("name", "shape", "dtype")} for s in model.inputs],
            "init_ms": float(np.median(entry["init_ms_all"])), "init_ms_first_load": entry["init_ms"],
            "first_run_ms": entry["first_run_ms"],
            "rss_delta_bytes": entry["rss_delta_bytes"], "peak_rss_alone_bytes": entry["peak_rss_alone_bytes"],
            "runs": len(samples_ms),
            "latency_ms": latency_summary(samples_ms), "samples_ms": [round(s, 5) for s in samples_ms],
            "accuracy": data_result}


def measure_segments(args, data_x) -> tuple:
    """Run the timing in segments of freshly loaded models (one segment for a single model).

    Returns (first segment's loaded models, last segment's loaded models, samples[segment][model], warm-up
    rounds). The budget (min runs, min and max seconds) is shared out evenly between segments.
    """
    segments = args.segments if len(args.models) > 1 else 1
    share = 1.0 / segments
    first = last = None
    samples, warmup_rounds = [], 0
    for j in range(segments):
        last = load_models(args.models, args, data_x, reverse=j % 2 == 1)
        first = first or last
        for kept, fresh in zip(first, last):  # every load's init time, for a median less bent by first-use costs
            kept.setdefault("init_ms_all", []).append(fresh["init_ms"])
        warmup_rounds += warm_up(last, args.warmup_runs, args.warmup_secs * share, args.max_secs * share)
        samples.append(interleaved_runs(last, -(-args.min_runs // segments), args.min_secs * share,
                                        args.max_secs * share))
    return first, last, samples, warmup_rounds


def prime_runtimes(paths: list, args) -> None:
    """Import each format's runtime and run a tiny embedded model once, so the library's load and one-time
    setup (thread pools, XNNPACK) are not charged to the first real model's init time and RSS."""
    import base64

    for model_format in sorted({check_model_file(path) for path in paths}):
        if model_format == "tflite":
            interpreter = find_tflite_runtime(args.runtime)[2](model_content=base64.b64decode(PRIMER_TFLITE),
                                                               num_threads=args.threads)
            interpreter.allocate_tensors()
            interpreter.invoke()
        else:
            ort = find_onnx_runtime()[2]
            options = ort.SessionOptions()
            if args.threads:
                options.intra_op_num_threads = args.threads
            ort.InferenceSession(base64.b64decode(PRIMER_ONNX), options, providers=["CPUExecutionProvider"]).run(
                None, {"x": np.zeros((1, 4), np.float32)})


def benchmark(args) -> dict:
    """Everything the runner measures, as the JSON-ready dict it prints."""
    data_x, data_y = load_data(args.data) if args.data else (None, None)
    prime_runtimes(args.models, args)
    wall_start = time.perf_counter()
    first, last, samples, warmup_rounds = measure_segments(args, data_x)
    data_results = [accuracy(e, data_x, data_y, args) if data_x is not None else None for e in last]
    alone = len(first) > 1 and args.alone_memory == "on"
    for entry in first:
        entry["peak_rss_alone_bytes"] = alone_peak_rss_bytes(entry["path"], args) if alone else None
    per_model = [[s for segment in samples for s in segment[k]] for k in range(len(first))]
    comparisons = [dict(speedup_ci([seg[0] for seg in samples], [seg[k] for seg in samples], args.seed),
                        baseline=0, candidate=k) for k in range(1, len(first) if args.compare else 1)]
    return {"schema": SCHEMA, "system": system_info(), "threads": args.threads,
            "settings": {"min_runs": args.min_runs, "min_secs": args.min_secs, "max_secs": args.max_secs,
                         "warmup_runs": args.warmup_runs, "warmup_secs": args.warmup_secs,
                         "warmup_rounds_done": warmup_rounds, "segments": len(samples),
                         "interleaved": len(first) > 1, "batch": 1, "seed": args.seed,
                         "data": os.path.basename(args.data) if args.data else None},
            "models": [model_record(e, s, d) for e, s, d in zip(first, per_model, data_results)],
            "comparisons": comparisons, "peak_rss_bytes": peak_rss_bytes(),
            "wall_s": time.perf_counter() - wall_start}


def parse_args(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="runner.py", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=".tflite or .onnx files; two or more are run interleaved")
    parser.add_argument("--data", help=".npz with x (inputs) and optional y (integer labels)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: runtime's)")
    parser.add_argument("--min-runs", type=int, default=50)
    parser.add_argument("--min-secs", type=float, default=1.0)
    parser.add_argument("--max-secs", type=float, default=60.0)
    parser.add_argument("--warmup-runs", type=int, default=1)
    parser.add_argument("--warmup-secs", type=float, default=0.5)
    parser.add_argument("--max-samples", type=int, default=None, help="accuracy over at most N data samples")
    parser.add_argument("--outputs", action="store_true", help="include every sample's raw first output")
    parser.add_argument("--runtime", choices=[entry[0] for entry in TFLITE_RUNTIMES], default=None,
                        help="force one TFLite runtime instead of the first importable")
    parser.add_argument("--segments", type=int, default=6,
                        help="with several models: reload them this many times, alternating load order")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip the paired speedups (e.g. for latency tables of many blocks)")
    parser.add_argument("--alone-memory", choices=["on", "off"], default="on",
                        help="with several models, also measure each one's peak RSS in a process of its own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", action="store_true", help="print system facts and runtimes, load no model")
    return parser.parse_args(argv)


def fail(kind: str, message: str) -> int:
    print(json.dumps({"schema": SCHEMA, "error": {"kind": kind, "message": message}}))
    print("runner: error: %s" % message, file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    if np is None:
        return fail("runtime", "numpy is not importable by %s: pip install numpy (or apt install python3-numpy)"
                    % sys.executable)
    if not args.probe and not args.models:
        return fail("usage", "give at least one .tflite or .onnx model")
    if args.min_runs < 1 or args.min_secs < 0 or args.max_secs <= 0 or args.segments < 1:
        return fail("usage", "--min-runs and --segments must be >= 1, --min-secs >= 0 and --max-secs > 0")
    try:
        result = probe() if args.probe else benchmark(args)
    except RunnerError as error:
        return fail(error.kind, str(error))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
