"""`memcycle warmup`: fill refimpl's Numba cache ahead of the first real run."""

from __future__ import annotations

import argparse
import signal
import sys

from memcycle.batch import RunInterrupted
from memcycle.errors import CommandError, UsageError
from memcycle.isolation import ChildRegistry
from memcycle.kernelcache import kernel_cache
from memcycle.reporters.console import format_run
from memcycle.runner import DEFAULT_TIMEOUT
from memcycle.warmup import run_warmup

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
    with StopSignals(registry := ChildRegistry()):
        try:
            warm = run_warmup(
                allocators, timeout=args.timeout, registry=registry, command=command_line()
            )
        except RunInterrupted as exc:
            print(
                f"memcycle: warmup interrupted by {signal.Signals(exc.signum).name}",
                file=sys.stderr,
            )
            return 128 + exc.signum
    after = kernel_cache()
    bad = warm.not_clean
    for rec in bad:
        print(format_run(rec))
    compiled = warm.compile_seconds
    compile_note = f", {compiled:.1f} s of it compiling" if compiled is not None else ""
    state = "warm" if not after.cold else f"still cold (no index for {', '.join(after.missing)})"
    print(
        f"warmup: {len(warm.runs)} run(s) in {warm.seconds:.1f} s{compile_note}; "
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
