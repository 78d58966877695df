"""Measurements taken inside the child: memray, tracemalloc, RSS, Numba NRT, ledger.

memray writes the ALL_ALLOCATIONS file format (an aggregated capture is empty
after a crash). Cycle boundaries are put into the capture as *markers*: a
malloc/free of a reserved size from a function named `_memcycle_marker` (the
encoding is `protocol.marker_size`), so `harness.analysis` can split the allocation stream per
cycle without any clock. Nothing here reads a capture back.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import tracemalloc
from collections import Counter
from typing import Any

import psutil

from .protocol import marker_size

NUMPY_TRACEMALLOC_DOMAIN = 389047
# object counts by type at reset points: types with fewer objects are left out (they cannot
# be a leak worth naming), and at most this many types are kept per point
MIN_TYPE_COUNT = 20
MAX_TYPES = 100

_malloc = ctypes.pythonapi.PyMem_RawMalloc
_malloc.restype = ctypes.c_void_p
_malloc.argtypes = [ctypes.c_size_t]
_free = ctypes.pythonapi.PyMem_RawFree
_free.restype = None
_free.argtypes = [ctypes.c_void_p]


def _memcycle_marker(index: int) -> None:
    """Allocate and free a block of the reserved size so memray records the boundary."""
    p = _malloc(marker_size(index))
    if p:
        _free(p)


def nrt_stats() -> dict[str, int] | None:
    """Numba's NRT allocation counters (needs NUMBA_NRT_STATS=1 before numba is imported)."""
    if "numba" not in sys.modules:
        return None
    try:
        from numba.core.runtime import rtsys

        s = rtsys.get_allocation_stats()
    except Exception:  # stats disabled or NRT not initialised
        return None
    return {"alloc": s.alloc, "free": s.free, "mi_alloc": s.mi_alloc, "mi_free": s.mi_free}


class Recorder:
    """Owns the memray tracker and tracemalloc for one child run."""

    def __init__(
        self,
        memray_path: str | None,
        *,
        native: bool = False,
        use_tracemalloc: bool = True,
        trace_python_allocators: bool = False,
    ) -> None:
        self.memray_path = memray_path
        self.native = native
        # memray sees Python objects only as pymalloc arenas (1 MiB blocks) unless it traces
        # the Python allocators too: then a leak of Python objects shows with its stack
        self.trace_python_allocators = trace_python_allocators
        self.use_tracemalloc = use_tracemalloc
        self._tracker: Any = None
        self._proc = psutil.Process()
        self._markers = 0

    def start(self) -> None:
        if self.use_tracemalloc:
            tracemalloc.start(1)
        if self.memray_path:
            import memray

            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.memray_path)
            self._tracker = memray.Tracker(
                self.memray_path,
                file_format=memray.FileFormat.ALL_ALLOCATIONS,
                native_traces=self.native,
                follow_fork=False,
                trace_python_allocators=self.trace_python_allocators,
            )
            self._tracker.__enter__()

    def stop(self) -> None:
        """Flush and close the capture (must run before os._exit)."""
        if self._tracker is not None:
            tracker, self._tracker = self._tracker, None
            tracker.__exit__(None, None, None)
        if self.use_tracemalloc and tracemalloc.is_tracing():
            tracemalloc.stop()

    def mark(self) -> int | None:
        """Put a boundary into the memray stream; returns its index (None without memray)."""
        if self._tracker is None:
            return None
        index = self._markers
        self._markers += 1
        _memcycle_marker(index)
        return index

    def measure(self, *, full: bool = False, objects: bool = False) -> dict[str, Any]:
        """Cheap numbers every step; with `full`, also NumPy's tracemalloc domain; with
        `objects` (reset points), a collection first and the Python objects by type."""
        counts = python_objects() if objects else None
        m: dict[str, Any] = {
            "rss": self._proc.memory_info().rss,
            # pymalloc blocks in use: every small Python object, no tracemalloc needed
            "py_blocks": sys.getallocatedblocks(),
        }
        if counts is not None:
            m["py_objects"] = counts
        if self.use_tracemalloc and tracemalloc.is_tracing():
            cur, peak = tracemalloc.get_traced_memory()
            m["tracemalloc"] = cur
            m["tracemalloc_peak"] = peak
            if full:
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.DomainFilter(True, NUMPY_TRACEMALLOC_DOMAIN)]
                )
                m["tracemalloc_numpy"] = sum(t.size for t in snap.traces)
        nrt = nrt_stats()
        if nrt is not None:
            m["nrt"] = nrt
        return m


def python_objects() -> dict[str, int]:
    """Objects tracked by the garbage collector, by type, after a collection (objgraph's
    growth view): containers and instances; ints, floats and strs are not tracked."""
    gc.collect()
    # counted by type object first, named once per type (the same counts, in the same order of
    # first appearance: a soak runs this at each of its 200 resets over ~100k objects)
    counts: Counter[str] = Counter()
    for t, n in Counter(map(type, gc.get_objects())).items():
        counts[_type_name(t)] += n
    return {k: v for k, v in counts.most_common(MAX_TYPES) if v >= MIN_TYPE_COUNT}


def _type_name(t: type) -> str:
    mod = t.__module__
    return t.__qualname__ if mod == "builtins" else f"{mod}.{t.__qualname__}"
