"""A complete adapter for "your own engine": an exact brute-force NumPy index with delete.

Point the harness at it with

    memcycle run --engine memcycle.examples.my_engine:make_engine

(from the repository root, or anywhere once `examples` is importable). Replace
`BruteForceIndex` by your engine and keep the `MyEngine` methods: they are what
an engine does. `memcycle.engines.EngineBase` supplies the optional rest (no
allocator ledger, no module reload, `clear` = `close` and rebuild on the next
`open`) and derives the capabilities from the methods `MyEngine` defines. The
harness replays every cycle table against it in a child process, checks counts
and recall against exact ground truth, and records RSS and memray allocations
per cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from memcycle.engines import EngineBase, EngineConfig, EngineError


class BruteForceIndex:
    """The "engine": rows in one growing float32 array, exact search, swap-remove delete."""

    def __init__(self, dimension: int, metric: str) -> None:
        self.dimension, self.metric = dimension, metric
        self.vectors = np.empty((0, dimension), dtype=np.float32)
        self.ids = np.empty(0, dtype=np.int64)
        self.metadata: list[dict[str, Any] | None] = []
        self.rows: dict[int, int] = {}  # id -> row
        self.size = 0

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[Any] | None) -> None:
        if metadata is not None and len(metadata) != len(ids):
            raise ValueError(f"{len(metadata)} metadata entries for {len(ids)} ids")
        if len(set(ids.tolist())) != len(ids) or any(i in self.rows for i in ids.tolist()):
            raise ValueError("duplicate id")  # checked before anything changes
        if self.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        need = self.size + len(ids)
        if need > len(self.ids):  # grow geometrically, copy the live rows
            cap = max(need, 2 * len(self.ids), 64)
            vectors_new = np.empty((cap, self.dimension), dtype=np.float32)
            ids_new = np.empty(cap, dtype=np.int64)
            vectors_new[: self.size], ids_new[: self.size] = (
                self.vectors[: self.size],
                self.ids[: self.size],
            )
            self.vectors, self.ids = vectors_new, ids_new
        self.vectors[self.size : need], self.ids[self.size : need] = vectors, ids
        for offset, i in enumerate(ids.tolist()):
            self.rows[i] = self.size + offset
        self.metadata.extend(metadata if metadata is not None else [None] * len(ids))
        self.size = need

    def remove(self, i: int) -> None:
        row = self.rows.pop(i, None)
        if row is None:
            return
        last = self.size - 1
        if row != last:  # move the last row into the hole
            self.vectors[row], self.ids[row] = self.vectors[last], self.ids[last]
            self.metadata[row] = self.metadata[last]
            self.rows[int(self.ids[row])] = row
        self.metadata.pop()
        self.size = last

    def distances(self, queries: np.ndarray) -> np.ndarray:
        rows = self.vectors[: self.size]
        if self.metric == "l2":
            d = (queries * queries).sum(1)[:, None] - 2 * queries @ rows.T + (rows * rows).sum(1)
            return np.maximum(d, 0).astype(np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(queries, axis=1, keepdims=True)
            queries = np.divide(queries, norms, out=np.zeros_like(queries), where=norms > 0)
        return (1.0 - queries @ rows.T).astype(np.float32)


class MyEngine(EngineBase):
    """The adapter: the `Engine` protocol over `BruteForceIndex` (delete, get and a filter too)."""

    name = "my-engine"
    metadata_filter = True  # search(filter={key: value}) keeps rows whose metadata match
    metrics = ("l2", "ip", "cosine")
    note = "brute-force NumPy example; clear drops the index, the next open builds a new one"

    def __init__(self, config: EngineConfig) -> None:
        if config.faults:
            raise EngineError(f"my-engine cannot inject faults {config.faults}")
        self.index: BruteForceIndex | None = None
        self.metric = "l2"

    def open(self, dimension: int, metric: str = "l2") -> None:
        if metric not in self.metrics:
            raise ValueError(f"unknown metric {metric!r}")
        if self.index is None or (self.index.dimension, self.index.metric) != (dimension, metric):
            self.index, self.metric = BruteForceIndex(int(dimension), metric), metric

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if self.index is None:
            self.open(vectors.shape[1], self.metric)
        assert self.index is not None
        if vectors.shape[1] != self.index.dimension:
            raise ValueError(f"dimension {vectors.shape[1]}, index has {self.index.dimension}")
        self.index.add(np.asarray(ids, dtype=np.int64), vectors, metadata)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dists = np.full((len(queries), k), np.inf, dtype=np.float32)
        if self.index is None or self.index.size == 0:
            return ids, dists
        d = self.index.distances(queries)
        if filter:
            keep = [
                m is not None and all(m.get(key) == v for key, v in filter.items())
                for m in self.index.metadata
            ]
            d[:, ~np.asarray(keep, dtype=bool)] = np.inf
        n = min(k, d.shape[1])
        top = np.argsort(d, axis=1, kind="stable")[:, :n]
        top_d = np.take_along_axis(d, top, axis=1)
        hit = np.isfinite(top_d)
        ids[:, :n] = np.where(hit, self.index.ids[top], -1)
        dists[:, :n] = np.where(hit, top_d, np.inf)
        return ids, dists

    def delete(self, ids: np.ndarray) -> None:
        if self.index is not None:
            for i in np.asarray(ids, dtype=np.int64).tolist():
                self.index.remove(i)

    def count(self) -> int:
        return 0 if self.index is None else self.index.size

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Optional: stored rows by id (the harness's `get` step; skipped when absent)."""
        if self.index is None:
            raise KeyError("no index open")
        rows = [self.index.rows[i] for i in np.asarray(ids, dtype=np.int64).tolist()]
        return self.index.vectors[rows].copy()

    def close(self) -> None:
        self.index = None  # also what clear() does: the next open may use another dimension


def make_engine(config: EngineConfig) -> MyEngine:
    """The factory the harness calls: `--engine memcycle.examples.my_engine:make_engine`."""
    return MyEngine(config)
