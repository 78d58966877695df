"""`memcycle list`: the bundled scenarios, the built-in engines and refimpl's faults."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from memcycle.engines.registry import BUILTIN
from memcycle.scenario import ScenarioError, find_scenarios, load_scenario

from .base import Command, HelpFormatter
from .common import (
    BUNDLED,
)

if TYPE_CHECKING:
    pass


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what in ("all", "scenarios"):
        print(f"Scenarios (bundled, in {BUNDLED}/; faults/ and omendb/ run when named):")
        for f in find_scenarios([BUNDLED], include_faults=True):
            try:
                sc = load_scenario(f)
            except ScenarioError as exc:
                print(f"  {f.name}: INVALID: {exc}")
                continue
            expect = (
                ", ".join(f"{k}={v}" for k, v in sc.expect) if len(sc.expect) > 1 else sc.expected()
            )
            extra = f" [{', '.join(sc.tags)}]" if sc.tags else ""
            print(
                f"  {f.relative_to(BUNDLED)}: {sc.name} — {len(sc.plan)} cycle(s), "
                f"engine {sc.default_engine()}, expect {expect}{extra}"
            )
            if sc.description:
                print(f"      {sc.description}")
    if what in ("all", "engines"):
        print("Engines (--engine NAME or package.module:factory):")
        for name, target in BUILTIN.items():
            print(f"  {name:<16} {target}")
    if what in ("all", "faults"):
        print("Faults (--fault NAME; refimpl only):")
        from memcycle.refimpl.faults import CATALOGUE

        for f in CATALOGUE.values():
            print(f"  {f.name:<26} checked: {f.verdict_checked:<16} raw: {f.verdict_raw}")
            print(f"      {f.summary}")
    return 0


DESCRIPTION = (
    "Show the bundled scenarios (with their cycle counts and expectations), the built-in "
    "engines and refimpl's switchable faults."
)

EPILOG = """examples:
  memcycle list
  memcycle list faults

exit status:
  0    listed
  2    bad argument"""


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", default="all", choices=("all", "scenarios", "engines", "faults")
    )


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_list,
    description=DESCRIPTION,
    epilog=EPILOG,
    formatter_class=HelpFormatter,
)
