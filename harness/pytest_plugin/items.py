"""The scenario item: its run (setup phase, so an `error` outcome is an error of the item), the
outcome decision (call phase: expected verdict, skips, --memcycle-fail-on-skip), and how a
memcycle failure is reported (`repr_failure`, one plain crash line and the evidence as body)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import engine_options
from .reports import _RECORDS_KEY, _REPORT_ATTR, _remember, _report_dir

if TYPE_CHECKING:
    from memcycle.records import RunRecord


class MemcycleFailure(Exception):
    """A scenario run whose verdict differs from the expected one."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__(f"verdict {record.verdict}, expected {record.expected_verdict}")
        self.record = record


class InvalidScenarioItem(pytest.Item):
    """A cycle table that does not load: an error of this item, with the file and field."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def setup(self) -> None:
        from memcycle.assertions import MemcycleUsageError

        raise MemcycleUsageError(f"invalid scenario: {self.message}")

    def runtest(self) -> None:  # pragma: no cover - setup always raises
        pass

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"invalid scenario {self.path.name}"


class ScenarioItem(pytest.Item):
    """One scenario on one engine/allocator, in its own child process.

    The run happens in the setup phase, so an `error` outcome (memcycle or the adapter could
    not do its job) is an error of the item; the call phase judges the verdict."""

    def __init__(
        self,
        *,
        engine: str,
        allocator: str,
        scenario_name: str,
        expected: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.allocator = allocator
        self.scenario_name = scenario_name
        self.expected = expected
        self.record: RunRecord | None = None

    def setup(self) -> None:
        from memcycle.assertions import MemcycleError
        from memcycle.reporters.text import headline
        from memcycle.runner import run_one

        record = run_one(
            self.path,
            engine=self.engine,
            allocator=self.allocator,
            memray=not self.config.getoption("memcycle_no_memray"),
            timeout=self.config.getoption("memcycle_timeout"),
            out_dir=_report_dir(self.config),
            options=engine_options(self.config),
        )
        self.record = record
        _remember(self, record)
        self.user_properties.append(("memcycle_verdict", record.verdict))
        if record.verdict == "error":
            raise MemcycleError(headline(record), record)

    def runtest(self) -> None:
        record = self.record
        assert record is not None  # setup ran it
        from memcycle.checks import skip_findings, was_skipped
        from memcycle.evidence import skip_reason

        for f in skip_findings(record) if record.verdict != "skipped" else []:
            # judged on what ran; the skipped steps stay visible (-rP, JUnit properties)
            self.user_properties.append(("memcycle_skipped_steps", f.summary))
            self.add_report_section("call", "memcycle skipped steps", f.summary)
        # with --memcycle-fail-on-skip a skip fails here; an unexpected verdict fails below
        if (
            self.config.getoption("memcycle_fail_on_skip", False)
            and was_skipped(record)
            and (record.passed or record.verdict == "skipped")
        ):
            pytest.fail(f"--memcycle-fail-on-skip: {skip_reason(record)}", pytrace=False)
        if record.verdict == "skipped" and record.expected_verdict != "skipped":
            pytest.skip(skip_reason(record))
        if not record.passed:
            raise MemcycleFailure(record)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> Any:
        if _record_of(excinfo.value) is not None:
            return _record_longrepr(self, excinfo.value)
        if _is_user_error(excinfo.value):
            return f"memcycle: {type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def _traceback_filter(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        """A harness error shows the harness frames only, not pytest's and pluggy's."""
        tb = excinfo.traceback
        # by directory: a file of the user's or ours named *_pytest* is not pytest's
        kept = tb.filter(lambda e: not {"_pytest", "pluggy"} & set(Path(str(e.path)).parts))
        return kept or tb

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.scenario_name} [{self.engine}/{self.allocator}]"


def _is_user_error(exc: BaseException) -> bool:
    """An engine spec or scenario problem: a one-line message, not a harness traceback."""
    try:
        from memcycle.assertions import MemcycleUsageError
        from memcycle.engines.base import EngineError
        from memcycle.scenario import ScenarioError
    except ImportError:  # pragma: no cover - the harness is part of this package
        return False
    return isinstance(exc, EngineError | ScenarioError | MemcycleUsageError)


def _record_of(exc: BaseException) -> RunRecord | None:
    """The run record a memcycle exception carries (failure, error or assertion)."""
    from memcycle.assertions import MemcycleAssertionError, MemcycleError

    if isinstance(exc, MemcycleFailure | MemcycleError | MemcycleAssertionError):
        return exc.record
    return None


def _one_line(exc: BaseException) -> str:
    """The crash line of a memcycle exception: verdict, cycle, step, what happened."""
    from memcycle.assertions import MemcycleAssertionError
    from memcycle.reporters.text import headline

    record = _record_of(exc)
    if isinstance(exc, MemcycleAssertionError):
        return exc.headline
    assert record is not None
    return f"memcycle: {record.scenario} on {record.engine}/{record.allocator}: {headline(record)}"


def _record_longrepr(item: pytest.Item, exc: BaseException) -> Any:
    """A failure report whose crash line (JUnit `message`, `-ra` summary) is one plain line
    and whose body is the plain-text cycle table and evidence (kept through xdist)."""
    from memcycle.reporters.text import render_run_text

    record = _record_of(exc)
    assert record is not None
    body = f"memcycle: {record.scenario} on {record.engine}/{record.allocator}\n"
    body += f"{render_run_text(record)}\n"
    try:
        from _pytest._code.code import (
            ExceptionChainRepr,
            ReprEntryNative,
            ReprFileLocation,
            ReprTraceback,
        )
    except ImportError:  # pragma: no cover - pytest internals moved: the text alone
        return body
    path, line, _ = item.reportinfo()
    crash = ReprFileLocation(str(path), (line or 0) + 1, _one_line(exc))
    tb = ReprTraceback([ReprEntryNative([body])], None, "native")
    return ExceptionChainRepr([(tb, crash, None)])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the item's new run records to this phase's report (plain dicts, so xdist can
    send them); give a memcycle exception one plain crash line (the JUnit `message`)."""
    report = yield
    records = item.stash.get(_RECORDS_KEY, [])
    if records:
        setattr(report, _REPORT_ATTR, [r.to_dict() for r in records])
        item.stash[_RECORDS_KEY] = []
    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is not None and _record_of(exc) is not None and report.failed:
        if isinstance(item, ScenarioItem):
            report.longrepr = _record_longrepr(item, exc)
        else:  # a Python test (fixture or assertion helper): keep its traceback
            crash = getattr(report.longrepr, "reprcrash", None)
            if crash is not None:
                crash.message = _one_line(exc)
    elif (
        exc is not None
        and _is_user_error(exc)
        and report.failed
        and isinstance(item, ScenarioItem | InvalidScenarioItem)
    ):
        # no harness traceback for a bad file or spec (a Python test keeps its own
        # traceback: the exception is one line already)
        report.longrepr = f"memcycle: {exc}".splitlines()[0]
    return report
