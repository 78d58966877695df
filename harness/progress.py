"""What `memcycle run` shows while it works: per-step progress from the children's event streams.

On a terminal (and without `NO_COLOR` or `TERM=dumb`) a rich live display: one bar for the batch
and one line per running child (its cycles as a bar, the step it runs now), finished runs printed
above it in colour. Anywhere else plain lines, no escape codes: one per finished run, and for a
long run a heartbeat line (cycle i/N, the running op, seconds so far) every `PLAIN_HEARTBEAT`
seconds, also while a step is silent (a cold Numba compile), so a CI log shows where a slow run
is without flooding. Every line fits the terminal width (`COLUMNS` when set); when a line is too
long the run's label is shortened, never its verdict.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.text import Text

from .protocol import TEARDOWN_OP, EventKind
from .records import RunRecord

PLAIN_HEARTBEAT = 10.0
_LIVE: set[Progress] = set()  # live rich displays, so an interrupt can end every one


def close_all() -> None:
    """End every live display (the terminal gets its cursor back), e.g. after an interrupt."""
    for p in list(_LIVE):
        p.close()


def fancy_output(stream: TextIO) -> bool:
    """A live, coloured display only on a real terminal that accepts colour."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def output_width(stream: TextIO) -> int | None:
    """Columns to fit: `COLUMNS` when set, the terminal's width, else no limit (a log file)."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    try:
        if stream.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def fit(head: str, label: str, tail: str, width: int | None) -> str:
    """`head label tail` in `width` columns: the label gives way (middle cut), the rest stays."""
    line = " ".join(p for p in (head, label, tail) if p)
    if width is None or len(line) <= width:
        return line
    room = width - len(head) - len(tail) - 2 - (0 if head else -1)
    if room < 5:
        return line[:width]
    keep = room - 3
    short = label[: (keep + 1) // 2] + "..." + label[len(label) - keep // 2 :]
    return " ".join(p for p in (head, short, tail) if p)


def compile_seconds(rec: RunRecord) -> float | None:
    """Numba compile seconds of a run, when the harness measures them (else None)."""
    total = getattr(rec, "compile_seconds", None)
    if isinstance(total, int | float):
        return float(total)
    steps = [getattr(s, "compile_seconds", None) for s in rec.steps]
    found = [float(x) for x in steps if isinstance(x, int | float)]
    return sum(found) if found else None


def total_compile_seconds(runs: Sequence[RunRecord]) -> float | None:
    """Numba compile seconds summed over the runs that measured them (None when none did)."""
    measured = [c for c in (compile_seconds(r) for r in runs) if c is not None]
    return sum(measured) if measured else None


def run_mark(rec: RunRecord) -> str:
    """ok, skip, FAIL, or ERROR (memcycle or the adapter could not run it: not an engine bug)."""
    if rec.verdict == "error":
        return "ERROR"
    if rec.passed:
        return "ok"
    return "skip" if rec.verdict == "skipped" else "FAIL"


@dataclass
class _Active:
    key: str
    label: str
    cycles: int
    started: float
    ops: list[list[str]] = field(default_factory=list)
    where: str = "starting"
    last_line: float = 0.0
    task: Any = None

    def running(self, cycle: int, step: int) -> str:
        """What the child does now: step `step` (0-based) of `cycle`, or the next cycle's first."""
        if 0 < cycle <= len(self.ops) and step >= len(self.ops[cycle - 1]):
            cycle, step = cycle + 1, 0
        of = f"/{self.cycles}" if self.cycles else ""
        if cycle > len(self.ops) and self.ops:
            return f"cycle {len(self.ops)}{of} close"
        op = self.ops[cycle - 1][step] if 0 < cycle <= len(self.ops) else "?"
        return f"cycle {cycle}{of} {op}"


class Progress:
    """Progress of a batch of `total` runs; call it with each finished `RunRecord`.

    `on_event(i, event)` takes run i's child events (`runner.run_many(on_event=...)`);
    `note(text)` prints a line above the display. Thread-safe. The display ends by itself
    when the last run finishes; call `close()` when the batch stops early.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        *,
        fancy: bool | None = None,
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
    ) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.fancy = fancy_output(self.stream) if fancy is None else fancy
        self.width = width if width is not None else output_width(self.stream)
        self.clock = clock
        self.t0 = clock()
        self._lock = threading.RLock()
        self._active: dict[int, _Active] = {}
        self._live: Any = None
        self._overall: Any = None
        self._stopped = threading.Event()
        if self.fancy:
            self._start_live()
        elif ticker:
            threading.Thread(target=self._tick_forever, daemon=True).start()

    # -- rich -------------------------------------------------------------------------
    def _start_live(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )
        from rich.table import Column

        self.console = Console(file=self.stream, width=self.width, highlight=False)
        self._live = RichProgress(
            SpinnerColumn(),
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
            ),
            TextColumn("{task.fields[where]}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            expand=True,
        )
        self._overall = self._live.add_task("memcycle run", total=self.total, where="")
        self._live.start()
        _LIVE.add(self)

    # -- the three inputs -------------------------------------------------------------
    def note(self, text: str, style: str = "yellow") -> None:
        with self._lock:
            if self._live is not None:
                self.console.print(Text(text, style=style), overflow="fold")
            else:
                wrapped = (
                    textwrap.fill(text, self.width, subsequent_indent="  ") if self.width else text
                )
                self.stream.write(wrapped + "\n")
                self.stream.flush()

    def on_event(self, index: int, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        with self._lock:
            if kind == EventKind.PLAN:
                label = f"{ev.get('scenario')} [{ev.get('engine')}/{ev.get('allocator')}]"
                now = self.clock()
                cycles = int(ev.get("cycles") or 0)
                ops = ev.get("ops") if isinstance(ev.get("ops"), list) else []
                run = _Active(str(ev.get("key")), label, cycles, now, ops, last_line=now)
                self._active[index] = run
                if self._live is not None:
                    # a run's bar and count are its cycles; the batch's are its runs
                    run.task = self._live.add_task(
                        label, total=run.cycles or None, where="starting"
                    )
                return
            run = self._active.get(index)
            if run is None:
                return
            cycles_done = None
            if kind == EventKind.START:
                run.where = run.running(1, 0)
            elif kind == EventKind.STEP:
                cycle, step = ev.get("cycle"), ev.get("step")
                if isinstance(cycle, int) and isinstance(step, int):
                    cycles_done = cycle if ev.get("op") == TEARDOWN_OP else cycle - 1
                    run.where = run.running(cycle, step + 1)
                else:
                    run.where = f"cycle {cycle} {ev.get('op')}"
            else:
                return
            if self._live is not None:
                self._live.update(run.task, where=run.where)
                if cycles_done is not None:
                    self._live.update(run.task, completed=cycles_done)

    def tick(self) -> None:
        """Plain mode: a heartbeat line for each run quiet for `PLAIN_HEARTBEAT` seconds."""
        with self._lock:
            now = self.clock()
            for run in self._active.values():
                if now - run.last_line >= PLAIN_HEARTBEAT:
                    run.last_line = now
                    where = f"{run.where}, {now - run.started:.0f}s"
                    self._plain(fit("  ...", run.label, where, self.width))

    def _tick_forever(self) -> None:
        while not self._stopped.wait(1.0):
            self.tick()

    def __call__(self, rec: RunRecord) -> None:
        with self._lock:
            self.done += 1
            mark = run_mark(rec)
            label = f"{rec.scenario} [{rec.engine}/{rec.allocator}]"
            tail = f"{rec.verdict_text} ({mark}) {rec.seconds:.1f}s"
            cause = next((f.summary for f in rec.findings if f.verdict == "error"), "")
            if cause:  # an error run says why in the same line
                tail = f"{tail}: {cause}"
            head = f"[{self.done}/{self.total}]"
            for i, run in list(self._active.items()):
                if run.key == rec.key:
                    if self._live is not None and run.task is not None:
                        self._live.remove_task(run.task)
                    del self._active[i]
                    break
            if self._live is not None:
                colour = {
                    "ok": "green",
                    "skip": "yellow",
                    "FAIL": "bold red",
                    "ERROR": "bold magenta",
                }[mark]
                line = fit(head, label, tail, self.console.width)
                cut = len(line) - len(tail)
                text = Text(line[:cut])
                text.append(line[cut:], style=colour)
                self.console.print(text, no_wrap=True, overflow="ellipsis")
                self._live.update(self._overall, completed=self.done)
                if self.done >= self.total:
                    self.close()
            else:
                self._plain(fit(head, label, tail, self.width))
                if self.done >= self.total:
                    self._stopped.set()

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
            _LIVE.discard(self)

    def _plain(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
