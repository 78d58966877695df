"""Lifecycle of the reference database that surviving mutants showed untested (docs/mutation.md):
a re-initialization after clear() at another dimension, the lock around every lifecycle call,
and the documented defaults."""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np
import pytest
from memcycle.engines.peer_common import PEER_DEFAULTS
from memcycle.refimpl.database import Database
from memcycle.refimpl.errors import DoubleFreeError, InvalidInputError
from memcycle.refimpl.native.twin import DEFAULT_SIZES

SMALL: dict[str, Any] = dict(buffer_size=16, segment_threshold=400, M=8, ef_construction=40)


def rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_clear_then_another_dimension_rebuilds_the_graphs_for_it() -> None:
    db = Database(allocator="checked", **SMALL)
    db.add_batch(rows(60, 8))  # past buffer_size: the graph holds rows
    db.clear()
    x = rows(60, 12, seed=1)
    ids = db.add_batch(x)
    assert db.dimension == 12
    got = db.search_batch(x[:5], 1)[0]
    assert got[:, 0].tolist() == ids[:5]
    db.close()
    assert db.allocator.live() == [] and db.allocator.violations == []


def test_clear_then_the_same_dimension_reuses_the_graphs_without_a_leak() -> None:
    db = Database(allocator="checked", **SMALL)
    for seed in range(3):
        x = rows(60, 8, seed=seed)
        ids = db.add_batch(x)
        assert db.search_batch(x[:3], 1)[0][:, 0].tolist() == ids[:3]
        db.clear()
        assert db.allocator.live() == []
    db.close()
    assert db.allocator.violations == []


class _CountingLock:
    """Stands in for the database's RLock and counts the calls made under it."""

    def __init__(self) -> None:
        self.entered = 0

    def __enter__(self) -> None:
        self.entered += 1

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("call", ["initialize", "clear", "close"])
def test_every_lifecycle_call_runs_under_the_database_lock(call: str) -> None:
    db = Database(**SMALL)
    if call != "initialize":
        db.initialize(4)
    lock = _CountingLock()
    db._lock = lock  # type: ignore[assignment]
    getattr(db, call)(*([4] if call == "initialize" else []))
    assert lock.entered >= 1
    db._lock = threading.RLock()
    db.close()


def test_the_default_graph_degree_is_sixteen() -> None:
    db = Database()
    assert db.M == 16 and db.buffer_size == 1000 and db.metric == "l2"
    db.close()


def test_the_keep_initialized_fault_clears_only_the_graphs() -> None:
    # the fault models "keep structures, reset data": graphs emptied, the rest kept
    db = Database(
        allocator="checked", faults=["keep-initialized"], **{**SMALL, "segment_threshold": 40}
    )
    db.add_batch(rows(30, 8), ids=list(range(30)))  # >= buffer_size: into the graph
    db.add_batch(rows(50, 8, seed=1), ids=list(range(30, 80)))  # >= threshold: a segment
    before = db.info()["tiers"]
    assert before["hnsw"] > 0 and before["segments"] > 0
    db.clear()
    after = db.info()
    assert after["tiers"]["hnsw"] == 0 and after["tiers"]["segments"] == 0
    assert after["tiers"]["flat"] == before["flat"] and after["dimension"] == 8
    db.state = "closed"  # a faulty object: skip its destructor


def test_close_destroys_the_graphs_retired_by_reinit_without_destroy() -> None:
    # the retired graphs' vectors were freed by clear(): destroying them at close is the
    # double free the fault is about, even when the current graphs are whole
    db = Database(allocator="checked", faults=["reinit-without-destroy"], **SMALL)
    db.add_batch(rows(60, 8))
    db.clear()
    db.add_batch(rows(60, 8, seed=1))  # initialize() retires the old graphs
    with pytest.raises(DoubleFreeError, match=r"hnsw\.vectors"):
        db.close()


def test_a_graph_degree_of_two_is_the_smallest_accepted_and_one_is_refused_by_name() -> None:
    db = Database(M=2, **{k: v for k, v in SMALL.items() if k != "M"})
    x = rows(40, 4)
    ids = db.add_batch(x)  # past buffer_size: a graph of degree two holds rows
    assert db.M == 2 and db.search_batch(x[:3], 1)[0][:, 0].tolist() == ids[:3]
    db.close()
    with pytest.raises(InvalidInputError, match="M must be at least 2, got 1"):
        Database(M=1)


def test_refimpl_builds_its_graphs_with_the_hnsw_parameters_the_peers_are_given() -> None:
    # docs/peers.md: the peers run at "the adapters' defaults, the same as refimpl's", so the
    # peer benchmark compares graphs of one shape
    db = Database()
    got = {"M": db.M, "ef_construction": db.ef_construction, "ef_search": db.ef_search}
    assert got == {k: PEER_DEFAULTS[k] for k in got}
    db.close()


def test_refimpl_and_its_c_twin_route_rows_to_the_tiers_at_the_same_default_sizes() -> None:
    # the twin mirrors the Python reference: one scenario must take the same tiers in both
    db = Database()
    assert db.buffer_size == DEFAULT_SIZES["buffer_size"]
    assert db.segment_threshold == DEFAULT_SIZES["segment_threshold"]
    db.close()


@pytest.mark.parametrize(("buffer_size", "rows_held"), [(16, 64), (100, 100)])
def test_the_main_graph_starts_with_room_for_the_buffer_and_never_fewer_than_64_rows(
    buffer_size: int, rows_held: int
) -> None:
    db = Database(4, buffer_size=buffer_size, allocator="checked")
    shapes = {b.label: b.shape for b in db.allocator.live()}
    assert shapes["hnsw.vectors"] == (rows_held, 4) and shapes["hnsw.labels"] == (rows_held,)
    db.close()


def test_every_locked_method_keeps_its_own_name_docstring_and_signature_for_help() -> None:
    # help(db.clear) and tracebacks must show `clear` and its docstring, not the lock's wrapper
    assert Database.clear.__name__ == "clear"
    assert (Database.clear.__doc__ or "").startswith("Drop every row")
    assert Database.close.__qualname__ == "Database.close"
    assert list(inspect.signature(Database.initialize).parameters) == ["self", "dimension"]


def test_under_flat_buffer_double_free_the_dangling_flat_handle_is_freed_again_at_close() -> None:
    # the fault keeps the handle clear() freed; initialize() frees it a second time and, as the
    # native bug would, leaves it in place, so close() frees the same vectors once more
    db = Database(allocator="checked", faults=["flat-buffer-double-free"], **SMALL)
    db.add_batch(rows(4, 8))
    db.clear()
    with pytest.raises(DoubleFreeError, match=r"flat\.vectors"):
        db.initialize(8)
    with pytest.raises(DoubleFreeError, match=r"flat\.vectors"):
        db.close()
    assert [v["label"] for v in db.allocator.violations] == ["flat.vectors", "flat.vectors"]
