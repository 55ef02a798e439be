"""Factorization methods, one module each, found through a registry.

Importing this package imports every module in it, so a method registered with `@register("name")` in a
new file is available (and tested) with no other edit.
"""
from __future__ import annotations

import importlib
import pkgutil

import numpy as np

from edgecompress.factorize.base import Cost, Factors, Method, check_finite, get, register, registry
from edgecompress.factorize.ranks import Rank, parse_rank_text, resolve_rank
from edgecompress.graph.layers import LayerInfo

_SUPPORT_MODULES = {"base", "blocks", "datafit", "layers", "matrix", "ranks"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SUPPORT_MODULES:
        importlib.import_module(f"{__name__}.{_module.name}")


def available() -> list[str]:
    """Names of the registered methods, in registration order."""
    return list(registry())


def applicable(layer: LayerInfo) -> dict[str, str | None]:
    """Every method's verdict for a layer: None when it applies, else the reason it does not."""
    return {name: method.why_not(layer) for name, method in registry().items()}


def applicable_pairs() -> list[tuple[str, str]]:
    """(method, kind) for every kind each method claims: what the tests are parametrized over."""
    return [(name, kind) for name, method in registry().items() for kind in sorted(method.kinds)]


def factorize(layer: LayerInfo, kernel: np.ndarray, bias: np.ndarray | None, method: str, rank: Rank) -> list:
    """Decompose a layer's weights and build the replacement block (built Keras layers, in call order).

    Raises:
        UnsupportedLayerError: the method does not apply to this layer, or the weights are not finite.
        InvalidRankError: the rank is outside the method's valid range for this layer.
    """
    from edgecompress.errors import UnsupportedLayerError

    chosen = get(method)
    reason = chosen.why_not(layer)
    if reason:
        raise UnsupportedLayerError(f"layer {layer.name!r}: {method} does not apply: {reason}")
    chosen.resolve(layer, rank)
    check_finite(layer, [kernel, bias])
    return chosen.build(layer, chosen.decompose(layer, kernel, bias, rank))


__all__ = ["Cost", "Factors", "Method", "Rank", "applicable", "applicable_pairs", "available", "factorize",
           "get", "parse_rank_text", "register", "registry", "resolve_rank"]
