"""`memcycle gate RUN_DIR --baseline FILE`: fail CI on a regression, and never pass by accident.

A regression is: a verdict worse than the baseline's (by `records.SEVERITY`), a run that
passed and now fails (or is now skipped), a new run that fails, or growth of leaked
bytes per cycle, peak memory or time beyond tolerances. Every numeric tolerance has a
relative part AND an absolute floor, and both must be exceeded, so noise on a shared
machine does not fail the build.

The gate also fails when it compared nothing (no run of the report matches the
baseline, or every match was skipped or could not run) and, unless `--allow-missing`,
when a baseline run is missing from the report. `--update` writes a compact baseline
(keyed by `RunRecord.key`; not the whole report) and refuses runs that fail their
expectation or could not run, unless `--accept-failures`.

Numba compilation is kept out of the figures: time is the steps' own seconds minus the
Numba compile seconds measured in them (`StepEvent.compile_seconds`), and peak memory is
the engine's own peak from memray (code loading and compiling excluded, see
`harness.analysis`) when memray measured one. So a cold cache does not fail the gate.
The baseline records host, Python and package versions; on another host time is not
compared (see `time_comparable`), while verdict, leak and peak checks stay strict.

Exit codes: 0 passed, 1 regression / nothing compared / runs missing / --update refused,
2 bad input (missing --baseline, missing or invalid file, bad tolerance).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from memcycle.records import SEVERITY, VERDICTS, Report, RunRecord
from memcycle.reporters.common import fmt_bytes

BASELINE_VERSION = 2
BASELINE_KIND = "memcycle-baseline"
# "error" (memcycle or the adapter could not do its job) is a verdict of the shared contract
GATE_VERDICTS: tuple[str, ...] = tuple(dict.fromkeys([*VERDICTS, "error"]))
# a run that compiled at least this long ran on a cold Numba cache (a warm one compiles 0 s)
COLD_COMPILE_SECONDS = 0.1
CORE_PACKAGES = ("memcycle", "numpy", "numba", "memray")
# built-in engines backed by a library of their own (refimpl is part of memcycle)
_ENGINE_MODULES = {"hnswlib": "hnswlib", "faiss": "faiss", "usearch": "usearch"}
HOST_FIELDS = ("cpus", "machine", "platform")
_UNTESTED = ("skipped", "error")  # verdicts of a run that did not test the engine


class GateInputError(Exception):
    """A flag, report or baseline is missing or not what the gate reads (exit 2)."""


@dataclass(frozen=True)
class Tolerances:
    """How much worse a number may get before it is a regression (both parts must be exceeded)."""

    leak_rel: float = 0.25
    leak_abs: int = 1 << 20
    peak_rel: float = 0.25
    peak_abs: int = 8 << 20
    time_rel: float = 2.0  # a factor: new > old * time_rel
    time_abs: float = 5.0


@dataclass(frozen=True)
class Change:
    """One difference between the baseline and this run."""

    key: str
    metric: str  # "verdict", "passed", "leak", "peak", "time", "new", "missing"
    old: Any
    new: Any
    message: str


@dataclass
class GateResult:
    regressions: list[Change] = field(default_factory=list)
    improvements: list[Change] = field(default_factory=list)
    new: list[Change] = field(default_factory=list)
    missing: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # environment and figures not compared
    compared: int = 0  # runs in both that tested the engine this time
    matched: int = 0  # runs in both, tested or not
    allow_missing: bool = False
    nothing_compared: str = ""  # why, when compared == 0

    @property
    def failed(self) -> bool:
        return bool(self.failures())

    def failures(self) -> list[str]:
        """Why the gate fails, one phrase each (empty: it passes)."""
        out = []
        if self.regressions:
            out.append(f"{len(self.regressions)} regression(s)")
        if self.missing and not self.allow_missing:
            out.append(f"{len(self.missing)} baseline run(s) missing (--allow-missing relaxes)")
        if self.compared == 0:
            out.append(f"nothing compared: {self.nothing_compared}")
        return out


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


# --- environment ----------------------------------------------------------------
@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def engine_distribution(engine: str) -> str | None:
    """The installed distribution behind an engine name or `package.module:factory` spec."""
    module = _ENGINE_MODULES.get(engine)
    if module is None:
        spec_module, sep, _attr = engine.partition(":")
        if not sep or spec_module.endswith(".py"):
            return None
        module = spec_module.partition(".")[0]
        if module == "memcycle":
            return None
    dists = _module_distributions().get(module)
    return dists[0] if dists else None


def environment(report: Report) -> dict[str, Any]:
    """Host, Python and package versions of a report's runs.

    Taken from report.json's `host` where the runner recorded them, else from the
    process the gate runs in (in CI, the same venv right after the run).
    """
    host = report.host or {}
    packages: dict[str, str | None] = {name: _version(name) for name in CORE_PACKAGES}
    for engine in sorted({r.engine for r in report.runs}):
        dist = engine_distribution(engine)
        if dist is not None:
            packages[dist] = _version(dist)
    recorded = host.get("packages")
    if isinstance(recorded, dict):
        packages.update({str(k): None if v is None else str(v) for k, v in recorded.items()})
    return {
        "host": {
            "cpus": host.get("cpus") or os.cpu_count(),
            "machine": host.get("machine") or platform.machine(),
            "platform": host.get("platform") or platform.platform(),
        },
        "python": str(host.get("python") or platform.python_version()),
        "packages": packages,
    }


def host_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`cpus 8 -> 2`-style phrases for every host field that differs."""
    a, b = old.get("host") or {}, new.get("host") or {}
    return [f"{k} {a.get(k)} -> {b.get(k)}" for k in HOST_FIELDS if a.get(k) != b.get(k)]


def version_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Python and every package both environments list, where the versions differ."""
    out = []
    if old.get("python") != new.get("python"):
        out.append(f"python {old.get('python')} -> {new.get('python')}")
    a, b = old.get("packages") or {}, new.get("packages") or {}
    for name in sorted(set(a) & set(b)):
        if a[name] != b[name]:
            out.append(f"{name} {a[name] or 'not installed'} -> {b[name] or 'not installed'}")
    return out


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
def _is_number(x: Any) -> bool:
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
    for name, (nullable, unit) in _NUMBER_FIELDS.items():
        if name not in entry and nullable:
            continue
        value = entry.get(name)
        if value is None and nullable:
            continue
        if not _is_number(value) or value < 0:
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


# --- comparison -----------------------------------------------------------------
def _sev(verdict: str) -> int:
    return SEVERITY.get(verdict, 0)


def _grew(
    old: float | None, new: float | None, rel: float, abs_: float, factor: bool = False
) -> bool:
    if old is None or new is None:
        return False
    limit = old * rel if factor else old * (1.0 + rel)
    return new > limit and new - old > abs_


def _fmt_seconds(s: float) -> str:
    return f"{s:.2f} s"


def _pct(old: float, new: float) -> str:
    if old <= 0:
        return "from zero"
    return f"{(new - old) / old * 100:+.0f}%"


def _peak_skip_reason(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why the peaks of a run cannot be compared fairly, or None."""
    a, b = old.get("peak_source"), new.get("peak_source")
    if a != b:
        return f"baseline measured the {a or 'unknown'} peak, this run the {b or 'unknown'} peak"
    if a == "process" and "cold" in (old.get("numba_cache"), new.get("numba_cache")):
        return "process peak on a cold Numba cache includes the compiler's memory"
    return None


def _numbers(
    key: str,
    old: dict[str, Any],
    new: dict[str, Any],
    tol: Tolerances,
    res: GateResult,
    *,
    compare_time: bool,
    skipped: dict[str, list[str]],
) -> None:
    # metric, entry field, relative, absolute, relative is a factor, format, title
    specs: list[tuple[str, str, float, float, bool, Any, str]] = [
        (
            "leak",
            "leaked_bytes_per_cycle",
            tol.leak_rel,
            tol.leak_abs,
            False,
            fmt_bytes,
            "leaked per cycle",
        ),
    ]
    reason = _peak_skip_reason(old, new)
    if reason is None:
        specs.append(
            ("peak", "peak_bytes", tol.peak_rel, tol.peak_abs, False, fmt_bytes, "peak memory")
        )
    else:
        skipped.setdefault(f"peak not compared ({reason})", []).append(key)
    if compare_time:
        specs.append(
            (
                "time",
                "seconds",
                tol.time_rel,
                tol.time_abs,
                True,
                _fmt_seconds,
                "time without compile",
            )
        )
    for metric, name, rel, abs_, factor, fmt, title in specs:
        a, b = old.get(name), new.get(name)
        if not _is_number(a) or not _is_number(b):
            continue
        if _grew(a, b, rel, abs_, factor):
            res.regressions.append(
                Change(
                    key, metric, a, b, f"{title} {fmt(a)} -> {fmt(b)} ({_pct(a, b)}, +{fmt(b - a)})"
                )
            )
        elif _grew(b, a, rel, abs_, factor):
            res.improvements.append(
                Change(key, metric, a, b, f"{title} {fmt(a)} -> {fmt(b)} ({_pct(a, b)})")
            )


def _key_hint(base_keys: Sequence[str], run_keys: Sequence[str]) -> str:
    """Which part of the run keys never matches the baseline's (e.g. the allocator)."""
    parts = ("scenario", "engine", "allocator", "faults")
    hints = []
    for i, part in enumerate(parts):
        a = {k.split("|")[i] for k in base_keys if k.count("|") == 3}
        b = {k.split("|")[i] for k in run_keys if k.count("|") == 3}
        if a and b and not a & b:
            hints.append(f"{part} is {', '.join(sorted(b))} here, {', '.join(sorted(a))} there")
    return f" ({'; '.join(hints)})" if hints else ""


def diff(
    baseline: dict[str, Any],
    report: Report,
    tolerances: Tolerances | None = None,
    *,
    allow_missing: bool = False,
    time_across_hosts: bool = False,
) -> GateResult:
    """Everything that differs between a baseline (file content) and a report."""
    tol = tolerances or Tolerances()
    base_runs = validate_baseline(baseline)
    res = GateResult(allow_missing=allow_missing)
    old_env, new_env = baseline["environment"], environment(report)
    hosts = host_differences(old_env, new_env)
    compare_time = time_comparable(hosts, time_across_hosts)
    if hosts:
        res.notes.append(
            f"host differs from the baseline's: {', '.join(hosts)}; "
            + (
                "time compared anyway (--time-across-hosts)"
                if compare_time
                else "time not compared (--time-across-hosts compares it)"
            )
            + "; verdict, leak and peak checks unchanged"
        )
    versions = version_differences(old_env, new_env)
    if versions:
        res.notes.append(f"versions differ from the baseline's: {', '.join(versions)}")
    now_cache = cache_state([numba_cache(r) for r in report.runs])
    then_cache = baseline.get("numba_cache", "unknown")
    if "cold" in (now_cache, then_cache):
        compiled = sum(r.compile_seconds for r in report.runs)
        res.notes.append(
            f"numba cache: baseline {then_cache}, this run {now_cache} ({compiled:.1f} s "
            "compiling); compile time and memory are not counted in time or peak"
        )
    skipped: dict[str, list[str]] = {}
    failing = failing_runs(report)
    seen = set()
    for run in report.runs:
        key = run.key
        seen.add(key)
        new = baseline_entry(run)
        old = base_runs.get(key)
        if old is None:
            msg = f"new run: verdict {run.verdict} (expected {run.expected_verdict})"
            res.new.append(Change(key, "new", None, run.verdict, msg))
            if run in failing:
                res.regressions.append(
                    Change(
                        key,
                        "passed",
                        None,
                        run.verdict,
                        f"new run fails: {run.verdict}, expected {run.expected_verdict}",
                    )
                )
            continue
        res.matched += 1
        if run.verdict not in _UNTESTED:
            res.compared += 1
        ov, nv = old["verdict"], run.verdict
        old_passed = ov == old.get("expected", ov)
        worse = _sev(nv) > _sev(ov) or (nv in _UNTESTED and nv != ov)
        finding = _finding_text(run)
        if worse:
            res.regressions.append(Change(key, "verdict", ov, nv, f"verdict {ov} -> {nv}{finding}"))
        elif old_passed and not run.passed:
            res.regressions.append(
                Change(
                    key,
                    "passed",
                    ov,
                    nv,
                    f"passed before, fails now: verdict {nv}, expected {run.expected_verdict}{finding}",
                )
            )
        elif _sev(nv) < _sev(ov) or (run.passed and not old_passed):
            res.improvements.append(Change(key, "verdict", ov, nv, f"verdict {ov} -> {nv}"))
        if ov not in _UNTESTED and nv not in _UNTESTED:  # no figures to speak of otherwise
            _numbers(key, old, new, tol, res, compare_time=compare_time, skipped=skipped)
    for reason, keys in skipped.items():
        res.notes.append(f"{reason}: {len(keys)} run(s), e.g. {keys[0]}")
    missing_word = "allowed" if allow_missing else "fails the gate"
    for key in sorted(set(base_runs) - seen):
        res.missing.append(
            Change(
                key,
                "missing",
                base_runs[key]["verdict"],
                None,
                f"in the baseline, not in this run ({missing_word})",
            )
        )
    if res.compared == 0:
        if not report.runs:
            res.nothing_compared = "the report has no runs"
        elif res.matched == 0:
            res.nothing_compared = (
                f"none of the report's {len(report.runs)} runs is in the baseline's "
                f"{len(base_runs)}{_key_hint(list(base_runs), [r.key for r in report.runs])}"
            )
        else:
            res.nothing_compared = (
                f"all {res.matched} runs that match the baseline were skipped or could not run"
            )
    return res


def time_comparable(hosts: Sequence[str], time_across_hosts: bool) -> bool:
    """Time is compared on the baseline's host only (unless asked to compare anyway).

    Why skip rather than widen: the speed ratio of two machines (cores, clock, load,
    CPU model) is unknown, so any widened factor is a guess that either still fails
    on a slower CI runner or hides a real slow-down on a faster one. Verdicts, leaks
    and peaks do not depend on the host's speed and stay strict.
    """
    return not hosts or time_across_hosts


def compare(
    baseline: dict[str, Any], report: Report, tolerances: Tolerances | None = None
) -> list[Change]:
    """The regressions only."""
    return diff(baseline, report, tolerances).regressions


def _finding_text(run: RunRecord) -> str:
    f = next((f for f in run.findings if f.verdict == run.verdict), None)
    if f is None:
        return ""
    where = f" at cycle {f.cycle}" if f.cycle is not None else ""
    return f" (new finding{where}: {f.summary})" if f.summary else f" (new finding{where})"


def failing_runs(report: Report) -> list[RunRecord]:
    """Runs a baseline must not bless silently: an unexpected verdict, or one that could not run.

    A skipped run is recorded as skipped (the gate flags it when it is skipped where it
    used to run), it is not a failure here.
    """
    return [
        r for r in report.runs if r.verdict == "error" or (not r.passed and r.verdict != "skipped")
    ]


# --- files ----------------------------------------------------------------------
def _load_json(path: Path, what: str, hint: str = "") -> Any:
    if not path.is_file():
        raise GateInputError(f"{what} not found: {path}{hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateInputError(f"{what} {path} is not valid JSON: {exc}") from exc


def load_report(run_dir: Path) -> Report:
    """The report of a run directory (or a report.json path)."""
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    data = _load_json(path, "report")
    if not isinstance(data, dict):
        raise GateInputError(f"report {path} is not a memcycle report.json (not an object)")
    try:
        return Report.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise GateInputError(f"report {path} is not a memcycle report.json: {exc}") from exc


def load_baseline(path: Path) -> dict[str, Any]:
    data = _load_json(path, "baseline", " (--baseline; write one with --update)")
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


# --- command line ---------------------------------------------------------------
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'1MiB', '512k', '2G', '1048576' -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1MiB, 512KiB, 1048576)")
    unit = (m.group(2) or "b").lower()[:1]
    mult = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
    return int(float(m.group(1)) * mult)


def _fraction(flag: str, value: Any) -> float:
    """'25%' or '0.25' -> 0.25; finite and >= 0."""
    text = str(value).strip()
    try:
        x = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise GateInputError(
            f"{flag} is {text!r}; expected a fraction or percentage >= 0 (e.g. 0.25 or 25%)"
        )
    return x


def _size(flag: str, value: Any) -> int:
    try:
        return value if isinstance(value, int) and value >= 0 else parse_size(str(value))
    except argparse.ArgumentTypeError:
        raise GateInputError(
            f"{flag} is {str(value)!r}; expected a size >= 0 (e.g. 1MiB, 512KiB, 1048576)"
        ) from None


def _number(flag: str, value: Any, minimum: float, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < minimum:
        raise GateInputError(f"{flag} is {str(value)!r}; expected {what}")
    return x


HELP_EPILOG = """\
examples:
  memcycle run --out reports/main && memcycle gate reports/main --baseline ci/baseline.json --update
  memcycle run --out reports/ci && memcycle gate reports/ci --baseline ci/baseline.json
  memcycle gate reports/shard-1 --baseline ci/baseline.json --allow-missing

Compile time is kept out: time is the steps' seconds minus Numba compile seconds, peak is the
engine's own memray peak. On another host (cpus, machine, platform) time is not compared.

exit codes: 0 passed; 1 regression, nothing compared, baseline runs missing, or --update
refused (a run fails its expectation or is error; --accept-failures records it); 2 bad input
(no --baseline, missing or invalid file, bad tolerance).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Tolerances()
    parser.description = (
        "Compare a run's report.json with a baseline and exit non-zero on a regression:\n"
        "a worse verdict, a run that no longer passes, more leaked bytes per cycle, a higher\n"
        "peak, a slow-down. It also fails when nothing was compared and when baseline runs\n"
        "are missing from the run."
    )
    parser.epilog = HELP_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "run_dir", type=Path, help="a run directory holding report.json (or the file)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="baseline file to compare with, or to write with --update (required)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="write the baseline from this run instead of comparing (refuses failing runs)",
    )
    parser.add_argument(
        "--accept-failures",
        action="store_true",
        help="with --update: record runs that fail their expectation or could not run",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="baseline runs missing from this run are listed, not a failure",
    )
    parser.add_argument(
        "--time-across-hosts",
        action="store_true",
        help="compare time even when the host differs from the baseline's",
    )
    parser.add_argument(
        "--tolerance-leak",
        default=d.leak_rel,
        metavar="FRACTION",
        help=f"relative growth of leaked bytes per cycle allowed (default {d.leak_rel * 100:.0f}%%)",
    )
    parser.add_argument(
        "--tolerance-leak-bytes",
        default=d.leak_abs,
        metavar="SIZE",
        help=f"...and absolute growth allowed (default {fmt_bytes(d.leak_abs)})",
    )
    parser.add_argument(
        "--tolerance-peak",
        default=d.peak_rel,
        metavar="FRACTION",
        help=f"relative growth of peak memory allowed (default {d.peak_rel * 100:.0f}%%)",
    )
    parser.add_argument(
        "--tolerance-peak-bytes",
        default=d.peak_abs,
        metavar="SIZE",
        help=f"...and absolute growth allowed (default {fmt_bytes(d.peak_abs)})",
    )
    parser.add_argument(
        "--tolerance-time",
        default=d.time_rel,
        metavar="FACTOR",
        help=f"slow-down factor allowed, >= 1 (default {d.time_rel:g}x)",
    )
    parser.add_argument(
        "--tolerance-time-seconds",
        default=d.time_abs,
        metavar="SECONDS",
        help=f"...and absolute slow-down allowed (default {d.time_abs:g} s)",
    )


def tolerances_from(args: argparse.Namespace) -> Tolerances:
    """The tolerance flags, validated (GateInputError names the flag and what it expects)."""
    return Tolerances(
        leak_rel=_fraction("--tolerance-leak", args.tolerance_leak),
        leak_abs=_size("--tolerance-leak-bytes", args.tolerance_leak_bytes),
        peak_rel=_fraction("--tolerance-peak", args.tolerance_peak),
        peak_abs=_size("--tolerance-peak-bytes", args.tolerance_peak_bytes),
        time_rel=_number(
            "--tolerance-time", args.tolerance_time, 1.0, "a finite slow-down factor >= 1"
        ),
        time_abs=_number(
            "--tolerance-time-seconds",
            args.tolerance_time_seconds,
            0.0,
            "a finite number of seconds >= 0",
        ),
    )


def print_result(res: GateResult, out: TextIO) -> None:
    missing_title = "missing" if res.allow_missing else "MISSING"
    for title, changes in (
        ("REGRESSION", res.regressions),
        (missing_title, res.missing),
        ("improved", res.improvements),
        ("new", res.new),
    ):
        for c in changes:
            print(f"{title:10}  {c.key}: {c.message}", file=out)
    for note in res.notes:
        print(f"{'note':10}  {note}", file=out)
    failures = res.failures()
    verdict = "FAILED" if failures else "passed"
    line = (
        f"gate {verdict}: {len(res.regressions)} regressions, {len(res.improvements)} improvements, "
        f"{len(res.new)} new, {len(res.missing)} missing; {res.compared} runs compared"
    )
    if failures:
        line += f" ({'; '.join(failures)})"
    print(line, file=out)


def _update(args: argparse.Namespace, report: Report, out: TextIO) -> int:
    if not report.runs:
        print("memcycle: error: the report has no runs; nothing to record", file=sys.stderr)
        return 1
    failing = failing_runs(report)
    if failing and not args.accept_failures:
        print(
            f"memcycle: error: refusing to write the baseline: {len(failing)} run(s) fail their "
            "expectation or could not run (fix them, or record them with --accept-failures)",
            file=sys.stderr,
        )
        for r in failing:
            print(f"  {r.key}: verdict {r.verdict}, expected {r.expected_verdict}", file=sys.stderr)
        return 1
    path = write_baseline(report, args.baseline)
    print(
        f"baseline written: {path} ({len(report.runs)} runs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        file=out,
    )
    for r in failing:
        print(
            f"note: accepted failing run {r.key}: verdict {r.verdict}, "
            f"expected {r.expected_verdict}",
            file=out,
        )
    cold = [r for r in report.runs if numba_cache(r) == "cold"]
    if cold:
        print(
            f"note: the Numba cache was cold in {len(cold)} run(s) "
            f"({sum(r.compile_seconds for r in cold):.1f} s compiling); compile time and "
            "memory are kept out of the recorded figures",
            file=out,
        )
    return 0


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        if args.baseline is None:
            raise GateInputError(
                "--baseline FILE is required: the baseline to compare with (or to write, "
                "with --update)"
            )
        if getattr(args, "accept_failures", False) and not args.update:
            raise GateInputError("--accept-failures only applies with --update")
        tol = tolerances_from(args)
        report = load_report(args.run_dir)
        if args.update:
            return _update(args, report, out)
        baseline = load_baseline(args.baseline)
    except GateInputError as exc:
        print(f"memcycle: error: {exc}", file=sys.stderr)
        return 2
    res = diff(
        baseline,
        report,
        tol,
        allow_missing=getattr(args, "allow_missing", False),
        time_across_hosts=getattr(args, "time_across_hosts", False),
    )
    print_result(res, out)
    return 1 if res.failed else 0


def run(argv: Sequence[str] | None = None) -> int:
    """`python -m memcycle.gate ...` (the CLI's `memcycle gate` does the same)."""
    parser = argparse.ArgumentParser(prog="memcycle gate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(run())
