"""Small-input versions of the real architectures (keras.applications, random weights) compress, export with
parity on LiteRT and ONNX Runtime, and round-trip through .keras. The 224x224 runs, with each application's own
classifier, are bench/real_architectures.py; here a pooled Dense head keeps VGG16's 4096-wide top out of the run.

The default run compresses every architecture and checks its .tflite; ONNX and the .keras round trip run by
default on the two whose front ends and blocks differ most (EfficientNet's Normalization and squeeze-excite,
MobileNetV3's hard-swish), on every architecture with -m slow.

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
EVERY_CHECK_BY_DEFAULT = {"efficientnet_b0", "mobilenet_v3_small"}
TOLERANCE = 1e-4
FAST = dict(methods="tucker,svd", samples_per_layer=64, memory_cap_bytes=64 << 20)


def _cases(every_check_only: bool = False) -> list:
    """One param per architecture; the checks beyond compress + .tflite are slow except on the default two."""
    marked = lambda name: () if not every_check_only or name in EVERY_CHECK_BY_DEFAULT else (pytest.mark.slow,)  # noqa: E731
    return [pytest.param(name, marks=marked(name)) for name in sorted(APPLICATIONS)]


@functools.lru_cache(maxsize=None)  # compressed once per architecture, shared by the checks
def compressed(name: str):
    model = build_application(name, SIZE, own_top=False)
    x = np.random.default_rng(0).random((16, SIZE, SIZE, 3), dtype=np.float32)
    return model, compress(model, x, CompressConfig(budget="params=0.5", **FAST)), x


def _export_checked(name: str, to: str, tmp_path) -> None:
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
    _export_checked(name, "tflite", tmp_path)


@pytest.mark.parametrize("name", _cases(every_check_only=True))
def test_exports_onnx_with_parity(name, tmp_path):
    _export_checked(name, "onnx", tmp_path)


@pytest.mark.parametrize("name", _cases(every_check_only=True))
def test_round_trips_through_keras_file(name, tmp_path):
    _, result, x = compressed(name)
    path = tmp_path / f"{name}.keras"
    result.model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x[:4], verbose=0), result.model.predict(x[:4], verbose=0),
                               rtol=1e-5, atol=1e-5)
