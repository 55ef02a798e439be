"""Similarity metrics between a layer's captured output Y and a candidate block's output Ŷ, in a registry.

Both arrays are (samples, channels); every metric returns 1.0 for identical outputs and less the further
apart they are. Add one with `@metric("name")`; `get_metric(name)` finds it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgecompress.errors import ConfigError

Metric = Callable[[np.ndarray, np.ndarray], float]

# Chosen by measurement, bench/results/similarity_vs_accuracy.md: over 32 random configurations of LeNet-5 and
# VGG, the layers' mean cosine ranks fine-tuned top-1 best (Spearman 0.87; CKA 0.85, 1-NMSE 0.74).
DEFAULT_METRIC = "cosine"

_METRICS: dict[str, Metric] = {}


def metric(name: str) -> Callable[[Metric], Metric]:
    """Function decorator: `@metric("cka")` makes the metric available under that name."""

    def decorate(function: Metric) -> Metric:
        _METRICS[name] = function
        return function

    return decorate


def metrics() -> dict[str, Metric]:
    return dict(_METRICS)


def get_metric(name: str) -> Metric:
    if name not in _METRICS:
        raise ConfigError(f"unknown similarity metric {name!r}; available: {', '.join(sorted(_METRICS))}")
    return _METRICS[name]


def _as_float64(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    return y_true, y_pred


@metric("cosine")
def cosine(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Cosine of the angle between the two outputs, each flattened to one vector."""
    y_true, y_pred = _as_float64(y_true, y_pred)
    norms = np.linalg.norm(y_true) * np.linalg.norm(y_pred)
    if norms == 0.0:
        return 1.0 if not y_true.any() and not y_pred.any() else 0.0
    return float(np.vdot(y_true, y_pred) / norms)


@metric("nmse")
def one_minus_nmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """1 - ||Y - Ŷ||² / ||Y||²: can go below 0 for a block worse than predicting zeros."""
    y_true, y_pred = _as_float64(y_true, y_pred)
    energy = float(np.sum(y_true ** 2))
    error = float(np.sum((y_true - y_pred) ** 2))
    if energy == 0.0:
        return 1.0 if error == 0.0 else 0.0
    return 1.0 - error / energy


@metric("cka")
def linear_cka(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) over samples, in the feature-space form (cheap when samples >> channels)."""
    y_true, y_pred = _as_float64(y_true, y_pred)
    y_true = y_true - y_true.mean(axis=0)
    y_pred = y_pred - y_pred.mean(axis=0)
    cross = np.linalg.norm(y_true.T @ y_pred) ** 2
    norms = np.linalg.norm(y_true.T @ y_true) * np.linalg.norm(y_pred.T @ y_pred)
    if norms == 0.0:
        return 1.0 if cross == 0.0 and not y_true.any() and not y_pred.any() else 0.0
    return float(cross / norms)
