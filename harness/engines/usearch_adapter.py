"""usearch behind the Engine protocol: a native HNSW with removal but no search filter.

`clear` is usearch's own `Index.reset()` (native: "erases all data ... and
returns allocated memory to the OS"); the same object is reused by the next
`open` unless the dimension or metric changes. Delete is `Index.remove`. The
Python `Index.search` takes no predicate, so `metadata_filter` is False and a
filtered search step is skipped. Distances follow refimpl's convention: `l2sq`
for l2, `1 - dot` for ip, `1 - cos` for cosine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Capabilities
from .peer_common import NativePeer, empty_result

_METRICS: dict[str, str] = {"l2": "l2sq", "ip": "ip", "cosine": "cos"}


class UsearchEngine(NativePeer):
    """One `usearch.index.Index` with f32 storage; reset in place by clear."""

    name = "usearch"
    package = "usearch"
    metrics = tuple(_METRICS)

    def describe(self, ignored: str) -> Capabilities:
        return Capabilities(
            delete=True,
            metadata_filter=False,
            clear="native",
            dimension_change=True,
            ledger=False,
            reload=False,
            metrics=self.metrics,
            note=(
                "clear: Index.reset() (native, returns memory to the OS; the object is reused, a "
                "new one is built only when the dimension or metric changes); delete: "
                "Index.remove; filter: not supported (Index.search takes no predicate)" + ignored
            ),
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, dimension: int, metric: str = "l2") -> None:
        if self._is_open_for(dimension, metric):
            return
        from usearch.index import Index

        self._drop()
        self._index = Index(
            ndim=int(dimension),
            metric=_METRICS[metric],
            dtype="f32",
            connectivity=self.M,
            expansion_add=self.ef_construction,
            expansion_search=self.ef_search,
        )
        self._dimension, self._metric = int(dimension), metric

    def clear(self) -> None:
        if self._index is not None:
            self._index.reset()

    def _drop(self) -> None:
        if self._index is not None:
            self._index.reset()
        super()._drop()

    # -- data --------------------------------------------------------------------------------
    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        self._open_for_insert(vectors.shape[1])
        keys = np.ascontiguousarray(ids, dtype=np.int64)
        if (keys < 0).any():
            raise ValueError("usearch keys are unsigned: ids must be >= 0")
        self._index.add(keys.astype(np.uint64), vectors, threads=self.num_threads)

    def delete(self, ids: np.ndarray) -> None:
        if self._index is None:
            return
        keys = np.asarray(ids, dtype=np.int64)
        self._index.remove(keys[keys >= 0].astype(np.uint64))

    def count(self) -> int:
        return 0 if self._index is None else len(self._index)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored rows `(n, dimension)` float32; unknown id: KeyError."""
        keys = np.asarray(ids, dtype=np.int64)
        if self._index is None:
            raise KeyError(f"usearch: no index open, ids {keys[:5].tolist()}")
        if len(keys) == 0:
            return np.empty((0, self._dimension or 0), dtype=np.float32)
        rows = self._index.get(keys.astype(np.uint64), dtype=np.float32)
        missing = [int(k) for k, r in zip(keys, rows, strict=True) if r is None]
        if missing:
            raise KeyError(f"usearch: ids not found: {missing[:5]}")
        return np.stack(rows).astype(np.float32, copy=False)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if filter:
            raise NotImplementedError(
                "usearch Index.search takes no predicate (capabilities.metadata_filter is False)"
            )
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        ids, dists = empty_result(len(queries), k)
        if self._index is None or len(self._index) == 0:
            return ids, dists
        found = self._index.search(queries, k, threads=self.num_threads)
        keys = np.atleast_2d(found.keys)
        distances = np.atleast_2d(found.distances)
        counts = np.atleast_1d(found.counts)
        for row, n in enumerate(counts.tolist()):  # usearch pads with key 0 and NaN
            ids[row, :n] = keys[row, :n].astype(np.int64)
            dists[row, :n] = distances[row, :n]
        return ids, dists


make_usearch = UsearchEngine.factory  # `--engine usearch`
