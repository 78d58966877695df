"""Run many scenarios at once: a pool of worker threads, each driving one child at a time.

`run_many` runs several `RunSpec`s in parallel (each run is its own process, so threads are
enough to drive them) and folds the finished records into one `Report` in the items' order.
A run memcycle itself could not finish becomes its `error` record (`harness_error_record`),
so one broken run never costs the others their results.

An interrupt (Ctrl-C, or SIGTERM turned into `Interrupted` by the CLI) while
`run_many` waits kills every live child at once and raises `RunInterrupted`
carrying a report of the runs that finished, marked interrupted, with the
runs not done listed; the caller writes it.

One run is `harness.runner`'s job; this module only schedules, cancels and collects.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .isolation import Cancelled, ChildRegistry
from .records import Finding, Report, RunRecord
from .runner import RunSpec, run_spec
from .scenario import Scenario, ScenarioError, load_scenario

# after an interrupt, how long running workers get to hand back (their children are dead by then)
STOP_GRACE = 1.0


class Interrupted(BaseException):
    """A stop signal (SIGTERM) raised in the main thread, as KeyboardInterrupt is for SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunInterrupted(Exception):
    """`run_many` was stopped; `report` holds the runs that finished (marked interrupted)."""

    def __init__(self, report: Report, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.report = report
        self.signum = signum


def host_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def spec_key(spec: RunSpec) -> str:
    """The run key a spec will have (`RunRecord.key`), without running it."""
    try:
        sc = spec.scenario if isinstance(spec.scenario, Scenario) else load_scenario(spec.scenario)
    except (ScenarioError, OSError):
        return (
            f"{spec.scenario}|{spec.engine or '-'}|{spec.allocator}|{'+'.join(spec.faults) or '-'}"
        )
    faults = "+".join(dict.fromkeys([*sc.faults, *spec.faults])) or "-"
    return f"{sc.name}|{spec.engine or sc.default_engine()}|{spec.allocator}|{faults}"


def run_many(
    items: Sequence[RunSpec],
    out_dir: Path,
    *,
    jobs: int = 1,
    progress: Callable[[RunRecord], None] | None = None,
    command: list[str] | None = None,
    run_id: str | None = None,
    on_event: Callable[[int, dict[str, Any]], None] | None = None,
    registry: ChildRegistry | None = None,
) -> Report:
    """Run every item (up to `jobs` children at once); the report keeps the items' order.

    `on_event(i, event)` sees item i's events as they arrive (see `run_one`); `progress`
    sees each finished record. Both are called from worker threads. On KeyboardInterrupt
    or `Interrupted` every child is killed and `RunInterrupted` is raised (module doc).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = registry or ChildRegistry()
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(items)):
        todo.put(i)
    done: dict[int, RunRecord] = {}
    done_lock = threading.Lock()
    failures: list[BaseException] = []

    def one(i: int) -> RunRecord:
        sink = None if on_event is None else (lambda ev: on_event(i, ev))
        return run_spec(items[i], out_dir=out_dir, on_event=sink, registry=registry)

    def work() -> None:
        while not registry.stopped and not failures:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                rec = one(i)
            except Cancelled:
                return
            except Exception as exc:  # memcycle failed on this run: its `error`, the rest go on
                rec = harness_error_record(items[i], exc)
            except BaseException as exc:  # SystemExit and the like: stop the batch, re-raise
                failures.append(exc)
                return
            with done_lock:
                if registry.stopped:
                    return  # finished as the batch stopped: not in the report (not_done)
                done[i] = rec
            if progress is not None:
                progress(rec)

    def worker(ended: threading.Event) -> None:
        try:
            work()
        finally:
            ended.set()

    # Each worker says it ended through its own Event, and the main thread waits on those, not
    # on Thread.join: a KeyboardInterrupt landing inside join(timeout) makes Python 3.11 mark the
    # still-running thread as stopped (bpo-45274's lock handling), and every later join returns
    # at once, so the grace below would never be waited.
    # daemon threads: after an interrupt, one still rendering a flamegraph must not hold the exit
    ended = [threading.Event() for _ in range(max(1, jobs))]
    threads = [threading.Thread(target=worker, args=(e,), daemon=True) for e in ended]
    try:
        for t in threads:
            t.start()
        for e in ended:
            while not e.wait(0.2):  # short waits keep the main thread ready for a signal
                pass
    except (KeyboardInterrupt, Interrupted) as exc:
        registry.stop()  # every child's process group, now
        end = time.monotonic() + STOP_GRACE
        for e in ended:
            e.wait(max(0.0, end - time.monotonic()))
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        with done_lock:
            finished = dict(done)
        report = _report(items, finished, run_id, out_dir, command, interrupted=True)
        raise RunInterrupted(report, signum) from None
    except BaseException:
        registry.stop()
        raise
    if failures:
        raise failures[0]
    return _report(items, done, run_id, out_dir, command, interrupted=False)


def harness_error_record(spec: RunSpec, exc: Exception) -> RunRecord:
    """The `error` outcome of a run memcycle itself could not finish (a malformed event stream,
    a run folder it cannot write, a bug of its own): named, with the traceback, so one broken run
    never costs the others their results."""
    sc: Scenario | None = spec.scenario if isinstance(spec.scenario, Scenario) else None
    if sc is None:
        try:
            sc = load_scenario(spec.scenario)
        except Exception:
            sc = None
    path = sc.path if sc is not None else str(spec.scenario)
    record = RunRecord(
        scenario=sc.name if sc is not None else Path(path).stem,
        scenario_path=path,
        engine=spec.engine or (sc.default_engine() if sc is not None else "refimpl"),
        allocator=spec.allocator,
        faults=list(dict.fromkeys([*(sc.faults if sc is not None else ()), *spec.faults])),
        expected_verdict=spec.expected
        or (sc.expected(spec.allocator) if sc is not None else "clean"),
    )
    record.verdict = "error"
    record.exit = {"kind": "harness-error"}
    record.findings = [
        Finding(
            "error",
            None,
            None,
            "harness",
            f"memcycle could not finish this run: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"[:300],
            {"traceback": "".join(traceback.format_exception(exc))[-6000:]},
        )
    ]
    return record


def _report(
    items: Sequence[RunSpec],
    done: dict[int, RunRecord],
    run_id: str | None,
    out_dir: Path,
    command: list[str] | None,
    *,
    interrupted: bool,
) -> Report:
    runs = [done[i] for i in sorted(done)]
    report = Report(
        run_id=run_id or out_dir.name,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        runs=runs,
        host=host_info(),
        command=list(command if command is not None else sys.argv),
    )
    if interrupted:
        report.interrupted = True
        report.not_done = [spec_key(items[i]) for i in range(len(items)) if i not in done]
    return report
