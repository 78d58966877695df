"""index.html: one self-contained page (inline CSS, plots as data: URIs, no external assets).

For every run: the cycle table, a memory-per-cycle plot, relative links to the
memray flamegraphs named in `RunRecord.memray`, and the evidence. Every piece
of text from a record is escaped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from memcycle.evidence import EvidenceItem, explain, fmt_bytes
from memcycle.records import Report, RunRecord

from .common import (
    CRASH,
    FAIL,
    OK,
    by_scenario,
    counts,
    cycle_table,
    fmt_seconds,
    memory_rows,
    outcome,
    quarantine_note,
    run_anchor,
    run_label,
)
from .plots import memory_plot_png, png_data_uri

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:2px solid #cbd5e0;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:0 0 .6rem 0}
.meta{color:#4a5568;font-size:.9rem}
section.run{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:1rem;margin:1rem 0}
section.run.fail{border-left:5px solid #c53030}section.run.pass{border-left:5px solid #2f855a}
section.run.skip{border-left:5px solid #a0aec0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #cbd5e0;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#edf2f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:3px;padding:0 .45rem;font-size:.8rem;font-weight:600;color:#fff}
.PASS{background:#2f855a}.FAIL{background:#c53030}.SKIP{background:#718096}.ERROR{background:#b7791f}
.verdict{font-weight:600}
pre{background:#1a202c;color:#e2e8f0;padding:.6rem;border-radius:4px;overflow-x:auto;font-size:.8rem;max-height:24rem}
img.plot{max-width:100%;height:auto;display:block;margin:.5rem 0}
ul.findings{padding-left:1.2rem}ul.findings li{margin:.4rem 0}
dl.evidence{margin:.3rem 0 .3rem .5rem}dl.evidence dt{font-weight:600;font-size:.85rem;margin-top:.3rem}
dl.evidence dd{margin:0 0 0 .8rem;font-size:.85rem}
details summary{cursor:pointer;color:#2b6cb0;font-size:.9rem}
.links a{margin-right:1rem}
.mark{font-weight:700}.mark.ok{color:#2f855a}.mark.bad{color:#c53030}.mark.crash{color:#c05621}
"""


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _href(path: str, base_dir: Path | None) -> str:
    """A relative URL to a file named in a record (records may hold absolute paths)."""
    p = Path(path)
    if p.is_absolute() and base_dir is not None:
        try:
            rel = os.path.relpath(p, base_dir)
        except ValueError:  # another drive on Windows
            rel = str(p)
    else:
        rel = str(p)
    return quote(Path(rel).as_posix(), safe="/._-~")


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] = frozenset()
) -> str:
    out = [
        "<table>",
        "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>",
    ]
    out.append("<tbody>")
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _mark(text: str) -> str:
    """A cycle cell with its mark styled: plain symbols every font has (✔ ✘ ⚡), not
    emoji that need a colour-emoji font; the note's emoji stay in the title."""
    for emoji, symbol, cls in ((OK, "✔", "ok"), (FAIL, "✘", "bad"), (CRASH, "⚡", "crash")):
        if text.startswith(emoji):
            rest = text[len(emoji) :]
            return f'<span class="mark {cls}" title="{_e(emoji)}">{symbol}</span>{_e(rest)}'
    return _e(text)


def _evidence_html(items: Sequence[EvidenceItem]) -> str:
    if not items:
        return ""
    parts = ['<dl class="evidence">']
    for item in items:
        parts.append(f"<dt>{_e(item.title)}</dt>")
        if item.block:
            parts.append(f"<dd><pre>{_e(item.text)}</pre></dd>")
        else:
            parts.append(f"<dd>{_e(item.text)}</dd>")
    parts.append("</dl>")
    return "\n".join(parts)


_MEMRAY_LINKS = (
    ("flamegraph", "memray flamegraph"),
    ("leaks_flamegraph", "memray leaks flamegraph"),
    ("capture", "memray capture (.bin)"),
)
_ONLINE = "_online"  # a flamegraph page that loads its scripts from a CDN (see analysis)


def _stack_rows(entries: Sequence[Any]) -> list[list[str]]:
    rows = []
    for entry in entries[:10]:
        if not isinstance(entry, dict):
            rows.append([_e(entry), "", ""])
            continue
        size = entry.get("bytes", entry.get("size"))
        where = entry.get("stack", entry.get("location", ""))
        if isinstance(where, list):
            where = "\n".join(str(x) for x in where)
        label = entry.get("label")
        if label:  # a block the allocator's ledger holds live
            where = f"'{label}' (allocator ledger, newest block allocated at)\n{where}"
        rows.append(
            [
                _e(fmt_bytes(size) if isinstance(size, int | float) else size or ""),
                _e(entry.get("blocks", entry.get("count", ""))),
                f"<pre>{_e(where)}</pre>" if "\n" in str(where) else _e(where),
            ]
        )
    return rows


def _stacks_table(title: str, entries: Any, open_: bool = False) -> list[str]:
    if not isinstance(entries, list) or not entries:
        return []
    return [
        f"<details{' open' if open_ else ''}><summary>{_e(title)}</summary>",
        _table(["Bytes", "Blocks", "Where"], _stack_rows(entries), {0, 1}),
        "</details>",
    ]


def _flamegraph_links(run: RunRecord, base_dir: Path | None) -> list[str]:
    memray = run.memray or {}
    order = list(_MEMRAY_LINKS)
    if run.verdict == "leak":  # the leaks view is the one that shows the leak
        order.sort(key=lambda kt: kt[0] != "leaks_flamegraph")
    links = []
    online = False
    for key, title in order:
        for k, suffix in ((key, ""), (key + _ONLINE, " (needs network)")):
            path = memray.get(k)
            if isinstance(path, str) and path:
                online |= bool(suffix)
                strong = run.verdict == "leak" and key == "leaks_flamegraph"
                text = f"<strong>{_e(title)}</strong>" if strong else _e(title)
                links.append(f'<a href="{_e(_href(path, base_dir))}">{text}</a>{_e(suffix)}')
    pages = any(memray.get(k) or memray.get(k + _ONLINE) for k, _ in _MEMRAY_LINKS[:2])
    out = ['<p class="links">' + "".join(links) + "</p>"] if links else []
    if online:
        out.append(
            '<p class="meta">These flamegraph pages load their scripts from a CDN '
            "(this memray cannot inline them): offline they stay blank. The tables below "
            "list the same stacks.</p>"
        )
    elif pages:
        out.append(
            '<p class="meta">Flamegraph pages are self-contained (scripts inline): they work '
            "offline. The tables below list the largest stacks too.</p>"
        )
    elif memray.get("capture"):
        out.append(
            '<p class="meta">No flamegraph for this run: they are rendered for runs with an '
            "unexpected verdict (<code>--flamegraphs all</code> renders every run; "
            "<code>python -m memray flamegraph --no-web CAPTURE</code> renders one).</p>"
        )
    return out


def _memray_html(run: RunRecord, base_dir: Path | None) -> str:
    if not run.memray:
        return ""
    memray = run.memray
    out = _flamegraph_links(run, base_dir)
    cache = memray.get("cache") or {}
    apart = " (the allocator's blocks from its ledger, quarantine excluded)" if cache else ""
    failed = not run.passed or run.verdict == "leak"
    out += _stacks_table(
        "memray: what grew since the warm-up cycle" + apart, memray.get("top_growth"), failed
    )
    top = memray.get("top_leaks") or memray.get("top_live")
    out += _stacks_table("memray: largest live allocations at the end" + apart, top)
    if cache:
        out.append(
            f'<p class="meta">Allocator quarantine at the end: {_e(fmt_bytes(cache.get("bytes")))} '
            "of freed blocks kept poisoned (not live, not a leak). memray sees the "
            f"allocator's blocks as {_e(fmt_bytes(cache.get('allocator_bytes')))}: "
            f"{_e(fmt_bytes(cache.get('live_bytes')))} live (ledger) plus the quarantine "
            "and the guard zones.</p>"
        )
        out += _stacks_table(
            "memray: the allocator's blocks, live and quarantined", cache.get("stacks")
        )
    return "\n".join(out)


def _run_html(
    run: RunRecord,
    index: int,
    runs: Sequence[RunRecord],
    baseline: Report | None,
    base_dir: Path | None,
) -> str:
    result = outcome(run)
    table = cycle_table(run, runs, baseline)
    parts = [
        f'<section class="run {result.lower()}" id="{_e(run_anchor(run, index))}">',
        f'<h3><span class="badge {result}">{result}</span> {_e(run_label(run))}</h3>',
        f'<p class="meta">verdict <span class="verdict">{_e(run.verdict_text)}</span>, expected '
        f"{_e(run.expected_verdict)}; {_e(fmt_seconds(run.seconds))}; peak "
        f"{_e(fmt_bytes(run.peak_bytes))}</p>",
    ]
    if table.rows:
        parts.append(
            _table(
                table.header,
                [
                    [_e(r.label), _mark(r.baseline), _mark(r.this_run), _e(r.status)]
                    for r in table.rows
                ],
                {0},
            )
        )
    else:
        parts.append("<p>No cycle was recorded.</p>")
    ev = explain(run)
    if ev.findings:
        parts.append('<ul class="findings">')
        for fe in ev.findings:
            parts.append(f"<li><strong>{_e(fe.headline)}</strong>")
            parts.append(_evidence_html(fe.items))
            parts.append("</li>")
        parts.append("</ul>")
    parts.append(_evidence_html(ev.exit))
    png = memory_plot_png(run)
    if png is not None:
        parts.append(
            f'<img class="plot" alt="memory per cycle: {_e(run_label(run))}" '
            f'src="{png_data_uri(png)}">'
        )
    parts.append(_memray_html(run, base_dir))
    if run.cycles:
        rows = memory_rows(run)
        header = list(rows[0])
        parts.append("<details><summary>Memory per cycle (numbers)</summary>")
        parts.append(
            _table(header, [[_e(v) for v in r.values()] for r in rows], set(range(len(header))))
        )
        if quarantine_note(run):
            parts.append(f'<p class="meta">{_e(quarantine_note(run))}</p>')
        parts.append("</details>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render_html(
    report: Report, base_dir: Path | None = None, baseline: Report | None = None
) -> str:
    """The whole index.html; `base_dir` is where it will be written (for relative links)."""
    c = counts(report)
    title = f"memcycle report {report.run_id}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">created {_e(report.created)} · {len(report.runs)} runs: '
        f'<span class="badge PASS">{c["PASS"]} passed</span> '
        f'<span class="badge FAIL">{c["FAIL"]} failed</span> '
        f'<span class="badge SKIP">{c["SKIP"]} skipped</span>'
        + (f' <span class="badge ERROR">{c["ERROR"]} error(s)</span>' if c["ERROR"] else "")
        + "</p>",
    ]
    if report.command:
        body.append(f'<p class="meta">command: <code>{_e(" ".join(report.command))}</code></p>')
    if report.host:
        host = ", ".join(f"{k} {v}" for k, v in sorted(report.host.items()))
        body.append(f'<p class="meta">host: {_e(host)}</p>')
    if report.runs:
        rows = []
        for i, r in enumerate(report.runs):
            res = outcome(r)
            rows.append(
                [
                    _e(r.scenario),
                    f'<a href="#{_e(run_anchor(r, i))}">{_e(run_label(r))}</a>',
                    _e(r.expected_verdict),
                    _e(r.verdict_text),
                    f'<span class="badge {res}">{res}</span>',
                    _e(fmt_seconds(r.seconds)),
                    _e(fmt_bytes(r.peak_bytes)),
                ]
            )
        body.append("<h2>Overview</h2>")
        body.append(
            _table(
                ["Scenario", "Run", "Expected", "Verdict", "Result", "Time", "Peak"], rows, {5, 6}
            )
        )
    for scenario, group in by_scenario(report.runs).items():
        body.append(f"<h2>{_e(scenario)}</h2>")
        path = group[0][1].scenario_path
        if path:
            body.append(f'<p class="meta"><code>{_e(path)}</code></p>')
        for i, run in group:
            body.append(_run_html(run, i, report.runs, baseline, base_dir))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )
