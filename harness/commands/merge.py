"""`memcycle merge DIR... --out DIR`: the reports of several shards as one."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from memcycle.errors import UsageError
from memcycle.report_files import write_report
from memcycle.runner import (
    new_run_id,
)

from .base import Command

if TYPE_CHECKING:
    pass


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge the report.json of several runs (the shards of `memcycle run --shard K/N`) into
    one report folder: report.json, summary.md, index.html, junit.xml and the runs' folders."""
    from memcycle.merge import MergeError, merge

    out = Path(args.out)
    try:
        report, shards = merge(
            args.dirs,
            out,
            run_id=new_run_id(),
            command=["memcycle", *sys.argv[1:]],
            allow_partial=args.allow_partial,
        )
    except MergeError as exc:
        raise UsageError(f"merge: {exc}") from None
    written = write_report(report, out)
    failed = [r for r in report.runs if not r.passed and r.verdict != "skipped"]
    counts = " + ".join(str(len(s.report.runs)) for s in shards)
    print(
        f"merged {len(shards)} report(s) ({counts} runs): {len(report.runs)} run(s), "
        f"{len(failed)} with an unexpected verdict; report: {out / 'report.json'}"
        + (f" (+{len(written) - 1} more)" if len(written) > 1 else "")
    )
    return 0


EPILOG = (
    "examples:\n"
    "  memcycle run --shard 1/2 --out shards/1     # on one machine\n"
    "  memcycle run --shard 2/2 --out shards/2     # on another\n"
    "  memcycle merge shards/1 shards/2 --out reports/merged\n"
    "  memcycle gate reports/merged --baseline baseline.json\n"
    "\n"
    "exit status:\n"
    "  0  merged (whatever the verdicts: the gate judges them)\n"
    "  2  bad input: a missing report, schema versions differ, a run in two shards,\n"
    "     a shard of the split missing (see --allow-partial)"
)


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run folders or their report.json")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the merged report")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge even when shards of a --shard K/N split are missing",
    )


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_merge,
    description=inspect.cleandoc(cmd_merge.__doc__ or ""),
    epilog=EPILOG,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
