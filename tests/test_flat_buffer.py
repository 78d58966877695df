"""FlatBuffer and the exact scan kernels, against NumPy brute force."""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl.alloc import CheckedAllocator
from memcycle.refimpl.errors import BufferOverflowError, DoubleFreeError, LifecycleError
from memcycle.refimpl.flat_buffer import FlatBuffer
from memcycle.refimpl.kernels.distance import METRIC_CODES, normalize_rows


def brute(data: np.ndarray, labels: np.ndarray, q: np.ndarray, k: int, metric: str):
    d = ((data - q) ** 2).sum(1) if metric == "l2" else 1.0 - data @ q
    order = np.argsort(d, kind="stable")[:k]
    return labels[order], d[order]


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_search_matches_brute_force(metric: str) -> None:
    rng = np.random.default_rng(3)
    alloc = CheckedAllocator()
    fb = FlatBuffer(alloc, 12, 100)
    x = rng.standard_normal((80, 12)).astype(np.float32)
    if metric == "cosine":
        normalize_rows(x)
    slots = rng.permutation(1000)[:80].astype(np.int64)
    fb.append(x[:50], slots[:50])
    fb.append(x[50:], slots[50:])
    assert len(fb) == 80 and fb.room == 20
    qs = rng.standard_normal((5, 12)).astype(np.float32)
    if metric == "cosine":
        normalize_rows(qs)
    labels, dists = fb.search(qs, 7, METRIC_CODES[metric])
    for i in range(5):
        bl, bd = brute(x, slots, qs[i], 7, metric)
        assert labels[i].tolist() == bl.tolist()
        np.testing.assert_allclose(dists[i], bd, rtol=1e-4, atol=1e-4)


def test_padding_skip_and_seeds() -> None:
    alloc = CheckedAllocator()
    fb = FlatBuffer(alloc, 2, 10)
    fb.append(np.array([[0, 0], [1, 0], [5, 5]], np.float32), np.array([3, 4, 5], np.int64))
    q = np.zeros((1, 2), np.float32)
    labels, dists = fb.search(q, 5, 0)
    assert labels[0].tolist() == [3, 4, 5, -1, -1]
    assert np.isinf(dists[0, 3:]).all()
    skip = np.zeros(10, np.uint8)
    skip[3] = 1
    labels, _ = fb.search(q, 2, 0, skip)
    assert labels[0].tolist() == [4, 5]
    # seeds (graph results) merge with the flat rows; -1 seeds are ignored
    seed_l = np.array([[9, -1]], np.int64)
    seed_d = np.array([[0.5, np.inf]], np.float32)
    labels, dists = fb.search(q, 3, 0, None, seed_l, seed_d)
    assert labels[0].tolist() == [3, 9, 4]
    assert dists[0].tolist() == [0.0, 0.5, 1.0]


def test_remove_and_reset() -> None:
    alloc = CheckedAllocator()
    fb = FlatBuffer(alloc, 3, 8)
    x = np.arange(18, dtype=np.float32).reshape(6, 3)
    fb.append(x, np.arange(10, 16))
    assert fb.remove_slots(np.array([11, 14, 99], np.int64)) == 2
    assert sorted(fb.slots().tolist()) == [10, 12, 13, 15]
    for s, row in zip(fb.slots().tolist(), fb.rows(), strict=True):
        assert row.tolist() == x[s - 10].tolist()
    with pytest.raises(LifecycleError):
        fb.append(np.zeros((5, 3), np.float32), np.arange(5))
    fb.reset()
    assert len(fb) == 0 and fb.room == 8


def test_destroy_is_idempotent_and_free_is_not() -> None:
    alloc = CheckedAllocator()
    fb = FlatBuffer(alloc, 4, 4, label="f")
    assert sorted(b.label for b in alloc.live()) == ["f.ids", "f.vectors"]
    fb.destroy()
    fb.destroy()
    assert alloc.live() == [] and fb.destroyed
    fb2 = FlatBuffer(alloc, 4, 4)
    fb2.free()  # like UnsafePointer.free(): the handles stay ...
    assert alloc.live() == []
    with pytest.raises(DoubleFreeError):  # ... so a second free is a double free
        fb2.free()


def test_unchecked_append_writes_past_the_end() -> None:
    alloc = CheckedAllocator()
    fb = FlatBuffer(alloc, 4, 4)
    fb.append(np.ones((3, 4), np.float32), np.arange(3))
    with pytest.raises(BufferOverflowError, match="past the end"):
        fb.append_unchecked(np.ones((2, 4), np.float32), np.arange(2))
