"""Records to reports: each item's run records ride on its test reports (plain dicts, so they
survive pytest-xdist), and the controller's `RecordCollector` writes report.json, summary.md,
index.html and junit.xml for `--memcycle-report DIR` at the end of the session."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from memcycle.records import RunRecord

_REPORT_ATTR = "memcycle_records"  # attribute carried by TestReport (survives xdist)
_RECORDS_KEY = pytest.StashKey[list]()  # the RunRecords an item produced


def _report_dir(config: pytest.Config) -> Path | None:
    d = config.getoption("memcycle_report", None)
    return Path(d).resolve() if d else None


def _remember(item: pytest.Item, record: RunRecord) -> None:
    records = item.stash.setdefault(_RECORDS_KEY, [])
    records.append(record)


class RecordCollector:
    """Controller side: gathers every record from the test reports, writes the reports."""

    def __init__(self, out_dir: Path, config: pytest.Config) -> None:
        self.out_dir = out_dir
        self.config = config
        self.records: list[dict[str, Any]] = []
        self.started = datetime.now(UTC)
        self.written: dict[str, Path] = {}
        self.error: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.records.extend(getattr(report, _REPORT_ATTR, None) or [])

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from memcycle.records import Report, RunRecord
        from memcycle.reporters import write_all

        runs = sorted(
            (RunRecord.from_dict(d) for d in self.records),
            key=lambda r: (r.scenario_path, r.scenario, r.engine, r.allocator, r.faults),
        )
        report = Report(
            run_id=f"pytest-{self.started:%Y%m%d-%H%M%S}",
            created=self.started.isoformat(timespec="seconds"),
            runs=runs,
            host={
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "workers": self.config.getoption("numprocesses", None) or 1,
            },
            command=["pytest", *self.config.invocation_params.args],
        )
        try:
            self.written = write_all(report, self.out_dir)
        except Exception as exc:  # a report that cannot be rendered must not hide the results
            from memcycle.reporters import render_json

            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "report.json").write_text(render_json(report), encoding="utf-8")
            self.error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.error:
            terminalreporter.write_line(
                f"memcycle: only report.json written to {self.out_dir}; rendering failed: "
                f"{self.error}",
                red=True,
            )
        if self.written:
            terminalreporter.write_line(
                f"memcycle: {len(self.records)} runs reported in {self.out_dir} "
                f"({', '.join(p.name for p in self.written.values())})"
            )
