"""The matrix as text for the terminal and as a Markdown section for summary.md."""

from __future__ import annotations

from collections.abc import Sequence

from memcycle.evidence import evidence_line, verdict_finding_at

from .judge import Outcome
from .plan import Case


def axis(case: Case) -> str:
    """The matrix's allocator column: the allocator, and the tool when there is one."""
    return case.allocator if case.mode == "plain" else f"{case.allocator}+{case.mode}"


def _row(cols: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)).rstrip()


def format_matrix(outcomes: Sequence[Outcome], missing: Sequence[str] = ()) -> str:
    """Plain text: fault x allocator -> verdict, where, evidence; then the clean engine."""
    lines: list[str] = []
    head = ("fault", "allocator", "verdict", "expected", "ok", "cycle.step", "evidence")
    faults = [o for o in outcomes if o.case.fault]
    rows = [
        (
            o.case.fault or "",
            axis(o.case),
            o.record.verdict,
            o.case.expected,
            "PASS" if o.ok else "FAIL",
            verdict_finding_at(o.record),
            evidence_line(o.record) + (f"  <- {o.remarks()}" if o.remarks() else ""),
        )
        for o in faults
    ]
    rows += [(name, "-", "-", "-", "FAIL", "-", "no scenario names this fault") for name in missing]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head[:-1])]
    lines.append(_row(head, [*widths, 0]))
    lines.extend(_row(r, [*widths, 0]) for r in rows)
    clean = [o for o in outcomes if not o.case.fault]
    if clean:
        lines.append("")
        ch = ("clean engine: scenario", "allocator", "verdict", "ok", "evidence")
        crows = [
            (
                o.case.scenario.name,
                axis(o.case),
                o.record.verdict,
                "PASS" if o.ok else "FAIL",
                evidence_line(o.record) if o.ok else "; ".join(o.problems),
            )
            for o in clean
        ]
        cw = [max([len(h)] + [len(r[i]) for r in crows]) for i, h in enumerate(ch[:-1])]
        lines.append(_row(ch, [*cw, 0]))
        lines.extend(_row(r, [*cw, 0]) for r in crows)
    return "\n".join(lines)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def matrix_markdown(outcomes: Sequence[Outcome], missing: Sequence[str] = ()) -> str:
    """The same matrix as a Markdown section for summary.md."""
    lines = [
        "## Fault matrix",
        "",
        "| fault | allocator | verdict | expected | ok | cycle.step | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if not o.case.fault:
            continue
        ev = evidence_line(o.record) + (f" ← {o.remarks()}" if o.remarks() else "")
        lines.append(
            f"| {o.case.fault} | {axis(o.case)} | {o.record.verdict} | {o.case.expected} | "
            f"{'✅' if o.ok else '❌'} | {verdict_finding_at(o.record)} | {_md_escape(ev)} |"
        )
    for name in missing:
        lines.append(f"| {name} | - | - | - | ❌ | - | no scenario names this fault |")
    clean = [o for o in outcomes if not o.case.fault]
    if clean:
        lines += [
            "",
            "### Clean engine (no fault)",
            "",
            "| scenario | allocator | verdict | ok |",
            "|---|---|---|---|",
        ]
        for o in clean:
            extra = "" if o.ok else " ← " + _md_escape("; ".join(o.problems))
            lines.append(
                f"| {o.case.scenario.name} | {axis(o.case)} | {o.record.verdict}{extra} | "
                f"{'✅' if o.ok else '❌'} |"
            )
    return "\n".join(lines) + "\n"
