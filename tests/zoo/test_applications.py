"""Small-input versions of the real architectures (keras.applications, random weights) compress, export with
parity on LiteRT and ONNX Runtime, and round-trip through .keras. The 224x224 runs, with each application's own
classifier, are bench/real_architectures.py; here a pooled Dense head keeps VGG16's 4096-wide top out of the run.

The default run takes the three light architectures (MobileNetV2, MobileNetV3-Small, EfficientNet-B0: inverted
residuals, squeeze-excite multiplies, hard-swish, a Normalization front end) through every check, and keeps the
suite inside its time budget; ResNet-50, DenseNet-121 and VGG16 (20-40 s each here) run with -m slow.

Tolerances: runtime parity within 1e-4 x max|y| (fp32); the reloaded model equals the compressed one to 1e-5.
"""
import functools

import keras
import numpy as np
import pytest

from edgecompress.compress import CompressConfig, compress
from edgecompress.lower import export
from edgecompress.zoo.applications import APPLICATIONS, build_application

SIZE = 32
BY_DEFAULT = {"efficientnet_b0", "mobilenet_v2", "mobilenet_v3_small"}
TOLERANCE = 1e-4
# Sequential capture is tested in tests/select/test_sequential.py; here it would only add a refit pass per layer.
FAST = dict(methods="tucker,svd", samples_per_layer=64, memory_cap_bytes=64 << 20, capture="independent")


def _cases() -> list:
    """One param per architecture; the heavy ones are marked slow."""
    return [pytest.param(name, marks=() if name in BY_DEFAULT else (pytest.mark.slow,))
            for name in sorted(APPLICATIONS)]


@functools.lru_cache(maxsize=None)  # compressed once per architecture, shared by the checks
def compressed(name: str):
    model = build_application(name, SIZE, own_top=False)
    x = np.random.default_rng(0).random((16, SIZE, SIZE, 3), dtype=np.float32)
    return model, compress(model, x, CompressConfig(budget="params=0.5", **FAST)), x


def check_export_parity(name: str, to: str, tmp_path) -> None:
    _, result, x = compressed(name)
    artifact = export(result.model, tmp_path / f"{name}.{to}", to=to, data=x[:4])
    parity = artifact.audit["parity"]
    assert artifact.audit["builtin_only"], artifact.audit.get("non_builtin_ops")
    assert parity["max_abs_diff"] <= TOLERANCE * parity["max_abs_reference"]


@pytest.mark.parametrize("name", _cases())
def test_compresses_under_the_budget_and_exports_tflite_with_parity(name, tmp_path):
    model, result, _ = compressed(name)
    assert [layer for layer in result.plan.layers if layer.method], f"{name}: nothing factorized"
    assert result.plan.budget["achieved"]["params"] <= 0.5
    assert result.model.count_params() < model.count_params()
    check_export_parity(name, "tflite", tmp_path)


@pytest.mark.parametrize("name", _cases())
def test_exports_onnx_with_parity(name, tmp_path):
    check_export_parity(name, "onnx", tmp_path)


@pytest.mark.parametrize("name", _cases())
def test_round_trips_through_keras_file(name, tmp_path):
    _, result, x = compressed(name)
    path = tmp_path / f"{name}.keras"
    result.model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x[:4], verbose=0), result.model.predict(x[:4], verbose=0),
                               rtol=1e-5, atol=1e-5)
