"""HNSWIndex: recall against brute force, deletes, growth, lifecycle of its blocks."""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl.alloc import CheckedAllocator, NumpyAllocator
from memcycle.refimpl.errors import InvalidInputError, LifecycleError
from memcycle.refimpl.hnsw import HNSWIndex
from memcycle.refimpl.kernels.distance import METRIC_COSINE, METRIC_IP, METRIC_L2, normalize_rows


def clustered(n: int, dim: int, seed: int, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32) * 3
    return (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def exact(x: np.ndarray, q: np.ndarray, k: int, metric: int) -> np.ndarray:
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1) if metric == METRIC_L2 else 1.0 - q @ x.T
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("metric", [METRIC_L2, METRIC_IP, METRIC_COSINE])
def test_recall_against_brute_force(metric: int) -> None:
    x = clustered(3000, 24, seed=1)
    q = clustered(100, 24, seed=2)
    if metric != METRIC_L2:  # inner product on raw rows is not a metric; HNSW needs near-unit rows
        normalize_rows(x)
        normalize_rows(q)
    idx = HNSWIndex(NumpyAllocator(), 24, metric, capacity=64, M=8, ef_construction=64)
    idx.add(x, np.arange(3000, dtype=np.int64) + 1000)
    labels, dist = idx.search(q, 10, 64)
    truth = exact(x, q, 10, metric) + 1000
    assert recall(labels, truth) >= 0.9
    assert labels.dtype == np.int64 and dist.dtype == np.float32
    assert np.all(np.diff(dist, axis=1) >= -1e-5)  # ascending
    assert len(idx) == 3000 and idx.capacity >= 3000


def test_distances_are_the_metric() -> None:
    x = clustered(500, 8, seed=3)
    idx = HNSWIndex(NumpyAllocator(), 8, METRIC_L2, M=8)
    idx.add(x, np.arange(500, dtype=np.int64))
    labels, dist = idx.search(x[:5], 3, 32)
    assert np.array_equal(labels[:, 0], np.arange(5))
    for r in range(5):
        want = ((x[labels[r]] - x[r]) ** 2).sum(-1)
        np.testing.assert_allclose(dist[r], want, rtol=1e-4, atol=1e-4)


def test_deleted_labels_are_skipped_but_traversed() -> None:
    x = clustered(2000, 16, seed=4)
    idx = HNSWIndex(NumpyAllocator(), 16, METRIC_L2, M=8, ef_construction=64)
    idx.add(x, np.arange(2000, dtype=np.int64))
    deleted = np.zeros(2000, np.uint8)
    deleted[::2] = 1  # half the graph, including most entry paths
    labels, _ = idx.search(x[:50], 10, 64, deleted)
    assert np.all(labels % 2 == 1)
    truth = exact(x[1::2], x[:50], 10, METRIC_L2) * 2 + 1
    assert recall(labels, truth) >= 0.9


def test_padding_when_fewer_than_k() -> None:
    idx = HNSWIndex(NumpyAllocator(), 4, METRIC_L2)
    empty_l, empty_d = idx.search(np.zeros((2, 4), np.float32), 3, 16)
    assert np.all(empty_l == -1) and np.all(np.isinf(empty_d))
    idx.add(np.eye(4, dtype=np.float32)[:2], np.array([7, 9], np.int64))
    labels, dist = idx.search(np.zeros((1, 4), np.float32), 5, 16)
    assert sorted(labels[0, :2]) == [7, 9]
    assert np.all(labels[0, 2:] == -1) and np.all(np.isinf(dist[0, 2:]))


def test_incremental_adds_grow_by_resize_and_keep_recall() -> None:
    alloc = CheckedAllocator()
    x = clustered(2500, 16, seed=5)
    idx = HNSWIndex(alloc, 16, METRIC_L2, capacity=100, M=8, ef_construction=64)
    for lo in range(0, 2500, 300):
        idx.add(x[lo : lo + 300], np.arange(lo, min(lo + 300, 2500), dtype=np.int64))
    assert len(idx) == 2500 and idx.capacity >= 2500
    assert idx.visited_size == idx.capacity
    labels, _ = idx.search(x[:100], 10, 64)
    assert recall(labels, exact(x, x[:100], 10, METRIC_L2)) >= 0.9
    alloc.verify()  # no guard zone damaged
    live = {b.label for b in alloc.live()}
    assert {"hnsw.vectors", "hnsw.level0", "hnsw.upper", "hnsw.visited"} <= live
    assert len(alloc.live()) == len(idx.blocks())


def test_parallel_batch_search_matches_serial() -> None:
    x = clustered(2000, 16, seed=6)
    idx = HNSWIndex(NumpyAllocator(), 16, METRIC_L2, M=8, ef_construction=64)
    idx.add(x, np.arange(2000, dtype=np.int64))
    a = idx.search(x[:64], 10, 48)
    b = idx.search(x[:64], 10, 48, num_threads=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_clear_frees_everything_and_allows_another_cycle() -> None:
    alloc = CheckedAllocator()
    idx = HNSWIndex(alloc, 8, METRIC_L2, capacity=16)
    for cycle in range(3):
        n = 200 * (cycle + 1)
        x = clustered(n, 8, seed=cycle)
        idx.add(x, np.arange(n, dtype=np.int64))
        labels, _ = idx.search(x[:3], 1, 32)
        assert np.array_equal(labels[:, 0], np.arange(3))
        idx.clear()
        assert alloc.live() == [] and len(idx) == 0 and idx.visited_size == 0
        idx.clear()  # idempotent
    alloc.verify()


def test_destroy_is_idempotent_and_final() -> None:
    alloc = CheckedAllocator()
    idx = HNSWIndex(alloc, 8, METRIC_L2)
    idx.add(clustered(50, 8, seed=0), np.arange(50, dtype=np.int64))
    idx.destroy()
    idx.destroy()
    assert alloc.live() == [] and idx.blocks() == []
    with pytest.raises(LifecycleError):
        idx.add(clustered(5, 8, seed=0), np.arange(5, dtype=np.int64))
    with pytest.raises(LifecycleError):
        idx.search(np.zeros((1, 8), np.float32), 1, 16)


def test_bad_shapes_are_refused_without_change() -> None:
    idx = HNSWIndex(NumpyAllocator(), 8, METRIC_L2)
    with pytest.raises(InvalidInputError):
        idx.add(np.zeros((3, 7), np.float32), np.arange(3, dtype=np.int64))
    with pytest.raises(InvalidInputError):
        idx.add(np.zeros((3, 8), np.float32), np.arange(2, dtype=np.int64))
    with pytest.raises(InvalidInputError):
        idx.search(np.zeros((1, 8), np.float32), 0, 16)
    assert len(idx) == 0


def test_resize_keeps_graph_and_refuses_shrinking_below_count() -> None:
    alloc = CheckedAllocator()
    x = clustered(300, 8, seed=9)
    idx = HNSWIndex(alloc, 8, METRIC_L2, capacity=300, M=8)
    idx.add(x, np.arange(300, dtype=np.int64))
    before = idx.search(x[:20], 5, 32)
    idx.resize(1000)
    assert idx.capacity == 1000 and idx.visited_size == 1000
    after = idx.search(x[:20], 5, 32)
    np.testing.assert_array_equal(before[0], after[0])
    with pytest.raises(InvalidInputError):
        idx.resize(10)
    assert len(alloc.live()) == len(idx.blocks())


def test_visited_tags_survive_wraparound() -> None:
    idx = HNSWIndex(NumpyAllocator(), 4, METRIC_L2, M=4, ef_construction=16)
    x = clustered(200, 4, seed=11)
    idx.add(x, np.arange(200, dtype=np.int64))
    state = idx._state_arr()
    state[4] = 65530  # six searches from the wrap
    labels, _ = idx.search(np.repeat(x[:1], 20, axis=0), 1, 16)
    assert np.all(labels[:, 0] == 0)
    assert 0 < state[4] < 65530


def test_parallel_build_keeps_recall_and_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    import memcycle.refimpl.hnsw as hnsw_mod

    monkeypatch.setattr(hnsw_mod, "PARALLEL_WARMUP", 200)
    monkeypatch.setattr(hnsw_mod, "PARALLEL_BATCH", 64)
    x = clustered(2500, 16, seed=12)
    graphs = []
    for _ in range(2):
        alloc = CheckedAllocator()
        idx = HNSWIndex(alloc, 16, METRIC_L2, M=8, ef_construction=64)
        idx.add(x[:1000], np.arange(1000, dtype=np.int64), num_threads=2)
        idx.add(x[1000:], np.arange(1000, 2500, dtype=np.int64), num_threads=2)
        labels, _ = idx.search(x[:100], 10, 64)
        assert recall(labels, exact(x, x[:100], 10, METRIC_L2)) >= 0.9
        assert idx._visited_rows >= min(2, hnsw_mod.numba.config.NUMBA_NUM_THREADS)
        alloc.verify()
        graphs.append(idx._level0.array[: len(idx)].copy())
    np.testing.assert_array_equal(graphs[0], graphs[1])  # no dependence on thread timing
    assert np.all(graphs[0][:, 0] > 0)  # every node linked


@pytest.mark.skipif(
    __import__("numba").config.DISABLE_JIT, reason="without the JIT nothing is compiled"
)
def test_no_kernel_is_compiled_as_a_parfor_so_a_first_run_compiles_in_seconds() -> None:
    """`parallel=True` kernels cost most of a cold cache's compile (29.5 -> 11.9 s for the
    warm-up when the parallel insert moved to Python threads, docs/speed.md); the threads now
    come from refimpl/hnsw.py, so no kernel may ask Numba for a parfor again."""
    import importlib
    import pkgutil

    import memcycle.refimpl.kernels as kernels
    from numba.core.registry import CPUDispatcher

    seen = 0
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                seen += 1
                assert not obj.targetoptions.get("parallel"), f"{info.name}.{name} is a parfor"
    assert seen >= 20  # the kernels were found at all


def test_the_threaded_insert_and_search_match_the_serial_kernels_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch search split over threads returns exactly the one-thread answer, and the
    threaded insert's graph does not depend on which thread took which node."""
    import memcycle.refimpl.hnsw as hnsw_mod

    monkeypatch.setattr(hnsw_mod, "PARALLEL_WARMUP", 100)
    monkeypatch.setattr(hnsw_mod, "PARALLEL_BATCH", 32)
    x = clustered(1500, 16, seed=21)
    idx = HNSWIndex(CheckedAllocator(), 16, METRIC_L2, M=8, ef_construction=48)
    idx.add(x, np.arange(1500, dtype=np.int64), num_threads=2)
    one = idx.search(x[:200], 10, 48, num_threads=1)
    two = idx.search(x[:200], 10, 48, num_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    again = HNSWIndex(CheckedAllocator(), 16, METRIC_L2, M=8, ef_construction=48)
    again.add(x, np.arange(1500, dtype=np.int64), num_threads=2)
    np.testing.assert_array_equal(idx._level0.array[:1500], again._level0.array[:1500])
