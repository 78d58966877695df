"""pytest plugin (entry point `memcycle`): scenario files as test items, a fixture, markers.

Collection: every cycle table (a .toml file with `[[cycle]]` tables; pyproject.toml and other
TOML are ignored) that pytest walks past is collected, like a test file: from paths named on
the command line, from `testpaths`, and from the `memcycle_paths` ini option (files or
directories, relative to the ini file), which a plain `pytest` collects too. A `faults/`
sub-directory is skipped unless named directly (its scenarios expect findings on purpose). An
invalid scenario is one erroring item, never a collection error that stops the whole suite.

Each cycle table yields one item per engine x allocator (`--memcycle-engine`, repeatable,
default the scenario's own engine, else refimpl; `--memcycle-allocator`, repeatable, default
checked), run through `memcycle.runner.run_one` in its own child process like `memcycle run`.
An engine verdict other than the expected one fails the item (the crash line is one plain
line: verdict, cycle, step, what happened; the body is the cycle table and the evidence). A run
whose outcome is `error` (memcycle or the adapter could not do its job) is an *error* of the
item (setup phase), never a failure. Items carry the `memcycle` marker
(`memcycle(scenario=, engine=, allocator=, tags=)`), `slow` / `soak` when the scenario has
that tag (the plugin registers all three, so `--strict-markers` works), and every tag as a
keyword (`-k tag`). A bad `--memcycle-*` value or `memcycle_paths` entry is a usage error
before collection. `--memcycle-report DIR` writes report.json, summary.md, index.html and
junit.xml at the end of the session (with pytest-xdist too: each record travels to the
controller on its test report).

The `memcycle_run` fixture runs an inline scenario from a Python test and returns the
RunRecord; `memcycle.assert_clean(record)` / `memcycle.assert_verdict(record, v)` fail with
the cycle table and the evidence.

This module must stay importable with nothing but pytest: everything from the harness is
imported inside the functions that need it.
"""

from __future__ import annotations

import inspect
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
        "--memcycle-engine-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an engine option for every scenario item (repeatable), over the scenario's "
        "[engine] table; a VALUE that reads as JSON (16, true) is that",
    )
    group.addoption(
        "--memcycle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="kill a scenario's child process after this long (verdict timeout)",
    )
    parser.addini(
        "memcycle_paths",
        type="paths",
        default=[],
        help="scenario files or directories to collect as memcycle items (a plain `pytest` "
        "collects them too, whatever testpaths says)",
    )
    group.addoption(
        "--memcycle-no-memray",
        action="store_true",
        default=False,
        help="run without the memray capture (faster; no leaked-bytes column, no flamegraphs)",
    )
    group.addoption(
        "--memcycle-fail-on-skip",
        action="store_true",
        default=False,
        help="fail a scenario item when the run, or any step of it, was skipped (a capability "
        "the engine lacks): for CI that must test everything (memcycle run --fail-on-skip)",
    )


_MARKERS = {
    "memcycle": "memcycle(scenario, engine, allocator, tags): a memcycle scenario run",
    "slow": "longer than a few seconds (memcycle applies it to scenarios tagged slow)",
    "soak": "long repetition runs (memcycle applies it to scenarios tagged soak)",
}
ALLOCATOR_CHOICES = ("numpy", "checked", "raw")


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, text in _MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {text}")
    check_options(config)
    _add_memcycle_paths(config)
    report_dir = config.getoption("memcycle_report", None)
    if report_dir and not hasattr(config, "workerinput"):
        # only the controller writes reports; workers send their records along
        config.pluginmanager.register(RecordCollector(Path(report_dir), config), _COLLECTOR_NAME)


def engine_options(config: pytest.Config) -> dict[str, Any]:
    """--memcycle-engine-option KEY=VALUE pairs (`engines.base.parse_engine_options`)."""
    from memcycle.engines.base import parse_engine_options

    try:
        return parse_engine_options(config.getoption("memcycle_engine_option", None) or [])
    except ValueError as exc:
        raise pytest.UsageError(
            f"--memcycle-engine-option: {exc.args[0]!r}; expected KEY=VALUE, e.g. buffer_size=16"
        ) from None


def check_options(config: pytest.Config) -> None:
    """Every --memcycle-* value and memcycle_paths entry, before collection: a bad one is a
    pytest.UsageError, one line naming the value and what was expected."""
    engines = config.getoption("memcycle_engine") or []
    if engines:
        from memcycle.engines.base import EngineError
        from memcycle.engines.registry import check_engine_spec

        for spec in engines:
            try:
                check_engine_spec(spec)
            except EngineError as exc:
                raise pytest.UsageError(f"--memcycle-engine: {exc}") from None
    for name in config.getoption("memcycle_allocator") or []:
        if name not in ALLOCATOR_CHOICES:
            raise pytest.UsageError(
                f"--memcycle-allocator: unknown allocator {name!r}; expected one of "
                f"{', '.join(ALLOCATOR_CHOICES)}"
            )
    engine_options(config)  # a malformed KEY=VALUE is a usage error before collection
    timeout = config.getoption("memcycle_timeout")
    if timeout is not None and not timeout > 0:
        raise pytest.UsageError(
            f"--memcycle-timeout: {timeout} is not a positive number of seconds"
        )
    report = config.getoption("memcycle_report")
    if report and Path(report).exists() and not Path(report).is_dir():
        raise pytest.UsageError(f"--memcycle-report: {report!r} exists and is not a directory")
    for path in config.getini("memcycle_paths"):
        if not Path(path).exists():
            raise pytest.UsageError(
                f"memcycle_paths: {str(path)!r} does not exist; expected scenario files or "
                "directories (relative to the ini file)"
            )


def _add_memcycle_paths(config: pytest.Config) -> None:
    """A plain `pytest` (testpaths or the current directory) also collects memcycle_paths."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    roots = [Path(a).resolve() for a in config.args]
    for path in config.getini("memcycle_paths"):
        p = Path(path).resolve()
        if not any(p == r or r in p.parents for r in roots):
            config.args.append(str(p))


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
def _named(config: pytest.Config) -> list[Path]:
    """The collection roots: command-line paths, else testpaths (or the current directory),
    plus the memcycle_paths entries `_add_memcycle_paths` appended."""
    base = config.invocation_params.dir
    return [Path(base, str(a).split("::", 1)[0]).resolve() for a in config.args]


def _looks_like_scenario(path: Path) -> bool:
    """A cycle table has [[cycle]] tables; a file that does not parse is one only when its text
    says `[[cycle]]` (then its ScenarioError shows as an erroring item)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "[[cycle]]" in text
    return isinstance(data.get("cycle"), list)


def wants(path: Path, config: pytest.Config) -> bool:
    """Whether a .toml file found during collection is a scenario to collect."""
    path = path.resolve()
    roots = _named(config)
    if path in roots:
        return True  # named directly: a parse error is worth showing
    for root in sorted((r for r in roots if r in path.parents), key=lambda r: -len(r.parts)):
        if "faults" in path.relative_to(root).parts[:-1]:
            return False  # the nearest root decides: faults/ only when named
        break
    return _looks_like_scenario(path)


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
    """One cycle table; its items are the engine x allocator runs."""

    def collect(self) -> Iterator[pytest.Item]:
        from memcycle.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(self.path)
        except ScenarioError as exc:
            # one erroring item, not a collection error: the rest of the suite still runs
            yield InvalidScenarioItem.from_parent(self, name=self.path.name, message=str(exc))
            return
        for engine, allocator in combinations(self.config, scenario.default_engine()):
            item = ScenarioItem.from_parent(
                self,
                name=f"{scenario.name}[{engine}-{allocator}]",
                engine=engine,
                allocator=allocator,
                scenario_name=scenario.name,
                expected=scenario.expected(allocator),
            )
            item.add_marker(
                pytest.mark.memcycle(
                    scenario=scenario.name,
                    engine=engine,
                    allocator=allocator,
                    tags=tuple(scenario.tags),
                )
            )
            for tag in ("slow", "soak"):
                if tag in scenario.tags:
                    item.add_marker(getattr(pytest.mark, tag))
            item.extra_keyword_matches.update(scenario.tags)  # -k <tag>
            fail_on_skip = self.config.getoption("memcycle_fail_on_skip", False)
            if scenario.engines and engine not in scenario.engines and not fail_on_skip:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"scenario {scenario.name} is written for {', '.join(scenario.engines)}"
                    )
                )
            yield item


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
        kept = tb.filter(lambda e: not any(p in str(e.path) for p in ("_pytest", "pluggy")))
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


# --- records to reports -----------------------------------------------------------
def _report_dir(config: pytest.Config) -> Path | None:
    d = config.getoption("memcycle_report", None)
    return Path(d).resolve() if d else None


def _remember(item: pytest.Item, record: RunRecord) -> None:
    records = item.stash.setdefault(_RECORDS_KEY, [])
    records.append(record)


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

    `memcycle_run(scenario, engine=DEFAULT_ENGINE, allocator=DEFAULT_ALLOCATOR, faults=(),
    **run_one_kwargs)` returns the RunRecord (verdict, findings, cycles) of a run that
    happened. The defaults are fixed (`refimpl` and the plugin's default allocator), never
    taken from --memcycle-engine/--memcycle-allocator, so a test means the same whatever the
    command line (those options choose the runs of collected scenario files). A bad engine, allocator, fault,
    option or scenario raises `memcycle.MemcycleUsageError` (one line, before anything runs);
    a run whose outcome is `error` (the engine could not be built or driven) raises
    `memcycle.MemcycleError` (its `record` attached). Check the verdict with
    `memcycle.assert_clean(record)` or `memcycle.assert_verdict(record, "leak")`.
    """
    from memcycle.assertions import MemcycleError, MemcycleUsageError
    from memcycle.engines.base import EngineError
    from memcycle.engines.registry import check_engine_spec
    from memcycle.reporters.text import headline
    from memcycle.runner import run_one
    from memcycle.scenario import ScenarioError, load_scenario, parse_scenario

    config = request.config
    counter = iter(range(1, 1_000_000))
    options = set(inspect.signature(run_one).parameters) - {
        "scenario",
        "engine",
        "allocator",
        "faults",
    }

    def run(
        scenario: str | Path | Mapping[str, Any],
        engine: str = DEFAULT_ENGINE,
        allocator: str = DEFAULT_ALLOCATOR,
        faults: Sequence[str] = (),
        **kwargs: Any,
    ) -> RunRecord:
        __tracebackhide__ = True
        unknown = sorted(set(kwargs) - options)
        if unknown:
            raise MemcycleUsageError(
                f"memcycle_run: unknown option {unknown[0]!r}; expected one of "
                f"{', '.join(sorted(options))}"
            )
        try:
            check_engine_spec(engine)
        except EngineError as exc:
            raise MemcycleUsageError(f"memcycle_run: {exc}") from None
        if allocator not in ALLOCATOR_CHOICES:
            raise MemcycleUsageError(
                f"memcycle_run: unknown allocator {allocator!r}; expected one of "
                f"{', '.join(ALLOCATOR_CHOICES)}"
            )
        if faults:
            from memcycle.refimpl.faults import FAULT_NAMES

            bad = [f for f in faults if f not in FAULT_NAMES]
            if bad:
                raise MemcycleUsageError(
                    f"memcycle_run: unknown fault {bad[0]!r}; expected one of "
                    f"{', '.join(FAULT_NAMES)}"
                )
        try:
            if isinstance(scenario, Path):
                path = scenario
                load_scenario(path)
            elif isinstance(scenario, str | Mapping):
                text = scenario_toml(scenario) if isinstance(scenario, Mapping) else scenario
                path = tmp_path / f"inline-{next(counter)}.toml"
                path.write_text(text, encoding="utf-8")
                parse_scenario(text, str(path))  # a bad scenario fails here, with file and field
            else:
                raise MemcycleUsageError(
                    f"memcycle_run: scenario must be TOML text, a dict or a Path, got "
                    f"{type(scenario).__name__}"
                )
        except (ScenarioError, TypeError) as exc:
            raise MemcycleUsageError(f"memcycle_run: invalid scenario: {exc}") from None
        kwargs.setdefault("memray", not config.getoption("memcycle_no_memray"))
        kwargs.setdefault("timeout", config.getoption("memcycle_timeout"))
        kwargs.setdefault("out_dir", _report_dir(config))
        record = run_one(path, engine=engine, allocator=allocator, faults=tuple(faults), **kwargs)
        _remember(request.node, record)
        if record.verdict == "error":
            raise MemcycleError(f"memcycle_run: {headline(record)}", record)
        return record

    return run


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("memcycle_engine") and not config.getoption("memcycle_report"):
        return None
    pairs = ", ".join(f"{e}/{a}" for e, a in combinations(config))
    return f"memcycle: {pairs}" + (
        f"; reports in {_report_dir(config)}" if _report_dir(config) else ""
    )


__all__ = [
    "InvalidScenarioItem",
    "MemcycleFailure",
    "ScenarioFile",
    "ScenarioItem",
    "memcycle_run",
    "scenario_toml",
]
