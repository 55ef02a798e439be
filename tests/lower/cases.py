"""One-block models for every (method, kind) and the builtin op chain each must lower to."""
from __future__ import annotations

import keras
import numpy as np

from edgecompress.factorize import registry
from edgecompress.graph.surgery import compress_model

CONV_CLASSES = {"conv1d": keras.layers.Conv1D, "conv2d": keras.layers.Conv2D, "conv3d": keras.layers.Conv3D}
INPUT_SHAPES = {"dense": (64,), "conv1d": (16, 32), "conv2d": (8, 8, 32), "conv3d": (4, 6, 6, 16)}
MATRIX_METHODS = {name for name, method in registry().items() if method.pointwise_only}
# Rank 4 per mode keeps every block well below its layer, so the merge pass leaves the factors as built.
BLOCK_RANK = 4
TARGET = "target"

C, DW, FC, R, T = "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "TRANSPOSE"
_TTM_FLAT = [R, T, FC, R, T, R, FC, R, T, R, FC, R, "ADD"]
_TTM_MAP = [R, T, R, T, FC, R, T, R, FC, R, T, R, FC, R, "ADD"]
EXPECTED_TFLITE = {
    ("tucker", "conv1d"): [R, C, C, C, R],
    ("tucker", "conv2d"): [C, C, C],
    ("tucker", "conv3d"): [R, C, R, "CONV_3D", R, C, R],  # the k x k x k core has no 2-D form
    ("cp", "conv1d"): [R, C, DW, C, R],
    ("cp", "conv2d"): [C, DW, DW, C],
    ("cp", "conv3d"): [R, C, DW, R, DW, DW, C, R],
    ("tt", "conv1d"): [R, C, C, C, R],
    ("tt", "conv2d"): [C, C, C, C],
    ("tt", "conv3d"): [R, C, C, R, C, C, C, R],
    **{(method, "dense"): [FC, FC] for method in ("svd", "qr")},
    **{(method, "conv1d"): [R, C, C, R] for method in ("svd", "qr")},
    **{(method, "conv2d"): [C, C] for method in ("svd", "qr")},
    **{(method, "conv3d"): [R, C, C, R] for method in ("svd", "qr")},
    # TT-matrix: one FC per core and the transposes between them (the minimum for FC cores, measured); its
    # bias varies along every output mode, so it cannot ride on the last FC: ADD carries bias and ReLU.
    ("ttm", "dense"): _TTM_FLAT,
    **{("ttm", kind): _TTM_MAP for kind in ("conv1d", "conv2d", "conv3d")},
}


def original_model(method: str, kind: str) -> keras.Model:
    """Input -> one layer named 'target' (ReLU, random bias), pointwise for the matrix methods."""
    inputs = keras.Input(INPUT_SHAPES[kind])
    if kind == "dense":
        layer = keras.layers.Dense(32, activation="relu", name=TARGET)
    else:
        kernel = 1 if method in MATRIX_METHODS else 3
        layer = CONV_CLASSES[kind](32, kernel, padding="same", activation="relu", name=TARGET)
    model = keras.Model(inputs, layer(inputs))
    layer.bias.assign(np.random.default_rng(1).uniform(-0.5, 0.5, layer.bias.shape).astype(np.float32))
    return model


def block_model(method: str, kind: str) -> keras.Model:
    return compress_model(original_model(method, kind), {TARGET: (method, BLOCK_RANK)})


def sample_inputs(model: keras.Model, count: int = 8) -> np.ndarray:
    shape = (count,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(2).standard_normal(shape).astype(np.float32)
