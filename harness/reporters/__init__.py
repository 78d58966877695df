"""Report writers: report.json, summary.md, index.html, junit.xml from one `Report`.

Every renderer is a pure function of run records (`render_*` return text);
`write_all` is the only place that touches the file system. `memcycle report
RUN_DIR` re-renders everything from report.json through `write_all`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_all(
    report: Report, out_dir: Path | str, baseline: Report | None = None
) -> dict[str, Path]:
    """Write every format into `out_dir` (created if needed); returns format -> path.

    `baseline`, when given, is an earlier report whose runs fill the tables'
    baseline column (matched by `RunRecord.key`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: render_json(report),
        "markdown": lambda: render_markdown(report, baseline),
        "html": lambda: render_html(report, out.resolve(), baseline),
        "junit": lambda: render_junit(report, baseline),
    }
    paths: dict[str, Path] = {}
    for fmt, render in renderers.items():
        path = out / FILENAMES[fmt]
        _write(path, render())
        paths[fmt] = path
    return paths
