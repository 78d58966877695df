"""Database: the lifecycle owner, the `DB` user API and the process-wide singleton.

One `Database` owns every structure of the engine and every block they hold:

- the slot store (`slots.SlotStore`): per-row arrays indexed by an int64 *slot*
  (ids, tombstones, where each row's vector lives); vectors are stored once, in
  the tier that searches them, and `get`, the exact filtered scan and the exact
  redo read them there;
- `SparseMetadataMap`: user-id key -> slot (a `SparseMap`) and slot -> metadata;
- `FlatBuffer`: the newest rows, searched exactly, migrated in bulk to
- `HNSWIndex` (the main graph) — and `SegmentedHNSW` for very large batches.

States: uninitialized -> ready(dimension) -> closed. The first insert
initializes; `clear()` destroys every structure and frees every block (the
allocator's live set is empty again) so the next cycle may use another
dimension; `close()` does the same and refuses later calls. Both idempotent.

The faults of `refimpl.faults` that concern the lifecycle live here, each wrong
line beside the right one under `self.faults.on(NAME)`.

This module is the lifecycle, the id checks and the public API; the two other jobs of the class
are its bases: `tiers.TierRouting` (rows into and out of the tiers, the flat buffer's migration)
and `query.QueryPlan` (a search routed across the tiers, filtered and merged).
`SearchResult` is defined in `query.py` and re-exported here.

Why this module is still ~700 lines: it is the public API (fourteen methods, each checking its
inputs with a one-line error and serialized by `_serialized`) and the lifecycle with its fault
switches (four faults, seven switches) beside the lines they break; the id checks and the atomic
commit stay beside the writes they guard (they read and roll back the state `initialize` and
`clear` reset).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

import numba
import numpy as np

from .alloc import Allocator, Block, make_allocator
from .errors import (
    ClosedError,
    CopyRefusedError,
    DimensionMismatchError,
    DuplicateIdError,
    IdCollisionError,
    IdNotFoundError,
    InvalidInputError,
    UnknownNameError,
)
from .faults import FaultSet
from .flat_buffer import FlatBuffer
from .hnsw import HNSWIndex
from .ids import INT64_MAX, INT64_MIN, BatchIds, Id, batch_ids, key_of
from .inputs import (
    MAX_BUFFER_SIZE,
    MAX_DIMENSION,
    MAX_EF,
    MAX_M,
    MAX_RESULT_CELLS,
    MAX_SEGMENT_THRESHOLD,
    as_float32,
    batch_matrix,
    positive_int,
)
from .kernels.distance import METRIC_CODES, METRIC_COSINE, normalize_rows
from .metadata import SparseMetadataMap, check_metadata, metadata_list
from .query import QueryPlan, SearchResult
from .segmented import SegmentedHNSW
from .slots import T_FLAT, SlotStore

_COPY_REFUSED = (
    "a DB cannot be copied: it owns allocator blocks that a copy would share (freeing one "
    "would free the other's memory); create a new DB and add_batch the rows instead"
)


class State(StrEnum):
    """The lifecycle: UNINITIALIZED -> READY(dimension) -> (clear) UNINITIALIZED ...;
    CLOSED is final. String-valued, so `db.state == State.READY` reads as it always did."""

    UNINITIALIZED = "uninitialized"
    READY = "ready"
    CLOSED = "closed"


_UNDO_RESERVE_BYTES = 1 << 20


def _batch_answer(ids: BatchIds) -> list[Id]:
    """The ids a batch call returns, as the caller gave them."""
    return ids.keys.tolist() if ids.values is None else list(ids.values)


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a public method under the database's lock.

    The contract for threads: every call is serialized (one at a time per database), like most
    embedded engines' handles. Searches share scratch state (the graphs' visited tags) and
    writers move rows between tiers and free blocks, so a search running beside a write could
    read freed or half-moved memory; the lock makes any mix of threads safe. The lock is
    re-entrant, so a public method may call another.
    """

    @functools.wraps(method)
    def locked(self: Database, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Database(QueryPlan):
    """An embedded vector database with an explicit, checkable memory lifecycle.

    Thread-safe by serialization (see `_serialized`). Not copyable and not picklable: it owns
    allocator blocks, and a copy would share them, so freeing one would free the other's memory
    (a double free at the second close); build a new DB and add the rows instead.
    """

    def __init__(
        self,
        dimension: int | None = None,
        *,
        metric: str = "l2",
        buffer_size: int = 1000,
        segment_threshold: int = 10000,
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        allocator: str | Allocator = "numpy",
        faults: Iterable[str] | FaultSet = (),
        num_threads: int | None = None,
    ) -> None:
        if metric not in METRIC_CODES:
            raise UnknownNameError(
                f"unknown metric {metric!r}; expected one of {', '.join(METRIC_CODES)}"
            )
        self.metric = metric
        self._metric = METRIC_CODES[metric]
        self.buffer_size = positive_int(buffer_size, "buffer_size", MAX_BUFFER_SIZE)
        self.segment_threshold = positive_int(
            segment_threshold, "segment_threshold", MAX_SEGMENT_THRESHOLD
        )
        self.M = positive_int(M, "M", MAX_M)
        if self.M < 2:
            raise InvalidInputError(f"M must be at least 2, got {M}")
        self.ef_construction = positive_int(ef_construction, "ef_construction", MAX_EF)
        self._ef_search = positive_int(ef_search, "ef_search", MAX_EF)
        self.num_threads = (
            numba.config.NUMBA_NUM_THREADS
            if num_threads is None
            else positive_int(num_threads, "num_threads")
        )
        self.faults = faults if isinstance(faults, FaultSet) else FaultSet(faults)
        self.allocator: Allocator = make_allocator(allocator)
        if dimension is not None:
            dimension = positive_int(dimension, "dimension", MAX_DIMENSION)

        self._lock = threading.RLock()
        self.state = State.UNINITIALIZED
        self.dimension: int | None = None
        self._meta = SparseMetadataMap(self.allocator, self.faults)
        self._flat: FlatBuffer | None = None
        self._hnsw: HNSWIndex | None = None
        self._seg: SegmentedHNSW | None = None
        self._retired: list[Any] = []  # reinit-without-destroy: old graphs never destroyed
        self._reset_slots()
        if dimension is not None:
            self.initialize(dimension)

    # -- properties ------------------------------------------------------------------
    @property
    def ef_search(self) -> int:
        return self._ef_search

    @ef_search.setter
    @_serialized
    def ef_search(self, value: int) -> None:
        self._check_open()
        self._ef_search = positive_int(value, "ef_search", MAX_EF)

    def __repr__(self) -> str:
        return (
            f"DB(state={self.state!r}, dimension={self.dimension}, metric={self.metric!r}, "
            f"count={self.count() if self.state != 'closed' else 0}, "
            f"allocator={self.allocator.name!r})"
        )

    # -- lifecycle --------------------------------------------------------------------
    def _reset_slots(self) -> None:
        self._slots = SlotStore(self.allocator, cosine=self._metric == METRIC_COSINE)
        self._obj_ids: list[Id] | None = None  # slot -> id, once any id is not an int64
        self._n_obj_live = 0
        self._auto_next = 0

    @_serialized
    def initialize(self, dimension: int) -> None:
        """Allocate the structures for `dimension` (done by the first insert)."""
        self._check_open()
        dimension = positive_int(dimension, "dimension", MAX_DIMENSION)
        if self.state == State.READY:
            if dimension != self.dimension:
                raise DimensionMismatchError(
                    f"the database is initialized with dimension {self.dimension}; got "
                    f"{dimension} (clear() it first to change dimension)"
                )
            return
        if self._flat is not None:
            if self.faults.on("flat-buffer-double-free"):
                # FAULT flat-buffer-double-free — "In initialize(): Check and free before
                # allocating": the handle kept by clear() is freed a second time.
                self._flat.free()
            else:
                self._flat.destroy()  # idempotent; clear() already dropped it
        self._flat = FlatBuffer(self.allocator, dimension, self.buffer_size, label="flat")
        if self._hnsw is not None:
            if self.faults.on("reinit-without-destroy"):
                # FAULT reinit-without-destroy — "reinitialize() creates NEW HNSWIndex and
                # SegmentedHNSW instances; Old instances not properly freed": keep them.
                self._retired.extend(x for x in (self._hnsw, self._seg) if x is not None)
                self._hnsw = self._seg = None
            elif self._hnsw.dim != dimension:
                self._destroy_graphs()  # the graphs are per-dimension: destroy, then rebuild
            # else: the graphs emptied by clear() are reused; they allocate on their next add
        if self._hnsw is None:
            self._hnsw = HNSWIndex(
                self.allocator,
                dimension,
                self._metric,
                capacity=max(self.buffer_size, 64),
                M=self.M,
                ef_construction=self.ef_construction,
                label="hnsw",
                faults=self.faults,
            )
        if self._seg is None:
            self._seg = SegmentedHNSW(
                self.allocator,
                dimension,
                self._metric,
                M=self.M,
                ef_construction=self.ef_construction,
                label="segment",
                faults=self.faults,
                num_threads=self.num_threads,
            )
        self.dimension = dimension
        self.state = State.READY

    @_serialized
    def clear(self) -> None:
        """Drop every row and free every block; back to `uninitialized` (any dimension next)."""
        self._check_open()
        if self.state != State.READY:
            return
        if self.faults.on("keep-initialized"):
            # FAULT keep-initialized — the note's "Option 1: Keep Structures, Reset Data":
            # only the graphs are cleared; initialized=True and the dimension stay, and so
            # do the flat buffer, the id map and the slot store.
            if self._hnsw is not None:
                self._hnsw.clear()
            if self._seg is not None:
                self._seg.clear()
            return
        self._meta.clear()
        self._release_slots()
        if self.faults.on("flat-buffer-leak"):
            # FAULT flat-buffer-leak — "Not freed in clear(); Re-allocated on next
            # initialize()": the handle is dropped, the blocks stay allocated.
            self._flat = None
        elif self.faults.on("flat-buffer-double-free"):
            # FAULT flat-buffer-double-free — "In clear(): Properly free", but the
            # handle is kept, and initialize() "frees before allocating".
            assert self._flat is not None
            self._flat.free()
        else:
            assert self._flat is not None
            self._flat.destroy()
            self._flat = None
        if self.faults.on("reinit-without-destroy"):
            # FAULT reinit-without-destroy: clear() frees the graphs' vector arrays it
            # knows about but does not destroy the objects; the rest of their blocks
            # leak, and destroying them later frees the vectors a second time.
            for graph in (self._hnsw, self._seg):
                if graph is not None:
                    for block in graph.blocks():
                        if block.label.endswith(".vectors"):
                            self.allocator.free(block)
        else:
            # FIXED — the note's "Added clear() method to SegmentedHNSW": the graphs free
            # every block in place and stay, empty, for a same-dimension re-initialization
            for graph in (self._hnsw, self._seg):
                if graph is not None:
                    graph.clear()
        self.state = State.UNINITIALIZED
        self.dimension = None

    @_serialized
    def close(self) -> None:
        """Free everything; later calls raise ClosedError. Idempotent."""
        if self.state == State.CLOSED:
            return
        try:
            self._meta.destroy()
            self._release_slots()
            if self._flat is not None:
                self._flat.destroy()
                self._flat = None
            self._destroy_graphs()
            retired, self._retired = self._retired, []
            for graph in retired:
                graph.destroy()
        finally:
            self.state = State.CLOSED
            self.dimension = None

    def __copy__(self) -> Database:
        raise CopyRefusedError(_COPY_REFUSED)

    def __deepcopy__(self, memo: dict[int, Any]) -> Database:
        raise CopyRefusedError(_COPY_REFUSED)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise CopyRefusedError(_COPY_REFUSED.replace("copied", "pickled"))

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # the owner's destructor: a database dropped without close() still frees its blocks
        if getattr(self, "state", State.CLOSED) != State.CLOSED:
            self.close()

    def _destroy_graphs(self) -> None:
        hnsw, seg = self._hnsw, self._seg
        self._hnsw = self._seg = None
        if hnsw is not None:
            hnsw.destroy()
        if seg is not None:
            seg.destroy()

    def _release_slots(self) -> None:
        slots = self._slots
        self._reset_slots()
        slots.release()

    def owned_blocks(self) -> list[Block]:
        """Every live block this database holds (for info() and the destructor fault)."""
        out: list[Block] = list(self._meta.blocks())
        out.extend(self._slots.live_blocks())
        if self._flat is not None:
            out.extend(self._flat.blocks())
        for graph in (self._hnsw, self._seg, *self._retired):
            if graph is not None:
                out.extend(graph.blocks())
        return out

    def _destroy_in_place(self) -> None:
        """What a native destructor does: free every pointer, touch nothing else.

        Used only by the `singleton-double-destroy` fault; the handles stay, so a
        second call frees the same blocks again.
        """
        for block in self.owned_blocks():
            self.allocator.free(block)

    def _check_open(self) -> None:
        if self.state == State.CLOSED:
            raise ClosedError("the database is closed; create a new DB (or get_global_db())")

    # -- ids ---------------------------------------------------------------------------
    def _auto_ids(self, n: int) -> BatchIds:
        parts = []
        start = self._auto_next
        need = n
        while need:
            cand = np.arange(start, start + need, dtype=np.int64)
            start += need
            if self.state == State.READY and len(self._meta):
                cand = cand[self._meta.lookup(cand) < 0]
            parts.append(cand)
            need -= cand.size
        return BatchIds(np.concatenate(parts) if len(parts) > 1 else parts[0], None, 0)

    def _holds(self, slot: int, norm: Id, is_int: bool) -> bool:
        """Does `slot` hold exactly this id (not another id with the same key)?"""
        if self._obj_ids is None:
            return is_int
        theirs = self._obj_ids[slot]
        return theirs == norm and type(theirs) is type(norm)

    def _id_at(self, slot: int) -> Id:
        if self._obj_ids is not None:
            return self._obj_ids[slot]
        return int(self._slots.sid[slot])

    def _same_ids(self, ids: BatchIds, slots: np.ndarray) -> np.ndarray:
        """Mask of found slots that really hold the given id (not just the same key)."""
        hit = slots >= 0
        if self._obj_ids is None:
            if ids.values is not None and ids.n_obj:
                # only int64 ids are stored; a str / huge-int id cannot be here
                hit &= np.array(
                    [type(v) is int and INT64_MIN <= v <= INT64_MAX for v in ids.values]
                )
            return hit
        for i in np.flatnonzero(hit).tolist():
            mine = int(ids.keys[i]) if ids.values is None else ids.values[i]
            theirs = self._obj_ids[int(slots[i])]
            if theirs != mine or type(theirs) is not type(mine):
                hit[i] = False
        return hit

    def _existing(self, ids: BatchIds) -> np.ndarray:
        """Slots of ids already present (-1 elsewhere); IdCollisionError on a key clash."""
        if self.state != State.READY or not len(self._meta):
            return np.full(ids.keys.shape[0], -1, np.int64)
        slots = self._meta.lookup(ids.keys)
        if self._obj_ids is not None or ids.values is not None:
            for i in np.flatnonzero(slots >= 0).tolist():
                mine = int(ids.keys[i]) if ids.values is None else ids.values[i]
                theirs = self._id_at(int(slots[i]))
                if theirs != mine or type(theirs) is not type(mine):
                    raise IdCollisionError(
                        f"ids {mine!r} and {theirs!r} map to the same 64-bit key; use another id"
                    )
        return slots

    # -- inserts -----------------------------------------------------------------------
    def _matrix(self, vectors: Any) -> np.ndarray:
        x = batch_matrix(vectors)
        if self.state == State.READY and x.shape[1] != self.dimension:
            raise DimensionMismatchError(
                f"vectors have dimension {x.shape[1]}, expected {self.dimension} "
                f"(the database's dimension)"
            )
        return x

    @_serialized
    def add_batch(self, vectors: Any, ids: Any = None, metadata: Any = None) -> list[Id]:
        """Insert rows atomically; ids default to fresh ints. Returns the ids."""
        self._check_open()
        x = self._matrix(vectors)
        n = x.shape[0]
        prepared = self._auto_ids(n) if ids is None else batch_ids(ids, n)
        md = metadata_list(metadata, n)
        slots = self._existing(prepared)
        if (slots >= 0).any():
            found = np.flatnonzero(slots >= 0)[:5].tolist()
            names = [
                int(prepared.keys[i]) if prepared.values is None else prepared.values[i]
                for i in found
            ]
            raise DuplicateIdError(
                f"id(s) already in the database: {names!r}; use upsert_batch() to replace rows"
            )
        # the answer is built first: a MemoryError building it after the commit would report
        # a failed batch whose rows are in (seen under an address-space limit)
        answer = _batch_answer(prepared)
        self._commit(x, prepared, md)
        if ids is None:
            self._auto_next = int(prepared.keys.max()) + 1
        return answer

    @_serialized
    def upsert_batch(self, vectors: Any, ids: Any, metadata: Any = None) -> list[Id]:
        """Insert rows, replacing those whose id exists (they get new slots)."""
        self._check_open()
        if ids is None:
            raise InvalidInputError("upsert_batch needs ids (one per row), got None")
        x = self._matrix(vectors)
        n = x.shape[0]
        prepared = batch_ids(ids, n)
        md = metadata_list(metadata, n)
        slots = self._existing(prepared)
        # the old rows are retired only after the new ones are in: a batch that fails half
        # way (out of memory) leaves every old row in place
        answer = _batch_answer(prepared)  # before the commit, as in add_batch
        self._commit(x, prepared, md, replaced=slots[slots >= 0])
        return answer

    @_serialized
    def add(self, id: Id, vector: Any, metadata: dict[str, Any] | None = None) -> None:
        """Insert one row."""
        self._check_open()
        v = as_float32(vector, "vector")
        if v.ndim != 1:
            raise InvalidInputError(
                f"vector must be 1-D (dimension,), got shape {v.shape}; use add_batch for many"
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInputError(
                f"metadata must be a dict of scalars or None, got {type(metadata).__name__}"
            )
        self.add_batch(v.reshape(1, -1), [id], None if metadata is None else [metadata])

    def _commit(
        self,
        x: np.ndarray,
        ids: BatchIds,
        md: list[dict[str, Any] | None] | None,
        replaced: np.ndarray | None = None,
    ) -> None:
        """Store validated rows: slot store, id map, metadata, then the index tiers.

        Atomic: the slot store grows before the first visible change, and if anything after
        that fails (a MemoryError from an allocation, or from Numba loading a kernel) the
        batch is undone (`_undo_commit`): its slots become tombstones, the id map holds what
        it held, so count(), get() and a retry see the database as it was. `replaced` are the
        slots of rows an upsert replaces: retired only once the new rows are in.
        """
        if self.state != State.READY:
            self.initialize(x.shape[1])
        n = x.shape[0]
        lo = self._slots.used
        hi = lo + n
        self._slots.ensure(hi)
        obj_before = None if self._obj_ids is None else len(self._obj_ids)
        n_obj_before = self._n_obj_live
        slots = np.arange(lo, hi, dtype=np.int64)
        # address space for the undo's own temporaries (the id map's probe arrays, an upsert's
        # set difference and re-put, the flat buffer's compaction), given back first thing in
        # an undo: an undo that ran out of memory half way kept the failed batch's ids, or
        # lost an upsert's old rows (both seen under an address-space limit)
        reserve: np.ndarray | None = np.empty(_UNDO_RESERVE_BYTES + 256 * n, np.uint8)
        try:
            self._slots.sid[lo:hi] = ids.keys
            self._slots.loc[lo:hi] = -1  # placed by _route
            if ids.values is not None and self._obj_ids is None and ids.n_obj:
                self._obj_ids = self._slots.sid[:lo].tolist()
            if self._obj_ids is not None:
                self._obj_ids.extend(ids.keys.tolist() if ids.values is None else ids.values)
            self._n_obj_live += ids.n_obj
            self._slots.used = hi
            self._meta.insert(ids.keys, slots)
            if md is not None:
                self._meta.set_metadata(slots, md)
            if self._metric == METRIC_COSINE:
                # the tiers hold unit rows; the norm is kept so get() returns the row as given
                self._slots.norm[lo:hi] = np.sqrt(np.einsum("ij,ij->i", x, x))
                x = x.copy()
                normalize_rows(x)
            self._route(x, slots)
        except BaseException:
            reserve = None  # freed: the undo may allocate into it
            self._undo_commit(ids, slots, replaced, obj_before, n_obj_before)
            raise
        del reserve
        if replaced is not None and replaced.size:
            self._retire_slots(replaced)

    def _undo_commit(
        self,
        ids: BatchIds,
        slots: np.ndarray,
        replaced: np.ndarray | None,
        obj_before: int | None,
        n_obj_before: int,
    ) -> None:
        """Take back a failed batch without allocating: its slots stay claimed (a graph may
        hold nodes labelled with them) but are tombstones, and the id map forgets its keys
        (or, for replaced rows, points at the old slots again, overwritten in place)."""
        if replaced is not None and replaced.size:
            back = self._slots.sid[replaced]
            new = np.setdiff1d(ids.keys, back)
            self._meta.id_to_index.delete_many(new)
            self._meta.id_to_index.put_many(back, replaced, reserve=False)
        else:
            self._meta.id_to_index.delete_many(ids.keys)
        if self._meta.has_metadata:
            self._meta.drop_metadata(slots)
        self._slots.tombstone(slots)
        assert self._flat is not None
        if self._flat.remove_slots(slots):
            self._slots.place(self._flat.slots(), T_FLAT, 0)
        if obj_before is None:
            self._obj_ids = None
        elif self._obj_ids is not None:
            del self._obj_ids[obj_before:]
        self._n_obj_live = n_obj_before

    # -- deletes -------------------------------------------------------------------------
    @_serialized
    def delete(self, id: Id) -> bool:
        """Remove one row; False if the id is not there."""
        self._check_open()
        key, norm, is_int = key_of(id)
        if self.state != State.READY:
            return False
        slot = self._meta.lookup_one(key)
        if slot < 0 or not self._holds(slot, norm, is_int):
            return False
        self._delete_slots(np.array([key], np.int64), np.array([slot], np.int64))
        return True

    @_serialized
    def delete_batch(self, ids: Any) -> int:
        """Remove rows by id (absent ids are skipped); returns how many were removed."""
        self._check_open()
        if isinstance(ids, str | bytes | dict) or not isinstance(ids, Iterable):
            raise InvalidInputError(
                f"ids must be a sequence of str or int, got {type(ids).__name__}"
            )
        ids = ids if isinstance(ids, np.ndarray) else list(ids)
        n = len(ids)
        if n == 0 or self.state != State.READY:
            # still validate the id types
            for v in ids.tolist() if isinstance(ids, np.ndarray) else ids:
                key_of(v)
            return 0
        if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
            prepared = batch_ids(np.unique(ids), np.unique(ids).shape[0])
        else:
            uniq = list(dict.fromkeys(key_of(v)[1] for v in ids))
            prepared = batch_ids(uniq, len(uniq))
        slots = self._meta.lookup(prepared.keys)
        hit = self._same_ids(prepared, slots)
        if hit.any():
            self._delete_slots(prepared.keys[hit], slots[hit])
        return int(hit.sum())

    # -- reads ---------------------------------------------------------------------------
    @_serialized
    def count(self) -> int:
        self._check_open()
        return len(self._meta) if self.state == State.READY else 0

    def __len__(self) -> int:
        return self.count()

    @_serialized
    def get(self, id: Id) -> tuple[np.ndarray, dict[str, Any] | None]:
        """(vector as inserted, metadata) of one row; IdNotFoundError if absent."""
        self._check_open()
        key, norm, is_int = key_of(id)
        slot = self._meta.lookup_one(key) if self.state == State.READY else -1
        if slot < 0 or not self._holds(slot, norm, is_int):
            raise IdNotFoundError(f"id {id!r} is not in the database")
        row = self._row_of(slot)
        if row is None:
            raise IdNotFoundError(f"id {id!r} is not in the database")
        if self._metric == METRIC_COSINE:
            return row * self._slots.norm[slot], self._meta.get_metadata(slot)
        return row.copy(), self._meta.get_metadata(slot)

    @_serialized
    def search(
        self, vector: Any, limit: int = 10, filter: dict[str, Any] | None = None
    ) -> list[SearchResult]:
        """The `limit` nearest rows (optionally only those whose metadata matches `filter`)."""
        if self.state != State.READY:
            self._check_open()
        if type(limit) is not int or limit <= 0:
            limit = positive_int(limit, "limit")
        q = self._query_matrix(vector, True)
        if filter is not None:
            if not isinstance(filter, dict):
                raise InvalidInputError(
                    f"filter must be a dict of key -> scalar value, got {type(filter).__name__}"
                )
            filter = check_metadata(filter, None)
        if self.state != State.READY or not len(self._meta):
            return []
        limit = min(limit, len(self._meta))  # sized by the data, not by the caller's number
        if filter:
            labels, dists = self._filtered(q, limit, filter)
        else:
            labels, dists = self._unfiltered(q, limit)
        return self._results(labels[0], dists[0])

    @_serialized
    def search_batch(self, vectors: Any, limit: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-`limit` per query: (ids (q, limit), distances float32 (q, limit)).

        ids are int64 padded with -1 while every id in the database is an int,
        otherwise an object array padded with None; distances are padded with +inf.
        """
        self._check_open()
        limit = positive_int(limit, "limit")
        q = self._query_matrix(vectors, False)
        if q.shape[0] * limit > MAX_RESULT_CELLS:
            raise InvalidInputError(
                f"search_batch of {q.shape[0]:,} queries x limit {limit:,} would return "
                f"{q.shape[0] * limit:,} cells (at most {MAX_RESULT_CELLS:,}); lower the limit"
            )
        held = len(self._meta) if self.state == State.READY else 0
        if held == 0:
            return (
                np.full((q.shape[0], limit), -1, np.int64),
                np.full((q.shape[0], limit), np.inf, np.float32),
            )
        labels, dists = self._unfiltered(q, min(limit, held))
        if labels.shape[1] < limit:  # padded to the promised (q, limit)
            pad = limit - labels.shape[1]
            labels = np.pad(labels, ((0, 0), (0, pad)), constant_values=-1)
            dists = np.pad(dists, ((0, 0), (0, pad)), constant_values=np.inf)
        valid = labels >= 0
        if self._n_obj_live == 0:
            ids = np.where(valid, self._slots.sid[np.where(valid, labels, 0)], -1)
            return ids, dists
        out = np.full(labels.shape, None, dtype=object)
        obj = self._obj_ids
        assert obj is not None
        for (r, c), s in zip(np.argwhere(valid).tolist(), labels[valid].tolist(), strict=True):
            out[r, c] = obj[s]
        return out, dists

    # -- introspection ---------------------------------------------------------------------
    @_serialized
    def info(self) -> dict[str, Any]:
        """Plain data about the database: state, sizes per tier, allocator summary."""
        snap = self.allocator.snapshot()
        ready = self.state == State.READY
        return {
            "state": self.state,
            "dimension": self.dimension,
            "metric": self.metric,
            "count": len(self._meta) if ready else 0,
            "tiers": {
                "flat": len(self._flat) if ready and self._flat is not None else 0,
                "hnsw": len(self._hnsw) if ready and self._hnsw is not None else 0,
                "segments": len(self._seg) if ready and self._seg is not None else 0,
            },
            "deleted": self._slots.n_deleted,
            "slots": self._slots.used,
            "buffer_size": self.buffer_size,
            "segment_threshold": self.segment_threshold,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef_search": self._ef_search,
            "allocator": {k: v for k, v in snap.items() if k not in ("violations",)}
            | {"violations": len(snap["violations"])},
            "faults": list(self.faults.names),
        }


DB = Database
