"""Targets by name and benchmarking model files on them: what `edgecompress.bench` re-exports."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from edgecompress.bench import targets
from edgecompress.bench.adb import AdbTarget
from edgecompress.bench.base import Target
from edgecompress.bench.local import HostTarget
from edgecompress.bench.qemu import QemuTarget
from edgecompress.bench.result import BenchResult
from edgecompress.bench.settings import BenchSettings
from edgecompress.bench.ssh import SshTarget
from edgecompress.errors import ModelLoadError

KINDS: dict[str, type[Target]] = {cls.KIND: cls for cls in (HostTarget, SshTarget, AdbTarget, QemuTarget)}
MODEL_SUFFIXES = (".tflite", ".onnx")


def get_target(spec: str | os.PathLike | Target = "host") -> Target:
    """A Target from a name in targets/ (or ~/.config/edgecompress/targets), a .toml path, or a Target."""
    if isinstance(spec, Target):
        return spec
    config = targets.load_config(targets.resolve(str(spec)), {kind: cls.FIELDS for kind, cls in KINDS.items()})
    return KINDS[config.kind](config)


def list_targets() -> list[Target]:
    """Every discovered target (a bad file raises its TargetError), the built-in host first if none is named so."""
    found = {name: get_target(str(path)) for name, path in targets.discover().items()}
    host = found.pop("host", None) or get_target("host")
    return [host] + [found[name] for name in sorted(found)]


def run(paths: str | os.PathLike | Sequence[str | os.PathLike], target: str | os.PathLike | Target = "host",
        data: str | os.PathLike | None = None, settings: BenchSettings | None = None) -> BenchResult:
    """Benchmark one or more model files on a target; with several, they are interleaved and compared.

    Raises:
        ModelLoadError: a model file is missing, empty, of another type, or the target's runtime rejects it.
        DataError: the data file is unreadable or its samples do not fit a model's input.
        TargetError: the target is unknown, misconfigured, unreachable or lacks python/numpy/an interpreter.
    """
    from edgecompress.io import load_npz

    models = [check_model_path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not models:
        raise ModelLoadError("no model given; give one or more .tflite or .onnx files")
    if data is not None:
        load_npz(data)  # a clear DataError before anything is copied anywhere
    chosen = get_target(target)
    raw = chosen.benchmark(models, Path(data) if data is not None else None, settings or BenchSettings())
    return BenchResult.from_runner(raw, chosen.describe())


def check_model_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file; give a .tflite or .onnx file")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(f"{path}: cannot benchmark a {path.suffix or 'suffix-less'} file; export it first "
                             f"(edgecompress export MODEL --to tflite) and give the .tflite or .onnx")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty; export the model again")
    return path


__all__ = ["BenchResult", "BenchSettings", "KINDS", "Target", "get_target", "list_targets", "run"]
