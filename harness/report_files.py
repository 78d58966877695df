"""report.json and the formats beside it, as a run folder holds them."""

from __future__ import annotations

import json
from pathlib import Path

from memcycle.atomicfile import write_text_atomic
from memcycle.records import Report


def write_report(report: Report, out: Path, quick: bool = False) -> list[str]:
    """report.json first (atomically: it is what the gate and `memcycle report` read), then
    every format through the reporters (each file atomic, no temporary left behind); `quick`
    (an interrupt) leaves out index.html, whose plots take seconds (`memcycle report` makes it)."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        from memcycle.reporters import write_all
        from memcycle.reporters.json_report import render_json
    except ImportError:
        write_text_atomic(out / "report.json", json.dumps(report.to_dict(), indent=1) + "\n")
        return [str(out / "report.json")]
    write_text_atomic(out / "report.json", render_json(report))
    formats = ("json", "markdown", "junit") if quick else None
    return [str(p) for p in write_all(report, out, formats=formats).values()]
