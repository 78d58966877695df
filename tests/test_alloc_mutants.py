"""Every safety check of the checked allocator, reached from every path that must run it.

`verify()` is one way a damaged guard zone or a write into freed memory is found; a `free()` of the
damaged block and the eviction of a freed block from the quarantine are the others, and a user's
engine that never calls `verify()` relies on them (docs/mutation.md).
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses

import numpy as np
import pytest
from memcycle.refimpl.alloc import (
    Block,
    CheckedAllocator,
    NumpyAllocator,
    RawAllocator,
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
    (info,) = (a := NumpyAllocator()).alloc("bi", 2, np.uint8) and a.live()
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.label = "changed"  # type: ignore[misc]


def test_the_checked_quarantine_holds_256_mib_by_default() -> None:
    assert CheckedAllocator()._quarantine_limit == 256 * 1024 * 1024


# -- the full run of main 9e1476c (docs/mutation.md, mutation/triage/alloc.md) -------------------


def _violation_overflow(a: CheckedAllocator) -> dict:
    return a.violations[-1]["overflow"]


@pytest.mark.parametrize("nbytes", [65, 80, 100, 127, 200])
def test_an_intact_block_longer_than_a_guard_zone_frees_and_verifies_without_a_violation(
    nbytes: int,
) -> None:
    """The whole tail guard is written, whatever the block's size. The raw buffer's size is
    taken from numpy's small-block cache zeroed first, so a tail left unwritten reads 0, not
    the canary, and cannot pass by chance."""
    payload = (nbytes + 15) & ~15
    del_me = np.zeros(GUARD * 2 + payload, np.uint8)
    del del_me
    a = CheckedAllocator()
    b = a.alloc("ok.long", nbytes, np.uint8)
    a.verify()
    a.free(b)
    assert a.violations == []


def test_a_store_past_the_end_records_the_bytes_past_the_end_as_data() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.facts", 4, np.int32)
    with pytest.raises(BufferOverflowError):
        a.store(b, 3, np.ones(2, np.int32))
    assert _violation_overflow(a) == {
        "access": "write",
        "access_bytes": 8,
        "offset": 12,
        "past_end_bytes": 4,
    }


def test_a_store_before_the_start_records_no_bytes_past_the_end() -> None:
    a = CheckedAllocator()
    b = a.alloc("st.before.facts", 4, np.uint8)
    with pytest.raises(BufferOverflowError):
        a.store(b, -1, np.array([1], np.uint8))
    assert _violation_overflow(a)["offset"] == -1
    assert _violation_overflow(a)["past_end_bytes"] == 0


def test_a_damaged_tail_guard_records_no_bytes_before_the_start() -> None:
    a = CheckedAllocator()
    b = a.alloc("ov.tail.facts", 8, np.uint8)
    _poke(b.address + 8)
    _poke(b.address + 9)
    with pytest.raises(BufferOverflowError):
        a.free(b)
    assert _violation_overflow(a) == {"found_on": "free", "past_end_bytes": 2}


def test_a_damaged_head_guard_records_the_bytes_before_the_start() -> None:
    a = CheckedAllocator()
    b = a.alloc("ov.head.facts", 8, np.uint8)
    _poke(b.address - 1)
    with pytest.raises(BufferOverflowError):
        a.verify()
    assert _violation_overflow(a) == {
        "found_on": "verify",
        "past_end_bytes": 0,
        "before_start_bytes": 1,
    }


@pytest.mark.parametrize("cls", [NumpyAllocator, CheckedAllocator, RawAllocator])
@pytest.mark.parametrize("shape", [0, (3, 0)])
def test_a_block_with_a_zero_dimension_is_allocated_and_freed(cls: type, shape: object) -> None:
    a = cls()
    b = a.alloc("empty", shape, np.float32)
    assert b.nbytes == 0 and b.array.size == 0
    a.free(b)
    assert a.stats().live_blocks == 0 and a.violations == []


@pytest.mark.parametrize("cls", [NumpyAllocator, CheckedAllocator, RawAllocator])
def test_block_ids_count_from_one_as_the_allocation_counter_does(cls: type) -> None:
    """The evidence places a violation's allocating step by its block id read as the
    allocator's `allocs` counter (harness/evidence/ledger.py), so the two must agree."""
    a = cls()
    blocks = [a.alloc(f"id{i}", 4, np.uint8) for i in range(3)]
    assert [b.id for b in blocks] == [1, 2, 3] == [b.alloc_seq for b in blocks]
    assert blocks[0].describe().startswith("block #1 'id0' (4 bytes at 0x")
    for b in blocks:
        a.free(b)


def test_a_forged_handle_reads_as_block_minus_one_of_zero_bytes_never_allocated() -> None:
    """-1 is the id the evidence leaves out of 'block #N' (harness/evidence/ledger.py)."""
    forged = Block.forged(0xBAD)
    assert forged.describe() == "block #-1 '<garbage>' (0 bytes at 0xbad)"
    assert (forged.alloc_seq, forged.free_seq, forged.freed) == (0, None, False)


def _recording_rawfree(a: RawAllocator) -> list[int]:
    """The raw allocator's unchecked frees, recorded instead of handed to glibc (which aborts
    on a double free)."""
    freed: list[int] = []
    a._rawfree = freed.append  # type: ignore[method-assign, assignment]
    return freed


def test_the_raw_allocator_records_a_forged_free_as_block_minus_one_never_allocated() -> None:
    a = RawAllocator()
    passed = _recording_rawfree(a)
    a.free(Block.forged(0, label="slot"))
    assert passed == [0]
    (v,) = a.violations
    assert v == {
        "verdict": "invalid-free",
        "message": "raw free of block #-1 'slot' (0 bytes at 0x0) passed to PyMem_RawFree unchecked",
        "label": "slot",
        "nbytes": 0,
        "block_id": -1,
        "address": 0,
        "alloc_seq": 0,
        "free_seq": None,
    }


def test_the_raw_allocator_hands_a_foreign_block_to_c_even_when_its_id_is_live_here() -> None:
    mine, theirs = RawAllocator(), RawAllocator()
    own = mine.alloc("mine", 8, np.uint8)
    foreign = theirs.alloc("theirs", 8, np.uint8)
    assert own.id == foreign.id
    passed = _recording_rawfree(mine)
    mine.free(foreign)
    assert passed == [foreign.address]
    assert mine.violations[-1]["verdict"] == "invalid-free"
    assert mine.stats().live_blocks == 1 and own.freed is False
    theirs.free(foreign)
    del mine._rawfree
    mine.free(own)


def test_the_raw_allocator_hands_a_stale_copy_of_a_freed_handle_to_c_unchecked() -> None:
    """A handle copied before its block was freed is not live any more: no protection, the
    pointer goes to the C allocator as native code's would (a double free in glibc)."""
    a = RawAllocator()
    b = a.alloc("copied", 8, np.uint8)
    stale = copy.copy(b)
    a.free(b)
    passed = _recording_rawfree(a)
    a.free(stale)
    assert passed == [b.address]
    assert a.violations[-1]["verdict"] == "invalid-free"
    assert a.stats().frees == 1


def test_a_free_from_another_allocator_is_invalid_even_when_its_id_is_live_here() -> None:
    mine, theirs = CheckedAllocator(), CheckedAllocator()
    own = mine.alloc("mine", 4, np.uint8)
    foreign = theirs.alloc("theirs", 4, np.uint8)
    assert own.id == foreign.id
    with pytest.raises(InvalidFreeError, match="never issued"):
        mine.free(foreign)
    assert mine.stats().live_blocks == 1 and mine.stats().frees == 0
    assert foreign.freed is False and theirs.stats().live_blocks == 1


def test_a_numpy_block_address_is_its_memory_so_a_store_writes_the_block() -> None:
    a = NumpyAllocator()
    b = a.alloc("np.store", 4, np.uint8)
    assert b.address == b.array.ctypes.data
    a.store(b, 1, np.array([7], np.uint8))
    assert b.array.tolist() == [0, 7, 0, 0]


def test_allocator_stats_are_immutable_plain_data() -> None:
    stats = NumpyAllocator().stats()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.allocs = 5  # type: ignore[misc]


def test_blocks_are_compared_by_identity_and_can_be_kept_in_a_set() -> None:
    one, two = Block.forged(0x10), Block.forged(0x10)
    assert one != two and len({one, two}) == 2


def test_a_fresh_allocator_reports_zero_for_every_counter() -> None:
    snap = CheckedAllocator().snapshot()
    assert {k: snap[k] for k in ("allocs", "frees", "live_blocks", "live_bytes", "peak_bytes")} == {
        "allocs": 0,
        "frees": 0,
        "live_blocks": 0,
        "live_bytes": 0,
        "peak_bytes": 0,
    }
    n = NumpyAllocator()
    n.free(n.alloc("nothing", 0, np.uint8))
    assert n.stats().peak_bytes == 0


def test_the_snapshot_counts_each_label_blocks_and_bytes_exactly() -> None:
    a = NumpyAllocator()
    a.alloc("x", 10, np.uint8)
    a.alloc("x", 3, np.int32)
    a.alloc("y", 1, np.uint8)
    assert a.snapshot()["by_label"] == {
        "x": {"blocks": 2, "bytes": 22},
        "y": {"blocks": 1, "bytes": 1},
    }


@pytest.mark.parametrize(
    ("nbytes", "zero", "asked"),
    [
        (0, True, ("calloc", 1, 1)),
        (1, False, ("malloc", 1)),
        (24, True, ("calloc", 1, 24)),
        (24, False, ("malloc", 24)),
    ],
)
def test_a_raw_block_asks_c_for_exactly_its_bytes_and_one_when_empty(
    nbytes: int, zero: bool, asked: tuple
) -> None:
    """What memray and the leak figures see is what the engine asked for."""
    a = RawAllocator()
    calls: list[tuple] = []

    def calloc(n: int, size: int) -> int:
        calls.append(("calloc", n, size))
        return RawAllocator._calloc(n, size)

    def malloc(size: int) -> int:
        calls.append(("malloc", size))
        return RawAllocator._malloc(size)

    a._calloc, a._malloc = calloc, malloc  # type: ignore[method-assign, assignment]
    b = a.alloc("raw.size", nbytes, np.uint8, zero=zero)
    assert calls == [asked]
    a.free(b)
