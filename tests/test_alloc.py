"""Allocators: ledger, guard zones, poisoning and the faults they name."""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl.alloc import (
    ALLOCATOR_NAMES,
    Block,
    CheckedAllocator,
    NumpyAllocator,
    RawAllocator,
    make_allocator,
)
from memcycle.refimpl.errors import (
    BufferOverflowError,
    DoubleFreeError,
    InvalidFreeError,
    UnknownNameError,
    UseAfterFreeError,
)

ALL = [NumpyAllocator, CheckedAllocator, RawAllocator]


@pytest.mark.parametrize("cls", ALL)
def test_alloc_free_ledger(cls: type) -> None:
    a = cls()
    b1 = a.alloc("x.vectors", (4, 3), np.float32)
    b2 = a.alloc("x.ids", 5, np.int64, zero=False)
    assert b1.array.shape == (4, 3) and b1.array.dtype == np.float32
    assert np.all(b1.array == 0)
    b1.array[:] = 7
    assert b1.array.sum() == 84
    assert {i.label for i in a.live()} == {"x.vectors", "x.ids"}
    s = a.stats()
    assert (s.allocs, s.frees, s.live_blocks, s.live_bytes) == (2, 0, 2, 48 + 40)
    a.free(b1)
    a.free(b2)
    assert a.live() == [] and a.stats().peak_bytes == 88
    snap = a.snapshot()
    assert snap["allocator"] == a.name and snap["live_blocks"] == 0 and snap["by_label"] == {}


@pytest.mark.parametrize("cls", [NumpyAllocator, CheckedAllocator])
def test_double_and_invalid_free_are_caught(cls: type) -> None:
    a = cls()
    b = a.alloc("d", 8, np.uint8)
    a.free(b)
    with pytest.raises(DoubleFreeError, match="'d'"):
        a.free(b)
    with pytest.raises(InvalidFreeError):
        a.free(Block.forged(0xA))
    assert [v["verdict"] for v in a.violations] == ["double-free", "invalid-free"]


def test_checked_reports_stacks_overflow_and_use_after_free() -> None:
    a = CheckedAllocator()
    b = a.alloc("hnsw.level0", 16, np.int32)
    assert any("test_alloc.py" in line for line in b.alloc_stack or ())
    raw_view = b.array.view(np.uint8)
    # write one byte past the end through the underlying buffer (a native overflow)
    base = np.frombuffer(
        (np.ctypeslib.as_ctypes_type(np.uint8) * 65).from_address(b.address), np.uint8
    )
    base[64] = 0
    with pytest.raises(BufferOverflowError, match="past the end"):
        a.verify()
    a2 = CheckedAllocator()
    c = a2.alloc("flat.vectors", 4, np.float32)
    view = c.array
    a2.free(c)
    assert view.view(np.uint8).tolist() == [0xDD] * 16  # poisoned
    with pytest.raises(UseAfterFreeError, match=r"flat\.vectors"):
        _ = c.array
    with pytest.raises(BufferOverflowError):
        a2.store(a2.alloc("s", 2, np.int64), 1, np.array([1, 2], np.int64))
    del raw_view


def test_make_allocator() -> None:
    assert ALLOCATOR_NAMES == ("numpy", "checked", "raw")
    for name in ALLOCATOR_NAMES:
        assert make_allocator(name).name == name
    inst = CheckedAllocator()
    assert make_allocator(inst) is inst
    with pytest.raises(UnknownNameError, match="expected one of"):
        make_allocator("jemalloc")
    with pytest.raises(UnknownNameError):
        make_allocator(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [NumpyAllocator, CheckedAllocator])
def test_blocks_and_violations_carry_alloc_and_free_sequence(cls: type) -> None:
    a = cls()
    first = a.alloc("s.a", 8, np.uint8)
    second = a.alloc("s.b", 8, np.uint8)
    assert (first.alloc_seq, second.alloc_seq) == (1, 2)
    assert first.free_seq is None
    a.free(second)
    a.free(first)
    assert (second.free_seq, first.free_seq) == (1, 2)
    with pytest.raises(DoubleFreeError):
        a.free(second)
    (v,) = a.violations
    assert (v["alloc_seq"], v["free_seq"]) == (2, 1)  # freed first, freed again later


def test_raw_unchecked_free_violation_carries_the_sequence() -> None:
    a = RawAllocator()
    b = a.alloc("r", 8, np.uint8)
    a.free(b)
    assert (b.alloc_seq, b.free_seq) == (1, 1)
    # the second free goes to PyMem_RawFree unchecked (glibc aborts): swap in a no-op
    a._rawfree = lambda addr: None  # type: ignore[method-assign]
    a.free(b)
    (v,) = a.violations
    assert v["verdict"] == "double-free" and (v["alloc_seq"], v["free_seq"]) == (1, 1)


def test_snapshot_names_the_newest_live_block_stack_per_label() -> None:
    a = CheckedAllocator()

    def grow_here() -> None:
        a.alloc("leaky.map", 4, np.int64)

    a.alloc("leaky.map", 4, np.int64)
    grow_here()
    a.alloc("other", 4, np.int64)
    by_label = a.snapshot()["by_label"]
    assert by_label["leaky.map"]["blocks"] == 2
    stack = by_label["leaky.map"]["stack"]
    assert 1 <= len(stack) <= 4 and "in grow_here" in stack[0]  # innermost first
    assert "in grow_here" not in by_label["other"]["stack"][0]
    # no stacks recorded: no stack key
    n = NumpyAllocator()
    n.alloc("leaky.map", 4, np.int64)
    assert "stack" not in n.snapshot()["by_label"]["leaky.map"]


def test_checked_snapshot_reports_its_quarantine_as_cached_bytes() -> None:
    a = CheckedAllocator()
    b = a.alloc("q", 1000, np.uint8)
    assert a.snapshot()["cached_bytes"] == 0
    a.free(b)
    cached = a.snapshot()["cached_bytes"]
    assert cached >= 1000 and cached == a._quarantine_bytes
    assert "cached_bytes" not in NumpyAllocator().snapshot()
