"""The adb kind: one clear line when adb or the phone is missing, and benchmark_model's log parsed.

No phone is attached here: a stand-in `adb` script plays the device, running a stand-in benchmark_model
that prints its log in the format of TFLite's tool, so the plumbing (push, flags, parse) is exercised.
"""
import os
import stat
import sys

import pytest

from edgecompress import bench
from edgecompress.bench.adb import parse_benchmark_model
from edgecompress.errors import TargetError
from tests.bench.conftest import QUICK, write_toml

NEW_LOG = """INFO: STARTING!
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/edgecompress/m0_base.tflite]
INFO: The input model file size (MB): 0.043
INFO: Initialized session in 3.501ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=12 first=156677 curr=33205 min=32578 max=156677 avg=43268.1 std=34197
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=33228 curr=33130 min=32687 max=33239 avg=33071.8 std=129 p5=32700 median=33080 p95=33230
INFO: Inference timings in us: Init: 3501, First inference: 156677, Warmup (avg): 43268.1, Inference (avg): 33071.8
INFO: Memory footprint delta from the start of the tool (MB): init=4.58984 overall=7.82031
INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383
"""
OLD_LOG = """Initialized session in 5.2ms.
count=9 first=91020 curr=55300 min=54900 max=91020 avg=60125.5 std=11800
count=20 first=31500 curr=30900 min=30718 max=36410 avg=31118.1 std=1323
Inference timings in us: Init: 5200, First inference: 91020, Warmup (avg): 60125.5, Inference (avg): 31118.1
"""

FAKE_ADB = r'''#!{python}
"""Stand-in adb: devices from $FAKE_ADB_DEVICES; push copies into $FAKE_ADB_ROOT; shell runs a few commands."""
import os, shutil, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["-s"]:
    args = args[2:]
root = os.environ["FAKE_ADB_ROOT"]
if args == ["devices"]:
    print("List of devices attached")
    for serial in filter(None, os.environ.get("FAKE_ADB_DEVICES", "").split(",")):
        print(serial + "\tdevice")
elif args[0] == "push":
    target = root + args[2]
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(args[1], target)
elif args[0] == "shell" and args[1].startswith("getprop"):
    print("Pixel Test\nTensor G2\narm64-v8a\n14")
elif args[0] == "shell" and args[1] in ("mkdir", "chmod"):
    pass
elif args[0] == "shell":
    sys.exit(subprocess.run([sys.executable, root + args[1], *args[2:]]).returncode)
'''
FAKE_BENCHMARK_MODEL = '''import os, sys
flags = dict(a[2:].split("=", 1) for a in sys.argv[1:])
assert flags["graph"].endswith(".tflite") and int(flags["num_runs"]) >= 1 and flags["num_threads"] == "1"
sys.stdout.write(open(os.environ["FAKE_BENCHMARK_LOG"]).read())
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(tmp_path / "phone"))
    binary = tmp_path / "benchmark_model"
    binary.write_text(FAKE_BENCHMARK_MODEL)
    (tmp_path / "log.txt").write_text(NEW_LOG)
    monkeypatch.setenv("FAKE_BENCHMARK_LOG", str(tmp_path / "log.txt"))
    return write_toml(tmp_path / "phone.toml", kind="adb", benchmark_model=str(binary), timeout_s=5)


def test_new_log_format_is_parsed():
    record = parse_benchmark_model(NEW_LOG, "base.tflite")
    assert record["latency_ms"] == {"p50": 33.08, "p90": None, "p99": None, "mean": 33.0718, "std": 0.129,
                                    "min": 32.687, "max": 33.239, "n": 50}
    assert record["init_ms"] == 3.501 and record["first_run_ms"] == 156.677 and record["runs"] == 50
    assert record["peak_rss_alone_bytes"] == int(93.2383 * 2**20) and record["rss_delta_bytes"] == int(7.82031 * 2**20)


def test_old_log_format_uses_the_last_count_line():
    record = parse_benchmark_model(OLD_LOG, "base.tflite")
    assert record["latency_ms"]["p50"] is None and record["latency_ms"]["mean"] == 31.1181
    assert record["runs"] == 20 and record["rss_delta_bytes"] is None


def test_log_without_timings_is_an_error():
    with pytest.raises(TargetError, match="benchmark_model gave no timings for x.tflite: ERROR: bad graph"):
        parse_benchmark_model("INFO: STARTING!\nERROR: bad graph\n", "x.tflite")


def test_no_adb_binary_is_one_clear_line(models, tmp_path):
    target = write_toml(tmp_path / "phone.toml", kind="adb", benchmark_model="/nowhere/benchmark_model",
                        adb="/nowhere/adb")
    with pytest.raises(TargetError, match=r"adb not found .*apt-get install adb") as caught:
        bench.run(models["base"], target=target, settings=QUICK)
    assert "\n" not in str(caught.value)


def test_no_device_attached_is_one_clear_line(fake_adb, models, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    with pytest.raises(TargetError, match=r"no Android device attached \(adb devices lists: none\)") as caught:
        bench.run(models["base"], target=fake_adb, settings=QUICK)
    assert "\n" not in str(caught.value)


def test_wrong_serial_names_the_attached_devices(fake_adb, models, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "AAA,BBB")
    with pytest.raises(TargetError, match=r"several devices \(adb devices lists: AAA \(device\), BBB"):
        bench.run(models["base"], target=fake_adb, settings=QUICK)


def test_run_through_stand_in_device(fake_adb, models, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "SERIAL1")
    result = bench.run([models["base"], models["cheap"]], target=fake_adb, settings=QUICK)
    assert [m["name"] for m in result.models] == ["base.tflite", "cheap.tflite"]
    assert result.system["cpu_model"] == "Pixel Test (Tensor G2)" and result.system["serial"] == "SERIAL1"
    assert result.comparisons[0]["ci95"] is None and "no interleaving" in result.notes[0]
    assert result.peak_rss_bytes == int(93.2383 * 2**20)
