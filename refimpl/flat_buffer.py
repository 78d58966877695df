"""FlatBuffer: the small exact tier in front of the HNSW graph.

Two allocator blocks, '<label>.vectors' `(capacity, dim)` float32 and
'<label>.ids' `(capacity,)` int64 (the rows' slots). Rows are appended until the
buffer is full, then the database migrates them to the graph in one bulk add
and resets the buffer. Removal swaps the last row into the hole.

Like a native `UnsafePointer` it has no finalizer: its memory is released only
by `destroy()` (or `free()`), so forgetting to do so is a visible leak.
"""

from __future__ import annotations

import numpy as np

from .alloc import Allocator, Block, alloc_all
from .errors import LifecycleError
from .kernels.flat import scan_rows

_NO_SEED_L = np.empty((1, 0), np.int64)
_NO_SEED_D = np.empty((1, 0), np.float32)
_NO_SKIP = np.zeros(1, np.uint8)


class FlatBuffer:
    """Contiguous rows + slots with exact top-k search."""

    def __init__(
        self, allocator: Allocator, dim: int, capacity: int, *, label: str = "flat"
    ) -> None:
        if dim <= 0 or capacity <= 0:
            raise ValueError(f"FlatBuffer needs dim > 0 and capacity > 0, got {dim}, {capacity}")
        self._alloc = allocator
        self.label = label
        self.dim = int(dim)
        self.capacity = int(capacity)
        vectors, ids = alloc_all(
            allocator,
            [
                (f"{label}.vectors", (self.capacity, self.dim), np.float32, False),
                (f"{label}.ids", self.capacity, np.int64, False),
            ],
        )
        self.vectors_block: Block | None = vectors
        self.ids_block: Block | None = ids
        self._vectors = self.vectors_block.array
        self._ids = self.ids_block.array
        self.n = 0

    def __len__(self) -> int:
        return self.n

    @property
    def room(self) -> int:
        return self.capacity - self.n

    def blocks(self) -> list[Block]:
        return [b for b in (self.vectors_block, self.ids_block) if b is not None and not b.freed]

    def rows(self) -> np.ndarray:
        """View of the live rows (valid until the next change)."""
        return self._vectors[: self.n]

    def slots(self) -> np.ndarray:
        return self._ids[: self.n]

    # -- updates --------------------------------------------------------------------
    def append(self, vectors: np.ndarray, slots: np.ndarray) -> None:
        """Append rows (float32 (m, dim)) with their slots; the caller checked `room`."""
        m = vectors.shape[0]
        if m > self.room:
            raise LifecycleError(
                f"FlatBuffer '{self.label}' has room for {self.room} rows, got {m}"
            )
        self._vectors[self.n : self.n + m] = vectors
        self._ids[self.n : self.n + m] = slots
        self.n += m

    def append_unchecked(self, vectors: np.ndarray, slots: np.ndarray) -> None:
        """Append through raw stores with no room check (used only by the migration-overflow fault).

        Rows past `capacity` are written past the end of the blocks, as a native
        memcpy sized by the wrong count would.
        """
        m = vectors.shape[0]
        self._alloc.store(self.vectors_block, self.n * self.dim, vectors.reshape(-1))  # type: ignore[arg-type]
        self._alloc.store(self.ids_block, self.n, slots)  # type: ignore[arg-type]
        self.n = min(self.n + m, self.capacity)

    def remove_slots(self, slots: np.ndarray) -> int:
        """Drop the rows holding any of `slots` (swap-remove, order not kept); returns how many."""
        if self.n == 0 or slots.shape[0] == 0:
            return 0
        keep = ~np.isin(self._ids[: self.n], slots)
        removed = self.n - int(keep.sum())
        if removed:
            kept = int(self.n - removed)
            # stable compaction; the buffer is small, so this is one vectorised copy
            self._vectors[:kept] = self._vectors[: self.n][keep]
            self._ids[:kept] = self._ids[: self.n][keep]
            self.n = kept
        return removed

    def reset(self) -> None:
        """Forget the rows, keep the memory (after a migration)."""
        self.n = 0

    # -- search ----------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int,
        metric: int,
        skip: np.ndarray | None = None,
        seed_labels: np.ndarray | None = None,
        seed_dists: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k slots (q, k) padded -1/+inf, merged with optional seed results."""
        q = queries.shape[0]
        out_l = np.empty((q, k), np.int64)
        out_d = np.empty((q, k), np.float32)
        if seed_labels is None:
            seed_labels = _NO_SEED_L if q == 1 else np.empty((q, 0), np.int64)
            seed_dists = _NO_SEED_D if q == 1 else np.empty((q, 0), np.float32)
        scan_rows(
            self._vectors,
            self._ids,
            self.n,
            queries,
            metric,
            _NO_SKIP if skip is None else skip,
            skip is not None,
            seed_labels,
            seed_dists,
            out_l,
            out_d,
        )
        return out_l, out_d

    # -- lifecycle --------------------------------------------------------------------
    def free(self) -> None:
        """Release the memory and nothing else — `UnsafePointer.free()`: the handles stay.

        Calling it twice frees twice; `destroy()` is the safe, idempotent release.
        """
        self._alloc.free(self.vectors_block)  # type: ignore[arg-type]
        self._alloc.free(self.ids_block)  # type: ignore[arg-type]
        self.n = 0

    def destroy(self) -> None:
        """Free both blocks once and drop the handles. Idempotent."""
        vb, ib = self.vectors_block, self.ids_block
        self.vectors_block = self.ids_block = None
        self._vectors = np.empty((0, self.dim), np.float32)
        self._ids = np.empty(0, np.int64)
        self.n = 0
        for b in (vb, ib):
            if b is not None:
                self._alloc.free(b)

    @property
    def destroyed(self) -> bool:
        return self.vectors_block is None
