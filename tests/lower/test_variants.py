"""Conv blocks at every stride/padding/dilation export with parity on LiteRT and ONNX Runtime (1e-4 x max|y|).

Strided CP blocks once failed on TensorFlow's default CPU kernels (unequal depthwise strides); run the suite with
TF_ENABLE_ONEDNN_OPTS=0, as tests/run.sh does, so no CPU hides that. The default run exports the variants that
exercise strides and dilation; the full product is marked slow.
"""
import keras
import numpy as np
import pytest

from edgecompress.factorize import applicable_pairs
from edgecompress.graph.surgery import compress_model
from edgecompress.lower import export
from tests.factorize.layer_cases import CONV_CLASSES, KERNELS, MATRIX_METHODS, SPATIAL, conv_variants

TOLERANCE = 1e-4
CONV_PAIRS = [(m, k) for m, k in applicable_pairs() if k != "dense" and m not in MATRIX_METHODS]
FAST_VARIANTS = {(2, "same", 1), ((2, 1), "valid", 1), ((2, 1, 1), "valid", 1), (1, "valid", 2)}


def _cases():
    for method, kind in CONV_PAIRS:
        for variant in conv_variants(kind, pointwise=False):
            marks = () if variant in FAST_VARIANTS else (pytest.mark.slow,)
            yield pytest.param(method, kind, *variant, marks=marks, id=f"{method}-{kind}-{variant}")


def variant_block(method, kind, stride, padding, dilation) -> keras.Model:
    inputs = keras.Input(SPATIAL[kind] + (16,))
    layer = CONV_CLASSES[kind](24, KERNELS[kind], strides=stride, padding=padding, dilation_rate=dilation,
                               activation="relu", name="target")
    model = keras.Model(inputs, layer(inputs))
    layer.bias.assign(np.random.default_rng(1).uniform(-0.5, 0.5, 24).astype(np.float32))
    return compress_model(model, {"target": (method, 4)})


@pytest.mark.parametrize("method, kind, stride, padding, dilation", list(_cases()))
@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_strided_and_dilated_blocks_export_with_parity(method, kind, stride, padding, dilation, to, tmp_path):
    model = variant_block(method, kind, stride, padding, dilation)
    x = np.random.default_rng(2).standard_normal((4,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
    artifact = export(model, tmp_path / f"block.{to}", to=to, data=x)
    parity = artifact.audit["parity"]
    assert artifact.audit["builtin_only"]
    assert parity["max_abs_reference"] > 0
    assert parity["max_abs_diff"] <= TOLERANCE * parity["max_abs_reference"]
