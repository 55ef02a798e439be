"""The wheel carries what an installed edgecompress needs outside its code: the target files, the zoo's trained
weights and the embedded Fashion-MNIST subset (a non-editable `pip install .` has no checkout to read them from)."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_targets_weights_and_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("edgecompress-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    targets = {p.name for p in (ROOT / "targets").glob("*.toml")}
    assert targets and {f"edgecompress/targets/{name}" for name in targets} <= names
    weights = {p.name for p in (ROOT / "edgecompress" / "zoo" / "weights").glob("*.keras")}
    assert weights and {f"edgecompress/zoo/weights/{name}" for name in weights} <= names
    assert "edgecompress/data/fashion_mnist_subset.npz" in names
    assert "edgecompress/ondevice/runner.py" in names  # copied to boards by bench


def test_targets_are_found_through_the_package():
    from edgecompress.bench import targets

    assert {"host", "rpi4", "arm64-qemu"} <= set(targets.discover())
