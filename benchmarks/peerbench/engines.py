"""One small class per engine, all on `Engine`: build, set ef, search batched and
one query at a time, memory. Every engine is built with M=16 (hnswlib's meaning:
2M links on layer 0), ef_construction=200, L2, and searched on one thread."""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import numpy as np

from .datasets import K

M = 16
EF_CONSTRUCTION = 200


class Engine:
    """The base: a subclass names its package (`module`, for the availability check)."""

    name: ClassVar[str] = "?"
    module: ClassVar[str | None] = None  # the import that must work; None: always there
    memory_kind: ClassVar[str] = "RSS growth"

    @classmethod
    def available(cls) -> bool:
        return cls.module is None or importlib.util.find_spec(cls.module) is not None

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def build(self, x: np.ndarray, threads: int) -> None:
        raise NotImplementedError

    def set_ef(self, ef: int) -> None:
        raise NotImplementedError

    def batch(self, q: np.ndarray) -> np.ndarray:
        """Row ids (int64, (len(q), K)) of the K nearest, on one thread."""
        raise NotImplementedError

    def one(self, v: np.ndarray) -> np.ndarray:
        """Row ids (int64, (K,)) for one query vector."""
        raise NotImplementedError

    def memory(self) -> int | None:
        """Bytes the engine accounts for itself, if it can (else RSS growth is used)."""
        return None


class Refimpl(Engine):
    """The kernel: refimpl.hnsw.HNSWIndex (no DB on top)."""

    name = "refimpl"
    memory_kind = "allocator bytes"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        from memcycle.refimpl.alloc import NumpyAllocator
        from memcycle.refimpl.hnsw import HNSWIndex

        self.alloc = NumpyAllocator()
        warm = HNSWIndex(NumpyAllocator(), dim, 0, 64)  # load/compile the kernels first
        rows = np.random.default_rng(0).normal(size=(300, dim)).astype(np.float32)
        warm.add(rows, np.arange(300, dtype=np.int64))
        warm.search(rows[:70], K, 16)
        warm.search(rows[:70], K, 16, num_threads=2)
        self.index = HNSWIndex(self.alloc, dim, 0, 64, M=M, ef_construction=EF_CONSTRUCTION)
        self.ef = 64

    def build(self, x: np.ndarray, threads: int) -> None:
        self.index.add(x, np.arange(x.shape[0], dtype=np.int64), num_threads=threads)

    def set_ef(self, ef: int) -> None:
        self.ef = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q, K, self.ef, num_threads=1)[0]

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.search(v.reshape(1, -1), K, self.ef, num_threads=1)[0][0]

    def memory(self) -> int:
        return self.alloc.stats().live_bytes


class RefimplDB(Engine):
    """The user API: refimpl.DB (flat buffer + graphs + id/metadata maps)."""

    name = "refimpl-db"
    memory_kind = "allocator bytes"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        from memcycle.refimpl import DB

        self.DB = DB
        warm = DB(dim, buffer_size=50, segment_threshold=200, num_threads=2)
        rows = np.random.default_rng(0).normal(size=(400, dim)).astype(np.float32)
        warm.add_batch(rows[:100])
        warm.add_batch(rows[100:])
        warm.search(rows[0], limit=K)
        warm.search_batch(rows[:70], limit=K)
        warm.close()
        self.db: Any = None
        self.ef = 64

    def build(self, x: np.ndarray, threads: int) -> None:
        self.db = self.DB(x.shape[1], M=M, ef_construction=EF_CONSTRUCTION, num_threads=threads)
        self.db.add_batch(x, ids=np.arange(x.shape[0], dtype=np.int64))
        self.db.num_threads = 1  # search is measured single-threaded

    def set_ef(self, ef: int) -> None:
        self.db.ef_search = ef
        self.ef = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.db.search_batch(q, limit=K)[0]

    def kernel_one(self, v: np.ndarray) -> None:
        """The graph search under DB.search, called directly (private access, benchmark only)."""
        graph = self.db._seg if len(self.db._seg) else self.db._hnsw
        graph.search(v.reshape(1, -1), K, self.ef, num_threads=1)

    def one(self, v: np.ndarray) -> np.ndarray:
        return np.array([r.id for r in self.db.search(v, limit=K)], np.int64)

    def memory(self) -> int:
        return self.db.allocator.stats().live_bytes


class Hnswlib(Engine):
    name = "hnswlib"
    module = "hnswlib"

    def build(self, x: np.ndarray, threads: int) -> None:
        import hnswlib

        self.index = hnswlib.Index("l2", self.dim)
        self.index.init_index(x.shape[0], M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        self.index.set_num_threads(threads)
        self.index.add_items(x, np.arange(x.shape[0]))
        self.index.set_num_threads(1)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.knn_query(q, K)[0].astype(np.int64)

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.knn_query(v.reshape(1, -1), K)[0][0].astype(np.int64)


class Faiss(Engine):
    """faiss IndexHNSWFlat (its M is hnswlib's: 2M links on layer 0)."""

    name = "faiss"
    module = "faiss"

    def build(self, x: np.ndarray, threads: int) -> None:
        import faiss

        self.faiss = faiss
        faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexHNSWFlat(self.dim, M)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(x)
        faiss.omp_set_num_threads(1)

    def set_ef(self, ef: int) -> None:
        self.index.hnsw.efSearch = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q, K)[1].astype(np.int64)

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.search(v.reshape(1, -1), K)[1][0].astype(np.int64)


class Usearch(Engine):
    """usearch's HNSW (`connectivity` is M; layer 0 keeps 2M, as hnswlib), float32, l2sq."""

    name = "usearch"
    module = "usearch"

    def build(self, x: np.ndarray, threads: int) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=self.dim,
            metric="l2sq",
            dtype="f32",
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
            expansion_search=64,
        )
        self.index.add(np.arange(x.shape[0], dtype=np.uint64), x, threads=threads)

    def set_ef(self, ef: int) -> None:
        self.index.expansion_search = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q, K, threads=1).keys.astype(np.int64)

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.search(v, K, threads=1).keys.astype(np.int64)


class Glass(Engine):
    """glass (zilliztech/pyglass, imported as `glass`): HNSW with R=2M links, L=200; the
    walk on 8-bit codes (SQ8U) re-ranked in float32, as its ann-benchmarks entry runs.
    `glassppy` ships only cp310 wheels; on Python 3.11 `pyglass-portable` provides it."""

    name = "glass"
    module = "glass"

    def build(self, x: np.ndarray, threads: int) -> None:
        import glass

        glass.set_num_threads(threads)
        graph = glass.Index("HNSW", "L2", R=2 * M, L=EF_CONSTRUCTION).build(x)
        self.searcher = glass.Searcher(graph, x, "L2", "SQ8U", "FP32")
        self.searcher.set_ef(64)
        self.searcher.optimize(1)
        glass.set_num_threads(1)

    def set_ef(self, ef: int) -> None:
        self.searcher.set_ef(ef)

    def batch(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(self.searcher.batch_search(q, K, 1)[0], np.int64)

    def one(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(self.searcher.search(v, K)[0], np.int64)


ENGINES: dict[str, type[Engine]] = {
    cls.name: cls for cls in (Refimpl, RefimplDB, Hnswlib, Faiss, Usearch, Glass)
}
