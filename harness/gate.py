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

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from memcycle.baseline import (
    BASELINE_KIND,
    BASELINE_VERSION,
    GateInputError,
    baseline_entry,
    cache_state,
    is_number,
    leaked_bytes_per_cycle,
    load_baseline,
    load_report,
    make_baseline,
    numba_cache,
    validate_baseline,
    write_baseline,
)
from memcycle.environment import environment, host_differences, version_differences
from memcycle.records import SEVERITY, Report, RunRecord
from memcycle.reporters.common import fmt_bytes

__all__ = [  # the baseline's names stay reachable here, where callers had them
    "BASELINE_KIND",
    "BASELINE_VERSION",
    "Change",
    "GateInputError",
    "GateResult",
    "Tolerances",
    "add_arguments",
    "compare",
    "diff",
    "leaked_bytes_per_cycle",
    "load_baseline",
    "load_report",
    "main",
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
  memcycle gate reports/main --baseline ci/baseline.json --update   # after memcycle run --out reports/main
  memcycle gate reports/ci --baseline ci/baseline.json              # in CI, after memcycle run --out reports/ci
  memcycle gate reports/shard-1 --baseline ci/baseline.json --allow-missing

Compile time is kept out: time is the steps' seconds minus Numba compile seconds; the engine's
own memray peak excludes compiling, the process peak is set aside on a cold Numba cache.
On another host (cpus, machine, platform) time is not compared.

exit status:
  0  passed
  1  a regression, nothing compared, baseline runs missing, or --update refused (a run fails
     its expectation or is error; --accept-failures records it)
  2  bad input (no --baseline, missing or invalid file, bad tolerance)
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
