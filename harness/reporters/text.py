"""Plain text of one run, for machine-read places: JUnit bodies and pytest failure reports.

Same content as `markdown.render_run` (cycle table, verdict, findings with evidence, exit),
but in words and aligned columns: no emoji (CI viewers and pytest-html show empty boxes), no
`**bold**`, no `|---|` rows. `headline` is the one line for a JUnit `message` attribute and a
pytest item's crash line: verdict, cycle, step and what happened. `evidence_lines` lays out
a run's evidence (`memcycle.evidence.explain`) for both line-based formats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memcycle.evidence import EvidenceItem, RunEvidence, explain, fmt_bytes, run_headline
from memcycle.records import Report, RunRecord

from .common import CRASH, FAIL, OK, cycle_table, memory_rows

_WORDS = ((OK, "ok"), (FAIL, "FAIL"), (CRASH, "CRASH"))

# a block of text (a stack, a message) as lines; `nested`: under a finding's bullet
BlockLayout = Callable[[str, bool], list[str]]


def plain(text: str) -> str:
    """A cycle-table cell in words ('FAIL (leak)', 'CRASH (SIGSEGV)')."""
    for mark, word in _WORDS:
        text = text.replace(mark, word)
    return text


def headline(run: RunRecord) -> str:
    """The run's headline (`evidence.run_headline`) as one plain line of at most 400 chars."""
    return " ".join(plain(run_headline(run)).split())[:400]


def _item_lines(item: EvidenceItem, prefix: str, block: BlockLayout, nested: bool) -> list[str]:
    if item.block:
        return [f"{prefix}{item.title}:", *block(item.text, nested)]
    return [f"{prefix}{item.title}: {item.text}"]


def evidence_lines(
    ev: RunEvidence,
    *,
    block: BlockLayout,
    bullet: str = "",
    words: Callable[[str], str] = str,
) -> list[str]:
    """Each finding as '- headline' with its items under it, then how the child ended."""
    lines: list[str] = []
    for fe in ev.findings:
        lines += ["", f"- {words(fe.headline)}"]
        for item in fe.items:
            lines += _item_lines(item, f"  {bullet}", block, True)
    if ev.exit:
        lines.append("")
        for item in ev.exit:
            lines += _item_lines(item, "", block, False)
    return lines


def _indented(text: str, nested: bool) -> list[str]:
    return [f"    {x}" for x in text.splitlines()]


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned plain-text columns under a dashed rule."""
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
            lines += columns(
                table.header,
                [[r.label, plain(r.baseline), plain(r.this_run), r.status] for r in table.rows],
            )
        else:
            lines.append("(no cycle was recorded)")
    lines += [
        "",
        f"verdict {run.verdict}, expected {run.expected_verdict}, "
        f"{run.seconds:.2f} s, peak {fmt_bytes(run.peak_bytes)}",
    ]
    lines += evidence_lines(explain(run), block=_indented, words=plain)
    if memory_table and run.steps and run.cycles:
        rows = memory_rows(run)
        lines += ["", "Memory per cycle:"]
        lines += columns(list(rows[0]), [list(r.values()) for r in rows])
    return "\n".join(lines)
