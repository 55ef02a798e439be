"""Shared test setup: quiet TensorFlow, fixed seeds, and small model builders."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import edgecompress  # noqa: E402,F401  (registers our Keras layers)


# The files that take longest (pytest --durations, 2 cores), run first: tests/run.sh hands whole files to two
# workers in collection order, and one of these started last left the other worker idle for minutes.
LONGEST_FILES_FIRST = (
    "tests/select/test_allocate.py", "tests/test_distribute.py", "tests/zoo/test_applications.py",
    "tests/test_demo.py", "tests/test_compress_sources.py", "tests/test_bad_inputs.py",
    "tests/prune/test_prune_cli.py", "tests/test_compress.py", "tests/graph/test_saved_models.py",
    "tests/factorize/test_seventh_method.py", "tests/test_finetune.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: index for index, path in enumerate(LONGEST_FILES_FIRST)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))  # stable


@pytest.fixture(autouse=True)
def _seed():
    import keras

    np.random.seed(0)
    keras.utils.set_random_seed(0)


def single_layer_model(layer, input_shape):
    """A Functional model around one layer, so describe() sees its shapes."""
    import keras

    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, layer(inputs))


def run_chain(layers, x):
    for layer in layers:
        x = layer(x)
    return np.asarray(x)


_CLI_BATCH_DRIVER = r"""
import contextlib, io, json, sys
from edgecompress.cli import main
results = {}
for name, argv in json.loads(sys.stdin.read()).items():
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    results[name] = {"returncode": code, "stderr": errors.getvalue()}
print(json.dumps(results))
"""


def run_cli_batch(cases: dict[str, list[str]], timeout: float = 600) -> dict:
    """{case: CompletedProcess-like (returncode, stderr)} of `edgecompress.cli.main(argv)` for each case, all in
    one fresh process: the CLI's real entry point, with TensorFlow imported once instead of once per case
    (about 6 s each). For cases that fail on their input; a case that depends on process state (signals,
    exit on import) needs its own process."""
    import json
    import subprocess
    import sys
    from types import SimpleNamespace

    done = subprocess.run([sys.executable, "-c", _CLI_BATCH_DRIVER], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: SimpleNamespace(**result) for name, result in json.loads(done.stdout.splitlines()[-1]).items()}
