"""summary.md: per scenario run the cycle table in the reference note's form, then the evidence.

`render_run` is also the text a failing pytest item and a JUnit failure show,
so a reader sees the same table everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from memcycle.evidence import explain, fmt_bytes
from memcycle.records import Report, RunRecord

from .common import (
    by_scenario,
    counts,
    cycle_table,
    fmt_seconds,
    memory_rows,
    outcome,
    quarantine_note,
    run_label,
)
from .text import evidence_lines


def _md_cell(text: str) -> str:
    """Table cells cannot hold pipes or newlines."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "|".join("-" * (len(h) + 2) for h in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _fence(text: str) -> list[str]:
    """A fenced block long enough not to be closed by backticks inside the text."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return [ticks, text, ticks]


def _block(text: str, nested: bool) -> list[str]:
    """A fenced block; under a finding's bullet it is indented to belong to the bullet."""
    fenced = _fence(text)
    return ["    " + x for x in "\n".join(fenced).splitlines()] if nested else fenced


def render_run(
    run: RunRecord,
    runs: Sequence[RunRecord] = (),
    baseline: Report | None = None,
    *,
    memory_table: bool = True,
) -> str:
    """One run: cycle table, verdict, findings with their evidence, exit, memory per cycle."""
    table = cycle_table(run, runs, baseline)
    lines = _table(table.header, [[r.label, r.baseline, r.this_run, r.status] for r in table.rows])
    if run.verdict == "error" and not run.steps:
        lines = ["(no cycle ran: memcycle or the adapter could not build the engine)"]
    elif not table.rows:
        lines.append("")
        lines.append("(no cycle was recorded)")
    lines.append("")
    lines.append(
        f"**Verdict: {run.verdict_text}** (expected {run.expected_verdict}: {outcome(run)}) "
        f"in {fmt_seconds(run.seconds)}, peak {fmt_bytes(run.peak_bytes)}"
    )
    lines += evidence_lines(explain(run), block=_block, bullet="- ")
    if memory_table and run.cycles:
        rows = memory_rows(run)
        lines.append("")
        lines.append("Memory per cycle:")
        lines.append("")
        lines.extend(_table(list(rows[0]), [list(r.values()) for r in rows]))
        if quarantine_note(run):
            lines += ["", quarantine_note(run)]
    if run.memray:
        links = [f"{k}: `{v}`" for k, v in sorted(run.memray.items()) if isinstance(v, str) and v]
        if links:
            lines.append("")
            lines.append("memray: " + ", ".join(links))
    return "\n".join(lines)


def render_markdown(report: Report, baseline: Report | None = None) -> str:
    """The whole summary.md."""
    c = counts(report)
    lines = [
        f"# memcycle report {report.run_id}",
        "",
        f"Created {report.created}. {len(report.runs)} runs: "
        f"{c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped"
        + (
            f", {c['ERROR']} error(s) (memcycle or the adapter could not run them)."
            if c["ERROR"]
            else "."
        ),
    ]
    if report.command:
        lines += ["", "Command: `" + " ".join(report.command) + "`"]
    if report.runs:
        lines += ["", "## Overview", ""]
        lines += _table(
            ["Scenario", "Run", "Expected", "Verdict", "Result", "Time", "Peak"],
            [
                [
                    r.scenario,
                    run_label(r),
                    r.expected_verdict,
                    r.verdict_text,
                    outcome(r),
                    fmt_seconds(r.seconds),
                    fmt_bytes(r.peak_bytes),
                ]
                for r in report.runs
            ],
        )
    for scenario, group in by_scenario(report.runs).items():
        lines += ["", f"## {scenario}"]
        path = group[0][1].scenario_path
        if path:
            lines += ["", f"`{path}`"]
        for _, run in group:
            lines += ["", f"### {run_label(run)}: {run.verdict_text} ({outcome(run)})", ""]
            lines.append(render_run(run, report.runs, baseline))
    return "\n".join(lines) + "\n"
