"""Kind `ssh`: a board reached with OpenSSH (Raspberry Pi and the like). Host keys are always checked,
never a password: files go over as one tar stream and the runner runs in a scratch directory removed after."""
from __future__ import annotations

import io
import math
import os
import shlex
import subprocess
import tarfile
import uuid
from pathlib import Path

from edgecompress.bench.base import Target, last_line, run_process
from edgecompress.bench.targets import REQUIRED
from edgecompress.errors import EdgeCompressError, TargetError

# ssh's stderr -> what it means and what to do; first match wins.
SSH_FAILURES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "host key of {where} does not match {known_hosts}: refused. If "
     "the board was reinstalled, check its new key, then remove the old one with ssh-keygen -R '{key_host}'{file}"),
    ("Host key verification failed", "host key of {where} is not in {known_hosts}: refused (host-key checking "
     "stays on). Connect once by hand (ssh {where}), check the fingerprint and accept it, then retry"),
    ("Permission denied", "{where} refused the login: put your public key in the board's "
     "~/.ssh/authorized_keys (ssh-copy-id) or set identity_file; passwords are never used"),
    ("Connection refused", "{where} refused the connection: is sshd running there, and is the port right?"),
    ("Could not resolve hostname", "cannot resolve {where}: check 'host' or add the alias to ~/.ssh/config"),
    ("timed out", "no answer from {where} within {timeout:.0f} s: is the board on and reachable?"),
    ("No route to host", "no route to {where}: is the board on this network?"),
)


class SshTarget(Target):
    KIND = "ssh"
    FIELDS = {
        "host": (str, REQUIRED, "host name, address or ~/.ssh/config alias of the board"),
        "user": (str, None, "login name (default: ssh's, e.g. from ~/.ssh/config)"),
        "port": (int, None, "ssh port (default: ssh's)"),
        "identity_file": (str, None, "private key to log in with (no passwords)"),
        "known_hosts": (str, None, "known_hosts file to check the board's host key against (default: ssh's)"),
        "python": (str, "python3", "Python on the board that has numpy and a TFLite interpreter"),
        "workdir": (str, ".cache/edgecompress-bench", "directory on the board (relative to home) for scratch files"),
        "ssh_options": (list, [], "extra -o options, e.g. ['ProxyJump=gateway']; cannot turn host-key checks off"),
    }

    def ssh_command(self) -> list[str]:
        """ssh with our options first: for ssh the first value given wins, so ssh_options cannot undo them."""
        timeout_s = max(1, math.ceil(self.config.timeout_s))
        command = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                   "-o", f"ConnectTimeout={timeout_s}", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                   "-o", "LogLevel=ERROR"]
        if self.config["known_hosts"]:
            command += ["-o", f"UserKnownHostsFile={os.path.expanduser(self.config['known_hosts'])}"]
        if self.config["identity_file"]:
            command += ["-i", os.path.expanduser(self.config["identity_file"]), "-o", "IdentitiesOnly=yes"]
        command += ["-p", str(self.config["port"])] if self.config["port"] else []
        command += ["-l", self.config["user"]] if self.config["user"] else []
        for option in self.config["ssh_options"]:
            command += ["-o", option]
        return command + [self.config["host"], "--"]

    def check_python(self) -> None:
        """One short connection that proves the board answers, trusts us and has the named python."""
        remote = f"{_remote_path(self.config['python'])} -c 'import sys; print(sys.version_info[0])'"
        proc = run_process(self.ssh_command() + [remote], self.config.timeout_s, f"target {self.name} ({self._where()})")
        if proc.returncode != 0:
            raise self.failure(proc)

    def execute(self, files: list[tuple[Path, str]], runner_args: list[str],
                timeout_s: float) -> subprocess.CompletedProcess:
        self.check_python()
        scratch = f"{_remote_path(self.config['workdir'])}/run-{uuid.uuid4().hex[:12]}"
        runner = " ".join([_remote_path(self.config["python"]), "runner.py", *map(shlex.quote, runner_args)])
        remote = (f"d={scratch}; mkdir -p \"$d\" && tar -xf - -C \"$d\" && cd \"$d\" && {runner}; "
                  f"rc=$?; cd && rm -rf \"$d\"; exit $rc")
        return run_process(self.ssh_command() + [remote], timeout_s, f"target {self.name} ({self._where()})",
                           input=_tar_bytes(files))

    def failure(self, proc: subprocess.CompletedProcess) -> EdgeCompressError:
        if proc.returncode != 255:
            return super().failure(proc)
        stderr = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        for needle, template in SSH_FAILURES:
            if needle in stderr:
                return TargetError(f"target {self.name}: " + template.format(
                    where=self._where(), known_hosts=self.config["known_hosts"] or "your known_hosts",
                    key_host=self._key_host(), timeout=self.config.timeout_s,
                    file=f" -f {self.config['known_hosts']}" if self.config["known_hosts"] else ""))
        return TargetError(f"target {self.name}: ssh to {self._where()} failed: {last_line(stderr)}")

    def _where(self) -> str:
        user = f"{self.config['user']}@" if self.config["user"] else ""
        port = f" port {self.config['port']}" if self.config["port"] else ""
        return f"{user}{self.config['host']}{port}"

    def _key_host(self) -> str:
        port = self.config["port"]
        return f"[{self.config['host']}]:{port}" if port and port != 22 else self.config["host"]


def _remote_path(path: str) -> str:
    """Shell-quote a path for the remote shell, keeping a leading ~/ expandable."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _tar_bytes(files: list[tuple[Path, str]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, name in files:
            archive.add(str(path), arcname=name, recursive=False)
    return buffer.getvalue()
