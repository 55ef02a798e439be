"""edgecompress.export() and `edgecompress export`: outputs and audit, and every kind of bad input failing in one
clear line with no file (partial or temporary) left behind."""
import json

import keras
import numpy as np
import pytest

from edgecompress.cli import main
from edgecompress.errors import DataError, ExportError
from edgecompress.graph.surgery import compress_model
from edgecompress.lower import export


@keras.saving.register_keras_serializable(package="tests.lower")
class Digamma(keras.layers.Layer):
    """A layer no builtin TFLite or ONNX op expresses."""

    def call(self, inputs):
        import tensorflow as tf

        return tf.math.digamma(inputs)


def small_model(extra=None) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(10, name="logits")(x)
    if extra is not None:
        x = extra(x)
    return compress_model(keras.Model(inputs, x, name="small"), {"conv2": ("tucker", 4)})


def leftovers(directory) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_export_writes_the_file_and_its_audit(tmp_path, to):
    artifact = export(small_model(), tmp_path / f"m.{to}")
    assert leftovers(tmp_path) == [f"m.{to}", f"m.{to}.audit.json"]
    audit = json.loads(artifact.audit_path.read_text())
    assert audit["size_bytes"] == artifact.size_bytes == (tmp_path / f"m.{to}").stat().st_size
    assert audit["builtin_only"] and audit["format"] == to and audit["precision"] == "fp32"
    assert [row["layer"] for row in audit["layers"]][:2] == ["conv1", "conv2"]
    assert audit["params"] == audit["params_lowered"] > 0
    assert audit["parity"]["data"] == "random normal" and audit["parity"]["relative_diff"] <= 1e-4
    assert {record["pass"] for record in audit["passes"]} >= {"fold_batchnorm_pass", "merge_factors_pass"}


def test_int8_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="--precision int8 needs --data CALIB.npz"):
        export(small_model(), tmp_path / "m.tflite", precision="int8")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_a_layer_the_format_cannot_express_is_named(tmp_path, to):
    with pytest.raises(ExportError, match=r"layer 'digamma' \(Digamma\) uses TensorFlow op\(s\) Digamma"):
        export(small_model(Digamma(name="digamma")), tmp_path / f"m.{to}")
    assert leftovers(tmp_path) == []


def test_unwritable_outputs_fail_before_any_work(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ExportError, match="does not exist"):
        export(small_model(), tmp_path / "missing" / "m.tflite")
    with pytest.raises(ExportError, match="does not exist"):
        export(small_model(), tmp_path / "file" / "m.tflite")
    with pytest.raises(ExportError, match="is a directory"):
        export(small_model(), tmp_path, to="tflite")
    assert leftovers(tmp_path) == ["file"]


def test_format_and_data_are_checked(tmp_path):
    with pytest.raises(ExportError, match="--to tflite or --to onnx"):
        export(small_model(), tmp_path / "m.bin")
    with pytest.raises(ExportError, match="ONNX export supports --precision fp32"):
        export(small_model(), tmp_path / "m.onnx", precision="fp16")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 9, 9, 3), np.float32))
    with pytest.raises(DataError, match=r"wrong.npz.*\(9, 9, 3\).*\(8, 8, 3\)"):
        export(small_model(), tmp_path / "m.tflite", precision="int8", data=tmp_path / "wrong.npz")
    assert leftovers(tmp_path) == ["wrong.npz"]


def test_cli_exports_and_prints_the_audit_table(tmp_path, capsys):
    small_model().save(tmp_path / "model.keras")
    x = np.random.default_rng(0).random((40, 8, 8, 3), np.float32)
    np.savez(tmp_path / "calib.npz", x=x, y=np.arange(40) % 10)
    code = main(["export", str(tmp_path / "model.keras"), "--precision", "int8", "--data",
                 str(tmp_path / "calib.npz"), "-o", str(tmp_path / "model.tflite")])
    out = capsys.readouterr().out
    assert code == 0 and "ops per original layer" in out and "conv2" in out and "CONV_2D x3" in out
    assert "builtin-only" in out and "top-1 agreement" in out
    audit = json.loads((tmp_path / "model.tflite.audit.json").read_text())
    assert audit["precision"] == "int8" and audit["parity"]["samples"] == 40


@pytest.mark.parametrize("arguments, message", [
    (["--precision", "int8"], "--precision int8 needs --data"),
    (["--to", "onnx", "--precision", "dynamic"], "ONNX export supports --precision fp32"),
])
def test_cli_bad_options_exit_2_in_one_line(tmp_path, capsys, arguments, message):
    small_model().save(tmp_path / "model.keras")
    code = main(["export", str(tmp_path / "model.keras"), "-o", str(tmp_path / "out.tflite"), *arguments])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert leftovers(tmp_path) == ["model.keras"]


def test_cli_file_that_is_not_a_model_exits_2(tmp_path, capsys):
    (tmp_path / "notes.keras").write_text("this is not a model")
    code = main(["export", str(tmp_path / "notes.keras"), "-o", str(tmp_path / "out.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "notes.keras" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert leftovers(tmp_path) == ["notes.keras"]


def test_cli_time_layers_puts_each_layers_time_next_to_its_flops(tmp_path, capsys):
    """--time-layers: every compute layer, and the Tucker block on conv2 as one row of its three factors, timed
    alone on the host; FLOPs are those the graph accounting gives the same layers (exact)."""
    from edgecompress.graph.layers import describe

    model = small_model()
    model.save(tmp_path / "model.keras")
    code = main(["export", str(tmp_path / "model.keras"), "-o", str(tmp_path / "model.tflite"), "--time-layers"])
    out = capsys.readouterr().out
    assert code == 0 and "ms alone" in out and "MFLOPs" in out
    costs = json.loads((tmp_path / "model.tflite.audit.json").read_text())["layer_costs"]
    assert costs["target"] == "host" and costs["precision"] == "fp32" and costs["threads"] == 1
    rows = {row["layer"]: row for row in costs["layers"]}
    assert list(rows) == ["conv1", "conv2", "logits"] and rows["conv2"]["factors"] == 3
    flops = {}
    for info in describe(model):
        flops[info.name.split("_tucker")[0]] = flops.get(info.name.split("_tucker")[0], 0) + info.flops
    assert all(rows[name]["flops"] == flops[name] and rows[name]["ms"] > 0 for name in rows)


@pytest.mark.parametrize("arguments, message", [
    (["--time-layers", "no-such-board"], "no-such-board"),
    (["--to", "onnx", "--time-layers"], "--time-layers times .tflite layers"),
])
def test_cli_time_layers_bad_options_fail_first(tmp_path, capsys, arguments, message):
    small_model().save(tmp_path / "model.keras")
    code = main(["export", str(tmp_path / "model.keras"), "-o", str(tmp_path / "out.tflite"), *arguments])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert leftovers(tmp_path) == ["model.keras"]
