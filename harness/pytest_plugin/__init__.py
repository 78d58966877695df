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

This package must stay importable with nothing but pytest: everything from the harness is
imported inside the functions that need it.

It is the `pytest11` entry point (`memcycle.pytest_plugin`): pytest registers the hooks and the
fixture it finds here, so every hook is re-exported below. One module per job: `options`
(registration, checks, engine x allocator combinations), `collection` (scenario files as items),
`items` (the item's run, its outcome and its failure report), `reports` (records to the report
files), `fixture` (`memcycle_run`).
"""

from __future__ import annotations

from memcycle.scenario_toml import scenario_toml as scenario_toml

from .collection import ScenarioFile as ScenarioFile
from .collection import _looks_like_scenario as _looks_like_scenario
from .collection import _named as _named
from .collection import pytest_collect_file as pytest_collect_file
from .collection import wants as wants
from .fixture import memcycle_run as memcycle_run
from .items import InvalidScenarioItem as InvalidScenarioItem
from .items import MemcycleFailure as MemcycleFailure
from .items import ScenarioItem as ScenarioItem
from .items import _is_user_error as _is_user_error
from .items import _one_line as _one_line
from .items import _record_longrepr as _record_longrepr
from .items import _record_of as _record_of
from .items import pytest_runtest_makereport as pytest_runtest_makereport
from .options import _ALLOCATOR_ENGINES as _ALLOCATOR_ENGINES
from .options import _COLLECTOR_NAME as _COLLECTOR_NAME
from .options import _MARKERS as _MARKERS
from .options import ALLOCATOR_CHOICES as ALLOCATOR_CHOICES
from .options import DEFAULT_ALLOCATOR as DEFAULT_ALLOCATOR
from .options import DEFAULT_ENGINE as DEFAULT_ENGINE
from .options import _add_memcycle_paths as _add_memcycle_paths
from .options import _allocators as _allocators
from .options import _engines as _engines
from .options import check_options as check_options
from .options import combinations as combinations
from .options import engine_options as engine_options
from .options import pytest_addoption as pytest_addoption
from .options import pytest_configure as pytest_configure
from .options import pytest_report_header as pytest_report_header
from .reports import _RECORDS_KEY as _RECORDS_KEY
from .reports import _REPORT_ATTR as _REPORT_ATTR
from .reports import RecordCollector as RecordCollector
from .reports import _remember as _remember
from .reports import _report_dir as _report_dir

__all__ = [
    "InvalidScenarioItem",
    "MemcycleFailure",
    "ScenarioFile",
    "ScenarioItem",
    "memcycle_run",
    "scenario_toml",
]
