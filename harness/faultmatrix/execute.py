"""Running the matrix's cases in children and writing their reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memcycle.batch import run_many
from memcycle.records import Report
from memcycle.runner import RunSpec

from .judge import Outcome, judge_case
from .plan import Case


def run_cases(
    cases: Sequence[Case],
    out: Path,
    *,
    jobs: int = 1,
    memray: bool = True,
    timeout: float | None = None,
    progress: Any = None,
    command: list[str] | None = None,
) -> tuple[Report, list[Outcome]]:
    """Run every case in its own child and judge it."""
    todo = [
        RunSpec(
            c.scenario_to_run(),
            engine=c.engine,
            allocator=c.allocator,
            # under a tool the tool judges leaks; memray would only slow it (valgrind: 3x)
            memray=memray and c.mode == "plain",
            timeout=timeout,
            expected=c.expected,
            sanitizer="asan" if c.mode == "asan" else None,
            valgrind=c.mode == "valgrind",
        )
        for c in cases
    ]
    report = run_many(todo, out, jobs=jobs, progress=progress, command=command)
    outcomes = [judge_case(c, r) for c, r in zip(cases, report.runs, strict=True)]
    return report, outcomes


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + text)


def write_reports(report: Report, out: Path, sections: Sequence[str]) -> dict[str, Path]:
    """write_all's formats, then our sections appended to summary.md."""
    from memcycle.reporters import write_all

    paths = write_all(report, out)
    md = paths.get("markdown", out / "summary.md")
    for s in sections:
        _append(md, s)
    return paths
