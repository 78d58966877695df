"""hnswlib behind the Engine protocol: a native HNSW with delete and a label filter.

hnswlib has no reset, so `clear` drops the index object and the next `open`
builds a new one ("recreate"). Delete is `mark_deleted` (a tombstone: the node
stays in the graph and its memory stays allocated until the index is dropped).
The metadata filter is hnswlib's own `filter=` callable over labels; the
metadata itself lives in the adapter, because hnswlib stores none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Capabilities, EngineConfig
from .peer_common import NativePeer, empty_result, matches

_SPACES: dict[str, str] = {"l2": "l2", "ip": "ip", "cosine": "cosine"}


class HnswlibEngine(NativePeer):
    """One hnswlib `Index`; re-created on clear and on a dimension or metric change."""

    name = "hnswlib"
    package = "hnswlib"
    metrics = tuple(_SPACES)
    known_options = ("M", "ef_construction", "ef_search", "capacity", "num_threads", "seed")

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.initial_capacity: int = self.options["capacity"]
        self.seed: int = self.options["seed"]
        self._deleted: set[int] = set()
        self._metadata: dict[int, dict[str, Any]] = {}

    def describe(self, ignored: str) -> Capabilities:
        return Capabilities(
            delete=True,
            metadata_filter=True,
            clear="recreate",
            dimension_change=True,
            ledger=False,
            reload=False,
            metrics=self.metrics,
            note=(
                "clear: no native reset, the hnswlib.Index is dropped and rebuilt on the next open; "
                "delete: mark_deleted tombstones (memory kept until clear); "
                "filter: hnswlib filter= callable over labels, metadata held by the adapter"
                + ignored
            ),
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, dimension: int, metric: str = "l2") -> None:
        if self._is_open_for(dimension, metric):
            return
        import hnswlib

        self._drop()
        index = hnswlib.Index(space=_SPACES[metric], dim=int(dimension))
        index.init_index(
            max_elements=self.initial_capacity,
            M=self.M,
            ef_construction=self.ef_construction,
            random_seed=self.seed,
        )
        index.set_ef(self.ef_search)
        index.set_num_threads(self.num_threads)
        self._index, self._dimension, self._metric = index, int(dimension), metric

    def clear(self) -> None:
        self._drop()

    def _drop(self) -> None:
        super()._drop()
        self._deleted = set()
        self._metadata = {}

    # -- data --------------------------------------------------------------------------------
    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        if self._index is None:
            self.open(vectors.shape[1], self._metric)
        index = self._index
        needed = index.element_count + len(ids)
        if needed > index.get_max_elements():
            index.resize_index(max(needed, 2 * index.get_max_elements()))
        index.add_items(vectors, ids, num_threads=self.num_threads)
        for i, label in enumerate(ids.tolist()):
            self._deleted.discard(label)  # add_items un-deletes a tombstoned label
            if metadata is not None and metadata[i] is not None:
                self._metadata[label] = metadata[i]
            else:
                self._metadata.pop(label, None)

    def delete(self, ids: np.ndarray) -> None:
        if self._index is None:
            return
        for label in np.asarray(ids, dtype=np.int64).tolist():
            try:
                self._index.mark_deleted(label)
            except RuntimeError:  # unknown label or already deleted: nothing to remove
                continue
            self._deleted.add(label)
            self._metadata.pop(label, None)

    def count(self) -> int:
        return 0 if self._index is None else self._index.element_count - len(self._deleted)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored rows `(n, dimension)` float32 (normalised for cosine); unknown id: KeyError."""
        if self._index is None:
            raise KeyError(f"hnswlib: no index open, ids {np.asarray(ids)[:5].tolist()}")
        try:
            rows = self._index.get_items(np.asarray(ids, dtype=np.int64), return_type="numpy")
        except RuntimeError as exc:  # "Label not found" (never inserted, or deleted)
            raise KeyError(f"hnswlib: {exc}") from None
        return np.asarray(rows, dtype=np.float32).reshape(len(ids), -1)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        ids, dists = empty_result(len(queries), k)
        if self._index is None:
            return ids, dists
        predicate = None
        available = self.count()
        if filter:
            allowed = {
                label for label, meta in self._metadata.items() if matches(meta, filter)
            }  # deleted labels were dropped from _metadata
            available = len(allowed)
            predicate = allowed.__contains__
        kk = min(k, available)
        if kk == 0:
            return ids, dists
        threads = 1 if predicate is not None else self.num_threads
        try:
            labels, d = self._index.knn_query(queries, k=kk, num_threads=threads, filter=predicate)
            ids[:, :kk], dists[:, :kk] = labels.astype(np.int64), d
        except RuntimeError:
            # hnswlib refuses a batch when any query finds fewer than kk live rows (a graph
            # cut off by tombstones); ask query by query with a smaller k instead.
            for row in range(len(queries)):
                self._search_one(queries[row : row + 1], kk, threads, predicate, ids, dists, row)
        return ids, dists

    def _search_one(
        self,
        query: np.ndarray,
        k: int,
        threads: int,
        predicate: Any,
        ids: np.ndarray,
        dists: np.ndarray,
        row: int,
    ) -> None:
        while k > 0:
            try:
                labels, d = self._index.knn_query(query, k=k, num_threads=threads, filter=predicate)
            except RuntimeError:
                k -= 1
                continue
            ids[row, :k], dists[row, :k] = labels[0].astype(np.int64), d[0]
            return

    # -- introspection -----------------------------------------------------------------------
    @property
    def source_roots(self) -> list[str]:
        """The native module itself (hnswlib is one extension file, not a package folder)."""
        import hnswlib

        return [hnswlib.__file__]


make_hnswlib = HnswlibEngine.factory  # `--engine hnswlib`
