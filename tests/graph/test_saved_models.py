"""Models as users bring them: built, saved with model.save(), then inspected and compressed in a fresh process.

A Sequential loaded from .keras holds stale call records on its layers (one per layer re-added while loading);
a nested Sequential is one layer of its caller. Both must read as plain candidates; a truly shared layer stays
shared.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

INPUT_SHAPE = (16, 16, 1)
BUDGET = 0.25


def _body():
    return [keras.layers.Conv2D(16, 3, activation="relu", name="conv_a"),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu", name="conv_b"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_c"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(64, activation="relu", name="fc_a"),
            keras.layers.Dense(10, name="fc_b")]


def sequential_with_input():
    return keras.Sequential([keras.Input(INPUT_SHAPE), *_body()])


def sequential_with_input_shape():
    first, *rest = _body()
    first = keras.layers.Conv2D(16, 3, activation="relu", name="conv_a", input_shape=INPUT_SHAPE)
    return keras.Sequential([first, *rest])


def sequential_nested_in_functional():
    inputs = keras.Input(INPUT_SHAPE)
    scaled = keras.layers.Rescaling(1.0, name="scale")(inputs)
    return keras.Model(inputs, sequential_with_input()(scaled))


def functional():
    x = inputs = keras.Input(INPUT_SHAPE)
    for layer in _body():
        x = layer(x)
    return keras.Model(inputs, x)


BUILDERS = {"sequential_input": sequential_with_input, "sequential_input_shape": sequential_with_input_shape,
            "nested_sequential": sequential_nested_in_functional, "functional": functional}
CANDIDATES = {"conv_a", "conv_b", "conv_c", "fc_a", "fc_b"}


# Run in one fresh process for all model kinds: `inspect --json` and `compress` through the CLI's own entry point.
FRESH_SCRIPT = """
import contextlib, io, json, sys
from edgecompress import cli
results = {}
for path in sys.argv[2:]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        inspect_rc = cli.main(["inspect", path, "--json"])
    compress_rc = cli.main(["compress", path, "--data", sys.argv[1], "-o", path + ".out", "--budget",
                            "params=%s", "--methods", "tucker,svd", "--memory-cap-mb", "64",
                            "--no-latency-guard"])
    results[path] = {"inspect_rc": inspect_rc, "layers": json.loads(printed.getvalue())["layers"],
                     "compress_rc": compress_rc}
print(json.dumps(results))
""" % BUDGET


@pytest.fixture(scope="module")
def fresh_results(tmp_path_factory):
    """Each kind built and saved here, then inspected and compressed in one fresh process."""
    root = tmp_path_factory.mktemp("saved")
    calib = root / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).random((64,) + INPUT_SHAPE, dtype=np.float32))
    paths = {}
    for kind, builder in BUILDERS.items():
        paths[kind] = root / f"{kind}.keras"
        builder().save(paths[kind])
    done = subprocess.run([sys.executable, "-c", FRESH_SCRIPT, str(calib), *map(str, paths.values())],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {kind: results[str(path)] | {"path": path} for kind, path in paths.items()}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_saved_model_is_inspected_and_compressed_in_a_fresh_process(kind, fresh_results):
    result = fresh_results[kind]
    assert result["inspect_rc"] == 0 and result["compress_rc"] == 0
    rows = {row["name"]: row for row in result["layers"]}
    candidates = {name for name, row in rows.items() if row["kind"] and row["reason"] is None}
    assert candidates == CANDIDATES, {name: rows[name]["reason"] for name in CANDIDATES & set(rows)}
    plan = json.loads((result["path"].parent / f"{kind}.keras.out" / "plan.json").read_text())
    assert plan["budget"]["achieved"]["params"] <= BUDGET


def _fresh_process(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecompress.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_a_layer_called_twice_in_the_graph_stays_shared(tmp_path):
    inputs = keras.Input((8,))
    shared = keras.layers.Dense(8, name="shared")
    outputs = keras.layers.Dense(4, name="head")(shared(shared(inputs)))
    keras.Model(inputs, outputs).save(tmp_path / "shared.keras")
    inspected = _fresh_process("inspect", tmp_path / "shared.keras", "--json")
    assert inspected.returncode == 0, inspected.stderr
    rows = {row["name"]: row for row in json.loads(inspected.stdout)["layers"]}
    assert "shared between 2 call sites" in rows["shared"]["reason"]
    assert rows["head"]["reason"] is None


def test_normalize_inlines_nested_models_with_unique_names_and_same_outputs():
    from edgecompress.graph import normalize

    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="dense")], name="inner")
    inputs = keras.Input((6,))
    outer = keras.Model(inputs, keras.layers.Dense(3, name="dense_out")(inner(keras.layers.Dense(6, name="dense")(
        inputs))))
    flat = normalize(outer)
    names = [layer.name for layer in flat.layers]
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    assert len(names) == len(set(names)) and "inner_dense" in names
    x = np.random.rand(4, 6).astype(np.float32)
    np.testing.assert_allclose(flat(x), outer(x), rtol=1e-6, atol=1e-6)


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3)

    def call(self, inputs):
        return self.conv(inputs)


def test_a_nested_subclassed_model_is_listed_with_its_reason_not_a_crash():
    from edgecompress.graph import describe, normalize

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(_Subclassed(name="inner")(inputs)))
    rows = {info.name: info for info in describe(normalize(model))}
    assert "subclassed" in rows["inner"].reason
    assert rows["head"].reason is None
