"""usearch behind the Engine protocol: a native HNSW with removal but no search filter.

`clear` is usearch's own `Index.reset()` (native: "erases all data ... and
returns allocated memory to the OS"); the same object is reused by the next
`open` unless the dimension or metric changes. Delete is `Index.remove`. The
Python `Index.search` takes no predicate, so `metadata_filter` is False and a
filtered search step is skipped. Distances follow refimpl's convention: `l2sq`
for l2, `1 - dot` for ip, `1 - cos` for cosine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import Capabilities, EngineConfig, EngineError
from .peer_common import empty_result, ignored_note, peer_options

_METRICS: dict[str, str] = {"l2": "l2sq", "ip": "ip", "cosine": "cos"}
_KNOWN_OPTIONS = ("M", "ef_construction", "ef_search", "num_threads")


class UsearchEngine:
    """One `usearch.index.Index` with f32 storage; reset in place by clear."""

    name = "usearch"
    allocator = "native"

    def __init__(self, config: EngineConfig) -> None:
        opts = peer_options(self.name, config, _KNOWN_OPTIONS)
        self.M: int = opts["M"]
        self.ef_construction: int = opts["ef_construction"]
        self.ef_search: int = opts["ef_search"]
        self.num_threads: int = opts["num_threads"]
        ignored = ignored_note(opts)
        self.capabilities = Capabilities(
            delete=True,
            metadata_filter=False,
            clear="native",
            dimension_change=True,
            ledger=False,
            reload=False,
            metrics=tuple(_METRICS),
            note=(
                "clear: Index.reset() (native, returns memory to the OS; the object is reused, a "
                "new one is built only when the dimension or metric changes); delete: "
                "Index.remove; filter: not supported (Index.search takes no predicate)" + ignored
            ),
        )
        self._index: Any = None
        self._dimension: int | None = None
        self._metric = "l2"

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, dimension: int, metric: str = "l2") -> None:
        if metric not in _METRICS:
            raise ValueError(
                f"usearch: unknown metric {metric!r}; expected one of {tuple(_METRICS)}"
            )
        if self._index is not None and (dimension, metric) == (self._dimension, self._metric):
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

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self._index is not None:
            self._index.reset()
        self._index = None
        self._dimension = None

    # -- data --------------------------------------------------------------------------------
    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if self._index is None or (vectors.shape[1] != self._dimension and self.count() == 0):
            self.open(vectors.shape[1], self._metric)  # first insert, or first after clear
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

    # -- introspection -----------------------------------------------------------------------
    def ledger(self) -> dict[str, Any] | None:
        return None

    @property
    def source_roots(self) -> list[str]:
        """The usearch package (Python wrapper and its native library)."""
        import usearch

        return [str(Path(usearch.__file__).parent)]

    def reload(self) -> None:
        raise NotImplementedError("usearch is a native extension; it cannot be re-imported")


def make_usearch(config: EngineConfig) -> UsearchEngine:
    """Factory for `--engine usearch`."""
    try:
        import usearch.index  # noqa: F401
    except ImportError as exc:
        raise EngineError(
            f"usearch is not installed ({exc}); pip install 'memcycle[peers]'"
        ) from exc
    return UsearchEngine(config)
