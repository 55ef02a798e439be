"""bench/train_zoo.py on a tiny budget: trains, saves an uncompiled model, records results, ships only small files."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgecompress import zoo
from edgecompress.io import load_model
from edgecompress.zoo import registry

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_zoo.py"


@pytest.fixture(scope="module")
def train_zoo():
    spec = importlib.util.spec_from_file_location("train_zoo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trains_saves_records_and_ships(train_zoo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(train_zoo, "SHIP_MIN_TOP1", 0.0)  # one epoch on 512 images: any accuracy ships here
    out, report = tmp_path / "zoo", tmp_path / "train_zoo.md"
    args = ["--models", "lenet5", "--source", "embedded", "--train-limit", "512", "--epochs", "1",
            "--out", str(out), "--report", str(report), "--ship"]
    assert train_zoo.main(args) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [row["model"] for row in rows] == ["lenet5"]
    assert rows[0]["source"] == "embedded" and rows[0]["train_samples"] == 512 and rows[0]["test_samples"] == 2000
    assert 0 < rows[0]["test_top1"] <= 100
    assert "| lenet5 | 61706 | 1 | 512 |" in report.read_text()
    assert load_model(out / "lenet5.keras").count_params() == 61706
    assert (tmp_path / "weights" / "lenet5.keras").read_bytes() == (out / "lenet5.keras").read_bytes()
    assert "source: embedded" in capsys.readouterr().out


def test_ship_refuses_big_or_inaccurate_models(train_zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "weights")
    big = tmp_path / "big.keras"
    big.write_bytes(b"\0" * (train_zoo.SHIP_LIMIT_BYTES + 1))
    assert train_zoo.ship("vgg", big, 90.0).startswith("not shipped")
    small = tmp_path / "small.keras"
    small.write_bytes(b"\0" * 100)
    assert "test top-1 17.0% < 80.0%" in train_zoo.ship("vgg", small, 17.0)
    assert not (tmp_path / "weights").exists()


def test_results_accumulate_across_runs(train_zoo, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"model": "vgg", "test_top1": 1.0}, {"model": "lenet5", "test_top1": 2.0}]))
    merged = train_zoo.merge_results(results, [{"model": "lenet5", "test_top1": 3.0}])
    assert [(row["model"], row["test_top1"]) for row in merged] == sorted(
        [("vgg", 1.0), ("lenet5", 3.0)], key=lambda pair: zoo.available().index(pair[0]))


def test_unknown_model_is_refused(train_zoo, capsys):
    assert train_zoo.main(["--models", "alexnet"]) == 2
    assert "unknown model(s) alexnet" in capsys.readouterr().err
