"""`memcycle gate RUN_DIR --baseline FILE`: the gate as a command (flags, tolerances, output).

The comparison itself is `memcycle.gate` (what counts as a regression); the baseline file is
`memcycle.baseline`. Bad input is a `GateInputError` (a `UsageError`, exit 2), printed by the
dispatcher like every command's.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from memcycle.baseline import (
    GateInputError,
    load_baseline,
    load_report,
    numba_cache,
    write_baseline,
)
from memcycle.gate import GateResult, Tolerances, diff, failing_runs
from memcycle.records import Report
from memcycle.reporters.common import fmt_bytes

from .base import Command

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'1MiB', '512k', '2G', '1048576' -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1MiB, 512KiB, 1048576)")
    unit = (m.group(2) or "b").lower()[:1]
    mult = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
    return int(float(m.group(1)) * mult)


def _fraction(flag: str, value: Any) -> float:
    """'25%' or '0.25' -> 0.25; finite and >= 0."""
    text = str(value).strip()
    try:
        x = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise GateInputError(
            f"{flag} is {text!r}; expected a fraction or percentage >= 0 (e.g. 0.25 or 25%)"
        )
    return x


def _size(flag: str, value: Any) -> int:
    try:
        return value if isinstance(value, int) and value >= 0 else parse_size(str(value))
    except argparse.ArgumentTypeError:
        raise GateInputError(
            f"{flag} is {str(value)!r}; expected a size >= 0 (e.g. 1MiB, 512KiB, 1048576)"
        ) from None


def _number(flag: str, value: Any, minimum: float, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < minimum:
        raise GateInputError(f"{flag} is {str(value)!r}; expected {what}")
    return x


HELP_EPILOG = """\
examples:
  memcycle gate reports/main --baseline ci/baseline.json --update   # after memcycle run --out reports/main
  memcycle gate reports/ci --baseline ci/baseline.json              # in CI, after memcycle run --out reports/ci
  memcycle gate reports/shard-1 --baseline ci/baseline.json --allow-missing

Compile time is kept out: time is the steps' seconds minus Numba compile seconds; the engine's
own memray peak excludes compiling, the process peak is set aside on a cold Numba cache.
On another host (cpus, machine, platform) time is not compared.

exit status:
  0  passed
  1  a regression, nothing compared, baseline runs missing, or --update refused (a run fails
     its expectation or is error; --accept-failures records it)
  2  bad input (no --baseline, missing or invalid file, bad tolerance)
"""


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    d = Tolerances()
    parser.description = (
        "Compare a run's report.json with a baseline and exit non-zero on a regression:\n"
        "a worse verdict, a run that no longer passes, more leaked bytes per cycle, a higher\n"
        "peak, a slow-down. It also fails when nothing was compared and when baseline runs\n"
        "are missing from the run."
    )
    parser.epilog = HELP_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "run_dir", type=Path, help="a run directory holding report.json (or the file)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="baseline file to compare with, or to write with --update (required)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="write the baseline from this run instead of comparing (refuses failing runs)",
    )
    parser.add_argument(
        "--accept-failures",
        action="store_true",
        help="with --update: record runs that fail their expectation or could not run",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="baseline runs missing from this run are listed, not a failure",
    )
    parser.add_argument(
        "--time-across-hosts",
        action="store_true",
        help="compare time even when the host differs from the baseline's",
    )
    parser.add_argument(
        "--tolerance-leak",
        default=d.leak_rel,
        metavar="FRACTION",
        help=f"relative growth of leaked bytes per cycle allowed (default {d.leak_rel * 100:.0f}%%)",
    )
    parser.add_argument(
        "--tolerance-leak-bytes",
        default=d.leak_abs,
        metavar="SIZE",
        help=f"...and absolute growth allowed (default {fmt_bytes(d.leak_abs)})",
    )
    parser.add_argument(
        "--tolerance-peak",
        default=d.peak_rel,
        metavar="FRACTION",
        help=f"relative growth of peak memory allowed (default {d.peak_rel * 100:.0f}%%)",
    )
    parser.add_argument(
        "--tolerance-peak-bytes",
        default=d.peak_abs,
        metavar="SIZE",
        help=f"...and absolute growth allowed (default {fmt_bytes(d.peak_abs)})",
    )
    parser.add_argument(
        "--tolerance-time",
        default=d.time_rel,
        metavar="FACTOR",
        help=f"slow-down factor allowed, >= 1 (default {d.time_rel:g}x)",
    )
    parser.add_argument(
        "--tolerance-time-seconds",
        default=d.time_abs,
        metavar="SECONDS",
        help=f"...and absolute slow-down allowed (default {d.time_abs:g} s)",
    )


def tolerances_from(args: argparse.Namespace) -> Tolerances:
    """The tolerance flags, validated (GateInputError names the flag and what it expects)."""
    return Tolerances(
        leak_rel=_fraction("--tolerance-leak", args.tolerance_leak),
        leak_abs=_size("--tolerance-leak-bytes", args.tolerance_leak_bytes),
        peak_rel=_fraction("--tolerance-peak", args.tolerance_peak),
        peak_abs=_size("--tolerance-peak-bytes", args.tolerance_peak_bytes),
        time_rel=_number(
            "--tolerance-time", args.tolerance_time, 1.0, "a finite slow-down factor >= 1"
        ),
        time_abs=_number(
            "--tolerance-time-seconds",
            args.tolerance_time_seconds,
            0.0,
            "a finite number of seconds >= 0",
        ),
    )


def print_result(res: GateResult, out: TextIO) -> None:
    missing_title = "missing" if res.allow_missing else "MISSING"
    for title, changes in (
        ("REGRESSION", res.regressions),
        (missing_title, res.missing),
        ("improved", res.improvements),
        ("new", res.new),
    ):
        for c in changes:
            print(f"{title:10}  {c.key}: {c.message}", file=out)
    for note in res.notes:
        print(f"{'note':10}  {note}", file=out)
    failures = res.failures()
    verdict = "FAILED" if failures else "passed"
    line = (
        f"gate {verdict}: {len(res.regressions)} regressions, {len(res.improvements)} improvements, "
        f"{len(res.new)} new, {len(res.missing)} missing; {res.compared} runs compared"
    )
    if failures:
        line += f" ({'; '.join(failures)})"
    print(line, file=out)


def _update(args: argparse.Namespace, report: Report, out: TextIO) -> int:
    if not report.runs:
        print("memcycle: error: the report has no runs; nothing to record", file=sys.stderr)
        return 1
    failing = failing_runs(report)
    if failing and not args.accept_failures:
        print(
            f"memcycle: error: refusing to write the baseline: {len(failing)} run(s) fail their "
            "expectation or could not run (fix them, or record them with --accept-failures)",
            file=sys.stderr,
        )
        for r in failing:
            print(f"  {r.key}: verdict {r.verdict}, expected {r.expected_verdict}", file=sys.stderr)
        return 1
    path = write_baseline(report, args.baseline)
    print(
        f"baseline written: {path} ({len(report.runs)} runs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        file=out,
    )
    for r in failing:
        print(
            f"note: accepted failing run {r.key}: verdict {r.verdict}, "
            f"expected {r.expected_verdict}",
            file=out,
        )
    cold = [r for r in report.runs if numba_cache(r) == "cold"]
    if cold:
        print(
            f"note: the Numba cache was cold in {len(cold)} run(s) "
            f"({sum(r.compile_seconds for r in cold):.1f} s compiling); compile time and "
            "memory are kept out of the recorded figures",
            file=out,
        )
    return 0


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        if args.baseline is None:
            raise GateInputError(
                "--baseline FILE is required: the baseline to compare with (or to write, "
                "with --update)"
            )
        if getattr(args, "accept_failures", False) and not args.update:
            raise GateInputError("--accept-failures only applies with --update")
        tol = tolerances_from(args)
        report = load_report(args.run_dir)
        if args.update:
            return _update(args, report, out)
        baseline = load_baseline(args.baseline)
    except GateInputError as exc:
        print(f"memcycle: error: {exc}", file=sys.stderr)
        return 2
    res = diff(
        baseline,
        report,
        tol,
        allow_missing=getattr(args, "allow_missing", False),
        time_across_hosts=getattr(args, "time_across_hosts", False),
    )
    print_result(res, out)
    return 1 if res.failed else 0


COMMAND = Command(prepare_parser=prepare_parser, run=main)
