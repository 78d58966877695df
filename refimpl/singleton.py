"""The process-wide database: the singleton API of the reference note's engine.

`get_global_db()` hands out one `Database` per process, `cleanup_global_db()` destroys it and
forgets it (the note's fix: `clear_database()` destroys completely, the next get builds anew).
Creating and destroying the singleton are one step each under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .database import Database, SearchResult, State
from .ids import Id

_GLOBAL: Database | None = None
_GLOBAL_LOCK = threading.RLock()  # creating and destroying the singleton are one step each


def get_global_db(**db_kwargs: Any) -> Database:
    """The process database, created with `db_kwargs` if there is none (kwargs are
    ignored when it already exists)."""
    global _GLOBAL
    with _GLOBAL_LOCK:
        if _GLOBAL is None or _GLOBAL.state == State.CLOSED:
            _GLOBAL = Database(**db_kwargs)
        return _GLOBAL


def cleanup_global_db() -> None:
    """Destroy the process database and forget it (idempotent)."""
    global _GLOBAL
    with _GLOBAL_LOCK:
        db = _GLOBAL
        if db is None:
            return
        if db.faults.on("singleton-double-destroy"):
            # FAULT singleton-double-destroy — "Destructor called multiple times": the
            # destructor frees every block but the singleton is not forgotten, so the
            # next cleanup runs it again on the same blocks.
            db._destroy_in_place()
            return
        _GLOBAL = None
        db.close()


def clear_database() -> None:
    """The note's fix: destroy completely; get_global_db() builds a fresh instance."""
    cleanup_global_db()


def add_vector_batch(
    ids: Sequence[Id] | np.ndarray | None, vectors: Any, metadata: Any = None
) -> list[Id]:
    return get_global_db().add_batch(vectors, ids, metadata)


def search_vectors(query: Any, k: int = 10) -> list[SearchResult]:
    return get_global_db().search(query, limit=k)
