"""What a Python test says about a memcycle run: assertion helpers and memcycle's exceptions.

`assert_clean(record)` / `assert_verdict(record, "leak")` fail with the run's headline on the
first line (verdict, cycle, step, what happened: the one line CI shows as the JUnit message)
and the cycle table with the evidence below it, in plain text. `MemcycleError` is the `error`
outcome (memcycle or the adapter could not do its job: never an engine verdict), and
`MemcycleUsageError` a bad argument (engine, allocator, fault, scenario) caught before anything
runs. Import-light: the reporters are imported only when an assertion fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import RunRecord


class MemcycleError(Exception):
    """A run whose outcome is `error`: the engine could not be built or driven (see `record`)."""

    def __init__(self, message: str, record: RunRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class MemcycleUsageError(MemcycleError, ValueError):
    """A bad argument (engine, allocator, fault, scenario, option): nothing was run."""


class MemcycleAssertionError(AssertionError):
    """A run's verdict is not the one the test asserted; the message carries the evidence."""

    def __init__(self, record: RunRecord, expected: str) -> None:
        from .reporters.text import headline, render_run_text

        self.record = record
        self.expected = expected
        self.headline = (
            f"memcycle: {record.scenario} on {record.engine}/{record.allocator}: expected "
            f"{expected}, got {headline(record)}"
        )
        super().__init__(f"{self.headline}\n\n{render_run_text(record)}")


def assert_verdict(record: RunRecord, expected: str) -> None:
    """Fail (MemcycleAssertionError, showing the cycle table and evidence) unless the run's
    verdict is `expected`. An `error` run fails every assertion: it tested nothing."""
    __tracebackhide__ = True
    if record.verdict != expected or record.verdict == "error":
        raise MemcycleAssertionError(record, expected)


def assert_clean(record: RunRecord) -> None:
    """`assert_verdict(record, "clean")`: a skipped or partly skipped run is not clean."""
    __tracebackhide__ = True
    assert_verdict(record, "clean")


__all__ = [
    "MemcycleAssertionError",
    "MemcycleError",
    "MemcycleUsageError",
    "assert_clean",
    "assert_verdict",
]
