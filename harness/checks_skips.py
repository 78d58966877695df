"""Skip findings: the steps an engine could not run (a capability it lacks), and whether a run
skipped anything.

Apart because skips are never a verdict of the steps that ran: they are listed whatever the
verdict is, and read back by the console, the pytest plugin and `--fail-on-skip`.
"""

from __future__ import annotations

from .protocol import TEARDOWN_OP
from .records import Finding, RunRecord, StepEvent


def _skip_findings(steps: list[StepEvent]) -> list[Finding]:
    """Steps the engine could not run (a missing capability): the run did not test them.

    Always listed, whatever the verdict (a leak and two skipped deletes show both); the
    summary reads '6 steps skipped: delete x6 (faiss has no delete ...) in cycles 1..3'.
    """
    skipped = [ev for ev in steps if ev.skipped]
    if not skipped:
        return []
    reasons: dict[str, int] = {}
    by_op: dict[tuple[str, str], int] = {}
    for ev in skipped:
        reasons[str(ev.skipped)] = reasons.get(str(ev.skipped), 0) + 1
        by_op[(ev.op, str(ev.skipped))] = by_op.get((ev.op, str(ev.skipped)), 0) + 1
    cycles = sorted({ev.cycle for ev in skipped})
    where = f"cycle {cycles[0]}" if len(cycles) == 1 else f"cycles {cycles[0]}..{cycles[-1]}"
    what = "; ".join(
        f"{op}{f' x{n}' if n > 1 else ''} ({reason})" for (op, reason), n in by_op.items()
    )
    first = skipped[0]
    n = len(skipped)
    return [
        Finding(
            "skipped",
            first.cycle,
            first.step,
            first.op,
            f"{n} step{'s' if n > 1 else ''} skipped: {what} in {where}"[:300],
            {
                "skipped_steps": [
                    {"cycle": ev.cycle, "step": ev.step, "op": ev.op, "reason": ev.skipped}
                    for ev in skipped[:200]
                ],
                "n_skipped": n,
                "reasons": reasons,
                "cycles": cycles,
            },
        )
    ]


def skip_findings(record: RunRecord) -> list[Finding]:
    """The record's `skipped` findings: the whole run, or the steps that could not run."""
    return [f for f in record.findings if f.verdict == "skipped"]


def was_skipped(record: RunRecord) -> bool:
    """Whether anything of the run was skipped (for `--fail-on-skip`): the whole run, or
    at least one step."""
    return (
        record.verdict == "skipped"
        or bool(skip_findings(record))
        or any(s.skipped for s in record.steps)
    )


def _ran_something(steps: list[StepEvent]) -> bool:
    """Whether any step of the plan ran (the final close alone does not count)."""
    return any(not ev.skipped and ev.op != TEARDOWN_OP for ev in steps)
