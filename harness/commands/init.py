"""`memcycle init DIR`: scaffold an adapter, a cycle table, a pytest entry and CI notes."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from memcycle.errors import UsageError

from .base import Command

if TYPE_CHECKING:
    pass


def cmd_init(args: argparse.Namespace) -> int:
    """Write an adapter skeleton, a starter cycle table, a pytest entry and MEMCYCLE.md into
    DIR (default: the current folder); never overwrites a file."""
    from memcycle.scaffold import ScaffoldError, next_steps, scaffold

    project = Path(args.dir)
    try:
        written = scaffold(project, args.name)
    except ScaffoldError as exc:
        raise UsageError(f"init: {exc}") from None
    print(f"memcycle init: wrote {len(written)} files in {project}/")
    width = max(len(str(p)) for p, _ in written)
    for path, what in written:
        print(f"  {path!s:<{width}}  {what}")
    print("next:")
    for line in next_steps(project):
        print(f"  {line}")
    return 0


EPILOG = (
    "examples:\n"
    "  memcycle init myengine\n"
    "  cd myengine && memcycle run memcycle_scenarios/ --engine memcycle_adapter:make_engine\n"
    "\n"
    "exit status:\n"
    "  0  files written\n"
    "  2  a file exists already (nothing written), or bad input"
)


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR", help="project folder")
    parser.add_argument("--name", help="the engine's name in reports (default: DIR's name)")


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_init,
    description=inspect.cleandoc(cmd_init.__doc__ or ""),
    epilog=EPILOG,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
