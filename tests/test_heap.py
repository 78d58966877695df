"""Packed (distance, id) keys and the heaps built on them."""

from __future__ import annotations

import numpy as np
from memcycle.refimpl.kernels.heap import (
    key_dist,
    key_id,
    max_push,
    max_replace_top,
    min_pop,
    min_push,
    pack,
    topk_rows,
    unpack_sorted,
)
from numba import njit


@njit(cache=True)
def _pack_all(d: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
    for a in range(d.shape[0]):
        out[a] = pack(d[a], ids[a])


@njit(cache=True)
def _unpack_all(keys: np.ndarray, out_d: np.ndarray, out_i: np.ndarray) -> None:
    for a in range(keys.shape[0]):
        out_d[a] = key_dist(keys[a])
        out_i[a] = key_id(keys[a])


def _distances() -> np.ndarray:
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-38, -1e-38, 3.4e38, -3.4e38], np.float32)
    return np.concatenate([special, rng.normal(0, 10, 500).astype(np.float32)])


def test_keys_sort_as_distance_then_id_and_unpack_exactly() -> None:
    d = np.repeat(_distances(), 2)  # every distance twice, to check the id tie-break
    ids = np.random.default_rng(6).permutation(d.size).astype(np.int64)
    keys = np.empty(d.size, np.uint64)
    _pack_all(d, ids, keys)
    by_key = np.argsort(keys, kind="stable")
    by_pair = np.lexsort((ids, d))
    np.testing.assert_array_equal(d[by_key], d[by_pair])  # by value (-0.0 == 0.0 here)
    bits = d.view(np.uint32)[by_key]
    ties = bits[1:] == bits[:-1]
    assert np.all(ids[by_key][1:][ties] > ids[by_key][:-1][ties])  # equal distances: lower id first
    out_d = np.empty(d.size, np.float32)
    out_i = np.empty(d.size, np.int64)
    _unpack_all(keys, out_d, out_i)
    np.testing.assert_array_equal(out_d.view(np.uint32), d.view(np.uint32))  # bit-exact, -0.0 too
    np.testing.assert_array_equal(out_i, ids)


@njit(cache=True)
def _heap_drain(keys: np.ndarray, out_min: np.ndarray, out_max: np.ndarray, k: int) -> int:
    h = np.empty(keys.shape[0] + 1, np.uint64)
    size = 0
    for a in range(keys.shape[0]):
        size = min_push(h, size, keys[a])
    for a in range(keys.shape[0]):
        out_min[a] = h[0]
        size = min_pop(h, size)
    top = np.empty(k + 1, np.uint64)
    size = 0
    for a in range(keys.shape[0]):
        if size < k:
            size = max_push(top, size, keys[a])
        elif keys[a] < top[0]:
            max_replace_top(top, size, keys[a])
    for a in range(size):
        out_max[a] = top[a]
    return size


def test_min_heap_pops_in_order_and_max_heap_keeps_the_k_smallest() -> None:
    d = _distances()
    keys = np.empty(d.size, np.uint64)
    _pack_all(d, np.arange(d.size, dtype=np.int64), keys)
    out_min = np.empty(d.size, np.uint64)
    out_max = np.empty(d.size, np.uint64)
    size = _heap_drain(keys, out_min, out_max, 17)
    np.testing.assert_array_equal(out_min, np.sort(keys))
    assert size == 17
    top_d = np.empty(size, np.float32)
    top_i = np.empty(size, np.int64)
    unpack_sorted(out_max[:size].copy(), size, top_d, top_i)
    np.testing.assert_array_equal(top_i, np.argsort(keys)[:17])


def test_topk_rows_matches_a_stable_argsort_and_pads_short_rows() -> None:
    rng = np.random.default_rng(7)
    dist = rng.random((20, 300), dtype=np.float32)
    dist[3, 10:20] = dist[3, 9]  # ties: the lower column wins
    out_d = np.empty((20, 10), np.float32)
    out_i = np.empty((20, 10), np.int64)
    topk_rows(dist, 10, out_d, out_i)
    want = np.argsort(dist, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(out_i, want)
    np.testing.assert_array_equal(out_d, np.take_along_axis(dist, want, axis=1))
    short_d = np.empty((2, 10), np.float32)
    short_i = np.empty((2, 10), np.int64)
    topk_rows(dist[:2, :4], 10, short_d, short_i)
    assert np.all(short_i[:, 4:] == -1) and np.all(np.isinf(short_d[:, 4:]))
