"""Tier routing: where a database's rows live and how they move between tiers.

A validated batch is routed by its size: the flat buffer takes small batches (searched exactly,
migrated in bulk to the main graph when full), a batch of `buffer_size` rows or more goes to the
`HNSWIndex` directly, and one of `segment_threshold` rows or more becomes segments of the
`SegmentedHNSW`. Every move updates the slot store's location of each row, so `get`, the exact
scans and the query plan read each row in the tier that holds it. Deleted and replaced rows leave
here too (tombstoned, and compacted out of the flat buffer).

`TierRouting` is a part of `Database` (a base class holding these methods): the state it works on
(the tiers, the slot store, the id map, the faults) belongs to the database's lifecycle in
`database.py`. The `migration-overflow` fault is switched here, beside the line it breaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .ids import INT64_MAX, INT64_MIN, Id
from .slots import LOC_ROW, LOC_SHIFT, T_FLAT, T_HNSW, T_SEG0

if TYPE_CHECKING:
    from .faults import FaultSet
    from .flat_buffer import FlatBuffer
    from .hnsw import HNSWIndex
    from .metadata import SparseMetadataMap
    from .segmented import SegmentedHNSW
    from .slots import SlotStore

_EMPTY_I64 = np.empty(0, np.int64)


class TierRouting:
    """Rows into the tiers (`_route`), out of them (`_retire_slots`), and read back in place
    (`_tier_rows`, `_row_of`). The attributes are set by `Database.__init__`."""

    faults: FaultSet
    dimension: int | None
    buffer_size: int
    segment_threshold: int
    num_threads: int
    _flat: FlatBuffer | None
    _hnsw: HNSWIndex | None
    _seg: SegmentedHNSW | None
    _slots: SlotStore
    _meta: SparseMetadataMap
    _obj_ids: list[Id] | None
    _n_obj_live: int

    def _route(self, x: np.ndarray, slots: np.ndarray) -> None:
        """Large batches to a graph directly, small ones through the flat buffer."""
        n = x.shape[0]
        assert self._hnsw is not None and self._flat is not None
        if n >= self.segment_threshold:
            assert self._seg is not None
            before = len(self._seg.segments)
            self._seg.add(x, slots, num_threads=self.num_threads)
            for i, seg in enumerate(self._seg.segments[before:], start=before):
                view = seg.view()
                self._slots.place(view.labels.array[: len(seg)], T_SEG0 + i, 0)
        elif n >= self.buffer_size:
            self._to_graph(x, slots)
        else:
            self._to_flat(x, slots)

    def _to_graph(self, x: np.ndarray, slots: np.ndarray) -> None:
        assert self._hnsw is not None
        start = len(self._hnsw)
        self._hnsw.add(x, slots, num_threads=self.num_threads)
        self._slots.place(slots, T_HNSW, start)

    def _to_flat(self, x: np.ndarray, slots: np.ndarray) -> None:
        flat = self._flat
        assert flat is not None and self._hnsw is not None
        n = x.shape[0]
        if self.faults.on("migration-overflow") and n > flat.room:
            # FAULT migration-overflow — "Size/capacity desync": the whole batch is
            # copied into the buffer before migrating, past the end of its blocks.
            room = flat.room
            flat.append_unchecked(x, slots)
            self._to_graph(flat.rows(), flat.slots())
            self._to_graph(x[room:], slots[room:])
            flat.reset()
            return
        i = 0
        while i < n:
            take = min(flat.room, n - i)
            self._slots.place(slots[i : i + take], T_FLAT, len(flat))
            flat.append(x[i : i + take], slots[i : i + take])
            i += take
            if flat.room == 0:
                self._to_graph(flat.rows(), flat.slots())
                flat.reset()

    def _delete_slots(self, keys: np.ndarray, slots: np.ndarray) -> None:
        self._meta.remove(keys)
        self._retire_slots(slots, metadata_dropped=True)

    def _retire_slots(self, slots: np.ndarray, *, metadata_dropped: bool = False) -> None:
        """Tombstone slots the id map no longer points at (deleted or replaced rows)."""
        if not metadata_dropped and self._meta.has_metadata:
            self._meta.drop_metadata(slots)
        self._slots.tombstone(slots)
        assert self._flat is not None
        if self._flat.remove_slots(slots):
            self._slots.place(self._flat.slots(), T_FLAT, 0)  # the kept rows moved up
        if self._obj_ids is not None and self._n_obj_live:
            for s in slots.tolist():
                v = self._obj_ids[s]
                if not (isinstance(v, int) and INT64_MIN <= v <= INT64_MAX):
                    self._n_obj_live -= 1

    def _tier_rows(self, tier: int) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, slots) of the rows one tier holds now (empty if it has none)."""
        graph: HNSWIndex | None
        if tier == T_FLAT:
            assert self._flat is not None
            return self._flat.rows(), self._flat.slots()
        if tier == T_HNSW:
            graph = self._hnsw
        else:
            segs = self._seg.segments if self._seg is not None else []
            graph = segs[tier - T_SEG0] if tier - T_SEG0 < len(segs) else None
        if graph is None or not len(graph):
            return np.empty((0, self.dimension or 0), np.float32), _EMPTY_I64
        view = graph.view()
        n = len(graph)
        return view.vectors.array[:n], view.labels.array[:n]

    def _tiers(self) -> list[int]:
        seg = len(self._seg.segments) if self._seg is not None else 0
        return [T_FLAT, T_HNSW, *range(T_SEG0, T_SEG0 + seg)]

    def _row_of(self, slot: int) -> np.ndarray | None:
        """The stored (for cosine: normalised) vector of `slot`, read in its tier."""
        loc = int(self._slots.loc[slot])
        if loc < 0:
            return None
        rows, _ = self._tier_rows(loc >> LOC_SHIFT)
        r = loc & LOC_ROW
        return rows[r] if r < rows.shape[0] else None
