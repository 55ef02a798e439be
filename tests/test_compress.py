"""compress() and `edgecompress compress`: overrides honoured, outputs written together, the model loads and
runs in a fresh process, and every bad input is one line on stderr with exit code 2 and no files left."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from edgecompress import cli
from edgecompress.compress import CompressConfig, compress
from tests.select.models import calibration, trained_tiny_cnn

FAST = ["--methods", "tucker,svd", "--memory-cap-mb", "64"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress")
    trained_tiny_cnn().save(root / "tiny.keras")
    x, y = calibration(128)
    np.savez(root / "calib.npz", x=x, y=y)
    np.savez(root / "nolabels.npz", x=x)
    np.savez(root / "wrong.npz", x=np.zeros((4, 32, 32, 3), np.float32))
    return root


def test_api_honours_overrides_and_budget():
    overrides = {"conv1": "skip", "fc1": "svd:4", "re:conv[23]": "tucker,cp"}
    result = compress(trained_tiny_cnn(), calibration(128),
                      CompressConfig(budget="params=0.5", layers=overrides, samples_per_layer=256))
    layers = {layer.name: layer for layer in result.plan.layers}
    assert layers["conv1"].method is None and "override" in layers["conv1"].reason
    assert (layers["fc1"].method, layers["fc1"].rank) == ("svd", (4,))
    assert layers["conv2"].method in ("tucker", "cp", None) and layers["conv3"].method in ("tucker", "cp", None)
    assert result.plan.budget["achieved"]["params"] <= 0.5
    x, _ = calibration(16)
    assert result.model.predict(x, verbose=0).shape == (16, 10)


def test_cli_writes_model_and_plan_that_load_in_a_fresh_process(files, tmp_path):
    out = tmp_path / "out"
    rc = cli.main(["compress", str(files / "tiny.keras"), "--data", str(files / "calib.npz"), "-o", str(out),
                   "--budget", "params=0.4", *FAST])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "plan.json"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["version"] == 1 and plan["budget"]["achieved"]["params"] <= 0.4
    x = np.load(files / "calib.npz")["x"][:8]
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy as np, keras, edgecompress; "
              "m = keras.models.load_model(sys.argv[1]); np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))")
    subprocess.run([sys.executable, "-c", script, str(out / "model.keras"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    in_process = keras.models.load_model(out / "model.keras").predict(x, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), in_process, atol=1e-5)


BAD_INPUTS = [
    (["--data", "wrong.npz", "--budget", "params=0.5"], r"\(32, 32, 3\).*\(28, 28, 1\)"),
    (["--data", "calib.npz", "--budget", "params=0.0001"], r"cannot be met.*params>=0\.\d+"),
    (["--data", "nolabels.npz", "--budget", "accuracy-drop=1"], "label"),
    (["--data", "calib.npz", "--budget", "params=lots"], "not a number"),
    (["--data", "calib.npz", "--budget", "speed=2"], "KIND=VALUE"),
    (["--data", "calib.npz", "--epochs", "2"], "--finetune-data"),
    (["--data", "calib.npz", "--budget", "latency=0.5@host", "--select", "vbmf"], "similarity or fbp"),
    (["--data", "calib.npz", "--budget", "latency=0.5@nosuchtarget"], "nosuchtarget"),
]


@pytest.mark.parametrize("arguments, message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_output(files, tmp_path, capsys, arguments, message):
    arguments = [a if not a.endswith(".npz") else str(files / a) for a in arguments]
    out = tmp_path / "out"
    rc = cli.main(["compress", str(files / "tiny.keras"), "-o", str(out), *arguments, *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("edgecompress compress: error:")
    assert __import__("re").search(message, err[0]), err[0]
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_leaves_no_partial_files(files, tmp_path, signum):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "edgecompress.cli", "compress", str(files / "tiny.keras"), "--data",
               str(files / "calib.npz"), "-o", str(out), "--select", "uniform", "--distill", "--epochs", "500", *FAST]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 60
    while not out.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # well into capture / fine-tuning
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0, err.decode()
    assert not out.exists() or not any(out.iterdir())
    assert not list(Path(tmp_path).glob("**/*.tmp*"))


class _FlopsTable:
    """Stands in for bench.costtable.CostTable: 'latency' = block FLOPs / 1e6 + 0.01 ms, no device needed."""

    runtime = "FLOPs model"

    def __init__(self, target):
        self.target = target

    def channel_multiple(self) -> int:
        return 1

    def latency_many(self, requests):
        from edgecompress.graph.accounting import chain_cost

        return [chain_cost([type(l).from_config(l.get_config()) for l in block], (1, *shape))[1] / 1e6 + 0.01
                for block, shape in requests]


def test_latency_budget_uses_the_targets_cost_table():
    result = compress(trained_tiny_cnn(), calibration(128),
                      CompressConfig(budget="latency=0.5@host", methods="tucker,svd", samples_per_layer=256,
                                     cost_table=_FlopsTable))
    budget = result.plan.budget
    assert budget["kind"] == "latency" and budget["achieved"]["latency"] <= 0.5
    assert budget["latency_after_ms"] <= 0.5 * budget["latency_before_ms"]
    assert any(layer.method for layer in result.plan.layers)


class _WholeFlopsTable(_FlopsTable):
    """_FlopsTable that also times whole models in context: 'latency' = the model's FLOPs / 1e6 + 0.05 ms."""

    timed_models = 0

    def model_ratios(self, original, candidates, calibration=None):
        original_ms = _whole_flops_ms(original)
        type(self).timed_models += len(candidates)
        return [{"ratio": _whole_flops_ms(model) / original_ms, "original_ms": original_ms,
                 "candidate_ms": _whole_flops_ms(model)} for model in candidates]


def _whole_flops_ms(model) -> float:
    from edgecompress.graph.layers import describe

    return sum(info.flops for info in describe(model)) / 1e6 + 0.05


def test_latency_budget_is_met_on_the_whole_model_where_the_table_times_it():
    """The whole compressed model lands within 10% below the asked fraction of the original's (stand-in time),
    whatever fraction of the searched layers' table latency that takes; plan.json says which was measured."""
    _WholeFlopsTable.timed_models = 0
    result = compress(trained_tiny_cnn(), calibration(128),
                      CompressConfig(budget="latency=0.6@host", methods="tucker,svd", samples_per_layer=256,
                                     cost_table=_WholeFlopsTable))
    budget = result.plan.budget
    assert budget["latency_measured_as"] == "whole model"
    assert 0.9 * 0.6 <= budget["achieved"]["latency"] <= 0.6
    whole_ratio = _whole_flops_ms(result.model) / _whole_flops_ms(trained_tiny_cnn())
    assert budget["achieved"]["latency"] == pytest.approx(whole_ratio, rel=1e-6)  # the final model is the one timed
    assert budget["latency_model_after_ms"] < budget["latency_model_before_ms"]
    assert 1 <= budget["latency_plans_timed"] == _WholeFlopsTable.timed_models <= 6


class _UnconvertibleTable(_FlopsTable):
    def model_ratios(self, original, candidates, calibration=None):
        from edgecompress.errors import ExportError

        raise ExportError("layer 'digamma' (Digamma) has no builtin TFLite op")


def test_a_whole_model_that_does_not_convert_falls_back_to_the_layers_timed_alone():
    result = compress(trained_tiny_cnn(), calibration(128),
                      CompressConfig(budget="latency=0.5@host", methods="tucker,svd", samples_per_layer=256,
                                     cost_table=_UnconvertibleTable))
    budget = result.plan.budget
    assert budget["latency_measured_as"] == "layers timed alone" and budget["achieved"]["latency"] <= 0.5
    assert "digamma" in budget["latency_in_context_skipped"]


def test_a_latency_budget_no_whole_model_meets_says_what_is_reachable():
    from edgecompress.errors import BudgetError

    with pytest.raises(BudgetError, match=r"cheapest plan runs at 0\.\d+ of the original model's latency on host"):
        compress(trained_tiny_cnn(), calibration(128),
                 CompressConfig(budget="latency=0.01@host", methods="tucker,svd", samples_per_layer=256,
                                cost_table=_WholeFlopsTable))


def test_int8_faithful_hybrid_leaves_out_the_int8_fragile_methods():
    """Every method the registry marks int8-fragile is left out of hybrid, and plan.json says which; a method
    the user names is kept."""
    from edgecompress import factorize

    fragile = [name for name in factorize.available() if factorize.get(name).int8_fragile]
    assert fragile == ["cp"]  # measured: bench/results/int8_methods.md
    config = CompressConfig(budget="params=0.3", samples_per_layer=256, int8_faithful=True)
    plan = compress(trained_tiny_cnn(), calibration(128), config).plan
    assert plan.budget["int8_faithful"] == {"left_out": fragile}
    assert not set(plan.budget["methods"]) & set(fragile)
    assert any(layer.method for layer in plan.layers) and not any(layer.method in fragile for layer in plan.layers)
    named = CompressConfig(budget="params=0.3", methods="cp,svd", samples_per_layer=256, int8_faithful=True)
    assert compress(trained_tiny_cnn(), calibration(128), named).plan.budget["int8_faithful"] == {"left_out": []}


def test_a_model_without_candidate_layers_is_a_clear_error():
    from edgecompress.errors import UnsupportedLayerError

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.DepthwiseConv2D(3)(inputs))
    with pytest.raises(UnsupportedLayerError, match="no layer to compress"):
        compress(model, np.zeros((4, 8, 8, 3), np.float32), CompressConfig(budget="params=0.5"))


@pytest.mark.slow
def test_latency_budget_on_the_host_with_measured_blocks(tmp_path):
    """The real cost table: each front block converted to TFLite and timed on the host (cached in tmp_path)."""
    import edgecompress.bench.costtable as costtable

    inputs = keras.Input((16, 16, 32))
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(64, 3, padding="same", name="conv_b")(x))
    calibration_x = np.random.default_rng(0).normal(size=(16, 16, 16, 32)).astype(np.float32)
    table = lambda target: costtable.CostTable(target, cache_path=tmp_path / "latency.json")  # noqa: E731
    result = compress(model, calibration_x, CompressConfig(budget="latency=0.6@host", methods="tucker",
                                                           samples_per_layer=256, cost_table=table))
    assert result.plan.budget["achieved"]["latency"] <= 0.6
    assert (tmp_path / "latency.json").is_file()


class _Lines:
    def __init__(self):
        self.lines = []

    def print(self, line, highlight=False):
        self.lines.append(line)


def test_plain_progress_prints_an_estimate_while_a_step_runs_long():
    from edgecompress.progress import PlainProgress

    console = _Lines()
    with PlainProgress(console, interval_s=0.2) as report:
        report("search", 0, 4)
        report("search", 1, 4)
        time.sleep(0.6)  # one step far longer than the interval: the heartbeat speaks
        report("search", 4, 4)
    assert any("search: 1/4 after" in line and "s left" in line for line in console.lines), console.lines
    assert console.lines[-1].startswith("  search: 4/4 in ")


def test_every_budget_kind_has_a_chooser():
    from edgecompress.compress import CHOOSERS
    from edgecompress.select.budgets import KINDS

    assert set(CHOOSERS) == set(KINDS) | {None}


@pytest.mark.parametrize("options", [{"budget": "latency=0.5@host"}, {"latency_guard": "host"}])
def test_latency_work_without_a_cost_table_names_the_fix(options):
    from edgecompress.errors import ConfigError

    with pytest.raises(ConfigError, match="cost_table=edgecompress.bench.CostTable"):
        compress(trained_tiny_cnn(), calibration(16), CompressConfig(**options))
