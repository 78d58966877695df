"""Adapters for the reference engine: `refimpl` (the DB API) and `refimpl-global`
(the singleton functions, driven the way a native module is: `get_global_db`,
`add_vector_batch`, `search_vectors`, `clear_database`).

Both build one allocator per adapter and hand the same instance to every
database they create, so the ledger (live blocks by label, violations recorded
by finalizers) spans clears, destroys and module reloads. The scenario's
`[engine]` table becomes DB keyword arguments.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .base import Capabilities, EngineConfig, EngineError

DB_OPTIONS = (
    "buffer_size",
    "segment_threshold",
    "M",
    "ef_construction",
    "ef_search",
    "num_threads",
)
METRICS = ("l2", "cosine", "ip")


_PACKAGE = "memcycle.refimpl"


def _import_refimpl(fresh: bool = False) -> ModuleType:
    """The refimpl package; with `fresh`, every refimpl module is dropped and re-imported
    (what unloading and loading a native module again amounts to)."""
    if fresh:
        for name in [m for m in sys.modules if m == _PACKAGE or m.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
    return importlib.import_module(_PACKAGE)


def _db_kwargs(config: EngineConfig) -> dict[str, Any]:
    opts = dict(config.options or {})
    unknown = sorted(set(opts) - set(DB_OPTIONS))
    if unknown:
        raise EngineError(
            f"unknown refimpl option(s) {', '.join(unknown)} in [engine]; "
            f"expected from {', '.join(DB_OPTIONS)}"
        )
    return opts


def _empty(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((q, k), -1, np.int64), np.full((q, k), np.inf, np.float32)


def _get_rows(db: Any, ids: np.ndarray) -> list[np.ndarray | None]:
    """One vector per id, None for an id the database does not hold (a lost row)."""
    from memcycle.refimpl.errors import IdNotFoundError

    rows: list[np.ndarray | None] = []
    for i in ids.tolist():
        try:
            rows.append(db.get(int(i))[0])
        except IdNotFoundError:
            rows.append(None)
    return rows


def _delete_matching(db: Any, filter: dict[str, Any]) -> int:
    """refimpl has no delete-by-filter call: the rows its metadata index matches, by id."""
    if db.count() == 0:
        return 0
    slots = db._meta.match(filter)
    return int(db.delete_batch([db._id_at(int(s)) for s in slots.tolist()]))


def _fill(results: list[Any], row: int, ids: np.ndarray, dists: np.ndarray) -> None:
    for j, r in enumerate(results[: ids.shape[1]]):
        ids[row, j] = -1 if r.id is None else int(r.id)
        dists[row, j] = r.distance


class _RefimplBase:
    capabilities = Capabilities(
        delete=True,
        metadata_filter=True,
        clear="native",
        dimension_change=True,
        ledger=True,
        reload=True,
        metrics=METRICS,
        note="reference engine (Python + Numba) over an explicit allocator; in memory only, "
        "so reopen (close and open the same store) is skipped",
        upsert=True,
        delete_filter=True,
        duplicate_ids="refuse",
    )

    def __init__(self, config: EngineConfig) -> None:
        self.mod = _import_refimpl()
        from memcycle.refimpl.alloc import make_allocator
        from memcycle.refimpl.faults import FaultSet

        self.kwargs = _db_kwargs(config)
        try:  # unknown fault or allocator names fail here, before any cycle
            self.faults = FaultSet(config.faults)
            self.allocator = make_allocator(config.allocator)
        except Exception as exc:
            raise EngineError(str(exc)) from None
        self.metric = "l2"

    @property
    def source_roots(self) -> list[str]:
        return [str(Path(self.mod.__file__).resolve().parent)]

    def _new_db_kwargs(self, metric: str) -> dict[str, Any]:
        return {
            "metric": metric,
            "allocator": self.allocator,
            "faults": self.faults.names,
            **self.kwargs,
        }

    def ledger(self) -> dict[str, Any] | None:
        snap = self.allocator.snapshot()
        # freed blocks an allocator keeps as a cache (the checked allocator's poisoned
        # quarantine), which leak checks must not count as growth; 0 when it keeps none
        snap["cached_bytes"] = int(snap.get("cached_bytes", 0))
        return snap


class RefimplEngine(_RefimplBase):
    """One `refimpl.DB` object; `clear()` is the DB's own clear."""

    name = "refimpl"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.db: Any = None

    def open(self, dimension: int, metric: str = "l2") -> None:
        self.metric = metric
        if self.db is None or self.db.state == "closed":
            self.db = self.mod.DB(dimension, **self._new_db_kwargs(metric))
        # a cleared DB is uninitialized: its next insert picks the new dimension

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.db.add_batch(vectors, ids=ids.tolist(), metadata=metadata)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.db is None:
            return _empty(len(queries), k)
        if not filter:
            ids, dists = self.db.search_batch(queries, limit=k)
            if ids.dtype == object:
                ids = np.array([[-1 if x is None else int(x) for x in row] for row in ids])
            return np.asarray(ids, np.int64), np.asarray(dists, np.float32)
        out_i, out_d = _empty(len(queries), k)
        for row, q in enumerate(queries):
            _fill(self.db.search(q, limit=k, filter=filter), row, out_i, out_d)
        return out_i, out_d

    def get(self, ids: np.ndarray) -> list[np.ndarray | None]:
        return _get_rows(self.db, ids)

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.db.upsert_batch(vectors, ids=ids.tolist(), metadata=metadata)

    def delete_filter(self, filter: dict[str, Any]) -> None:
        if self.db is not None:
            _delete_matching(self.db, filter)

    def delete(self, ids: np.ndarray) -> None:
        self.db.delete_batch(ids.tolist())

    def count(self) -> int:
        return 0 if self.db is None else int(self.db.count())

    def clear(self) -> None:
        if self.db is not None:
            self.db.clear()

    def close(self) -> None:
        if self.db is not None:
            db, self.db = self.db, None
            db.close()

    def reload(self) -> None:
        self.close()
        self.mod = _import_refimpl(fresh=True)


class RefimplGlobalEngine(_RefimplBase):
    """The process-wide singleton: `clear()` is `clear_database()` (destroy; the next
    `get_global_db()` builds a fresh database), as the reference note's fix does."""

    name = "refimpl-global"
    capabilities = Capabilities(
        delete=True,
        metadata_filter=True,
        clear="recreate",
        dimension_change=True,
        ledger=True,
        reload=True,
        metrics=METRICS,
        note="refimpl singleton functions: get_global_db / add_vector_batch / clear_database",
        upsert=True,
        delete_filter=True,
        duplicate_ids="refuse",
    )

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.opened = False

    def _db(self) -> Any:
        return self.mod.get_global_db(**self._new_db_kwargs(self.metric))

    def open(self, dimension: int, metric: str = "l2") -> None:
        self.metric = metric
        self._db()  # created lazily; the first add_vector_batch initializes it
        self.opened = True

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.mod.add_vector_batch(ids.tolist(), vectors, metadata)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        out_i, out_d = _empty(len(queries), k)
        for row, q in enumerate(queries):
            if filter:
                res = self._db().search(q, limit=k, filter=filter)
            else:
                res = self.mod.search_vectors(q, k)
            _fill(res, row, out_i, out_d)
        return out_i, out_d

    def get(self, ids: np.ndarray) -> list[np.ndarray | None]:
        return _get_rows(self._db(), ids)

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self._db().upsert_batch(vectors, ids=ids.tolist(), metadata=metadata)

    def delete_filter(self, filter: dict[str, Any]) -> None:
        _delete_matching(self._db(), filter)

    def delete(self, ids: np.ndarray) -> None:
        self._db().delete_batch(ids.tolist())

    def count(self) -> int:
        return int(self._db().count()) if self.opened else 0

    def clear(self) -> None:
        self.mod.clear_database()
        self.opened = False

    def close(self) -> None:
        self.mod.cleanup_global_db()
        self.opened = False

    def reload(self) -> None:
        self.close()
        self.mod = _import_refimpl(fresh=True)


def make_refimpl(config: EngineConfig) -> RefimplEngine:
    """Factory for `--engine refimpl`."""
    return RefimplEngine(config)


def make_refimpl_global(config: EngineConfig) -> RefimplGlobalEngine:
    """Factory for `--engine refimpl-global`."""
    return RefimplGlobalEngine(config)
