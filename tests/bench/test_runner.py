"""runner.py on its own: what it imports, what it prints, and its one-line errors for bad files and data."""
import json
import subprocess
import sys

import numpy as np
import pytest

from edgecompress.bench.base import RUNNER_PATH

QUICK_ARGS = ["--min-runs", "10", "--min-secs", "0.05", "--warmup-secs", "0.01", "--segments", "2"]

BLOCKER = """
import atexit, runpy, sys
BLOCKED = ("tensorflow", "keras", "edgecompress")
attempts = []
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError("blocked by the test: " + name)
        return None
sys.meta_path.insert(0, Blocker())
for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
    del sys.modules[name]
@atexit.register
def report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    sys.stderr.write("\\nIMPORT-CHECK " + repr({"attempts": attempts, "loaded": loaded}) + "\\n")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_runner(*args, python=sys.executable, blocker=False):
    prefix = ["-c", BLOCKER] if blocker else []
    return subprocess.run([python, *prefix, str(RUNNER_PATH), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_runner_imports_neither_tensorflow_nor_keras(models, data):
    proc = run_runner(models["base"], models["onnx"], "--data", data, *QUICK_ARGS, blocker=True)
    assert proc.returncode == 0, proc.stderr
    check = eval(proc.stderr.split("IMPORT-CHECK ")[-1])  # noqa: S307 - our own repr of two lists
    assert check == {"attempts": [], "loaded": []}
    result = json.loads(proc.stdout)
    assert [m["runtime"]["name"] for m in result["models"]] == ["ai_edge_litert", "onnxruntime"]


def test_blocker_really_blocks(models):
    proc = run_runner(models["base"], "--runtime", "tensorflow", *QUICK_ARGS, blocker=True)
    assert proc.returncode == 2
    assert "no TFLite interpreter (tensorflow)" in json.loads(proc.stdout)["error"]["message"]
    assert "'tensorflow'" in proc.stderr.split("IMPORT-CHECK ")[-1]


def test_result_has_every_measurement(models, data):
    proc = run_runner(models["base"], "--data", data, "--threads", "1", *QUICK_ARGS)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    model = result["models"][0]
    assert result["threads"] == 1 and result["system"]["cpu_model"] and result["peak_rss_bytes"] > 10 * 2**20
    assert result["settings"]["warmup_rounds_done"] >= 1 and result["comparisons"] == []
    assert model["size_bytes"] == models["base"].stat().st_size
    assert model["init_ms"] > 0 and model["first_run_ms"] > 0 and model["runs"] >= 10
    assert model["peak_rss_alone_bytes"] is None  # a single model: the process peak is its own
    assert len(model["samples_ms"]) == model["runs"] == model["latency_ms"]["n"]
    latency = model["latency_ms"]
    assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert latency["p50"] == pytest.approx(float(np.median(model["samples_ms"])), rel=1e-3)
    labels = np.load(data)["y"]
    assert model["accuracy"]["top1_accuracy"] == pytest.approx(np.mean(np.array(model["accuracy"]["top1"]) == labels))


def test_int8_model_is_fed_quantized_inputs(models, data):
    proc = run_runner(models["base"], models["base_int8"], "--data", data, "--outputs", *QUICK_ARGS)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    fp32, int8 = result["models"]
    for model in (fp32, int8):  # each model's peak in a process of its own, below the shared process's peak
        assert 10 * 2**20 < model["peak_rss_alone_bytes"] <= result["peak_rss_bytes"] * 1.05
    assert int8["inputs"][0]["dtype"] == "int8" and int8["accuracy"]["output_quantization"]["scale"] > 0
    agreement = np.mean(np.array(fp32["accuracy"]["top1"]) == np.array(int8["accuracy"]["top1"]))
    assert agreement >= 0.8  # quantized inputs: the int8 model mostly agrees with its float original


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("kind", ["base", "onnx"])
def test_corrupt_model_is_one_clear_error(models, tmp_path, damage, kind):
    content = models[kind].read_bytes()
    broken = {"truncated": content[: len(content) // 2], "garbage": b"\x00" * 64, "empty": b""}[damage]
    path = tmp_path / f"broken{models[kind].suffix}"
    path.write_bytes(broken)
    proc = run_runner(path, *QUICK_ARGS)
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["kind"] == "model" and str(path) in error["message"]
    assert "Traceback" not in proc.stderr


def test_data_shape_mismatch_names_both_shapes(models, tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 8, 8, 3), np.float32))
    proc = run_runner(models["base"], "--data", tmp_path / "wrong.npz", *QUICK_ARGS)
    assert proc.returncode == 2
    message = json.loads(proc.stdout)["error"]["message"]
    assert "(8, 8, 3)" in message and "(16, 16, 3)" in message


def test_probe_reports_runtimes_without_a_model():
    proc = run_runner("--probe")
    facts = json.loads(proc.stdout)
    assert proc.returncode == 0 and facts["runtimes"]["tflite"]["name"] == "ai_edge_litert"
    assert facts["system"]["machine"]
