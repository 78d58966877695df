"""Run scenarios: one isolated child per (scenario, engine, allocator, faults).

`run_one` starts the child, folds its events into a `RunRecord`, reads the
memray capture (`harness.analysis`), renders flamegraphs when an output folder
is given, and applies `harness.checks`. `run_many` runs several in parallel
(each run is its own process, so threads are enough to drive them).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import analysis as _analysis
from .checks import CONFIRM_LABEL, judge
from .isolation import run_child
from .records import Report, RunRecord, StepEvent
from .scenario import Scenario, load_scenario

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class RunSpec:
    """One run to do; `engine=None` means the scenario's own default engine.

    `scenario` is a file or an already-built `Scenario` (the fault matrix runs fault
    scenarios with their `faults` key emptied)."""

    scenario: str | Path | Scenario
    engine: str | None = None
    allocator: str = "numpy"
    faults: tuple[str, ...] = ()
    memray: bool = True
    native: bool = False
    timeout: float | None = None
    expected: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # extra engine options
    flamegraphs: str = "all"  # "all" | "failed" (verdict differs from expected) | "none"
    trace_python_allocators: bool = False  # memray traces pymalloc too (Python object stacks)
    confirm: bool = True  # extra repeats of the last cycle while a series rises (child.py)


def slug(text: str) -> str:
    """A file-system-safe name for a run key."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "run"


def new_run_id() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def host_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def run_one(
    scenario: Scenario | str | Path,
    engine: str | None = None,
    allocator: str = "numpy",
    faults: Sequence[str] = (),
    *,
    memray: bool = True,
    native: bool = False,
    timeout: float | None = None,
    out_dir: Path | None = None,
    expected: str | None = None,
    options: dict[str, Any] | None = None,
    flamegraphs: str = "all",
    trace_python_allocators: bool = False,
    confirm: bool = True,
) -> RunRecord:
    """Run one scenario in one child process and judge it (see module doc).

    With `out_dir`, the memray capture, events.jsonl, stderr.txt and (per
    `flamegraphs`: "all", "failed" or "none") memray's flamegraph HTML are kept
    under `out_dir/<run-key-slug>/`.
    """
    if flamegraphs not in ("all", "failed", "none"):
        raise ValueError(f"flamegraphs must be 'all', 'failed' or 'none', got {flamegraphs!r}")
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    engine_name = engine or sc.default_engine()
    faults = list(dict.fromkeys([*sc.faults, *faults]))  # the scenario's own, then the caller's
    record = RunRecord(
        scenario=sc.name,
        scenario_path=sc.path,
        engine=engine_name,
        allocator=allocator,
        faults=faults,
        expected_verdict=expected or sc.expected(allocator),
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
    elif memray:
        tmp = tempfile.mkdtemp(prefix="memcycle-")
    capture = str((run_dir or Path(tmp or ".")) / "capture.bin") if memray else None
    config = {
        "scenario": str(Path(sc.path).resolve()),
        "engine": engine_name,
        "allocator": allocator,
        "faults": list(faults),
        "memray_path": capture,
        "native": native,
        # tracemalloc's own bookkeeping goes through malloc and would flood the memray
        # capture (5x slower); memray sees everything tracemalloc would, so one or the other
        "tracemalloc": not memray,
        "options": dict(options or {}),
        "trace_python_allocators": trace_python_allocators,
        "confirm": confirm,
    }
    t0 = time.perf_counter()
    try:
        res = run_child(config, timeout=timeout if timeout is not None else DEFAULT_TIMEOUT)
        record.exit = res.exit
        roots: list[str] = []
        markers: list[dict[str, Any]] = []
        setup_error = None
        child_compile: float | None = None
        plan = sc.plan
        for raw in res.events:
            ev = dict(raw)
            kind = ev.pop("kind", None)
            if kind == "step":
                record.steps.append(StepEvent.from_dict(ev))
            elif kind == "marker":
                markers.append(ev)
            elif kind == "start":
                record.capabilities = ev.get("capabilities", {})
                own = ev.get("allocator")
                if isinstance(own, str) and own and own != record.allocator:
                    # the engine's own allocator ("native"), as the pytest plugin records it
                    record.allocator = own
                    if expected is None:
                        record.expected_verdict = sc.expected(own)
                roots = ev.get("source_roots", [])
            elif kind == "confirm":
                # the child repeats the last cycle to confirm a rising series: judge those too
                last = plan[-1]
                extra = dataclasses.replace(last, index=int(ev["cycle"]), label=CONFIRM_LABEL)
                plan = (*plan, extra)
            elif kind == "error":
                setup_error = ev.get("error")
            elif kind == "skip":
                record.verdict = "skipped"
                record.exit = {**record.exit, "kind": "skipped", "reason": ev.get("reason")}
            elif kind == "end" and isinstance(ev.get("compile_seconds"), int | float):
                child_compile = float(ev["compile_seconds"])
        # the child's total includes the engine's setup; after a crash only the steps are known
        record.compile_seconds = (
            child_compile
            if child_compile is not None
            else sum(s.compile_seconds or 0.0 for s in record.steps)
        )
        if run_dir is not None:
            (run_dir / "stderr.txt").write_text(res.exit.get("stderr_tail", ""), encoding="utf-8")
            with open(run_dir / "events.jsonl", "w", encoding="utf-8") as fh:
                for ev in res.events:
                    fh.write(json.dumps(ev) + "\n")
        result: dict[str, Any] | None = None
        if capture and Path(capture).exists() and record.verdict != "skipped":
            # growth per stack is measured from the end of the first (warm-up) cycle
            first = [m["index"] for m in markers if m["cycle"] == sc.plan[0].index]
            an = _analysis.analyze(capture, roots, baseline_index=first[-1] if first else None)
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
                "markers": [{**mk, **by_index.get(mk["index"], {})} for mk in markers],
                "source_roots": roots,
                "error": an.error,
            }
            if run_dir is not None:
                record.memray["capture"] = os.path.relpath(capture, out_dir)
        if record.peak_bytes is None:
            rss = [s.memory.get("rss", 0) for s in record.steps if s.memory]
            record.peak_bytes = max(rss) if rss else None
        judge(record, plan, markers=markers, analysis=result, setup_error=setup_error)
        render = flamegraphs == "all" or (flamegraphs == "failed" and not record.passed)
        if render and record.memray is not None and run_dir is not None and capture:
            made = _analysis.flamegraphs(capture, run_dir)
            record.memray.update({k: os.path.relpath(v, out_dir) for k, v in made.items()})
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    record.seconds = time.perf_counter() - t0
    return record


def run_many(
    items: Sequence[RunSpec],
    out_dir: Path,
    *,
    jobs: int = 1,
    progress: Callable[[RunRecord], None] | None = None,
    command: list[str] | None = None,
    run_id: str | None = None,
) -> Report:
    """Run every item (up to `jobs` children at once); the report keeps the items' order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(spec: RunSpec) -> RunRecord:
        rec = run_one(
            spec.scenario,
            spec.engine,
            spec.allocator,
            spec.faults,
            memray=spec.memray,
            native=spec.native,
            timeout=spec.timeout,
            out_dir=out_dir,
            expected=spec.expected,
            options=spec.options,
            flamegraphs=spec.flamegraphs,
            trace_python_allocators=spec.trace_python_allocators,
            confirm=spec.confirm,
        )
        if progress is not None:
            progress(rec)
        return rec

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(one, items))
    return Report(
        run_id=run_id or out_dir.name,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        runs=runs,
        host=host_info(),
        command=list(command if command is not None else sys.argv),
    )
