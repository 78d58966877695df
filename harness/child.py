"""Runs inside the child process: build the engine, replay the plan, emit events.

Invoked as `python -m memcycle.child --events-fd N --config JSON` by
`harness.isolation`; the config is a `protocol.ChildConfig`, the scenario in it. Every
step produces one JSON line on the events fd (not stdout, which the engine may write to),
flushed at once, so everything up to a crash is kept. faulthandler prints a traceback on a
fatal signal; the glibc text of an abort also lands on stderr for the parent to classify.

The event kinds are `protocol.EventKind`. A step whose capability is missing
(`scenario.step_skip_reason`) is a `step` event with `skipped` set; a scenario that needs,
as a whole, what the engine lacks (`scenario.unmet_needs`) is one `skip` event.

The child never outlives its run: it dies with its parent (`PR_SET_PDEATHSIG`),
stops itself at its own deadline (`ChildConfig.deadline`, the parent's timeout plus
a grace; faulthandler's watchdog is a C thread, so it fires even while an engine
holds the GIL), and a lifeline process kills the child's process group and every
process carrying the run's token once the child is gone, however it went.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import gc
import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

# imported with the child, never between cycles: an import during the confirmation repeats would
# be measured by tracemalloc as the engine's growth (hundreds of KiB: a false leak)
from .checks import GROWTH_RULES
from .compiletime import CompileClock, install_compile_clock
from .datagen import DataGen
from .engines.base import Engine, EngineConfig
from .engines.registry import make_engine
from .hangs import install_child_hooks
from .oracle import Oracle, dedupe
from .preload import preload_engine_code
from .protocol import (
    EXIT_OK,
    EXIT_ORPHANED,
    EXIT_SETUP_ERROR,
    EXIT_STEP_ERROR,
    MEASURED_OPS,
    PARENT_ENV,
    RESET_OPS,
    TEARDOWN_OP,
    TOKEN_ENV,
    ChildConfig,
    EventKind,
    EventWriter,
    ProtocolError,
    bound_text,
)
from .recording import Recorder
from .records import LEDGER_NEW_VIOLATIONS, LEDGER_VIOLATION_COUNT, StepEvent
from .scenario import (
    PlannedCycle,
    Scenario,
    Step,
    capability_problems,
    step_skip_reason,
    unmet_needs,
)

# Adaptive confirmation (scenarios/SCHEMA.md "Leak judgement"): when a cheap per-cycle series
# (pymalloc blocks, tracemalloc) still rose by at least its rule's slope in the last cycle,
# and fewer than CONFIRM_CYCLES cycles have run, the child repeats the last cycle until the
# series stops rising (a plateau: a cache that filled up) or CONFIRM_CYCLES points exist,
# at most CONFIRM_MAX_EXTRA extra cycles and CONFIRM_SECONDS (or 3x the table's own time).
CONFIRM_CYCLES = 8
CONFIRM_MAX_EXTRA = 6
CONFIRM_SECONDS = 60.0
CONFIRM_SIGNALS = ("py_blocks", "tracemalloc")

# the new violations one step reports in full (each carries its stacks): the events line must
# stay far below what the parent reads whole (isolation.MAX_EVENT_LINE)
MAX_NEW_VIOLATIONS = 256
PR_SET_PDEATHSIG = 1

# The lifeline: started first, holds the read end of a pipe the child keeps open; EOF (or being
# reparented) means the child is gone (exit, crash, SIGKILL), and then nothing of the run may stay. Run with -S -I so it
# starts in milliseconds and does not import memcycle.
_LIFELINE = """
import os, select, signal, sys
pgid, needle = int(sys.argv[1]), (sys.argv[3] + "=" + sys.argv[2]).encode()
child = os.getppid()
while os.getppid() == child:  # reparented: the child is gone (a fork may still hold the pipe)
    try:
        if select.select([0], [], [], 0.5)[0] and not os.read(0, 1):
            break
    except OSError:
        break
me = os.getpid()
for name in os.listdir("/proc") if sys.argv[2] else ():
    if name.isdigit() and int(name) != me:
        try:
            with open("/proc/%s/environ" % name, "rb") as fh:
                if needle in fh.read().split(b"\\0"):
                    os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
os.killpg(pgid, signal.SIGKILL)
"""


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux; elsewhere nothing to do).

    The parent pid from the environment closes the race of a parent that died before this
    call: then the child is already orphaned and leaves at once."""
    parent = os.environ.get(PARENT_ENV)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent and parent.isdigit() and os.getppid() != int(parent):
        os._exit(EXIT_ORPHANED)


def start_lifeline() -> int | None:
    """Start the lifeline (see `_LIFELINE`); returns the pipe end this process keeps open."""
    token = os.environ.get(TOKEN_ENV, "")
    if not os.path.isdir("/proc") or os.getpgrp() != os.getpid():
        return None  # not a run's own process group (a test calling run() directly)
    rfd, wfd = os.pipe()
    try:
        subprocess.Popen(
            [sys.executable, "-S", "-I", "-c", _LIFELINE, str(os.getpgrp()), token, TOKEN_ENV],
            stdin=rfd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError:
        os.close(wfd)
        return None
    finally:
        os.close(rfd)
    return wfd  # non-inheritable: no grandchild keeps the lifeline waiting


def describe_error(exc: BaseException) -> dict[str, Any]:
    """Type, message, traceback and (for MemoryFault) the verdict class."""
    t = type(exc)
    return {
        "type": f"{t.__module__}.{t.__qualname__}",
        "message": bound_text(str(exc)),
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
        "verdict": getattr(exc, "verdict", None),
    }


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _resolve_spec(spec: str) -> str:
    """Allow `path/to/file.py:factory` as well as `package.module:factory`."""
    module, sep, attr = spec.partition(":")
    if sep and module.endswith(".py"):
        path = Path(module).resolve()
        name = f"_memcycle_engine_{path.stem}"
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or mspec.loader is None:
            raise ImportError(f"cannot load engine module from {path}")
        mod = importlib.util.module_from_spec(mspec)
        sys.modules[name] = mod
        mspec.loader.exec_module(mod)
        return f"{name}:{attr}"
    return spec


def _source_roots(engine: Engine, spec: str) -> list[str]:
    """Files/directories whose frames count as engine code in memray attribution."""
    roots: list[str] = [str(r) for r in getattr(engine, "source_roots", ()) or ()]
    for modname in {type(engine).__module__, spec.partition(":")[0]}:
        mod = sys.modules.get(modname)
        f = getattr(mod, "__file__", None)
        if f:
            roots.append(str(Path(f).resolve()))
    return sorted(set(roots))


class Replayer:
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
        self.violations_reported = 0  # of the allocator's list, how many steps already sent

    # -- helpers --------------------------------------------------------------
    def ensure_open(self, dim: int) -> None:
        if self.open_dim != dim:
            self.engine.open(dim, self.scenario.metric)
            self.open_dim = dim
            self.last_dim = dim

    def ledger(self) -> dict[str, Any] | None:
        fn = getattr(self.engine, "ledger", None)
        if fn is None:
            return None
        snap = fn()
        if snap is None:
            return None
        snap = dict(snap)
        # each step sends the violations recorded since the last one (the allocator's list only
        # grows; shorter means a new allocator), not the whole list again: each carries stacks
        viol = list(snap.pop("violations", None) or [])
        if len(viol) < self.violations_reported:
            self.violations_reported = 0
        new = viol[self.violations_reported :]
        self.violations_reported = len(viol)
        snap[LEDGER_VIOLATION_COUNT] = len(viol)
        snap[LEDGER_NEW_VIOLATIONS] = new[:MAX_NEW_VIOLATIONS]
        if len(new) > MAX_NEW_VIOLATIONS:
            snap["new_violations_not_sent"] = len(new) - MAX_NEW_VIOLATIONS
        return snap

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
        ev.memory = self.recorder.measure(
            full=step.op == "checkpoint", objects=step.op in MEASURED_OPS
        )
        led = self.ledger()
        if led is not None:
            ev.memory["ledger"] = led
        return ev

    def op_open(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.ensure_open(pc.dimension)

    def op_insert(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.ensure_open(pc.dimension)
        n = int(step.count or 0)
        if step.duplicates:
            self._insert_duplicates(pc, si, step, ev)
            return
        if step.reuse_deleted:
            reuse = np.asarray(self.oracle.deleted[:n], dtype=np.int64)
            ids = np.concatenate([reuse, self.data.next_ids(n - len(reuse))])
        else:
            ids = self.data.next_ids(n)
        vectors = self.data.vectors(n, pc.dimension, pc.index, si)
        meta = self.data.metadata(ids, pc.index) if step.metadata else None
        size = step.batch or n
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            m = meta[lo:hi] if meta is not None else None
            self.engine.insert(ids[lo:hi], vectors[lo:hi], m)
            self.oracle.insert(ids[lo:hi], vectors[lo:hi], m)

    def _insert_duplicates(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """One batch whose last `duplicates` rows repeat ids of its earlier rows (with other
        vectors). Refusing the whole batch is always acceptable, and must leave the engine as
        it was (the count and later searches say whether it did); accepting it must keep one
        row per id, the one the adapter's `duplicate_ids` policy names, checked at once with
        `get` when the engine has it. Accepting under a declared "refuse" is a wrong-result."""
        n, m = int(step.count or 0), int(step.duplicates or 0)
        fresh = self.data.next_ids(n - m)
        repeated = self.data.pick(fresh, m, pc.index, si)
        ids = np.concatenate([fresh, repeated])
        vectors = self.data.vectors(n, pc.dimension, pc.index, si)
        meta = self.data.metadata(ids, pc.index) if step.metadata else None
        policy = str(getattr(self.engine.capabilities, "duplicate_ids", "refuse"))
        check: dict[str, Any] = {"duplicates": m, "policy": policy, "refused": False}
        try:
            self.engine.insert(ids, vectors, meta)
        except Exception as exc:
            if getattr(exc, "verdict", None):  # a memory fault is not a refusal
                raise
            check["refused"] = True
            check["refusal"] = f"{type(exc).__name__}: {_first_line(str(exc))}"[:300]
            ev.check = check
            return
        keep = dedupe(ids, "first-wins" if policy == "first-wins" else "last-wins")
        self.oracle.insert(
            ids[keep], vectors[keep], [meta[j] for j in keep.tolist()] if meta else None
        )
        get = getattr(self.engine, "get", None)
        if get is not None:
            rows = self._get_rows(get, repeated)
            check.update(self.oracle.check_get(repeated, rows))
        ev.check = check

    def op_upsert(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """Re-insert live ids with new vectors: the new row must win, the old one be gone."""
        if not getattr(self.engine.capabilities, "upsert", False):
            ev.skipped = f"{self.engine.name} cannot upsert"
            return
        ids = self.data.pick(self.oracle.live_ids(), int(step.count or 0), pc.index, si)
        dim = self.open_dim or pc.dimension
        vectors = self.data.vectors(len(ids), dim, pc.index, si)
        meta = self.data.metadata(ids, pc.index) if step.metadata else None
        if len(ids):
            self.engine.upsert(ids, vectors, meta)
            self.oracle.insert(ids, vectors, meta)
        ev.check = {"upserted": len(ids)}

    def op_reopen(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """Close and open the same store: every row must still be there."""
        if not getattr(self.engine.capabilities, "reopen", False):
            ev.skipped = f"{self.engine.name} cannot reopen a store keeping its rows"
            return
        self.engine.reopen()

    def op_compact(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        if not getattr(self.engine.capabilities, "compact", False):
            ev.skipped = f"{self.engine.name} has no compact"
            return
        self.engine.compact()

    def op_flush(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        if not getattr(self.engine.capabilities, "flush", False):
            ev.skipped = f"{self.engine.name} has no flush"
            return
        self.engine.flush()

    def op_delete_filter(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """Delete by metadata filter: the oracle deletes the live rows that match."""
        if not getattr(self.engine.capabilities, "delete_filter", False):
            ev.skipped = f"{self.engine.name} cannot delete by filter"
            return
        flt = step.filter_dict() or {}
        self.engine.delete_filter(flt)
        ev.check = {"deleted": len(self.oracle.delete_filter(flt)), "filter": flt}

    def op_search(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        flt = step.filter_dict()
        dim = self.open_dim or self.last_dim or pc.dimension
        k = int(step.k or 10)
        queries = self.data.queries(int(step.queries or 10), dim, pc.index, si)
        ids, dists = self.engine.search(queries, k, flt)
        check = self.oracle.check_search(queries, k, ids, flt, dists)
        ev.recall = check["recall"]
        ev.min_recall = step.min_recall
        ev.check = check

    def op_get(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        get = self.engine.get  # type: ignore[attr-defined]  # present: step_skip_reason
        ids = self.data.pick(self.oracle.live_ids(), int(step.count or 10), pc.index, si)
        ev.check = self.oracle.check_get(ids, self._get_rows(get, ids))

    @staticmethod
    def _get_rows(get: Any, ids: np.ndarray) -> list[Any]:
        """One row (or None: not held) per live id. An adapter may return None rows or raise
        KeyError; on KeyError each id is asked alone, so the lost rows are named, and a lost
        row is a wrong-result, not an error of the step."""
        if not len(ids):
            return []
        try:
            rows = get(ids)
        except KeyError:
            rows = []
            for i in ids:
                try:
                    rows.append(get(np.array([i], dtype=np.int64))[0])
                except KeyError:
                    rows.append(None)
            return rows
        if isinstance(rows, np.ndarray):
            return list(rows)
        rows = list(rows)
        if len(rows) != len(ids):
            raise ValueError(f"get returned {len(rows)} rows for {len(ids)} ids")
        return rows

    def op_delete(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        live = self.oracle.live_ids()
        n = step.count if step.count is not None else math.ceil((step.fraction or 0) * len(live))
        ids = self.data.pick(live, n, pc.index, si)
        if len(ids):
            self.engine.delete(ids)
            self.oracle.delete(ids)
        ev.check = {"deleted": len(ids)}

    def op_clear(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.engine.clear()
        self.oracle.clear()
        self.open_dim = None

    def op_destroy(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.engine.close()
        self.oracle.clear()
        self.open_dim = None

    def op_reload(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.engine.reload()
        self.oracle.clear()
        self.open_dim = None

    def op_checkpoint(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        gc.collect()

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

    def still_rising(self) -> str | None:
        """The cheap series that rose by at least its rule's slope in the last cycle."""
        cycles = sorted(self.reset_memory)
        if len(cycles) < 2 or len(cycles) >= CONFIRM_CYCLES:
            return None
        for key in CONFIRM_SIGNALS:
            last = [self.reset_memory[c] for c in cycles[-2:]]
            if any(m["op"] == "reload" for m in last):
                continue  # Python-object series are not judged after a reload (checks.py)
            vals = [m.get(key) for m in last]
            if None in vals:
                continue
            if vals[1] - vals[0] >= GROWTH_RULES[key].slope_min:
                return key
        return None

    def confirm(self, table_seconds: float) -> bool:
        """Repeat the last cycle while a series still rises (see CONFIRM_CYCLES)."""
        if not self.confirm_enabled or self.last_pc is None:
            return True
        budget = min(CONFIRM_SECONDS, max(3 * table_seconds, 5.0))
        t0 = time.perf_counter()
        extra = 0
        while extra < CONFIRM_MAX_EXTRA and time.perf_counter() - t0 < budget:
            signal = self.still_rising()
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
        ev.memory = self.recorder.measure(full=True, objects=True)
        led = self.ledger()
        if led is not None:
            ev.memory["ledger"] = led
        return ev


def lsan_leak_check() -> None:
    """Ask LeakSanitizer for a report now (the child leaves by os._exit, so none at exit)."""
    if os.environ.get("MEMCYCLE_LSAN_CHECK") != "1":
        return
    import ctypes

    fn = getattr(ctypes.CDLL(None), "__lsan_do_recoverable_leak_check", None)
    if fn is not None:
        fn()


def run(config: ChildConfig, events: EventWriter, compile_clock: CompileClock | None = None) -> int:
    """The child's work; returns the exit code."""
    # before the engine is built: its imports may bring numba, its factory may compile
    compile_clock = compile_clock or install_compile_clock()
    for p in reversed(config.sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    scenario = config.scenario
    preload_engine_code(config.engine)  # before recording: harness.preload says why
    recorder = Recorder(
        config.memray_path,
        native=config.native,
        use_tracemalloc=config.tracemalloc,
        trace_python_allocators=config.trace_python_allocators,
    )
    recorder.start()
    code = EXIT_OK
    try:
        try:
            spec = _resolve_spec(config.engine)
            # [engine] scalars, then [engine.<spec>] for exactly this spec, then the caller's
            options = {**scenario.options(config.engine), **config.options}
            engine = make_engine(
                spec,
                EngineConfig(allocator=config.allocator, faults=config.faults, options=options),
            )
        except Exception as exc:
            events.emit(EventKind.ERROR, phase="setup", error=describe_error(exc))
            return EXIT_SETUP_ERROR
        caps = engine.capabilities
        # a peer engine allocates with its own allocator and says so ("native")
        own_allocator = getattr(engine, "allocator", None)
        events.emit(
            EventKind.START,
            engine=getattr(engine, "name", config.engine),
            allocator=own_allocator if isinstance(own_allocator, str) else None,
            capabilities=caps.to_dict() if hasattr(caps, "to_dict") else {},
            source_roots=_source_roots(engine, spec),
            pid=os.getpid(),
            t=time.time(),
        )
        problems = capability_problems(engine)
        if problems:  # enforced capabilities must be well-formed: an adapter error
            events.emit(
                EventKind.ERROR,
                phase="setup",
                error={
                    "type": "memcycle.engines.base.EngineError",
                    "message": f"engine {config.engine!r} declares bad capabilities: "
                    + "; ".join(problems),
                    "traceback": "",
                    "verdict": None,
                },
            )
            return EXIT_SETUP_ERROR
        # what the plan needs as a whole (requires, metric, a dimension change): else skip
        unmet = unmet_needs(scenario, engine)
        if unmet:
            events.emit(EventKind.SKIP, reason="; ".join(unmet))
            return EXIT_OK
        rep = Replayer(scenario, engine, recorder, events, compile_clock)
        rep.confirm_enabled = config.confirm
        if rep.replay():
            ev = rep.teardown()
            lsan_leak_check()  # under --sanitizer asan: the engine's leaks, after its last close
            events.emit(EventKind.STEP, **asdict(ev))
            rep.mark(ev.cycle, ev.step, TEARDOWN_OP)
            if not ev.ok:
                code = EXIT_STEP_ERROR
        else:
            code = EXIT_STEP_ERROR
    finally:
        recorder.stop()
    return code


def _config_text(value: str) -> str:
    """`--config` is the JSON itself or, for one too long for argv, `@path` of a file holding it."""
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m memcycle.child", description=__doc__)
    ap.add_argument("--events-fd", type=int, required=True)
    ap.add_argument(
        "--config", required=True, help="a protocol.ChildConfig as JSON, or @FILE holding it"
    )
    args = ap.parse_args(argv)
    die_with_parent()
    lifeline = start_lifeline()
    faulthandler.enable(file=sys.stderr, all_threads=True)
    try:
        config = ChildConfig.from_json(_config_text(args.config))
    except (ProtocolError, OSError) as exc:
        ap.error(str(exc))  # exit 2, before any event: the parent reports the stderr line
    if config.deadline is not None and config.deadline > 0:
        # the C watchdog dumps every thread's stack to stderr and _exit(1)s the child
        faulthandler.dump_traceback_later(config.deadline, exit=True)
    install_child_hooks()  # all Python stacks on SIGUSR1, gdb may attach (harness.hangs)
    stream = os.fdopen(args.events_fd, "w", buffering=1, encoding="utf-8")
    events = EventWriter(stream, config.event_token)
    t0 = time.perf_counter()
    compile_clock = install_compile_clock()
    code = run(config, events, compile_clock)
    # the whole child's compile seconds, the engine's setup included (steps count their own)
    events.emit(
        EventKind.END,
        code=code,
        seconds=time.perf_counter() - t0,
        compile_seconds=compile_clock.seconds(),
    )
    del lifeline  # closed by os._exit below: the lifeline then ends the process group
    stream.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: finalizers of a broken engine must not turn a
    # reported error into a second, unrelated crash
    os._exit(code)


if __name__ == "__main__":
    main()
