"""SparseMap: an int64 -> int64 open-addressing map whose table lives in allocator blocks.

Three blocks ('<label>.keys', '<label>.vals', '<label>.states') of one
power-of-two capacity, allocated lazily on the first insert and grown (rehashed
into fresh blocks, the old ones freed) when live entries plus tombstones would
pass `max_load`. `clear()` frees the blocks, so a cleared map owns no memory.

The map owns its blocks the way a native object owns its pointers, finalizer
included: if it is dropped while still holding blocks, `__del__` frees them.
That safety net is also what turns the `sparse-map-recreate` fault into a
double free (see `metadata.py`).
"""

from __future__ import annotations

import numpy as np

from .alloc import Allocator, Block, alloc_all
from .errors import LifecycleError
from .kernels.hashmap import hm_collect, hm_delete, hm_get, hm_put, home_slots


def _pow2_at_least(n: int) -> int:
    return 1 << max(int(n) - 1, 1).bit_length()


class SparseMap:
    """int64 keys -> int64 values (>= 0); a missing key reads as -1."""

    def __init__(
        self,
        allocator: Allocator,
        capacity: int = 64,
        *,
        label: str = "sparse_map",
        max_load: float = 0.5,
    ) -> None:
        if not 0.0 < max_load < 1.0:
            raise ValueError(f"max_load must be in (0, 1), got {max_load}")
        self._alloc = allocator
        self.label = label
        self.initial_capacity = _pow2_at_least(max(capacity, 8))
        self.max_load = max_load
        self._blocks: tuple[Block, Block, Block] | None = None
        self._keys = self._vals = self._states = np.empty(0, np.int64)
        self._size = 0
        self._tombs = 0
        self._counts = np.zeros(2, np.int64)
        self._destroyed = False

    # -- state ------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return 0 if self._blocks is None else int(self._keys.shape[0])

    def blocks(self) -> list[Block]:
        """The live blocks this map owns (empty after clear())."""
        return [] if self._blocks is None else list(self._blocks)

    # -- lookups ------------------------------------------------------------------
    def get_many(self, keys: np.ndarray) -> np.ndarray:
        """Values for `keys` (int64 array), -1 where absent."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        out = np.empty(keys.shape[0], np.int64)
        if self._size == 0:
            out.fill(-1)
            return out
        hm_get(
            self._keys,
            self._vals,
            self._states,
            keys,
            home_slots(keys, self._keys.shape[0]),
            out,
        )
        return out

    def get(self, key: int) -> int:
        if self._size == 0:
            return -1
        return int(self.get_many(np.array([key], np.int64))[0])

    # -- updates ------------------------------------------------------------------
    def put_many(self, keys: np.ndarray, values: np.ndarray, *, reserve: bool = True) -> int:
        """Insert or overwrite; returns how many keys were new.

        `reserve=False` never grows the table: only for keys known to be present (an
        overwrite in place, which must not allocate: the database's undo of a failed batch)."""
        self._check_alive()
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.int64)
        if keys.shape != values.shape:
            raise ValueError(f"{keys.shape[0]} keys but {values.shape[0]} values")
        if keys.shape[0] == 0:
            return 0
        if reserve:
            self._reserve(self._size + keys.shape[0])
        self._counts[:] = 0
        hm_put(
            self._keys,
            self._vals,
            self._states,
            keys,
            values,
            home_slots(keys, self._keys.shape[0]),
            self._counts,
        )
        added = int(self._counts[0])
        self._size += added
        self._tombs += int(self._counts[1])
        return added

    def put(self, key: int, value: int) -> bool:
        return self.put_many(np.array([key], np.int64), np.array([value], np.int64)) == 1

    def delete_many(self, keys: np.ndarray) -> np.ndarray:
        """Remove keys; returns their old values (-1 where absent)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        out = np.empty(keys.shape[0], np.int64)
        if self._size == 0:
            out.fill(-1)
            return out
        removed = hm_delete(
            self._keys,
            self._vals,
            self._states,
            keys,
            home_slots(keys, self._keys.shape[0]),
            out,
        )
        self._size -= removed
        self._tombs += removed
        return out

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All live (keys, values), in table order."""
        keys = np.empty(self._size, np.int64)
        vals = np.empty(self._size, np.int64)
        if self._size:
            hm_collect(self._keys, self._vals, self._states, keys, vals)
        return keys, vals

    # -- lifecycle ------------------------------------------------------------------
    def clear(self) -> None:
        """Free every block; the map is empty and allocates again on the next insert."""
        blocks, self._blocks = self._blocks, None
        self._keys = self._vals = self._states = np.empty(0, np.int64)
        self._size = 0
        self._tombs = 0
        if blocks is not None:
            for b in blocks:
                self._alloc.free(b)

    def destroy(self) -> None:
        """clear() and refuse later inserts. Idempotent."""
        self.clear()
        self._destroyed = True

    def __del__(self) -> None:
        # The owner's destructor: free what is still held. With the correct
        # lifecycle there is nothing left here; a map dropped while still
        # holding blocks is freed now, exactly once.
        blocks = getattr(self, "_blocks", None)
        if blocks is not None:
            self._blocks = None
            for b in blocks:
                self._alloc.free(b)

    # -- internals ------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self._destroyed:
            raise LifecycleError(f"SparseMap '{self.label}' was destroyed")

    def _reserve(self, live_after: int) -> None:
        cap = self.capacity
        if cap and live_after + self._tombs <= cap * self.max_load:
            return
        # never shrink; at the same size a rehash still drops the tombstones
        need = max(self.initial_capacity, _pow2_at_least(int(live_after / self.max_load) + 1), cap)
        self._rehash(need)

    def _rehash(self, capacity: int) -> None:
        old_keys, old_vals = self.items()
        new = tuple(
            alloc_all(
                self._alloc,
                [
                    (f"{self.label}.keys", capacity, np.int64, False),
                    (f"{self.label}.vals", capacity, np.int64, False),
                    (f"{self.label}.states", capacity, np.uint8, True),
                ],
            )
        )
        old_blocks, self._blocks = self._blocks, new
        self._keys, self._vals, self._states = (b.array for b in new)
        self._size = 0
        self._tombs = 0
        if old_blocks is not None:
            for b in old_blocks:
                self._alloc.free(b)
        if old_keys.shape[0]:
            self._counts[:] = 0
            hm_put(
                self._keys,
                self._vals,
                self._states,
                old_keys,
                old_vals,
                home_slots(old_keys, capacity),
                self._counts,
            )
            self._size = int(self._counts[0])
