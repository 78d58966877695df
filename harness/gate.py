"""`memcycle gate RUN_DIR --baseline reports/baseline.json`: fail CI on a regression.

A regression is: a verdict worse than the baseline's (by `records.SEVERITY`), a
run that passed and now fails, or growth of leaked bytes per cycle, peak
memory or time beyond tolerances. Every numeric tolerance has a relative part
AND an absolute floor, and both must be exceeded, so noise on a shared machine
does not fail the build. `--update` writes a compact baseline (keyed by
`RunRecord.key`; not the whole report).

Exit codes: 0 no regression, 1 regression, 2 missing or invalid input file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from memcycle.records import SEVERITY, Report, RunRecord
from memcycle.reporters.common import fmt_bytes

BASELINE_VERSION = 1
BASELINE_KIND = "memcycle-baseline"
_FIELDS = ("verdict", "expected", "leaked_bytes_per_cycle", "peak_bytes", "seconds")


class GateInputError(Exception):
    """A report or baseline file is missing or not what the gate reads (exit 2)."""


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
    compared: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.regressions)


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


def baseline_entry(run: RunRecord) -> dict[str, Any]:
    """The compact per-run baseline record."""
    leak = leaked_bytes_per_cycle(run)
    return {
        "verdict": run.verdict,
        "expected": run.expected_verdict,
        "leaked_bytes_per_cycle": None if leak is None else round(leak),
        "peak_bytes": run.peak_bytes,
        "seconds": round(run.seconds, 3),
    }


def make_baseline(report: Report) -> dict[str, Any]:
    """The baseline file's content for a report (sorted keys, so diffs stay small)."""
    return {
        "kind": BASELINE_KIND,
        "version": BASELINE_VERSION,
        "run_id": report.run_id,
        "created": report.created,
        "runs": {r.key: baseline_entry(r) for r in sorted(report.runs, key=lambda r: r.key)},
    }


def validate_baseline(data: Any) -> dict[str, dict[str, Any]]:
    """The runs of a baseline file, or GateInputError saying what is wrong."""
    if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
        raise GateInputError(f'not a memcycle baseline (expected "kind": "{BASELINE_KIND}")')
    if data.get("version") != BASELINE_VERSION:
        raise GateInputError(
            f"baseline version {data.get('version')!r}; this memcycle reads {BASELINE_VERSION}"
            " (re-create it with --update)"
        )
    runs = data.get("runs")
    if not isinstance(runs, dict):
        raise GateInputError('baseline has no "runs" object')
    for key, entry in runs.items():
        if not isinstance(entry, dict) or "verdict" not in entry:
            raise GateInputError(f"baseline entry {key!r} has no verdict")
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


def _pct(old: float, new: float) -> str:
    if old <= 0:
        return "from zero"
    return f"{(new - old) / old * 100:+.0f}%"


def _numbers(
    key: str, old: dict[str, Any], new: dict[str, Any], tol: Tolerances, res: GateResult
) -> None:
    specs = (
        (
            "leak",
            "leaked_bytes_per_cycle",
            tol.leak_rel,
            tol.leak_abs,
            False,
            fmt_bytes,
            "leaked per cycle",
        ),
        ("peak", "peak_bytes", tol.peak_rel, tol.peak_abs, False, fmt_bytes, "peak memory"),
        ("time", "seconds", tol.time_rel, tol.time_abs, True, lambda s: f"{s:.2f} s", "time"),
    )
    for metric, name, rel, abs_, factor, fmt, title in specs:
        a, b = old.get(name), new.get(name)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
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


def diff(
    baseline: dict[str, Any], report: Report, tolerances: Tolerances | None = None
) -> GateResult:
    """Everything that differs between a baseline (file content) and a report."""
    tol = tolerances or Tolerances()
    base_runs = validate_baseline(baseline)
    res = GateResult()
    seen = set()
    for run in report.runs:
        key = run.key
        seen.add(key)
        new = baseline_entry(run)
        old = base_runs.get(key)
        if old is None:
            msg = f"new run: verdict {run.verdict} (expected {run.expected_verdict})"
            res.new.append(Change(key, "new", None, run.verdict, msg))
            if not run.passed:
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
        res.compared += 1
        ov, nv = old["verdict"], run.verdict
        old_passed = ov == old.get("expected", ov)
        worse = _sev(nv) > _sev(ov) or (nv == "skipped" and ov != "skipped")
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
        _numbers(key, old, new, tol, res)
    for key in sorted(set(base_runs) - seen):
        res.missing.append(
            Change(
                key, "missing", base_runs[key]["verdict"], None, "in the baseline, not in this run"
            )
        )
    return res


def compare(
    baseline: dict[str, Any], report: Report, tolerances: Tolerances | None = None
) -> list[Change]:
    """The regressions only (what makes the gate fail)."""
    return diff(baseline, report, tolerances).regressions


def _finding_text(run: RunRecord) -> str:
    f = next((f for f in run.findings if f.verdict == run.verdict), None)
    if f is None:
        return ""
    where = f" at cycle {f.cycle}" if f.cycle is not None else ""
    return f" (new finding{where}: {f.summary})" if f.summary else f" (new finding{where})"


# --- files ----------------------------------------------------------------------
def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise GateInputError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateInputError(f"{what} {path} is not valid JSON: {exc}") from exc


def load_report(run_dir: Path) -> Report:
    """The report of a run directory (or a report.json path)."""
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    data = _load_json(path, "report")
    try:
        return Report.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise GateInputError(f"report {path} is not a memcycle report.json: {exc}") from exc


def load_baseline(path: Path) -> dict[str, Any]:
    data = _load_json(path, "baseline")
    validate_baseline(data)
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


def _percent(text: str) -> float:
    """'25%' or '0.25' -> 0.25."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction or percentage: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Tolerances()
    parser.add_argument(
        "run_dir", type=Path, help="a run directory holding report.json (or the file)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=Path("reports/baseline.json"),
        help="baseline file (default: reports/baseline.json)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="write the baseline from this run instead of comparing",
    )
    parser.add_argument(
        "--tolerance-leak",
        type=_percent,
        default=d.leak_rel,
        metavar="FRACTION",
        help=f"relative growth of leaked bytes per cycle allowed (default {d.leak_rel * 100:.0f}%%)",
    )
    parser.add_argument(
        "--tolerance-leak-bytes",
        type=parse_size,
        default=d.leak_abs,
        metavar="SIZE",
        help=f"...and absolute growth allowed (default {fmt_bytes(d.leak_abs)})",
    )
    parser.add_argument(
        "--tolerance-peak",
        type=_percent,
        default=d.peak_rel,
        metavar="FRACTION",
        help=f"relative growth of peak memory allowed (default {d.peak_rel * 100:.0f}%%)",
    )
    parser.add_argument(
        "--tolerance-peak-bytes",
        type=parse_size,
        default=d.peak_abs,
        metavar="SIZE",
        help=f"...and absolute growth allowed (default {fmt_bytes(d.peak_abs)})",
    )
    parser.add_argument(
        "--tolerance-time",
        type=float,
        default=d.time_rel,
        metavar="FACTOR",
        help=f"slow-down factor allowed (default {d.time_rel:g}x)",
    )
    parser.add_argument(
        "--tolerance-time-seconds",
        type=float,
        default=d.time_abs,
        metavar="SECONDS",
        help=f"...and absolute slow-down allowed (default {d.time_abs:g} s)",
    )


def tolerances_from(args: argparse.Namespace) -> Tolerances:
    return Tolerances(
        leak_rel=args.tolerance_leak,
        leak_abs=args.tolerance_leak_bytes,
        peak_rel=args.tolerance_peak,
        peak_abs=args.tolerance_peak_bytes,
        time_rel=args.tolerance_time,
        time_abs=args.tolerance_time_seconds,
    )


def print_result(res: GateResult, out: TextIO) -> None:
    for title, changes in (
        ("REGRESSION", res.regressions),
        ("improved", res.improvements),
        ("new", res.new),
        ("missing", res.missing),
    ):
        for c in changes:
            print(f"{title:10}  {c.key}: {c.message}", file=out)
    verdict = "FAILED" if res.failed else "passed"
    print(
        f"gate {verdict}: {len(res.regressions)} regressions, {len(res.improvements)} improvements, "
        f"{len(res.new)} new, {len(res.missing)} missing; {res.compared} runs compared",
        file=out,
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        report = load_report(args.run_dir)
        if args.update:
            path = write_baseline(report, args.baseline)
            failing = [r.key for r in report.runs if not r.passed]
            print(
                f"baseline written: {path} ({len(report.runs)} runs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
                file=out,
            )
            for key in failing:
                print(f"note: {key} does not pass its expectation in this baseline", file=out)
            return 0
        baseline = load_baseline(args.baseline)
    except GateInputError as exc:
        print(f"memcycle: error: {exc}", file=sys.stderr)
        return 2
    res = diff(baseline, report, tolerances_from(args))
    print_result(res, out)
    return 1 if res.failed else 0


def run(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.gate ...` (the CLI's `memcycle gate` does the same)."""
    parser = argparse.ArgumentParser(prog="memcycle gate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(run())
