"""Kind `host`: run the runner on this machine, with this Python or with a virtual environment the target
file describes (e.g. one holding only numpy<2 and tflite-runtime, as a 32-bit Raspberry Pi OS user has)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgecompress.bench.base import Say, Target, last_line, run_process
from edgecompress.errors import TargetError


class HostTarget(Target):
    KIND = "host"
    FIELDS = {
        "python": (str, None, "interpreter that runs runner.py (default: the one running edgecompress)"),
        "venv": (str, None, "virtual environment directory `target setup` creates and the runner uses"),
        "pip": (list, [], "packages `target setup` installs into venv, e.g. ['numpy<2', 'tflite-runtime']"),
    }

    @property
    def python(self) -> str:
        if self.config["venv"]:
            return str(self.venv_dir / "bin" / "python")
        return os.path.expanduser(self.config["python"] or sys.executable)

    @property
    def venv_dir(self) -> Path:
        return Path(os.path.expanduser(self.config["venv"]))

    def readiness(self) -> str | None:
        if self.config["venv"] and not (self.venv_dir / ".edgecompress-ready").is_file():
            return f"virtual environment {self.venv_dir} is not set up: run `edgecompress target setup {self.name}`"
        return None

    def has_setup(self) -> bool:
        return bool(self.config["venv"])

    def execute(self, files: list[tuple[Path, str]], runner_args: list[str],
                timeout_s: float) -> subprocess.CompletedProcess:
        by_name = {name: str(path.resolve()) for path, name in files}
        args = [by_name.get(arg, arg) for arg in runner_args]
        return run_process([self.python, by_name["runner.py"], *args], timeout_s, f"target {self.name}",
                           env=runner_env())

    def setup(self, progress: Say = print) -> None:
        """Create the venv and pip-install its packages (needs PyPI once); a ready venv is left alone."""
        if not self.config["venv"]:
            return super().setup(progress)
        if self.readiness() is None:
            return progress(f"{self.name}: {self.venv_dir} is ready (delete it to rebuild)")
        progress(f"[1/2] {self.name}: creating virtual environment {self.venv_dir}")
        self._check(run_process([sys.executable, "-m", "venv", "--clear", str(self.venv_dir)], 300, "venv"))
        progress(f"[2/2] {self.name}: pip install {' '.join(self.config['pip'])}")
        pip = [str(self.venv_dir / "bin" / "python"), "-m", "pip", "install", "--only-binary=:all:"]
        self._check(run_process(pip + list(self.config["pip"]), 900, "pip install"))
        (self.venv_dir / ".edgecompress-ready").write_text(" ".join(self.config["pip"]) + "\n")
        progress(f"{self.name}: ready")

    def _check(self, proc: subprocess.CompletedProcess) -> None:
        if proc.returncode != 0:
            raise TargetError(f"target {self.name}: setup failed: {last_line(proc.stderr)}")


def runner_env() -> dict[str, str]:
    """This environment minus Python settings that would leak the host's packages into another interpreter."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return {**env, "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
