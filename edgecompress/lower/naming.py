"""Trace lowered layer names, and TF/TFLite/ONNX op names, back to the layer of the user's model they came from.

Factorized blocks are named f"{original}_{method}_{i}"; layers a lowering pass adds are named f"{source}__{tag}".
"""
from __future__ import annotations

import re
from typing import Iterable

PASS_TAG_SEPARATOR = "__"
_BLOCK_NAME = re.compile(r"^(?P<original>.+)_(?P<method>[A-Za-z0-9]+)_(?P<index>\d+)$")
_SCOPE_SUFFIX = re.compile(r"_\d+$")


def pass_layer_name(source: str, tag: str) -> str:
    """Name of a layer a lowering pass adds on behalf of `source` (e.g. a reshape before it)."""
    return f"{source}{PASS_TAG_SEPARATOR}{tag}"


def method_names() -> frozenset[str]:
    from edgecompress.factorize import available

    return frozenset(available())


def block_original(layer_name: str) -> str | None:
    """The original layer a factor layer was cut from, or None when the name is not a block factor's."""
    match = _BLOCK_NAME.match(layer_name.split(PASS_TAG_SEPARATOR, 1)[0])
    if match and match["method"] in method_names():
        return match["original"]
    return None


def original_name(layer_name: str) -> str:
    """The user's layer a (possibly lowered or factorized) layer stands for."""
    base = layer_name.split(PASS_TAG_SEPARATOR, 1)[0]
    return block_original(base) or base


def layer_in_op_name(op_name: str, layer_names: Iterable[str]) -> str | None:
    """The layer whose name scope appears in a TF-derived op/tensor name, e.g. 'functional_1/c1_cp_0_1/convolution'.

    Keras adds '_N' to a scope when it reuses a name, so a scope matches a layer exactly or after dropping one '_N'.
    ';'-joined fused names are tried in order; the first segment naming a layer wins.
    """
    known = set(layer_names)
    for piece in op_name.split(";"):
        for segment in piece.split("/"):
            if segment in known:
                return segment
            stripped = _SCOPE_SUFFIX.sub("", segment)
            if stripped in known:
                return stripped
    return None
