"""`memcycle faults`: the fault matrix as a command (its flags, progress and output).

What runs, what each run must give and whether it did live in `memcycle.faultmatrix`; this
module only reads the flags, runs the plan with a progress display and prints the matrix.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

from memcycle.errors import UsageError
from memcycle.faultmatrix.execute import run_cases, write_reports
from memcycle.faultmatrix.plan import (
    ALLOCATORS,
    FAULT_DIR,
    NATIVE_FAULT_DIR,
    SUBJECTS,
    MatrixError,
    catalogue_names,
    plan,
)
from memcycle.faultmatrix.story import run_story
from memcycle.faultmatrix.text import format_matrix, matrix_markdown
from memcycle.progress import Progress
from memcycle.runner import DEFAULT_TIMEOUT

from .base import INTERRUPT_CODES, Command, HelpFormatter
from .common import check_native_tool


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run every catalogue fault under its scenarios (scenarios/faults/) and the clean "
        "engine under every bundled scenario; print fault x allocator -> verdict. Exit 1 when "
        "a fault is missed or misclassified or the clean engine gets any finding."
    )
    parser.add_argument(
        "--engine",
        choices=SUBJECTS,
        default="refimpl",
        help="refimpl (default), or refimpl-c: its C twin, faults from scenarios/faults/native/",
    )
    parser.add_argument(
        "--allocator",
        choices=(*ALLOCATORS, "both"),
        default=None,
        help="refimpl's allocator: checked, raw or both (default both); the C twin uses malloc",
    )
    parser.add_argument(
        "--sanitizer",
        choices=("asan",),
        default=None,
        help="--engine refimpl-c only: run the twin's asan build under AddressSanitizer; "
        "verdicts from the catalogue's verdict_asan",
    )
    parser.add_argument(
        "--valgrind",
        action="store_true",
        help="--engine refimpl-c only: run every child under valgrind memcheck; verdicts from "
        "the catalogue's verdict_valgrind (slow: the clean twin on a few scenarios only)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="only this fault (repeatable); the clean runs then cover only its scenarios",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="children run at once")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default reports/faults-<timestamp>/)"
    )
    parser.add_argument(
        "--all", action="store_true", help="include slow/soak bundled scenarios in the clean runs"
    )
    parser.add_argument(
        "--no-clean", action="store_true", help="skip the clean-engine runs (faults only)"
    )
    parser.add_argument(
        "--story",
        action="store_true",
        help="replay the reference note's Test Results tables instead of the matrix",
    )
    parser.add_argument(
        "--faults-dir",
        default=None,
        metavar="DIR",
        help="fault scenarios (default scenarios/faults/, or scenarios/faults/native/ for refimpl-c)",
    )
    parser.add_argument(
        "--memray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record allocations with memray (default on)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help=f"seconds per run (default 120; memcycle run uses {DEFAULT_TIMEOUT:.0f})",
    )


def main(args: argparse.Namespace) -> int:
    subject = getattr(args, "engine", "refimpl") or "refimpl"
    sanitizer = getattr(args, "sanitizer", None)
    valgrind = bool(getattr(args, "valgrind", False))
    mode = "valgrind" if valgrind else (sanitizer or "plain")
    if mode != "plain":
        if subject != "refimpl-c":
            raise UsageError(
                f"--{'valgrind' if valgrind else 'sanitizer'} applies to --engine refimpl-c "
                "(the C twin); refimpl has no native build to check"
            )
        check_native_tool(sanitizer, valgrind)
    if subject == "refimpl-c":
        if args.allocator is not None:
            raise UsageError(
                "--allocator applies to --engine refimpl; the C twin allocates with malloc"
            )
        if args.story:
            raise UsageError("--story replays refimpl's code paths; it has no --engine refimpl-c")
        allocators = ["native"]
    else:
        choice = args.allocator or "both"
        allocators = list(ALLOCATORS) if choice == "both" else [choice]
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    if args.faults_dir:
        fault_dir = Path(args.faults_dir)
    else:
        fault_dir = NATIVE_FAULT_DIR if subject == "refimpl-c" else FAULT_DIR
    command = ["memcycle", *sys.argv[1:]]
    t0 = time.perf_counter()
    try:
        if args.story:
            out = Path(args.out) if args.out else Path("reports") / f"story-{stamp}"
            n = len(allocators) * 3
            report, text = run_story(
                allocators,
                out,
                jobs=args.jobs,
                memray=args.memray,
                timeout=args.timeout,
                fault_dir=fault_dir,
                progress=Progress(n),
                command=command,
            )
            write_reports(report, out, [text])
            print(text)
            print(f"report: {out / 'summary.md'} ({time.perf_counter() - t0:.0f} s)")
            broken = [r for r in report.runs if r.exit.get("kind") == "skipped"]
            return 1 if broken else 0
        out = Path(args.out) if args.out else Path("reports") / f"faults-{stamp}"
        cases, missing = plan(
            allocators,
            only=args.only,
            fault_dir=fault_dir,
            include_slow=args.all,
            clean=not args.no_clean,
            subject=subject,
            mode=mode,
        )
    except MatrixError as exc:
        raise UsageError(str(exc)) from None
    if not cases and not missing:
        raise UsageError("nothing to run")
    report, outcomes = run_cases(
        cases,
        out,
        jobs=args.jobs,
        memray=args.memray,
        timeout=args.timeout,
        progress=Progress(len(cases)),
        command=command,
    )
    ran = {c.fault for c in cases if c.fault}
    unrun = [
        n for n in (args.only or catalogue_names(subject)) if n not in ran and n not in missing
    ]
    if mode != "plain":
        why = f"the catalogue gives no verdict_{mode}"
    else:
        why = "no fixed outcome there; their scenarios name no such allocator in [expect.verdict]"
    where = ", ".join(allocators) + ("" if mode == "plain" else f" under {mode}")
    note = f"not run with {where} ({why}): {', '.join(unrun)}" if unrun else ""
    write_reports(
        report, out, [matrix_markdown(outcomes, missing) + (f"\n{note}\n" if note else "")]
    )
    print(format_matrix(outcomes, missing))
    if note:
        print(note)
    bad = [o for o in outcomes if not o.ok]
    n_fault = sum(1 for o in outcomes if o.case.fault)
    print()
    print(
        f"{n_fault} fault run(s), {len(outcomes) - n_fault} clean run(s); "
        f"{len(bad) + len(missing)} problem(s); {time.perf_counter() - t0:.0f} s; "
        f"report: {out / 'summary.md'}"
    )
    return 1 if bad or missing else 0


EPILOG = """examples:
  memcycle faults --jobs 2
  memcycle faults --allocator checked --only flat-buffer-double-free
  memcycle faults --story

exit status:
  0    every fault caught and named, every clean run clean
  1    a fault missed or misclassified, or a clean run with a finding
  2    bad input
""" + INTERRUPT_CODES.rstrip("\n")

COMMAND = Command(
    prepare_parser=prepare_parser, run=main, epilog=EPILOG, formatter_class=HelpFormatter
)
