"""`memcycle fuzz`: generate cycle tables until one fails, then shrink it."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memcycle.records import VERDICTS, Report
from memcycle.reporters.console import format_run
from memcycle.runner import (
    new_run_id,
)
from memcycle.scenario import load_scenario

from .base import Command
from .common import (
    ALLOCATOR_CHOICES,
    check_engine,
    check_faults,
    parse_budget,
    parse_options,
    print_shrunk,
    shrink_options,
)

if TYPE_CHECKING:
    pass


def cmd_fuzz(args: argparse.Namespace) -> int:
    """Generate cycle tables from the op grammar (sizes around the engine's thresholds), replay
    each in an isolated child as `memcycle run` does, stop at the first failing verdict or at
    the budget, and shrink what was found to `<out>/<name>.min.toml`."""
    from memcycle.fuzz import Try, fuzz, table_size
    from memcycle.shrink import ShrinkError, shrink

    check_engine(args.engine)
    faults = list(args.fault or [])
    check_faults(faults)
    budget = parse_budget(args.budget)
    out = Path(args.out) if args.out else Path("reports") / f"fuzz-{new_run_id()}"
    options = parse_options(args.option)

    def line(t: Try) -> None:
        data_size = table_size(_toml_data(t.path))
        print(
            f"try {t.index}: {data_size}: {t.record.verdict} "
            f"({t.record.seconds:.1f} s, elapsed {t.elapsed:.0f} s)",
            flush=True,
        )

    res = fuzz(
        args.engine,
        allocator=args.allocator,
        faults=faults,
        budget=budget,
        seed=args.seed,
        out=out,
        options=options,
        thresholds=args.threshold or (),
        memray=args.memray,
        timeout=args.timeout,
        want=args.want,
        progress=line,
    )
    if res.found is None:
        print(
            f"fuzz: nothing found in {len(res.tries)} tries, {res.seconds:.0f} s "
            f"(seed {args.seed}, budget {budget:.0f} s); tables in {out / 'tries'}"
        )
        return 0
    rec = res.found.record
    report = Report(
        run_id=out.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        runs=[rec],
        command=["memcycle", *sys.argv[1:]],
    )
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    print()
    print(format_run(rec))
    if res.stopped == "error":
        print(f"fuzz: try {res.found.index} could not run (error); nothing to shrink")
        return 3
    print(
        f"\nfuzz: try {res.found.index} fails ({rec.verdict}) after {res.found.elapsed:.0f} s: "
        f"{res.found.path}"
    )
    if args.no_shrink:
        return 1
    try:
        sr = shrink(
            load_scenario(res.found.path),
            engine=args.engine,
            allocator=args.allocator,
            faults=faults,
            out=out,
            memray=args.memray,
            timeout=args.timeout,
            max_replays=args.max_replays,
            first=rec,
            log=print if args.verbose else None,
        )
    except ShrinkError as exc:
        print(f"shrink: {exc}")
        return 1
    print_shrunk(sr)
    return 1


def _toml_data(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


EPILOG = (
    "examples:\n"
    "  memcycle fuzz --engine refimpl --budget 300s --seed 1\n"
    "  memcycle fuzz --engine refimpl --allocator checked --fault flat-buffer-double-free\n"
    "  memcycle fuzz --engine mypkg.adapter:make_engine --option buffer_size=64\n"
    "\n"
    "exit status:\n"
    "  0  nothing found within the budget\n"
    "  1  a failing table was found (and shrunk to <out>/<name>.min.toml)\n"
    "  2  bad input\n"
    "  3  a try could not run (error: the engine or memcycle could not do its job)"
)


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", required=True, metavar="NAME", help="engine name or spec")
    parser.add_argument("--allocator", choices=ALLOCATOR_CHOICES, default="numpy")
    parser.add_argument(
        "--fault", action="append", metavar="NAME", help="switch on a refimpl fault"
    )
    parser.add_argument("--budget", default="300s", help="time to search (default 300s)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default reports/fuzz-<id>/)")
    parser.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="engine option for every table (refimpl gets small thresholds of its own)",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        type=int,
        metavar="N",
        help="a row count that matters to the engine (default: the integer options)",
    )
    parser.add_argument(
        "--want",
        choices=[v for v in VERDICTS if v not in ("clean", "skipped")],
        metavar="VERDICT",
        help="go on until a try's verdict is this one (e.g. the verdict a fault should give); "
        "other failing tries are shown and passed over",
    )
    parser.add_argument("--no-shrink", action="store_true", help="do not shrink what is found")
    shrink_options(parser)


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_fuzz,
    description=inspect.cleandoc(cmd_fuzz.__doc__ or ""),
    epilog=EPILOG,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
