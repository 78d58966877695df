"""What a baseline file holds, and reading and writing it (the gate's input).

A baseline is compact: per run (keyed by `RunRecord.key`) the verdict, the expectation and
the figures the gate compares, each chosen to leave Numba compilation out: time is the
steps' own seconds minus their compile seconds, the engine's own memray peak excludes
compiling, and the process peak is kept beside the Numba cache state that explains it.
Beside them: where the runs were made (`harness.environment`) and the Numba cache state.
The format is in reports/SCHEMA.md; `BASELINE_VERSION` is bumped when it changes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memcycle.environment import environment
from memcycle.errors import UsageError
from memcycle.records import VERDICTS, Report, RunRecord
from memcycle.report_files import load_json

BASELINE_VERSION = 2
BASELINE_KIND = "memcycle-baseline"
# "error" (memcycle or the adapter could not do its job) is a verdict of the shared contract
GATE_VERDICTS: tuple[str, ...] = tuple(dict.fromkeys([*VERDICTS, "error"]))
# a run that compiled at least this long ran on a cold Numba cache (a warm one compiles 0 s)
COLD_COMPILE_SECONDS = 0.1


class GateInputError(UsageError):
    """A flag, report or baseline is missing or not what the gate reads (exit 2)."""


# --- measurements ---------------------------------------------------------------
def leaked_bytes_per_cycle(run: RunRecord) -> float | None:
    """Growth of leaked memory per cycle, judged over the later cycles (cycle 1 warms caches).

    Uses memray's engine-attributed leaked bytes when measured, else the allocator's
    live bytes at each cycle's end; None when neither was measured in two cycles.
    """
    for attr in ("memray_leaked_bytes", "live_bytes"):
        pts = [
            (c.cycle, float(getattr(c, attr)))
            for c in run.cycles
            if getattr(c, attr) is not None and c.status not in ("-", "")
        ]
        if len(pts) >= 2:
            if len(pts) >= 3:
                pts = pts[1:]  # skip the first cycle
            (c0, v0), (c1, v1) = pts[0], pts[-1]
            return max(0.0, (v1 - v0) / (c1 - c0)) if c1 != c0 else 0.0
    return None


def gated_seconds(run: RunRecord) -> float:
    """The steps' own seconds without Numba compilation: the gate's time figure.

    Not the run's wall time, which also holds child start-up, imports, and the
    parent's memray analysis and flamegraph rendering (a cold cache makes the capture
    ~50x larger, so even the analysis is slower).
    """
    return sum(max(0.0, s.seconds - (s.compile_seconds or 0.0)) for s in run.steps)


def gated_peak(run: RunRecord) -> tuple[int | None, str | None]:
    """(bytes, source): the engine's own memray peak, else the process peak.

    The engine peak leaves code loading and Numba compiling out (`harness.analysis`);
    the process peak ("process") holds the compiler's memory on a cold cache.
    """
    engine_peak = (run.memray or {}).get("engine_peak_bytes")
    if isinstance(engine_peak, int) and not isinstance(engine_peak, bool) and engine_peak > 0:
        return engine_peak, "engine"
    if run.peak_bytes is not None:
        return run.peak_bytes, "process"
    return None, None


def numba_cache(run: RunRecord) -> str | None:
    """'cold' (the run spent measurable compile time), 'warm', or None (numba not seen)."""
    measured = run.compile_seconds > 0 or any(s.compile_seconds is not None for s in run.steps)
    if not measured:
        return None
    return "cold" if run.compile_seconds >= COLD_COMPILE_SECONDS else "warm"


def cache_state(states: Sequence[str | None]) -> str:
    """One word for several runs: cold when any compiled, warm when measured, else unknown."""
    if "cold" in states:
        return "cold"
    return "warm" if "warm" in states else "unknown"


def baseline_entry(run: RunRecord) -> dict[str, Any]:
    """The compact per-run baseline record."""
    leak = leaked_bytes_per_cycle(run)
    peak, source = gated_peak(run)
    return {
        "verdict": run.verdict,
        # every verdict class found (the gate compares the set: a new class is a regression)
        "verdicts": list(getattr(run, "verdicts", None) or []),
        "expected": run.expected_verdict,
        "leaked_bytes_per_cycle": None if leak is None else round(leak),
        "peak_bytes": peak,
        "peak_source": source,
        "process_peak_bytes": run.peak_bytes,
        "seconds": round(gated_seconds(run), 3),
        "wall_seconds": round(run.seconds, 3),
        "compile_seconds": round(run.compile_seconds, 3),
        "numba_cache": numba_cache(run),
    }


def make_baseline(report: Report) -> dict[str, Any]:
    """The baseline file's content for a report (sorted keys, so diffs stay small)."""
    runs = sorted(report.runs, key=lambda r: r.key)
    return {
        "kind": BASELINE_KIND,
        "version": BASELINE_VERSION,
        "run_id": report.run_id,
        "created": report.created,
        "environment": environment(report),
        "numba_cache": cache_state([numba_cache(r) for r in runs]),
        "runs": {r.key: baseline_entry(r) for r in runs},
    }


# --- validation -----------------------------------------------------------------
def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# field -> (may be null, what it is)
_NUMBER_FIELDS: dict[str, tuple[bool, str]] = {
    "leaked_bytes_per_cycle": (True, "bytes"),
    "peak_bytes": (True, "bytes"),
    "process_peak_bytes": (True, "bytes"),
    "seconds": (False, "seconds"),
    "wall_seconds": (True, "seconds"),
    "compile_seconds": (True, "seconds"),
}
_CHOICE_FIELDS: dict[str, tuple[str, ...]] = {
    "peak_source": ("engine", "process"),
    "numba_cache": ("cold", "warm"),
}


def _validate_entry(key: str, entry: Any) -> None:
    where = f"run {key!r}"
    if not isinstance(entry, dict):
        raise GateInputError(f"{where} is {type(entry).__name__}; expected an object")
    if "verdict" not in entry:
        raise GateInputError(f'{where} has no "verdict"')
    for name in ("verdict", "expected"):
        value = entry.get(name, entry["verdict"])  # no "expected": it expected what it got
        if value not in GATE_VERDICTS:
            raise GateInputError(
                f'{where}: "{name}" is {value!r}; expected one of {", ".join(GATE_VERDICTS)}'
            )
    verdicts = entry.get("verdicts", [])  # absent in baselines written before the set
    if not isinstance(verdicts, list) or any(v not in GATE_VERDICTS for v in verdicts):
        raise GateInputError(
            f'{where}: "verdicts" is {verdicts!r}; expected a list of {", ".join(GATE_VERDICTS)}'
        )
    for name, (nullable, unit) in _NUMBER_FIELDS.items():
        if name not in entry and nullable:
            continue
        value = entry.get(name)
        if value is None and nullable:
            continue
        if not is_number(value) or value < 0:
            expected = f"a finite number of {unit} >= 0" + (" or null" if nullable else "")
            raise GateInputError(f'{where}: "{name}" is {value!r}; expected {expected}')
    for name, choices in _CHOICE_FIELDS.items():
        value = entry.get(name)
        if value is not None and value not in choices:
            raise GateInputError(
                f'{where}: "{name}" is {value!r}; expected {" or ".join(choices)} or null'
            )


def validate_baseline(data: Any) -> dict[str, dict[str, Any]]:
    """The runs of a baseline file, or GateInputError saying what is wrong."""
    if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
        raise GateInputError(f'not a memcycle baseline (expected "kind": "{BASELINE_KIND}")')
    version = data.get("version")
    if version != BASELINE_VERSION:
        if (
            isinstance(version, int)
            and not isinstance(version, bool)
            and version < BASELINE_VERSION
        ):
            raise GateInputError(
                f"baseline format {version} is old (this memcycle reads {BASELINE_VERSION}); "
                "rerun with --update from a run you trust"
            )
        raise GateInputError(
            f"baseline format {version!r} is not one this memcycle reads ({BASELINE_VERSION}); "
            "it was written by another memcycle version"
        )
    env = data.get("environment")
    if not isinstance(env, dict) or not isinstance(env.get("host"), dict):
        raise GateInputError('baseline has no "environment" object with a "host"')
    runs = data.get("runs")
    if not isinstance(runs, dict):
        raise GateInputError('baseline has no "runs" object')
    for key, entry in runs.items():
        _validate_entry(key, entry)
    return runs


# --- files ----------------------------------------------------------------------
def load_baseline(path: Path) -> dict[str, Any]:
    data = load_json(path, "baseline", " (--baseline; write one with --update)")
    try:
        validate_baseline(data)
    except GateInputError as exc:
        raise GateInputError(f"baseline {path}: {exc}") from None
    return data


def write_baseline(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(
        json.dumps(make_baseline(report), indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    os.replace(tmp, path)
    return path
