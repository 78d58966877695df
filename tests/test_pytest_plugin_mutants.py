"""The plugin's outcome decision, both ways, and every option reaching the run (docs/mutation.md).

The child run is replaced by a recorded fake (`memcycle.runner.run_one`), so each test is about the
plugin alone: which pytest outcome a verdict/expectation pair becomes, and which options arrive at
the run. A verdict that differs from its expectation fails the item in *both* directions.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import memcycle.runner
import pytest
from factories import make_run
from memcycle.records import Finding, RunRecord
from test_pytest_plugin import _run, _scenario


@pytest.fixture
def fake(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A scenarios/alpha.toml and a fake run_one returning `state["verdict"]` against
    `state["expected"]` (with `state["findings"]`, or raising `state["raise"]`); every call's
    keyword arguments land in `state["calls"]`."""
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    (pytester.mkdir("scenarios") / "alpha.toml").write_text(_scenario("alpha"))
    state: dict[str, Any] = {"verdict": "clean", "expected": "clean", "calls": []}

    @functools.wraps(memcycle.runner.run_one)  # the fixture reads run_one's signature
    def run_one(path: Path, **kwargs: Any) -> RunRecord:
        state["calls"].append(kwargs)
        if "raise" in state:
            raise state["raise"]
        return make_run(
            "alpha",
            engine=kwargs.get("engine", "refimpl"),
            allocator=kwargs.get("allocator", "checked"),
            verdict=state["verdict"],
            expected=state["expected"],
            fail_at=None if state["verdict"] in ("clean", "skipped") else 1,
            findings=state.get("findings"),
        )

    monkeypatch.setattr(memcycle.runner, "run_one", run_one)
    return state


def _outcome(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return _run(pytester, "scenarios/alpha.toml", "--memcycle-allocator", "checked", *args)


@pytest.mark.parametrize(
    ("verdict", "expected", "outcome"),
    [
        pytest.param("double-free", "clean", "failed", id="a-fault-where-clean-was-expected-fails"),
        pytest.param("clean", "double-free", "failed", id="clean-where-a-fault-was-expected-fails"),
        pytest.param("double-free", "double-free", "passed", id="the-expected-fault-passes"),
        pytest.param("clean", "clean", "passed", id="clean-as-expected-passes"),
    ],
)
def test_the_item_fails_whenever_the_verdict_differs_from_its_expectation(
    pytester: pytest.Pytester, fake: dict[str, Any], verdict: str, expected: str, outcome: str
) -> None:
    fake.update(verdict=verdict, expected=expected)
    _outcome(pytester).assert_outcomes(**{outcome: 1})


def test_an_error_run_is_an_error_of_the_item_whatever_was_expected(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    fake.update(verdict="error", expected="error")
    _outcome(pytester).assert_outcomes(errors=1)


def test_every_command_line_option_reaches_the_run(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    result = _outcome(
        pytester,
        "--memcycle-timeout",
        "7.5",
        "--memcycle-no-memray",
        "--memcycle-engine-option",
        "buffer_size=16",
        "--memcycle-report",
        "out",
    )
    result.assert_outcomes(passed=1)
    (call,) = fake["calls"]
    assert call["timeout"] == 7.5 and call["memray"] is False
    assert call["options"] == {"buffer_size": 16}
    assert call["out_dir"] == (pytester.path / "out").resolve()
    assert call["allocator"] == "checked"


def test_without_options_the_run_gets_memray_no_timeout_and_no_report_dir(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    _outcome(pytester).assert_outcomes(passed=1)
    (call,) = fake["calls"]
    assert call["memray"] is True and call["timeout"] is None and call["out_dir"] is None
    assert call["options"] == {}


def test_the_fixture_passes_timeout_memray_and_report_dir_from_the_command_line(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    pytester.makepyfile(
        test_fixture=f"""
        def test_fixture(memcycle_run):
            memcycle_run({_scenario("inline")!r}, faults=["flat-buffer-double-free"])
        """
    )
    result = _run(
        pytester,
        "test_fixture.py",
        "--memcycle-timeout",
        "9",
        "--memcycle-no-memray",
        "--memcycle-report",
        "rep",
    )
    result.assert_outcomes(passed=1)
    (call,) = fake["calls"]
    assert call["timeout"] == 9.0 and call["memray"] is False
    assert call["out_dir"] == (pytester.path / "rep").resolve()
    assert call["faults"] == ("flat-buffer-double-free",)


def test_the_fixture_keeps_a_timeout_the_test_gives_over_the_command_line(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    pytester.makepyfile(
        test_fixture=f"""
        def test_fixture(memcycle_run):
            memcycle_run({_scenario("inline")!r}, timeout=3, memray=True)
        """
    )
    _run(pytester, "test_fixture.py", "--memcycle-timeout", "9", "--memcycle-no-memray")
    (call,) = fake["calls"]
    assert call["timeout"] == 3 and call["memray"] is True


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_timeout_that_is_not_positive_is_a_usage_error(
    pytester: pytest.Pytester, fake: dict[str, Any], value: str
) -> None:
    result = _outcome(pytester, "--memcycle-timeout", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is not a positive number of seconds" in result.stderr.str()
    assert fake["calls"] == []


def test_a_report_path_that_is_a_file_is_a_usage_error(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    (pytester.path / "afile").write_text("x")
    result = _outcome(pytester, "--memcycle-report", "afile")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "exists and is not a directory" in result.stderr.str()


def test_an_unknown_allocator_is_a_usage_error(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    result = _outcome(pytester, "--memcycle-allocator", "jemalloc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown allocator 'jemalloc'" in result.stderr.str()


def test_a_failed_item_points_at_the_first_line_of_its_scenario_file(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    fake.update(verdict="double-free", expected="clean")
    result = _outcome(pytester, "--tb=line")
    result.assert_outcomes(failed=1)
    assert "scenarios/alpha.toml:1: memcycle: alpha on refimpl/checked" in result.stdout.str()


def test_a_timeout_under_one_second_is_accepted_and_reaches_the_run(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    """Positive means above zero, not at least one second."""
    _outcome(pytester, "--memcycle-timeout", "0.5").assert_outcomes(passed=1)
    (call,) = fake["calls"]
    assert call["timeout"] == 0.5


def test_the_fixture_numbers_a_tests_inline_scenarios_from_one_in_call_order(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    """The file an inline scenario is written to names the call: an invalid one's error says
    which call of the test it was (inline-3.toml is the third)."""
    pytester.makepyfile(
        test_fixture=f"""
        import pytest
        from memcycle import MemcycleUsageError

        def test_fixture(memcycle_run, tmp_path):
            memcycle_run({_scenario("first")!r})
            memcycle_run({_scenario("second")!r})
            with pytest.raises(MemcycleUsageError, match="inline-3.toml") as info:
                memcycle_run("name = 3")
            print("ERROR:", info.value)
            assert sorted(p.name for p in tmp_path.glob("inline-*.toml")) == [
                "inline-1.toml", "inline-2.toml", "inline-3.toml"
            ]
        """
    )
    result = _run(pytester, "test_fixture.py", "-s")
    result.assert_outcomes(passed=1)
    assert len(fake["calls"]) == 2


SKIPPED_STEPS = "3 steps skipped: delete x3 (the engine has no delete)"


def _skip_finding(summary: str = SKIPPED_STEPS) -> Finding:
    return Finding(verdict="skipped", cycle=None, step=None, op="delete", summary=summary)


def test_a_wholly_skipped_run_where_clean_was_expected_is_a_skipped_item_with_its_reason(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    fake.update(verdict="skipped", expected="clean", findings=[_skip_finding("no delete here")])
    result = _outcome(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    assert "no delete here" in result.stdout.str()


def test_with_fail_on_skip_a_wholly_skipped_run_fails_naming_the_skip(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    fake.update(verdict="skipped", expected="clean", findings=[_skip_finding("no delete here")])
    result = _outcome(pytester, "--memcycle-fail-on-skip")
    result.assert_outcomes(failed=1)
    assert "--memcycle-fail-on-skip: no delete here" in result.stdout.str()


def test_with_fail_on_skip_a_failed_run_with_skipped_steps_fails_on_its_verdict(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    """The verdict is what failed; the skipped steps stay a section of the report, not the
    reason given."""
    fake.update(verdict="double-free", expected="clean", findings=[_skip_finding()])
    result = _outcome(pytester, "--memcycle-fail-on-skip", "--tb=line")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "memcycle: alpha on refimpl/checked" in out
    assert "--memcycle-fail-on-skip:" not in out


def test_a_fail_on_skip_failure_is_one_plain_line_without_a_python_traceback(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    fake.update(verdict="clean", expected="clean", findings=[_skip_finding()])
    result = _outcome(pytester, "--memcycle-fail-on-skip", "--tb=long")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"\n--memcycle-fail-on-skip: {SKIPPED_STEPS}\n" in out  # the line, no 'Failed:'
    assert "items.py" not in out and "pytest.fail(" not in out


def test_a_harness_exception_shows_its_own_frames_and_none_of_pytests_or_pluggys(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    """Not a user's mistake and not a verdict: a traceback, cut to the harness's frames."""
    fake["raise"] = RuntimeError("the harness broke here")
    result = _outcome(pytester, "--tb=long")
    result.assert_outcomes(errors=1)
    out = result.stdout.str().split(" ERRORS ")[1]  # the report, not the header's versions
    assert "RuntimeError: the harness broke here" in out
    assert "def setup(self)" in out and "items.py" in out  # the item's own frame
    # the fake run_one's frame, in a file whose name holds "_pytest" (not pytest's directory)
    assert 'raise state["raise"]' in out
    assert "/pluggy/" not in out and "/_pytest/" not in out


def test_the_fixture_refuses_a_scenario_that_is_not_text_a_dict_or_a_path_by_name(
    pytester: pytest.Pytester, fake: dict[str, Any]
) -> None:
    pytester.makepyfile(
        test_fixture="""
        import pytest
        from memcycle import MemcycleUsageError

        def test_fixture(memcycle_run):
            with pytest.raises(MemcycleUsageError, match="must be TOML text, a dict or a Path, got int"):
                memcycle_run(42)
        """
    )
    _run(pytester, "test_fixture.py").assert_outcomes(passed=1)
    assert fake["calls"] == []
