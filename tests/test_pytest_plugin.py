"""The pytest plugin, driven through pytester with a tiny engine written into the test dir.

Runs use --memcycle-no-memray (except where memray output is the point) so they stay fast.
"""

from __future__ import annotations

import json
import re
import textwrap

import memcycle.runner  # noqa: F401  (imports numpy here: in-process pytester runs cannot re-import it)
import pytest
from memcycle.pytest_plugin import scenario_toml
from memcycle.scenario import parse_scenario

# a correct brute-force engine, and one that segfaults on the insert after its first clear
ENGINE = textwrap.dedent(
    """
    import ctypes
    import numpy as np
    from memcycle.engines.base import Capabilities

    class Tiny:
        name = "tiny"

        def __init__(self, config, crash=False):
            self.capabilities = Capabilities()
            self.crash = crash
            self.clears = 0
            self.ids = np.empty(0, np.int64)
            self.vecs = None

        def open(self, dimension, metric="l2"):
            if self.vecs is None:
                self.vecs = np.empty((0, dimension), np.float32)

        def insert(self, ids, vectors, metadata=None):
            if self.crash and self.clears:
                ctypes.string_at(0)  # SIGSEGV, like a stale native pointer
            self.ids = np.concatenate([self.ids, ids])
            self.vecs = np.concatenate([self.vecs, vectors])

        def search(self, queries, k, filter=None):
            out_i = np.full((len(queries), k), -1, np.int64)
            out_d = np.full((len(queries), k), np.inf, np.float32)
            if self.vecs is None or not len(self.ids):
                return out_i, out_d
            d = ((queries[:, None, :] - self.vecs[None, :, :]) ** 2).sum(-1)
            order = np.argsort(d, axis=1)[:, :k]
            n = order.shape[1]
            out_i[:, :n] = self.ids[order]
            out_d[:, :n] = np.take_along_axis(d, order, axis=1)
            return out_i, out_d

        def delete(self, ids):
            keep = ~np.isin(self.ids, ids)
            self.ids, self.vecs = self.ids[keep], self.vecs[keep]

        def get(self, ids):
            pos = {int(x): i for i, x in enumerate(self.ids)}
            return self.vecs[[pos[int(i)] for i in ids]]

        def count(self):
            return int(len(self.ids))

        def clear(self):
            self.clears += 1
            self.ids = np.empty(0, np.int64)
            self.vecs = None

        def close(self):
            self.clear()

        def ledger(self):
            return None

        def reload(self):
            pass

    def make(config):
        return Tiny(config)

    def make_crashing(config):
        return Tiny(config, crash=True)

    def make_nodelete(config):
        engine = Tiny(config)
        engine.capabilities = Capabilities(delete=False)
        return engine
    """
)

SCENARIO = textwrap.dedent(
    """
    name = "{name}"
    dimension = 4
    seed = 3
    {extra}
    [[cycle]]
    repeat = 3
    steps = [
      {{ op = "insert", count = 50 }},
      {{ op = "search", queries = 5, k = 3 }},
      {{ op = "clear" }},
    ]
    """
)

TINY = "tinyengine:make"
CRASHY = "tinyengine:make_crashing"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """In-process pytest without the benchmark and hypothesis plugins (~1.5 s of start-up each run)."""
    return pytester.runpytest(
        "-p",
        "no:benchmark",
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:cacheprovider",
        # in-process runs re-import harness/refimpl: pytest warns it cannot rewrite them
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *args,
    )


def _scenario(name: str, extra: str = "") -> str:
    return SCENARIO.format(name=name, extra=extra)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A directory with the tiny engine, a scenarios/ dir, a faults/ subdir and
    non-scenario TOML files, and a pyproject with testpaths = tests."""
    pytester.makepyfile(tinyengine=ENGINE)
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    scen = pytester.mkdir("scenarios")
    (scen / "alpha.toml").write_text(_scenario("alpha"))
    (scen / "beta.toml").write_text(_scenario("beta"))
    (scen / "settings.toml").write_text('[tool.something]\nkey = "not a scenario"\n')
    (scen / "faults").mkdir()
    (scen / "faults" / "f.toml").write_text(_scenario("faulty"))
    tests = pytester.mkdir("tests")
    (tests / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (tests / "fixture_scenario.toml").write_text(_scenario("in-tests"))
    return pytester


def test_collects_one_item_per_engine_and_allocator(project: pytest.Pytester) -> None:
    result = _run(
        project,
        "scenarios",
        "--collect-only",
        "-q",
        "--memcycle-allocator",
        "checked",
        "--memcycle-allocator",
        "numpy",
        "--memcycle-engine",
        "refimpl",
        "--memcycle-engine",
        TINY,
    )
    out = result.stdout.str()
    ids = [line for line in out.splitlines() if "::" in line]
    assert sorted(ids) == sorted(
        f"scenarios/{n}.toml::{n}[{e}]"
        for n in ("alpha", "beta")
        for e in ("refimpl-checked", "refimpl-numpy", f"{TINY}-native")
    )
    assert "settings.toml" not in out and "pyproject" not in out
    assert "faulty" not in out  # faults/ is skipped unless named


def test_faults_dir_and_single_files_are_collected_when_named(project: pytest.Pytester) -> None:
    out = _run(
        project, "scenarios/faults", "scenarios/alpha.toml", "--collect-only", "-q"
    ).stdout.str()
    assert "scenarios/faults/f.toml::faulty[refimpl-checked]" in out
    assert "scenarios/alpha.toml::alpha[refimpl-checked]" in out


def test_plain_pytest_does_not_collect_scenarios(project: pytest.Pytester) -> None:
    for args in ((), ("tests",)):
        result = _run(project, *args, "--collect-only", "-q")
        out = result.stdout.str()
        assert "tests/test_plain.py::test_plain" in out
        assert ".toml" not in out, args
        result.assert_outcomes()  # collection only


def test_pass_and_crash_failure_shows_cycle_table_not_a_traceback(
    project: pytest.Pytester,
) -> None:
    result = _run(
        project,
        "scenarios/alpha.toml",
        "--memcycle-engine",
        TINY,
        "--memcycle-engine",
        CRASHY,
        "--memcycle-no-memray",
    )
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert f"alpha on {CRASHY}/native: verdict crash, expected clean" in out
    assert "| Cycle | expected (clean) | this run | Status |" in out
    assert "| 2 | ✅ | ⚡ (SIGSEGV) | Crashes |" in out
    assert "| 3 | ✅ | - | - |" in out
    assert "Fatal Python error: Segmentation fault" in out  # the evidence
    # no traceback frames of the harness or of pytest itself ("path.py:123: in func")
    assert "harness/runner.py" not in out
    assert not re.search(r"_pytest/\S+\.py:\d+: in ", out)


def test_invalid_scenario_is_a_collection_error_naming_file_and_field(
    project: pytest.Pytester,
) -> None:
    bad = project.path / "scenarios" / "bad.toml"
    bad.write_text(_scenario("bad").replace('op = "clear"', 'op = "clear", bogus = 1'))
    result = _run(project, "scenarios/bad.toml", "--collect-only", "-q")
    out = result.stdout.str()
    assert "memcycle: invalid scenario" in out
    assert "bad.toml" in out and "bogus" in out
    assert result.ret != 0


def test_scenario_for_another_engine_is_skipped(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "only.toml").write_text(
        _scenario("only", extra='engines = ["hnswlib"]')
    )
    result = _run(
        project, "scenarios/only.toml", "-rs", "--memcycle-no-memray", "--memcycle-engine", TINY
    )
    result.assert_outcomes(skipped=1)
    assert "written for hnswlib" in result.stdout.str()


def test_a_skipped_step_leaves_the_item_judged_on_what_ran_and_shows_it(
    project: pytest.Pytester,
) -> None:
    (project.path / "scenarios" / "del.toml").write_text(
        _scenario("del").replace(
            '{ op = "clear" }', '{ op = "delete", count = 5 }, { op = "clear" }'
        )
    )
    args = ["scenarios/del.toml", "-rP", "--memcycle-no-memray"]
    args += ["--memcycle-engine", "tinyengine:make_nodelete"]
    result = _run(project, *args)
    result.assert_outcomes(passed=1)
    line = "3 steps skipped: delete x3 (tiny has no delete (capabilities.delete = False))"
    assert line in result.stdout.str()
    strict = _run(project, *args, "--memcycle-fail-on-skip")
    strict.assert_outcomes(failed=1)
    assert f"--memcycle-fail-on-skip: {line}" in strict.stdout.str()


def test_without_engine_option_a_scenario_runs_on_its_own_engine(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "own.toml").write_text(
        _scenario("own", extra=f'engines = ["{TINY}"]')
    )
    out = _run(project, "scenarios/own.toml", "--collect-only", "-q").stdout.str()
    assert f"scenarios/own.toml::own[{TINY}-native]" in out


def test_report_dir_with_xdist_gets_every_worker_record(project: pytest.Pytester) -> None:
    report_dir = project.path / "out"
    result = _run(
        project,
        "scenarios",
        "-n",
        "2",
        "--memcycle-engine",
        TINY,
        "--memcycle-engine",
        CRASHY,
        "--memcycle-no-memray",
        "--memcycle-report",
        str(report_dir),
    )
    result.assert_outcomes(passed=2, failed=2)
    data = json.loads((report_dir / "report.json").read_text())
    assert data["schema_version"] == 1
    got = sorted((r["scenario"], r["engine"], r["verdict"]) for r in data["runs"])
    assert got == sorted(
        [
            ("alpha", CRASHY, "crash"),
            ("alpha", TINY, "clean"),
            ("beta", CRASHY, "crash"),
            ("beta", TINY, "clean"),
        ]
    )
    for name in ("summary.md", "index.html", "junit.xml"):
        assert (report_dir / name).stat().st_size > 0
    assert "runs reported in" in result.stdout.str()


def test_memcycle_run_fixture_with_dict_and_toml(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_inline=f"""
        def test_dict(memcycle_run):
            rec = memcycle_run(
                {{"name": "inline", "dimension": 4,
                  "cycle": [{{"repeat": 2, "steps": [{{"op": "insert", "count": 20}},
                                                    {{"op": "clear"}}]}}]}},
                engine="{TINY}", memray=False,
            )
            assert rec.verdict == "clean", rec.findings
            assert [c.status for c in rec.cycles] == ["ok", "ok"]

        def test_toml_crash(memcycle_run):
            rec = memcycle_run({_scenario("inline-crash")!r}, engine="{CRASHY}", memray=False)
            assert rec.verdict == "crash"
            assert rec.cycles[1].status == "crash"
        """
    )
    result = _run(project, "test_inline.py", "--memcycle-report", "rep")
    result.assert_outcomes(passed=2)
    data = json.loads((project.path / "rep" / "report.json").read_text())
    assert sorted(r["scenario"] for r in data["runs"]) == ["inline", "inline-crash"]


def test_scenario_toml_round_trips_through_the_parser() -> None:
    data = {
        "name": 'quote " and \\ backslash',
        "dimension": 8,
        "tags": ["slow"],
        "engine": {"buffer_size": 100},
        "cycle": [
            {"repeat": 2, "steps": [{"op": "insert", "count": 10}, {"op": "clear"}]},
            {"dimension": 4, "steps": [{"op": "search", "queries": 2, "k": 1, "min_recall": 0.5}]},
        ],
        "expect": {"verdict": {"checked": "leak", "default": "clean"}},
    }
    sc = parse_scenario(scenario_toml(data))
    assert sc.name == data["name"]
    assert sc.options() == {"buffer_size": 100}
    assert len(sc.plan) == 3 and sc.plan[2].dimension == 4
    assert sc.expected("checked") == "leak" and sc.expected("numpy") == "clean"
