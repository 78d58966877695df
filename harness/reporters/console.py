"""What a terminal shows of one run: its header line, its first findings and its cycle table."""

from __future__ import annotations

from memcycle.checks import skip_findings
from memcycle.records import RunRecord

MAX_TABLE_ROWS = 12


def _mib(x: int | None) -> str:
    return "" if x is None else f"{x / (1 << 20):.1f}"


def _kib(x: int | None) -> str:
    return "" if x is None else f"{x / 1024:.0f}"


def _mark(rec: RunRecord) -> str:
    """PASS, FAIL, SKIP, or ERROR (memcycle or the adapter could not run it: not an engine bug)."""
    if rec.verdict == "error":
        return "ERROR"
    return "PASS" if rec.passed else ("SKIP" if rec.verdict == "skipped" else "FAIL")


def format_run(rec: RunRecord) -> str:
    """A run's header line, its first findings and its cycle table (reference-note form)."""
    mark = _mark(rec)
    faults = "+".join(rec.faults) or "-"
    lines = [
        f"{rec.scenario}  engine={rec.engine} allocator={rec.allocator} faults={faults}  "
        f"verdict={rec.verdict_text} expected={rec.expected_verdict}  {mark}  ({rec.seconds:.1f} s)"
    ]
    skips = skip_findings(rec)
    if rec.verdict == "skipped" and not rec.steps:
        # the whole scenario: a requirement the engine lacks, or written for other engines
        reason = rec.exit.get("reason") or (skips[0].summary if skips else "")
        lines.append(f"  skipped: {reason}")
        return "\n".join(lines)
    if rec.verdict == "error" and not rec.steps:
        # nothing ran: the cause in one line and the child's last words, no cycle table
        for f in [f for f in rec.findings if f.verdict == "error"][:1]:
            lines.append(f"  error: {f.summary}")
            tail = str(f.evidence.get("stderr_tail") or "").strip().splitlines()[-5:]
            lines.extend(f"    | {t}" for t in tail)
        return "\n".join(lines)
    # skipped steps are listed whatever the verdict: clean on what ran, or next to a leak
    lines.extend(f"  skipped: {f.summary}" for f in skips)
    real = [f for f in rec.findings if f.verdict != "skipped"]
    # the first finding of every verdict class, then the others, so a leak found next to a
    # dozen wrong results is on screen too
    firsts = [
        next(f for f in real if f.verdict == v) for v in dict.fromkeys(f.verdict for f in real)
    ]
    shown = firsts + [f for f in real if f not in firsts][: max(0, 3 - len(firsts))]
    for f in shown:
        lines.append(f"  - {f.verdict}: {f.summary}")
        growth = f.evidence.get("top_growth") or []
        if growth and growth[0].get("stack"):
            where = " <- ".join(growth[0]["stack"][:3])
            lines.append(f"      grew {growth[0]['bytes'] / 1024:.0f} KiB at {where}")
    if len(real) > len(shown):
        lines.append(f"  - ... {len(real) - len(shown)} more finding(s)")
    from memcycle.reporters.common import engine_live_per_cycle, quarantine_per_cycle

    # the checked allocator's quarantine of freed blocks: its own column, never in engine live
    quarantine = quarantine_per_cycle(rec)
    engine = engine_live_per_cycle(rec)
    q_head = " Quarantine KiB (freed, not live) |" if quarantine else ""
    lines.append(
        "| Cycle | Dim | Live blocks after clear | Engine live KiB (memray) |"
        f"{q_head} RSS MiB | Status |"
    )
    lines.append("|---|---|---|---|" + ("---|" if quarantine else "") + "---|---|")
    rows = rec.cycles
    keep = set(range(len(rows)))
    if len(rows) > MAX_TABLE_ROWS:
        keep = set(range(5)) | set(range(len(rows) - 5, len(rows)))
        keep |= {i for i, c in enumerate(rows) if c.status not in ("ok", "-")}
        first_missing = next((i for i, c in enumerate(rows) if c.status == "-"), None)
        if first_missing is not None:
            keep.add(first_missing)
    prev = -1
    for i, c in enumerate(rows):
        if i not in keep:
            continue
        if i != prev + 1:
            lines.append(f"| ... | | | | | ({i - prev - 1} cycles) |")
        prev = i
        status = {"ok": "ok", "-": "-"}.get(c.status, c.status)
        if c.status == "crash":
            sig = rec.exit.get("signal_name")
            msg = rec.exit.get("native_message")
            status = f"crash ({', '.join(x for x in (sig, msg) if x)})" if sig or msg else "crash"
        blocks = "" if c.live_blocks_after_clear is None else str(c.live_blocks_after_clear)
        q_cell = f" {_kib(quarantine.get(c.cycle))} |" if quarantine else ""
        lines.append(
            f"| {c.cycle} | {c.dimension or ''} | {blocks} | {_kib(engine.get(c.cycle))} |"
            f"{q_cell} {_mib(c.rss_bytes)} | {status} |"
        )
    if prev != len(rows) - 1:
        lines.append(f"| ... | | | | | ({len(rows) - prev - 1} cycles) |")
    return "\n".join(lines)
