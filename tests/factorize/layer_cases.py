"""Small layers of every kind each method claims, in every stride/padding/dilation variant allowed."""
from __future__ import annotations

import itertools

import keras

from edgecompress.factorize import registry

CONV_CLASSES = {"conv1d": keras.layers.Conv1D, "conv2d": keras.layers.Conv2D, "conv3d": keras.layers.Conv3D}
KERNELS = {"conv1d": (3,), "conv2d": (3, 2), "conv3d": (3, 2, 3)}
SPATIAL = {"conv1d": (11,), "conv2d": (9, 8), "conv3d": (7, 6, 7)}
MATRIX_METHODS = {name for name, method in registry().items() if method.pointwise_only}


def strides_for(kind: str) -> tuple:
    """1, 2, and an unequal stride (2 on the first spatial axis only) where the kind has two or more axes."""
    ndim = len(KERNELS[kind])
    return (1, 2) + (((2,) + (1,) * (ndim - 1),) if ndim > 1 else ())


def conv_variants(kind: str, pointwise: bool):
    """(stride, padding, dilation) combos; TF forbids stride > 1 with dilation > 1, and 1x1 has no dilation."""
    dilations = (1,) if pointwise else (1, 2)
    for stride, padding, dilation in itertools.product(strides_for(kind), ("same", "valid"), dilations):
        if max(stride if isinstance(stride, tuple) else (stride,)) > 1 and dilation > 1:
            continue
        yield stride, padding, dilation


def make_layer(method: str, kind: str, stride=1, padding="same", dilation=1, cin=4, cout=6,
               activation="relu", use_bias=True):
    """A layer of `kind` that `method` applies to (1x1 convs for the matrix methods) and its input shape."""
    if kind == "dense":
        return keras.layers.Dense(cout, activation=activation, use_bias=use_bias), (cin * 2,)
    pointwise = method in MATRIX_METHODS
    kernel = (1,) * len(KERNELS[kind]) if pointwise else KERNELS[kind]
    layer = CONV_CLASSES[kind](cout, kernel, strides=stride, padding=padding, dilation_rate=dilation,
                               activation=activation, use_bias=use_bias)
    return layer, SPATIAL[kind] + (cin,)


def variant_cases(pairs):
    """pytest params: (method, kind, stride, padding, dilation) over every pair and allowed variant."""
    cases = []
    for method, kind in pairs:
        if kind == "dense":
            cases.append((method, kind, 1, "valid", 1))
            continue
        for stride, padding, dilation in conv_variants(kind, pointwise=method in MATRIX_METHODS):
            cases.append((method, kind, stride, padding, dilation))
    return cases
