"""Report writers: report.json, summary.md, index.html, junit.xml from one `Report`.

Every renderer is a pure function of run records (`render_*` return text);
`write_all` is the only place that touches the file system. `memcycle report
RUN_DIR` re-renders everything from report.json through `write_all`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from memcycle.atomicfile import write_text_atomic, write_texts_atomic
from memcycle.records import Report

from .html import render_html
from .json_report import render_json
from .junit import render_junit
from .markdown import render_markdown, render_run

FILENAMES: dict[str, str] = {
    "json": "report.json",
    "markdown": "summary.md",
    "html": "index.html",
    "junit": "junit.xml",
}

__all__ = [
    "FILENAMES",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_run",
    "write_all",
]


def _write(path: Path, text: str) -> None:
    """Write through a temporary file so a reader never sees half a report."""
    write_text_atomic(path, text)


def _interrupted_note(report: Report) -> str:
    left = ", ".join(f"`{k}`" for k in report.not_done) or "none"
    return (
        f"> **Interrupted**: only the {len(report.runs)} run(s) that finished are reported; "
        f"not done: {left}.\n"
    )


def _mark_interrupted(report: Report, markdown: str) -> str:
    """summary.md of an interrupted run says so right under its title."""
    if not report.interrupted:
        return markdown
    head, sep, rest = markdown.partition("\n")
    if head.startswith("#"):
        return f"{head}\n\n{_interrupted_note(report)}{sep}{rest}"
    return f"{_interrupted_note(report)}\n{markdown}"


def write_all(
    report: Report,
    out_dir: Path | str,
    baseline: Report | None = None,
    formats: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write every format into `out_dir` (created if needed); returns format -> path.

    `baseline`, when given, is an earlier report whose runs fill the tables'
    baseline column (matched by `RunRecord.key`). Everything is rendered first and written
    all at once through temporary files (`memcycle.atomicfile`): a failure leaves the
    previous files whole and no temporary behind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: render_json(report),
        "markdown": lambda: _mark_interrupted(report, render_markdown(report, baseline)),
        "html": lambda: render_html(report, out.resolve(), baseline),
        "junit": lambda: render_junit(report, baseline),
    }
    if formats is not None:  # e.g. an interrupted run: the quick formats, no plots
        renderers = {fmt: r for fmt, r in renderers.items() if fmt in formats}
    paths = {fmt: out / FILENAMES[fmt] for fmt in renderers}
    write_texts_atomic({paths[fmt]: render() for fmt, render in renderers.items()})
    return paths
