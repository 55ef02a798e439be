"""The Target interface every kind implements, and turning runner.py's exit into a result or a project error.

Kinds only say how to put files on the target and run a command there; staging names, arguments and
error mapping are shared here.
"""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Callable

from edgecompress.bench.settings import BenchSettings
from edgecompress.bench.targets import TargetConfig
from edgecompress.errors import DataError, EdgeCompressError, ModelLoadError, TargetError

RUNNER_PATH = Path(__file__).parent.parent / "ondevice" / "runner.py"  # copied to the target as is
RUNNER_ERRORS = {"model": ModelLoadError, "data": DataError, "runtime": TargetError, "usage": TargetError}
Say = Callable[[str], None]  # prints one line of setup progress


class Target:
    """A place to run models. Subclasses set KIND, FIELDS and implement `execute`."""

    KIND = ""
    FIELDS: dict = {}
    emulated = False

    def __init__(self, config: TargetConfig):
        self.config = config
        self.name = config.name

    # -- what subclasses provide
    def execute(self, files: list[tuple[Path, str]], runner_args: list[str],
                timeout_s: float) -> subprocess.CompletedProcess:
        """Put each local file on the target under its staged name (one directory), run
        `python runner.py *runner_args` there with that directory as the working directory."""
        raise NotImplementedError

    def setup(self, progress: Say = print) -> None:
        progress(f"{self.name}: nothing to set up for kind {self.KIND!r}")

    def readiness(self) -> str | None:
        """None when the target can run now, else what to do first."""
        return None

    def has_setup(self) -> bool:
        """Whether `edgecompress target setup` builds something for this target."""
        return False

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.KIND, "description": self.config.description,
                "emulated": self.emulated, "source": str(self.config.source) if self.config.source else None}

    # -- shared behaviour
    def benchmark(self, models: list[Path], data: Path | None, settings: BenchSettings) -> dict:
        """Run the runner on the target and return its JSON, with local paths in place of staged names."""
        self._require_ready()
        files = staged_files(models, data)
        names = [name for _, name in files]
        args = names[1:1 + len(models)] + (["--data", names[-1]] if data else []) + settings.runner_args()
        timeout_s = self.config.run_timeout_s + settings.budget_s(len(models))
        result = self.parse(self.execute(files, args, timeout_s), dict(zip(names, [str(p) for p, _ in files])))
        for record, path in zip(result.get("models", []), models):
            record.update(path=str(path), name=path.name)
        return result

    def probe(self) -> dict:
        """System facts and the runtimes the target offers (runner.py --probe)."""
        self._require_ready()
        return self.parse(self.execute([(RUNNER_PATH, "runner.py")], ["--probe"], self.config.timeout_s + 60), {})

    def _require_ready(self) -> None:
        todo = self.readiness()
        if todo:
            raise TargetError(f"target {self.name}: {todo}")

    def parse(self, proc: subprocess.CompletedProcess, staged: dict[str, str]) -> dict:
        """The runner's JSON on success; otherwise the project error its exit describes."""
        payload = last_json_line(proc.stdout)
        if proc.returncode == 0 and payload and "error" not in payload:
            return payload
        if payload and "error" in payload:
            error = payload["error"]
            message = _unstage(error.get("message", ""), staged)
            raise RUNNER_ERRORS.get(error.get("kind"), TargetError)(f"target {self.name}: {message}")
        raise self.failure(proc)

    def failure(self, proc: subprocess.CompletedProcess) -> EdgeCompressError:
        """The error for an exit without a runner verdict; kinds refine it (ssh knows its 255)."""
        code = proc.returncode
        signal_number = -code if code < 0 else code - 128 if 128 < code < 160 else None
        if signal_number:
            name = _signal_name(signal_number)
            return TargetError(f"target {self.name}: the runner crashed with signal {signal_number} {name}; the model "
                               f"may be corrupt or use ops this runtime lacks (stderr: {last_line(proc.stderr)})")
        if code == 127:
            return TargetError(f"target {self.name}: python not found ({last_line(proc.stderr)}); install Python 3 "
                               f"on the target (apt install python3) or set 'python' in its .toml")
        return TargetError(f"target {self.name}: runner failed with exit code {code}: {last_line(proc.stderr)}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return ""


def staged_files(models: list[Path], data: Path | None) -> list[tuple[Path, str]]:
    """(local path, name on the target): runner first, then models (unique names), then data."""
    files = [(RUNNER_PATH, "runner.py")]
    files += [(path, f"m{index}_{_safe(path.name)}") for index, path in enumerate(models)]
    return files + ([(data, "data.npz")] if data else [])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def last_json_line(stdout: str | bytes | None) -> dict | None:
    text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else (stdout or "")
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _unstage(message: str, staged: dict[str, str]) -> str:
    for name in sorted(staged, key=len, reverse=True):
        message = message.replace(name, staged[name])
    return message


def last_line(text: str | bytes | None) -> str:
    """The last non-empty line of a process output, or "no output"."""
    text = text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else "no output"


def run_process(command: list[str], timeout_s: float, what: str, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run with text output; a timeout or a missing program becomes a TargetError naming `what`."""
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout_s, **kwargs)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what}: no answer within {timeout_s:.0f} s; is it reachable and running? "
                          f"(raise timeout_s / run_timeout_s in the target file if it is just slow)") from None
    except FileNotFoundError as error:
        raise TargetError(f"{what}: program {error.filename!r} not found; install it or fix its path") from None
