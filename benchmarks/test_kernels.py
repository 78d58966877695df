"""pytest-benchmark suite for refimpl's kernels (figures, never assertions).

    pytest benchmarks/test_kernels.py --benchmark-only
    pytest benchmarks/test_kernels.py --benchmark-only --benchmark-save=before
    pytest benchmarks/test_kernels.py --benchmark-only --benchmark-compare=0001 \\
        --benchmark-compare-fail=median:10%

See benchmarks/README.md. Every data set is seeded; compilation happens in the
fixtures (warm-up), never inside a timed call.
"""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl.alloc import NumpyAllocator
from memcycle.refimpl.hnsw import HNSWIndex
from memcycle.refimpl.kernels.distance import METRIC_IP, METRIC_L2
from memcycle.refimpl.kernels.heap import topk_rows
from memcycle.refimpl.kernels.hnsw import dist_q
from memcycle.refimpl.segmented import SegmentedHNSW
from numba import njit

DIM = 128


def clustered(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim)).astype(np.float32)
    return (centres[rng.integers(0, 50, n)] + rng.normal(0, 1.0, (n, dim))).astype(np.float32)


@njit(cache=True, fastmath=True)
def _one_to_many(q: np.ndarray, rows: np.ndarray, metric: int, out: np.ndarray) -> None:
    for j in range(rows.shape[0]):
        out[j] = dist_q(q, rows, j, metric)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(20_000, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(100, seed=2)


@pytest.fixture(scope="module")
def index(data: np.ndarray) -> HNSWIndex:
    idx = HNSWIndex(NumpyAllocator(), DIM, METRIC_L2, len(data))
    idx.add(data, np.arange(len(data), dtype=np.int64))
    idx.search(data[:70], 10, 64, num_threads=2)  # compile the parallel search too
    return idx


# -- distances and heaps ------------------------------------------------------------------
@pytest.mark.parametrize("metric", [METRIC_L2, METRIC_IP], ids=["l2", "ip"])
def test_distance_one_to_10k(benchmark, data: np.ndarray, metric: int) -> None:
    rows = data[:10_000]
    out = np.empty(rows.shape[0], np.float32)
    _one_to_many(rows[0], rows, metric, out)
    benchmark(_one_to_many, rows[0], rows, metric, out)


def test_topk_100_rows_of_10k(benchmark) -> None:
    dist = np.random.default_rng(3).random((100, 10_000), dtype=np.float32)
    out_d = np.empty((100, 10), np.float32)
    out_i = np.empty((100, 10), np.int32)
    topk_rows(dist, 10, out_d, out_i)
    benchmark(topk_rows, dist, 10, out_d, out_i)


# -- flat scan (the engine helper's FlatBuffer) -------------------------------------------
def test_flat_scan_100_queries_1000_rows(benchmark, data: np.ndarray, queries: np.ndarray) -> None:
    flat_buffer = pytest.importorskip("refimpl.flat_buffer")
    buf = flat_buffer.FlatBuffer(NumpyAllocator(), DIM, 1000)
    buf.append(data[:1000], np.arange(1000, dtype=np.int64))
    buf.search(queries, 10, METRIC_L2)
    benchmark(buf.search, queries, 10, METRIC_L2)


# -- HNSW search ----------------------------------------------------------------------------
@pytest.mark.parametrize("ef", [16, 64, 128])
def test_hnsw_search_batch_100(benchmark, index: HNSWIndex, queries: np.ndarray, ef: int) -> None:
    benchmark(index.search, queries, 10, ef, num_threads=1)


def test_hnsw_search_batch_100_two_threads(
    benchmark, index: HNSWIndex, queries: np.ndarray
) -> None:
    benchmark(index.search, queries, 10, 64, num_threads=2)


def test_hnsw_search_one_query(benchmark, index: HNSWIndex, queries: np.ndarray) -> None:
    q = queries[0]
    benchmark(index.search, q, 10, 64)


# -- HNSW insert ----------------------------------------------------------------------------
def _fresh_index() -> tuple[tuple[HNSWIndex, np.ndarray, np.ndarray], dict]:
    return (HNSWIndex(NumpyAllocator(), DIM, METRIC_L2, 4000), _INSERT_ROWS, _INSERT_LABELS), {}


_INSERT_ROWS = clustered(4000, seed=4)
_INSERT_LABELS = np.arange(4000, dtype=np.int64)


@pytest.mark.parametrize("threads", [1, 2])
def test_hnsw_insert_4000(benchmark, threads: int) -> None:
    warm = HNSWIndex(NumpyAllocator(), DIM, METRIC_L2, 64)
    warm.add(_INSERT_ROWS[:2500], _INSERT_LABELS[:2500], num_threads=threads)

    def insert(idx: HNSWIndex, rows: np.ndarray, labels: np.ndarray) -> None:
        idx.add(rows, labels, num_threads=threads)

    benchmark.pedantic(insert, setup=_fresh_index, rounds=3, iterations=1)


def test_segmented_build_4000_two_segments(benchmark) -> None:
    def setup() -> tuple[tuple[SegmentedHNSW], dict]:
        return (SegmentedHNSW(NumpyAllocator(), DIM, METRIC_L2, min_segment_size=1000),), {}

    def build(seg: SegmentedHNSW) -> None:
        seg.add(_INSERT_ROWS, _INSERT_LABELS, num_threads=2)

    build(setup()[0][0])
    benchmark.pedantic(build, setup=setup, rounds=3, iterations=1)


# -- SparseMap (the engine helper's id map) -------------------------------------------------
_KEYS = np.random.default_rng(5).integers(0, 2**62, 20_000, dtype=np.int64)


def test_sparse_map_put_20k(benchmark) -> None:
    sparse_map = pytest.importorskip("refimpl.sparse_map")

    def setup() -> tuple[tuple, dict]:
        return (sparse_map.SparseMap(NumpyAllocator(), 64),), {}

    def put(m) -> None:  # type: ignore[no-untyped-def]
        m.put_many(_KEYS, np.arange(_KEYS.shape[0], dtype=np.int64))

    put(setup()[0][0])
    benchmark.pedantic(put, setup=setup, rounds=5, iterations=1)


def test_sparse_map_get_20k(benchmark) -> None:
    sparse_map = pytest.importorskip("refimpl.sparse_map")
    m = sparse_map.SparseMap(NumpyAllocator(), 64)
    m.put_many(_KEYS, np.arange(_KEYS.shape[0], dtype=np.int64))
    m.get_many(_KEYS)
    benchmark(m.get_many, _KEYS)
