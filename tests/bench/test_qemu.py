"""The qemu kind: clear errors before setup, a small run when the arm64 root filesystem exists, and (slow)
bench/arm64_check.py end to end: fp32 top-1 identical, int8 within one quantization step."""
import subprocess
import sys
from pathlib import Path

import pytest

from edgecompress import bench
from edgecompress.errors import TargetError
from tests.bench.conftest import QUICK, write_toml

REPO = Path(__file__).resolve().parents[2]


def test_not_set_up_says_how(models, tmp_path):
    target = write_toml(tmp_path / "arm.toml", kind="qemu", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(TargetError, match=r"root filesystem in .*cache is not built: run `edgecompress target "
                                          r"setup arm`"):
        bench.run(models["base"], target=target, settings=QUICK)


def test_setup_names_missing_tools_before_downloading(tmp_path):
    target = bench.get_target(str(write_toml(tmp_path / "arm.toml", kind="qemu", cache_dir=str(tmp_path / "c"),
                                             qemu="qemu-nowhere-static")))
    with pytest.raises(TargetError, match="setup needs qemu-nowhere-static: apt-get install qemu-user-static"):
        target.setup(progress=lambda line: None)
    assert not (tmp_path / "c").exists()


def test_small_run_under_qemu_matches_host(models, data):
    target = bench.get_target("arm64-qemu")
    if target.readiness():
        pytest.skip(f"arm64-qemu not set up here ({target.readiness()})")
    settings = QUICK.__class__(min_runs=5, min_secs=0.05, warmup_secs=0.0, segments=1, max_samples=16)
    emulated = bench.run(models["base"], target=target, data=data, settings=settings)
    on_host = bench.run(models["base"], data=data, settings=settings)
    assert emulated.system["machine"] == "aarch64" and emulated.emulated
    assert emulated.to_dict()["timing"] == "emulated" and "emulated" in emulated.notes[0]
    assert emulated.models[0]["accuracy"]["top1"] == on_host.models[0]["accuracy"]["top1"]


@pytest.mark.slow
def test_arm64_check_script(tmp_path):
    """Sets up arm64-qemu when missing (root, debootstrap, network once), then the full check."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "arm64_check.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| lenet5")]
    assert len(rows) == 2 and all("| PASS |" in row for row in rows)
    assert (tmp_path / "arm64_check.json").stat().st_size > 0 and "EMULATED" in proc.stdout
