"""The judgement of one run: every source of findings in order, the verdict, one row per cycle.

Apart from the sources (`checks_exit`, `checks_steps`, `checks_leaks`, `checks_skips`) so that
the order in which a run is judged, the cap on findings per verdict and the per-cycle summary
read in one place.
"""

from __future__ import annotations

from typing import Any

from .checks_exit import _exit_findings
from .checks_leaks import _growth_findings, _ledger_findings, _reset_points
from .checks_skips import _ran_something, _skip_findings
from .checks_steps import _step_findings
from .protocol import TEARDOWN_OP
from .records import CycleSummary, Finding, RunRecord, verdict_set, worst
from .scenario import PlannedCycle

# the label of the cycles the child added to confirm a rising series (runner.py, child.py)
CONFIRM_LABEL = "confirmation repeat"

MAX_FINDINGS_PER_VERDICT = 10


def _cap(findings: list[Finding]) -> list[Finding]:
    """Keep the first few findings of each verdict; fold the rest into one (cycles kept)."""
    kept: list[Finding] = []
    extra: dict[str, list[Finding]] = {}
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.verdict] = counts.get(f.verdict, 0) + 1
        if counts[f.verdict] <= MAX_FINDINGS_PER_VERDICT:
            kept.append(f)
        else:
            extra.setdefault(f.verdict, []).append(f)
    for verdict, rest in extra.items():
        first = rest[0]
        cycles = sorted({f.cycle for f in rest if f.cycle is not None})
        kept.append(
            Finding(
                verdict,
                first.cycle,
                first.step,
                first.op,
                f"... {len(rest)} more {verdict} finding(s) in cycles {cycles[0]}..{cycles[-1]}"
                if cycles
                else f"... {len(rest)} more {verdict} finding(s)",
                {"cycles": cycles, "summaries": [f.summary for f in rest[:20]]},
            )
        )
    return kept


def judge(
    record: RunRecord,
    plan: tuple[PlannedCycle, ...],
    *,
    markers: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
    setup_error: dict[str, Any] | None = None,
    started: bool | None = None,
) -> RunRecord:
    """Fill `record.findings`, `record.cycles` and `record.verdict`; returns the record.

    `started`: whether the child sent its `start` event (the engine was built). When the
    caller does not say, a run with steps, capabilities or a setup error is taken as
    started or as far as setup; anything else ended before it started."""
    if record.verdict == "skipped":
        # skipped as a whole before any step (a requirement the engine lacks): say why
        reason = str((record.exit or {}).get("reason") or "skipped")
        if not record.findings:
            record.findings = [Finding("skipped", None, None, None, reason)]
        record.cycles = [CycleSummary(pc.index, pc.dimension, "-") for pc in plan]
        return record
    if started is None:
        started = bool(record.steps or record.capabilities)
    findings = _exit_findings(record, plan, setup_error, started)
    findings += _cap(_step_findings(record.steps))
    findings += _ledger_findings(record.steps)
    planned = sum(1 for pc in plan if pc.label != CONFIRM_LABEL)
    tables = {pc.index: pc.table for pc in plan}
    findings += _growth_findings(
        record.steps,
        markers or [],
        analysis,
        (record.exit.get("sanitizer") or {}).get("tool"),
        planned,
        tables,
    )
    skips = _skip_findings(record.steps)
    if findings:
        verdict = worst([f.verdict for f in findings])
    elif skips and not _ran_something(record.steps):
        verdict = "skipped"  # nothing of the plan could run
    else:
        verdict = "clean"  # judged on the steps that ran; the skipped ones are listed
    record.findings = findings + skips
    record.verdict = verdict
    record.verdicts = verdict_set([f.verdict for f in findings])
    record.cycles = summarize_cycles(record, plan, markers or [], analysis)
    return record


def summarize_cycles(
    record: RunRecord,
    plan: tuple[PlannedCycle, ...],
    markers: list[dict[str, Any]],
    analysis: dict[str, Any] | None,
) -> list[CycleSummary]:
    """One row per planned cycle: ok, the worst verdict found in it, or '-' if not reached."""
    reached = {ev.cycle for ev in record.steps}
    ran = {ev.cycle for ev in record.steps if not ev.skipped and ev.op != TEARDOWN_OP}
    status: dict[int, list[str]] = {}
    for f in record.findings:
        if f.cycle is None and f.op == "setup":
            continue  # nothing ran: no cycle to mark
        cycles = f.evidence.get("cycles") or ([f.cycle] if f.cycle is not None else [plan[0].index])
        if f.verdict == "skipped":  # a cycle with skipped steps is judged on what ran in it
            cycles = [c for c in cycles if c not in ran]
        for c in cycles:
            status.setdefault(c, []).append(f.verdict)
            reached.add(c)
    engine_at: dict[int, int] = {}
    if analysis and analysis.get("markers"):
        by_index = {m["index"]: m for m in analysis["markers"]}
        for mk in markers:  # the last marker of a cycle wins
            m = by_index.get(mk["index"])
            if m is not None:
                engine_at[mk["cycle"]] = m["engine_live_bytes"]
    resets = _reset_points(record.steps)
    out = []
    for pc in plan:
        evs = [e for e in record.steps if e.cycle == pc.index]
        last = evs[-1] if evs else None
        mem = last.memory if last else {}
        led = mem.get("ledger") or {}
        reset = resets.get(pc.index)
        reset_led = ((reset.memory or {}).get("ledger") or {}) if reset else {}
        if pc.index not in reached:
            st = "-"
        elif pc.index in status:
            st = worst(status[pc.index])
        else:
            st = "ok"
        out.append(
            CycleSummary(
                cycle=pc.index,
                dimension=(last.dimension if last else pc.dimension),
                status=st,
                live_blocks_after_clear=reset_led.get("live_blocks") if reset_led else None,
                live_bytes=led.get("live_bytes"),
                memray_leaked_bytes=engine_at.get(pc.index),
                rss_bytes=mem.get("rss"),
                tracemalloc_bytes=mem.get("tracemalloc"),
                seconds=float(sum(e.seconds for e in evs)),
            )
        )
    return out
