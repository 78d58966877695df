"""The plugin's options: `--memcycle-*` and the `memcycle_paths` ini option registered,
checked before collection (a bad value is a `pytest.UsageError`, one line), and the engine x
allocator combinations a scenario file is run on; the markers and the report collector are
registered at configure time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .reports import RecordCollector, _report_dir

DEFAULT_ENGINE = "refimpl"
DEFAULT_ALLOCATOR = "checked"
# engines whose allocator can be chosen; any other engine runs once, on "native"
_ALLOCATOR_ENGINES = ("refimpl", "refimpl-global")
_COLLECTOR_NAME = "memcycle-collector"


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


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("memcycle_engine") and not config.getoption("memcycle_report"):
        return None
    pairs = ", ".join(f"{e}/{a}" for e, a in combinations(config))
    return f"memcycle: {pairs}" + (
        f"; reports in {_report_dir(config)}" if _report_dir(config) else ""
    )
