"""A run folder's report files: written once per run, read back through one function.

`write_report` writes report.json (what the gate, `memcycle report`, `shrink` and `merge`
read) and then the other formats, each once, through `reporters.write_all` (atomic files, no
temporary left behind). report.json goes first and on its own: a renderer that fails (the
HTML plots, say) must not cost the record of the runs. `load_report` is the one reader; its
errors are `ReportError`, a `UsageError` (one line, exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memcycle.errors import UsageError
from memcycle.records import Report
from memcycle.reporters import FILENAMES, write_all

# what an interrupted run writes: index.html, whose plots take seconds, is left to
# `memcycle report`
QUICK_FORMATS = ("json", "markdown", "junit")


class ReportError(UsageError):
    """A report.json (or another JSON input) missing, unreadable or not what memcycle wrote."""


def write_report(
    report: Report, out: Path, formats: Sequence[str] | None = None
) -> dict[str, Path]:
    """report.json, then every other format of `formats` (default all); format -> path."""
    wanted = list(FILENAMES) if formats is None else [f for f in FILENAMES if f in formats]
    written: dict[str, Path] = {}
    if "json" in wanted:
        written.update(write_all(report, out, formats=("json",)))
    rest = [f for f in wanted if f != "json"]
    if rest:
        written.update(write_all(report, out, formats=rest))
    return {f: written[f] for f in wanted}


def load_json(path: Path, what: str, hint: str = "") -> Any:
    """The JSON in `path`; `what` names the file in the error ('report', 'baseline')."""
    if not path.is_file():
        raise ReportError(f"{what} not found: {path}{hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{what} {path} is not valid JSON: {exc}") from exc


def load_report(run_dir: Path) -> Report:
    """The report of a run directory (or a report.json path)."""
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    data = load_json(path, "report")
    try:
        return Report.from_dict(data)  # names a JSON list or an old schema itself
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"report {path} is not a memcycle report.json: {exc}") from exc
