"""pytest plugin (entry point `memcycle`): scenario files as test items.

`pytest scenarios/` collects each cycle table (*.toml) as one item per engine
× allocator (`--memcycle-engine`, repeatable, default the scenario's own engine, else refimpl;
`--memcycle-allocator`, repeatable, default checked) and runs it through
`harness.runner.run_one`, in its own child process like `memcycle run`. A
failure shows the cycle table and the evidence, not a traceback of the
harness. `--memcycle-report DIR` writes report.json, summary.md, index.html
and junit.xml at the end of the session (with pytest-xdist too: each record
travels to the controller on its test report). The `memcycle_run` fixture runs
an inline scenario from a Python test and returns the RunRecord.

Scenario files are collected only from paths given on the command line, never
from `testpaths` (so the project's plain `pytest` does not run the suite), and
only .toml files that are cycle tables (pyproject.toml is not). Like
`memcycle run`, a `faults/` sub-directory is skipped unless named directly.

This module must stay importable with nothing but pytest: everything from the
harness is imported inside the functions that need it.
"""

from __future__ import annotations

import os
import platform
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# the writer lives beside the parser; re-exported here for the fixture and its users
from memcycle.scenario_toml import scenario_toml

if TYPE_CHECKING:
    from memcycle.records import RunRecord

DEFAULT_ENGINE = "refimpl"
DEFAULT_ALLOCATOR = "checked"
# engines whose allocator can be chosen; any other engine runs once, on "native"
_ALLOCATOR_ENGINES = ("refimpl", "refimpl-global")
_REPORT_ATTR = "memcycle_records"  # attribute carried by TestReport (survives xdist)
_COLLECTOR_NAME = "memcycle-collector"
_RECORDS_KEY = pytest.StashKey[list]()  # the RunRecords an item produced


# --- options ----------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memcycle", "memcycle scenario runs")
    group.addoption(
        "--memcycle-engine",
        action="append",
        default=None,
        metavar="ENGINE",
        help="engine to run each scenario on (repeatable; built-in name or "
        f"package.module:factory; default: the scenario's own engine, else {DEFAULT_ENGINE})",
    )
    group.addoption(
        "--memcycle-allocator",
        action="append",
        default=None,
        metavar="NAME",
        help=f"refimpl allocator: numpy, checked, raw (repeatable; default {DEFAULT_ALLOCATOR})",
    )
    group.addoption(
        "--memcycle-report",
        default=None,
        metavar="DIR",
        help="write report.json, summary.md, index.html and junit.xml into DIR at the end",
    )
    group.addoption(
        "--memcycle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="kill a scenario's child process after this long (verdict timeout)",
    )
    group.addoption(
        "--memcycle-no-memray",
        action="store_true",
        default=False,
        help="run without the memray capture (faster; no leaked-bytes column, no flamegraphs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "memcycle: a memcycle scenario run (set on every collected scenario item)"
    )
    report_dir = config.getoption("memcycle_report", None)
    if report_dir and not hasattr(config, "workerinput"):
        # only the controller writes reports; workers send their records along
        config.pluginmanager.register(RecordCollector(Path(report_dir), config), _COLLECTOR_NAME)


def _engines(config: pytest.Config, default: str = DEFAULT_ENGINE) -> list[str]:
    return list(dict.fromkeys(config.getoption("memcycle_engine") or [default]))


def _allocators(config: pytest.Config) -> list[str]:
    return list(dict.fromkeys(config.getoption("memcycle_allocator") or [DEFAULT_ALLOCATOR]))


def combinations(
    config: pytest.Config, default_engine: str = DEFAULT_ENGINE
) -> list[tuple[str, str]]:
    """(engine, allocator) pairs to run a scenario on; without --memcycle-engine, the
    scenario's own engine (its first `engines` entry), like `memcycle run`."""
    pairs: list[tuple[str, str]] = []
    for engine in _engines(config, default_engine):
        allocators = _allocators(config) if engine in _ALLOCATOR_ENGINES else ["native"]
        pairs.extend((engine, a) for a in allocators if (engine, a) not in pairs)
    return pairs


# --- collection -----------------------------------------------------------------
def _explicit_paths(config: pytest.Config) -> list[Path]:
    """Paths the user named on the command line (empty when pytest fell back to testpaths)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    base = config.invocation_params.dir
    return [Path(base, a.split("::", 1)[0]).resolve() for a in config.args]


def _testpaths(config: pytest.Config) -> set[Path]:
    return {Path(config.rootpath, p).resolve() for p in config.getini("testpaths")}


def _looks_like_scenario(path: Path) -> bool:
    """A cycle table has [[cycle]] tables; a file that does not parse may still be one
    (its ScenarioError is then shown as a collection error)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False
    except tomllib.TOMLDecodeError:
        return path.name != "pyproject.toml"
    return isinstance(data.get("cycle"), list)


def wants(path: Path, config: pytest.Config) -> bool:
    """Whether a .toml file found during collection is a scenario the user asked for."""
    path = path.resolve()
    testpaths = _testpaths(config)
    for arg in _explicit_paths(config):
        if arg == path:
            return True  # named directly: a parse error is worth showing
        if not arg.is_dir() or arg in testpaths:
            continue
        try:
            rel = path.relative_to(arg)
        except ValueError:
            continue
        if "faults" in rel.parts[:-1]:
            continue
        return _looks_like_scenario(path)
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".toml" or not wants(file_path, parent.config):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class MemcycleFailure(Exception):
    """A scenario run whose verdict differs from the expected one."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__(f"verdict {record.verdict}, expected {record.expected_verdict}")
        self.record = record


class ScenarioFile(pytest.File):
    """One cycle table; its items are the engine × allocator runs."""

    def collect(self) -> Iterator[pytest.Item]:
        from memcycle.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(self.path)
        except ScenarioError as exc:
            raise self.CollectError(f"memcycle: invalid scenario: {exc}") from None
        for engine, allocator in combinations(self.config, scenario.default_engine()):
            item = ScenarioItem.from_parent(
                self,
                name=f"{scenario.name}[{engine}-{allocator}]",
                engine=engine,
                allocator=allocator,
                scenario_name=scenario.name,
                expected=scenario.expected(allocator),
            )
            item.add_marker(pytest.mark.memcycle)
            for tag in ("slow", "soak"):
                if tag in scenario.tags:
                    item.add_marker(getattr(pytest.mark, tag))
            if scenario.engines and engine not in scenario.engines:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"scenario {scenario.name} is written for {', '.join(scenario.engines)}"
                    )
                )
            yield item


class ScenarioItem(pytest.Item):
    """One scenario on one engine/allocator, in its own child process."""

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

    def runtest(self) -> None:
        from memcycle.runner import run_one

        record = run_one(
            self.path,
            engine=self.engine,
            allocator=self.allocator,
            memray=not self.config.getoption("memcycle_no_memray"),
            timeout=self.config.getoption("memcycle_timeout"),
            out_dir=_report_dir(self.config),
        )
        self.record = record
        _remember(self, record)
        self.user_properties.append(("memcycle_verdict", record.verdict))
        if record.verdict == "skipped" and record.expected_verdict != "skipped":
            from memcycle.reporters.common import skip_reason

            pytest.skip(skip_reason(record))
        if not record.passed:
            raise MemcycleFailure(record)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, MemcycleFailure):
            from memcycle.reporters.markdown import render_run

            rec = excinfo.value.record
            return (
                f"{rec.scenario} on {rec.engine}/{rec.allocator}: verdict {rec.verdict}, "
                f"expected {rec.expected_verdict}\n\n{render_run(rec, [rec])}"
            )
        if _is_user_error(excinfo.value):
            return f"memcycle: {type(excinfo.value).__name__}: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def _traceback_filter(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        """A harness error shows the harness frames only, not pytest's and pluggy's."""
        tb = excinfo.traceback
        kept = tb.filter(lambda e: not any(p in str(e.path) for p in ("_pytest", "pluggy")))
        return kept or tb

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.scenario_name} [{self.engine}/{self.allocator}]"


def _is_user_error(exc: BaseException) -> bool:
    """An engine spec or scenario problem: a one-line message, not a harness traceback."""
    try:
        from memcycle.engines.base import EngineError
        from memcycle.scenario import ScenarioError
    except ImportError:  # pragma: no cover - the harness is part of this package
        return False
    return isinstance(exc, EngineError | ScenarioError)


# --- records to reports -----------------------------------------------------------
def _report_dir(config: pytest.Config) -> Path | None:
    d = config.getoption("memcycle_report", None)
    return Path(d).resolve() if d else None


def _remember(item: pytest.Item, record: RunRecord) -> None:
    records = item.stash.setdefault(_RECORDS_KEY, [])
    records.append(record)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the item's run records to its call report (plain dicts, so xdist can send them)."""
    report = yield
    if call.when == "call":
        records = item.stash.get(_RECORDS_KEY, [])
        if records:
            setattr(report, _REPORT_ATTR, [r.to_dict() for r in records])
    return report


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


# --- the fixture -----------------------------------------------------------------
@pytest.fixture
def memcycle_run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., RunRecord]:
    """Run an inline scenario (TOML text, a dict, or a path) in a child process.

    `memcycle_run(scenario, engine=..., allocator=..., faults=(), **run_one_kwargs)`
    returns the RunRecord (verdict, findings, cycles); the engine and allocator
    default to the first --memcycle-engine / --memcycle-allocator.
    """
    from memcycle.runner import run_one
    from memcycle.scenario import parse_scenario

    config = request.config
    counter = iter(range(1, 1_000_000))

    def run(
        scenario: str | Path | Mapping[str, Any],
        engine: str | None = None,
        allocator: str | None = None,
        faults: Sequence[str] = (),
        **kwargs: Any,
    ) -> RunRecord:
        if isinstance(scenario, Path):
            path = scenario
        else:
            text = scenario_toml(scenario) if isinstance(scenario, Mapping) else scenario
            path = tmp_path / f"inline-{next(counter)}.toml"
            path.write_text(text, encoding="utf-8")
            parse_scenario(text, str(path))  # a bad scenario fails here, with file and field
        kwargs.setdefault("memray", not config.getoption("memcycle_no_memray"))
        kwargs.setdefault("timeout", config.getoption("memcycle_timeout"))
        kwargs.setdefault("out_dir", _report_dir(config))
        record = run_one(
            path,
            engine=engine or _engines(config)[0],
            allocator=allocator or _allocators(config)[0],
            faults=tuple(faults),
            **kwargs,
        )
        _remember(request.node, record)
        return record

    return run


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("memcycle_engine") and not config.getoption("memcycle_report"):
        return None
    pairs = ", ".join(f"{e}/{a}" for e, a in combinations(config))
    return f"memcycle: {pairs}" + (
        f"; reports in {_report_dir(config)}" if _report_dir(config) else ""
    )


__all__ = ["MemcycleFailure", "ScenarioFile", "ScenarioItem", "memcycle_run", "scenario_toml"]
