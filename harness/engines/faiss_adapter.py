"""faiss behind the Engine protocol: `IndexIDMap2(IndexHNSWFlat)`, HNSW over flat storage with ids.

`clear` is faiss's own `reset()` (native); the same index object is reused by
the next `open` unless the dimension or metric changes, which needs a new
index. Delete is not offered: `IndexHNSWFlat` does not implement `remove_ids`
(faiss raises "remove_ids not implemented for this type of index"), so a
scenario with a delete step is skipped. The metadata filter is faiss's own
search-time `IDSelectorBatch` over the ids whose metadata (held by the adapter)
matches. Distances follow refimpl's convention: squared L2, `1 - dot` for ip
and cosine (cosine vectors are normalised before they reach faiss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Capabilities, EngineConfig
from .peer_common import NativePeer, empty_result, matches


class FaissEngine(NativePeer):
    """One `IndexIDMap2(IndexHNSWFlat)`; reset in place by clear."""

    name = "faiss"
    package = "faiss"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self._metadata: dict[int, dict[str, Any]] = {}

    def describe(self, ignored: str) -> Capabilities:
        return Capabilities(
            delete=False,
            metadata_filter=True,
            clear="native",
            dimension_change=True,
            ledger=False,
            reload=False,
            metrics=self.metrics,
            note=(
                "clear: IndexIDMap2.reset() (native; the index object is reused, a new one is "
                "built only when the dimension or metric changes); delete: not supported, "
                "IndexHNSWFlat does not implement remove_ids; filter: search-time IDSelectorBatch "
                "over ids whose adapter-held metadata matches" + ignored
            ),
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, dimension: int, metric: str = "l2") -> None:
        if self._is_open_for(dimension, metric):
            return
        import faiss

        faiss.omp_set_num_threads(self.num_threads)  # process-wide in faiss
        kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        base = faiss.IndexHNSWFlat(int(dimension), self.M, kind)
        base.hnsw.efConstruction = self.ef_construction
        base.hnsw.efSearch = self.ef_search
        self._drop()
        self._index = faiss.IndexIDMap2(base)  # faiss's wrapper keeps `base` referenced
        self._dimension, self._metric = int(dimension), metric

    def clear(self) -> None:
        if self._index is not None:
            self._index.reset()
        self._metadata = {}

    def _drop(self) -> None:
        super()._drop()
        self._metadata = {}

    # -- data --------------------------------------------------------------------------------
    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.array(np.atleast_2d(x), dtype=np.float32, order="C", copy=True)
        if self._metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            np.divide(x, norms, out=x, where=norms > 0)
        return x

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._open_for_insert(np.atleast_2d(vectors).shape[1])
        self._index.add_with_ids(self._prepare(vectors), ids)
        if metadata is not None:
            for label, meta in zip(ids.tolist(), metadata, strict=True):
                if meta is not None:
                    self._metadata[label] = meta

    def delete(self, ids: np.ndarray) -> None:
        raise NotImplementedError(
            "faiss IndexHNSWFlat does not implement remove_ids (capabilities.delete is False)"
        )

    def count(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored rows `(n, dimension)` float32 (normalised for cosine); unknown id: KeyError."""
        if self._index is None:
            raise KeyError(f"faiss: no index open, ids {np.asarray(ids)[:5].tolist()}")
        try:
            return self._index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))
        except RuntimeError as exc:  # IndexIDMap2: key not found
            raise KeyError(f"faiss: {exc}") from None

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(queries)
        if self._index is None or self._index.ntotal == 0:
            return empty_result(len(queries), k)
        import faiss

        params = None
        if filter:
            allowed = np.fromiter(
                (label for label, meta in self._metadata.items() if matches(meta, filter)),
                dtype=np.int64,
            )
            if len(allowed) == 0:
                return empty_result(len(queries), k)
            selector = faiss.IDSelectorBatch(allowed)
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)
        dists, ids = self._index.search(self._prepare(queries), k, params=params)
        ids = ids.astype(np.int64, copy=False)
        dists = dists.astype(np.float32, copy=False)
        if self._metric != "l2":
            dists = np.float32(1.0) - dists
        dists[ids < 0] = np.inf  # faiss pads with +-FLT_MAX
        return ids, dists


make_faiss = FaissEngine.factory  # `--engine faiss`
