"""Hangs (issue 13, item 2): per-step and run limits, stacks dumped before the kill."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from memcycle.hangs import Position, Watchdog, plan_positions
from memcycle.runner import run_one
from memcycle.scenario import ScenarioError, load_scenario, parse_scenario

from tests.engines_for_tests import build_native_subject, write_native_scenario

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="gdb and gcc on Linux")


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_native_subject(tmp_path_factory.mktemp("native"))


def test_a_c_loop_hang_gives_a_timeout_naming_the_c_function_the_step_and_its_duration(
    tmp_path: Path, subject: Path
) -> None:
    sc = write_native_scenario(
        tmp_path / "spin.toml", "spin", subject, expect="timeout", search_timeout=2
    )
    rec = run_one(sc, memray=False, out_dir=tmp_path / "out", flamegraphs="none")
    assert rec.verdict == "timeout"
    (f,) = rec.findings
    # the search after the first clear: cycle 1, step 3
    assert (f.cycle, f.step, f.op) == (1, 3, "search")
    ev = f.evidence
    assert ev["limit"] == "step" and ev["timeout"] == 2.0
    assert ev["running"]["op"] == "search" and ev["running"]["seconds"] >= 2.0
    assert ev["native_stack"][0]["function"] == "subject_spin_in_search"
    assert ev["native_stack"][0]["engine"]
    assert ev["native_stack_method"] == "gdb-attach"
    # faulthandler's dump of all Python threads, taken before the kill
    assert "engines_for_tests.py" in ev["python_stacks"] and "in search" in ev["python_stacks"]
    assert "in subject_spin_in_search" in f.summary and "cycle 1 step 3 (search)" in f.summary


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_a_c_loop_hang_under_valgrind_gives_a_timeout_with_the_programs_native_stack(
    tmp_path: Path, subject: Path
) -> None:
    sc = write_native_scenario(
        tmp_path / "spin.toml", "spin", subject, expect="timeout", search_timeout=2
    )
    rec = run_one(sc, memray=False, valgrind=True, out_dir=tmp_path / "out", flamegraphs="none")
    assert rec.verdict == "timeout"
    f = next(f for f in rec.findings if f.verdict == "timeout")
    assert (f.cycle, f.step, f.op) == (1, 3, "search")
    ev = f.evidence
    # the step limit is stretched by valgrind's slowdown
    assert ev["limit"] == "step" and ev["timeout"] > 2.0
    # gdb through valgrind's gdbserver: the program's frames, not valgrind's
    assert ev["native_stack_method"] == "gdb-vgdb"
    assert ev["native_stack"][0]["function"] == "subject_spin_in_search"
    assert ev["native_stack"][0]["engine"]
    assert "engines_for_tests.py" in ev["python_stacks"]


def test_a_scenario_timeout_limits_the_whole_run_and_names_the_running_step(
    tmp_path: Path,
) -> None:
    sc = tmp_path / "sleepy.toml"
    sc.write_text(
        'name = "sleepy"\ndimension = 4\ntimeout = 2\n'
        'engines = ["tests.engines_for_tests:make_sleepy"]\n'
        "[engine]\nsleep_seconds = 60\n"
        '[[cycle]]\nsteps = [{ op = "open" }, { op = "insert", count = 5 }]\n',
        encoding="utf-8",
    )
    rec = run_one(sc, memray=False, out_dir=tmp_path / "out", flamegraphs="none")
    assert rec.verdict == "timeout"
    ev = rec.findings[0].evidence
    assert ev["limit"] == "run" and ev["timeout"] == 2.0
    assert (rec.findings[0].cycle, rec.findings[0].op) == (1, "insert")
    assert "in insert" in ev["python_stacks"]
    assert "native_stack" in ev or "native_stack_absent" in ev


def test_the_caller_timeout_wins_over_the_scenario_timeout(tmp_path: Path) -> None:
    sc = tmp_path / "sleepy.toml"
    sc.write_text(
        'name = "sleepy"\ndimension = 4\ntimeout = 500\n'
        'engines = ["tests.engines_for_tests:make_sleepy"]\n'
        "[engine]\nsleep_seconds = 60\n"
        '[[cycle]]\nsteps = [{ op = "insert", count = 5 }]\n',
        encoding="utf-8",
    )
    rec = run_one(sc, memray=False, timeout=1.5, flamegraphs="none")
    assert rec.verdict == "timeout"
    assert rec.findings[0].evidence["timeout"] == 1.5


def _wd(step_limit: float | None = 5.0, run: float | None = 100.0) -> Watchdog:
    pos = [Position(1, 0, "insert"), Position(1, 1, "search", step_limit), Position(1, 2, "close")]
    return Watchdog(run_timeout=run, positions=pos, started=0.0)


def test_the_watchdog_counts_setup_before_the_start_event_and_steps_after_it() -> None:
    wd = _wd()
    assert wd.running(now=3.0) == {"phase": "setup", "op": "setup", "seconds": 3.0}
    wd.on_event({"kind": "start"}, now=4.0)
    assert wd.running(now=6.0)["op"] == "insert"
    wd.on_event({"kind": "step", "cycle": 1, "step": 0}, now=7.0)
    run = wd.running(now=8.0)
    assert (run["cycle"], run["step"], run["op"], run["seconds"]) == (1, 1, "search", 1.0)


def test_the_watchdog_expires_a_step_over_its_own_limit_but_not_before() -> None:
    wd = _wd(step_limit=5.0)
    wd.on_event({"kind": "start"}, now=0.0)
    wd.on_event({"kind": "step", "cycle": 1, "step": 0}, now=10.0)
    assert wd.expired(now=14.9) is None
    hit = wd.expired(now=15.1)
    assert hit is not None and hit["limit"] == "step" and hit["running"]["op"] == "search"


def test_the_watchdog_expires_the_whole_run_at_its_limit() -> None:
    wd = _wd(step_limit=None, run=20.0)
    wd.on_event({"kind": "start"}, now=1.0)
    assert wd.expired(now=19.0) is None
    hit = wd.expired(now=20.5)
    assert hit is not None and hit["limit"] == "run" and hit["running"]["op"] == "insert"


def test_plan_positions_carry_each_step_timeout_and_end_with_close(tmp_path: Path) -> None:
    sc = parse_scenario(
        'dimension = 4\n[[cycle]]\nrepeat = 2\nsteps = [{ op = "insert", count = 3, '
        'timeout = 7 }, { op = "clear" }]\n'
    )
    pos = plan_positions(sc.plan)
    assert [(p.cycle, p.step, p.op, p.timeout) for p in pos] == [
        (1, 0, "insert", 7.0),
        (1, 1, "clear", None),
        (2, 0, "insert", 7.0),
        (2, 1, "clear", None),
        (2, 2, "close", None),
    ]


@pytest.mark.parametrize("bad", ["0", "-1", '"30"', "true"])
def test_a_timeout_that_is_not_a_positive_number_is_rejected_naming_the_field(bad: str) -> None:
    with pytest.raises(ScenarioError, match="field 'timeout': expected a number of seconds > 0"):
        parse_scenario(f'dimension = 4\ntimeout = {bad}\n[[cycle]]\nsteps = [{{ op = "clear" }}]\n')
    with pytest.raises(ScenarioError, match="cycle 1: step 0: field 'timeout'"):
        parse_scenario(f'dimension = 4\n[[cycle]]\nsteps = [{{ op = "clear", timeout = {bad} }}]\n')


def test_bundled_scenarios_still_load_without_timeouts() -> None:
    from memcycle.bundled import scenarios_dir

    sc = load_scenario(scenarios_dir() / "repeated-clear-insert.toml")
    assert sc.timeout is None and all(s.timeout is None for pc in sc.plan for s in pc.steps)


def test_under_a_tool_the_limits_are_stretched_by_its_measured_slowdown_and_fixed_price(
    tmp_path: Path,
) -> None:
    from memcycle.runner import _watchdog
    from memcycle.sanitizers import STEP_TIMEOUT_FACTOR, TIMEOUT_FACTOR, TIMEOUT_SLACK

    sc = parse_scenario(
        'dimension = 4\ntimeout = 30\n[[cycle]]\nsteps = [{ op = "clear", timeout = 2 }]\n'
    )
    for tool in ("asan", "valgrind"):
        watchdog, run_limit = _watchdog(sc, None, tool)
        assert run_limit == TIMEOUT_FACTOR[tool] * 30 + TIMEOUT_SLACK[tool]
        assert watchdog.positions[0].timeout == STEP_TIMEOUT_FACTOR[tool] * 2
    # valgrind's limit is no longer the 100x that held CI for hours on a hang
    assert _watchdog(sc, 30, "valgrind")[1] < 100 * 30
    assert (
        _watchdog(sc, 30, None)[1] == 30 and _watchdog(sc, None, None)[0].positions[0].timeout == 2
    )


def test_a_python_stack_dump_that_pauses_mid_line_is_read_whole(tmp_path: Path) -> None:
    """faulthandler writes in many small writes; a pause longer than one poll (valgrind, a
    loaded machine: CI once kept just "Thread 0x") must not cut the dump short."""
    import threading
    import time

    from memcycle.hangs import _read_dump

    dump = tmp_path / "python-stacks.txt"

    def write_slowly() -> None:
        with dump.open("w") as fh:
            fh.write("Thread 0x")
            fh.flush()
            time.sleep(0.7)  # more than two polls of 0.2 s
            fh.write('00007f (most recent call first):\n  File "engines_for_tests.py", line 9\n')

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        text = _read_dump(dump, wait=10.0)
    finally:
        writer.join()
    assert text.endswith('File "engines_for_tests.py", line 9\n'), text
