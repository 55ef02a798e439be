"""Kind `qemu`: an arm64 Debian root filesystem run under qemu-user on this machine. Times measured here are
emulated: they are labelled so in every report and are never to be compared with a real board's."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgecompress.bench import rootfs
from edgecompress.bench.base import Say, Target, run_process
from edgecompress.bench.local import runner_env

CACHE_DIR = Path("~/.cache/edgecompress/arm64-qemu")


class QemuTarget(Target):
    KIND = "qemu"
    emulated = True
    FIELDS = {
        "arch": (str, "arm64", "Debian architecture of the root filesystem"),
        "suite": (str, "bookworm", "Debian release (bookworm has Python 3.11)"),
        "cache_dir": (str, str(CACHE_DIR), "where the root filesystem and wheels are kept"),
        "qemu": (str, "qemu-aarch64-static", "qemu-user program for the architecture"),
        "python": (str, "/usr/bin/python3", "Python inside the root filesystem"),
        "packages": (list, ["numpy", "ai-edge-litert"], "pip packages (binary wheels) installed in it"),
        "mirror": (str, None, "Debian mirror URL (default: the one this machine's apt uses)"),
    }

    @property
    def cache_dir(self) -> Path:
        return Path(os.path.expanduser(self.config["cache_dir"]))

    @property
    def root(self) -> Path:
        return self.cache_dir / "rootfs"

    def readiness(self) -> str | None:
        if not rootfs.is_ready(self.cache_dir):
            return (f"the {self.config['arch']} root filesystem in {self.cache_dir} is not built: run "
                    f"`edgecompress target setup {self.name}` (needs root, debootstrap, qemu-user-static and "
                    f"network access once)")
        if shutil.which(self.config["qemu"]) is None:
            return f"{self.config['qemu']} not found: apt-get install qemu-user-static"
        return None

    def has_setup(self) -> bool:
        return True

    def setup(self, progress: Say = print) -> None:
        rootfs.build(self.cache_dir, self.config, self.python_command, progress)

    def python_command(self) -> list[str]:
        """qemu-user running the root filesystem's python. -L makes absolute paths resolve inside the root
        filesystem first; rootfs.build shadows the host's CPU lists in /sys there (LiteRT crashes on them)."""
        return [self.config["qemu"], "-L", str(self.root), str(self.root) + self.config["python"]]

    def parse(self, proc: subprocess.CompletedProcess, staged: dict[str, str]) -> dict:
        """The runner's result, its CPU named for what it is: the host's CPU translating arm64 code."""
        result = super().parse(proc, staged)
        system = result.get("system", {})
        system["cpu_model"] = f"emulated {system.get('machine', 'arm64')} (qemu-user) on {system.get('cpu_model')}"
        return result

    def execute(self, files: list[tuple[Path, str]], runner_args: list[str],
                timeout_s: float) -> subprocess.CompletedProcess:
        (self.root / "tmp").mkdir(exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="edgecompress-", dir=self.root / "tmp"))
        try:
            inside = "/" + str(scratch.relative_to(self.root))
            for path, name in files:
                shutil.copyfile(path, scratch / name)
            names = {name for _, name in files}
            args = [f"{inside}/{arg}" if arg in names else arg for arg in runner_args]
            return run_process([*self.python_command(), f"{inside}/runner.py", *args], timeout_s,
                               f"target {self.name} (emulated {self.config['arch']})", env=runner_env())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
