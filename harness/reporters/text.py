"""Plain text of one run, for machine-read places: JUnit bodies and pytest failure reports.

Same content as `markdown.render_run` (cycle table, verdict, findings with evidence, exit),
but in words and aligned columns: no emoji (CI viewers and pytest-html show empty boxes), no
`**bold**`, no `|---|` rows. `headline` is the one line for a JUnit `message` attribute and a
pytest item's crash line: verdict, cycle, step and what happened.
"""

from __future__ import annotations

from collections.abc import Sequence

from memcycle.records import Finding, Report, RunRecord

from .common import (
    CRASH,
    FAIL,
    OK,
    cycle_table,
    finding_headline,
    fmt_bytes,
    memory_rows,
    run_evidence,
)

_WORDS = ((OK, "ok"), (FAIL, "FAIL"), (CRASH, "CRASH"))


def plain(text: str) -> str:
    """A cycle-table cell in words ('FAIL (leak)', 'CRASH (SIGSEGV)')."""
    for mark, word in _WORDS:
        text = text.replace(mark, word)
    return text


def _place(f: Finding) -> str:
    where = ", ".join(
        f"{k} {v}" for k, v in (("cycle", f.cycle), ("step", f.step)) if v is not None
    )
    if f.op and where:
        where += f" ({f.op})"
    elif f.op:
        where = f"op {f.op}"
    return f" at {where}" if where else ""


def headline(run: RunRecord) -> str:
    """One line: 'ERROR at op setup: engine setup failed: ...' or
    'verdict crash (expected clean) at cycle 2, step 0 (insert): SIGSEGV in ...'."""
    relevant = [f for f in run.findings if f.verdict == run.verdict] or run.findings
    first = relevant[0] if relevant else None
    place = _place(first) if first is not None else ""
    if run.verdict == "error":
        cause = first.summary if first is not None else "memcycle could not run the scenario"
        line = f"ERROR{place}: {cause}"
    else:
        line = f"verdict {run.verdict_text} (expected {run.expected_verdict}){place}"
        if first is not None and first.summary:
            line += f": {first.summary}"
    return " ".join(plain(line).split())[:400]


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    out += [fmt.format(*(str(c) for c in r)).rstrip() for r in rows]
    return out


def render_run_text(
    run: RunRecord,
    runs: Sequence[RunRecord] = (),
    baseline: Report | None = None,
    *,
    memory_table: bool = True,
) -> str:
    """The whole run as plain text (see the module doc)."""
    lines = [headline(run), ""]
    if run.verdict == "error" and not run.steps:
        lines.append("No cycle ran: memcycle or the adapter could not build the engine.")
    else:
        table = cycle_table(run, runs, baseline)
        if table.rows:
            lines += _columns(
                ["Cycle", table.baseline_name, "this run", "Status"],
                [[r.label, plain(r.baseline), plain(r.this_run), r.status] for r in table.rows],
            )
        else:
            lines.append("(no cycle was recorded)")
    lines += [
        "",
        f"verdict {run.verdict}, expected {run.expected_verdict}, "
        f"{run.seconds:.2f} s, peak {fmt_bytes(run.peak_bytes)}",
    ]
    findings, exit_part = run_evidence(run)
    for f, items in findings:
        lines += ["", f"- {plain(finding_headline(f))}"]
        for item in items:
            if item.block:
                lines.append(f"  {item.title}:")
                lines.extend(f"    {x}" for x in item.text.splitlines())
            else:
                lines.append(f"  {item.title}: {item.text}")
    if exit_part:
        lines.append("")
        for item in exit_part:
            if item.block:
                lines.append(f"{item.title}:")
                lines.extend(f"    {x}" for x in item.text.splitlines())
            else:
                lines.append(f"{item.title}: {item.text}")
    if memory_table and run.steps and run.cycles:
        rows = memory_rows(run)
        lines += ["", "Memory per cycle:"]
        lines += _columns(list(rows[0]), [list(r.values()) for r in rows])
    return "\n".join(lines)
