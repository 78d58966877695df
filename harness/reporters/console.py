"""What a terminal shows of one run: its header line, its first findings and its cycle table.

The findings' words and sites come from `memcycle.evidence` and the long-table elision from
`common.shown_cycles`, as in every report; only the layout (one line per finding, KiB and MiB
columns) is the terminal's own.
"""

from __future__ import annotations

from memcycle.checks import skip_findings
from memcycle.evidence import FindingEvidence, crash_cause, explain, growth_line, skip_reason
from memcycle.records import RunRecord

from .common import Gap, engine_live_per_cycle, outcome, quarantine_per_cycle, shown_cycles

FINDINGS_SHOWN = 3  # besides the first finding of every verdict class


def _mib(x: int | None) -> str:
    return "" if x is None else f"{x / (1 << 20):.1f}"


def _kib(x: int | None) -> str:
    return "" if x is None else f"{x / 1024:.0f}"


def _shown(findings: tuple[FindingEvidence, ...]) -> list[FindingEvidence]:
    """The first finding of every verdict class, then the others up to `FINDINGS_SHOWN`, so
    a leak found next to a dozen wrong results is on screen too."""
    real = [fe for fe in findings if fe.finding.verdict != "skipped"]
    classes = dict.fromkeys(fe.finding.verdict for fe in real)
    firsts = [next(fe for fe in real if fe.finding.verdict == v) for v in classes]
    return firsts + [fe for fe in real if fe not in firsts][: max(0, FINDINGS_SHOWN - len(firsts))]


def _findings_lines(rec: RunRecord) -> list[str]:
    ev = explain(rec)
    shown = _shown(ev.findings)
    lines = []
    for fe in shown:
        lines.append(f"  - {fe.finding.verdict}: {fe.finding.summary}")
        if fe.sites:
            lines.append(f"      where: {'; '.join(fe.sites)}")
        growth = growth_line(fe.finding)
        if growth:
            lines.append(f"      {growth}")
    hidden = sum(1 for fe in ev.findings if fe.finding.verdict != "skipped") - len(shown)
    if hidden > 0:
        lines.append(f"  - ... {hidden} more finding(s)")
    return lines


def _table_lines(rec: RunRecord) -> list[str]:
    # the checked allocator's quarantine of freed blocks: its own column, never in engine live
    quarantine = quarantine_per_cycle(rec)
    engine = engine_live_per_cycle(rec)
    q_head = " Quarantine KiB (freed, not live) |" if quarantine else ""
    lines = [
        "| Cycle | Dim | Live blocks after clear | Engine live KiB (memray) |"
        f"{q_head} RSS MiB | Status |",
        "|---|---|---|---|" + ("---|" if quarantine else "") + "---|---|",
    ]
    for c in shown_cycles(rec.cycles):
        if isinstance(c, Gap):
            lines.append(f"| ... | | | | | ({c.cycles} cycles) |")
            continue
        status = c.status
        if c.status == "crash":
            cause = crash_cause(rec)
            status = f"crash ({', '.join(cause)})" if cause else "crash"
        blocks = "" if c.live_blocks_after_clear is None else str(c.live_blocks_after_clear)
        q_cell = f" {_kib(quarantine.get(c.cycle))} |" if quarantine else ""
        lines.append(
            f"| {c.cycle} | {c.dimension or ''} | {blocks} | {_kib(engine.get(c.cycle))} |"
            f"{q_cell} {_mib(c.rss_bytes)} | {status} |"
        )
    return lines


def format_run(rec: RunRecord) -> str:
    """A run's header line, its first findings and its cycle table (reference-note form)."""
    faults = "+".join(rec.faults) or "-"
    lines = [
        f"{rec.scenario}  engine={rec.engine} allocator={rec.allocator} faults={faults}  "
        f"verdict={rec.verdict_text} expected={rec.expected_verdict}  {outcome(rec)}  "
        f"({rec.seconds:.1f} s)"
    ]
    if rec.verdict == "skipped" and not rec.steps:
        # the whole scenario: a requirement the engine lacks, or written for other engines
        lines.append(f"  skipped: {skip_reason(rec)}")
        return "\n".join(lines)
    if rec.verdict == "error" and not rec.steps:
        # nothing ran: the cause in one line and the child's last words, no cycle table
        for f in [f for f in rec.findings if f.verdict == "error"][:1]:
            lines.append(f"  error: {f.summary}")
            tail = str(f.evidence.get("stderr_tail") or "").strip().splitlines()[-5:]
            lines.extend(f"    | {t}" for t in tail)
        return "\n".join(lines)
    # skipped steps are listed whatever the verdict: clean on what ran, or next to a leak
    lines.extend(f"  skipped: {f.summary}" for f in skip_findings(rec))
    return "\n".join(lines + _findings_lines(rec) + _table_lines(rec))
