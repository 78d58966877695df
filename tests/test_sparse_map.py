"""SparseMap: an int64 -> int64 map over allocator blocks, checked against a dict."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memcycle.refimpl.alloc import CheckedAllocator, NumpyAllocator
from memcycle.refimpl.errors import DoubleFreeError, LifecycleError
from memcycle.refimpl.kernels.hashmap import home_slots
from memcycle.refimpl.sparse_map import SparseMap


def test_put_get_delete_roundtrip() -> None:
    alloc = CheckedAllocator()
    m = SparseMap(alloc, 8, label="t")
    keys = np.array([5, -7, 2**62, 0, 123456789], np.int64)
    assert m.put_many(keys, np.arange(5)) == 5
    assert len(m) == 5
    assert m.get_many(keys).tolist() == [0, 1, 2, 3, 4]
    assert m.get(999) == -1
    assert m.delete_many(np.array([-7, 999], np.int64)).tolist() == [1, -1]
    assert len(m) == 4
    assert m.get(-7) == -1
    # overwrite keeps the size
    assert m.put_many(np.array([5], np.int64), np.array([50], np.int64)) == 0
    assert m.get(5) == 50
    # a deleted key can come back (reusing its tombstone)
    assert m.put(-7, 70)
    assert m.get(-7) == 70 and len(m) == 5
    k, v = m.items()
    assert dict(zip(k.tolist(), v.tolist(), strict=True)) == {
        5: 50,
        -7: 70,
        2**62: 2,
        0: 3,
        123456789: 4,
    }


def test_grows_at_load_factor_and_stays_power_of_two() -> None:
    alloc = CheckedAllocator()
    m = SparseMap(alloc, 8, label="grow", max_load=0.5)
    caps = set()
    for start in range(0, 5000, 97):
        keys = np.arange(start, start + 97, dtype=np.int64) * 7919
        m.put_many(keys, keys + 1)
        caps.add(m.capacity)
        assert len(m) <= m.capacity * 0.5
    assert all(c & (c - 1) == 0 for c in caps)
    assert len(caps) > 3
    keys = np.arange(0, 5044, dtype=np.int64) * 7919
    assert np.array_equal(m.get_many(keys), keys + 1)
    # only the current table is live: old tables were freed on every growth
    labels = sorted(b.label for b in alloc.live())
    assert labels == ["grow.keys", "grow.states", "grow.vals"]


def test_tombstones_are_reclaimed_by_rehash() -> None:
    alloc = NumpyAllocator()
    m = SparseMap(alloc, 64, label="churn")
    for i in range(2000):  # insert/delete churn must not grow the table without bound
        m.put(i, i)
        m.delete_many(np.array([i], np.int64))
    assert len(m) == 0
    assert m.capacity <= 128


def test_clear_frees_every_block_and_map_is_reusable() -> None:
    alloc = CheckedAllocator()
    m = SparseMap(alloc, 16, label="c")
    m.put_many(np.arange(100), np.arange(100))
    assert len(alloc.live()) == 3
    m.clear()
    assert alloc.live() == [] and len(m) == 0 and m.capacity == 0
    m.clear()  # idempotent
    assert m.get(3) == -1
    m.put(3, 4)
    assert m.get(3) == 4
    m.destroy()
    assert alloc.live() == []
    with pytest.raises(LifecycleError):
        m.put(1, 1)


def test_finalizer_frees_a_dropped_map_once() -> None:
    alloc = CheckedAllocator()
    m = SparseMap(alloc, 16, label="fin")
    m.put_many(np.arange(10), np.arange(10))
    del m
    gc.collect()
    assert alloc.live() == [] and alloc.violations == []


def test_finalizer_after_external_free_is_a_double_free() -> None:
    """The mechanism of the sparse-map-recreate fault, at the lowest level."""
    alloc = CheckedAllocator()
    m = SparseMap(alloc, 16, label="dbl")
    m.put(1, 1)
    for b in m.blocks():
        alloc.free(b)
    with pytest.raises(DoubleFreeError):
        m.__del__()
    assert alloc.violations[-1]["verdict"] == "double-free"


def test_home_slots_are_in_range_and_spread() -> None:
    keys = np.arange(10000, dtype=np.int64)
    homes = home_slots(keys, 1024)
    assert homes.min() >= 0 and homes.max() < 1024
    assert np.bincount(homes, minlength=1024).max() < 40  # sequential keys do not cluster


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "del", "clear"]),
            st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-50, 50), max_size=20),
        ),
        max_size=30,
    )
)
def test_matches_a_dict(ops: list[tuple[str, list[int]]]) -> None:
    alloc = CheckedAllocator()
    m = SparseMap(alloc, 8, label="h")
    model: dict[int, int] = {}
    for n, (op, keys) in enumerate(ops):
        arr = np.array(keys, np.int64)
        if op == "put":
            vals = np.arange(len(keys), dtype=np.int64) + n
            m.put_many(arr, vals)
            model.update(zip(keys, vals.tolist(), strict=True))
        elif op == "del":
            out = m.delete_many(arr)
            for k, v in zip(keys, out.tolist(), strict=True):
                assert v == model.pop(k, -1)
        else:
            m.clear()
            model.clear()
            assert alloc.live() == []
        assert len(m) == len(model)
    probe = [*list(model), 3, -3, 2**63 - 1]
    got = m.get_many(np.array(probe, np.int64)).tolist()
    assert got == [model.get(k, -1) for k in probe]
    m.destroy()
    assert alloc.live() == [] and alloc.violations == []
