"""Judging decisions of memcycle.checks that mutation testing found untested (docs/mutation.md):
each test pins one decision from synthetic records, in the direction a mutant got past."""

from __future__ import annotations

from typing import Any

from memcycle.checks import GROWTH_RULES, growth, judge
from memcycle.protocol import TEARDOWN_OP
from memcycle.records import RunRecord, StepEvent
from memcycle.scenario import parse_scenario

PLAN = parse_scenario(
    """
dimension = 8
[[cycle]]
repeat = 6
steps = [ { op = "insert", count = 10 }, { op = "clear" } ]
""",
    "syn.toml",
).plan


def _record(**exit: Any) -> RunRecord:
    return RunRecord("syn", "syn.toml", "fake", "numpy", [], "clean", exit=exit)


def _cycles(n: int) -> list[StepEvent]:
    out = []
    for c in range(1, n + 1):
        out.append(StepEvent(c, 0, "insert", True, 0.1, 8, 10, 10))
        out.append(StepEvent(c, 1, "clear", True, 0.0, 8, 0, 0, memory={"rss": 1 << 26}))
    return out


def test_a_memray_leak_is_placed_at_the_first_cycle_risen_by_half_the_rise_floor() -> None:
    """The leak's cycle is where the growth became visible (half of the 32 KiB rise floor over
    the first judged cycle), not where it had risen by far more."""
    per_cycle = 20 * 1024
    markers = [{"index": c - 1, "cycle": c, "step": 1, "op": "clear"} for c in range(1, 7)]
    analysis = {
        "markers": [
            {"index": c - 1, "engine_live_bytes": 40_000_000 + per_cycle * c} for c in range(1, 7)
        ],
        "top_live": [],
    }
    rec = _record(kind="clean")
    rec.steps = _cycles(6)
    judge(rec, PLAN, markers=markers, analysis=analysis)
    assert rec.verdict == "leak"
    # cycle 1 is warm-up, cycle 2 the base; cycle 3 is 20 KiB above it (>= 16 KiB)
    assert rec.findings[0].cycle == 3


def test_a_sigabrt_after_the_last_step_without_a_failed_leak_check_is_a_crash() -> None:
    rec = _record(kind="signal", signal=6, signal_name="SIGABRT")
    rec.steps = _cycles(6)
    judge(rec, PLAN)
    assert rec.verdict == "crash"
    assert rec.findings[0].verdict == "crash"


def test_a_failed_leak_check_with_a_crash_before_teardown_is_still_the_crash() -> None:
    rec = _record(
        kind="signal",
        signal=11,
        signal_name="SIGSEGV",
        sanitizer={"leak_check_failed": "LeakSanitizer has encountered a fatal error"},
    )
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert rec.verdict == "crash"
    assert rec.findings[0].cycle == 3


def test_a_failed_leak_check_at_teardown_is_an_error_not_a_crash() -> None:
    rec = _record(
        kind="signal",
        signal=6,
        signal_name="SIGABRT",
        sanitizer={"leak_check_failed": "LeakSanitizer has encountered a fatal error"},
    )
    rec.steps = _cycles(6)
    judge(rec, PLAN)
    assert rec.verdict == "error"
    assert "LeakSanitizer failed" in rec.findings[-1].summary


FATAL = "Fatal Python error: Segmentation fault"


def test_a_signal_before_start_names_the_fatal_python_error_when_no_runtime_spoke() -> None:
    rec = _record(kind="signal", signal=11, signal_name="SIGSEGV", fatal_error=FATAL)
    judge(rec, PLAN, started=False)
    (finding,) = rec.findings
    assert finding.summary.endswith(f": {FATAL}")


def test_a_signal_in_a_step_names_the_fatal_python_error_when_no_runtime_spoke() -> None:
    rec = _record(kind="signal", signal=11, signal_name="SIGSEGV", fatal_error=FATAL)
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert rec.verdict == "crash"
    assert FATAL in rec.findings[0].summary


def test_an_nrt_count_that_jumps_up_and_down_is_no_leak_though_its_median_slope_rises() -> None:
    """The positive-slope share is a gate of its own: here the median pairwise slope (0.67)
    and the rise (6) pass the NRT floors, but only 56% of the slopes are positive (< 60%)."""
    noisy = [0, 0, 2, 8, 2, 0, 5, 0, 1, 8, 8]
    assert growth(noisy, GROWTH_RULES["nrt"]) is None
    steady = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert growth(steady, GROWTH_RULES["nrt"]) is not None


def test_a_sanitizer_leak_report_is_placed_at_the_teardown_after_the_last_cycle() -> None:
    """LSan reports at exit: its leak belongs to the teardown of the last cycle, whatever
    cycle the child was in when the report was read."""
    report = {
        "verdict": "leak",
        "kind": "detected memory leaks",
        "tool": "asan",
        "message": "LeakSanitizer: 64 bytes leaked",
        "alloc_stack": ["malloc", "engine_alloc"],
    }
    rec = _record(kind="exit", code=23, sanitizer={"reports": [report]})
    rec.steps = _cycles(2)  # the child exited after cycle 2 of 6
    judge(rec, PLAN)
    (leak,) = [f for f in rec.findings if f.verdict == "leak"]
    assert (leak.cycle, leak.step, leak.op) == (6, 2, TEARDOWN_OP)


def test_a_signal_without_a_native_stack_says_none_was_collected() -> None:
    rec = _record(kind="signal", signal=11, signal_name="SIGSEGV")
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert rec.findings[0].evidence["native_stack_absent"] == (
        "no native stack was collected for this run"
    )


def test_an_rss_rise_of_exactly_the_16_mib_floor_is_a_leak_and_just_under_it_is_not() -> None:
    """Six judged cycles: the rise is the mean of the last two minus that of the first two,
    four steps; the slope (one step) is far above the 1 MiB floor."""
    rule = GROWTH_RULES["rss"]
    mib = 1 << 20
    at_floor = [100 * mib + 4 * mib * k for k in range(7)]
    found = growth(at_floor, rule)
    assert found is not None and found["rise_bytes"] == 16 * mib
    under = [100 * mib + (4 * mib - 1) * k for k in range(7)]
    assert growth(under, rule) is None
