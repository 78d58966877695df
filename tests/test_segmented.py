"""SegmentedHNSW: parallel-built segments, fan-out search with merge, lifecycle."""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl.alloc import CheckedAllocator, NumpyAllocator
from memcycle.refimpl.errors import LifecycleError
from memcycle.refimpl.kernels.distance import METRIC_L2
from memcycle.refimpl.segmented import SegmentedHNSW


def clustered(n: int, dim: int, seed: int, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32) * 3
    return (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def exact(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def test_segments_built_in_parallel_and_merged() -> None:
    alloc = CheckedAllocator()
    x = clustered(4000, 16, seed=1)
    seg = SegmentedHNSW(alloc, 16, METRIC_L2, M=8, ef_construction=64, min_segment_size=1000)
    seg.add(x, np.arange(4000, dtype=np.int64) * 3, num_threads=2)
    assert len(seg) == 4000 and len(seg.segments) == 2
    labels_seen = {b.label.split(".")[1] for b in alloc.live()}
    assert labels_seen == {"0", "1"}
    assert all(b.label.startswith("segment.") for b in alloc.live())
    found, dist = seg.search(x[:100], 10, 64)
    assert recall(found, exact(x, x[:100], 10) * 3) >= 0.95
    assert np.all(np.diff(dist, axis=1) >= -1e-5)
    assert len(alloc.live()) == len(seg.blocks())


def test_later_batches_add_segments_and_deletes_are_skipped() -> None:
    x = clustered(3000, 8, seed=2)
    seg = SegmentedHNSW(NumpyAllocator(), 8, METRIC_L2, M=8, min_segment_size=500)
    seg.add(x[:2000], np.arange(2000, dtype=np.int64), num_threads=2)
    seg.add(x[2000:], np.arange(2000, 3000, dtype=np.int64), num_threads=1)
    assert len(seg.segments) == 3
    deleted = np.zeros(3000, np.uint8)
    deleted[:1500] = 1
    found, _ = seg.search(x[:20], 5, 64, deleted)
    assert np.all(found >= 1500)
    found, _ = seg.search(x[2990:], 1, 64)
    assert np.array_equal(found[:, 0], np.arange(2990, 3000))


def test_small_batch_is_one_segment_and_empty_search_is_padded() -> None:
    seg = SegmentedHNSW(NumpyAllocator(), 4, METRIC_L2, num_threads=2)
    labels, dist = seg.search(np.zeros((2, 4), np.float32), 3, 16)
    assert np.all(labels == -1) and np.all(np.isinf(dist))
    seg.add(clustered(100, 4, seed=0), np.arange(100, dtype=np.int64))
    assert len(seg.segments) == 1


def test_clear_and_destroy_free_every_block() -> None:
    alloc = CheckedAllocator()
    seg = SegmentedHNSW(alloc, 8, METRIC_L2, M=8, min_segment_size=200)
    for cycle in range(3):
        x = clustered(600, 8, seed=cycle)
        seg.add(x, np.arange(600, dtype=np.int64), num_threads=2)
        found, _ = seg.search(x[:5], 1, 32)
        assert np.array_equal(found[:, 0], np.arange(5))
        seg.clear()
        assert alloc.live() == [] and len(seg) == 0
        empty, _ = seg.search(x[:1], 1, 32)
        assert empty[0, 0] == -1
    seg.destroy()
    seg.destroy()
    with pytest.raises(LifecycleError):
        seg.search(np.zeros((1, 8), np.float32), 1, 16)
    alloc.verify()
