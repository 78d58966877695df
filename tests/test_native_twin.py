"""The C twin of refimpl: it builds with the system compiler, keeps refimpl's lifecycle
(exact search, clear frees every buffer, a new dimension after clear, destroy, the
singleton), through ctypes directly and through its adapters, and each translatable fault
gives its verdict in a child run.

Faults are switched on only in child processes: in this process they would kill pytest.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from memcycle.engines.base import EngineConfig, EngineError
from memcycle.engines.registry import make_engine
from memcycle.faultmatrix import (
    NATIVE_FAULT_DIR,
    fault_index,
    judge_case,
    load_fault_scenarios,
    plan,
)
from memcycle.refimpl.native import builder, twin
from memcycle.refimpl.native.faults import CATALOGUE, FAULT_NAMES
from memcycle.runner import run_one


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return twin.load_library("plain")


def _rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _exact(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


# -- the build ------------------------------------------------------------------------------
def test_build_caches_by_source_hash_and_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(builder.CACHE_ENV, str(tmp_path))
    plain = builder.build("plain")
    assert plain.parent == tmp_path and plain.name.startswith("librefimpl_c-plain-")
    stamp = plain.stat().st_mtime_ns
    assert builder.build("plain") == plain and plain.stat().st_mtime_ns == stamp  # no rebuild
    asan = builder.build("asan")
    assert asan != plain and asan.name.startswith("librefimpl_c-asan-")
    cmd = builder.build_command("asan", asan)
    assert {"-g", "-O1", "-fsanitize=address", "-fno-omit-frame-pointer"} <= set(cmd)


def test_missing_compiler_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder.shutil, "which", lambda _name: None)
    with pytest.raises(
        builder.NativeBuildError, match=r"no C compiler found \(looked for \$CC, cc, gcc\)"
    ):
        builder.build("plain")


def test_sanitizer_env_picks_the_variant_and_rejects_others() -> None:
    assert builder.variant_from_env({}) == "plain"
    assert builder.variant_from_env({"MEMCYCLE_SANITIZER": "asan"}) == "asan"
    assert builder.variant_from_env({"MEMCYCLE_SANITIZER": "ubsan"}) == "ubsan"
    with pytest.raises(builder.NativeBuildError, match="expected 'asan' or 'ubsan'"):
        builder.variant_from_env({"MEMCYCLE_SANITIZER": "tsan"})


def test_the_library_knows_the_python_catalogue(lib: ctypes.CDLL) -> None:
    assert tuple(lib.rc_fault_names().decode().split(",")) == FAULT_NAMES
    assert lib.rc_set_fault(b"no-such-fault", 1) < 0
    assert "unknown fault 'no-such-fault'" in lib.rc_last_error().decode()


# -- the lifecycle contract, through ctypes ---------------------------------------------------
def test_raw_ctypes_calls_insert_search_and_clear(lib: ctypes.CDLL) -> None:
    db = lib.rc_create(50, 400, 2000)
    assert lib.rc_init(db, 8, 0) == 0
    x, ids = _rows(100, 8), np.arange(100, dtype=np.int64)
    assert lib.rc_add_batch(db, ids.ctypes.data, x.ctypes.data, 100) == 0
    out_i = np.empty((1, 3), np.int64)
    out_d = np.empty((1, 3), np.float32)
    q = x[7:8].copy()
    assert lib.rc_search(db, q.ctypes.data, 1, 3, out_i.ctypes.data, out_d.ctypes.data) == 0
    assert out_i[0, 0] == 7 and out_d[0, 0] == 0.0
    assert lib.rc_count(db) == 100
    lib.rc_clear(db)
    assert lib.rc_count(db) == 0 and lib.rc_is_ready(db) == 0
    lib.rc_destroy(db)


def test_every_tier_searches_exactly_and_delete_get_work(lib: ctypes.CDLL) -> None:
    db = twin.NativeDB(lib, buffer_size=50, segment_threshold=400, segment_size=200)
    db.init(8)
    x = _rows(1000, 8, seed=1)
    # flat (30), flat fills and migrates to the main tier (30+30), main directly (100),
    # segments (600 -> 3 segments of 200)
    for lo, hi in ((0, 30), (30, 60), (60, 90), (90, 190), (190, 790)):
        db.add_batch(np.arange(lo, hi), x[lo:hi])
    assert db.count() == 790
    q = _rows(20, 8, seed=2)
    ids, dists = db.search(q, 10)
    assert (ids == _exact(x[:790], q, 10)).all()
    assert (np.diff(dists, axis=1) >= 0).all()
    assert (db.get(500) == x[500]).all()
    assert db.delete(np.array([ids[0, 0], 123456])) == 1
    assert db.count() == 789 and ids[0, 0] not in db.search(q[:1], 10)[0]
    with pytest.raises(twin.NativeError, match="already present"):
        db.add_batch(np.array([5]), x[5:6])
    db.destroy()


def test_clear_frees_every_buffer_and_allows_a_new_dimension(lib: ctypes.CDLL) -> None:
    before = twin.stats(lib)
    db = twin.NativeDB(lib, buffer_size=50, segment_threshold=400)
    db.init(8)
    db.add_batch(np.arange(600), _rows(600, 8))
    assert twin.stats(lib)[0] > before[0]
    db.clear()
    assert twin.stats(lib) == before and db.count() == 0
    db.init(16, "cosine")
    db.add_batch(np.arange(5), _rows(5, 16))
    assert db.dimension == 16 and db.count() == 5
    with pytest.raises(twin.NativeError, match="ready with dimension 16"):
        db.init(8)
    db.destroy()
    db.destroy()  # idempotent
    assert twin.stats(lib) == before


def test_singleton_is_created_once_and_rebuilt_after_clear_database(lib: ctypes.CDLL) -> None:
    first = twin.get_global_db(lib, buffer_size=50)
    assert twin.get_global_db(lib) == first
    twin.add_vector_batch(lib, np.arange(10), _rows(10, 4), "l2")
    assert lib.rc_count(first) == 10 and lib.rc_dimension(first) == 4
    twin.clear_database(lib)
    again = twin.get_global_db(lib)
    assert lib.rc_count(again) == 0
    twin.add_vector_batch(lib, np.arange(3), _rows(3, 12), "ip")  # a new dimension
    assert lib.rc_dimension(again) == 12
    twin.cleanup_global_db(lib)


# -- through the adapters -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["refimpl-c", "refimpl-c-global"])
def test_adapter_lifecycle(name: str) -> None:
    eng = make_engine(name, EngineConfig(options={"buffer_size": 50, "segment_threshold": 400}))
    assert eng.allocator == "native" and not eng.capabilities.ledger
    x = _rows(500, 8)
    eng.open(8)
    eng.insert(np.arange(40), x[:40], [{"tag": i % 2} for i in range(40)])
    eng.insert(np.arange(40, 500), x[40:])
    assert eng.count() == 500
    ids, _d = eng.search(x[:3], 5)
    assert (ids[:, 0] == [0, 1, 2]).all()
    fids, _fd = eng.search(x[:3], 5, filter={"tag": 1})
    assert set(fids[fids >= 0].tolist()) <= set(range(1, 40, 2)) and fids[1, 0] == 1
    assert (eng.get(np.array([3, 450])) == x[[3, 450]]).all()
    eng.delete(np.array([0]))
    assert eng.count() == 499
    eng.clear()
    assert eng.count() == 0
    eng.open(24)
    eng.insert(np.arange(3), _rows(3, 24))
    assert eng.count() == 3
    eng.close()
    eng.close()


def test_adapter_refuses_unknown_faults_options_and_allocators() -> None:
    with pytest.raises(EngineError, match=r"unknown refimpl-c fault.*'visited-not-reset'"):
        make_engine("refimpl-c", EngineConfig(faults=("visited-not-reset",)))
    with pytest.raises(EngineError, match="unknown refimpl-c option"):
        make_engine("refimpl-c", EngineConfig(options={"bogus": 1}))
    with pytest.raises(EngineError, match="option buffer_size=0"):
        make_engine("refimpl-c", EngineConfig(options={"buffer_size": 0}))
    with pytest.raises(EngineError, match="allocates with malloc"):
        make_engine("refimpl-c", EngineConfig(allocator="checked"))
    eng = make_engine("refimpl-c", EngineConfig(options={"M": 8}))
    assert "ignored options: M" in eng.capabilities.note


def test_asan_variant_without_the_runtime_is_an_engine_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMCYCLE_SANITIZER", "asan")
    monkeypatch.setattr(twin, "runtime_loaded", lambda _name: False)
    with pytest.raises(EngineError, match="needs libasan preloaded"):
        make_engine("refimpl-c")


# -- the fault matrix of the twin ----------------------------------------------------------------
def test_every_twin_fault_has_a_scenario_with_the_catalogue_verdict() -> None:
    index = fault_index(load_fault_scenarios(subject="refimpl-c"), "refimpl-c")
    assert set(index) == set(FAULT_NAMES)
    for name, scs in index.items():
        for sc in scs:
            table = dict(sc.expect)
            assert table.get("native") == CATALOGUE[name].verdict_plain, sc.path
            assert not sc.slow and sc.default_engine().startswith("refimpl-c"), sc.path


def test_twin_plan_runs_plain_faults_and_the_clean_twin_on_what_it_can_run() -> None:
    cases, missing = plan([], subject="refimpl-c")
    assert missing == []
    faulty = {c.fault for c in cases if c.fault}
    assert faulty == {n for n, f in CATALOGUE.items() if f.verdict_plain}
    assert all(c.allocator == "native" and c.subject == "refimpl-c" for c in cases)
    clean = {c.scenario.name: c.engine for c in cases if c.fault is None}
    assert clean["repeated-clear-insert"] == "refimpl-c"
    assert clean["native-singleton-double-destroy"] == "refimpl-c-global"
    assert "module-reload" not in clean  # needs reload, which the twin lacks
    assert clean["capacity-growth"] == "refimpl-c"  # the lifecycle scenarios run on any engine
    # refimpl's own matrix does not pick up the twin's scenarios
    ref, _ = plan(["checked"])
    assert not any(c.scenario.path.startswith(str(NATIVE_FAULT_DIR)) for c in ref)


def _scenario(fault: str) -> Path:
    return NATIVE_FAULT_DIR / f"{fault}.toml"


def _run_fault(fault: str, tmp_path: Path) -> None:
    from memcycle.faultmatrix import Case
    from memcycle.scenario import load_scenario

    sc = load_scenario(_scenario(fault))
    rec = run_one(sc, allocator="native", memray=fault == "flat-buffer-leak", timeout=120)
    expected = CATALOGUE[fault].verdict_plain
    assert rec.verdict == expected, [f.summary for f in rec.findings]
    outcome = judge_case(Case(sc, "native", fault, expected, subject="refimpl-c"), rec)
    assert outcome.ok, outcome.problems


def test_flat_buffer_double_free_is_a_double_free_from_glibcs_abort(tmp_path: Path) -> None:
    sc_path = _scenario("flat-buffer-double-free")
    rec = run_one(sc_path, allocator="native", memray=False, timeout=120)
    assert rec.verdict == "double-free", [f.summary for f in rec.findings]
    f = rec.findings[0]
    assert (f.cycle, f.op) == (2, "insert")
    assert f.evidence["signal_name"] == "SIGABRT" and f.evidence["signal_class"] == "crash"
    assert f.evidence["runtime"] == "glibc"
    assert f.evidence["native_message"] == "free(): double free detected in tcache 2"


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault", [n for n, f in CATALOGUE.items() if f.verdict_plain and n != "flat-buffer-double-free"]
)
def test_each_twin_fault_gives_its_verdict_in_a_child(fault: str, tmp_path: Path) -> None:
    _run_fault(fault, tmp_path)


@pytest.mark.parametrize("mode", ["asan", "valgrind"])
def test_twin_plan_under_a_tool_judges_every_fault_by_that_tools_verdict(mode: str) -> None:
    from memcycle.faultmatrix import TOOL_CLEAN_SCENARIOS

    cases, missing = plan([], subject="refimpl-c", mode=mode)
    assert missing == []
    faulty = {c.fault: c.expected for c in cases if c.fault}
    # the plain matrix leaves migration-overflow out (no fixed outcome); a tool catches it
    assert faulty == {n: f.verdict(mode) for n, f in CATALOGUE.items() if f.verdict(mode)}
    # every translatable fault runs under each tool (valgrind's two exceptions were its hang
    # at exit and its own death after the overflow's report)
    assert set(faulty) == set(CATALOGUE)
    assert faulty["migration-overflow"] == "buffer-overflow"
    assert faulty["stale-segment-view"] == "use-after-free"
    assert faulty["uninitialized-slot-assign"] == "invalid-free"  # free(0xa), not just crash
    assert all(c.mode == mode and c.allocator == "native" for c in cases)
    clean = {c.scenario.name for c in cases if c.fault is None}
    plain_clean = {c.scenario.name for c in plan([], subject="refimpl-c")[0] if c.fault is None}
    subset = TOOL_CLEAN_SCENARIOS[mode]
    assert clean == (plain_clean if subset is None else plain_clean & subset)
    assert clean and (subset is None or clean == subset)  # every chosen scenario exists


def test_a_tool_matrix_is_the_twins_only() -> None:
    from memcycle.faultmatrix import MatrixError

    with pytest.raises(MatrixError, match="C twin"):
        plan(["checked"], mode="asan")
    with pytest.raises(MatrixError, match="unknown mode"):
        plan([], subject="refimpl-c", mode="msan")


def test_a_tool_verdict_without_its_stacks_is_a_problem() -> None:
    from memcycle.faultmatrix import Case
    from memcycle.records import Finding, RunRecord
    from memcycle.scenario import load_scenario

    sc = load_scenario(_scenario("stale-segment-view"))
    case = Case(
        sc, "native", "stale-segment-view", "use-after-free", subject="refimpl-c", mode="asan"
    )
    c_frame = {"function": "scan", "file": "refimpl_c.c", "line": 200, "engine": True}
    py_frame = {"function": "free", "file": None, "line": None, "engine": False}
    evidence = {
        "source": "asan",
        "native_stack": [c_frame],
        "native_free_stack": [py_frame],
        "native_alloc_stack": [c_frame],
    }

    def record(ev: dict) -> RunRecord:
        rec = RunRecord(
            sc.name,
            sc.path,
            "refimpl-c",
            "native",
            [case.fault or ""],
            "use-after-free",
            verdict="use-after-free",
            exit={"kind": "signal", "signal_name": "SIGABRT"},
        )
        rec.findings = [Finding("use-after-free", 2, 1, "search", "heap-use-after-free", ev)]
        return rec

    out = judge_case(case, record(evidence))
    assert not out.ok and out.problems == [
        "the asan report's native_free_stack names no C function and line of the twin"
    ]
    assert judge_case(case, record({**evidence, "native_free_stack": [c_frame]})).ok
    # the verdict from glibc's abort instead of ASan's report does not count under asan
    assert not judge_case(case, record({**evidence, "source": "glibc"})).ok


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["asan", "valgrind"])
def test_free_of_0xa_is_an_invalid_free_named_in_c_under_each_tool(mode: str) -> None:
    from memcycle.faultmatrix import Case
    from memcycle.sanitizers import SanitizerUnavailable, check_available
    from memcycle.scenario import load_scenario

    try:
        check_available(mode)
    except SanitizerUnavailable as exc:  # the machines all have both: fail, not skip
        pytest.fail(str(exc))
    fault = "uninitialized-slot-assign"
    sc = load_scenario(_scenario(fault))
    rec = run_one(
        sc,
        allocator="native",
        memray=False,
        timeout=120,
        sanitizer="asan" if mode == "asan" else None,
        valgrind=mode == "valgrind",
    )
    assert rec.verdict == "invalid-free", [f.summary for f in rec.findings]
    outcome = judge_case(
        Case(sc, "native", fault, "invalid-free", subject="refimpl-c", mode=mode), rec
    )
    assert outcome.ok, outcome.problems
    stack = rec.findings[0].evidence["native_stack"]
    assert any(f["engine"] and f["function"] == "seg_store" for f in stack), stack
