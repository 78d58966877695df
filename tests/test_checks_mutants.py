"""Judging decisions of memcycle.checks that mutation testing found untested (docs/mutation.md):
each test pins one decision from synthetic records, in the direction a mutant got past."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from memcycle.checks import (
    GROWTH_RULES,
    _cap,
    _skip_findings,
    growth,
    judge,
    summarize_cycles,
    was_skipped,
)
from memcycle.checks_exit import _last_error_line, _next_position, _tail
from memcycle.checks_leaks import _growth_findings, _ledger_findings, growing_types
from memcycle.checks_steps import _step_findings, is_api_mismatch
from memcycle.protocol import TEARDOWN_OP
from memcycle.records import LEDGER_NEW_VIOLATIONS, Finding, RunRecord, StepEvent
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


def test_tracemalloc_growth_at_its_slope_floor_is_a_leak_only_once_it_has_risen_128_kib() -> None:
    """The rise floor on its own: 16 KiB a cycle over 11 cycles rises 112 KiB (not yet a
    leak), over 12 cycles 128 KiB (a leak); the slope is at its floor in both."""
    rule = GROWTH_RULES["tracemalloc"]
    assert growth(_linear(16 * 1024, n=11), rule) is None
    found = growth(_linear(16 * 1024, n=12), rule)
    assert found is not None and found["rise_bytes"] == 128 * 1024


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


# --- how the child ended (checks_exit) ---

TWO_TABLES = parse_scenario(
    """
dimension = 8
[[cycle]]
steps = [ { op = "insert", count = 10 }, { op = "clear" } ]
[[cycle]]
steps = [ { op = "clear" }, { op = "insert", count = 3 } ]
""",
    "two.toml",
).plan


def test_the_place_of_a_death_is_the_step_after_the_last_one_reported() -> None:
    assert _next_position((), []) == (1, 0, "?")
    assert _next_position(TWO_TABLES, []) == (1, 0, "insert")
    first = StepEvent(1, 0, "insert", True, 0.1, 8, 10, 10)
    assert _next_position(TWO_TABLES, [first]) == (1, 1, "clear")
    end_of_first = StepEvent(1, 1, "clear", True, 0.0, 8, 0, 0)
    assert _next_position(TWO_TABLES, [first, end_of_first]) == (2, 0, "clear")
    last = StepEvent(2, 1, "insert", True, 0.0, 8, 3, 3)
    assert _next_position(TWO_TABLES, [first, end_of_first, last]) == (2, 2, TEARDOWN_OP)


def test_the_cause_of_a_death_before_start_is_the_last_error_line_of_stderr() -> None:
    stderr = "Traceback (most recent call last):\n  File 'x.py'\nImportError: bad build\n  hint\n"
    assert _last_error_line(stderr) == "ImportError: bad build"
    assert _last_error_line("loading\n  No module named 'eng'\nbye\n") == "No module named 'eng'"
    assert _last_error_line("one\ntwo\nthree\n") == "three"
    assert _last_error_line("") == ""
    assert _last_error_line(None) == ""


def test_a_stderr_tail_keeps_the_last_25_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(40))
    assert _tail(text).splitlines() == [f"line {i}" for i in range(15, 40)]


def _asan_report(kind: str = "heap-use-after-free", stack: str = "engine_free") -> dict[str, Any]:
    return {
        "verdict": "use-after-free",
        "kind": kind,
        "tool": "asan",
        "message": f"AddressSanitizer: {kind}",
        "fault_stack": [stack],
        "cycle": 2,
        "step": 0,
        "op": "insert",
        "frames": {"stack": [{"function": stack, "engine": True}]},
    }


def test_each_distinct_sanitizer_report_is_one_finding_and_a_repeat_is_dropped() -> None:
    reports = [_asan_report(), _asan_report(), _asan_report("heap-buffer-overflow", "seg_store")]
    rec = _record(kind="exit", code=1, sanitizer={"reports": reports})
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    kinds = [f.evidence["violation"]["kind"] for f in rec.findings if f.evidence.get("violation")]
    assert kinds == ["heap-use-after-free", "heap-buffer-overflow"]
    first = next(f for f in rec.findings if f.evidence.get("violation"))
    assert first.evidence["cycles"] == [2]
    assert first.evidence["native_stack"] == [{"function": "engine_free", "engine": True}]
    assert first.summary.endswith(", in engine_free")
    assert "signal" not in first.evidence


def test_a_sanitizer_report_with_a_signal_keeps_the_signal_in_its_evidence() -> None:
    rec = _record(
        kind="signal", signal=6, signal_name="SIGABRT", sanitizer={"reports": [_asan_report()]}
    )
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    (found,) = rec.findings
    assert found.verdict == "use-after-free"
    assert (found.evidence["signal"], found.evidence["signal_name"]) == (6, "SIGABRT")
    assert found.evidence["signal_class"] == "crash"


def test_a_sigsegv_with_a_sanitizer_report_is_a_crash_and_the_report() -> None:
    """Only a SIGABRT (abort_on_error) or an exit code is explained by the report."""
    rec = _record(
        kind="signal", signal=11, signal_name="SIGSEGV", sanitizer={"reports": [_asan_report()]}
    )
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert [f.verdict for f in rec.findings] == ["crash", "use-after-free"]


def test_a_timeout_with_a_sanitizer_report_is_a_timeout_and_the_report() -> None:
    rec = _record(kind="timeout", timeout=5, sanitizer={"reports": [_asan_report()]})
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert [f.verdict for f in rec.findings] == ["timeout", "use-after-free"]


def test_a_child_that_started_and_died_before_its_first_step_dies_at_that_step() -> None:
    rec = _record(kind="signal", signal=11, signal_name="SIGSEGV")
    judge(rec, PLAN, started=True)
    (found,) = rec.findings
    assert (found.verdict, found.cycle, found.step, found.op) == ("crash", 1, 0, "insert")


def test_an_exit_code_with_forged_lines_is_a_crash_that_names_them_and_without_them_does_not() -> (
    None
):
    forged = _record(kind="exit", code=9, forged_events=2)
    forged.steps = _cycles(2)
    judge(forged, PLAN)
    (found,) = forged.findings
    assert found.summary.startswith("child exited with code 9 in cycle 3 at insert")
    assert "2 event line(s) not the child's" in found.summary
    plain = _record(kind="exit", code=9)
    plain.steps = _cycles(2)
    judge(plain, PLAN)
    assert "not the child's" not in plain.findings[0].summary


def test_a_crash_names_the_engine_function_only_when_the_stack_has_one() -> None:
    stack = [{"function": "libc_memcpy"}, {"function": "seg_store", "engine": True}]
    named = _record(kind="signal", signal=11, signal_name="SIGSEGV", native_stack=stack)
    named.steps = _cycles(2)
    judge(named, PLAN)
    assert named.findings[0].summary.startswith("SIGSEGV in cycle 3 at insert, in seg_store")
    bare = _record(kind="signal", signal=11, signal_name="SIGSEGV")
    bare.steps = _cycles(2)
    judge(bare, PLAN)
    assert ", in " not in bare.findings[0].summary


def test_a_step_timeout_names_the_step_limit_and_the_running_step() -> None:
    running = {"phase": "step", "cycle": 3, "step": 1, "op": "clear", "seconds": 2.0}
    stack = [{"function": "seg_wait", "engine": True}]
    rec = _record(
        kind="timeout", timeout=5, timeout_limit="step", running=running, native_stack=stack
    )
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    (found,) = rec.findings
    assert (found.cycle, found.step, found.op) == (3, 1, "clear")
    assert found.summary == (
        "no end after 5 s (step limit): cycle 3 step 1 (clear), running for 2.0 s, in seg_wait"
    )


def test_a_run_timeout_between_steps_names_the_run_limit_and_no_function() -> None:
    rec = _record(kind="timeout", timeout=5, running={"phase": "between", "op": "teardown"})
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert rec.findings[0].summary == "no end after 5 s (run limit): teardown"


def test_a_crash_keeps_the_native_stack_method_note_and_threads() -> None:
    rec = _record(
        kind="signal",
        signal=11,
        signal_name="SIGSEGV",
        native_stack=[{"function": "f"}],
        native_stack_method="gdb",
        native_stack_note="partial",
        native_threads=[{"id": 1}],
    )
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    ev = rec.findings[0].evidence
    assert (ev["native_stack_method"], ev["native_stack_note"], ev["native_threads"]) == (
        "gdb",
        "partial",
        [{"id": 1}],
    )


# --- leaks at the reset points (checks_leaks) ---


def _resets(memories: list[dict[str, Any]], op: str = "clear") -> list[StepEvent]:
    """One successful reset per cycle, carrying that cycle's memory figures."""
    return [
        StepEvent(c, 1, op, True, 0.0, 8, 0, 0, memory=mem) for c, mem in enumerate(memories, 1)
    ]


def _ledger(live_blocks: int, live_bytes: int, **extra: Any) -> dict[str, Any]:
    return {"ledger": {"live_blocks": live_blocks, "live_bytes": live_bytes, **extra}}


def test_only_a_successful_reset_is_judged_by_the_ledger() -> None:
    live = _ledger(2, 64)
    not_reset = StepEvent(1, 0, "insert", True, 0.1, 8, 10, 10, memory=live)
    failed = StepEvent(1, 1, "clear", False, 0.0, 8, 0, 0, memory=live)
    skipped = StepEvent(2, 1, "clear", True, 0.0, 8, 0, 0, memory=live, skipped=True)
    assert _ledger_findings([not_reset, failed, skipped]) == []
    assert len(_ledger_findings([StepEvent(3, 1, "clear", True, 0.0, 8, 0, 0, memory=live)])) == 1


def test_a_ledger_without_a_live_block_count_is_no_leak() -> None:
    assert _ledger_findings(_resets([{"ledger": {"cached_bytes": 0}}])) == []


def test_a_ledger_leak_grows_only_when_the_last_reset_holds_more_bytes_than_the_first() -> None:
    def growing(*live_bytes: int) -> bool:
        (found,) = _ledger_findings(_resets([_ledger(1, b) for b in live_bytes]))
        assert found.evidence["growing"] == ("; growing every cycle" in found.summary)
        return bool(found.evidence["growing"])

    assert growing(64) is False
    assert growing(64, 64) is False
    assert growing(64, 128) is True
    assert growing(64, 64, 128) is True  # the last against the first, not the second
    assert growing(64, 128, 128) is True
    assert growing(128, 64, 128) is False


def test_a_ledger_leak_names_the_site_of_the_biggest_label_at_the_last_reset() -> None:
    first = _ledger(1, 64, by_label={"graph": {"bytes": 64, "stack": ["old_site", "x"]}})
    middle = _ledger(2, 96, by_label={"graph": {"bytes": 96, "stack": ["mid_site", "x"]}})
    last = _ledger(
        3,
        160,
        by_label={
            "graph": {"bytes": 32, "stack": ["graph_site", "x"]},
            "vectors": {"bytes": 128, "stack": ["vec_alloc", "engine_insert", "deeper"]},
        },
    )
    (found,) = _ledger_findings(_resets([first, middle, last]))
    assert found.summary.endswith(
        "; newest 'vectors' block allocated at vec_alloc <- engine_insert"
    )


def _growth(
    memories: list[dict[str, Any]],
    *,
    tool: str | None = None,
    tables: dict[int, int] | None = None,
    analysis: dict[str, Any] | None = None,
    markers: list[dict[str, Any]] | None = None,
) -> list[Any]:
    return _growth_findings(_resets(memories), markers or [], analysis, tool, len(memories), tables)


MIB = 1 << 20


def test_a_tracemalloc_series_growing_after_each_clear_is_a_leak() -> None:
    (found,) = _growth([{"tracemalloc": 10 * MIB + k * MIB} for k in range(8)])
    assert found.evidence["source"] == "tracemalloc traced bytes"


def test_tracemalloc_and_python_blocks_are_judged_over_the_last_cycle_table_only() -> None:
    """Cycles 1-11 of one table grow, cycle 12 is the only one of the last table: nothing
    to judge; and a run that recorded neither still judges its other series."""
    rising = [
        {"tracemalloc": 10 * MIB + k * MIB, "py_blocks": 10_000 + 5000 * k} for k in range(11)
    ]
    flat = {"tracemalloc": 10 * MIB, "py_blocks": 10_000}
    tables = {c: 1 for c in range(1, 12)} | {12: 2}
    assert _growth([*rising, flat], tables=tables) == []
    # one table: the same series is a leak (tracemalloc first, py_blocks in `also`)
    (found,) = _growth(rising, tables={c: 1 for c in range(1, 12)})
    assert found.evidence["source"] == "tracemalloc traced bytes"
    assert list(found.evidence["also"]) == ["py_blocks"]
    rss_only = [{"rss": 100 * MIB + 4 * MIB * k} for k in range(8)]
    (found,) = _growth(rss_only, tables={c: 1 for c in range(1, 9)})
    assert found.evidence["source"] == "RSS"


def test_rss_is_not_judged_under_a_sanitizer_or_valgrind() -> None:
    rss = [{"rss": 100 * MIB + 4 * MIB * k} for k in range(8)]
    assert len(_growth(rss)) == 1
    assert _growth(rss, tool="asan") == []


def _memray_run(per_cycle: int) -> list[Any]:
    markers = [{"index": c - 1, "cycle": c, "step": 1} for c in range(1, 9)]
    analysis = {
        "markers": [
            {"index": c - 1, "engine_live_bytes": 40_000_000 + per_cycle * c} for c in range(1, 9)
        ],
        "native_traces": True,
    }
    return _growth([{} for _ in range(8)], markers=markers, analysis=analysis)


def test_a_memray_leak_starts_at_the_cycle_exactly_half_the_rise_floor_above_the_base() -> None:
    """Cycle 2 is the base: at 8 KiB per cycle, cycle 4 is exactly 16 KiB above it; at
    12 KiB per cycle, cycle 3 (12 KiB) is not yet and cycle 4 is."""
    (found,) = _memray_run(8 * 1024)
    assert found.cycle == 4
    assert found.evidence["cycles"] == [4, 5, 6, 7, 8]
    (found,) = _memray_run(12 * 1024)
    assert found.cycle == 4


def test_a_memray_leak_says_whether_memray_saw_native_frames() -> None:
    (found,) = _memray_run(8 * 1024)
    assert found.evidence["memray_native_traces"] is True
    assert "memray_native_note" not in found.evidence
    markers = [{"index": c - 1, "cycle": c, "step": 1} for c in range(1, 9)]
    analysis = {
        "markers": [{"index": c - 1, "engine_live_bytes": 8192 * c} for c in range(1, 9)],
    }
    (found,) = _growth([{} for _ in range(8)], markers=markers, analysis=analysis)
    assert found.evidence["memray_native_traces"] is False
    assert "--native" in found.evidence["memray_native_note"]


def test_a_python_block_leak_is_counted_in_whole_blocks() -> None:
    (found,) = _growth([{"py_blocks": 10_000 + 2000 * k} for k in range(8)])
    assert "grow 2,000 blocks per cycle" in found.summary


def _objects(*counts: dict[str, int]) -> dict[int, StepEvent]:
    return {c: ev for c, ev in enumerate(_resets([{"py_objects": d} for d in counts]), 1)}


def test_a_type_growing_by_one_object_per_cycle_is_named_and_a_flat_one_is_not() -> None:
    points = _objects({"dict": 10, "Flat": 3}, {"dict": 11, "Flat": 3, "New": 1})
    types = growing_types(points, [1, 2], warmup=0)
    assert [(t["type"], t["per_cycle"], t["delta"]) for t in types] == [
        ("dict", 1.0, 1),
        ("New", 1.0, 1),
    ]


def test_growing_types_start_after_the_warm_up_but_never_at_the_last_point() -> None:
    points = _objects({"dict": 0}, {"dict": 100}, {"dict": 110})
    (t,) = growing_types(points, [1, 2, 3], warmup=5)
    assert (t["delta"], t["per_cycle"]) == (10, 10.0)
    (t,) = growing_types(points, [1, 2, 3], warmup=0)
    assert t["delta"] == 110


def test_at_most_five_growing_types_are_named_most_objects_per_cycle_first() -> None:
    points = _objects({"T1": 0}, {f"T{i}": 10 * i for i in range(1, 8)})
    assert [t["type"] for t in growing_types(points, [1, 2], warmup=0)] == [
        "T7",
        "T6",
        "T5",
        "T4",
        "T3",
    ]


# --- the steps that ran (checks_steps) ---


def _step(op: str = "search", cycle: int = 1, **kw: Any) -> StepEvent:
    ok = kw.pop("ok", True)
    return StepEvent(cycle, 0, op, ok, 0.1, 8, kw.pop("count", 10), kw.pop("expected", 10), **kw)


def _wrong(steps: list[StepEvent]) -> list[str]:
    return [f.summary for f in _step_findings(steps) if f.verdict == "wrong-result"]


def test_a_type_error_of_a_call_signature_is_an_api_mismatch_with_or_without_its_module() -> None:
    message = "f() got an unexpected keyword argument 'ef'"
    assert is_api_mismatch({"type": "TypeError", "message": message})
    assert is_api_mismatch({"type": "builtins.TypeError", "message": message})


def test_a_failed_or_skipped_step_has_no_count_to_check() -> None:
    failed = _step("insert", ok=False, count=3, expected=10)
    skipped = _step("insert", count=3, expected=10, skipped="no insert")
    assert _wrong([failed, skipped]) == []
    assert len(_wrong([_step("insert", count=3, expected=10)])) == 1


def test_a_recall_exactly_at_the_floor_passes_and_just_under_it_is_a_wrong_result() -> None:
    assert _wrong([_step(recall=0.9, min_recall=0.9)]) == []
    assert len(_wrong([_step(recall=0.899, min_recall=0.9)])) == 1


def test_short_answers_say_how_many_hits_came_back_when_it_is_known() -> None:
    known = {"short_rows": 2, "returned_results": 3, "expected_results": 5, "n_stale": 0}
    (summary,) = _wrong([_step(check=known)])
    assert summary.endswith("short answers in 2 queries (3 of 5 requested hits returned; 0 stale)")
    (summary,) = _wrong([_step(check={"short_rows": 1})])
    assert summary.endswith("short answers in 1 query")


def test_an_answer_that_breaks_the_protocol_is_a_wrong_result() -> None:
    (summary,) = _wrong([_step(check={"protocol": ["ids not int64"]})])
    assert summary.endswith("answer breaks the protocol: ids not int64")


def test_a_get_that_lost_a_row_is_a_wrong_result_named_get() -> None:
    (summary,) = _wrong([_step("get", check={"n_missing": 1, "missing_ids": [7]})])
    assert summary == "get in cycle 1: 1 live row(s) lost, ids [7]"


def _dups(**chk: Any) -> dict[str, Any]:
    return {"duplicates": 2, "policy": "refuse", "refused": False, **chk}


def test_an_accepted_batch_of_duplicates_under_refuse_is_named_first_then_the_lost_rows() -> None:
    (summary,) = _wrong([_step("insert", check=_dups(n_missing=1, missing_ids=[3]))])
    assert summary == (
        "insert with duplicate ids in cycle 1: a batch with 2 duplicate id(s) was accepted, but "
        "the adapter declares duplicate_ids = 'refuse'; 1 live row(s) lost, ids [3]"
    )


def test_duplicates_are_wrong_only_when_refuse_is_declared_and_the_batch_was_accepted() -> None:
    assert len(_wrong([_step("insert", check=_dups())])) == 1
    assert _wrong([_step("insert", check=_dups(refused=True))]) == []
    assert _wrong([_step("insert", check=_dups(policy="overwrite"))]) == []
    assert _wrong([_step("insert", check=_dups(duplicates=0))]) == []


def test_a_violation_in_several_cycles_names_them_and_in_one_cycle_does_not() -> None:
    def violation(cycle: int) -> StepEvent:
        v = {"verdict": "double-free", "label": "graph", "message": "freed twice"}
        return _step("clear", cycle, memory={"ledger": {LEDGER_NEW_VIOLATIONS: [v]}})

    (one,) = _step_findings([violation(1)])
    assert "[in" not in one.summary
    (two,) = _step_findings([violation(1), violation(2)])
    assert two.summary.endswith(" [in 2 cycles: 1..2]")


# --- the judgement of one run (checks_judge, checks_skips) ---


def test_a_run_is_skipped_in_part_by_its_verdict_its_skip_findings_or_any_skipped_step() -> None:
    whole = _record(kind="clean")
    whole.verdict = "skipped"
    assert was_skipped(whole)
    found = _record(kind="clean")
    found.findings = [Finding("skipped", 1, 0, "delete", "1 step skipped")]
    assert was_skipped(found)
    step = _record(kind="clean")
    step.steps = [_step("delete", skipped="no delete")]
    assert was_skipped(step)
    assert not was_skipped(_record(kind="clean"))


def test_a_child_that_reported_its_capabilities_had_started_when_it_died() -> None:
    """Without `started`, capabilities alone (no step yet) mean the engine was built."""
    rec = _record(kind="signal", signal=11, signal_name="SIGSEGV")
    rec.capabilities = {"delete": True}
    judge(rec, PLAN)
    (found,) = rec.findings
    assert (found.cycle, found.step, found.op) == (1, 0, "insert")
    told = _record(kind="signal", signal=11, signal_name="SIGSEGV")
    told.capabilities = {"delete": True}
    judge(told, PLAN, started=False)
    assert told.findings[0].op == "setup"


def test_more_than_ten_findings_of_a_verdict_fold_into_one_placed_at_the_first_folded() -> None:
    findings = [Finding("wrong-result", c, 0, "search", f"bad {c}") for c in range(1, 13)]
    kept = _cap(findings)
    assert len(kept) == 11
    assert (kept[-1].cycle, kept[-1].summary) == (
        11,
        "... 2 more wrong-result finding(s) in cycles 11..12",
    )


def test_the_cycle_rows_mark_a_cycleless_finding_at_the_first_cycle_and_skip_setup_ones() -> None:
    rec = _record(kind="clean")
    rec.steps = [
        StepEvent(1, 0, "insert", True, 0.25, 8, 10, 10),
        StepEvent(2, 0, "clear", True, 0.5, 8, 0, 0),
    ]
    rec.findings = [
        Finding("error", None, None, "setup", "engine setup failed"),
        Finding("lifecycle-error", 2, 0, "clear", "raised"),
    ]
    rows = summarize_cycles(rec, TWO_TABLES, [], None)
    assert [(r.status, r.seconds) for r in rows] == [("ok", 0.25), ("lifecycle-error", 0.5)]
    rec.findings = [Finding("error", None, None, "teardown", "no cycle named")]
    rows = summarize_cycles(rec, TWO_TABLES, [], None)
    assert [r.status for r in rows] == ["error", "ok"]


def test_judge_takes_its_options_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        judge(_record(kind="clean"), PLAN, [])  # type: ignore[misc]


# --- the bounds on a summary's length and on the evidence lists ---

LONG = "x" * 2000


def test_each_summary_is_cut_at_its_bound() -> None:
    """300 characters for one-line summaries, 400 for leaks and sanitizer reports."""
    setup = _record(kind="exit", code=1)
    judge(setup, PLAN, setup_error={"type": "ValueError", "message": LONG}, started=True)
    assert len(setup.findings[0].summary) == 300
    before = _record(kind="exit", code=1, stderr_tail=f"RuntimeError: {LONG}")
    judge(before, PLAN, started=False)
    assert len(before.findings[0].summary) == 300
    lsan = _record(
        kind="signal", signal=6, signal_name="SIGABRT", sanitizer={"leak_check_failed": LONG}
    )
    lsan.steps = _cycles(6)
    judge(lsan, PLAN)
    assert len(lsan.findings[-1].summary) == 300
    report = {**_asan_report(), "message": LONG}
    san = _record(kind="exit", code=1, sanitizer={"reports": [report]})
    san.steps = _cycles(2)
    judge(san, PLAN)
    assert len(san.findings[0].summary) == 400
    raised = _step("insert", error={"type": "ValueError", "message": LONG})
    assert len(_step_findings([raised])[0].summary) == 300
    v = {"verdict": "double-free", "label": "g", "message": LONG}
    violation = _step("clear", memory={"ledger": {LEDGER_NEW_VIOLATIONS: [v]}})
    assert len(_step_findings([violation])[0].summary) == 300
    lost = _step(
        "get",
        check={"n_missing": 1, "missing_ids": [1], "n_mismatched": 1, "mismatched_ids": [LONG]},
    )
    assert len(_step_findings([lost])[0].summary) == 300
    many = [
        _step("clear", c, memory={"ledger": {LEDGER_NEW_VIOLATIONS: [v]}})
        for c in range(1001, 1060, 2)
    ]
    assert len(_step_findings(many)[0].summary) == 300
    skipped = [_step("delete", 1, skipped=LONG)]
    assert len(_skip_findings(skipped)[0].summary) == 300
    label = {"ledger": {"live_blocks": 1, "live_bytes": 8, "by_label": {LONG: {"bytes": 8}}}}
    assert len(_ledger_findings(_resets([label]))[0].summary) == 400


def test_a_growth_leak_summary_is_cut_at_400_and_names_three_growing_types() -> None:
    mems = [
        {
            "rss": 100 * MIB + 4 * MIB * k,
            "py_objects": {f"T{i}{LONG[:200]}": 10 * i * k for i in range(1, 6)},
        }
        for k in range(8)
    ]
    (found,) = _growth(mems)
    assert len(found.summary) == 400
    short = [
        {"rss": 100 * MIB + 4 * MIB * k, "py_objects": {f"T{i}": 10 * i * k for i in range(1, 6)}}
        for k in range(8)
    ]
    (found,) = _growth(short)
    assert found.summary.count(" objects per cycle") == 3


def test_the_evidence_lists_are_bounded() -> None:
    v = {"verdict": "double-free", "label": "g", "message": "twice"}
    odd = [
        _step("clear", c, memory={"ledger": {LEDGER_NEW_VIOLATIONS: [v]}}) for c in range(1, 60, 2)
    ]
    (found,) = _step_findings(odd)
    assert found.summary.endswith(", ".join(str(c) for c in range(1, 40, 2)) + "]")
    skipped = [_step("delete", c, skipped="no delete") for c in range(1, 260)]
    assert len(_skip_findings(skipped)[0].evidence["skipped_steps"]) == 200
    folded = _cap([Finding("crash", c, 0, "x", f"s{c}") for c in range(1, 41)])
    assert len(folded[-1].evidence["summaries"]) == 20
    led = _ledger_findings(_resets([_ledger(1, 8 * k) for k in range(1, 61)]))
    assert len(led[0].evidence["after_resets"]) == 50
    top = [{"n": i} for i in range(9)]
    markers = [{"index": c - 1, "cycle": c, "step": 1} for c in range(1, 9)]
    analysis = {
        "markers": [{"index": c - 1, "engine_live_bytes": 8192 * c} for c in range(1, 9)],
        "top_growth": top,
        "top_live": top,
    }
    (found,) = _growth([{} for _ in range(8)], markers=markers, analysis=analysis)
    assert found.evidence["top_growth"] == top[:5] and found.evidence["top_live"] == top[:5]


def test_a_memray_leak_with_no_cycle_half_the_floor_above_its_base_is_placed_at_the_last() -> None:
    """A high first judged cycle (the base), then a steady rise that never gets 16 KiB above
    it: the growth is a leak, and the only cycle to name is the last one sampled."""
    kib = 1024
    live = [0, 40 * kib, 0, *(5 * kib * k for k in range(1, 11))]
    markers = [{"index": c - 1, "cycle": c, "step": 1} for c in range(1, 14)]
    analysis = {"markers": [{"index": i, "engine_live_bytes": b} for i, b in enumerate(live)]}
    (found,) = _growth([{} for _ in range(13)], markers=markers, analysis=analysis)
    assert max(live) < live[1] + 16 * kib
    assert found.cycle == 13 and found.evidence["cycles"] == [13]


def test_a_ledger_label_without_a_byte_count_is_taken_as_holding_none() -> None:
    by_label = {
        "graph": {"bytes": 0, "stack": ["graph_site"]},
        "meta": {"stack": ["meta_site"]},
    }
    (found,) = _ledger_findings(_resets([_ledger(1, 8, by_label=by_label)]))
    assert found.summary.endswith("; newest 'graph' block allocated at graph_site")
