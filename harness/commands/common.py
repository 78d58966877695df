"""Helpers shared by several commands: the checks of their inputs (each a `UsageError`, exit 2),
option groups they have in common, and the signal handling of a batch of children.

Below the commands: nothing here imports a command or the dispatcher.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from memcycle.batch import Interrupted
from memcycle.bundled import path_exists, scenario_path, scenarios_dir
from memcycle.engines.base import EngineError, parse_engine_options
from memcycle.engines.registry import check_engine_spec
from memcycle.errors import UsageError
from memcycle.isolation import ChildRegistry
from memcycle.preflight import check_faults

if TYPE_CHECKING:
    from memcycle.shrink import ShrinkResult

BUNDLED = scenarios_dir()
ALLOCATOR_CHOICES = ("numpy", "checked", "raw")


def scenario_args(raw: Sequence[str | Path]) -> list[Path]:
    """Scenario arguments as files or folders: each a path on disk, or the name of a bundled
    scenario as `memcycle list` shows it (`repeated-clear-insert`, `faults/flat-buffer-leak`), so
    the bundle is reachable from any project without its install path."""
    found = [scenario_path(r) for r in raw]
    for given, path in zip(raw, found, strict=True):
        if not path_exists(path):
            raise UsageError(
                f"{given}: no such scenario file or directory, and no bundled scenario of that "
                "name (`memcycle list` shows them)"
            )
    return found


def check_fault_names(faults: Sequence[str]) -> None:
    """Each is a refimpl catalogue fault (`preflight.check_faults`); refimpl, whose import
    compiles nothing but takes a second, is only imported when a fault is named."""
    if faults:
        from memcycle.refimpl.faults import FAULT_NAMES

        check_faults(faults, FAULT_NAMES)


def check_engine(spec: str) -> None:
    """A spec that names nothing is a usage error; one that names a module which cannot be
    imported is left to the run (its verdict is `error`, exit 3)."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        check_engine_spec(spec)
    except EngineError as exc:
        raise UsageError(str(exc)) from None


def check_native_tool(sanitizer: str | None, valgrind: bool) -> None:
    from memcycle.sanitizers import SanitizerUnavailable, check_available

    if sanitizer and valgrind:
        raise UsageError("--sanitizer and --valgrind cannot be combined; choose one")
    try:
        if sanitizer or valgrind:
            check_available("valgrind" if valgrind else str(sanitizer))
    except SanitizerUnavailable as exc:
        raise UsageError(str(exc)) from None


def command_line() -> list[str]:
    """The command as typed, for the report's `command` field."""
    return ["memcycle", *sys.argv[1:]]


def add_fault_option(parser: argparse.ArgumentParser) -> None:
    """--fault NAME (repeatable), as run, fuzz and shrink take it."""
    parser.add_argument(
        "--fault", action="append", metavar="NAME", help="switch on a refimpl fault"
    )


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as a CI container sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _jobs_value(text: str) -> int:
    if text == "auto":
        return usable_cores()
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of children or 'auto', got {text!r}"
        ) from None


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    """--jobs N|auto (children at once), as run and faults take it; `check_jobs` checks it.
    The default is one child per usable core: each run is its own process and the runs are
    independent, so a 2-core CI box does twice the work in the same wall time."""
    parser.add_argument(
        "--jobs",
        type=_jobs_value,
        default=usable_cores(),
        metavar="N",
        help=f"children run at once ('auto': one per usable core, {usable_cores()} here; "
        "the default)",
    )


def check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")


def parse_options(items: list[str] | None, flag: str = "--option") -> dict[str, object]:
    """KEY=VALUE engine options (`engines.base.parse_engine_options`); a bad one is exit 2."""
    try:
        return parse_engine_options(items or [])
    except ValueError as exc:
        raise UsageError(
            f"bad {flag} {exc.args[0]!r}; expected KEY=VALUE, e.g. buffer_size=16"
        ) from None


def parse_budget(text: str) -> float:
    """'300s', '5m', '1h' or plain seconds."""
    t = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:])
    num = t[:-1] if scale is not None else t
    try:
        value = float(num) * (scale or 1.0)
    except ValueError:
        raise UsageError(
            f"bad budget {text!r}; expected seconds like 300, 300s, 5m or 1h"
        ) from None
    if value <= 0:
        raise UsageError(f"budget must be positive, got {text!r}")
    return value


def shrink_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--memray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record with memray (default on; off uses tracemalloc)",
    )
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per replay")
    p.add_argument(
        "--max-replays", type=int, default=60, metavar="N", help="replays the shrinker may do"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="one line per shrink replay")


def print_shrunk(sr: ShrinkResult) -> None:
    print(f"shrunk: {sr.line()}")
    same = sr.target.matches(sr.record)
    print(
        f"wrote {sr.path} (replayed: {sr.record.verdict}"
        + ("" if same else f", NOT the target {sr.target}: the failure is not deterministic")
        + ")"
    )


class StopSignals:
    """SIGINT/SIGTERM during a batch: the first kills every child at once (in the handler) and
    raises in the main thread (KeyboardInterrupt / `Interrupted`), so `run_many` hands back the
    finished runs; any later one kills again and never raises, so the report still gets written
    and three Ctrl-Cs cannot leave a child running. After `finishing()` no signal raises: the
    report of a completed batch is written, then the exit status says it was interrupted."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, registry: ChildRegistry) -> None:
        self.registry = registry
        self.signum: int | None = None
        self._raise = True
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # else: signals go elsewhere
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._saved.items():
            # once stopped, the process is on its way out with 130/143: a Ctrl-C more must not
            # turn that into a KeyboardInterrupt traceback (or a death by SIGINT)
            signal.signal(sig, signal.SIG_IGN if self.signum is not None else old)

    def finishing(self) -> None:
        self._raise = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.registry.stop()
        if self.signum is None:
            self.signum = signum
            if self._raise:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                raise Interrupted(signum)
        os.write(2, b"memcycle: stopping; writing the report of the runs that finished\n")
