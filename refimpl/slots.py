"""The slot store: per-row arrays indexed by an int64 *slot*, one allocator block each.

A slot is a row's identity inside the database, handed out in insert order and never reused
until `clear()`: 'db.slot_ids' holds the int id or 64-bit key, 'db.deleted' the tombstones,
'db.locations' where the row's vector lives — (tier, row) packed in an int64, -1 where no tier
holds it — and, for cosine, 'db.norms' each row's norm (every tier holds unit rows). Vectors are
stored once, in the tier that searches them.
"""

from __future__ import annotations

import numpy as np

from .alloc import Allocator, AllocRequest, Block, alloc_all

INITIAL_SLOTS = 1024
# 'db.locations': (tier << LOC_SHIFT) | row
LOC_SHIFT = 32
LOC_ROW = (1 << LOC_SHIFT) - 1
T_FLAT = 1  # row of the flat buffer
T_HNSW = 2  # node of the main graph
T_SEG0 = 3  # T_SEG0 + i: node of segment i (SegmentedHNSW.segments order)

_EMPTY_I64 = np.empty(0, np.int64)


class SlotStore:
    """Slot-indexed arrays that grow by powers of two; `release()` frees every block."""

    def __init__(self, allocator: Allocator, *, cosine: bool) -> None:
        self._alloc = allocator
        self.cosine = cosine
        self.blocks: list[Block] | None = None
        self.sid = _EMPTY_I64
        self.deleted = np.empty(0, np.uint8)
        self.loc = _EMPTY_I64
        self.norm = np.empty(0, np.float32)  # cosine only
        self.cap = 0
        self.used = 0  # slots handed out so far (the next slot)
        self.n_deleted = 0

    def live_blocks(self) -> list[Block]:
        return [b for b in self.blocks or () if not b.freed]

    def ensure(self, need: int) -> None:
        """Room for `need` slots: new blocks allocated and filled before the old are freed, so
        a failed allocation leaves the store as it was."""
        if need <= self.cap:
            return
        cap = max(INITIAL_SLOTS, 1 << (need - 1).bit_length())
        requests: list[AllocRequest] = [
            ("db.slot_ids", cap, np.int64, False),
            ("db.deleted", cap, np.uint8, True),
            ("db.locations", cap, np.int64, False),
        ]
        if self.cosine:
            requests.append(("db.norms", cap, np.float32, False))
        new = alloc_all(self._alloc, requests)
        sid, dele, loc = (b.array for b in new[:3])
        used = self.used
        if used:
            sid[:used] = self.sid[:used]
            dele[:used] = self.deleted[:used]
            loc[:used] = self.loc[:used]
            if self.cosine:
                new[3].array[:used] = self.norm[:used]
        old, self.blocks = self.blocks, new
        self.sid, self.deleted, self.loc = sid, dele, loc
        if self.cosine:
            self.norm = new[3].array
        self.cap = cap
        if old is not None:
            for b in old:
                self._alloc.free(b)

    def place(self, slots: np.ndarray, tier: int, start: int) -> None:
        """Record that `slots` now live in `tier`, rows start, start+1, ..."""
        rows = np.arange(start, start + slots.shape[0], dtype=np.int64)
        self.loc[slots] = (tier << LOC_SHIFT) | rows

    def tombstone(self, slots: np.ndarray) -> None:
        """Mark slots deleted and held by no tier."""
        self.deleted[slots] = 1
        self.n_deleted += slots.shape[0]
        self.loc[slots] = -1

    def release(self) -> None:
        """Free every block; the store is empty (and reusable) afterwards."""
        blocks = self.blocks
        self.__init__(self._alloc, cosine=self.cosine)  # type: ignore[misc]
        for b in blocks or ():
            self._alloc.free(b)
