"""The HNSW faults: each shows its verdict with the checked allocator, and the
abort-class ones really kill a child process with the raw allocator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from memcycle.isolation import RAW_ALLOCATOR_ENV
from memcycle.refimpl.alloc import CheckedAllocator
from memcycle.refimpl.errors import BufferOverflowError, InvalidFreeError, UseAfterFreeError
from memcycle.refimpl.faults import CATALOGUE, FaultSet
from memcycle.refimpl.hnsw import HNSWIndex
from memcycle.refimpl.kernels.distance import METRIC_L2
from memcycle.refimpl.segmented import SegmentedHNSW


def rows(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def cycle_then_grow(faults: FaultSet) -> tuple[CheckedAllocator, HNSWIndex]:
    alloc = CheckedAllocator()
    idx = HNSWIndex(alloc, 8, METRIC_L2, capacity=16, M=4, ef_construction=16, faults=faults)
    idx.add(rows(300, 8, 0), np.arange(300, dtype=np.int64))
    idx.clear()
    idx.add(rows(1200, 8, 1), np.arange(1200, dtype=np.int64))  # a larger graph next cycle
    return alloc, idx


def test_visited_not_reset_overflows_the_old_tag_array() -> None:
    with pytest.raises(BufferOverflowError) as info:
        cycle_then_grow(FaultSet(["visited-not-reset"]))
    assert info.value.verdict == CATALOGUE["visited-not-reset"].verdict_checked
    assert "hnsw.visited" in str(info.value) and "past the end" in str(info.value)


def test_visited_reset_clean_control() -> None:
    alloc, idx = cycle_then_grow(FaultSet())
    assert idx.visited_size == idx.capacity >= 1200
    alloc.verify()


def test_visited_not_reset_keeps_the_array_across_clear() -> None:
    alloc = CheckedAllocator()
    idx = HNSWIndex(alloc, 8, METRIC_L2, faults=FaultSet(["visited-not-reset"]))
    idx.add(rows(100, 8, 0), np.arange(100, dtype=np.int64))
    idx.clear()
    assert idx.visited_size > 0
    assert [b.label for b in alloc.live()] == ["hnsw.visited"]


def segmented_two_cycles(faults: FaultSet) -> SegmentedHNSW:
    alloc = CheckedAllocator()
    seg = SegmentedHNSW(alloc, 8, METRIC_L2, M=4, ef_construction=16, faults=faults)
    seg.min_segment_size = 200
    seg.add(rows(400, 8, 0), np.arange(400, dtype=np.int64), num_threads=2)
    seg.clear()
    assert alloc.live() == []  # the fault is not a leak: the blocks are freed
    seg.add(rows(400, 8, 1), np.arange(400, dtype=np.int64), num_threads=2)
    seg.search(rows(3, 8, 2), 5, 16)
    return seg


def test_stale_segment_view_is_a_use_after_free() -> None:
    with pytest.raises(UseAfterFreeError) as info:
        segmented_two_cycles(FaultSet(["stale-segment-view"]))
    assert info.value.verdict == CATALOGUE["stale-segment-view"].verdict_checked
    assert "segment.0." in str(info.value) and "freed at" in str(info.value)


def test_stale_segment_view_clean_control() -> None:
    assert len(segmented_two_cycles(FaultSet())) == 400


def test_uninitialized_slot_assign_frees_garbage() -> None:
    alloc = CheckedAllocator()
    seg = SegmentedHNSW(alloc, 4, METRIC_L2, faults=FaultSet(["uninitialized-slot-assign"]))
    with pytest.raises(InvalidFreeError) as info:
        seg.add(rows(50, 4, 0), np.arange(50, dtype=np.int64))
    assert info.value.verdict == CATALOGUE["uninitialized-slot-assign"].verdict_checked
    assert "0xa" in str(info.value)


def test_uninitialized_slot_assign_clean_control() -> None:
    seg = SegmentedHNSW(CheckedAllocator(), 4, METRIC_L2)
    seg.add(rows(50, 4, 0), np.arange(50, dtype=np.int64))
    assert len(seg) == 50


_RAW_SCRIPTS = {
    "stale-segment-view": """
        seg = SegmentedHNSW(alloc, 128, 0, M=4, ef_construction=16, faults=faults,
                            min_segment_size=200)
        for cycle, n in enumerate((6000, 400, 400)):  # big blocks are mmapped, then unmapped
            seg.add(rows(n, cycle), np.arange(n), num_threads=2)
            seg.search(rows(5, 99), 5, 16)
            seg.clear()
    """,
    "uninitialized-slot-assign": """
        seg = SegmentedHNSW(alloc, 8, 0, faults=faults)
        seg.add(rows(50, 0)[:, :8].copy(), np.arange(50))
    """,
}


@pytest.mark.parametrize("fault", sorted(_RAW_SCRIPTS))
def test_raw_allocator_abort_class_faults_kill_the_process(fault: str) -> None:
    assert CATALOGUE[fault].abort_class and CATALOGUE[fault].verdict_raw == "crash"
    script = (
        textwrap.dedent(
            """
        import numpy as np
        from memcycle.refimpl.alloc import RawAllocator
        from memcycle.refimpl.faults import FaultSet
        from memcycle.refimpl.segmented import SegmentedHNSW
        alloc = RawAllocator()
        faults = FaultSet([FAULT])
        def rows(n, seed):
            return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
        """
        )
        + textwrap.dedent(_RAW_SCRIPTS[fault])
        + "\nprint('survived')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", f"FAULT = {fault!r}\n" + script],
        capture_output=True,
        text=True,
        timeout=240,
        # as the harness runs raw children: a pinned mmap threshold unmaps every large freed block
        env={**os.environ, **RAW_ALLOCATOR_ENV},
    )
    # free(0xa) faults reading the chunk header below the pointer; a stale view
    # reads unmapped or recycled memory: both die by SIGSEGV on glibc
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stderr[-2000:])
    assert "survived" not in proc.stdout
