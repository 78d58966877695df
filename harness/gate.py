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
Numba compile seconds measured in them (`StepEvent.compile_seconds`); peak memory is the
engine's own peak from memray (code loading and compiling excluded, see
`harness.analysis`), and the process peak, which holds the compiler's memory, is set
aside when either run had a cold cache. So a cold cache does not fail the gate.
The baseline records host, Python and package versions; on another host time is not
compared (see `time_comparable`), while verdict, leak and peak checks stay strict.

Exit codes: 0 passed, 1 regression / nothing compared / runs missing / --update refused,
2 bad input (missing --baseline, missing or invalid file, bad tolerance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from memcycle.baseline import (
    BASELINE_KIND,
    BASELINE_VERSION,
    GateInputError,
    baseline_entry,
    cache_state,
    is_number,
    leaked_bytes_per_cycle,
    load_baseline,
    make_baseline,
    numba_cache,
    validate_baseline,
    write_baseline,
)
from memcycle.environment import environment, host_differences, version_differences
from memcycle.records import SEVERITY, Report, RunRecord
from memcycle.report_files import load_report
from memcycle.reporters.common import fmt_bytes

__all__ = [  # the baseline's names stay reachable here, where callers had them
    "BASELINE_KIND",
    "BASELINE_VERSION",
    "Change",
    "GateInputError",
    "GateResult",
    "Tolerances",
    "compare",
    "diff",
    "leaked_bytes_per_cycle",
    "load_baseline",
    "load_report",
    "make_baseline",
    "validate_baseline",
    "write_baseline",
]

_UNTESTED = ("skipped", "error")  # verdicts of a run that did not test the engine


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


# --- comparison -----------------------------------------------------------------
def _sev(verdict: str) -> int:
    # a verdict this memcycle does not know (a newer one's report) ranks as an error, as in
    # `records.worst`: never as clean, where a failing run would read as an improvement
    return SEVERITY.get(verdict, SEVERITY["error"])


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


class _Metric(NamedTuple):
    name: str  # the Change's metric
    field: str  # the baseline entry's field
    rel: float
    abs_: float
    factor: bool  # rel is a factor (time), not a fraction
    fmt: Callable[[float], str]
    title: str


def _metrics(
    key: str,
    old: dict[str, Any],
    new: dict[str, Any],
    tol: Tolerances,
    compare_time: bool,
    not_compared: dict[str, list[str]],
) -> list[_Metric]:
    """The figures this run's entries can fairly be compared on."""
    out = [
        _Metric("leak", "leaked_bytes_per_cycle", tol.leak_rel, tol.leak_abs, False, fmt_bytes,
                "leaked per cycle"),
    ]  # fmt: skip
    # the engine's own peak leaves compiling out; compared whenever both runs measured it
    if old.get("peak_source") == new.get("peak_source") == "engine":
        out.append(
            _Metric("peak", "peak_bytes", tol.peak_rel, tol.peak_abs, False, fmt_bytes,
                    "engine peak")
        )  # fmt: skip
    # the process peak also sees what the engine's native threads allocate (no Python stack
    # to attribute), but holds the compiler's memory on a cold cache
    if "cold" in (old.get("numba_cache"), new.get("numba_cache")):
        reason = "process peak not compared (a cold Numba cache: it holds the compiler's memory)"
        not_compared.setdefault(reason, []).append(key)
    else:
        out.append(
            _Metric("process-peak", "process_peak_bytes", tol.peak_rel, tol.peak_abs, False,
                    fmt_bytes, "process peak")
        )  # fmt: skip
    if compare_time:
        out.append(
            _Metric("time", "seconds", tol.time_rel, tol.time_abs, True, _fmt_seconds,
                    "time without compile")
        )  # fmt: skip
    return out


def _numbers(key: str, old: dict[str, Any], new: dict[str, Any], metrics: list[_Metric],
             res: GateResult) -> None:  # fmt: skip
    for m in metrics:
        a, b = old.get(m.field), new.get(m.field)
        if not is_number(a) or not is_number(b):
            continue
        change = f"{m.title} {m.fmt(a)} -> {m.fmt(b)} ({_pct(a, b)}"
        if _grew(a, b, m.rel, m.abs_, m.factor):
            res.regressions.append(Change(key, m.name, a, b, f"{change}, +{m.fmt(b - a)})"))
        elif _grew(b, a, m.rel, m.abs_, m.factor):
            res.improvements.append(Change(key, m.name, a, b, f"{change})"))


def _verdict(key: str, old: dict[str, Any], run: RunRecord, res: GateResult) -> None:
    """A worse verdict, or a run that passed and fails now, is a regression."""
    ov, nv = old["verdict"], run.verdict
    old_passed = ov == old.get("expected", ov)
    finding = _finding_text(run)
    if _sev(nv) > _sev(ov) or (nv in _UNTESTED and nv != ov):
        res.regressions.append(Change(key, "verdict", ov, nv, f"verdict {ov} -> {nv}{finding}"))
    elif old_passed and not run.passed:
        msg = f"passed before, fails now: verdict {nv}, expected {run.expected_verdict}{finding}"
        res.regressions.append(Change(key, "passed", ov, nv, msg))
    elif _sev(nv) < _sev(ov) or (run.passed and not old_passed):
        res.improvements.append(Change(key, "verdict", ov, nv, f"verdict {ov} -> {nv}"))
    _verdict_set(key, old, run, res)


def _verdict_set(key: str, old: dict[str, Any], run: RunRecord, res: GateResult) -> None:
    """A verdict class the baseline run did not have is a regression even when the headline
    verdict is the same (a leak found next to an old wrong-result)."""
    if "verdicts" not in old:  # a baseline from before the set: only its headline verdict
        return
    before = set(old["verdicts"]) | {old["verdict"]}
    now = list(getattr(run, "verdicts", None) or [])
    new = [v for v in now if v not in before and v not in ("clean", "skipped", run.verdict)]
    if new:
        msg = f"new verdict class {' + '.join(new)} next to {run.verdict}{_finding_text(run)}"
        res.regressions.append(Change(key, "verdicts", sorted(before), now, msg))


def _environment_notes(
    baseline: dict[str, Any], report: Report, time_across_hosts: bool
) -> tuple[list[str], bool]:
    """Notes on host, versions and Numba cache; and whether time is compared."""
    notes = []
    old_env, new_env = baseline["environment"], environment(report)
    hosts = host_differences(old_env, new_env)
    compare_time = time_comparable(hosts, time_across_hosts)
    if hosts:
        timing = (
            "time compared anyway (--time-across-hosts)"
            if compare_time
            else "time not compared (--time-across-hosts compares it)"
        )
        notes.append(
            f"host differs from the baseline's: {', '.join(hosts)}; {timing}; "
            "verdict, leak and peak checks unchanged"
        )
    versions = version_differences(old_env, new_env)
    if versions:
        notes.append(f"versions differ from the baseline's: {', '.join(versions)}")
    now_cache = cache_state([numba_cache(r) for r in report.runs])
    then_cache = baseline.get("numba_cache", "unknown")
    if "cold" in (now_cache, then_cache):
        compiled = sum(r.compile_seconds for r in report.runs)
        notes.append(
            f"numba cache: baseline {then_cache}, this run {now_cache} ({compiled:.1f} s "
            "compiling); compile time and memory are not counted in time or peak"
        )
    return notes, compare_time


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
    res.notes, compare_time = _environment_notes(baseline, report, time_across_hosts)
    not_compared: dict[str, list[str]] = {}
    failing = failing_runs(report)
    for run in report.runs:
        key, old = run.key, base_runs.get(run.key)
        if old is None:
            msg = f"new run: verdict {run.verdict} (expected {run.expected_verdict})"
            res.new.append(Change(key, "new", None, run.verdict, msg))
            if run in failing:
                msg = f"new run fails: {run.verdict}, expected {run.expected_verdict}"
                res.regressions.append(Change(key, "passed", None, run.verdict, msg))
            continue
        res.matched += 1
        res.compared += run.verdict not in _UNTESTED
        _verdict(key, old, run, res)
        if old["verdict"] not in _UNTESTED and run.verdict not in _UNTESTED:
            new = baseline_entry(run)
            metrics = _metrics(key, old, new, tol, compare_time, not_compared)
            _numbers(key, old, new, metrics, res)
    for reason, keys in not_compared.items():
        res.notes.append(f"{reason}: {len(keys)} run(s), e.g. {keys[0]}")
    missing_word = "allowed" if allow_missing else "fails the gate"
    for key in sorted(set(base_runs) - {r.key for r in report.runs}):
        msg = f"in the baseline, not in this run ({missing_word})"
        res.missing.append(Change(key, "missing", base_runs[key]["verdict"], None, msg))
    if res.compared == 0:
        res.nothing_compared = _why_nothing_compared(base_runs, report, res.matched)
    return res


def _why_nothing_compared(base_runs: dict[str, Any], report: Report, matched: int) -> str:
    if not report.runs:
        return "the report has no runs"
    if matched:
        return f"all {matched} runs that match the baseline were skipped or could not run"
    hint = _key_hint(list(base_runs), [r.key for r in report.runs])
    return (
        f"none of the report's {len(report.runs)} runs is in the baseline's {len(base_runs)}{hint}"
    )


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
