"""`memcycle`: run cycle tables in isolated children, list what exists, report, gate, warm up.

Exit status of `memcycle run`:
  0  every run's verdict is what its scenario expects, or the run was skipped (SKIP, never PASS)
  1  a run's verdict differs from its scenario's expectation (an engine finding: FAIL), or
     with --fail-on-skip, a run or a step was skipped
  2  bad input, before anything runs: missing file, malformed scenario, unknown engine name,
     allocator or fault (one line, never a traceback)
  3  a run is `error`: memcycle or the adapter could not do its job (engine module not
     importable, factory failed, adapter/library API mismatch, child could not start); takes
     precedence over 1, since such a run tested nothing
  130/143  interrupted (SIGINT/SIGTERM)

Every error is one line, `memcycle: error: ...`, never a traceback; each command's help
lists its exit statuses.

This module is only the dispatcher: it builds the parser from `memcycle.commands.REGISTRY`
(importing just the command being run), calls it, and is the one place that turns a
`memcycle.errors.CommandError` or an interrupt into a message and an exit status. The
commands live in `memcycle.commands.*` and never import it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Collection, Sequence
from typing import Any

from . import __version__
from .batch import Interrupted, RunInterrupted
from .commands import REGISTRY
from .errors import CommandError, UsageError
from .progress import close_all

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with memcycle's one error style: `memcycle: error: ...`, one line, exit 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"memcycle: error: {message} (see '{self.prog} --help')\n")


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; `load` names the commands whose module is imported (default: all),
    the others parse nothing and are there for `memcycle --help` and the choice of a command."""
    ap = _Parser(
        prog="memcycle",
        description="Replay clear/insert cycle tables against vector-index engines in isolated "
        "child processes, record memory (memray, tracemalloc, RSS, Numba NRT, allocator ledger) "
        "and judge every cycle.",
        epilog="Run 'memcycle COMMAND --help' for a command's options, examples and exit "
        "status. Errors are one line: memcycle: error: ...",
    )
    ap.add_argument("--version", action="version", version=f"memcycle {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in REGISTRY.items():
        if load is None or name in load:
            command = importlib.import_module(module).COMMAND
            p = sub.add_parser(
                name,
                help=help_text,
                description=command.help_description(),
                epilog=command.epilog,
                formatter_class=command.formatter_class,
            )
            command.prepare_parser(p)  # may set its own description
            p.set_defaults(func=command.run)
        else:
            p = sub.add_parser(name, help=help_text, add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:
        try:
            ap = build_parser([chosen] if chosen in REGISTRY else [])
        except ImportError as exc:
            raise UsageError(
                f"'memcycle {chosen}' is not available: {REGISTRY[str(chosen)][0]} "
                f"cannot be imported ({exc})"
            ) from None
        args = ap.parse_args(argv)
        if args.func is None:
            raise UsageError(f"'memcycle {args.command}' is not available")
        return int(args.func(args) or 0)
    except CommandError as exc:  # the one place a command's error is printed
        print(f"memcycle: error: {exc}", file=sys.stderr)
        for line in exc.details:
            print(f"  {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        close_all()
        print("memcycle: interrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:
        close_all()
        print(f"memcycle: interrupted by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except RunInterrupted as exc:  # a command that does not write the partial report itself
        close_all()
        print(f"memcycle: {exc}; every child was stopped", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # `memcycle list | head`: the status stays the command's own
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(getattr(args, "exit_status", 0))


if __name__ == "__main__":
    sys.exit(main())
