"""SparseMetadataMap: which id lives in which slot, and each slot's metadata.

Named after the structure in the reference note, which held the id map
(`id_to_index`, a `SparseMap`) next to the metadata. The id map is the part
whose lifecycle matters: its table is allocator memory, and `clear()` must
clear *that instance* — the note's first root cause was replacing it instead.

Metadata dicts (scalars only) are Python objects, kept by slot, with an
inverted index (key, value) -> slots so an equality filter is a set
intersection rather than a scan. Equality is Python's (1 == 1.0 == True).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .alloc import Allocator, Block
from .errors import InvalidInputError
from .faults import NO_FAULTS, FaultSet
from .sparse_map import SparseMap

Scalar = str | int | float | bool | None
SCALAR_TYPES = (str, int, float, bool, type(None), np.integer, np.floating, np.bool_)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def check_metadata(md: Any, row: int | None) -> dict[str, Any] | None:
    """One metadata dict (str keys, scalar values; NumPy scalars made plain), or None."""
    where = "" if row is None else f" (row {row})"
    if md is None:
        return None
    if not isinstance(md, dict):
        raise InvalidInputError(
            f"metadata{where} must be a dict of scalars or None, got {type(md).__name__}"
        )
    out = {}
    for k, v in md.items():
        if not isinstance(k, str):
            raise InvalidInputError(f"metadata{where} keys must be str, got {k!r}")
        if not isinstance(v, SCALAR_TYPES):
            raise InvalidInputError(
                f"metadata{where} value for {k!r} must be a scalar "
                f"(str, int, float, bool or None), got {type(v).__name__}"
            )
        out[k] = _scalar(v)
    return out


def metadata_list(metadata: Any, n: int) -> list[dict[str, Any] | None] | None:
    """A batch's metadata: one checked dict (or None) per row; None when no row has any."""
    if metadata is None:
        return None
    if isinstance(metadata, dict | str | bytes) or not isinstance(metadata, Iterable):
        raise InvalidInputError(
            f"metadata must be a sequence of dicts (one per row) or None, "
            f"got {type(metadata).__name__}"
        )
    md = list(metadata)
    if len(md) != n:
        raise InvalidInputError(
            f"got {len(md)} metadata entries for {n} vectors; expected one per row"
        )
    out = [check_metadata(m, i) for i, m in enumerate(md)]
    return out if any(m for m in out) else None


class SparseMetadataMap:
    """User-id keys -> slots, plus slot -> metadata dict with equality filters."""

    def __init__(
        self, allocator: Allocator, faults: FaultSet = NO_FAULTS, *, label: str = "metadata"
    ) -> None:
        self._alloc = allocator
        self._faults = faults
        self.label = label
        self.id_to_index = SparseMap(allocator, 64, label=f"{label}.id_to_index")
        self._meta: dict[int, dict[str, Any]] = {}
        self._postings: dict[tuple[str, Any], set[int]] = {}

    def __len__(self) -> int:
        """Live ids."""
        return len(self.id_to_index)

    def blocks(self) -> list[Block]:
        return self.id_to_index.blocks()

    # -- ids ------------------------------------------------------------------------
    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of `keys` (int64), -1 where absent."""
        return self.id_to_index.get_many(keys)

    def lookup_one(self, key: int) -> int:
        return self.id_to_index.get(key)

    def insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Map new keys to their slots (the caller checked they are new)."""
        self.id_to_index.put_many(keys, slots)

    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Forget keys (and the metadata of their slots); returns their slots, -1 if absent."""
        slots = self.id_to_index.delete_many(keys)
        if self._meta:
            self.drop_metadata(slots[slots >= 0])
        return slots

    # -- metadata -------------------------------------------------------------------
    @property
    def has_metadata(self) -> bool:
        return bool(self._meta)

    def set_metadata(self, slots: np.ndarray, dicts: list[dict[str, Any] | None]) -> None:
        for slot, md in zip(slots.tolist(), dicts, strict=True):
            if md:
                md = dict(md)
                self._meta[slot] = md
                for item in md.items():
                    self._postings.setdefault(item, set()).add(slot)

    def get_metadata(self, slot: int) -> dict[str, Any] | None:
        md = self._meta.get(slot)
        return None if md is None else dict(md)

    def drop_metadata(self, slots: np.ndarray) -> None:
        for slot in slots.tolist():
            md = self._meta.pop(slot, None)
            if md:
                for item in md.items():
                    posting = self._postings.get(item)
                    if posting is not None:
                        posting.discard(slot)
                        if not posting:
                            del self._postings[item]

    def match(self, filter: dict[str, Any]) -> np.ndarray:
        """Sorted int64 slots whose metadata has every (key, value) of `filter`."""
        sets = []
        for item in filter.items():
            posting = self._postings.get(item)
            if not posting:
                return np.empty(0, np.int64)
            sets.append(posting)
        if not sets:
            return np.fromiter(sorted(self._meta), np.int64)
        sets.sort(key=len)
        hits = set(sets[0]).intersection(*sets[1:]) if len(sets) > 1 else sets[0]
        out = np.fromiter(hits, np.int64, count=len(hits))
        out.sort()
        return out

    # -- lifecycle ------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every id and metadata entry and free the id map's blocks."""
        self._meta.clear()
        self._postings.clear()
        if self._faults.on("sparse-map-recreate"):
            # FAULT sparse-map-recreate — the note's "BAD: Creates new instance, old one
            # gets double-freed": the old map's memory is freed, the instance replaced;
            # dropping the old instance runs its finalizer, which frees the same blocks.
            for block in self.id_to_index.blocks():
                self._alloc.free(block)
            self.id_to_index = SparseMap(self._alloc, 64, label=f"{self.label}.id_to_index")
        else:
            # FIXED: clear the existing instance
            self.id_to_index.clear()

    def destroy(self) -> None:
        self.clear()
        self.id_to_index.destroy()
