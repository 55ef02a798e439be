"""`edgecompress target list|setup|check`: list benchmark targets, build what one needs, or ask what it runs.
`check` reports the target's python, numpy, TFLite/ONNX runtimes and CPU."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("target", help="list, set up or check benchmark targets",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="targets found in targets/ and ~/.config/edgecompress/targets")
    setup = actions.add_parser("setup", help="build what a target needs (arm64-qemu: root filesystem; venvs)")
    setup.add_argument("name", help="target name or .toml path, e.g. arm64-qemu")
    check = actions.add_parser("check", help="connect and report the target's python, runtimes and CPU")
    check.add_argument("name", help="target name or .toml path")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    return {"list": _list, "setup": _setup, "check": _check}[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from edgecompress.bench import list_targets

    rows = [(t.name, t.KIND, _status(t), t.config.description) for t in list_targets()]
    widths = [max(len(row[i]) for row in rows + [("name", "kind", "status", "")]) for i in range(3)]
    for row in [("name", "kind", "status", "description")] + rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def _status(target) -> str:
    if target.readiness() is not None:
        return "needs setup"
    return "set up" if target.has_setup() else "configured"


def _setup(args: argparse.Namespace) -> int:
    from edgecompress.bench import get_target

    get_target(args.name).setup(progress=lambda line: print(line, flush=True))
    return 0


def _check(args: argparse.Namespace) -> int:
    from edgecompress.bench import get_target

    target = get_target(args.name)
    facts = target.probe()
    system = facts.get("system", {})
    print(f"{target.name} ({target.KIND}{', emulated' if target.emulated else ''}): {system.get('cpu_model')}, "
          f"{system.get('machine')}, python {system.get('python', '?')}, numpy {system.get('numpy', '?')}")
    for kind, runtime in (facts.get("runtimes") or {}).items():
        runtime = runtime or {}
        status = f"{runtime.get('name')} {runtime.get('version')}" if runtime.get("name") else runtime.get("missing")
        print(f"  {kind}: {status}", file=sys.stdout)
    return 0
