"""Small-input versions of the real architectures (keras.applications, random weights) compress, export with
parity on LiteRT and ONNX Runtime, and round-trip through .keras. The 224x224 runs are bench/real_architectures.py.

Tolerances: runtime parity within 1e-4 x max|y| (fp32); the reloaded model equals the compressed one to 1e-5.
"""
import keras
import numpy as np
import pytest

from edgecompress.compress import CompressConfig, compress
from edgecompress.lower import export
from edgecompress.zoo.applications import APPLICATIONS, build_application

SIZE = 32
TOLERANCE = 1e-4
FAST = dict(methods="tucker,cp,svd", samples_per_layer=64, memory_cap_bytes=64 << 20)


@pytest.fixture(scope="module", params=sorted(APPLICATIONS))
def compressed(request):
    model = build_application(request.param, SIZE)
    x = np.random.default_rng(0).random((16, SIZE, SIZE, 3), dtype=np.float32)
    return request.param, model, compress(model, x, CompressConfig(budget="params=0.5", **FAST)), x


def test_compresses_under_the_budget(compressed):
    name, model, result, _ = compressed
    factorized = [layer for layer in result.plan.layers if layer.method]
    assert factorized, f"{name}: nothing factorized"
    assert result.plan.budget["achieved"]["params"] <= 0.5
    assert result.model.count_params() < model.count_params()


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_exports_with_parity(compressed, to, tmp_path):
    name, _, result, x = compressed
    artifact = export(result.model, tmp_path / f"{name}.{to}", to=to, data=x[:4])
    parity = artifact.audit["parity"]
    assert artifact.audit["builtin_only"], artifact.audit.get("non_builtin_ops")
    assert parity["max_abs_diff"] <= TOLERANCE * parity["max_abs_reference"]


def test_round_trips_through_keras_file(compressed, tmp_path):
    name, _, result, x = compressed
    path = tmp_path / f"{name}.keras"
    result.model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x[:4], verbose=0), result.model.predict(x[:4], verbose=0),
                               rtol=1e-5, atol=1e-5)
