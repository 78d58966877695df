"""What every report format shows as tables, computed once: cycle-table rows, the memory
numbers per cycle, labels and counts (the evidence behind a verdict is `memcycle.evidence`).

Each format module turns these plain values into its own markup, so the
Markdown table, the HTML table and the JUnit failure text always agree.
Nothing here reads files or touches an engine: it is a function of run records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memcycle.evidence import fmt_bytes, signal_name
from memcycle.records import CRASH_VERDICTS, CycleSummary, Report, RunRecord

OK = "✅"
FAIL = "❌"
CRASH = "⚡"
NOT_REACHED = "-"


def run_label(run: RunRecord) -> str:
    """`engine/allocator/faults`: the JUnit test name and the per-run heading."""
    faults = "+".join(run.faults) or "no-faults"
    return f"{run.engine}/{run.allocator}/{faults}"


def run_anchor(run: RunRecord, index: int) -> str:
    """A stable HTML id for a run section (index keeps duplicates apart)."""
    safe = "".join(c if c.isalnum() else "-" for c in f"{run.scenario}-{run_label(run)}")
    return f"run-{index}-{safe.strip('-').lower()}"


def fmt_seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f} s"


def cell(status: str, run: RunRecord | None = None) -> str:
    """One cycle cell in the reference note's notation: ✅ / ❌ (verdict) / ⚡ (signal) / -."""
    if status in ("ok", "clean"):
        return OK
    if status in ("-", "", "not-reached"):
        return NOT_REACHED
    if status == "skipped":
        return "skipped"
    if status in CRASH_VERDICTS:
        detail = status
        if status == "crash" and run is not None:
            detail = signal_name(run) or "crash"
        return f"{CRASH} ({detail})"
    return f"{FAIL} ({status})"


def _failed(status: str) -> bool:
    return status not in ("ok", "clean", "-", "", "not-reached", "skipped")


@dataclass(frozen=True)
class Row:
    """One line of a cycle table; `last` > `cycle` when identical rows were merged."""

    cycle: int
    baseline: str
    this_run: str
    status: str
    last: int | None = None

    @property
    def label(self) -> str:
        return (
            f"{self.cycle}–{self.last}"
            if self.last and self.last != self.cycle
            else str(self.cycle)
        )


MERGE_ABOVE = 12  # tables with more cycles merge runs of identical rows ("6–195")


def merge_rows(rows: Sequence[Row]) -> tuple[Row, ...]:
    """Consecutive rows with the same cells become one row spanning their cycles."""
    out: list[Row] = []
    for r in rows:
        prev = out[-1] if out else None
        if (
            prev is not None
            and (prev.baseline, prev.this_run, prev.status) == (r.baseline, r.this_run, r.status)
            and (prev.last or prev.cycle) + 1 == r.cycle
        ):
            out[-1] = Row(prev.cycle, prev.baseline, prev.this_run, prev.status, r.cycle)
        else:
            out.append(r)
    return tuple(out)


@dataclass(frozen=True)
class CycleTable:
    """A run's cycle table; `baseline_name` is the column's header (what it compares to)."""

    baseline_name: str
    rows: tuple[Row, ...]

    @property
    def header(self) -> tuple[str, str, str, str]:
        return ("Cycle", self.baseline_name, "this run", "Status")


def _status_text(base: str | None, this: str, expected: str = "clean") -> str:
    """The Status column: what changed between the baseline cell and this run's cell
    (`base` None: no baseline run, compare with the expected verdict)."""
    if this in ("-", "", "not-reached"):
        return "-" if base is None or not _failed(base) else "Not reached (baseline failed here)"
    if this == "skipped":
        return "Skipped"
    this_failed = _failed(this)
    if base is None:
        if not this_failed:
            return "Works"
        if expected in ("clean", "skipped"):
            return "Crashes" if this in CRASH_VERDICTS else "Fails"
        return "Fails as expected" if this == expected else f"Fails (expected {expected})"
    base_failed = _failed(base)
    if not this_failed:
        return "Fixed" if base_failed else "Works"
    if not base_failed:
        reached = base not in ("-", "", "not-reached")
        kind = "Crashes" if this in CRASH_VERDICTS else "Fails"
        return f"{kind} (baseline works)" if reached else f"{kind} (baseline did not reach it)"
    if base == this:
        return "Same failure as baseline"
    return "Different issue"


def reference_run(run: RunRecord, runs: Sequence[RunRecord]) -> RunRecord | None:
    """The run this one is compared with inside one report: same scenario, engine and
    allocator without faults (the reference note's 'Original' column)."""
    if not run.faults:
        return None
    for other in runs:
        if (
            other is not run
            and not other.faults
            and other.scenario == run.scenario
            and other.engine == run.engine
            and other.allocator == run.allocator
        ):
            return other
    return None


def cycle_table(
    run: RunRecord, runs: Sequence[RunRecord] = (), baseline: Report | None = None
) -> CycleTable:
    """Build the table: baseline column from an earlier report's run with the same key,
    else this report's no-fault run of the same scenario, else the expectation."""
    base_run: RunRecord | None = None
    name = ""
    if baseline is not None:
        base_run = next((r for r in baseline.runs if r.key == run.key), None)
        if base_run is not None:
            name = f"baseline {baseline.run_id}"
    if base_run is None:
        base_run = reference_run(run, runs)
        if base_run is not None:
            name = "without faults"
    base_status: dict[int, str] = {}
    if base_run is not None:
        base_status = {c.cycle: c.status for c in base_run.cycles}
    else:
        name = f"expected ({run.expected_verdict})"
    numbers = sorted({c.cycle for c in run.cycles} | set(base_status))
    by_cycle: dict[int, CycleSummary] = {c.cycle: c for c in run.cycles}
    rows = []
    for n in numbers:
        this = by_cycle[n].status if n in by_cycle else "-"
        if base_run is not None:
            base = base_status.get(n, "-")
            base_cell = cell(base, base_run)
        elif run.expected_verdict in ("clean", "skipped"):
            base, base_cell = None, OK
        else:
            # a fault scenario: the failure is expected, its cycle is not fixed in advance
            base = None
            base_cell = f"{FAIL} expected" if n == numbers[0] else ""
        rows.append(
            Row(n, base_cell, cell(this, run), _status_text(base, this, run.expected_verdict))
        )
    return CycleTable(name, merge_rows(rows) if len(rows) > MERGE_ABOVE else tuple(rows))


MEMORY_ROWS_EDGE = 6  # long runs: first and last cycles of the numbers table, plus the worst

QUARANTINE_NOTE = (
    "Quarantine: freed blocks the checked allocator keeps poisoned to catch use after free "
    "(bounded, not live, not a leak); memray still counts them as allocated, so they are "
    "measured apart (the allocator's ledger) and left out of engine live bytes."
)
QUARANTINE_KEPT_NOTE = (
    "Quarantine: freed blocks the engine's allocator reports keeping as a cache. memray's "
    "stacks did not show them among the allocator's own allocations, so they were not "
    "subtracted: engine live bytes still include them."
)


def quarantine_note(run: RunRecord) -> str:
    """What the Quarantine column means for this run ('' when there is none)."""
    if not quarantine_per_cycle(run):
        return ""
    markers = [m for m in (run.memray or {}).get("markers") or [] if isinstance(m, dict)]
    kept = any(m.get("cached_bytes") and m.get("cache_subtracted") is False for m in markers)
    return QUARANTINE_KEPT_NOTE if kept else QUARANTINE_NOTE


def quarantine_per_cycle(run: RunRecord) -> dict[int, int]:
    """Bytes the engine's allocator keeps as a cache of freed blocks (the checked
    allocator's quarantine) at each cycle's end, as its ledger reported them; empty when
    the allocator keeps none. Read where the cycle's engine-live figure was taken: the
    cycle's last memray marker, else (memray off) the cycle's last step."""
    out: dict[int, int] = {}
    for mk in (run.memray or {}).get("markers") or []:
        if isinstance(mk, dict) and mk.get("cycle") is not None and "cached_bytes" in mk:
            out[int(mk["cycle"])] = int(mk["cached_bytes"] or 0)
    if not out:
        for ev in run.steps:
            led = (ev.memory or {}).get("ledger") or {}
            if "cached_bytes" in led:
                out[ev.cycle] = int(led["cached_bytes"] or 0)
    return out if any(out.values()) else {}


def engine_live_per_cycle(run: RunRecord) -> dict[int, int | None]:
    """memray's engine-attributed live bytes at each cycle's end, the allocator's
    quarantine left out (a record written before it was measured apart, where
    `memray_leaked_bytes` still holds it, gets it subtracted here)."""
    markers = (run.memray or {}).get("markers") or []
    separated = any(isinstance(m, dict) and "engine_live_with_cache_bytes" in m for m in markers)
    quarantine = {} if separated else quarantine_per_cycle(run)
    out: dict[int, int | None] = {}
    for c in run.cycles:
        v = c.memray_leaked_bytes
        q = quarantine.get(c.cycle, 0)
        out[c.cycle] = v - q if v is not None and 0 < q <= v else v
    return out


@dataclass(frozen=True)
class Gap:
    """Cycles a long table leaves out (between two shown rows)."""

    cycles: int


def shown_cycles(cycles: Sequence[CycleSummary]) -> list[CycleSummary | Gap]:
    """The cycles a per-cycle table shows: all of a short run; of a long one its first and
    last `MEMORY_ROWS_EDGE`, every failing cycle and the first not reached, with a `Gap` for
    each run of cycles left out (the console and every report elide the same way)."""
    if len(cycles) <= 2 * MEMORY_ROWS_EDGE + 1:
        return list(cycles)
    keep = {c.cycle for c in [*cycles[:MEMORY_ROWS_EDGE], *cycles[-MEMORY_ROWS_EDGE:]]}
    keep |= {c.cycle for c in cycles if _failed(c.status)}
    first_missing = next((c for c in cycles if c.status in ("-", "", "not-reached")), None)
    if first_missing is not None:
        keep.add(first_missing.cycle)
    out: list[CycleSummary | Gap] = []
    hidden = 0
    for c in cycles:
        if c.cycle not in keep:
            hidden += 1
            continue
        if hidden:
            out.append(Gap(hidden))
            hidden = 0
        out.append(c)
    if hidden:
        out.append(Gap(hidden))
    return out


def memory_rows(run: RunRecord) -> list[dict[str, str]]:
    """Per-cycle measurements as display strings (the table under the cycle table);
    a long run shows its first and last cycles and any failing one, with '…' between
    (`shown_cycles`). A `Quarantine` column appears when the allocator keeps freed blocks."""
    quarantine = quarantine_per_cycle(run)
    engine = engine_live_per_cycle(run)
    header = _MEMORY_HEADER if quarantine else tuple(h for h in _MEMORY_HEADER if h != "Quarantine")
    out = []
    for c in shown_cycles(run.cycles):
        if isinstance(c, Gap):
            out.append({k: "…" for k in header})
            continue
        reached = c.status not in ("-", "", "not-reached")
        row = {
            "Cycle": str(c.cycle),
            "Dim": "-" if c.dimension is None else str(c.dimension),
            "Live blocks after clear": "-"
            if c.live_blocks_after_clear is None
            else str(c.live_blocks_after_clear),
            "Allocator live": fmt_bytes(c.live_bytes),
            "Engine live (memray)": fmt_bytes(engine.get(c.cycle)),
            "Quarantine": fmt_bytes(quarantine.get(c.cycle)),
            "RSS": fmt_bytes(c.rss_bytes),
            "Time": fmt_seconds(c.seconds) if reached else "-",
        }
        out.append({k: row[k] for k in header})
    return out


_MEMORY_HEADER = (
    "Cycle",
    "Dim",
    "Live blocks after clear",
    "Allocator live",
    "Engine live (memray)",
    "Quarantine",
    "RSS",
    "Time",
)


def outcome(run: RunRecord) -> str:
    """'PASS', 'FAIL' or 'SKIP' against the run's expected verdict; 'ERROR' when memcycle or
    the adapter could not run it (never counted as the engine's failure, never a pass)."""
    if run.verdict == "error":
        return "ERROR"
    if run.verdict == "skipped" and run.expected_verdict != "skipped":
        return "SKIP"
    return "PASS" if run.passed else "FAIL"


def counts(report: Report) -> dict[str, int]:
    out = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
    for r in report.runs:
        out[outcome(r)] += 1
    return out


def by_scenario(runs: Sequence[RunRecord]) -> dict[str, list[tuple[int, RunRecord]]]:
    """Runs grouped by scenario name, keeping report order (and each run's index)."""
    groups: dict[str, list[tuple[int, RunRecord]]] = {}
    for i, r in enumerate(runs):
        groups.setdefault(r.scenario, []).append((i, r))
    return groups
