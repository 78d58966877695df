"""Verdicts from synthetic run records: each source of evidence, cycle statuses, growth rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from memcycle.checks import GROWTH_RULES, growth, judge, skip_findings, was_skipped
from memcycle.records import RunRecord, StepEvent
from memcycle.scenario import parse_scenario

SCENARIO = parse_scenario(
    """
dimension = 8
[[cycle]]
repeat = 6
steps = [ { op = "insert", count = 10 }, { op = "search", queries = 2, k = 2 }, { op = "clear" } ]
""",
    "syn.toml",
)
PLAN = SCENARIO.plan


def _record() -> RunRecord:
    return RunRecord("syn", "syn.toml", "fake", "numpy", [], "clean", exit={"kind": "clean"})


def _cycles(n: int, mem: Any = None, **over: Any) -> list[StepEvent]:
    """n healthy cycles; `mem(cycle)` gives the memory dict of each clear."""
    out = []
    for c in range(1, n + 1):
        out.append(StepEvent(c, 0, "insert", True, 0.1, 8, 10, 10))
        out.append(StepEvent(c, 1, "search", True, 0.1, 8, 10, 10, 1.0, 0.9, {"n_stale": 0}))
        out.append(
            StepEvent(c, 2, "clear", True, 0.0, 8, 0, 0, memory=mem(c) if mem else {"rss": 1 << 26})
        )
    return out


def test_clean_run() -> None:
    rec = _record()
    rec.steps = _cycles(6)
    judge(rec, PLAN)
    assert rec.verdict == "clean" and rec.findings == []
    assert [c.status for c in rec.cycles] == ["ok"] * 6


def test_signal_with_glibc_message_is_its_precise_verdict_in_the_next_step() -> None:
    rec = _record()
    rec.steps = [*_cycles(2), StepEvent(3, 0, "insert", True, 0.1, 8, 10, 10)]
    rec.exit = {
        "kind": "signal",
        "signal": 6,
        "signal_name": "SIGABRT",
        "native_message": "free(): invalid pointer",
    }
    judge(rec, PLAN)
    assert rec.verdict == "invalid-free"
    f = rec.findings[0]
    assert (f.cycle, f.step, f.op) == (3, 1, "search")
    assert "SIGABRT" in f.summary and "free(): invalid pointer" in f.summary
    assert f.evidence["signal_class"] == "crash" and f.evidence["runtime"] == "glibc"
    assert [c.status for c in rec.cycles] == ["ok", "ok", "invalid-free", "-", "-", "-"]


def test_signal_without_a_runtime_message_is_crash_and_later_cycles_not_reached() -> None:
    rec = _record()
    rec.steps = [*_cycles(2), StepEvent(3, 0, "insert", True, 0.1, 8, 10, 10)]
    rec.exit = {
        "kind": "signal",
        "signal": 11,
        "signal_name": "SIGSEGV",
        "fatal_error": "Fatal Python error: Segmentation fault",
    }
    judge(rec, PLAN)
    assert rec.verdict == "crash"
    f = rec.findings[0]
    assert "SIGSEGV" in f.summary and f.evidence["signal_class"] == "crash"
    assert [c.status for c in rec.cycles] == ["ok", "ok", "crash", "-", "-", "-"]


def test_timeout_and_harness_exit() -> None:
    rec = _record()
    rec.steps = _cycles(1)
    rec.exit = {"kind": "timeout", "timeout": 5}
    assert judge(rec, PLAN).verdict == "timeout"
    assert rec.findings[0].cycle == 2
    rec.exit = {"kind": "exit", "code": 1}
    assert judge(rec, PLAN).verdict == "crash"


@pytest.mark.parametrize(
    ("verdict_attr", "expected"),
    [
        ("double-free", "double-free"),
        ("use-after-free", "use-after-free"),
        (None, "lifecycle-error"),
    ],
)
def test_exceptions_map_to_verdicts(verdict_attr: str | None, expected: str) -> None:
    rec = _record()
    err = {
        "type": "x.Boom",
        "message": "it broke\nmore",
        "traceback": "tb",
        "verdict": verdict_attr,
    }
    rec.steps = [*_cycles(1), StepEvent(2, 0, "insert", False, 0.1, error=err)]
    rec.exit = {"kind": "exception", "error": err}
    judge(rec, PLAN)
    assert rec.verdict == expected
    f = rec.findings[0]
    assert (f.cycle, f.step, f.op) == (2, 0, "insert") and "it broke" in f.summary
    assert f.evidence["error"]["traceback"] == "tb"
    assert [c.status for c in rec.cycles][:3] == ["ok", expected, "-"]


def test_violation_recorded_by_a_finalizer_counts() -> None:
    viol = {"verdict": "double-free", "message": "double free of block #3", "label": "flat.vectors"}

    def mem(c: int) -> dict[str, Any]:
        led = {"live_blocks": 0, "live_bytes": 0, "n_violations": int(c >= 3)}
        led["violations"] = [viol] if c >= 3 else []
        return {"ledger": led}

    rec = _record()
    rec.steps = _cycles(6, mem)
    judge(rec, PLAN)
    assert rec.verdict == "double-free"
    assert len(rec.findings) == 1 and rec.findings[0].cycle == 3
    assert rec.findings[0].evidence["violation"]["label"] == "flat.vectors"


def test_a_violation_in_every_cycle_marks_every_cycle_in_one_finding_per_label() -> None:
    def viol(label: str, c: int) -> dict[str, Any]:
        return {"verdict": "double-free", "message": f"double free in {c}", "label": label}

    history: list[dict[str, Any]] = []

    def mem(c: int) -> dict[str, Any]:
        if c >= 2:  # the same double free after every clear from cycle 2 on
            history.append(viol("flat.vectors", c))
        if c == 4:  # and once another block
            history.append(viol("hnsw.level0", c))
        led = {"live_blocks": 0, "live_bytes": 0, "n_violations": len(history)}
        led["violations"] = history[-5:]
        return {"ledger": led}

    rec = _record()
    rec.steps = _cycles(6, mem)
    judge(rec, PLAN)
    assert rec.verdict == "double-free"
    assert [c.status for c in rec.cycles] == ["ok"] + ["double-free"] * 5
    flat, level0 = rec.findings
    assert (flat.cycle, flat.step, flat.op) == (2, 2, "clear")
    assert flat.evidence["cycles"] == [2, 3, 4, 5, 6] and flat.evidence["occurrences"] == 5
    assert "'flat.vectors' by cycle 2" in flat.summary and "in 5 cycles: 2..6" in flat.summary
    assert level0.evidence["cycles"] == [4] and "'hnsw.level0' by cycle 4" in level0.summary


def test_wrong_results() -> None:
    rec = _record()
    rec.steps = _cycles(2)
    rec.steps[1] = StepEvent(1, 1, "search", True, 0.1, 8, 10, 10, 0.5, 0.9, {"n_stale": 0})
    rec.steps[4] = StepEvent(
        2, 1, "search", True, 0.1, 8, 10, 10, 1.0, 0.9, {"n_stale": 2, "stale_ids": [1, 2]}
    )
    rec.steps[5] = StepEvent(2, 2, "clear", True, 0.0, 8, 10, 0)
    judge(rec, PLAN)
    assert rec.verdict == "wrong-result"
    summaries = [f.summary for f in rec.findings]
    assert any("recall 0.500 < 0.9" in s for s in summaries)
    assert any("2 stale id(s)" in s for s in summaries)
    assert any("count 10 != expected 0 after clear" in s for s in summaries)


def test_a_partial_skip_is_judged_on_what_ran_and_lists_the_skipped_steps() -> None:
    rec = _record()
    rec.steps = _cycles(3)
    for c in (1, 3):  # the search of cycles 1 and 3 could not run (recall 0 is not judged)
        rec.steps[3 * (c - 1) + 1] = StepEvent(
            c, 1, "search", True, 0.0, skipped="fake has no metadata filter", recall=0.0
        )
    judge(rec, PLAN)
    assert rec.verdict == "clean" and rec.passed  # the inserts and clears that ran are clean
    [f] = rec.findings
    assert f.verdict == "skipped" and (f.cycle, f.step, f.op) == (1, 1, "search")
    assert f.summary == "2 steps skipped: search x2 (fake has no metadata filter) in cycles 1..3"
    assert f.evidence["skipped_steps"] == [
        {"cycle": 1, "step": 1, "op": "search", "reason": "fake has no metadata filter"},
        {"cycle": 3, "step": 1, "op": "search", "reason": "fake has no metadata filter"},
    ]
    assert f.evidence["reasons"] == {"fake has no metadata filter": 2}
    assert [c.status for c in rec.cycles][:3] == ["ok", "ok", "ok"]  # each cycle ran steps
    assert was_skipped(rec) and skip_findings(rec) == [f]


def test_a_run_where_no_step_could_run_is_skipped_as_a_whole() -> None:
    rec = _record()
    rec.steps = [
        StepEvent(1, 0, "delete", True, 0.0, skipped="fake has no delete"),
        StepEvent(1, 1, "close", True, 0.0, 8, 0, 0),
    ]
    judge(rec, PLAN)
    assert rec.verdict == "skipped" and not rec.passed
    assert rec.findings[0].summary == "1 step skipped: delete (fake has no delete) in cycle 1"
    assert rec.cycles[0].status == "skipped"


def test_a_leak_lists_its_skipped_steps_too() -> None:
    rec = _record()
    rec.steps = _cycles(
        3, mem=lambda c: {"ledger": {"live_blocks": c, "live_bytes": 100 * c, "by_label": {}}}
    )
    rec.steps[1] = StepEvent(1, 1, "search", True, 0.0, skipped="fake has no metadata filter")
    judge(rec, PLAN)
    assert rec.verdict == "leak"
    assert [f.verdict for f in rec.findings] == ["leak", "skipped"]
    assert "1 step skipped: search (fake has no metadata filter)" in rec.findings[1].summary
    assert was_skipped(rec)


def test_a_clean_run_without_skips_is_not_skipped() -> None:
    rec = _record()
    rec.steps = _cycles(2)
    judge(rec, PLAN)
    assert rec.verdict == "clean" and not rec.findings and not was_skipped(rec)


def test_a_real_finding_outranks_skipped_steps() -> None:
    rec = _record()
    rec.steps = _cycles(2)
    rec.steps[1] = StepEvent(1, 1, "search", True, 0.0, skipped="no filter")
    rec.steps[5] = StepEvent(2, 2, "clear", True, 0.0, 8, 10, 0)  # count wrong after clear
    judge(rec, PLAN)
    assert rec.verdict == "wrong-result"


def test_ledger_blocks_after_clear_are_a_leak() -> None:
    def mem(c: int) -> dict[str, Any]:
        n = c - 1
        led = {
            "live_blocks": n,
            "live_bytes": 4096 * n,
            "by_label": {"flat.vectors": {}} if n else {},
        }
        return {"ledger": led}

    rec = _record()
    rec.steps = _cycles(6, mem)
    judge(rec, PLAN)
    assert rec.verdict == "leak"
    f = rec.findings[0]
    assert f.cycle == 2 and "flat.vectors" in f.summary and f.evidence["growing"]
    assert [c.status for c in rec.cycles] == ["ok"] + ["leak"] * 5
    assert rec.cycles[1].live_blocks_after_clear == 1


def test_ledger_leak_names_the_allocation_site_of_the_growing_label() -> None:
    site = "/work/refimpl/flat_buffer.py:88 in initialize"

    def mem(c: int) -> dict[str, Any]:
        n = c - 1
        by_label = {"flat.vectors": {"blocks": n, "bytes": 4096 * n, "stack": [site]}}
        by_label["small"] = {"blocks": 1, "bytes": 8, "stack": ["x.py:1 in other"]}
        return {"ledger": {"live_blocks": n + 1, "live_bytes": 4096 * n + 8, "by_label": by_label}}

    rec = _record()
    rec.steps = _cycles(6, mem)
    judge(rec, PLAN)
    assert rec.verdict == "leak"
    assert rec.findings[0].summary.endswith(f"newest 'flat.vectors' block allocated at {site}")


def _series(per_cycle: float, n: int, noise: float, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [50e6 + per_cycle * i + noise * rng.standard_normal() for i in range(n)]


def test_growth_judges_steady_leak_but_not_noise_or_a_plateau() -> None:
    rule = GROWTH_RULES["memray"]
    assert growth(_series(100 * 1024, 8, 20 * 1024), rule) is not None
    assert growth(_series(100 * 1024, 200, 200 * 1024), rule) is not None
    assert growth(_series(0, 200, 200 * 1024), rule) is None
    # an allocator cache: grows in the first cycles, then stays
    plateau = [50e6 + min(i, 3) * 2e6 for i in range(200)]
    assert growth(plateau, rule) is None
    # one late jump (a buffer that grew once) is not a steady leak
    jump = [50e6] * 100 + [60e6] * 100
    assert growth(jump, rule) is None
    assert growth([1.0, 2e6, 4e6], rule) is None  # too few cycles to tell


def test_a_steady_rise_is_a_leak_only_once_its_total_reaches_the_rise_floor() -> None:
    """The rise is later cycles minus early ones: a high baseline must not count toward it."""
    rule = GROWTH_RULES["memray"]  # slope >= 4 KiB per cycle, rise >= 32 KiB
    base, per_cycle = 64 * 1024 * 1024, 5 * 1024  # a large live set, a small steady rise
    short = [base + per_cycle * k for k in range(7)]  # first dropped as warm-up: rise 20 KiB
    assert growth(short, rule) is None
    long = [base + per_cycle * k for k in range(16)]  # the same slope, rise 50 KiB
    found = growth(long, rule)
    assert found is not None and found["rise_bytes"] == 10 * per_cycle


def test_memray_growth_is_a_leak_with_cycle_and_evidence() -> None:
    rec = _record()
    rec.steps = _cycles(6)
    markers = [{"index": c - 1, "cycle": c, "step": 2, "op": "clear"} for c in range(1, 7)]
    analysis = {
        "markers": [
            {"index": c - 1, "engine_live_bytes": 40_000_000 + 102_400 * c} for c in range(1, 7)
        ],
        "top_live": [{"bytes": 512_000, "blocks": 5, "stack": ["clear (engine.py:3)"]}],
    }
    judge(rec, PLAN, markers=markers, analysis=analysis)
    assert rec.verdict == "leak"
    f = rec.findings[0]
    assert "memray" in f.summary and "100.0 KiB per cycle" in f.summary
    assert f.evidence["top_live"][0]["stack"] == ["clear (engine.py:3)"]
    assert rec.cycles[5].memray_leaked_bytes == 40_000_000 + 102_400 * 6


def test_allocator_cache_is_not_a_leak() -> None:
    def mem(c: int) -> dict[str, Any]:
        led = {"live_blocks": 0, "live_bytes": 0, "cached_bytes": 1_000_000 * c}
        return {"ledger": led, "tracemalloc": 20_000_000 + 1_000_000 * c}

    rec = _record()
    rec.steps = _cycles(6, mem)
    assert judge(rec, PLAN).verdict == "clean"


@pytest.mark.parametrize("allocator", ["checked", "numpy"])
def test_refimpl_ledger_reports_the_allocators_cache(allocator: str) -> None:
    from memcycle.engines.base import EngineConfig
    from memcycle.engines.registry import make_engine

    engine = make_engine("refimpl", EngineConfig(allocator=allocator))
    engine.open(8)
    rng = np.random.default_rng(0)
    engine.insert(np.arange(20, dtype=np.int64), rng.random((20, 8), dtype=np.float32))
    engine.clear()
    led = engine.ledger()
    engine.close()
    assert led is not None and led["live_blocks"] == 0
    # the checked allocator's quarantine of freed blocks, through its public snapshot
    assert (led["cached_bytes"] > 0) == (allocator == "checked")


def test_a_setup_error_is_error_with_no_cycle_and_the_stderr_tail_as_evidence() -> None:
    rec = _record()
    rec.exit = {"kind": "exception", "code": 4, "stderr_tail": "warming up\nlast words\n"}
    err = {"type": "memcycle.engines.base.EngineError", "message": "factory for 'x' failed: boom"}
    judge(rec, PLAN, setup_error=err, started=False)
    assert rec.verdict == "error"
    (f,) = rec.findings
    assert (f.verdict, f.cycle, f.step, f.op) == ("error", None, None, "setup")
    assert f.summary == "engine setup failed: EngineError: factory for 'x' failed: boom"
    assert f.evidence["error"] == err and "last words" in f.evidence["stderr_tail"]
    assert {c.status for c in rec.cycles} == {"-"}  # no cycle invented
    assert not rec.passed


def test_a_child_that_exits_before_its_start_event_is_error_naming_the_cause() -> None:
    rec = _record()
    stderr = (
        "Traceback (most recent call last):\n  File ...\n"
        "ModuleNotFoundError: No module named 'memcycle.child'\n"
    )
    rec.exit = {"kind": "exit", "code": 1, "stderr_tail": stderr}
    judge(rec, PLAN, started=False)
    (f,) = rec.findings
    assert (rec.verdict, f.cycle, f.step) == ("error", None, None)
    assert f.summary == (
        "the child exited with code 1 before it started: "
        "ModuleNotFoundError: No module named 'memcycle.child'"
    )
    assert "Traceback" in f.evidence["stderr_tail"]
    assert {c.status for c in rec.cycles} == {"-"}


def test_without_a_start_flag_a_run_with_no_steps_or_capabilities_did_not_start() -> None:
    rec = _record()
    rec.exit = {"kind": "exit", "code": 1, "stderr_tail": "SystemExit: 1"}
    assert judge(rec, PLAN).verdict == "error"


def test_a_signal_before_start_is_a_crash_without_an_invented_cycle() -> None:
    rec = _record()
    rec.exit = {"kind": "signal", "signal": 11, "signal_name": "SIGSEGV"}
    judge(rec, PLAN, started=False)
    (f,) = rec.findings
    assert (rec.verdict, f.cycle, f.step, f.op) == ("crash", None, None, "setup")
    assert "before any step" in f.summary and {c.status for c in rec.cycles} == {"-"}


def test_an_exit_after_start_is_still_a_crash_at_the_next_step() -> None:
    rec = _record()
    rec.steps = _cycles(1)
    rec.exit = {"kind": "exit", "code": 1}
    judge(rec, PLAN, started=True)
    assert rec.verdict == "crash" and rec.findings[0].cycle == 2


def _err(kind: str, message: str) -> dict[str, Any]:
    return {"type": f"builtins.{kind}", "message": message, "traceback": "tb", "verdict": None}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("TypeError", "knn_query() got an unexpected keyword argument 'num_threads'"),
        ("TypeError", "search() takes 2 positional arguments but 3 were given"),
        ("TypeError", "add() missing 1 required positional argument: 'ids'"),
        ("TypeError", "search(): incompatible function arguments. The following argument types"),
        ("AttributeError", "module 'faiss' has no attribute 'IndexHNSWFlatX'"),
        ("AttributeError", "type object 'Index' has no attribute 'load'"),
        ("ModuleNotFoundError", "No module named 'faiss.contrib'"),
        ("NameError", "name 'np' is not defined"),
    ],
)
def test_an_api_mismatch_on_the_first_run_of_an_op_is_error(kind: str, message: str) -> None:
    rec = _record()
    # insert worked in cycle 1; search raises the first time it runs
    rec.steps = [
        StepEvent(1, 0, "insert", True, 0.1, 8, 10, 10),
        StepEvent(1, 1, "search", False, 0.1, error=_err(kind, message)),
    ]
    rec.exit = {"kind": "exception"}
    judge(rec, PLAN, started=True)
    assert rec.verdict == "error"
    f = rec.findings[0]
    assert (f.cycle, f.step, f.op) == (1, 1, "search")
    assert f.summary.startswith("adapter/library API mismatch (first search of the run): ")
    assert message[:40] in f.summary
    assert [c.status for c in rec.cycles][:2] == ["error", "-"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("AttributeError", "'NoneType' object has no attribute 'knn_query'"),
        ("AttributeError", "'Adapter' object has no attribute '_index'"),  # dropped by clear
        ("TypeError", "'NoneType' object is not subscriptable"),
        ("UnboundLocalError", "cannot access local variable 'x'"),
        ("RuntimeError", "index is not initialized"),
    ],
)
def test_other_step_exceptions_stay_lifecycle_errors(kind: str, message: str) -> None:
    rec = _record()
    rec.steps = [StepEvent(1, 0, "insert", False, 0.1, error=_err(kind, message))]
    rec.exit = {"kind": "exception"}
    assert judge(rec, PLAN, started=True).verdict == "lifecycle-error"


def test_an_api_mismatch_after_the_op_worked_before_is_a_lifecycle_error() -> None:
    # search worked in cycle 1 and fails the same way after a clear: the lifecycle broke it
    rec = _record()
    message = "search() takes 2 positional arguments but 3 were given"
    rec.steps = [
        *_cycles(1),
        StepEvent(2, 1, "search", False, 0.1, error=_err("TypeError", message)),
    ]
    rec.exit = {"kind": "exception"}
    judge(rec, PLAN, started=True)
    assert rec.verdict == "lifecycle-error" and rec.findings[0].cycle == 2


def test_a_lifecycle_error_expectation_is_not_met_by_an_error() -> None:
    rec = _record()
    rec.expected_verdict = "lifecycle-error"
    rec.exit = {"kind": "exception", "code": 4}
    judge(rec, PLAN, setup_error=_err("ImportError", "no faiss"), started=False)
    assert rec.verdict == "error" and not rec.passed
    rec.expected_verdict = "error"  # not even when a record claims to expect it
    assert not rec.passed


def test_error_outranks_every_engine_verdict_and_unknown_verdicts_are_not_clean() -> None:
    from memcycle.records import SEVERITY, VERDICTS, worst

    assert "error" in VERDICTS
    assert all(SEVERITY["error"] > SEVERITY[v] for v in VERDICTS if v != "error")
    assert worst(["leak", "error", "crash"]) == "error"
    assert worst(["clean", "misspelt"]) == "misspelt"


def test_a_scenario_cannot_expect_error() -> None:
    from memcycle.scenario import ScenarioError

    text = 'dimension = 4\n[expect]\nverdict = "error"\n[[cycle]]\nsteps = [{ op = "clear" }]\n'
    with pytest.raises(ScenarioError, match="'error' means memcycle or the adapter could not"):
        parse_scenario(text, "x.toml")


def test_skipped_scenario_has_no_cycle_reached() -> None:
    skipped = _record()
    skipped.verdict = "skipped"
    skipped.exit = {"kind": "skipped", "reason": "engine lacks reload"}
    judge(skipped, PLAN)
    assert skipped.verdict == "skipped" and {c.status for c in skipped.cycles} == {"-"}
    assert [(f.verdict, f.summary) for f in skipped.findings] == [
        ("skipped", "engine lacks reload")
    ]


def test_numba_nrt_allocations_growing_is_a_leak() -> None:
    def mem(c: int) -> dict[str, Any]:
        return {"nrt": {"alloc": 100 * c + 3 * c, "free": 100 * c, "mi_alloc": 0, "mi_free": 0}}

    rec = _record()
    rec.steps = _cycles(6, mem)
    judge(rec, PLAN)
    assert rec.verdict == "leak"
    assert "Numba NRT live allocations grow 3.0 allocations per cycle" in rec.findings[0].summary


def test_many_wrong_results_are_folded_but_every_cycle_is_marked() -> None:
    rec = _record()
    rec.steps = [
        StepEvent(c, 2, "clear", True, 0.0, 8, 5, 0) for c in range(1, 7) for _ in range(3)
    ]
    judge(rec, PLAN)
    assert len(rec.findings) == 11
    assert rec.findings[-1].summary.startswith("... 8 more wrong-result finding(s) in cycles 4..6")
    assert [c.status for c in rec.cycles] == ["wrong-result"] * 6
