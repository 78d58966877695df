"""A run's evidence in one line (the fault matrix), its headline (JUnit `message`, pytest
crash line), where its verdict showed and why it was skipped."""

from __future__ import annotations

from memcycle.records import (
    CRASH_VERDICTS,
    MEMORY_FAULT_VERDICTS,
    Finding,
    RunRecord,
    new_violations,
)

from .formats import place
from .frames import engine_native_frame
from .ledger import leak_line, violation_line


def crash_line(run: RunRecord) -> str:
    """How the child died: signal, where, the runtime's message (the verdict came from it
    when it is not `crash`)."""
    f = next(
        (x for x in run.findings if x.verdict in CRASH_VERDICTS or x.evidence.get("signal_class")),
        None,
    )
    ex = run.exit
    sig = ex.get("signal_name") or ex.get("kind")
    msg = ex.get("native_message") or ex.get("fatal_error") or ""
    runtime = f"{ex['native']['runtime']}: " if isinstance(ex.get("native"), dict) else ""
    where = f" in cycle {f.cycle} at {f.op}" if f else ""
    frame = engine_native_frame(f.evidence.get("native_stack")) if f else ""
    where += f", in {frame}" if frame else ""
    return f"{sig}{where}" + (f': {runtime}"{msg}"' if msg else "")


TOOL_SOURCES = ("asan", "lsan", "ubsan", "valgrind")


def tool_finding(run: RunRecord) -> Finding | None:
    """The sanitizer's or memcheck's finding behind the run's verdict, if a tool gave it."""
    return next(
        (
            x
            for x in run.findings
            if x.verdict == run.verdict and x.evidence.get("source") in TOOL_SOURCES
        ),
        None,
    )


def tool_line(run: RunRecord) -> str | None:
    """A sanitizer's or memcheck's verdict: its summary, then where the block was allocated
    and freed (the innermost engine frame of each stack)."""
    f = tool_finding(run)
    if f is None:
        return None
    parts = [f.summary]
    for key, label in (("native_alloc_stack", "allocated in"), ("native_free_stack", "freed in")):
        where = engine_native_frame(f.evidence.get(key))
        if where:
            parts.append(f"{label} {where}")
    return "; ".join(parts)


def growth_line(f: Finding) -> str:
    """memray's largest growing stack of a leak finding ('grew 12 KiB at a <- b <- c')."""
    growth = f.evidence.get("top_growth") or []
    if not growth or not isinstance(growth[0], dict) or not growth[0].get("stack"):
        return ""
    where = " <- ".join(growth[0]["stack"][:3])
    return f"grew {growth[0].get('bytes', 0) / 1024:.0f} KiB at {where}"


def evidence_line(run: RunRecord) -> str:
    """The evidence behind a run's verdict, in one line (block, cycles, bytes, signal)."""
    v = run.verdict
    if v == "clean":
        blocks = {c.live_blocks_after_clear for c in run.cycles} - {None}
        return f"no finding in {len(run.cycles)} cycles" + (
            f", {max(blocks)} live blocks after every clear" if blocks else ""
        )
    tool = tool_line(run)
    if tool:
        return tool
    if v in CRASH_VERDICTS:
        return crash_line(run)
    if any(x.verdict == v and x.evidence.get("signal_class") for x in run.findings):
        return crash_line(run)  # the verdict is the dead child's runtime message
    if v == "leak":
        line = leak_line(run)
        if line:
            return line
    line = ""
    if v in MEMORY_FAULT_VERDICTS:
        match = [
            (i, x)
            for i, new in enumerate(new_violations(run.steps))
            for x in new
            if x.get("verdict") == v
        ]
        if match:
            line = violation_line(run.steps, *match[0])
    if not line:
        f = next((x for x in run.findings if x.verdict == v), None)
        line = f.summary if f else v
    if v != "leak" and any(x.verdict == "leak" for x in run.findings):
        leak = leak_line(run) or next(x.summary for x in run.findings if x.verdict == "leak")
        first = next(x for x in run.findings if x.verdict == "leak")
        line += f"; before it, a leak from cycle {first.cycle}: {leak}"
    return line


def skip_reason(run: RunRecord) -> str:
    """Why a run (or some of its steps) was skipped: its `skipped` finding's summary, the
    exit's reason, or a step's reason (the JUnit <skipped> message, pytest's skip and
    --memcycle-fail-on-skip message, the console's 'skipped:' line)."""
    for f in run.findings:
        if f.verdict == "skipped" and f.summary:
            return f.summary
    reason = (run.exit or {}).get("reason")
    if reason:
        return str(reason)
    for s in run.steps:
        if s.skipped:
            return s.skipped
    return "skipped"


def verdict_finding(run: RunRecord) -> Finding | None:
    """The first finding with the run's verdict (all findings when none has it)."""
    relevant = [f for f in run.findings if f.verdict == run.verdict] or run.findings
    return relevant[0] if relevant else None


def verdict_finding_at(run: RunRecord) -> str:
    """'cycle.step op' of the first finding with the run's verdict (where it showed)."""
    f = next((x for x in run.findings if x.verdict == run.verdict), None)
    if f is None or f.cycle is None:
        return "-"
    return f"{f.cycle}.{f.step} {f.op}"


def run_headline(run: RunRecord) -> str:
    """One line: 'ERROR at op setup: engine setup failed: ...' or
    'verdict crash (expected clean) at cycle 2, step 0 (insert): SIGSEGV in ...'."""
    first = verdict_finding(run)
    at = place(first.cycle, first.step, first.op) if first is not None else ""
    at = f" at {at}" if at else ""
    if run.verdict == "error":
        cause = first.summary if first is not None else "memcycle could not run the scenario"
        return f"ERROR{at}: {cause}"
    line = f"verdict {run.verdict_text} (expected {run.expected_verdict}){at}"
    if first is not None and first.summary:
        line += f": {first.summary}"
    return line
