"""Fixtures for the benchmark tests: tiny .tflite/.onnx models built here, data, quick settings, and a real
sshd on 127.0.0.1 with a throwaway user (the "board")."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from edgecompress.bench import BenchSettings

QUICK = BenchSettings(min_runs=20, min_secs=0.1, max_secs=5.0, warmup_runs=1, warmup_secs=0.02, segments=2)
INPUT_SHAPE = (16, 16, 3)
BOARD_PACKAGES = ("numpy", "numpy.libs", "ai_edge_litert")  # what the runner imports on the board


def tiny_cnn(width: int, input_shape=INPUT_SHAPE, seed: int = 0):
    """Two 3x3 convolutions of `width` channels, global pooling and a 10-way Dense: halving the width makes
    the model about 4x cheaper (the second convolution's FLOPs scale with width squared)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(width, 3, activation="relu"),
                             keras.layers.Conv2D(width, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])


def to_tflite(model, path: Path, int8_calibration: np.ndarray | None = None) -> Path:
    """Convert with tf.lite.TFLiteConverter: float32, or full int8 (int8 in and out) from calibration samples."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in int8_calibration[:32])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def tiny_onnx(path: Path, input_shape=INPUT_SHAPE, classes: int = 10) -> Path:
    """Flatten + MatMul + Relu written with onnx.helper (no TensorFlow), NHWC like our exports."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((int(np.prod(input_shape)), classes)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["mm"]),
         helper.make_node("Relu", ["mm"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def write_data(path: Path, count: int = 48, input_shape=INPUT_SHAPE, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.standard_normal((count, *input_shape)).astype(np.float32),
             y=rng.integers(0, 10, size=count))
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """base.tflite, its byte-identical copy, cheap.tflite (~4x fewer FLOPs), base_int8.tflite, tiny.onnx."""
    directory = tmp_path_factory.mktemp("models")
    calibration = np.random.default_rng(2).standard_normal((32, *INPUT_SHAPE)).astype(np.float32)
    base = tiny_cnn(32)
    made = {"base": to_tflite(base, directory / "base.tflite"),
            "cheap": to_tflite(tiny_cnn(16, seed=1), directory / "cheap.tflite"),
            "base_int8": to_tflite(base, directory / "base_int8.tflite", int8_calibration=calibration),
            "onnx": tiny_onnx(directory / "tiny.onnx")}
    made["copy"] = Path(shutil.copyfile(made["base"], directory / "base_copy.tflite"))
    return made


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "test.npz")


def write_toml(path: Path, **fields) -> Path:
    """A target file from keyword fields (strings quoted, lists and numbers as TOML)."""
    def value(v):
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        return str(v).lower() if isinstance(v, bool) else str(v)
    path.write_text("".join(f"{key} = {value(v)}\n" for key, v in fields.items()))
    return path


def link_packages(site_packages: Path, names=BOARD_PACKAGES) -> None:
    """Give a board venv this interpreter's installed packages by hard links (no download, no copy; the
    throwaway user can read them although /root, where they live, is closed to it)."""
    source = Path(sysconfig.get_paths()["purelib"])
    wanted = list(names) + [p.name for n in names for p in source.glob(f"{n.replace('.', '_')}-*.dist-info")]
    for name in wanted:
        target = site_packages / name
        try:
            shutil.copytree(source / name, target, copy_function=os.link)
        except (OSError, shutil.Error):  # another file system: copy instead
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source / name, target)


def board_python() -> str | None:
    """A system Python of this interpreter's minor version that any user can run (Debian's python3.11)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/python{version}", "/usr/bin/python3"):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True) if os.path.exists(candidate) else None
        if probe and probe.stdout.strip() == version:
            return candidate
    return None


def make_venv(directory: Path, packages=BOARD_PACKAGES) -> Path:
    """A venv of the system Python holding only `packages`; returns its python."""
    python = board_python()
    if python is None:
        pytest.skip(f"needs /usr/bin/python{sys.version_info.major}.{sys.version_info.minor} "
                    f"(apt-get install python3 python3-venv)")
    subprocess.run([python, "-m", "venv", "--without-pip", str(directory)], check=True)
    site = next((directory / "lib").glob("python3*/site-packages"))
    link_packages(site, packages)
    return directory / "bin" / "python"


def _missing_sshd(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this must run in CI)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {process.stderr.read().decode()}")
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("sshd did not start listening")


class Board:
    """A throwaway user on a private sshd at 127.0.0.1:port, and the target file pointing at it."""

    def __init__(self, root: Path):
        self.root = root
        self.user = "ecb" + uuid.uuid4().hex[:8]
        self.home = root / "home"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> "Board":
        subprocess.run(["useradd", "--home-dir", str(self.home), "--create-home", "--shell", "/bin/sh",
                        "--password", "*", self.user], check=True, capture_output=True)
        for name in ("host_key", "user_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(self.root / name)],
                           check=True)
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text((self.root / "user_key.pub").read_text())
        self.python = make_venv(self.home / "venv")
        subprocess.run(["chown", "-R", f"{self.user}:", str(ssh_dir)], check=True)
        subprocess.run(["chmod", "600", str(ssh_dir / "authorized_keys")], check=True)
        self.known_hosts = self._known_hosts("good_known_hosts", "host_key.pub")
        self.wrong_known_hosts = self._known_hosts("wrong_known_hosts", "other_key.pub")
        self._start_sshd()
        return self

    def _known_hosts(self, name: str, public_key: str) -> Path:
        key_type, key = (self.root / public_key).read_text().split()[:2]
        path = self.root / name
        path.write_text(f"[127.0.0.1]:{self.port} {key_type} {key}\n")
        return path

    def _start_sshd(self) -> None:
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.root / 'host_key'}",
            f"PidFile {self.root / 'sshd.pid'}", "AuthorizedKeysFile .ssh/authorized_keys", "UsePAM no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin no", f"AllowUsers {self.user}", "StrictModes yes", "LogLevel ERROR", ""]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.process = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                        stderr=subprocess.PIPE)
        _wait_for_port(self.port, self.process)

    def toml(self, path: Path | None = None, **overrides) -> Path:
        fields = {"kind": "ssh", "description": "sshd on 127.0.0.1 as a stand-in board", "host": "127.0.0.1",
                  "port": self.port, "user": self.user, "identity_file": str(self.root / "user_key"),
                  "known_hosts": str(self.known_hosts), "python": str(self.python),
                  "workdir": ".cache/edgecompress-bench", "timeout_s": 10}
        fields.update(overrides)
        return write_toml(path or self.root / f"board-{uuid.uuid4().hex[:6]}.toml", **fields)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
        subprocess.run(["userdel", "--force", self.user], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def board():
    """A real sshd on 127.0.0.1 with a throwaway user whose python has numpy + ai_edge_litert."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None:
        _missing_sshd("sshd is not installed: apt-get install openssh-server")
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("the ssh tests create a throwaway user with useradd, which needs root")
    root = Path(tempfile.mkdtemp(prefix="ecbench-ssh-", dir="/tmp"))
    root.chmod(0o755)  # the throwaway user must reach its home and venv inside
    started = Board(root)
    try:
        yield started.start()
    finally:
        started.stop()
