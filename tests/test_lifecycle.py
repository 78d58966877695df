"""Clear/insert cycles: the failure of the reference note, done right, 200 times.

Every clear must leave the allocator's live set empty, every cycle must answer
exactly what it was given, and dimensions may change between cycles.
"""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl import DB, add_vector_batch, cleanup_global_db, clear_database, get_global_db
from memcycle.refimpl import singleton as singleton_module
from memcycle.refimpl.alloc import CheckedAllocator, RawAllocator

# sizes on both sides of buffer_size (50) and segment_threshold (400)
BATCHES = [1, 30, 49, 50, 51, 120, 399, 400, 401]
DIMS = [8, 16, 5]
FAST = dict(buffer_size=50, segment_threshold=400, M=8, ef_construction=40, ef_search=40)


def _cycle(db: DB, rng: np.random.Generator, cycle: int) -> None:
    dim = DIMS[(cycle // 2) % len(DIMS)]  # pairs: graphs reused, then rebuilt
    first = BATCHES[cycle % len(BATCHES)]
    second = BATCHES[(cycle * 7 + 3) % len(BATCHES)]
    x = rng.standard_normal((first + second, dim)).astype(np.float32)
    db.add_batch(x[:first], ids=np.arange(first))
    db.add_batch(x[first:], ids=np.arange(first, first + second))
    n = first + second
    assert db.dimension == dim and db.count() == n
    assert sum(db.info()["tiers"].values()) == n
    probe = rng.integers(0, n, 5)
    ids, _ = db.search_batch(x[probe], limit=1)
    assert (ids[:, 0] == probe).mean() >= 0.8  # graph tiers are approximate
    assert np.array_equal(db.get(int(probe[0]))[0], x[probe[0]])
    if cycle % 4 == 0:
        db.delete_batch(probe.tolist())
        assert db.count() == n - len(set(probe.tolist()))
    db.clear()
    assert db.state == "uninitialized" and db.dimension is None and db.count() == 0
    assert db.allocator.live() == [], f"cycle {cycle}: blocks left after clear()"


def test_200_clear_insert_cycles_checked_allocator() -> None:
    alloc = CheckedAllocator()
    db = DB(allocator=alloc, **FAST)
    rng = np.random.default_rng(2025)
    for cycle in range(200):
        _cycle(db, rng, cycle)
    alloc.verify()
    assert alloc.violations == []
    stats = alloc.stats()
    assert stats.allocs == stats.frees > 200 * 5
    db.close()


def test_cycles_with_the_raw_allocator_keep_the_ledger_empty() -> None:
    """Real unmanaged memory: a lifecycle mistake here would abort the test process."""
    alloc = RawAllocator()
    db = DB(allocator=alloc, **FAST)
    rng = np.random.default_rng(7)
    for cycle in range(12):
        _cycle(db, rng, cycle)
    db.close()
    assert alloc.live() == [] and alloc.violations == []


def test_close_after_each_cycle_with_a_shared_allocator() -> None:
    alloc = CheckedAllocator()
    rng = np.random.default_rng(3)
    for cycle in range(10):
        with DB(allocator=alloc, **FAST) as db:
            db.add_batch(rng.standard_normal((BATCHES[cycle % 9], 4)).astype(np.float32))
        assert alloc.live() == []
    assert alloc.violations == []


def test_singleton_clear_database_cycles() -> None:
    """The note's fix: clear_database() destroys, get_global_db() builds a fresh one."""
    alloc = CheckedAllocator()
    rng = np.random.default_rng(11)
    try:
        for cycle in range(20):
            dim = DIMS[cycle % 3]
            db = get_global_db(allocator=alloc, **FAST)
            n = BATCHES[cycle % 9] + 10
            ids = add_vector_batch(list(range(n)), rng.standard_normal((n, dim)))
            assert ids == list(range(n)) and get_global_db() is db and db.count() == n
            clear_database()
            assert singleton_module._GLOBAL is None and db.state == "closed"
            assert alloc.live() == []
            clear_database()  # idempotent
    finally:
        cleanup_global_db()
    assert alloc.violations == []


def test_global_db_kwargs_apply_on_creation_only() -> None:
    try:
        db = get_global_db(metric="cosine", buffer_size=7)
        assert db.metric == "cosine" and db.buffer_size == 7
        assert get_global_db(metric="ip") is db  # kwargs ignored once it exists
        add_vector_batch([1, 2], np.eye(2, 3))
        from memcycle.refimpl import search_vectors

        res = search_vectors([1.0, 0.0, 0.0], 1)
        assert res[0].id == 1 and res[0].distance == pytest.approx(0.0, abs=1e-6)
    finally:
        cleanup_global_db()
        cleanup_global_db()
    assert singleton_module._GLOBAL is None
