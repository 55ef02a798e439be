"""Benchmark targets: `targets/*.toml` files, discovered by name and checked field by field against their kind.

What a kind does (copy files, run the runner) lives in one module per kind: local.py, ssh.py, adb.py, qemu.py.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from edgecompress.errors import TargetError

REQUIRED = object()  # marks a field without a default
COMMON_FIELDS = {  # field: (type, default, help)
    "kind": (str, REQUIRED, "host, ssh, adb or qemu"),
    "name": (str, None, "defaults to the file name without .toml"),
    "description": (str, "", "one line shown by `edgecompress target list`"),
    "timeout_s": ((int, float), 10.0, "seconds to wait for a connection before giving up"),
    "run_timeout_s": ((int, float), 900.0, "seconds a whole benchmark may take on the target"),
}


@dataclass
class TargetConfig:
    """A parsed, checked target file: common fields as attributes, kind-specific ones in `fields`."""

    name: str
    kind: str
    description: str
    timeout_s: float
    run_timeout_s: float
    fields: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def target_dirs() -> list[Path]:
    """Where target files are looked up, first match wins: $EDGECOMPRESS_TARGETS (os.pathsep-separated),
    ~/.config/edgecompress/targets, then the shipped ones (edgecompress/targets: in a checkout a link to the
    top-level targets/, in an installed wheel a copy of it)."""
    extra = [Path(p) for p in os.environ.get("EDGECOMPRESS_TARGETS", "").split(os.pathsep) if p]
    shipped = Path(__file__).resolve().parent.parent / "targets"
    return extra + [Path.home() / ".config" / "edgecompress" / "targets", shipped]


def discover() -> dict[str, Path]:
    """Target name -> file, over every target directory (earlier directories shadow later ones)."""
    found: dict[str, Path] = {}
    for directory in target_dirs():
        for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
            found.setdefault(path.stem, path)
    return found


def resolve(spec: str) -> Path | None:
    """The file for a target name or path; None for the built-in host when no host.toml exists."""
    if spec.endswith(".toml") or os.sep in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TargetError(f"target file {path} does not exist; give a .toml path or one of: "
                              f"{', '.join(sorted(discover())) or 'host'}")
        return path
    known = discover()
    if spec in known:
        return known[spec]
    if spec == "host":
        return None
    close = difflib.get_close_matches(spec, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TargetError(f"unknown target {spec!r}{hint}; known targets: {', '.join(sorted(known)) or 'host'}; "
                      f"or give the path of a target .toml file")


def load_config(path: Path | None, kind_fields: dict[str, dict]) -> TargetConfig:
    """Parse and check one target file against COMMON_FIELDS and the fields of its kind."""
    if path is None:
        return TargetConfig("host", "host", "this machine", 10.0, 900.0, _defaults(kind_fields["host"]))
    raw = _read_toml(path)
    kind = raw.get("kind")
    if kind not in kind_fields:
        raise TargetError(f"{path}: field 'kind' must be one of {', '.join(kind_fields)}, got {kind!r}")
    schema = {**COMMON_FIELDS, **kind_fields[kind]}
    values = {key: _check_field(path, key, value, schema) for key, value in raw.items()}
    for key, (_, default, help_text) in schema.items():
        if default is REQUIRED and key not in values:
            raise TargetError(f"{path}: missing field '{key}' ({help_text}), needed by kind {kind!r}")
        values.setdefault(key, default)
    common = {key: values.pop(key) for key in COMMON_FIELDS}
    return TargetConfig(name=common["name"] or path.stem, kind=kind, description=common["description"],
                        timeout_s=float(common["timeout_s"]), run_timeout_s=float(common["run_timeout_s"]),
                        fields=values, source=path)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise TargetError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise TargetError(f"{path}: cannot read ({error.strerror})") from None


def _check_field(path: Path, key: str, value: Any, schema: dict) -> Any:
    if key not in schema:
        close = difflib.get_close_matches(key, list(schema), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise TargetError(f"{path}: unknown field '{key}' ({hint}fields for this kind: {', '.join(schema)})")
    wanted = schema[key][0]
    if isinstance(value, bool) or not isinstance(value, wanted):
        names = " or ".join(t.__name__ for t in (wanted if isinstance(wanted, tuple) else (wanted,)))
        raise TargetError(f"{path}: field '{key}' must be {names}, got {value!r}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise TargetError(f"{path}: field '{key}' must be a list of strings, got {value!r}")
    return value


def _defaults(schema: dict) -> dict:
    return {key: default for key, (_, default, _) in schema.items() if default is not REQUIRED}
