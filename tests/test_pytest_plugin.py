"""The pytest plugin, driven through pytester with a tiny engine written into the test dir.

Runs use --memcycle-no-memray (except where memray output is the point) so they stay fast.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

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


def test_plain_pytest_collects_cycle_tables_in_testpaths_but_not_elsewhere(
    project: pytest.Pytester,
) -> None:
    for args in ((), ("tests",)):
        result = _run(project, *args, "--collect-only", "-q")
        out = result.stdout.str()
        assert "tests/test_plain.py::test_plain" in out
        assert "tests/fixture_scenario.toml::in-tests[refimpl-checked]" in out, args
        assert "scenarios/" not in out, args  # not in testpaths, not in memcycle_paths


def test_a_scenario_folder_in_testpaths_is_collected(project: pytest.Pytester) -> None:
    project.makefile(
        ".toml", pyproject='[tool.pytest.ini_options]\ntestpaths = ["tests", "scenarios"]\n'
    )
    out = _run(project, "--collect-only", "-q").stdout.str()
    assert "scenarios/alpha.toml::alpha[refimpl-checked]" in out
    assert "scenarios/beta.toml::beta[refimpl-checked]" in out
    assert "faulty" not in out and "settings.toml" not in out


def test_memcycle_paths_ini_collects_scenarios_on_a_plain_pytest(project: pytest.Pytester) -> None:
    project.makefile(
        ".toml",
        pyproject='[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
        'memcycle_paths = ["scenarios", "scenarios/faults/f.toml"]\n',
    )
    out = _run(project, "--collect-only", "-q").stdout.str()
    assert "tests/test_plain.py::test_plain" in out
    assert "scenarios/alpha.toml::alpha[refimpl-checked]" in out
    assert "scenarios/faults/f.toml::faulty[refimpl-checked]" in out  # named directly
    # naming a path on the command line still collects only that path
    out = _run(project, "tests/test_plain.py", "--collect-only", "-q").stdout.str()
    assert "alpha" not in out


def test_a_missing_memcycle_paths_entry_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makefile(
        ".toml", pyproject='[tool.pytest.ini_options]\nmemcycle_paths = ["scenarioz"]\n'
    )
    result = _run(project, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "memcycle_paths: " in err and "scenarioz" in err and "does not exist" in err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ("--memcycle-engine", "nope"),
            ("--memcycle-engine: unknown engine 'nope'", "expected one of refimpl"),
        ),
        (
            ("--memcycle-engine", "no_such_module:make"),
            ("--memcycle-engine: cannot import 'no_such_module'",),
        ),
        (("--memcycle-engine", "tinyengine:nothing"), ("has no factory 'nothing'",)),
        (
            ("--memcycle-allocator", "chekced"),
            ("--memcycle-allocator: unknown allocator 'chekced'", "numpy, checked, raw"),
        ),
        (("--memcycle-timeout", "0"), ("--memcycle-timeout: 0.0 is not a positive number",)),
    ],
)
def test_a_bad_memcycle_option_is_a_usage_error_before_collection(
    project: pytest.Pytester, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    result = _run(project, "scenarios", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = [line for line in result.stderr.str().splitlines() if line.strip()]
    assert len(err) == 1, err  # one line
    for needle in needles:
        assert needle in err[0], err
    assert "collected" not in result.stdout.str()


def test_tags_become_markers_that_work_under_strict_markers(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "tagged.toml").write_text(
        _scenario("tagged", extra='tags = ["slow", "nightly"]')
    )
    base = ("scenarios", "--strict-markers", "--memcycle-engine", TINY, "--memcycle-no-memray")
    result = _run(project, *base, "-m", "slow")
    result.assert_outcomes(passed=1)
    assert "tagged" in result.stdout.str() and "alpha" not in result.stdout.str()
    result = _run(project, *base, "-k", "nightly", "--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == [
        f"scenarios/tagged.toml::tagged[{TINY}-native]"
    ]
    out = _run(project, "--markers").stdout.str()
    for name in ("@pytest.mark.memcycle", "@pytest.mark.slow", "@pytest.mark.soak"):
        assert name in out


def test_pass_and_crash_failure_shows_cycle_table_not_a_traceback(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the -ra summary line is not cut at 80 columns
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
    assert f"memcycle: alpha on {CRASHY}/native" in out
    assert "Cycle  expected (clean)  this run         Status" in out
    assert "2      ok                CRASH (SIGSEGV)  Crashes" in out
    assert "Fatal Python error: Segmentation fault" in out  # the evidence
    # the crash line (the -ra summary, the JUnit message) is the one-line headline
    summary = next(ln for ln in out.splitlines() if ln.startswith("FAILED scenarios/alpha.toml"))
    assert summary == (
        f"FAILED scenarios/alpha.toml::alpha[{CRASHY}-native] - memcycle: alpha on {CRASHY}/native:"
        " verdict crash (expected clean) at cycle 2, step 0 (insert): SIGSEGV in cycle 2 at insert:"
        " Fatal Python error: Segmentation fault"
    )
    # no traceback frames of the harness or of pytest itself ("path.py:123: in func")
    assert "harness/runner.py" not in out
    assert not re.search(r"_pytest/\S+\.py:\d+: in ", out)
    for bad in ("✅", "⚡", "**", "|---"):
        assert bad not in out


def test_junit_messages_of_failures_and_errors_are_one_plain_line(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        badengine="from memcycle.engines.base import EngineError\n"
        "def make(config):\n    raise EngineError('license server unreachable')\n"
    )
    result = _run(
        project,
        "scenarios/alpha.toml",
        "--memcycle-engine",
        CRASHY,
        "--memcycle-engine",
        "badengine:make",
        "--memcycle-no-memray",
        "--junitxml",
        "junit.xml",
    )
    result.assert_outcomes(failed=1, errors=1)
    import xml.etree.ElementTree as ET

    suite = ET.parse(project.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("errors")) == ("1", "1")
    failure = suite.find("testcase/failure")
    error = suite.find("testcase/error")
    assert failure is not None and error is not None
    for el in (failure, error):
        message = el.get("message") or ""
        assert "\n" not in message, message
        for bad in ("✅", "❌", "⚡", "**", "|---"):
            assert bad not in message and bad not in (el.text or "")
    assert (failure.get("message") or "").startswith(
        f"memcycle: alpha on {CRASHY}/native: verdict crash (expected clean) at cycle 2, step 0"
    )
    assert "CRASH (SIGSEGV)" in (failure.text or "")
    assert "ERROR at op setup: engine setup failed: EngineError: license server unreachable" in (
        error.get("message") or ""
    )


def test_an_error_run_is_an_error_of_the_item_not_a_failure(project: pytest.Pytester) -> None:
    project.makepyfile(broken="import vendorlib_not_installed\n")
    result = _run(
        project, "scenarios/alpha.toml", "--memcycle-engine", "broken:make", "--memcycle-no-memray"
    )
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "ERROR at setup of scenario alpha [broken:make/native]" in out
    assert "No module named 'vendorlib_not_installed'" in out
    assert "No cycle ran" in out


def test_an_invalid_scenario_is_one_erroring_item_and_the_suite_still_runs(
    project: pytest.Pytester,
) -> None:
    bad = project.path / "tests" / "bad.toml"
    bad.write_text(_scenario("bad").replace('op = "clear"', 'op = "clear", bogus = 1'))
    (project.path / "tests" / "fixture_scenario.toml").unlink()
    result = _run(project)
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "memcycle: invalid scenario" in out
    assert "bad.toml" in out and "bogus" in out
    assert "harness/scenario.py" not in out  # no harness traceback
    assert "Interrupted" not in out


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


def test_the_fixture_defaults_to_refimpl_whatever_memcycle_engine_says(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_default="""
        import pytest
        import memcycle.runner
        from memcycle.pytest_plugin import DEFAULT_ALLOCATOR
        from memcycle.records import RunRecord

        calls = []

        @pytest.fixture(autouse=True)
        def fake_run(monkeypatch):  # autouse: patched before memcycle_run imports run_one
            def run_one(path, engine, allocator, faults, **kw):
                calls.append((engine, allocator))
                return RunRecord("d", str(path), engine, allocator, [], "clean")
            monkeypatch.setattr(memcycle.runner, "run_one", run_one)

        def test_default(memcycle_run):
            memcycle_run({"name": "d", "dimension": 4, "cycle": [
                {"steps": [{"op": "insert", "count": 20}, {"op": "clear"}]}]})
            assert calls == [("refimpl", DEFAULT_ALLOCATOR)]
        """
    )
    result = _run(
        project, "test_default.py", "--memcycle-engine", TINY, "--memcycle-allocator", "raw"
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("call", "needles"),
    [
        ('memcycle_run(GOOD, engine="nope")', ("unknown engine 'nope'", "expected one of")),
        ('memcycle_run(GOOD, allocator="chekced")', ("unknown allocator 'chekced'", "raw")),
        ('memcycle_run(GOOD, faults=["gremlin"])', ("unknown fault 'gremlin'", "expected one of")),
        ("memcycle_run(GOOD, memrey=False)", ("unknown option 'memrey'", "memray")),
        (
            'memcycle_run(GOOD.replace("clear", "clearr"))',
            ("invalid scenario", "clearr", "expected one of"),
        ),
        ('memcycle_run(Path("nope.toml"))', ("invalid scenario", "nope.toml")),
    ],
)
def test_the_fixture_rejects_bad_input_in_one_line_before_running(
    project: pytest.Pytester, call: str, needles: tuple[str, ...]
) -> None:
    good = _scenario("good")
    project.makepyfile(
        test_bad=f"""
        from pathlib import Path
        GOOD = {good!r}

        def test_bad(memcycle_run):
            {call}
        """
    )
    result = _run(project, "test_bad.py", "-rf")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    (line,) = [ln for ln in out.splitlines() if ln.startswith("E ")]  # one line
    assert "memcycle.assertions.MemcycleUsageError: memcycle_run: " in line
    for needle in needles:
        assert needle in line, line
    assert "harness/pytest_plugin/" not in out and "harness/scenario.py" not in out
    assert "harness/runner.py" not in out  # nothing ran


def test_the_fixture_raises_memcycle_error_for_an_error_run_instead_of_a_record(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        badengine="from memcycle.engines.base import EngineError\n"
        "def make(config):\n    raise EngineError('license server unreachable')\n",
        test_err=f"""
        import memcycle, pytest

        def test_err(memcycle_run):
            with pytest.raises(memcycle.MemcycleError) as info:
                memcycle_run({_scenario("e")!r}, engine="badengine:make", memray=False)
            assert info.value.record.verdict == "error"
            assert "license server unreachable" in str(info.value)
            assert "\\n" not in str(info.value)
        """,
    )
    _run(project, "test_err.py").assert_outcomes(passed=1)


def test_assert_clean_shows_the_cycle_table_and_evidence_and_a_one_line_message(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_assert=f"""
        import memcycle

        def test_crash_is_not_clean(memcycle_run):
            rec = memcycle_run({_scenario("assert-crash")!r}, engine="{CRASHY}", memray=False)
            memcycle.assert_clean(rec)

        def test_expected_crash(memcycle_run):
            rec = memcycle_run({_scenario("assert-crash")!r}, engine="{CRASHY}", memray=False)
            memcycle.assert_verdict(rec, "crash")
        """
    )
    result = _run(project, "test_assert.py", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "MemcycleAssertionError: memcycle: assert-crash on" in out
    assert "expected clean, got verdict crash (expected clean) at cycle 2, step 0 (insert)" in out
    assert "2      ok                CRASH (SIGSEGV)  Crashes" in out  # the table
    assert "Fatal Python error: Segmentation fault" in out  # the evidence
    assert "assertions.py" not in out  # the helper's own frame is hidden
    import xml.etree.ElementTree as ET

    failure = ET.parse(project.path / "junit.xml").getroot().find(".//failure")
    assert failure is not None
    message = failure.get("message") or ""
    assert "\n" not in message and message.startswith("memcycle: assert-crash on")
    assert "CRASH (SIGSEGV)" in (failure.text or "")


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


def test_memcycle_engine_option_reaches_every_item(project: pytest.Pytester) -> None:
    """--memcycle-engine-option KEY=VALUE is passed to the engine (the strict engine of the
    test suite refuses any option, so the item errors naming it); malformed is a usage error."""
    strict = f"{Path(__file__).resolve().parent / 'suite_engines.py'}:make_strict"
    bad = _run(project, "scenarios/alpha.toml", "--memcycle-engine-option", "novalue")
    assert "--memcycle-engine-option: 'novalue'; expected KEY=VALUE" in bad.stderr.str()
    ok = _run(project, "scenarios/alpha.toml", "--memcycle-engine", strict, "--memcycle-no-memray")
    ok.assert_outcomes(passed=1)
    refused = _run(
        project,
        "scenarios/alpha.toml",
        "--memcycle-engine",
        strict,
        "--memcycle-no-memray",
        "--memcycle-engine-option",
        "mode=persistent",
    )
    refused.assert_outcomes(errors=1)
    assert "strict takes no options, got ['mode']" in refused.stdout.str()
