"""`edgecompress inspect`: JSON per layer with methods or reasons; bad files exit 2 with one stderr line."""
import json
import subprocess
import sys

import keras
import pytest

from edgecompress.factorize import registry
from tests.conftest import run_cli_batch

L = keras.layers


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgecompress.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def mixed_model_path(tmp_path_factory):
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(16, 3, name="conv")(inputs)
    x = L.DepthwiseConv2D(3, name="dw")(x)
    x = L.Conv2D(32, 1, name="pw")(x)
    x = L.Conv2DTranspose(8, 3, name="deconv")(x)
    x = L.SeparableConv2D(8, 3, name="sep")(x)
    outputs = L.Dense(10, name="fc")(L.Flatten()(x))
    path = tmp_path_factory.mktemp("models") / "mixed.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_inspect_json_lists_methods_and_reasons(mixed_model_path):
    result = run_cli("inspect", str(mixed_model_path), "--json")
    assert result.returncode == 0, result.stderr
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    methods = registry()
    assert set(layers["conv"]["methods"]) == {n for n, m in methods.items() if not m.pointwise_only}
    assert set(layers["pw"]["methods"]) >= {n for n, m in methods.items() if m.pointwise_only}
    assert set(layers["fc"]["methods"]) == {n for n, m in methods.items() if "dense" in m.kinds}
    assert "depthwise" in layers["dw"]["reason"]
    assert "transposed" in layers["deconv"]["reason"]
    assert "separable" in layers["sep"]["reason"]
    assert layers["conv"]["flops"] == 2 * 10 * 10 * 3 * 3 * 3 * 16
    assert layers["fc"]["kernel_shape"] == [layers["fc"]["input_shape"][0], 10]


def test_inspect_table_runs(mixed_model_path):
    result = run_cli("inspect", str(mixed_model_path))
    assert result.returncode == 0 and "depthwise" in result.stdout and "tucker" in result.stdout


def _bad_files(tmp_path, good_path):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good_path.read_bytes()[:500])
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    h5 = tmp_path / "fake.h5"
    h5.write_text("not hdf5")
    return [empty, truncated, text, h5, tmp_path / "missing.keras", tmp_path]


def test_bad_model_files_exit_2_with_one_line(tmp_path, mixed_model_path):
    paths = _bad_files(tmp_path, mixed_model_path)
    results = run_cli_batch({str(path): ["inspect", str(path)] for path in paths})  # one process for all
    for path in paths:
        result = results[str(path)]
        assert result.returncode == 2, (path, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path.name) in lines[0], (path, result.stderr)
        assert "Traceback" not in result.stderr
