"""`memcycle shrink`: the smallest cycle table that fails the same way as a failing run."""

from __future__ import annotations

import argparse
from pathlib import Path

from memcycle.bundled import path_exists, scenario_path
from memcycle.errors import UsageError
from memcycle.report_files import load_report
from memcycle.scenario import ScenarioError, load_scenario

from .base import Command
from .common import (
    ALLOCATOR_CHOICES,
    add_fault_option,
    check_engine,
    check_fault_names,
    parse_budget,
    print_shrunk,
    shrink_options,
)


def cmd_shrink(args: argparse.Namespace) -> int:
    """The smallest cycle table that gives the same verdict class at the same kind of step,
    from a failing run (its folder or report.json: the first failing run in it) or a scenario
    file. Writes `<out>/<name>.min.toml` with [expect] set to the verdict found."""
    from memcycle.shrink import NOT_FAILING, ShrinkError, shrink

    target = scenario_path(args.target)  # a path, or a bundled scenario's name
    if not path_exists(target):
        raise UsageError(
            f"{args.target}: no such run folder, report.json or scenario file, and no bundled "
            "scenario of that name (`memcycle list` shows them)"
        )
    first = None
    engine, allocator, faults = args.engine, args.allocator, list(args.fault or [])
    if target.is_dir() or target.suffix == ".json":
        path = target / "report.json" if target.is_dir() else target
        report = load_report(path)
        failing = [r for r in report.runs if r.verdict not in NOT_FAILING]
        if not failing:
            raise UsageError(f"{path}: no failing run to shrink (every verdict is clean/skipped)")
        run = failing[0]
        try:
            sc = load_scenario(run.scenario_path)
        except ScenarioError as exc:
            raise UsageError(f"the run's scenario cannot be read: {exc}") from None
        engine = engine or run.engine
        allocator = allocator or run.allocator
        if not args.fault:
            faults = [f for f in run.faults if f not in sc.faults]
        out = Path(args.out) if args.out else path.parent
    else:
        try:
            sc = load_scenario(target)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
        engine = engine or sc.default_engine()
        allocator = allocator or "numpy"
        out = Path(args.out) if args.out else Path(".")
    check_engine(engine)
    check_fault_names(faults)
    print(
        f"shrink: {sc.name} on {engine}/{allocator}"
        + (f" faults={'+'.join(faults)}" if faults else ""),
        flush=True,
    )
    try:
        sr = shrink(
            sc,
            engine=engine,
            allocator=allocator,
            faults=faults,
            out=out,
            memray=args.memray,
            timeout=args.timeout,
            max_replays=args.max_replays,
            budget=parse_budget(args.budget),
            first=first,
            log=print if args.verbose else None,
        )
    except ShrinkError as exc:
        raise UsageError(str(exc)) from None
    print_shrunk(sr)
    return 0 if sr.target.matches(sr.record) else 1


EPILOG = (
    "examples:\n"
    "  memcycle shrink reports/20260101-120000-abcdef\n"
    "  memcycle shrink my-scenario.toml --engine refimpl --allocator checked\n"
    "\n"
    "exit status:\n"
    "  0  shrunk, and the written table replays with the same verdict\n"
    "  1  the written table replayed differently (a failure that is not deterministic)\n"
    "  2  bad input, or nothing to shrink (the run is clean)"
)


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="RUN_DIR|SCENARIO",
        help="a run folder, report.json, .toml, or a bundled scenario's name",
    )
    parser.add_argument("--engine", metavar="NAME", help="default: the run's or scenario's engine")
    parser.add_argument(
        "--allocator", choices=ALLOCATOR_CHOICES, help="default: the run's, or numpy"
    )
    add_fault_option(parser)
    parser.add_argument("--out", metavar="DIR", help="folder for <name>.min.toml")
    parser.add_argument("--budget", default="900s", help="time to shrink (default 900s)")
    shrink_options(parser)


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_shrink,
    epilog=EPILOG,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
