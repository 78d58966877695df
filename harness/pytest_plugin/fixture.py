"""The `memcycle_run` fixture: an inline scenario (TOML text, a dict or a path) run from a
Python test in a child process, its inputs checked first (a bad one is `MemcycleUsageError`)."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# the writer lives beside the parser; re-exported here for the fixture and its users
from memcycle.scenario_toml import scenario_toml

from .options import ALLOCATOR_CHOICES, DEFAULT_ALLOCATOR, DEFAULT_ENGINE
from .reports import _remember, _report_dir

if TYPE_CHECKING:
    from memcycle.records import RunRecord


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
    counter = itertools.count(1)  # inline-1.toml, inline-2.toml, ...: no cap on a test's calls
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
