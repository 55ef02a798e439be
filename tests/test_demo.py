"""`edgecompress demo --quick` in CI: every promised file exists and parses (reduced: embedded data, 1 epoch)."""
import json
import subprocess
import sys

import numpy as np
import onnx


def test_quick_demo_writes_every_file(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "edgecompress.cli", "demo", "--quick", "-o", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["source"] == "embedded"
    assert (out / "report.md").read_text().startswith("# edgecompress demo report")
    assert len(list(out.glob("*.png"))) >= 2 and all(p.stat().st_size > 1000 for p in out.glob("*.png"))
    plan = json.loads((out / "plan.json").read_text())
    assert plan["version"] == 1 and plan["layers"]
    assert plan["budget"]["int8_faithful"]["left_out"] == ["cp"]  # the demo ships int8
    assert not any(layer["method"] == "cp" for layer in plan["layers"])
    for name in ("model_fp32.tflite", "model_int8.tflite", "model.onnx"):
        audit = json.loads((out / f"{name}.audit.json").read_text())
        assert audit["builtin_only"] is True, name
        assert (out / name).stat().st_size == audit["size_bytes"]
    fp32_audit = json.loads((out / "model_fp32.tflite.audit.json").read_text())
    assert fp32_audit["parity"]["relative_diff"] <= 1e-4
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")))
    import keras

    model = keras.models.load_model(out / "model.keras")
    x = np.load(out / "test.npz")["x"][:4]
    assert model(x).shape == (4, 10)
    assert report["params"]["candidate_after"] < report["params"]["candidate_before"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary directory left behind"


def test_an_unreachable_default_latency_budget_falls_back_to_the_cheapest_reachable():
    from edgecompress.demo import reachable_latency_budget
    from edgecompress.select.budgets import parse_budget, unreachable

    error = unreachable(parse_budget("latency=0.35@host"), 0.5, 1.0, "cp,tucker")
    assert error.reachable_fraction == 0.5
    assert reachable_latency_budget("latency=0.35@host", error) == "latency=0.510@host"
    assert reachable_latency_budget("params=0.2", error) is None
    assert reachable_latency_budget("latency=0.35@host", ValueError("other")) is None


def test_cli_defaults_are_the_demo_configs():
    from edgecompress.commands.demo import DEMO_BUDGET, DEMO_EPOCHS
    from edgecompress.demo import DEFAULT_MODEL, DemoConfig

    config = DemoConfig()
    assert (config.budget, config.epochs, config.model, config.latency_guard) == (DEMO_BUDGET, DEMO_EPOCHS,
                                                                                 DEFAULT_MODEL, "host")
    assert config.int8_faithful
