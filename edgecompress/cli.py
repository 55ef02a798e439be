"""The `edgecompress` command line: one subcommand per module in edgecompress/commands/, discovered.

Errors the user can fix print one line on stderr and exit 2; internal failures one line and exit 1;
`--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import traceback


def build_parser() -> argparse.ArgumentParser:
    from edgecompress import commands

    parser = argparse.ArgumentParser(prog="edgecompress", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def _terminate_as_interrupt(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so every atomic writer removes its temporary file."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from edgecompress.errors import EdgeCompressError

    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return int(args.func(args) or 0)
    except EdgeCompressError as error:
        if args.debug:
            traceback.print_exc()
        print(f"edgecompress {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgecompress {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's promise is one line, not a traceback
        if args.debug:
            traceback.print_exc()
        print(f"edgecompress {args.command}: internal error: {type(error).__name__}: {error} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
