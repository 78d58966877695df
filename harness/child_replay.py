"""The replay loop of the child: every cycle of the plan, step by step, then the teardown.

`Replayer` holds the state of one replay (engine, oracle, data, what is open) and turns each
step into one `StepEvent` on the events stream: the op itself is a `child_ops.StepOps` method,
the memory figures and the confirmation decision are `child_measure`'s. A step that raised
stops the replay there (its event carries the error); the teardown closes the engine, after
which nothing may stay allocated.
"""

from __future__ import annotations

import gc
import time
import traceback
from dataclasses import asdict
from typing import Any

from .child_measure import (
    CONFIRM_MAX_EXTRA,
    CONFIRM_SECONDS,
    LedgerReader,
    measure_step,
    still_rising,
)
from .child_ops import StepOps
from .compiletime import CompileClock
from .datagen import DataGen
from .engines.base import Engine
from .oracle import Oracle
from .protocol import MEASURED_OPS, RESET_OPS, TEARDOWN_OP, EventKind, EventWriter, bound_text
from .recording import Recorder
from .records import StepEvent
from .scenario_model import PlannedCycle, Scenario, Step
from .scenario_needs import step_skip_reason


def describe_error(exc: BaseException) -> dict[str, Any]:
    """Type, message, traceback and (for MemoryFault) the verdict class."""
    t = type(exc)
    return {
        "type": f"{t.__module__}.{t.__qualname__}",
        "message": bound_text(str(exc)),
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
        "verdict": getattr(exc, "verdict", None),
    }


class Replayer(StepOps):
    """State of one replay: engine, oracle, data, and what is open."""

    def __init__(
        self,
        scenario: Scenario,
        engine: Engine,
        recorder: Recorder,
        events: EventWriter,
        compile_clock: CompileClock | None = None,
    ):
        self.scenario = scenario
        self.engine = engine
        self.recorder = recorder
        self.events = events
        self.compile_clock = compile_clock or CompileClock()
        self.data = DataGen(scenario.seed, scenario.metric)
        self.oracle = Oracle(scenario.metric)
        self.open_dim: int | None = None
        self.last_dim: int | None = None
        self.confirm_enabled = True
        self.last_pc: PlannedCycle | None = None
        self.reset_memory: dict[int, dict[str, Any]] = {}  # cycle -> memory at its last reset
        self.ledger = LedgerReader(engine)

    # -- helpers --------------------------------------------------------------
    def _compiled_since(self, before: float | None) -> float | None:
        """Numba compile seconds since `before` (None while numba was never imported)."""
        now = self.compile_clock.seconds()
        return None if now is None else now - (before or 0.0)

    def mark(self, cycle: int, step: int, op: str) -> None:
        idx = self.recorder.mark()
        if idx is not None:
            self.events.emit(
                EventKind.MARKER, index=idx, cycle=cycle, step=step, op=op, t=time.time()
            )

    # -- one step -------------------------------------------------------------
    def run_step(self, pc: PlannedCycle, si: int, step: Step) -> StepEvent:
        ev = StepEvent(cycle=pc.index, step=si, op=step.op, ok=True, seconds=0.0)
        c0 = self.compile_clock.seconds()
        t0 = time.perf_counter()
        try:
            # a capability the engine lacks (scenario.step_skip_reason): not run, not judged
            ev.skipped = step_skip_reason(step, self.engine)
            if ev.skipped is None:
                getattr(self, f"op_{step.op}")(pc, si, step, ev)
                ev.count = int(self.engine.count())
                ev.expected_count = self.oracle.count()
        except Exception as exc:
            ev.ok = False
            ev.error = describe_error(exc)
        ev.seconds = time.perf_counter() - t0
        ev.compile_seconds = self._compiled_since(c0)
        ev.dimension = self.open_dim if self.open_dim is not None else pc.dimension
        # NumPy's tracemalloc domain needs a snapshot (~1 s with many traces): checkpoints only;
        # Python objects by type at every reset point (a collection and one heap walk)
        ev.memory = measure_step(
            self.recorder,
            self.ledger,
            full=step.op == "checkpoint",
            objects=step.op in MEASURED_OPS,
        )
        return ev

    # -- the whole plan -------------------------------------------------------
    def run_cycle(self, pc: PlannedCycle) -> bool:
        """Run one cycle; False when a step raised (the replay stops there)."""
        for si, step in enumerate(pc.steps):
            ev = self.run_step(pc, si, step)
            self.events.emit(EventKind.STEP, **asdict(ev))
            if step.op in MEASURED_OPS:
                self.mark(pc.index, si, step.op)
            if ev.op in RESET_OPS and ev.ok and not ev.skipped:
                self.reset_memory[pc.index] = {**ev.memory, "op": ev.op}
            if not ev.ok:
                return False
        self.mark(pc.index, len(pc.steps), "end-of-cycle")
        self.last_pc = pc
        return True

    def replay(self) -> bool:
        """Run every cycle, then confirm a rising series; stop at the first step that raised.
        True when all ran."""
        t0 = time.perf_counter()
        for pc in self.scenario.plan:
            if not self.run_cycle(pc):
                return False
        return self.confirm(time.perf_counter() - t0)

    def confirm(self, table_seconds: float) -> bool:
        """Repeat the last cycle while a series still rises (see child_measure.CONFIRM_CYCLES)."""
        if not self.confirm_enabled or self.last_pc is None:
            return True
        budget = min(CONFIRM_SECONDS, max(3 * table_seconds, 5.0))
        t0 = time.perf_counter()
        extra = 0
        while extra < CONFIRM_MAX_EXTRA and time.perf_counter() - t0 < budget:
            signal = still_rising(self.reset_memory)
            if signal is None:
                break
            last = self.last_pc
            pc = PlannedCycle(last.index + 1, last.dimension, last.steps, last.table, last.label)
            # announced first: the parent extends its plan even if this cycle crashes
            self.events.emit(EventKind.CONFIRM, cycle=pc.index, repeats=last.index, signal=signal)
            extra += 1
            if not self.run_cycle(pc):
                return False
        return True

    def teardown(self) -> StepEvent:
        """Close the engine after the last cycle: nothing may stay allocated."""
        last = self.last_pc or self.scenario.plan[-1]
        ev = StepEvent(
            cycle=last.index,
            step=len(last.steps),
            op=TEARDOWN_OP,
            ok=True,
            seconds=0.0,
            dimension=self.last_dim or last.dimension,
        )
        c0 = self.compile_clock.seconds()
        t0 = time.perf_counter()
        try:
            self.engine.close()
            self.oracle.clear()
            gc.collect()
            ev.count = 0
            ev.expected_count = 0
        except Exception as exc:
            ev.ok = False
            ev.error = describe_error(exc)
        ev.seconds = time.perf_counter() - t0
        ev.compile_seconds = self._compiled_since(c0)
        ev.memory = measure_step(self.recorder, self.ledger, full=True, objects=True)
        return ev
