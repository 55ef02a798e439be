"""Build the arm64 Debian root filesystem for the `qemu` kind: debootstrap, unpack, aarch64 wheels, smoke test.

Each step leaves a marker in the cache directory, so a second `target setup` redoes nothing. The second
debootstrap stage is replaced by unpacking the downloaded .debs with dpkg-deb: that needs no binfmt_misc
registration (a machine-wide kernel setting) and Python runs without any maintainer script.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from edgecompress.bench.base import RUNNER_PATH, Say, last_json_line, last_line, run_process
from edgecompress.bench.targets import TargetConfig
from edgecompress.errors import TargetError

APT_DIR = Path("/etc/apt")
READY = ".edgecompress-ready"
PIP_ARCH = {"arm64": "aarch64"}
MANYLINUX_GLIBC_MINORS = range(17, 37)  # manylinux_2_17 ... 2_36 (bookworm has glibc 2.36)


def is_ready(cache_dir: Path) -> bool:
    return (cache_dir / READY).is_file()


def build(cache_dir: Path, config: TargetConfig, python_command: Callable[[], list[str]],
          progress: Say = print) -> None:
    """Every missing step, in order; prints `[i/n] step` lines and debootstrap's own progress."""
    root = cache_dir / "rootfs"
    steps = [("debootstrap", "download and unpack the base system (debootstrap --foreign)",
              lambda: _debootstrap(root, config, progress)),
             ("unpack", "unpack the remaining packages (python3 and its libraries)", lambda: _unpack(root)),
             ("wheels", "download aarch64 wheels: " + " ".join(config["packages"]),
              lambda: _pip(cache_dir, root, config, "download")),
             ("install", "install the wheels into the root filesystem",
              lambda: _pip(cache_dir, root, config, "install"))]
    _preflight(config)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for number, (key, label, action) in enumerate(steps, 1):
        marker = cache_dir / f".done-{key}"
        if marker.exists():
            progress(f"[{number}/{len(steps) + 1}] {label}: already done")
            continue
        progress(f"[{number}/{len(steps) + 1}] {label}")
        action()
        marker.touch()
    _shadow_host_cpu_lists(root)
    progress(f"[{len(steps) + 1}/{len(steps) + 1}] smoke test: runner.py --probe under qemu")
    (cache_dir / READY).write_text(json.dumps(_smoke_test(python_command()), indent=1) + "\n")
    progress(f"{config.name}: ready in {cache_dir}")


def _preflight(config: TargetConfig) -> None:
    """Refuse early, before any download: unknown arch, missing qemu."""
    if config["arch"] not in PIP_ARCH:
        raise TargetError(f"target {config.name}: arch {config['arch']!r} is not supported; use arm64")
    if shutil.which(config["qemu"]) is None:
        raise TargetError(f"target {config.name}: setup needs {config['qemu']}: apt-get install qemu-user-static")


def _require_debootstrap(config: TargetConfig) -> None:
    missing = [tool for tool in ("debootstrap", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise TargetError(f"target {config.name}: setup needs {', '.join(missing)}: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise TargetError(f"target {config.name}: debootstrap needs root: run "
                          f"`sudo edgecompress target setup {config.name}`")


def _debootstrap(root: Path, config: TargetConfig, progress: Say) -> None:
    _require_debootstrap(config)
    if root.exists():  # a partial tree from an interrupted run
        shutil.rmtree(root)
    mirror = config["mirror"] or apt_mirror(config["suite"])
    if not mirror:
        raise TargetError(f"target {config.name}: no Debian mirror for {config['suite']!r} in this machine's apt "
                          f"sources ({APT_DIR}/sources.list*); set mirror = 'http://...' in the target file")
    command = ["debootstrap", "--foreign", f"--arch={config['arch']}", "--variant=minbase", "--include=python3",
               config["suite"], str(root), mirror]
    progress(f"  {' '.join(command)}")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        lines = [_echo(line, progress) for line in proc.stdout]
    if proc.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise TargetError(f"target {config.name}: debootstrap failed: {last_line(''.join(lines))}")


def _echo(line: str, progress: Say) -> str:
    if line.startswith(("I: Retrieving", "I: Extracting", "E:", "W:")):
        progress("  " + line.rstrip())
    return line


def _unpack(root: Path) -> None:
    for deb in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        proc = run_process(["dpkg-deb", "-x", str(deb), str(root)], 300, f"dpkg-deb -x {deb.name}")
        if proc.returncode != 0:
            raise TargetError(f"unpacking {deb.name} failed: {last_line(proc.stderr)}")


def _shadow_host_cpu_lists(root: Path) -> None:
    """qemu -L falls back to host paths missing from the root filesystem; LiteRT's cpuinfo reading the host's
    x86 /sys CPU lists crashes, while empty lists make it fall back to portable kernels."""
    cpu_dir = root / "sys" / "devices" / "system" / "cpu"
    cpu_dir.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present"):
        (cpu_dir / name).write_text("")


def _pip(cache_dir: Path, root: Path, config: TargetConfig, action: str) -> None:
    wheels = cache_dir / "wheels"
    version = _rootfs_python_version(root, config)
    arch = PIP_ARCH[config["arch"]]
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in MANYLINUX_GLIBC_MINORS] + [f"manylinux2014_{arch}"]
    command = [sys.executable, "-m", "pip", action, "--only-binary=:all:", "--python-version", version,
               "--implementation", "cp", *[item for p in platforms for item in ("--platform", p)]]
    if action == "download":
        command += ["--dest", str(wheels)]
    else:
        command += ["--no-index", "--find-links", str(wheels), "--target",
                    str(root / "usr" / "lib" / "python3" / "dist-packages"), "--no-compile"]
    proc = run_process(command + list(config["packages"]), 1800, f"pip {action}")
    if proc.returncode != 0:
        raise TargetError(f"target {config.name}: pip {action} of {' '.join(config['packages'])} failed: "
                          f"{last_line(proc.stderr)}")


def _rootfs_python_version(root: Path, config: TargetConfig) -> str:
    python = root / config["python"].lstrip("/")
    name = os.path.basename(os.readlink(python)) if python.is_symlink() else python.name
    if not name.startswith("python3."):
        raise TargetError(f"{python}: cannot tell the Python version of the root filesystem ({name})")
    return name.removeprefix("python")


def _smoke_test(python_command: list[str]) -> dict:
    """runner.py --probe under qemu: the TFLite runtime and numpy must import there."""
    proc = run_process(python_command + [str(RUNNER_PATH), "--probe"], 300, "smoke test under qemu")
    facts = last_json_line(proc.stdout) or {}
    tflite = facts.get("runtimes", {}).get("tflite") or {}
    if proc.returncode != 0 or not tflite.get("name"):
        reason = tflite.get("missing") or facts.get("error", {}).get("message") or last_line(proc.stderr)
        raise TargetError(f"smoke test under qemu failed: {reason}")
    return facts


def apt_mirror(suite: str, apt_dir: Path | None = None) -> str | None:
    """The first `deb` URI this machine's apt uses for `suite` with component main (one-line and deb822)."""
    apt_dir = apt_dir or APT_DIR
    entries = []
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        entries += _one_line_entries(path)
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        entries += _deb822_entries(path)
    for uri, suites, components in entries:
        if suite in suites and "main" in components:
            return uri
    return None


def _one_line_entries(path: Path) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for line in _read_lines(path):
        words = line.split("#")[0].split()
        if words[:1] == ["deb"]:
            words = [w for w in words[1:] if not w.startswith("[") and not w.endswith("]") and "=" not in w]
            if len(words) >= 3:
                entries.append((words[0], [words[1]], words[2:]))
    return entries


def _deb822_entries(path: Path) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for stanza in "\n".join(_read_lines(path)).split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            key, _, value = line.partition(":")
            if value and not line.startswith((" ", "#")):
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            entries += [(uri, fields.get("suites", []), fields.get("components", [])) for uri in fields.get("uris", [])]
    return entries


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []
