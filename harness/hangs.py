"""Timeouts that say where the child hung: which step, for how long, and its stacks.

The parent's `Watchdog` follows the child's step events (the child reports each
step when it ends, so the step after the last one reported is the one running)
and enforces both the run's time limit and a scenario's per-step `timeout`.
When a limit passes, `dump_hung_child` collects, before the child is killed:

- the Python stacks of all threads: the child registered faulthandler on
  SIGUSR1 (`install_child_hooks`), writing to a file the parent names; the
  handler is C code that needs no GIL, so it answers even from a C loop;
- the native stacks of all threads, by attaching gdb (`harness.native_stack`);
  under valgrind through valgrind's gdbserver (vgdb), since the program runs on
  valgrind's synthetic CPU and `gdb -p` would see valgrind's own frames.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .native_stack import GdbLookup, attach_all_threads, find_gdb
from .protocol import TEARDOWN_OP, EventKind

STACK_DUMP_ENV = "MEMCYCLE_STACK_DUMP"
STACK_DUMP_SIGNAL = signal.SIGUSR1
PYTHON_DUMP_WAIT = 3.0  # seconds to wait for faulthandler's dump to appear
VALGRIND_DUMP_FACTOR = 10.0  # under valgrind the dump's many small writes crawl
PR_SET_PTRACER = 0x59616D61
_dump_file: Any = None  # kept open for faulthandler (it writes to the fd)


def install_child_hooks() -> None:
    """In the child: dump all Python stacks on SIGUSR1, and let the parent's gdb attach.

    Yama's ptrace_scope=1 lets a process trace only its descendants; gdb is the
    parent's child, not the child's ancestor, so the child names the parent as its
    ptracer (Yama then also allows the parent's descendants). Without Yama the call
    fails harmlessly.
    """
    global _dump_file
    path = os.environ.get(STACK_DUMP_ENV)
    if path:
        _dump_file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the child)
        faulthandler.register(STACK_DUMP_SIGNAL, file=_dump_file, all_threads=True, chain=False)
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PTRACER, os.getppid(), 0, 0, 0)


@dataclass(frozen=True)
class Position:
    cycle: int
    step: int
    op: str
    timeout: float | None = None  # the step's own limit, seconds


@dataclass
class Watchdog:
    """Which step the child is in, since when, and whether a limit has passed."""

    run_timeout: float | None
    positions: Sequence[Position] = ()
    started: float = field(default_factory=time.monotonic)
    setup_done: float | None = None
    next_index: int = 0  # index into positions of the step now running
    step_started: float | None = None
    _index: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {(p.cycle, p.step): i for i, p in enumerate(self.positions)}

    def on_event(self, ev: dict[str, Any], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        kind = ev.get("kind")
        if kind == EventKind.START:
            self.setup_done = self.step_started = now
        elif kind == EventKind.STEP:
            i = self._index.get((ev.get("cycle"), ev.get("step")))  # type: ignore[arg-type]
            if i is not None:
                self.next_index = i + 1
            self.step_started = now

    def running(self, now: float | None = None) -> dict[str, Any]:
        """The step running now and for how long (setup before the first step)."""
        now = time.monotonic() if now is None else now
        if self.setup_done is None:
            return {"phase": "setup", "op": "setup", "seconds": now - self.started}
        since = self.step_started if self.step_started is not None else self.setup_done
        if self.next_index < len(self.positions):
            p = self.positions[self.next_index]
            return {
                "phase": "step",
                "cycle": p.cycle,
                "step": p.step,
                "op": p.op,
                "seconds": now - since,
                "step_timeout": p.timeout,
            }
        return {"phase": "finish", "op": TEARDOWN_OP, "seconds": now - since}

    def expired(self, now: float | None = None) -> dict[str, Any] | None:
        """None, or what ran out: {'limit': 'run'|'step', 'timeout': s, 'running': {...}}."""
        now = time.monotonic() if now is None else now
        run = self.running(now)
        limit = run.get("step_timeout")
        if run["phase"] == "step" and limit is not None and run["seconds"] > limit:
            return {"limit": "step", "timeout": limit, "running": run}
        if self.run_timeout is not None and now - self.started > self.run_timeout:
            return {"limit": "run", "timeout": self.run_timeout, "running": run}
        return None


def plan_positions(plan: Sequence[Any]) -> list[Position]:
    """Every step of a scenario plan in the order it runs, with its own timeout."""
    out = []
    for pc in plan:
        for si, step in enumerate(pc.steps):
            out.append(Position(pc.index, si, step.op, getattr(step, "timeout", None)))
    if plan:
        out.append(Position(plan[-1].index, len(plan[-1].steps), TEARDOWN_OP, None))
    return out


def _dump_looks_whole(text: str) -> bool:
    """faulthandler writes a dump in many small writes; under valgrind (or a loaded machine) it
    can pause for longer than one poll in the middle of a line (seen in CI: just "Thread 0x").
    A whole dump names at least one frame and ends its last line."""
    return text.endswith("\n") and 'File "' in text


def _read_dump(path: Path, wait: float) -> str:
    deadline = time.monotonic() + wait
    text, last = "", -1
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="replace")
        if text and len(text) == last and _dump_looks_whole(text):  # stopped growing
            break
        last = len(text)
        time.sleep(0.2)
    return text


def dump_hung_child(
    pid: int,
    dump_path: Path | None,
    roots: Sequence[str],
    *,
    valgrind_program: str | None = None,
    lookup: GdbLookup = find_gdb,
    attach: Callable[..., Any] = attach_all_threads,
) -> dict[str, Any]:
    """Python stacks (faulthandler via SIGUSR1) and native stacks (gdb) of a live child;
    `valgrind_program`: the child is that program under valgrind (gdb goes through vgdb)."""
    out: dict[str, Any] = {}
    if dump_path is not None:
        try:
            os.kill(pid, STACK_DUMP_SIGNAL)
            wait = PYTHON_DUMP_WAIT * (VALGRIND_DUMP_FACTOR if valgrind_program else 1.0)
            out["python_stacks"] = _read_dump(dump_path, wait) or None
        except ProcessLookupError:
            out["python_stacks"] = None
        if not out.get("python_stacks"):
            out["python_stacks_absent"] = "the child wrote no Python stacks after SIGUSR1"
    if valgrind_program is not None:
        stacks = attach(pid, roots=roots, lookup=lookup, valgrind_program=valgrind_program)
    else:
        stacks = attach(pid, roots=roots, lookup=lookup)
    if stacks.absent:
        out["native_stack_absent"] = stacks.absent
    else:
        main = next((t for t in stacks.threads if t.get("num") == 1), stacks.threads[0])
        out["native_stack"] = main["frames"]
        if len(stacks.threads) > 1:
            out["native_threads"] = stacks.threads
    out["native_stack_method"] = stacks.method
    return out
