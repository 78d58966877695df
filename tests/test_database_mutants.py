"""Lifecycle of the reference database that surviving mutants showed untested (docs/mutation.md):
a re-initialization after clear() at another dimension, the lock around every lifecycle call,
and the documented defaults."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from memcycle.refimpl.database import Database
from memcycle.refimpl.errors import DoubleFreeError

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
