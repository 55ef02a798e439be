"""`export` and `bench` read a folder of class sub-folders through the real CLI; a bad folder is one line, exit 2,
and no file written."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from edgecompress import bench, cli
from edgecompress.data import load_raw
from tests.test_sources import write_folder

QUICK = ["--min-runs", "5", "--min-secs", "0", "--max-secs", "2", "--warmup-secs", "0", "--segments", "1"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny Fashion-MNIST classifier, 120 test images as a class folder, and an output directory."""
    root = tmp_path_factory.mktemp("cli")
    raw = load_raw("embedded")
    write_folder(root / "images", raw.x_test[:120], raw.y_test[:120])
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(x)))
    model.save(root / "tiny.keras")
    (root / "out").mkdir()
    return root


@pytest.fixture(scope="module")
def exported(workspace):
    tflite = workspace / "out" / "tiny.tflite"
    code = cli.main(["export", str(workspace / "tiny.keras"), "--precision", "int8",
                     "--data", str(workspace / "images"), "-o", str(tflite)])
    assert code == 0
    return tflite


def test_export_with_a_folder(exported):
    audit = json.loads(exported.with_name("tiny.tflite.audit.json").read_text())
    assert audit["precision"] == "int8" and audit["parity"]["samples"] == 120
    assert audit["parity"]["accuracy_keras"] is not None  # labels came from the class folders


def test_export_with_a_bad_folder_is_one_line_and_writes_nothing(workspace, capsys):
    bad = workspace / "bad"
    write_folder(bad, load_raw("embedded").x_test[:2], np.array([0, 1]))
    (bad / "class_1" / "readme.txt").write_text("labels from the web")
    before = sorted((workspace / "out").iterdir())
    code = cli.main(["export", str(workspace / "tiny.keras"), "--precision", "int8", "--data", str(bad),
                     "-o", str(workspace / "out" / "bad.tflite")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "readme.txt: not an image file" in lines[0]
    assert sorted((workspace / "out").iterdir()) == before


def test_bench_with_a_folder_on_the_host(workspace, exported, capsys):
    capsys.readouterr()
    code = cli.main(["bench", str(exported), "--data", str(workspace / "images"), "--max-samples", "50", *QUICK])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"data: the first 50 samples of folder {workspace / 'images'}/ (120 images, 10 classes, none)" in printed


def test_bench_api_ships_the_whole_small_folder(workspace, exported):
    settings = bench.BenchSettings(min_runs=5, min_secs=0, max_secs=2, warmup_secs=0, segments=1)
    result = bench.run(exported, data=workspace / "images", settings=settings, preprocess="scale01")
    assert result.models[0]["accuracy"]["n"] == 120
    assert any("first 120 samples" in note and "scale01" in note for note in result.notes)
