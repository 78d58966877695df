"""Leaks found at small sizes: Python-object counts, adaptive confirmation, every verdict shown.

The engines are in tests/engines_for_tests.py (PyListLeak, BoundedCache, LateFree,
WrongAndLeaky); each run is one child on a 5-cycle table, with memray on as `memcycle run`
does by default.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from memcycle import gate
from memcycle.baseline import make_baseline
from memcycle.checks import CONFIRM_LABEL, GROWTH_RULES, judge
from memcycle.records import Report, RunRecord, StepEvent, verdict_set
from memcycle.reporters.console import format_run
from memcycle.runner import run_one
from memcycle.scenario import parse_scenario

FIVE_CYCLES = """
name = "five-cycles"
dimension = 8
seed = 3
[[cycle]]
repeat = 5
steps = [ { op = "insert", count = 200 }, { op = "search", queries = 5, k = 5 }, { op = "clear" } ]
"""


def _run(tmp_path: Path, factory: str, text: str = FIVE_CYCLES, **options: object) -> RunRecord:
    path = tmp_path / "table.toml"
    path.write_text(text, encoding="utf-8")
    return run_one(
        path,
        f"tests.engines_for_tests:{factory}",
        options=dict(options),
        flamegraphs="none",
    )


def test_a_128_kib_per_cycle_leak_of_python_lists_is_a_leak_on_a_5_cycle_table(
    tmp_path: Path,
) -> None:
    rec = _run(tmp_path, "make_pylist_leak", leak_kib=128)
    assert rec.verdict == "leak", format_run(rec)
    leak = next(f for f in rec.findings if f.verdict == "leak")
    # memray (engine-attributed arenas) or the Python-blocks series: either way the Python
    # blocks series rises too, and the types are named
    signals = {leak.evidence["source"], *(e["source"] for e in leak.evidence["also"].values())}
    assert "Python allocated blocks" in signals, signals
    types = leak.evidence["growing_types"]
    assert types[0]["type"] == "list"
    assert 150 <= types[0]["per_cycle"] <= 300  # ~230 lists of 16 floats per cycle
    assert "list objects per cycle" in leak.summary


def test_a_bounded_cache_that_grows_for_three_cycles_then_stays_is_clean(tmp_path: Path) -> None:
    rec = _run(tmp_path, "make_bounded_cache", leak_kib=128, cache_cycles=3)
    assert rec.verdict == "clean", format_run(rec)


def test_a_free_one_cycle_late_is_clean(tmp_path: Path) -> None:
    rec = _run(tmp_path, "make_late_free", leak_kib=128)
    assert rec.verdict == "clean", format_run(rec)


def test_a_run_with_a_recall_failure_and_a_leak_shows_both(tmp_path: Path) -> None:
    rec = _run(tmp_path, "make_wrong_and_leaky", leak_kib=128)
    assert rec.verdict == "wrong-result"
    assert rec.verdicts == ["wrong-result", "leak"]
    text = format_run(rec)
    assert "verdict=wrong-result + leak" in text.splitlines()[0]
    assert "  - leak: " in text  # the leak is on screen next to the wrong results


def test_confirmation_repeats_measure_the_engine_not_the_harness_code_they_need(
    tmp_path: Path,
) -> None:
    """A cache that grows over a short table's cycles, then stays, triggers extra repeats; the
    child must not import its judging code at that moment (tracemalloc would count the import,
    hundreds of KiB of functions and dataclass fields, as the engine's growth: a false leak)."""
    three = FIVE_CYCLES.replace("repeat = 5", "repeat = 3")
    path = tmp_path / "table.toml"
    path.write_text(three, encoding="utf-8")
    rec = run_one(
        path,
        "tests.engines_for_tests:make_bounded_cache",
        options={"leak_kib": 24, "cache_cycles": 3},
        memray=False,  # tracemalloc on: the recorder that sees Python allocations
        flamegraphs="none",
    )
    assert len(rec.cycles) > 3, "the rising tracemalloc series should have asked for repeats"
    assert rec.verdict == "clean", format_run(rec)


def test_a_leak_on_a_two_cycle_table_is_confirmed_by_extra_repeats(tmp_path: Path) -> None:
    two = FIVE_CYCLES.replace("repeat = 5", "repeat = 2")
    rec = _run(tmp_path, "make_pylist_leak", two, leak_kib=128)
    assert rec.verdict == "leak", format_run(rec)
    leak = next(f for f in rec.findings if f.verdict == "leak")
    assert leak.evidence["confirmation_cycles"] >= 2
    assert "extra repeats to confirm" in leak.summary
    assert [c.cycle for c in rec.cycles][:2] == [1, 2] and len(rec.cycles) > 2


def _reset(cycle: int, blocks: int, lists: int) -> StepEvent:
    return StepEvent(
        cycle=cycle,
        step=1,
        op="clear",
        ok=True,
        seconds=0.0,
        count=0,
        expected_count=0,
        memory={"rss": 1, "py_blocks": blocks, "py_objects": {"list": lists, "dict": 100}},
    )


def _judged(blocks: list[int]) -> RunRecord:
    sc = parse_scenario(FIVE_CYCLES.replace("repeat = 5", f"repeat = {len(blocks)}"))
    rec = RunRecord("s", "s.toml", "e", "numpy", [], "clean")
    rec.steps = [_reset(i + 1, b, 1000 + b // 10) for i, b in enumerate(blocks)]
    return judge(rec, sc.plan)


def test_python_block_growth_is_judged_like_the_other_series() -> None:
    step = int(GROWTH_RULES["py_blocks"].slope_min * 4)
    assert _judged([100_000 + step * i for i in range(5)]).verdict == "leak"
    plateau = [100_000, 100_000 + step, 100_000 + 2 * step] + [100_000 + 3 * step] * 5
    assert _judged(plateau).verdict == "clean"
    assert _judged([100_000 + 150 * i for i in range(8)]).verdict == "clean"  # harness noise


def test_extra_cycles_are_counted_in_the_finding() -> None:
    sc = parse_scenario(FIVE_CYCLES.replace("repeat = 5", "repeat = 2"))
    last = sc.plan[-1]
    plan = sc.plan + tuple(
        type(last)(i, last.dimension, last.steps, last.table, CONFIRM_LABEL) for i in (3, 4, 5, 6)
    )
    rec = RunRecord("s", "s.toml", "e", "numpy", [], "clean")
    rec.steps = [_reset(i, 100_000 + 5000 * i, 1000 + 230 * i) for i in range(1, 7)]
    judge(rec, plan)
    leak = rec.findings[0]
    assert leak.evidence["confirmation_cycles"] == 4
    assert "+230 list objects per cycle" in leak.summary


def test_verdict_set_puts_the_most_severe_first_and_leaves_skipped_out() -> None:
    assert verdict_set(["leak", "wrong-result", "leak", "skipped"]) == ["wrong-result", "leak"]
    assert verdict_set([]) == []
    assert verdict_set(["skipped"]) == ["skipped"]


def _record(verdicts: list[str]) -> RunRecord:
    rec = RunRecord("s", "s.toml", "refimpl", "numpy", [], "wrong-result")
    rec.verdict, rec.verdicts = verdicts[0], verdicts
    return rec


def _report(rec: RunRecord) -> Report:
    return Report(run_id="r", created="2026-01-01T00:00:00+00:00", runs=[rec])


def test_the_gate_calls_a_new_verdict_class_next_to_the_same_headline_a_regression() -> None:
    baseline = make_baseline(_report(_record(["wrong-result"])))
    regressions = gate.compare(baseline, _report(_record(["wrong-result", "leak"])))
    assert [c.metric for c in regressions] == ["verdicts"]
    assert "new verdict class leak" in regressions[0].message
    assert gate.compare(baseline, _report(_record(["wrong-result"]))) == []


@pytest.mark.slow
def test_trace_python_allocators_gives_memray_the_stack_of_a_python_list_leak(
    tmp_path: Path,
) -> None:
    path = tmp_path / "table.toml"
    path.write_text(FIVE_CYCLES, encoding="utf-8")
    rec = run_one(
        path,
        "tests.engines_for_tests:make_pylist_leak",
        options={"leak_kib": 128},
        flamegraphs="none",
        trace_python_allocators=True,
    )
    leak = next(f for f in rec.findings if f.verdict == "leak")
    assert leak.evidence["source"] == "memray engine-attributed live bytes"
    assert 100 * 1024 <= leak.evidence["slope_per_cycle"] <= 160 * 1024
    stack = " ".join(leak.evidence["top_growth"][0]["stack"])
    assert "_python_lists" in stack and "engines_for_tests.py" in stack


def test_the_object_census_at_a_reset_counts_the_objects_the_run_made_not_the_imports(
    tmp_path: Path,
) -> None:
    """The imports (harness, NumPy, Numba, refimpl) and Numba's registries are frozen out of
    the collector before the engine is built: each reset point's collection and census walks
    what the run made (~60k import objects more before, 80% of a 200-cycle soak's child time),
    and the leaks they look for are still found (the tests above)."""
    path = tmp_path / "table.toml"
    path.write_text(FIVE_CYCLES, encoding="utf-8")
    rec = run_one(path, "refimpl", memray=False, flamegraphs="none")
    assert rec.verdict == "clean", format_run(rec)
    census = [s.memory["py_objects"] for s in rec.steps if s.op == "clear"]
    assert len(census) == 5
    for counts in census:
        assert sum(counts.values()) < 5_000, sorted(counts.items(), key=lambda kv: -kv[1])[:10]
        # classes and Numba type objects are made by imports and by Numba's first kernel call
        assert counts.get("abc.ABCMeta", 0) < 50 and counts.get("type", 0) < 200
