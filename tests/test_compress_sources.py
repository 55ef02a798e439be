"""`compress` takes data as users keep it: a folder of PNGs per class, TFRecords, a tf.data.Dataset; each gives
the same plan as the same images in an .npz, and plan.json records where the data came from."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from edgecompress.data import load_raw
from tests.test_sources import bytes_feature, png_bytes, write_folder, write_tfrecord

SAMPLES = 200
FAST = ["--budget", "params=0.5", "--methods", "svd,tucker", "--no-latency-guard", "--preprocess", "scale01"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgecompress.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress_sources")
    raw = load_raw("embedded")
    x, y = raw.x_test[:SAMPLES], raw.y_test[:SAMPLES].astype(np.int64)
    np.savez(root / "data.npz", x=x[..., None], y=y)
    write_folder(root / "folder", x, y)
    write_tfrecord(root / "data.tfrecord", x, y, "image", lambda image: bytes_feature(png_bytes(image)))
    return root


def _plan(stored, data, name):
    result = cli("compress", "zoo:lenet5", "--data", data, *FAST, "-o", stored / name)
    assert result.returncode == 0, result.stderr
    return json.loads((stored / name / "plan.json").read_text())


def test_folder_and_tfrecords_give_the_npz_plan(stored):
    reference = _plan(stored, stored / "data.npz", "npz")
    for kind, data in (("folder", stored / "folder"), ("tfrecord", stored / "data.tfrecord")):
        plan = _plan(stored, data, kind)
        assert plan["layers"] == reference["layers"], kind
        assert plan["data"]["calibration"]["kind"] == kind
        assert plan["data"]["calibration"]["preprocess"] == "scale01"
        assert plan["data"]["calibration"]["samples_used"] == SAMPLES


def test_a_dataset_gives_the_arrays_plan(stored):
    from edgecompress import models
    from edgecompress.compress import CompressConfig, compress

    model = models.load("zoo:lenet5")
    arrays = np.load(stored / "data.npz")
    x, y = arrays["x"].astype(np.float32) / 255, arrays["y"]
    config = CompressConfig(budget="params=0.5", methods="svd,tucker")
    expected = compress(model, (x, y), config).plan.to_json()["layers"]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    assert compress(model, dataset, config).plan.to_json()["layers"] == expected


def test_a_bad_folder_is_one_line_and_writes_nothing(stored, tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "0.png").write_bytes(png_bytes(np.zeros((28, 28), np.uint8)))
    result = cli("compress", "zoo:lenet5", "--data", tmp_path / "flat", *FAST, "-o", tmp_path / "out")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "flat" in result.stderr and not (tmp_path / "out").exists()


def test_a_folder_streams_through_the_finetune(stored):
    """--finetune-data FOLDER is streamed batch by batch (plan.json says so), not read into memory."""
    out = stored / "streamed"
    result = cli("compress", "zoo:lenet5", "--data", stored / "data.npz", "--finetune-data", stored / "folder",
                 "--epochs", "1", "--learning-rate", "1e-3", *FAST, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "fine-tuning" in result.stdout
    record = json.loads((out / "plan.json").read_text())["data"]["finetune"]
    assert record["kind"] == "folder" and record["streamed"] is True and record["samples_used"] == SAMPLES


def test_a_dataset_fine_tunes_through_the_api(stored):
    from edgecompress import models
    from edgecompress.compress import CompressConfig, compress
    from edgecompress.finetune import FinetuneConfig

    arrays = np.load(stored / "data.npz")
    x, y = arrays["x"].astype(np.float32) / 255, arrays["y"]
    config = CompressConfig(budget="params=0.5", methods="svd,tucker",
                            finetune=FinetuneConfig(epochs=1, learning_rate=1e-3))
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    compressed = compress(models.load("zoo:lenet5"), (x, y), config, finetune_data=batches)
    assert compressed.stats["finetune_epochs"] == 1 and compressed.stats["finetune_strategy"] == "none"
    assert np.isfinite(compressed.model.predict(x[:8], verbose=0)).all()


def test_calibration_from_a_stream_stays_within_its_byte_cap(monkeypatch):
    """A streamed calibration source is read up to CALIBRATION_LIMIT samples or CALIBRATION_BYTES of inputs,
    whichever comes first (224x224x3 float32 inputs: 1783 samples in 1 GiB)."""
    import keras

    compress_module = sys.modules["edgecompress.compress"]  # the package exports the function under this name

    big = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.Conv2D(4, 3)])
    assert compress_module.calibration_limit(big) == (1 << 30) // (224 * 224 * 3 * 4) == 1783
    small = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3)])
    assert compress_module.calibration_limit(small) == compress_module.CALIBRATION_LIMIT
    monkeypatch.setattr(compress_module, "CALIBRATION_BYTES", 50 * 8 * 8 * 4)
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((300, 8, 8, 1), np.float32)).batch(32)
    x, _ = compress_module.as_calibration(dataset, small)
    assert len(x) == 50
