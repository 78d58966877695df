"""`memcycle warmup`: fill refimpl's Numba cache ahead of the first real run."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from memcycle.batch import RunInterrupted, run_many
from memcycle.errors import CommandError, UsageError
from memcycle.isolation import ChildRegistry
from memcycle.kernelcache import kernel_cache
from memcycle.progress import Progress, compile_seconds
from memcycle.reporters.console import format_run
from memcycle.runner import DEFAULT_TIMEOUT
from memcycle.warmup import warmup_specs

from .base import INTERRUPT_CODES, Command, HelpFormatter
from .common import (
    ALLOCATOR_CHOICES,
    StopSignals,
    command_line,
)


def cmd_warmup(args: argparse.Namespace) -> int:
    """Fill refimpl's Numba cache ahead of the first real run (e.g. a CI step before
    `memcycle run` and the gate, so compile time never lands in a measured run)."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    allocators = args.allocator or list(ALLOCATOR_CHOICES)
    before = kernel_cache()
    print(
        f"kernel cache: {before.directory} "
        + (f"(cold: no index for {', '.join(before.missing)})" if before.cold else "(warm)"),
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memcycle-warmup-") as tmp:
        items = warmup_specs(Path(tmp), allocators, timeout=args.timeout)
        progress = Progress(len(items))
        registry = ChildRegistry()
        with StopSignals(registry):
            try:
                report = run_many(
                    items,
                    Path(tmp) / "runs",
                    jobs=1,  # children compiling at once would compile the same kernels twice
                    progress=progress,
                    on_event=progress.on_event,
                    command=command_line(),
                    registry=registry,
                )
            except RunInterrupted as exc:
                progress.close()
                print(
                    f"memcycle: warmup interrupted by {signal.Signals(exc.signum).name}",
                    file=sys.stderr,
                )
                return 128 + exc.signum
            finally:
                progress.close()
    seconds = time.perf_counter() - t0
    after = kernel_cache()
    bad = [r for r in report.runs if r.verdict != "clean"]
    for rec in bad:
        print(format_run(rec))
    measured = [c for c in (compile_seconds(r) for r in report.runs) if c is not None]
    compile_note = f", {sum(measured):.1f} s of it compiling" if measured else ""
    state = "warm" if not after.cold else f"still cold (no index for {', '.join(after.missing)})"
    print(
        f"warmup: {len(report.runs)} run(s) in {seconds:.1f} s{compile_note}; "
        f"kernel cache {after.directory} is {state}"
    )
    if bad:
        raise CommandError(
            f"{len(bad)} warm-up run(s) did not come back clean; the cache may be incomplete",
            exit_code=1,
        )
    return 1 if after.cold else 0


EPILOG = """examples:
  memcycle warmup                    all allocators (numpy, checked, raw)
  memcycle warmup --allocator numpy

The cache lives next to refimpl's kernels (__pycache__), or under $NUMBA_CACHE_DIR when set:
keep that folder between CI jobs to skip the compile there too.

exit status:
  0    the kernel cache is warm
  1    a warm-up run did not come back clean, or the cache is still incomplete
  2    bad input
""" + INTERRUPT_CODES.rstrip("\n")


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allocator",
        action="append",
        choices=ALLOCATOR_CHOICES,
        help="allocators to warm (repeatable; default all three)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds per warm-up run (default {DEFAULT_TIMEOUT:.0f})",
    )


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_warmup,
    epilog=EPILOG,
    formatter_class=HelpFormatter,
)
