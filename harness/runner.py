"""Run one scenario: one isolated child per (scenario, engine, allocator, faults).

`run_one` starts the child, folds its events into a `RunRecord`, reads the
memray capture (`harness.analysis`), renders flamegraphs when an output folder
is given, and applies `harness.checks`. Running several in parallel, and stopping
them on an interrupt, is `harness.batch`'s job (`run_many`); this module still
answers for those names, so `memcycle.runner.run_many` keeps working.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import inspect
import json
import os
import re
import shutil
import tempfile
import time
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import analysis as _analysis
from .checks import CONFIRM_LABEL, judge
from .hangs import Position, Watchdog, plan_positions
from .isolation import ChildRegistry, run_child
from .protocol import ChildConfig, EventKind, ProtocolError
from .records import RunRecord
from .sanitizers import (
    SANITIZERS,
    STEP_TIMEOUT_FACTOR,
    TIMEOUT_FACTOR,
    TIMEOUT_SLACK,
    Mode,
)
from .scenario import Scenario, load_scenario

DEFAULT_TIMEOUT = 600.0

EventSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunSpec:
    """One run to do, with every run option (the one list of them: `run_one` takes the same
    names). `engine=None` means the scenario's own default engine.

    `scenario` is a file or an already-built `Scenario` (the fault matrix runs fault
    scenarios with their `faults` key emptied)."""

    scenario: str | Path | Scenario
    engine: str | None = None
    allocator: str = "numpy"
    faults: tuple[str, ...] = ()  # after the scenario's own
    memray: bool = True
    native: bool = False
    timeout: float | None = None
    expected: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # extra engine options
    # "failed" (verdict differs from expected; the default keeps a clean run folder small)
    # | "all" | "none"
    flamegraphs: str = "failed"
    tracemalloc: bool | None = None  # None: on exactly when memray is off
    sanitizer: str | None = None  # "asan" | "ubsan" (harness.sanitizers)
    valgrind: bool = False
    trace_python_allocators: bool = False  # memray traces pymalloc too (Python object stacks)
    confirm: bool = True  # extra repeats of the last cycle while a series rises (child.py)


# the fields of RunSpec that run_one takes by position; the rest it takes by name (`_OPTIONS`)
_POSITIONAL = ("scenario", "engine", "allocator", "faults")
_OPTIONS = tuple(f for f in dataclasses.fields(RunSpec) if f.name not in _POSITIONAL)


def slug(text: str) -> str:
    """A file-system-safe name for a run key."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "run"


def new_run_id() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def run_one(
    scenario: Scenario | str | Path,
    engine: str | None = None,
    allocator: str = "numpy",
    faults: Sequence[str] = (),
    *,
    out_dir: Path | None = None,
    on_event: EventSink | None = None,
    registry: ChildRegistry | None = None,
    **options: Any,
) -> RunRecord:
    """Run one scenario in one child process and judge it (see module doc).

    `options` are the other fields of `RunSpec` (memray, native, timeout, expected, options,
    flamegraphs, tracemalloc, sanitizer, valgrind, trace_python_allocators, confirm); an
    unknown one is a TypeError naming it. See `run_spec` for `out_dir`, `on_event`, `registry`.
    """
    names = [f.name for f in _OPTIONS]
    unknown = [k for k in options if k not in names]
    if unknown:
        raise TypeError(
            f"run_one: unknown option {unknown[0]!r}; expected one of {', '.join(names)}"
        )
    spec = RunSpec(scenario, engine, allocator, tuple(faults), **options)
    return run_spec(spec, out_dir=out_dir, on_event=on_event, registry=registry)


def _spelled_out(fn: Callable[..., Any]) -> inspect.Signature:
    """`fn`'s signature with its `**options` spelled out as RunSpec's fields (help() shows
    them; the pytest plugin's `memcycle_run` takes run_one's parameters as its options)."""
    params = list(inspect.signature(fn).parameters.values())
    hints = typing.get_type_hints(RunSpec)
    named = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=f.default if f.default is not dataclasses.MISSING else f.default_factory(),  # type: ignore[misc]
            annotation=hints[f.name],
        )
        for f in _OPTIONS
    ]
    fixed = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return inspect.Signature([*fixed, *named], return_annotation=RunRecord)


run_one.__signature__ = _spelled_out(run_one)  # type: ignore[attr-defined]


def run_spec(
    spec: RunSpec,
    *,
    out_dir: Path | None = None,
    on_event: EventSink | None = None,
    registry: ChildRegistry | None = None,
) -> RunRecord:
    """Run one spec in one child process and judge it (see module doc).

    With `out_dir`, the memray capture, events.jsonl, stderr.txt and (per
    `spec.flamegraphs`: "all", "failed" or "none") memray's flamegraph HTML are kept
    under `out_dir/<run-key-slug>/`. `on_event` sees a `plan` event (scenario, engine,
    allocator, cycles, each cycle's ops) before the child starts, then every event of the child as it
    arrives (from a reader thread). Raises `isolation.Cancelled` when `registry` is stopped.
    `tracemalloc=False` with `memray=False` records nothing but RSS (the warm-up: both tools
    slow a cold Numba compile several times over).
    """
    if spec.flamegraphs not in ("all", "failed", "none"):
        raise ValueError(f"flamegraphs must be 'all', 'failed' or 'none', got {spec.flamegraphs!r}")
    if spec.sanitizer is not None and spec.sanitizer not in SANITIZERS:
        raise ValueError(
            f"sanitizer must be one of {', '.join(SANITIZERS)} (or None), got {spec.sanitizer!r}"
        )
    sc = spec.scenario if isinstance(spec.scenario, Scenario) else load_scenario(spec.scenario)
    engine_name = spec.engine or sc.default_engine()
    # the scenario's own faults, then the caller's
    faults = list(dict.fromkeys([*sc.faults, *spec.faults]))
    record = RunRecord(
        scenario=sc.name,
        scenario_path=sc.path,
        engine=engine_name,
        allocator=spec.allocator,
        faults=faults,
        expected_verdict=spec.expected or sc.expected(spec.allocator),
    )
    if on_event is not None:
        on_event(
            {
                "kind": EventKind.PLAN,
                "key": record.key,
                "scenario": sc.name,
                "engine": engine_name,
                "allocator": spec.allocator,
                "cycles": len(sc.plan),
                "ops": [[st.op for st in pc.steps] for pc in sc.plan],  # what runs next
            }
        )
    if sc.engines and engine_name not in sc.engines:
        record.verdict = "skipped"
        record.exit = {"kind": "skipped", "reason": f"scenario is for {', '.join(sc.engines)}"}
        return judge(record, sc.plan)

    run_dir: Path | None = None
    tmp: str | None = None
    if out_dir is not None:
        run_dir = Path(out_dir) / slug(record.key)
        run_dir.mkdir(parents=True, exist_ok=True)
    elif spec.memray:
        tmp = tempfile.mkdtemp(prefix="memcycle-")
    capture = str((run_dir or Path(tmp or ".")) / "capture.bin") if spec.memray else None
    config = ChildConfig(
        scenario=sc,
        engine=engine_name,
        allocator=spec.allocator,
        faults=tuple(faults),
        options=dict(spec.options),
        memray_path=capture,
        native=spec.native,
        # tracemalloc's own bookkeeping goes through malloc and would flood the memray
        # capture (5x slower); memray sees everything tracemalloc would, so one or the other
        tracemalloc=(not spec.memray) if spec.tracemalloc is None else spec.tracemalloc,
        trace_python_allocators=spec.trace_python_allocators,
        confirm=spec.confirm,
    )
    t0 = time.perf_counter()
    try:
        tool = "valgrind" if spec.valgrind else spec.sanitizer
        mode = _native_mode(tool, run_dir, tmp) if tool else None
        if mode is not None and tmp is None and run_dir is None:
            tmp = str(mode.workdir.parent)
        watchdog, run_timeout = _watchdog(sc, spec.timeout, tool)
        res = run_child(
            config,
            timeout=run_timeout,
            watchdog=watchdog,
            mode=mode,
            on_event=on_event,
            registry=registry,
        )
        record.exit = res.exit
        stream = res.stream
        if stream.malformed:
            raise ProtocolError(f"the child's event stream: {stream.malformed[0]}")
        record.steps = list(stream.steps)
        roots: list[str] = []
        if stream.start is not None:
            record.capabilities = stream.start.get("capabilities", {})
            own = stream.start.get("allocator")
            if isinstance(own, str) and own and own != record.allocator:
                # the engine's own allocator ("native"), as the pytest plugin records it
                record.allocator = own
                if spec.expected is None:
                    record.expected_verdict = sc.expected(own)
            roots = stream.start.get("source_roots", [])
        # the child repeats the last cycle to confirm a rising series: judge those too
        plan = (
            *sc.plan,
            *(
                dataclasses.replace(sc.plan[-1], index=c, label=CONFIRM_LABEL)
                for c in stream.confirmed
            ),
        )
        if stream.skip_reason is not None:
            record.verdict = "skipped"
            record.exit = {**record.exit, "kind": "skipped", "reason": stream.skip_reason}
        # the child's total includes the engine's setup; after a crash only the steps are known
        record.compile_seconds = (
            stream.compile_seconds
            if stream.compile_seconds is not None
            else sum(s.compile_seconds or 0.0 for s in record.steps)
        )
        markers = stream.markers
        if run_dir is not None:
            (run_dir / "stderr.txt").write_text(res.exit.get("stderr_tail", ""), encoding="utf-8")
            with open(run_dir / "events.jsonl", "w", encoding="utf-8") as fh:
                for ev in res.events:
                    fh.write(json.dumps(ev) + "\n")
        result: dict[str, Any] | None = None
        if capture and Path(capture).exists() and record.verdict != "skipped":
            # growth per stack is measured from the end of the first (warm-up) cycle
            first = [m["index"] for m in markers if m["cycle"] == sc.plan[0].index]
            an = _analysis.analyze(
                capture,
                roots,
                baseline_index=first[-1] if first else None,
                steps=record.steps,
                markers=markers,
            )
            result = an.to_dict()
            by_index = {m["index"]: m for m in an.markers}
            record.peak_bytes = an.peak_bytes or None
            record.memray = {
                "capture": capture if run_dir is not None else None,
                "records": an.records,
                "peak_bytes": an.peak_bytes,
                "engine_peak_bytes": an.engine_peak_bytes,
                "top_live": an.top_live,
                "top_growth": an.top_growth,
                "cache": an.cache,
                "markers": [{**mk, **by_index.get(mk["index"], {})} for mk in markers],
                "source_roots": roots,
                "error": an.error,
                "native_traces": an.native_traces,
            }
            if run_dir is not None:
                record.memray["capture"] = os.path.relpath(capture, out_dir)
        if record.peak_bytes is None:
            rss = [s.memory.get("rss", 0) for s in record.steps if s.memory]
            record.peak_bytes = max(rss) if rss else None
        judge(
            record,
            plan,
            markers=markers,
            analysis=result,
            setup_error=stream.setup_error,
            started=stream.started,
        )
        render = spec.flamegraphs == "all" or (spec.flamegraphs == "failed" and not record.passed)
        if render and record.memray is not None and run_dir is not None and capture:
            made = _analysis.flamegraphs(capture, run_dir)
            record.memray.update({k: os.path.relpath(v, out_dir) for k, v in made.items()})
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    record.seconds = time.perf_counter() - t0
    return record


def _native_mode(tool: str, run_dir: Path | None, tmp: str | None) -> Mode:
    """Where the sanitizer or valgrind writes its reports for this run."""
    base = run_dir or Path(tmp or tempfile.mkdtemp(prefix="memcycle-"))
    return Mode(tool=tool, workdir=base / tool)


def _watchdog(sc: Scenario, timeout: float | None, tool: str | None) -> tuple[Watchdog, float]:
    """The run's limit (caller's, else the scenario's, else the default) and its step limits,
    both stretched by the tool's slowdown under a sanitizer or valgrind (the run's also by
    the tool's fixed price per child; see harness.sanitizers)."""
    # `run_spec` refused any other tool, so a known tool always has its entry here
    factor = TIMEOUT_FACTOR[tool] if tool else 1.0
    step_factor = STEP_TIMEOUT_FACTOR[tool] if tool else 1.0
    slack = TIMEOUT_SLACK[tool] if tool else 0.0
    base = timeout if timeout is not None else (sc.timeout or DEFAULT_TIMEOUT)
    run_timeout = factor * base + slack
    positions = [
        Position(p.cycle, p.step, p.op, p.timeout * step_factor if p.timeout else None)
        for p in plan_positions(sc.plan)
    ]
    return Watchdog(run_timeout=run_timeout, positions=positions), run_timeout


# moved to harness.batch, still importable from here; looked up on first use because batch
# imports this module (RunSpec, run_spec), so a top-level import would be a circle
_BATCH_NAMES = frozenset(
    {
        "STOP_GRACE",
        "Interrupted",
        "RunInterrupted",
        "harness_error_record",
        "host_info",
        "run_many",
        "spec_key",
    }
)


def __getattr__(name: str) -> Any:
    if name in _BATCH_NAMES:
        from . import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
