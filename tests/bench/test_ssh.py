"""The ssh kind against a real sshd on 127.0.0.1 (see conftest.Board): runs, refusals and timeouts."""
import json
import socket
import time

import pytest

from edgecompress import bench
from edgecompress.cli import main
from edgecompress.errors import TargetError
from tests.bench.conftest import QUICK, free_port


def test_bench_on_the_board_matches_the_host(board, models, data, tmp_path, capsys):
    out = tmp_path / "board.json"
    argv = ["bench", str(models["base"]), "--target", str(board.toml()), "--data", str(data), "--json", str(out),
            "--min-runs", "20", "--min-secs", "0.1", "--warmup-secs", "0.02"]
    assert main(argv) == 0, capsys.readouterr().err
    on_board = json.loads(out.read_text())
    on_host = bench.run(models["base"], data=data, settings=QUICK)
    assert on_board["target"]["kind"] == "ssh" and on_board["timing"] == "device"
    assert on_board["system"]["python_executable"] == str(board.python)  # the board's own interpreter ran it
    board_model, host_model = on_board["models"][0], on_host.models[0]
    assert board_model["accuracy"]["top1"] == host_model["accuracy"]["top1"]
    assert board_model["accuracy"]["top1_accuracy"] == host_model["accuracy"]["top1_accuracy"]
    assert board_model["runs"] >= 20 and len(board_model["samples_ms"]) == board_model["runs"]
    assert not list((board.home / ".cache" / "edgecompress-bench").glob("run-*"))  # scratch removed


def test_paired_comparison_on_the_board(board, models):
    """The board times both models interleaved and reports a paired speedup with its CI. How fast the cheaper
    model is depends on the load of the machine running the tests (speed goals live in bench/), so only the
    direction is checked: a 4x cheaper model whose CI lies wholly below 1 means the pair was swapped."""
    result = bench.run([models["base"], models["cheap"]], target=board.toml(), settings=QUICK)
    comparison = result.comparisons[0]
    low, high = comparison["ci95"]
    assert low <= comparison["speedup"] <= high and comparison["pairs"] >= 2
    assert high > 1.0


def test_wrong_host_key_is_refused(board, models):
    target = board.toml(known_hosts=str(board.wrong_known_hosts))
    with pytest.raises(TargetError, match=r"host key of .*127\.0\.0\.1.* does not match .*refused"):
        bench.run(models["base"], target=target, settings=QUICK)


def test_unknown_host_key_is_refused(board, models, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TargetError, match="is not in .*known_hosts: refused"):
        bench.run(models["base"], target=board.toml(known_hosts=str(empty)), settings=QUICK)


def test_closed_port_fails_fast(board, models):
    with pytest.raises(TargetError, match="refused the connection"):
        bench.run(models["base"], target=board.toml(port=free_port()), settings=QUICK)


def test_silent_port_fails_within_the_timeout(board, models):
    """A port that accepts connections but never speaks SSH: a TargetError after timeout_s, never a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(TargetError, match="within 2 s|timed out"):
            bench.run(models["base"], target=board.toml(port=silent.getsockname()[1], timeout_s=2), settings=QUICK)
        assert time.monotonic() - start < 2 + 3


def test_board_without_python(board, models):
    with pytest.raises(TargetError, match="python not found.*install Python 3"):
        bench.run(models["base"], target=board.toml(python="/opt/nowhere/python3"), settings=QUICK)


def test_board_without_numpy_says_what_to_install(board, models):
    with pytest.raises(TargetError, match="numpy is not importable by /usr/bin/python3.*pip install numpy"):
        bench.run(models["base"], target=board.toml(python="/usr/bin/python3"), settings=QUICK)


def test_cli_error_is_one_line_and_leaves_no_file(board, models, tmp_path, capsys):
    out = tmp_path / "never.json"
    code = main(["bench", str(models["base"]), "--target", str(board.toml(known_hosts=str(board.wrong_known_hosts))),
                 "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".never*"))
