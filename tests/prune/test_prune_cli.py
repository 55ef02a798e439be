"""What users do: save a Sequential model, then in a fresh process prune it (`--select fbp`) or prune and
factorize (`--prune F`), export the result and check the plan records both steps."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.graph.architectures import sequential_cnn


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgecompress.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("fbp")
    sequential_cnn().save(root / "seq.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "calib.npz", x=rng.random((64, 16, 16, 3), dtype=np.float32), y=rng.integers(0, 10, 64))
    return root


def test_fbp_plan_meets_the_budget_and_exports(saved):
    result = cli("compress", saved / "seq.keras", "--data", saved / "calib.npz", "--select", "fbp",
                 "--budget", "params=0.5", "-o", saved / "fbp")
    assert result.returncode == 0, result.stderr
    assert "pruned" in result.stdout
    plan = json.loads((saved / "fbp" / "plan.json").read_text())
    assert plan["budget"]["select"] == "fbp" and plan["budget"]["achieved"]["params"] <= 0.5
    assert plan["pruning"]["criterion"] == "energy" and plan["pruning"]["refit"] and plan["pruning"]["unprunable"]
    shrunk = [layer for layer in plan["layers"] if layer["channels"][1] < layer["channels"][0]]
    assert shrunk and all(layer["params_after"] < layer["params_before"] for layer in shrunk)
    exported = cli("export", saved / "fbp" / "model.keras", "--to", "tflite", "-o", saved / "fbp" / "m.tflite")
    assert exported.returncode == 0, exported.stderr
    audit = json.loads((saved / "fbp" / "m.tflite.audit.json").read_text())
    assert audit["builtin_only"] and audit["parity"]["relative_diff"] < 1e-4


def test_prune_then_factorize_records_both_steps(saved):
    result = cli("compress", saved / "seq.keras", "--data", saved / "calib.npz", "--prune", "0.3",
                 "--budget", "params=0.3", "--methods", "svd,tucker", "--no-latency-guard", "-o", saved / "both")
    assert result.returncode == 0, result.stderr
    plan = json.loads((saved / "both" / "plan.json").read_text())
    assert plan["budget"]["prune"] == 0.3 and plan["budget"]["achieved"]["params"] <= 0.3
    assert float(plan["budget"]["factorization"]["text"].split("=")[1]) > 0.3  # restated on the pruned model
    both = [layer for layer in plan["layers"] if layer["method"] and layer["channels"][1] < layer["channels"][0]]
    assert both, "some layer is pruned and then factorized"
    original = {layer["name"]: layer["params_before"] for layer in plan["layers"]}
    assert sum(original.values()) == plan["totals"]["conv"]["params_before"] + plan["totals"]["dense"]["params_before"]


def test_a_prune_value_that_is_neither_a_fraction_nor_auto_is_exit_2(saved):
    """(A fraction outside (0, 1) is tests/test_bad_inputs.py's case.)"""
    result = cli("compress", saved / "seq.keras", "--data", saved / "calib.npz", "--prune", "half",
                 "-o", saved / "bad")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'half' is not a fraction" in result.stderr and "auto" in result.stderr
    assert not (saved / "bad").exists()
