"""Targets by name and benchmarking model files on them: what `edgecompress.bench` re-exports."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

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
SOURCE_SAMPLES = 500  # samples of a folder/TFRecord source shipped to the target when max_samples is not set


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
        data=None, settings: BenchSettings | None = None, preprocess: str = "none",
        feature_spec: str | None = None) -> BenchResult:
    """Benchmark one or more model files on a target; with several, they are interleaved and compared.

    `data` is an .npz, shipped as is; or a folder of class sub-folders, TFRecords or anything else
    edgecompress.sources.open_source reads (with `preprocess`, `feature_spec`), of which the first
    `settings.max_samples` (default SOURCE_SAMPLES) samples are shipped as an .npz, as a result note says.

    Raises:
        ModelLoadError: a model file is missing, empty, of another type, or the target's runtime rejects it.
        DataError: the data is unreadable or its samples do not fit a model's input.
        TargetError: the target is unknown, misconfigured, unreachable or lacks python/numpy/an interpreter.
    """
    from edgecompress.sources import check_preprocess

    models = [check_model_path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not models:
        raise ModelLoadError("no model given; give one or more .tflite or .onnx files")
    settings = settings or BenchSettings()
    check_preprocess(preprocess)
    with tempfile.TemporaryDirectory(prefix="edgecompress-bench-") as scratch:
        data_path, notes = data_file(data, models[0], preprocess, feature_spec, settings, Path(scratch))
        chosen = get_target(target)
        raw = chosen.benchmark(models, data_path, settings)
    result = BenchResult.from_runner(raw, chosen.describe())
    result.notes += notes
    return result


def data_file(data, model: Path, preprocess: str, feature_spec: str | None, settings: BenchSettings,
              scratch: Path) -> tuple[Path | None, list[str]]:
    """The .npz to ship (checked before anything is copied anywhere) and a note saying what it holds, if made."""
    from edgecompress.io import load_npz

    if data is None:
        return None, []
    if is_plain_npz(data, preprocess):
        load_npz(data)
        return Path(data), []
    from edgecompress.data import save_npz
    from edgecompress.sources import open_source

    source = open_source(data, input_shape=model_input_shape(model), preprocess=preprocess,
                         feature_spec=feature_spec)
    x, y = source.arrays(settings.max_samples or SOURCE_SAMPLES)
    path = save_npz(scratch / "data.npz", compact(x), y)
    return path, [f"data: the first {len(x)} samples of {source.description}, sent to the target as an .npz"]


def is_plain_npz(data, preprocess: str) -> bool:
    return isinstance(data, (str, os.PathLike)) and Path(data).suffix.lower() == ".npz" and preprocess == "none"


def model_input_shape(model: Path) -> tuple[int, ...] | None:
    """The per-sample input shape of a .tflite/.onnx file read on this machine, or None where it cannot be."""
    from edgecompress.lower.runtime import quiet_native_logs
    from edgecompress.ondevice.runner import MODEL_CLASSES, RunnerError, check_model_file

    try:
        with quiet_native_logs():
            shape = MODEL_CLASSES[check_model_file(str(model))](str(model), 1, None).inputs[0]["shape"][1:]
    except RunnerError:
        return None  # the target's runtime will say what is wrong; the images then keep their own size
    return None if any(d < 0 for d in shape) else tuple(shape)


def compact(x: np.ndarray) -> np.ndarray:
    """x as uint8 where that loses nothing (undecoded pixel values), a quarter of the bytes to copy."""
    if x.dtype != np.uint8 and x.size and np.all((x >= 0) & (x <= 255) & (x == np.round(x))):
        return x.astype(np.uint8)
    return x


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
