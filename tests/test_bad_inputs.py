"""Bad-input corpus over every command, driving the real CLI in a fresh process (one for the whole corpus;
signals and timing cases get their own).

Every case: exit 2 (bad input) or 1 (internal failure), one line on stderr naming the problem, no traceback,
and the output directory's listing unchanged (no partial files).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import run_cli_batch

INPUT_SHAPE = (12, 12, 1)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgecompress.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def assert_one_line_error(result, *needles, codes=(2,)):
    assert result.returncode in codes, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))
    model.save(root / "good.keras")
    x_good = rng.random((64,) + INPUT_SHAPE, dtype=np.float32)
    np.savez(root / "calib.npz", x=x_good, y=rng.integers(0, 4, 64))
    np.savez(root / "no_x.npz", images=x_good)
    np.savez(root / "wrong_shape.npz", x=rng.random((8, 10, 10, 1), dtype=np.float32))
    np.savez(root / "wrong_dtype.npz", x=np.array([["a"] * 3] * 4))
    np.savez(root / "labels_out_of_range.npz", x=x_good, y=np.full(64, 9))
    (root / "empty.keras").write_bytes(b"")
    (root / "truncated.keras").write_bytes((root / "good.keras").read_bytes()[:700])
    rnn_in = keras.Input((5, 3))
    keras.Model(rnn_in, keras.layers.LSTM(4)(rnn_in)).save(root / "lstm_only.keras")
    np.savez(root / "sequences.npz", x=rng.random((16, 5, 3), dtype=np.float32))
    fc_kernel = model.get_layer("fc").kernel
    fc_kernel.assign(np.where(rng.random(fc_kernel.shape) > 0.5, np.nan, 0.1).astype(np.float32))
    model.save(root / "nan.keras")
    small, large = keras.Input(INPUT_SHAPE, name="small"), keras.Input((24, 24, 1), name="large")
    pooled = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(4, 3, padding="same", name="conv_large")(large))
    joined = keras.layers.Concatenate()([keras.layers.Conv2D(4, 3, padding="same", name="conv_small")(small), pooled])
    keras.Model([small, large], keras.layers.Dense(4, name="head")(keras.layers.Flatten()(joined))).save(
        root / "two_inputs.keras")
    (root / "out").mkdir()
    (root / "existing_dir").mkdir()
    return root


COMPRESS_CASES = {
    "empty model": (["compress", "{root}/empty.keras", "--data", "{root}/calib.npz"], ["empty.keras"]),
    "truncated model": (["compress", "{root}/truncated.keras", "--data", "{root}/calib.npz"], ["truncated.keras"]),
    "no candidate layer": (["compress", "{root}/lstm_only.keras", "--data", "{root}/sequences.npz"],
                           ["no layer to compress"]),
    "two inputs of different sizes": (["compress", "{root}/two_inputs.keras", "--data", "{root}/calib.npz"],
                                      ["2 inputs", "single-input"]),
    "NaN weights": (["compress", "{root}/nan.keras", "--data", "{root}/calib.npz"], ["fc", "nan"]),
    "npz without x": (["compress", "{root}/good.keras", "--data", "{root}/no_x.npz"], ["'x'"]),
    "x of wrong shape": (["compress", "{root}/good.keras", "--data", "{root}/wrong_shape.npz"], ["shape"]),
    "x of wrong dtype": (["compress", "{root}/good.keras", "--data", "{root}/wrong_dtype.npz"], ["wrong_dtype.npz"]),
    "labels out of range": (["compress", "{root}/good.keras", "--data", "{root}/labels_out_of_range.npz",
                             "--budget", "accuracy-drop=1.0"], ["label"]),
    "malformed budget": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--budget", "params=abc"],
                         ["budget"]),
    "unknown budget kind": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--budget", "speed=2"],
                            ["budget"]),
    "unknown method": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--methods", "tucker,nope"],
                       ["nope"]),
    "output is a file": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "-o", "{root}/calib.npz"],
                         ["calib.npz"]),
    "unwritable output": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "-o", "/proc/ec-out"],
                          ["/proc/ec-out"]),
    "prune ratio outside (0, 1)": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--prune", "1.5"],
                                   ["prune ratio", "(0, 1)"]),
    "fbp with --prune": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--select", "fbp",
                          "--prune", "0.3"], ["--prune"]),
    "unknown prune criterion": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--select", "fbp",
                                 "--prune-criterion", "nope"], ["criterion", "nope"]),
    "negative reconstruct steps": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--reconstruct",
                                    "-1"], ["reconstruct", "-1"]),
    "fbp budget out of reach": (["compress", "{root}/good.keras", "--data", "{root}/calib.npz", "--select", "fbp",
                                 "--budget", "params=0.001"], ["cannot reach"]),
}

OTHER_CASES = {
    "inspect empty": (["inspect", "{root}/empty.keras"], ["empty.keras"]),
    "export truncated": (["export", "{root}/truncated.keras", "--to", "tflite", "-o", "{root}/out/m.tflite"],
                         ["truncated.keras"]),
    "export int8 without data": (["export", "{root}/good.keras", "--to", "tflite", "--precision", "int8",
                                  "-o", "{root}/out/m.tflite"], ["--data"]),
    "export to existing dir": (["export", "{root}/good.keras", "--to", "tflite", "-o", "{root}/existing_dir"],
                               ["existing_dir"]),
    "export unwritable": (["export", "{root}/good.keras", "--to", "tflite", "-o", "/proc/ec/m.tflite"], ["/proc"]),
    "bench empty file": (["bench", "{root}/empty.keras"], ["empty.keras"]),
    "bench unknown target": (["bench", "{root}/out/none.tflite", "--target", "no-such-board"], []),
}


def _expand(args, root):
    return [a.format(root=root) for a in args]


@pytest.fixture(scope="module")
def corpus_results(corpus, tmp_path_factory):
    """Every case of both tables, run in one CLI process; the corpus listing before and after."""
    outputs = tmp_path_factory.mktemp("outputs")
    cases = {}
    for index, (case, (args, _)) in enumerate(sorted(COMPRESS_CASES.items())):
        args = _expand(args, corpus)
        cases[case] = args if "-o" in args else args + ["-o", str(outputs / str(index))]
    cases.update({case: _expand(args, corpus) for case, (args, _) in OTHER_CASES.items()})
    before = listing(corpus)
    return run_cli_batch(cases), before, listing(corpus), outputs


@pytest.mark.parametrize("case", sorted(COMPRESS_CASES))
def test_compress_bad_input(corpus_results, case):
    results, before, after, outputs = corpus_results
    assert_one_line_error(results[case], *COMPRESS_CASES[case][1])
    assert after == before
    assert listing(outputs) == []  # no case created its output directory


@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_other_commands_bad_input(corpus_results, case):
    results, before, after, _ = corpus_results
    assert_one_line_error(results[case], *OTHER_CASES[case][1])
    assert after == before


def test_unreachable_ssh_target_fails_fast(corpus, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    toml = tmp_path / "board.toml"
    toml.write_text(f'name = "closed"\nkind = "ssh"\nhost = "127.0.0.1"\nport = {port}\nuser = "pi"\n'
                    f'python = "python3"\nworkdir = "/tmp/ec"\ntimeout_s = 5\n')
    (corpus / "out" / "tiny.tflite").write_bytes(b"")
    started = time.monotonic()
    result = cli("bench", corpus / "good.keras", "--target", toml)
    (corpus / "out" / "tiny.tflite").unlink()
    assert_one_line_error(result)
    assert time.monotonic() - started < 60


COMPLETE_OUTPUTS = {"compress": [["model.keras", "plan.json"]], "export": [["m.onnx", "m.onnx.audit.json"]]}


@pytest.mark.parametrize("command, delay_s", [("compress", 14), ("export", 12)])
def test_sigterm_leaves_no_partial_files(corpus, command, delay_s, tmp_path):
    """SIGTERM mid-run: the output directory holds either nothing or the complete set, never a part."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if command == "compress":
        args = ["compress", corpus / "good.keras", "--data", corpus / "calib.npz", "-o", out_dir,
                "--finetune-data", corpus / "calib.npz", "--epochs", "200"]
    else:
        args = ["export", corpus / "good.keras", "--to", "onnx", "-o", out_dir / "m.onnx"]
    process = subprocess.Popen([sys.executable, "-m", "edgecompress.cli", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_s)
    interrupted = process.poll() is None
    if interrupted:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert listing(out_dir) in ([], *COMPLETE_OUTPUTS[command])
    if interrupted and process.returncode != 0:
        # 130: our handler turned SIGTERM into a clean stop; -SIGTERM: it landed while Python was still importing
        # TensorFlow, before any output could exist (the listing check above covers both).
        assert process.returncode in (130, -signal.SIGTERM) and "Traceback" not in stderr, stderr
        if process.returncode == 130:
            assert "interrupted" in stderr.strip().splitlines()[-1]
