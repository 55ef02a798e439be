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
