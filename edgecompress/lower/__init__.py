"""Lowering: fusion passes over the Keras graph, TFLite/ONNX export, and an audit of what came out and how it runs.

    export(model, "m.tflite", to="tflite", precision="fp32" | "fp16" | "dynamic" | "int8", data=CALIB) -> Artifact
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from edgecompress.errors import DataError, ExportError
from edgecompress.io import atomic_path
from edgecompress.lower.passes import PassResult, run_passes
from edgecompress.progress import Progress, one_step

FORMATS = ("tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
PARITY_SAMPLES = 500
RANDOM_SAMPLES = 8
AUDIT_VERSION = 1


@dataclass
class Artifact:
    """An exported file, its audit file, and the audit itself (see edgecompress.lower.audit)."""

    path: Path
    audit_path: Path
    format: str
    precision: str
    size_bytes: int
    audit: dict = field(repr=False, default_factory=dict)


def lower(model: keras.Model, to: str = "tflite",
          int8_calibration: np.ndarray | None = None) -> tuple[keras.Model, list[dict]]:
    """The Keras model each converter reads, after that format's passes, and one record per pass. Given
    int8 calibration inputs, the factorized blocks' channels are also equalized for per-tensor int8 scales."""
    from edgecompress.lower.pipeline import PASSES

    lowered, records = run_passes(model, PASSES[to])
    if int8_calibration is None:
        return lowered, records
    from edgecompress.lower.equalize import equalize_pass

    result = equalize_pass(lowered, int8_calibration)
    return result.model, records + [result.record("equalize_pass")]


def convert(lowered: keras.Model, to: str, precision: str, calibration: np.ndarray | None) -> bytes:
    if to == "tflite":
        from edgecompress.lower import tflite

        return tflite.convert(lowered, precision, calibration)
    from edgecompress.lower import onnx

    return onnx.convert(lowered, precision)


def export(model, path, to: str | None = None, precision: str = "fp32", data=None,
           parity_samples: int = PARITY_SAMPLES, progress: Progress | None = None, preprocess: str = "none",
           feature_spec: str | None = None, layer_costs: Callable[[keras.Model], dict] | None = None) -> Artifact:
    """Lower, convert, audit on the real runtime, then write FILE and FILE.audit.json (both or neither).

    Args:
        model: a keras.Model, or the path of a .keras/.h5 file.
        to: "tflite" or "onnx"; default from the file suffix.
        data: calibration for int8 and parity/top-1 data: inputs `x`, a tuple (x, y), an .npz path, a folder with
            one sub-folder of images per class, TFRecords, a tf.data.Dataset or a DataSource (edgecompress.sources).
        progress: called as (stage, done, total) after each of lower, convert, audit (edgecompress.progress).
        preprocess, feature_spec: how `data` becomes model inputs (see edgecompress.sources.open_source).
        layer_costs: called with the model; its result is the audit's "layer_costs" (edgecompress.bench.layercosts,
            which lower cannot import: bench builds on lower).
    """
    from edgecompress import models
    from edgecompress.graph.rebuild import normalize
    from edgecompress.sources import check_preprocess

    path = Path(path)
    to = check_choices(path, to, precision, data)
    check_preprocess(preprocess)
    check_writable(path)
    model = models.load(model) if isinstance(model, (str, os.PathLike)) else normalize(model)
    x, y = load_data(data, model, preprocess, feature_spec, parity_samples)
    with one_step(progress, "lower"):
        lowered, records = lower(model, to, x if precision == "int8" else None)
    with one_step(progress, f"convert to {to} {precision}"):
        content = convert(lowered, to, precision, x)
    with one_step(progress, "audit on the runtime"):
        audit = build_audit(model, lowered, records, content, to, precision, x, y, parity_samples)
    if layer_costs is not None:
        with one_step(progress, "time each layer alone"):
            audit["layer_costs"] = layer_costs(model)
    audit["file"], audit["size_bytes"] = path.name, len(content)
    audit_path = path.with_name(path.name + ".audit.json")
    write_outputs(path, content, audit_path, audit)
    return Artifact(path, audit_path, to, precision, len(content), audit)


def check_choices(path: Path, to: str | None, precision: str, data) -> str:
    to = to or {".tflite": "tflite", ".onnx": "onnx"}.get(path.suffix.lower())
    if to not in FORMATS:
        raise ExportError(f"{path}: say --to tflite or --to onnx (or name the file .tflite / .onnx)")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if to == "onnx":
        from edgecompress.lower.onnx import check_precision

        check_precision(precision)  # before any work
    if precision == "int8" and data is None:
        raise ExportError("--precision int8 needs --data CALIB.npz or an image folder (a few hundred representative "
                          "inputs to calibrate activation ranges); or use --precision dynamic, which needs none")
    return to


def check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ExportError(f"{path}: is a directory; give a file name such as {path / 'model.tflite'}")
    if not parent.is_dir():
        raise ExportError(f"{path}: directory {parent} does not exist; create it or choose another -o path")
    if not os.access(parent, os.W_OK):
        raise ExportError(f"{path}: directory {parent} is not writable; choose another -o path")


def load_data(data, model: keras.Model, preprocess: str = "none", feature_spec: str | None = None,
              parity_samples: int = PARITY_SAMPLES) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(x as the model's input dtype, y or None) from anything edgecompress.sources.open_source reads, checked
    against the model; of a folder, TFRecords or a dataset only the samples calibration and parity use."""
    from edgecompress.lower.tflite import CALIBRATION_SAMPLES
    from edgecompress.sources import open_source

    if data is None:
        return None, None
    source = open_source(data, model=model, preprocess=preprocess, feature_spec=feature_spec)
    x, y = source.arrays(None if source.in_memory else max(parity_samples, CALIBRATION_SAMPLES))
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(np.shape(x)[1:]) != expected:
        where = source.path or "data"
        raise DataError(f"{where}: inputs have shape {tuple(np.shape(x)[1:])} per sample but model {model.name!r} "
                        f"takes {expected}; give data shaped like the model's input")
    return np.asarray(x).astype(model.inputs[0].dtype), (None if y is None else np.asarray(y))


def parity_inputs(model: keras.Model, x: np.ndarray | None, samples: int) -> tuple[np.ndarray, str]:
    if x is not None:
        return x[:samples], "given"
    shape = (RANDOM_SAMPLES,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(0).standard_normal(shape).astype(model.inputs[0].dtype), "random normal"


def build_audit(model, lowered, records, content, to, precision, x, y, samples) -> dict:
    from edgecompress.lower import audit as audit_module
    from edgecompress.lower.runtime import RUNNERS, RUNTIMES

    names = [layer.name for layer in lowered.layers]
    op_records = audit_module.OP_READERS[to](content, names)
    inputs, source = parity_inputs(model, x, samples)
    reference = model.predict(inputs, batch_size=64, verbose=0)
    reference = np.asarray(reference[0] if isinstance(reference, (list, tuple, dict)) else reference)
    measured = RUNNERS[to](content, inputs)
    runtime_name, runtime_version = RUNTIMES[to]()
    return {"version": AUDIT_VERSION, "format": to, "precision": precision, "model": model.name,
            "runtime": {"name": runtime_name, "version": runtime_version},
            "params": int(model.count_params()), "params_lowered": int(lowered.count_params()),
            **audit_module.summarize(op_records), "passes": records,
            "parity": audit_module.parity(reference, measured, y, source)}


def write_outputs(path: Path, content: bytes, audit_path: Path, audit: dict) -> None:
    try:
        with atomic_path(path) as tmp_model, atomic_path(audit_path) as tmp_audit:
            tmp_model.write_bytes(content)
            tmp_audit.write_text(json.dumps(audit, indent=2) + "\n")
    except OSError as error:
        raise ExportError(f"{path}: cannot write ({error.strerror or error}); choose another -o path") from None


__all__ = ["Artifact", "FORMATS", "PRECISIONS", "PassResult", "export", "lower"]
