"""HNSWIndex: one HNSW graph whose every array is an allocator block.

The Python object owns the blocks (see `refimpl.kernels.hnsw` for the layout)
and hands their arrays to the Numba kernels. Capacity grows by `resize`
(allocate new blocks, copy, free the old ones); `clear()` frees every block so
the allocator's live set is empty, and the next `add` allocates afresh.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import numba
import numpy as np

from .alloc import Allocator, Block, alloc_all
from .errors import InvalidInputError, LifecycleError
from .faults import NO_FAULTS, FaultSet
from .kernels import codes as C
from .kernels import hnsw as K

_MAX_LEVEL = 127  # levels are int8
PARALLEL_BATCH = 256  # nodes per two-phase parallel insertion step
PARALLEL_WARMUP = 512  # insert serially until the graph has this many nodes


def prepare_search(
    queries: np.ndarray, dim: int, k: int, deleted: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Queries as C-contiguous float32 `(q, dim)` and the deleted mask as uint8; bad shapes raise."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries.reshape(1, -1)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise InvalidInputError(f"queries must have shape (q, {dim}), got {queries.shape}")
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    if deleted is not None:
        deleted = np.ascontiguousarray(deleted, dtype=np.uint8)
    return queries, deleted


def empty_result(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A search answer with no hits: labels -1, distances +inf."""
    return np.full((q, k), -1, np.int64), np.full((q, k), np.inf, np.float32)


class GraphView(NamedTuple):
    """The blocks of one graph at one moment, enough to search it.

    `SegmentedHNSW` keeps these for its fan-out search; a view is only valid
    while its graph's blocks are live (the checked allocator enforces that).
    A named tuple, not a frozen dataclass: one is built per search call, and a
    frozen dataclass takes ~8 µs to build where this takes well under one.
    """

    vectors: Block
    level0: Block
    upper: Block
    offsets: Block
    levels: Block
    labels: Block
    visited: Block
    state: Block
    metric: int
    visited_rows: int
    codes: Block | None  # the 8-bit codes the search walks on (kernels/codes.py)
    norms: Block | None
    scale: Block | None
    coded: bool  # every row has its code: the search walks on the codes

    def parts(self) -> tuple:
        """The fields of `kernels.hnsw.Graph` as the kernels' entry points take them, a
        plain tuple (reading a freed block's array raises under the checked allocator)."""
        return (
            self.vectors.array,
            self.level0.array,
            self.upper.array,
            self.offsets.array,
            self.levels.array,
            self.labels.array,
            self.visited.array,
            self.state.array,
            self.metric,
        )

    def walk(self) -> tuple | None:
        """The kernels' `walk`: (codes, norms, scale) when the search walks on the codes,
        None when it measures on the exact rows."""
        if not self.coded or self.codes is None or self.norms is None or self.scale is None:
            return None
        return (self.codes.array, self.norms.array, self.scale.array)


def search_view(
    view: GraphView,
    queries: np.ndarray,
    k: int,
    ef: int,
    deleted: np.ndarray | None = None,
    num_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Search a graph through its view: (labels int64 (q, k) / -1, distances float32 / inf)."""
    q = queries.shape[0]
    out_l = np.empty((q, k), np.int64)
    out_d = np.empty((q, k), np.float32)
    dele = _NO_DELETED if deleted is None else deleted
    parts = view.parts()
    walk = view.walk()
    chunks = min(_usable_threads(num_threads), view.visited_rows, q)
    if chunks > 1:
        calls = [
            (
                parts,
                walk,
                queries,
                c * q // chunks,
                (c + 1) * q // chunks,
                k,
                ef,
                dele,
                c,
                out_l,
                out_d,
            )
            for c in range(chunks)
        ]
        with _thread_pool(chunks) as pool:
            _on_threads(pool, K.search_chunk, calls)
    else:
        K.search_batch(parts, walk, queries, k, ef, dele, out_l, out_d)
    return out_l, out_d


_NO_DELETED = np.zeros(0, np.uint8)
_CODE_SLACK = 0.125  # a range widened for new rows grows by this much more, to re-code rarely


def _usable_threads(n: int) -> int:
    """At most Numba's thread count (NUMBA_NUM_THREADS), as the parallel kernels had."""
    return max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))


def _on_threads(pool: ThreadPoolExecutor | None, kernel: Callable[..., Any], calls: list) -> None:
    """`kernel(*args)` for each argument tuple at once: the first on the calling thread, the
    others on the pool's (the kernels release the GIL); waits for all, and raises the first
    exception. Without a pool they run one after the other."""
    if pool is None:
        for args in calls:
            kernel(*args)
        return
    others = [pool.submit(kernel, *args) for args in calls[1:]]
    try:
        kernel(*calls[0])  # the calling thread takes the first share: one thread fewer to wake
    finally:
        for f in others:
            f.result()


def _thread_pool(threads: int) -> AbstractContextManager[ThreadPoolExecutor | None]:
    """Threads for a parallel kernel's shares, shut down when the `with` ends. None (run
    them in turn) for one thread, and without the JIT, where the kernels hold the GIL and
    their queue counter is plain Python."""
    if threads <= 1 or numba.config.DISABLE_JIT:
        return nullcontext(None)
    return ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="refimpl-hnsw")


def _insert_parallel(
    parts: tuple, walk: tuple | None, lo: int, hi: int, m: int, efc: int, threads: int
) -> None:
    """Insert lo..hi-1 with `threads` threads: serially while the graph is small and for nodes
    that raise the top level, otherwise in batches through the two-phase insert
    (kernels/hnsw.py, `insert_serial_while` to `batch_commit`)."""
    queue = np.zeros(1, np.int64)  # the threads' shared "next node / group" counter
    with _thread_pool(threads) as pool:
        i = lo
        while i < hi:
            i = K.insert_serial_while(parts, walk, i, hi, m, efc, PARALLEL_WARMUP)
            if i >= hi:
                break
            b0 = i
            b1, sel_t, sel_d = K.batch_begin(parts, b0, hi, m, PARALLEL_BATCH)
            queue[0] = 0
            phase1 = [(parts, walk, b0, b1, c, m, efc, sel_t, sel_d, queue) for c in range(threads)]
            _on_threads(pool, K.batch_candidates, phase1)
            keys, src, dist, order, starts, ng = K.batch_groups(b0, sel_t, sel_d)
            queue[0] = 0
            nl = sel_t.shape[1]
            phase2 = [(parts, nl, m, keys, src, dist, order, starts, ng, queue)] * threads
            _on_threads(pool, K.batch_links, phase2)
            K.batch_commit(parts, b1 - b0)
            i = b1


class HNSWIndex:
    """One HNSW graph (hnswlib's algorithm and layout) over allocator blocks."""

    def __init__(
        self,
        allocator: Allocator,
        dim: int,
        metric: int,
        capacity: int = 1024,
        *,
        M: int = 16,
        ef_construction: int = 200,
        seed: int = 100,
        label: str = "hnsw",
        faults: FaultSet = NO_FAULTS,
        coded_walk: bool = True,
    ) -> None:
        """`coded_walk`: keep 8-bit codes of the rows (dim + 4 bytes per row more) and walk on
        them in searches, re-ranking on the exact rows (kernels/codes.py); off, every
        search distance is exact float32, as insertion's always are."""
        if dim <= 0:
            raise InvalidInputError(f"dimension must be positive, got {dim}")
        if M < 2:
            raise InvalidInputError(f"M must be at least 2, got {M}")
        self._allocator = allocator
        self.dim = int(dim)
        self.metric = int(metric)
        self.M = int(M)
        self.ef_construction = max(int(ef_construction), self.M)
        self.label = label
        self._faults = faults
        self._mult = 1.0 / math.log(self.M)
        self._rng = np.random.default_rng(seed)
        self._initial_capacity = max(int(capacity), 1)
        self.num_threads = 1  # searchers for batch search (visited rows)
        self.capacity = 0
        self.visited_size = 0
        self._visited_rows = 0
        self._count = 0
        self._destroyed = False
        self._vectors: Block | None = None
        self._level0: Block | None = None
        self._upper: Block | None = None
        self._offsets: Block | None = None
        self._levels: Block | None = None
        self._labels: Block | None = None
        self._visited: Block | None = None
        self._state: Block | None = None
        self.coded_walk = bool(coded_walk)
        self._codes: Block | None = None
        self._norms: Block | None = None
        self._scale: Block | None = None
        self._coded = False  # every row has its code under the range in _scale
        self._uncodable = False  # a non-finite row came: the walk stays exact until clear()
        self._allocate(self._initial_capacity)

    # -- allocation ---------------------------------------------------------------
    def _alloc_block(self, suffix: str, shape: int | tuple[int, ...], dtype: type) -> Block:
        return self._allocator.alloc(f"{self.label}.{suffix}", shape, dtype)

    def _allocate(self, capacity: int) -> None:
        """Fresh blocks for an empty graph of `capacity` nodes (all or none: `alloc_all`)."""
        m = self.M
        keep_visited = bool(self._faults.on("visited-not-reset") and self.visited_size)
        shapes: list[tuple[str, int | tuple[int, ...], type]] = [
            ("vectors", (capacity, self.dim), np.float32),
            ("level0", (capacity, 1 + 2 * m), np.int32),
            ("upper", (max(capacity // (m - 1), 4), 1 + m), np.int32),
            ("offsets", capacity, np.int32),
            ("levels", capacity, np.int8),
            ("labels", capacity, np.int64),
            ("state", K.STATE_TAGS + 1, np.int64),
        ]
        if self.coded_walk:
            shapes.append(("codes", (capacity, self.dim), np.uint8))
            shapes.append(("norms", capacity, np.float32))
            shapes.append(("scale", (C.SCALE_ROWS, self.dim), np.float32))
        if not keep_visited:
            shapes.append(("visited", (1, capacity), np.uint16))
        blocks = alloc_all(
            self._allocator, [(f"{self.label}.{sfx}", shp, dt, True) for sfx, shp, dt in shapes]
        )
        (
            self._vectors,
            self._level0,
            self._upper,
            self._offsets,
            self._levels,
            self._labels,
            self._state,
        ) = blocks[:7]
        if self.coded_walk:
            self._codes, self._norms, self._scale = blocks[7:10]
        self._coded = False
        self.capacity = capacity
        if keep_visited:
            # FAULT visited-not-reset: clear() kept visited_size and the tag array
            # of the previous graph; "resetting" the old array for the new capacity
            # writes tags past its end when the new graph is larger.
            assert self._visited is not None
            self._allocator.store(self._visited, 0, np.zeros(capacity, np.uint16))
        else:
            self._visited = blocks[-1]
        self.visited_size = capacity
        self._visited_rows = 1

    def _ensure_visited_rows(self, rows: int) -> None:
        """One visited-tag row per concurrent searcher."""
        if rows <= self._visited_rows:
            return
        assert self._visited is not None and self._state is not None
        # the new blocks first: an allocation that fails leaves the old ones in place
        visited, state = alloc_all(
            self._allocator,
            [
                (f"{self.label}.visited", (rows, self.capacity), np.uint16, True),
                (f"{self.label}.state", K.STATE_TAGS + rows, np.int64, True),
            ],
        )
        old_visited, old_state = self._visited, self._state
        state.array[: K.STATE_TAGS] = old_state.array[: K.STATE_TAGS]
        self._visited, self._state = visited, state
        self._allocator.free(old_visited)
        self._allocator.free(old_state)
        self._visited_rows = rows
        self.visited_size = self.capacity

    def _ensure_upper(self, rows_needed: int) -> None:
        assert self._upper is not None
        have = self._upper.shape[0]
        if rows_needed <= have:
            return
        used = int(self._state_arr()[K.ST_UPPER_USED])
        new = self._alloc_block("upper", (max(rows_needed, 2 * have), 1 + self.M), np.int32)
        new.array[:used] = self._upper.array[:used]
        self._allocator.free(self._upper)
        self._upper = new

    def _state_arr(self) -> np.ndarray:
        assert self._state is not None
        return self._state.array

    def resize(self, new_capacity: int) -> None:
        """Grow to `new_capacity` nodes: new blocks, copy the graph, free the old blocks."""
        self._check_live()
        new_capacity = int(new_capacity)
        if new_capacity < self._count:
            raise InvalidInputError(
                f"cannot resize to {new_capacity} nodes: the graph holds {self._count}"
            )
        if self._vectors is None:
            self._allocate(max(new_capacity, 1))
            return
        if new_capacity <= self.capacity:
            return
        n = self._count
        for attr, suffix in (
            ("_vectors", "vectors"),
            ("_level0", "level0"),
            ("_offsets", "offsets"),
            ("_levels", "levels"),
            ("_labels", "labels"),
            ("_codes", "codes"),
            ("_norms", "norms"),
        ):
            old: Block | None = getattr(self, attr)
            if old is None:
                continue
            new = self._alloc_block(suffix, (new_capacity, *old.shape[1:]), old.dtype)
            new.array[:n] = old.array[:n]
            self._allocator.free(old)
            setattr(self, attr, new)
        assert self._visited is not None
        rows = self._visited_rows
        visited = self._alloc_block("visited", (rows, new_capacity), np.uint16)
        self._allocator.free(self._visited)  # after the new one: a failed alloc keeps the old
        self._visited = visited
        self._state_arr()[K.STATE_TAGS :] = 0  # fresh (zeroed) tag rows
        self.visited_size = new_capacity
        self.capacity = new_capacity

    # -- public API -----------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def _check_live(self) -> None:
        if self._destroyed:
            raise LifecycleError(f"HNSWIndex '{self.label}' was destroyed")

    def add(self, vectors: np.ndarray, labels: np.ndarray, num_threads: int = 1) -> None:
        """Insert rows (float32 C-contiguous (n, dim)) under int64 `labels`."""
        self._check_live()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidInputError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        n = vectors.shape[0]
        if labels.shape != (n,):
            raise InvalidInputError(f"labels must have shape ({n},), got {labels.shape}")
        if n == 0:
            return
        need = self._count + n
        if self._vectors is None:
            self._allocate(max(self._initial_capacity, need))
        elif need > self.capacity:
            self.resize(max(need, 2 * self.capacity))
        levels = np.floor(-np.log1p(-self._rng.random(n)) * self._mult).astype(np.int64)
        np.minimum(levels, _MAX_LEVEL, out=levels)
        state = self._state_arr()
        used = int(state[K.ST_UPPER_USED])
        total = int(levels.sum())
        self._ensure_upper(used + total)
        offsets = np.where(levels > 0, used + np.cumsum(levels) - levels, -1)
        lo, hi = self._count, need
        assert self._vectors is not None and self._labels is not None
        assert self._levels is not None and self._offsets is not None
        self._vectors.array[lo:hi] = vectors
        self._labels.array[lo:hi] = labels
        self._levels.array[lo:hi] = levels
        self._offsets.array[lo:hi] = offsets
        state[K.ST_UPPER_USED] = used + total
        self._code_rows(lo, hi)
        self._insert(lo, hi, num_threads)
        self._count = need

    def _code_rows(self, lo: int, hi: int) -> None:
        """Give rows lo..hi-1 their codes. The first rows fix the coded range; a later row
        outside it widens the range (with slack) and re-codes every row, so no row is
        clipped. A non-finite row turns the coded walk off until clear()."""
        if self._codes is None or self._norms is None or self._scale is None or self._uncodable:
            return
        assert self._vectors is not None
        vecs = self._vectors.array
        new_lo = vecs[lo:hi].min(axis=0)
        new_hi = vecs[lo:hi].max(axis=0)
        with np.errstate(invalid="ignore", over="ignore"):
            finite = bool(np.isfinite(new_hi - new_lo).all())
        if not finite:
            self._coded = False
            self._uncodable = True
            return
        scale = self._scale.array
        first = 0
        if not self._coded:
            C.fit_scale(scale, new_lo, new_hi)
        elif (new_lo < scale[C.SC_LO]).any() or (new_hi > scale[C.SC_HI]).any():
            old_lo, old_hi = scale[C.SC_LO].copy(), scale[C.SC_HI].copy()
            slack = (np.maximum(old_hi, new_hi) - np.minimum(old_lo, new_lo)) * _CODE_SLACK
            wide_lo = np.where(new_lo < old_lo, new_lo - slack, old_lo).astype(np.float32)
            wide_hi = np.where(new_hi > old_hi, new_hi + slack, old_hi).astype(np.float32)
            with np.errstate(over="ignore"):
                finite = bool(np.isfinite(wide_hi - wide_lo).all())
            if not finite:  # the slack would overflow float32: no slack
                wide_lo, wide_hi = np.minimum(old_lo, new_lo), np.maximum(old_hi, new_hi)
            C.fit_scale(scale, wide_lo, wide_hi)
        else:
            first = lo
        C.encode_rows(vecs, self._codes.array, self._norms.array, scale, self.metric, first, hi)
        self._coded = True

    def _insert(self, lo: int, hi: int, num_threads: int) -> None:
        threads = _usable_threads(num_threads)
        if threads > 1:
            self._ensure_visited_rows(threads)
        view = self._view()
        parts, walk = view.parts(), view.walk()
        m, efc = self.M, self.ef_construction
        if threads == 1:
            K.insert_serial(parts, walk, lo, hi, m, efc)  # hnswlib's sequential insertion
        else:
            _insert_parallel(parts, walk, lo, hi, m, efc, threads)

    def view(self) -> GraphView:
        """The current blocks, for a search that bypasses this object."""
        self._check_live()
        return self._view()

    def _view(self) -> GraphView:
        assert self._vectors is not None and self._level0 is not None
        assert self._upper is not None and self._offsets is not None
        assert self._levels is not None and self._labels is not None
        assert self._visited is not None and self._state is not None
        return GraphView(
            self._vectors,
            self._level0,
            self._upper,
            self._offsets,
            self._levels,
            self._labels,
            self._visited,
            self._state,
            self.metric,
            self._visited_rows,
            self._codes,
            self._norms,
            self._scale,
            self._coded,
        )

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        deleted: np.ndarray | None = None,
        *,
        num_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest labels per query, skipping `deleted` labels (uint8 by label)."""
        self._check_live()
        queries, deleted = prepare_search(queries, self.dim, k, deleted)
        threads = self.num_threads if num_threads is None else int(num_threads)
        if self._vectors is None:
            q = queries.shape[0]
            return empty_result(q, k)
        if threads > 1:
            self._ensure_visited_rows(threads)
        return search_view(self.view(), queries, int(k), int(ef), deleted, threads)

    def blocks(self) -> list[Block]:
        """The live blocks this graph owns."""
        return [
            b
            for b in (
                self._vectors,
                self._level0,
                self._upper,
                self._offsets,
                self._levels,
                self._labels,
                self._visited,
                self._state,
                self._codes,
                self._norms,
                self._scale,
            )
            if b is not None and not b.freed
        ]

    def nbytes(self) -> int:
        """Bytes held in this graph's blocks."""
        return sum(b.nbytes for b in self.blocks())

    def _free_all(self) -> None:
        keep_visited = self._faults.on("visited-not-reset")
        for attr in (
            "_vectors",
            "_level0",
            "_upper",
            "_offsets",
            "_levels",
            "_labels",
            "_state",
            "_codes",
            "_norms",
            "_scale",
            "_visited",
        ):
            block: Block | None = getattr(self, attr)
            if attr == "_visited" and keep_visited and not self._destroyed:
                # FAULT visited-not-reset: the tag array and visited_size survive clear()
                continue
            if block is not None:
                self._allocator.free(block)
            setattr(self, attr, None)
        self._count = 0
        self.capacity = 0
        self._coded = False
        self._uncodable = False
        if not keep_visited or self._destroyed:
            self.visited_size = 0  # the line the reference note's fix added
            self._visited_rows = 0

    def clear(self) -> None:
        """Free every block; the graph is empty and re-allocates on the next add."""
        self._check_live()
        self._free_all()

    def destroy(self) -> None:
        """Free every block; idempotent; the object cannot be used afterwards."""
        if self._destroyed:
            return
        self._destroyed = True
        self._free_all()
