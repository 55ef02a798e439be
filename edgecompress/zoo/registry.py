"""The zoo's registry: models register a builder with `@register(name, view=..., kinds=...)`, found by name.

Knows nothing about any one architecture; each lives in its own module and registers itself on import.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgecompress.data import VIEW_SHAPES
from edgecompress.errors import DataError, ModelLoadError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

Builder = Callable[[tuple, int], "keras.Model"]  # noqa: F821  (keras is imported lazily by the builders)


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: its builder, the data view it reads, and the candidate layer kinds it contains."""

    name: str
    builder: Builder
    view: str
    kinds: frozenset[str]


_REGISTRY: dict[str, ZooEntry] = {}


def register(name: str, view: str = "image", kinds: tuple[str, ...] = ("conv2d", "dense")):
    """Decorator: add `builder(input_shape, num_classes) -> keras.Model` to the zoo under `name`."""
    if view not in VIEW_SHAPES:
        raise ValueError(f"zoo model {name!r}: unknown view {view!r}; use one of {', '.join(VIEW_SHAPES)}")

    def _add(builder: Builder) -> Builder:
        _REGISTRY[name] = ZooEntry(name, builder, view, frozenset(kinds))
        return builder

    return _add


def available() -> list[str]:
    """Names of the registered models, in registration order."""
    return list(_REGISTRY)


def entry(name: str) -> ZooEntry:
    if name not in _REGISTRY:
        raise ModelLoadError(f"unknown zoo model {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def dataset_for(name: str) -> str:
    """The view of Fashion-MNIST the model reads: 'image', 'seq1d' or 'clip3d' (see edgecompress.data)."""
    return entry(name).view


def build(name: str, input_shape: tuple[int, ...] | None = None, num_classes: int = 10):
    """A freshly initialised zoo model (Keras 3, channels-last, outputs logits).

    Raises:
        ModelLoadError: no model of that name.
        DataError: `input_shape` has the wrong rank for the model's view.
    """
    chosen = entry(name)
    default_shape = VIEW_SHAPES[chosen.view]
    input_shape = tuple(input_shape) if input_shape is not None else default_shape
    if len(input_shape) != len(default_shape):
        raise DataError(f"zoo model {name!r} reads the {chosen.view!r} view, shaped like {default_shape}; "
                        f"got input_shape {input_shape}")
    if num_classes < 2:
        raise DataError(f"zoo model {name!r}: num_classes must be >= 2, got {num_classes}")
    return chosen.builder(input_shape, num_classes)


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{entry(name).name}.keras"


def shipped() -> list[str]:
    """Zoo models whose trained weights ship with the package."""
    return [name for name in _REGISTRY if weights_path(name).is_file()]


def pretrained(name: str):
    """The shipped trained model edgecompress/zoo/weights/NAME.keras (Fashion-MNIST, by bench/train_zoo.py)."""
    from edgecompress.io import load_model

    path = weights_path(name)
    if not path.is_file():
        raise ModelLoadError(f"zoo model {name!r} has no shipped weights ({path} missing; shipped: "
                             f"{', '.join(shipped()) or 'none'}); train them with "
                             f"python bench/train_zoo.py --models {name} --ship")
    return load_model(path)
