"""Judging decisions of memcycle.checks that mutation testing found untested (docs/mutation.md):
each test pins one decision from synthetic records, in the direction a mutant got past."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
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


# --- the growth rules' floors (checks_growth): each threshold is pinned at its value ---


def _linear(slope: float, n: int = 13, base: float = 50_000_000) -> list[float]:
    """n points rising by `slope` per point; judged from 13 points (one warm-up), the rise
    (median of the last third minus that of the first) is 8 slopes."""
    return [base + slope * k for k in range(n)]


def _one_jump(slow: float, jump: float) -> list[float]:
    """A slow median slope with a one-off jump in the last third: a large rise, a small slope."""
    return [50_000_000 + slow * k + (jump if k >= 9 else 0) for k in range(13)]


def test_memray_growth_of_exactly_4_kib_per_cycle_and_32_kib_rise_is_a_leak_one_byte_less_is_not() -> (
    None
):
    rule = GROWTH_RULES["memray"]
    found = growth(_linear(4 * 1024), rule)
    assert found is not None
    assert found["slope_per_cycle"] == 4 * 1024 and found["rise_bytes"] == 32 * 1024
    assert growth(_linear(4 * 1024 - 1), rule) is None


def test_tracemalloc_growth_of_exactly_16_kib_per_cycle_and_128_kib_rise_is_a_leak_one_byte_less_is_not() -> (
    None
):
    rule = GROWTH_RULES["tracemalloc"]
    found = growth(_linear(16 * 1024), rule)
    assert found is not None and found["rise_bytes"] == 128 * 1024
    assert growth(_linear(16 * 1024 - 1), rule) is None


def test_rss_growth_of_exactly_1_mib_per_cycle_over_26_cycles_is_a_leak_one_byte_less_is_not() -> (
    None
):
    """26 points: two warm-up cycles dropped, thirds of 8, so the rise is 16 slopes (16 MiB)."""
    rule = GROWTH_RULES["rss"]
    mib = 1 << 20
    found = growth(_linear(mib, n=26), rule)
    assert found is not None
    assert (found["slope_per_cycle"], found["rise_bytes"], found["warmup_cycles"]) == (
        mib,
        16 * mib,
        2,
    )
    assert growth(_linear(mib - 1, n=26), rule) is None


def test_a_one_off_jump_with_a_slow_median_slope_is_no_leak_in_any_byte_series() -> None:
    """The slope floor is a gate of its own: a rise far above every floor does not make a
    series of 100 bytes per cycle a leak."""
    for key in ("memray", "tracemalloc", "rss"):
        series = _one_jump(100, 64 << 20)
        assert growth(series, GROWTH_RULES[key]) is None, key
        # the same jump on a slope at the floor is one
        rule = GROWTH_RULES[key]
        assert growth(_one_jump(rule.slope_min, 64 << 20), rule) is not None, key


def test_nrt_growth_of_exactly_four_allocations_with_60_percent_positive_slopes_is_a_leak() -> None:
    """Both the NRT rise floor (4) and the positive-slope share (0.6) are met exactly."""
    rule = GROWTH_RULES["nrt"]
    found = growth([0, 0, 0, 0, 4, 4], rule)
    assert found is not None
    assert (found["rise_bytes"], found["positive_slope_share"]) == (4.0, 0.6)
    assert growth([0, 0, 0, 0, 3, 3], rule) is None


def test_python_blocks_growing_1000_per_cycle_by_3000_is_a_leak_and_999_per_cycle_is_not() -> None:
    """Five points, one warm-up: the thirds are single points, so the rise is 3 slopes."""
    rule = GROWTH_RULES["py_blocks"]
    found = growth([10_000 + 1000 * k for k in range(5)], rule)
    assert found is not None
    assert (found["slope_per_cycle"], found["rise_bytes"]) == (1000, 3000)
    assert growth([10_000 + 999 * k for k in range(5)], rule) is None


def test_four_points_are_enough_to_judge_growth_and_three_are_not() -> None:
    """Four points (three after the warm-up, thirds of one point): rise = last - first."""
    rule = GROWTH_RULES["rss"]
    step = 10 << 20
    found = growth([100 << 20, *(((100 << 20) + step * k) for k in range(1, 4))], rule)
    assert found is not None
    assert found["rise_bytes"] == 2 * step
    assert growth([(100 << 20) + step * k for k in range(3)], rule) is None


def test_a_long_series_drops_a_tenth_of_its_points_as_warm_up() -> None:
    found = growth(_linear(1 << 20, n=20), GROWTH_RULES["memray"])
    assert found is not None and found["warmup_cycles"] == 2


def test_the_slope_in_bytes_is_reported_for_byte_series_only() -> None:
    mem = growth(_linear(1 << 20), GROWTH_RULES["memray"])
    assert mem is not None and mem["slope_bytes_per_cycle"] == 1 << 20
    nrt = growth([0, 0, 1, 2, 3, 4, 5, 6], GROWTH_RULES["nrt"])
    assert nrt is not None and nrt["slope_bytes_per_cycle"] is None


def test_the_growth_rules_cannot_be_changed_at_run_time() -> None:
    """The child and the parent judge by the same rules: no one may edit them in place."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        GROWTH_RULES["rss"].rise_min = 0  # type: ignore[misc]
