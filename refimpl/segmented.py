"""SegmentedHNSW: a large batch built as several independent HNSW graphs at once.

Each `add` splits its batch into one segment per thread and builds them in
parallel (Python threads; the insertion kernel releases the GIL, so two
segments really build on two cores). Search fans out to every segment and
merges the per-segment top-k. Segment i's blocks are labelled "segment.<i>.*".

The object keeps a `GraphView` (the block handles) per segment for its
fan-out search; `clear()` destroys the segments and drops those views with
them — keeping them is the `stale-segment-view` fault.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .alloc import Allocator, Block
from .errors import InvalidInputError, LifecycleError
from .faults import NO_FAULTS, FaultSet
from .hnsw import GraphView, HNSWIndex, empty_result, prepare_search, search_view

_FRESH_SLOT_GARBAGE = 0xA  # what the reference note's crash freed: "invalid pointer 0xa"


class SegmentedHNSW:
    """Independent HNSW segments, built in parallel, searched with fan-out and merge."""

    def __init__(
        self,
        allocator: Allocator,
        dim: int,
        metric: int,
        *,
        M: int = 16,
        ef_construction: int = 200,
        seed: int = 100,
        label: str = "segment",
        faults: FaultSet = NO_FAULTS,
        num_threads: int | None = None,
        min_segment_size: int = 2000,
    ) -> None:
        if dim <= 0:
            raise InvalidInputError(f"dimension must be positive, got {dim}")
        self._allocator = allocator
        self.dim = int(dim)
        self.metric = int(metric)
        self.M = int(M)
        self.ef_construction = int(ef_construction)
        self.seed = int(seed)
        self.label = label
        self._faults = faults
        self.num_threads = int(num_threads or numba.config.NUMBA_NUM_THREADS)
        self.min_segment_size = int(min_segment_size)
        self._segments: list[HNSWIndex | None] = []
        self._views: list[GraphView] = []
        self._destroyed = False

    # -- helpers ----------------------------------------------------------------
    def _check_live(self) -> None:
        if self._destroyed:
            raise LifecycleError(f"SegmentedHNSW '{self.label}' was destroyed")

    def _store(self, slot: int, segment: HNSWIndex) -> None:
        """Put `segment` into slot `slot`, destroying whatever segment held it."""
        while len(self._segments) <= slot:
            self._segments.append(None)
        old = self._segments[slot]
        if self._faults.on("uninitialized-slot-assign") and old is None:
            # FAULT uninitialized-slot-assign: assignment into a freshly grown slot
            # "destroys" the previous occupant, but a fresh slot holds garbage, so
            # the garbage pointer goes to free() ("Attempt to free invalid pointer 0xa").
            self._allocator.free(
                Block.forged(_FRESH_SLOT_GARBAGE, label=f"{self.label}.{slot}.<garbage>")
            )
        if old is not None:
            old.destroy()
        self._segments[slot] = segment

    @property
    def segments(self) -> list[HNSWIndex]:
        """The live segments, in slot order."""
        return [s for s in self._segments if s is not None]

    # -- public API ---------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    def add(self, vectors: np.ndarray, labels: np.ndarray, num_threads: int | None = None) -> None:
        """Build new segments from this batch, one per thread, in parallel."""
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
        threads = max(1, int(num_threads or self.num_threads))
        parts = max(1, min(threads, n // max(self.min_segment_size, 1)))
        bounds = np.linspace(0, n, parts + 1).astype(np.int64)
        first = len(self._segments)
        built: list[HNSWIndex] = []
        for j in range(parts):
            slot = first + j
            seg = HNSWIndex(
                self._allocator,
                self.dim,
                self.metric,
                int(bounds[j + 1] - bounds[j]),
                M=self.M,
                ef_construction=self.ef_construction,
                seed=self.seed + slot,
                label=f"{self.label}.{slot}",
                faults=self._faults,
            )
            self._store(slot, seg)
            built.append(seg)

        def build(j: int) -> None:
            lo, hi = int(bounds[j]), int(bounds[j + 1])
            built[j].add(vectors[lo:hi], labels[lo:hi])

        if parts == 1:
            build(0)
        else:
            with ThreadPoolExecutor(max_workers=min(parts, threads)) as pool:
                list(pool.map(build, range(parts)))
        self._views.extend(seg.view() for seg in built)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        deleted: np.ndarray | None = None,
        *,
        num_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fan out to every segment (in parallel threads) and merge the top k."""
        self._check_live()
        queries, deleted = prepare_search(queries, self.dim, k, deleted)
        q = queries.shape[0]
        views = list(self._views)
        if not views:
            return empty_result(q, k)
        threads = max(1, int(num_threads or self.num_threads))

        def one(view: GraphView) -> tuple[np.ndarray, np.ndarray]:
            return search_view(view, queries, int(k), int(ef), deleted)

        if threads > 1 and len(views) > 1:
            with ThreadPoolExecutor(max_workers=min(threads, len(views))) as pool:
                results = list(pool.map(one, views))
        else:
            results = [one(v) for v in views]
        if len(results) == 1:
            return results[0]
        all_l = np.concatenate([r[0] for r in results], axis=1)
        all_d = np.concatenate([r[1] for r in results], axis=1)
        order = np.argsort(all_d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(all_l, order, 1), np.take_along_axis(all_d, order, 1)

    def blocks(self) -> list[Block]:
        """The live blocks of every segment."""
        return [b for s in self.segments for b in s.blocks()]

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks())

    def _destroy_segments(self) -> None:
        for seg in self._segments:
            if seg is not None:
                seg.destroy()
        self._segments = []
        if not self._faults.on("stale-segment-view"):
            self._views = []
        # FAULT stale-segment-view: the cached views of the destroyed segments'
        # blocks stay in self._views and the next search walks freed memory.

    def clear(self) -> None:
        """Destroy every segment (all blocks freed); empty, ready for the next add."""
        self._check_live()
        self._destroy_segments()

    def destroy(self) -> None:
        """Free everything; idempotent; later use raises LifecycleError."""
        if self._destroyed:
            return
        self._destroyed = True
        self._destroy_segments()
        self._views = []
