"""What every report format shows, computed once: cycle-table rows, evidence, labels.

Each format module turns these plain values into its own markup, so the
Markdown table, the HTML table and the JUnit failure text always agree.
Nothing here reads files or touches an engine: it is a function of run records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memcycle.records import SEVERITY, CycleSummary, Finding, Report, RunRecord

OK = "✅"
FAIL = "❌"
CRASH = "⚡"
NOT_REACHED = "-"

# verdicts whose cycle cell gets the lightning mark: the process did not end by itself
_CRASH_VERDICTS = frozenset({"crash", "timeout"})
_MEMORY_FAULTS = frozenset({"double-free", "invalid-free", "use-after-free", "buffer-overflow"})
STDERR_TAIL_LINES = 25


def run_label(run: RunRecord) -> str:
    """`engine/allocator/faults`: the JUnit test name and the per-run heading."""
    faults = "+".join(run.faults) or "no-faults"
    return f"{run.engine}/{run.allocator}/{faults}"


def run_anchor(run: RunRecord, index: int) -> str:
    """A stable HTML id for a run section (index keeps duplicates apart)."""
    safe = "".join(c if c.isalnum() else "-" for c in f"{run.scenario}-{run_label(run)}")
    return f"run-{index}-{safe.strip('-').lower()}"


def fmt_bytes(n: float | int | None) -> str:
    """Human-readable bytes (binary units), '-' for missing values."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{sign}{v:.0f} {unit}" if unit == "B" else f"{sign}{v:.1f} {unit}"
        v /= 1024
    return f"{sign}{v:.1f} GiB"  # pragma: no cover - loop always returns


def fmt_seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f} s"


def signal_name(run: RunRecord) -> str | None:
    """The signal that ended the child, as text ('SIGSEGV'), when there was one."""
    sig = run.exit.get("signal") if run.exit else None
    if run.exit and run.exit.get("signal_name"):
        return str(run.exit["signal_name"])
    if sig is None or sig == "":
        return None
    if isinstance(sig, int):
        import signal as _signal

        try:
            return _signal.Signals(sig).name
        except ValueError:
            return f"signal {sig}"
    return str(sig)


def cell(status: str, run: RunRecord | None = None) -> str:
    """One cycle cell in the reference note's notation: ✅ / ❌ (verdict) / ⚡ (signal) / -."""
    if status in ("ok", "clean"):
        return OK
    if status in ("-", "", "not-reached"):
        return NOT_REACHED
    if status == "skipped":
        return "skipped"
    if status in _CRASH_VERDICTS:
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
            return "Crashes" if this in _CRASH_VERDICTS else "Fails"
        return "Fails as expected" if this == expected else f"Fails (expected {expected})"
    base_failed = _failed(base)
    if not this_failed:
        return "Fixed" if base_failed else "Works"
    if not base_failed:
        reached = base not in ("-", "", "not-reached")
        kind = "Crashes" if this in _CRASH_VERDICTS else "Fails"
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


def memory_rows(run: RunRecord) -> list[dict[str, str]]:
    """Per-cycle measurements as display strings (the table under the cycle table);
    a long run shows its first and last cycles and any failing one, with '…' between.
    A `Quarantine` column appears when the allocator keeps freed blocks."""
    quarantine = quarantine_per_cycle(run)
    engine = engine_live_per_cycle(run)
    header = _MEMORY_HEADER if quarantine else tuple(h for h in _MEMORY_HEADER if h != "Quarantine")
    cycles = run.cycles
    if len(cycles) > 2 * MEMORY_ROWS_EDGE + 1:
        keep = {c.cycle for c in cycles[:MEMORY_ROWS_EDGE] + cycles[-MEMORY_ROWS_EDGE:]}
        keep |= {c.cycle for c in cycles if _failed(c.status)}
        cycles = [c for c in cycles if c.cycle in keep]
    out = []
    prev: int | None = None
    for c in cycles:
        if prev is not None and c.cycle != prev + 1:
            out.append({k: "…" for k in header})
        prev = c.cycle
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


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence: a short `key: value` fact, or a titled block of text."""

    title: str
    text: str
    block: bool  # render as preformatted text


# keys shown first, in this order; everything else follows alphabetically
_KEY_ORDER = (
    "message",
    "exception",
    "type",
    "label",
    "block",
    "block_id",
    "nbytes",
    "leaked_bytes_per_cycle",
    "alloc_stack",
    "free_stack",
    "fault_stack",
    "traceback",
)
_BYTE_KEYS = ("bytes", "nbytes")


def _is_bytes_key(key: str) -> bool:
    return any(
        key == k or key.endswith("_" + k) or key.startswith(k + "_") or f"_{k}_" in key
        for k in _BYTE_KEYS
    )


def _fmt_value(key: str, value: Any) -> tuple[str, bool]:
    """Text for one evidence value and whether it needs a preformatted block."""
    if isinstance(value, bool) or value is None:
        return str(value), False
    if isinstance(value, int | float) and _is_bytes_key(key):
        return f"{fmt_bytes(value)} ({value})", False
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value), False
    if isinstance(value, str):
        return value.rstrip(), "\n" in value.strip() or len(value) > 160
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            if _is_bytes_key(key):
                return ", ".join(fmt_bytes(v) for v in value), False
            return ", ".join(str(v) for v in value), False
        if _native_frames(value):
            return format_native_frames(value), True
        if all(isinstance(v, dict) and _native_frames(v.get("frames")) for v in value):
            # native_threads: every thread's stack (a hang)
            return "\n".join(
                f"thread {t.get('num')} {t.get('name') or ''} (lwp {t.get('lwp')}):\n"
                + format_native_frames(t["frames"], indent="  ")
                for t in value
            ), True
        if all(isinstance(v, str) for v in value):
            # a stack (list of frames) or a list of lines
            return "\n".join(v.rstrip("\n") for v in value) or "(empty)", True
        if all(isinstance(v, dict) for v in value) and all(
            not isinstance(x, dict | list) for v in value for x in v.values()
        ):
            # measurements per cycle/step: one readable line each
            return "\n".join(_fmt_flat(v) for v in value), True
        if all(isinstance(v, dict) for v in value) and all(_frames_entry(v) for v in value):
            # memray stacks with their bytes (top_growth, top_live): a header line, then frames
            out = []
            for v in value:
                head = {k: x for k, x in v.items() if not isinstance(x, list)}
                out.append(_fmt_flat(head))
                out.extend(f"    {frame}" for x in v.values() if isinstance(x, list) for frame in x)
            return "\n".join(out), True
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, dict) and _frames_entry(v) for v in value.values())
    ):
        # e.g. live blocks by label: one line per label, its allocation frames under it
        # (the checked allocator's ledger: the newest block's site), largest first
        out = []
        for k, v in sorted(value.items(), key=lambda kv: -_size(kv[1])):
            out.append(f"{k}: {_fmt_flat({x: y for x, y in v.items() if not isinstance(y, list)})}")
            out.extend(f"    {frame}" for y in v.values() if isinstance(y, list) for frame in y)
        return "\n".join(out), True
    return json.dumps(value, indent=2, sort_keys=True, default=str), True


_LEAD = ("cycle", "step", "op")
NATIVE_FRAMES_SHOWN = 24


def _native_frames(value: Any) -> bool:
    """A native stack from gdb or a sanitizer: dicts with `function` and `origin`."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and "function" in v and "origin" in v for v in value)
    )


def format_native_frames(frames: list[dict[str, Any]], indent: str = "") -> str:
    """One line per frame, innermost first; the engine's own frames marked with '=>'."""
    from ..native_stack import format_frame

    lines = [
        f"{indent}{'=>' if f.get('engine') else '  '} {format_frame(f)}"
        for f in frames[:NATIVE_FRAMES_SHOWN]
    ]
    if len(frames) > NATIVE_FRAMES_SHOWN:
        lines.append(f"{indent}   ... {len(frames) - NATIVE_FRAMES_SHOWN} more frame(s)")
    return "\n".join(lines)


def _size(d: dict[str, Any]) -> float:
    v = d.get("bytes", d.get("nbytes", 0))
    return float(v) if isinstance(v, int | float) else 0.0


def _frames_entry(d: dict[str, Any]) -> bool:
    """A dict of scalars plus lists of strings (a stack with its numbers)."""
    return all(
        not isinstance(x, dict) and (not isinstance(x, list) or all(isinstance(f, str) for f in x))
        for x in d.values()
    )


def _fmt_flat(d: dict[str, Any]) -> str:
    """'cycle 2, step 7 (clear): live_blocks 4, live_bytes 36.0 KiB'."""
    where = ", ".join(f"{k} {d[k]}" for k in ("cycle", "step") if d.get(k) is not None)
    if d.get("op"):
        where = f"{where} ({d['op']})" if where else str(d["op"])
    rest = ", ".join(
        f"{k} {_fmt_value(k, v)[0]}" for k, v in d.items() if k not in _LEAD and v is not None
    )
    return f"{where}: {rest}" if where and rest else where or rest


def _order(keys: Sequence[str]) -> list[str]:
    first = [k for k in _KEY_ORDER if k in keys]
    return first + sorted(k for k in keys if k not in _KEY_ORDER)


def evidence_items(evidence: dict[str, Any]) -> list[EvidenceItem]:
    """A finding's evidence dict as ordered display items (stacks and messages as blocks)."""
    items = []
    for key in _order(list(evidence)):
        value = evidence[key]
        if value in (None, "", [], {}):
            continue
        if isinstance(value, dict) and not all(isinstance(v, dict) for v in value.values()):
            # a record (the allocator's violation, the exception with its traceback):
            # flatten it one level so messages and stacks show as text, not JSON
            items.extend(
                EvidenceItem(f"{key}.{k}", *(_fmt_value(k, value[k])))
                for k in _order(list(value))
                if value[k] not in (None, "", [], {})
            )
            continue
        text, block = _fmt_value(key, value)
        items.append(EvidenceItem(key, text, block))
    return items


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def _dedupe(items: list[EvidenceItem], shown: list[tuple[str, set[str]]]) -> list[EvidenceItem]:
    """Drop blocks whose every line another block already shows: the same stderr arrives
    as faulthandler output, stderr tail and exit tail, and an allocator message already
    quotes the block's stacks; a traceback that ends with a message shown above keeps
    only the message's first line. `shown` carries across a run."""
    blocks = [i for i in items if i.block]  # in display order: messages before tracebacks
    replaced: dict[int, EvidenceItem] = {}
    for item in blocks:
        lines = _lines(item.text)
        if lines and any(lines <= other for _, other in shown):
            replaced[id(item)] = item  # marker: drop
            continue
        text = item.text
        for other_text, _ in shown:
            body = other_text.strip()
            if body.count("\n") >= 3 and body in text:
                text = text.replace(body, body.splitlines()[0] + " [... as shown above]")
        shown.append((item.text.strip(), lines))
        if text != item.text:
            replaced[id(item)] = EvidenceItem(item.title, text, True)
    out = []
    for i in items:
        r = replaced.get(id(i))
        if r is i:
            continue
        out.append(r or i)
    return out


def run_evidence(
    run: RunRecord,
) -> tuple[list[tuple[Finding, list[EvidenceItem]]], list[EvidenceItem]]:
    """Each finding with its evidence items, and the exit items (empty for a normal exit),
    with text repeated across them shown once."""
    shown: list[tuple[str, set[str]]] = []
    findings = [(f, _dedupe(evidence_items(f.evidence), shown)) for f in run.findings]
    exit_part: list[EvidenceItem] = []
    if abnormal_exit(run) or run.verdict in ("crash", "timeout"):
        facts = {i.text for _, items in findings for i in items if not i.block}
        exit_part = [i for i in _dedupe(exit_items(run), shown) if i.block or i.text not in facts]
    return findings, exit_part


def finding_headline(f: Finding) -> str:
    """'double-free at cycle 2, step 1 (insert): summary'."""
    where = []
    if f.cycle is not None:
        where.append(f"cycle {f.cycle}")
    if f.step is not None:
        where.append(f"step {f.step}")
    place = ", ".join(where)
    if f.op:
        place = f"{place} ({f.op})" if place else f"op {f.op}"
    head = f"{f.verdict} at {place}" if place else f.verdict
    return f"{head}: {f.summary}" if f.summary else head


def exit_items(run: RunRecord) -> list[EvidenceItem]:
    """How the child ended: kind, code, signal and the tail of its stderr."""
    e = run.exit or {}
    items = []
    facts = []
    for key in ("kind", "code", "signal"):
        if e.get(key) not in (None, ""):
            facts.append(f"{key} {e[key]}")
    sig = signal_name(run)
    if sig and str(e.get("signal")) != sig:
        facts.append(f"({sig})")
    if facts:
        items.append(EvidenceItem("exit", " ".join(facts), False))
    for key, title in (("native_message", "native message"), ("fatal_error", "fatal error")):
        if e.get(key):
            items.append(EvidenceItem(title, str(e[key]), "\n" in str(e[key])))
    tail = e.get("stderr_tail")
    if tail:
        if isinstance(tail, list):
            tail = "\n".join(tail)
        lines = str(tail).rstrip().splitlines()[-STDERR_TAIL_LINES:]
        items.append(EvidenceItem("stderr (tail)", "\n".join(lines), True))
    return items


def abnormal_exit(run: RunRecord) -> bool:
    """Whether the exit deserves showing (a signal, a non-zero code, a timeout)."""
    e = run.exit or {}
    if e.get("signal") not in (None, "", 0):
        return True
    if e.get("code") not in (None, 0):
        return True
    return e.get("kind") not in _NORMAL_EXITS


_NORMAL_EXITS = frozenset({None, "", "ok", "clean", "normal", "skipped"})


def leaked_per_cycle(run: RunRecord) -> list[int | None]:
    """memray's engine live bytes for each cycle, quarantine left out (None: not measured)."""
    engine = engine_live_per_cycle(run)
    return [engine.get(c.cycle) for c in run.cycles]


def is_memory_fault(verdict: str) -> bool:
    return verdict in _MEMORY_FAULTS


def outcome(run: RunRecord) -> str:
    """'PASS', 'FAIL' or 'SKIP' against the run's expected verdict; 'ERROR' when memcycle or
    the adapter could not run it (never counted as the engine's failure, never a pass)."""
    if run.verdict == "error":
        return "ERROR"
    if run.verdict == "skipped" and run.expected_verdict != "skipped":
        return "SKIP"
    return "PASS" if run.passed else "FAIL"


def skip_reason(run: RunRecord) -> str:
    """Why a run was skipped: a finding's summary, the exit's reason, or a step's reason."""
    for f in run.findings:
        if f.summary:
            return f.summary
    reason = (run.exit or {}).get("reason")
    if reason:
        return str(reason)
    for s in run.steps:
        if s.skipped:
            return s.skipped
    return "skipped"


def counts(report: Report) -> dict[str, int]:
    out = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
    for r in report.runs:
        out[outcome(r)] += 1
    return out


def severity(verdict: str) -> int:
    return SEVERITY.get(verdict, 0)


def by_scenario(runs: Sequence[RunRecord]) -> dict[str, list[tuple[int, RunRecord]]]:
    """Runs grouped by scenario name, keeping report order (and each run's index)."""
    groups: dict[str, list[tuple[int, RunRecord]]] = {}
    for i, r in enumerate(runs):
        groups.setdefault(r.scenario, []).append((i, r))
    return groups
