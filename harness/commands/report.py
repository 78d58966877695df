"""`memcycle report RUN_DIR`: re-render a run folder's formats from its report.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from memcycle.errors import UsageError
from memcycle.records import Report

from .base import Command, HelpFormatter

if TYPE_CHECKING:
    pass


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    try:
        report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read report: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a memcycle report: {exc}") from None
    try:
        from memcycle.reporters import write_all  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError("the reporters (harness.reporters.write_all) are not installed") from None
    for fmt, p in write_all(report, path.parent).items():
        print(f"{fmt}: {p}")
    return 0


DESCRIPTION = (
    "Re-render summary.md, index.html and junit.xml of a run folder from its "
    "report.json (after an upgrade, or for a report copied from CI)."
)

EPILOG = """examples:
  memcycle report reports/20260101-120000-abc123/
  memcycle report reports/ci/report.json

exit status:
  0    summary.md, index.html, junit.xml written
  2    the folder or file is not readable or not a memcycle report.json"""


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="reports/<run-id>/ or its report.json")


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_report,
    description=DESCRIPTION,
    epilog=EPILOG,
    formatter_class=HelpFormatter,
)
