"""Every safety check of the checked allocator, reached from every path that must run it.

`verify()` is one way a damaged guard zone or a write into freed memory is found; a `free()` of the
damaged block and the eviction of a freed block from the quarantine are the others, and a user's
engine that never calls `verify()` relies on them (docs/mutation.md).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from memcycle.refimpl.alloc import (
    Block,
    CheckedAllocator,
    NumpyAllocator,
    alloc_all,
    make_allocator,
)
from memcycle.refimpl.errors import (
    BufferOverflowError,
    DoubleFreeError,
    InvalidFreeError,
    UnknownNameError,
    UseAfterFreeError,
)

GUARD = 64


def _poke(address: int, value: int = 0) -> None:
    """One byte written through a raw pointer, as native code past a block's end would."""
    ctypes.memset(address, value, 1)


def test_a_damaged_tail_guard_is_found_when_the_block_is_freed() -> None:
    a = CheckedAllocator()
    b = a.alloc("ov.tail", 8, np.uint8)
    _poke(b.address + 8)
    with pytest.raises(
        BufferOverflowError, match=r"1 byte\(s\) past the end \(first at \+0\).*on free"
    ):
        a.free(b)
    assert a.violations[-1]["verdict"] == "buffer-overflow"


def test_a_damaged_head_guard_is_named_before_the_start_on_verify() -> None:
    a = CheckedAllocator()
    b = a.alloc("ov.head", 8, np.uint8)
    _poke(b.address - 1)
    with pytest.raises(BufferOverflowError, match=r"1 byte\(s\) before the start; found on verify"):
        a.verify()


def test_an_intact_block_frees_and_verifies_without_a_violation() -> None:
    a = CheckedAllocator()
    b = a.alloc("ok", 24, np.uint8)
    b.array[:] = 0xFA  # the canary value inside the block is data, not damage
    a.verify()
    a.free(b)
    a.verify()
    assert a.violations == []


def test_a_write_after_free_is_found_when_the_block_leaves_the_quarantine() -> None:
    a = CheckedAllocator(quarantine_bytes=GUARD * 2 + 16)  # room for one freed block
    first = a.alloc("uaf.first", 16, np.uint8)
    stale = first.array
    a.free(first)
    stale[3] = 1  # through a view kept past the free
    second = a.alloc("uaf.second", 16, np.uint8)
    with pytest.raises(UseAfterFreeError, match=r"write after free into .*uaf\.first"):
        a.free(second)  # evicts `first` from the quarantine, which checks its poison


def test_a_write_after_free_is_found_by_verify_while_the_block_is_quarantined() -> None:
    a = CheckedAllocator()
    b = a.alloc("uaf.q", 16, np.uint8)
    stale = b.array
    a.free(b)
    a.verify()  # poison intact: nothing to report
    stale[0] = 7
    with pytest.raises(UseAfterFreeError, match=r"uaf\.q"):
        a.verify()


def test_the_quarantine_is_bounded_and_evicts_the_oldest_block_first() -> None:
    a = CheckedAllocator(quarantine_bytes=(GUARD * 2 + 16) * 2)
    blocks = [a.alloc(f"q{i}", 16, np.uint8) for i in range(4)]
    for b in blocks:
        a.free(b)
    assert a.snapshot()["cached_bytes"] == (GUARD * 2 + 16) * 2
    assert list(a._quarantine) == [blocks[2].id, blocks[3].id]


def test_a_store_into_a_freed_block_is_a_use_after_free() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.freed", 4, np.int32)
    a.free(b)
    with pytest.raises(UseAfterFreeError, match=r"st\.freed"):
        a.store(b, 0, np.array([1], np.int32))


@pytest.mark.parametrize(("index", "count"), [(-1, 1), (3, 2), (4, 1)])
def test_a_store_outside_the_block_is_an_overflow(index: int, count: int) -> None:
    a = CheckedAllocator()
    b = a.alloc("st.range", 4, np.int32)
    with pytest.raises(BufferOverflowError, match="WRITE of"):
        a.store(b, index, np.ones(count, np.int32))


def test_a_store_that_ends_exactly_at_the_block_end_is_accepted() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.edge", 4, np.int32)
    a.store(b, 2, np.array([5, 6], np.int32))
    assert b.array.tolist() == [0, 0, 5, 6]
    a.verify()


def test_the_overflow_message_counts_the_bytes_past_the_end() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.count", 4, np.int32)
    with pytest.raises(
        BufferOverflowError, match=r"WRITE of 8 bytes at offset 12 .* 4 byte\(s\) past"
    ):
        a.store(b, 3, np.ones(2, np.int32))


def test_fresh_checked_memory_is_zeroed_or_filled_as_asked() -> None:
    a = CheckedAllocator()
    assert a.alloc("z", 5, np.uint8).array.tolist() == [0] * 5
    assert a.alloc("f", 5, np.uint8, zero=False).array.tolist() == [0xBE] * 5


@pytest.mark.parametrize("cls", [NumpyAllocator, CheckedAllocator])
def test_a_free_from_another_allocator_is_invalid(cls: type) -> None:
    mine, theirs = cls(), cls()
    b = theirs.alloc("foreign", 4, np.uint8)
    with pytest.raises(InvalidFreeError):
        mine.free(b)
    assert theirs.stats().live_blocks == 1


def test_a_double_free_is_refused_before_the_guard_check_and_names_both_frees() -> None:
    a = CheckedAllocator()
    b = a.alloc("df", 4, np.uint8)
    a.free(b)
    with pytest.raises(DoubleFreeError, match=r"first freed at:\n.*test_alloc_mutants"):
        a.free(b)
    assert a.stats().frees == 1


def test_free_counts_bytes_and_sequence() -> None:
    a = NumpyAllocator()
    b1, b2 = a.alloc("a", 10, np.uint8), a.alloc("b", 6, np.uint8)
    a.free(b2)
    assert (b2.alloc_seq, b2.free_seq, b2.freed) == (2, 1, True)
    s = a.stats()
    assert (s.live_blocks, s.live_bytes, s.peak_bytes) == (1, 10, 16)
    assert [i.label for i in a.live()] == ["a"] and b1.freed is False


def test_alloc_all_frees_what_it_made_when_one_request_fails() -> None:
    a = CheckedAllocator()
    with pytest.raises(ValueError, match="negative dimension"):
        alloc_all(
            a, [("ok1", 4, np.uint8, True), ("ok2", 4, np.uint8, True), ("bad", -1, np.uint8, True)]
        )
    assert a.stats().live_blocks == 0 and a.stats().frees == 2


def test_make_allocator_refuses_a_non_allocator_object_naming_the_choices() -> None:
    with pytest.raises(UnknownNameError, match="allocator must be one of"):
        make_allocator(42)  # type: ignore[arg-type]
    checked = CheckedAllocator()
    assert make_allocator(checked) is checked


def test_a_forged_block_is_not_issued_by_any_allocator() -> None:
    forged = Block.forged(0xBAD)
    with pytest.raises(InvalidFreeError, match="never issued"):
        CheckedAllocator().free(forged)


def test_a_store_at_the_first_element_is_accepted() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.first", 4, np.uint8)
    a.store(b, 0, np.array([9], np.uint8))
    assert b.array.tolist() == [9, 0, 0, 0]


def test_a_store_one_byte_before_a_byte_block_is_an_overflow() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.before", 4, np.uint8)
    with pytest.raises(BufferOverflowError, match="offset -1"):
        a.store(b, -1, np.array([1], np.uint8))


def test_zero_is_a_keyword_only_argument_of_alloc() -> None:
    with pytest.raises(TypeError):
        NumpyAllocator().alloc("kw", 4, np.uint8, False)  # type: ignore[misc]


def test_a_recorded_stack_holds_the_fourteen_innermost_caller_frames() -> None:
    def nested(depth: int) -> Block:
        return CheckedAllocator().alloc("deep", 1, np.uint8) if depth == 0 else nested(depth - 1)

    stack = nested(20).alloc_stack or ()
    assert len(stack) == 14
    assert stack[-1].endswith("in nested") and "alloc.py" not in " ".join(stack)


def test_block_info_is_immutable_plain_data() -> None:
    import dataclasses

    (info,) = (a := NumpyAllocator()).alloc("bi", 2, np.uint8) and a.live()
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.label = "changed"  # type: ignore[misc]


def test_the_checked_quarantine_holds_256_mib_by_default() -> None:
    assert CheckedAllocator()._quarantine_limit == 256 * 1024 * 1024
