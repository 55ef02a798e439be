"""`edgecompress bench` end to end on the host: the JSON it writes, and bad input as one line and exit 2."""
import json

import numpy as np
import pytest

from edgecompress.cli import main
from tests.bench.conftest import make_venv, write_toml

QUICK_FLAGS = ["--min-runs", "20", "--min-secs", "0.1", "--warmup-secs", "0.02", "--segments", "2"]


def test_json_has_every_field(models, data, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(["bench", str(models["base"]), str(models["onnx"]), "--data", str(data), "--threads", "2",
                 "--json", str(out), "--report-dir", str(tmp_path / "report"), *QUICK_FLAGS]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["threads"] == 2 and result["system"]["cpu_model"] and result["peak_rss_bytes"] > 0
    assert result["settings"]["warmup_rounds_done"] >= 1 and result["timing"] == "device"
    for model, path in zip(result["models"], (models["base"], models["onnx"])):
        assert model["runtime"]["name"] and model["runtime"]["version"]
        assert model["size_bytes"] == path.stat().st_size and model["init_ms"] > 0
        assert {"p50", "p90", "p99", "mean", "std", "min"} <= set(model["latency_ms"])
        assert len(model["samples_ms"]) == model["runs"] >= 20
        assert 0.0 <= model["accuracy"]["top1_accuracy"] <= 1.0
    comparison = result["comparisons"][0]
    assert comparison["ci95"][0] <= comparison["speedup"] <= comparison["ci95"][1]
    assert "| base.tflite |" in printed and "| tiny.onnx |" in printed
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"report.json", "report.md", "latency.png",
                                                                 "pareto.png"}


def _fails_cleanly(argv, capsys, tmp_path, expected):
    out = tmp_path / "out.json"
    code = main(argv + ["--json", str(out), *QUICK_FLAGS])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # no partial result file


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_truncated_model(models, tmp_path, capsys, suffix):
    source = models["base" if suffix == ".tflite" else "onnx"].read_bytes()
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(source[: len(source) // 3])
    _fails_cleanly(["bench", str(broken)], capsys, tmp_path, f"{broken}: ")


def test_data_that_does_not_fit(models, tmp_path, capsys):
    np.savez(tmp_path / "mnist.npz", x=np.zeros((8, 28, 28, 1), np.uint8), y=np.zeros(8, np.int64))
    _fails_cleanly(["bench", str(models["base"]), "--data", str(tmp_path / "mnist.npz")], capsys, tmp_path,
                   "samples have shape (28, 28, 1)")


def test_unknown_target(models, tmp_path, capsys):
    _fails_cleanly(["bench", str(models["base"]), "--target", "raspberry"], capsys, tmp_path,
                   "unknown target 'raspberry'")


def test_misspelled_target_field(models, tmp_path, capsys):
    target = write_toml(tmp_path / "pi.toml", kind="ssh", host="pi", identity="~/.ssh/id")
    _fails_cleanly(["bench", str(models["base"]), "--target", str(target)], capsys, tmp_path,
                   "unknown field 'identity' (did you mean 'identity_file'?")


def test_target_without_python(models, tmp_path, capsys):
    target = write_toml(tmp_path / "nopython.toml", kind="host", python="/opt/nowhere/python3")
    _fails_cleanly(["bench", str(models["base"]), "--target", str(target)], capsys, tmp_path,
                   "program '/opt/nowhere/python3' not found")


def test_target_without_an_interpreter_says_what_to_install(models, tmp_path, capsys):
    python = make_venv(tmp_path / "venv", packages=("numpy", "numpy.libs"))
    target = write_toml(tmp_path / "numpy-only.toml", kind="host", python=str(python))
    _fails_cleanly(["bench", str(models["base"]), "--target", str(target)], capsys, tmp_path,
                   "pip install ai-edge-litert")


def test_not_a_model_file(data, tmp_path, capsys):
    _fails_cleanly(["bench", str(data)], capsys, tmp_path, "cannot benchmark a .npz file")


def test_runner_crash_is_one_line(models, tmp_path, capsys):
    crashing = tmp_path / "python3"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    target = write_toml(tmp_path / "crash.toml", kind="host", python=str(crashing))
    _fails_cleanly(["bench", str(models["base"]), "--target", str(target)], capsys, tmp_path,
                   "the runner crashed with signal 11 SIGSEGV")
