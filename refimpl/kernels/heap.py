"""Binary heaps over preallocated flat arrays (distance float32, id int32).

HNSW search keeps two heaps per query: a min-heap of candidates still to expand
and a max-heap of the best `ef` results found so far. Kernels allocate the
arrays once per batch and pass them in, so the hot loop never allocates. Each
function takes the current size and returns the new one; index 0 is the top.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def max_push(dist: np.ndarray, ids: np.ndarray, size: int, d: np.float32, i: int) -> int:
    """Push (d, i) on a max-heap holding `size` items; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if dist[parent] >= d:
            break
        dist[pos] = dist[parent]
        ids[pos] = ids[parent]
        pos = parent
    dist[pos] = d
    ids[pos] = i
    return size + 1


@njit(cache=True)
def max_pop(dist: np.ndarray, ids: np.ndarray, size: int) -> int:
    """Remove the largest item (read it from index 0 first); returns the new size."""
    size -= 1
    if size <= 0:
        return 0
    d = dist[size]
    i = ids[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and dist[child + 1] > dist[child]:
            child += 1
        if dist[child] <= d:
            break
        dist[pos] = dist[child]
        ids[pos] = ids[child]
        pos = child
    dist[pos] = d
    ids[pos] = i
    return size


@njit(cache=True)
def max_replace_top(dist: np.ndarray, ids: np.ndarray, size: int, d: np.float32, i: int) -> None:
    """Replace the largest item by (d, i) and restore the heap (push+pop in one pass)."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and dist[child + 1] > dist[child]:
            child += 1
        if dist[child] <= d:
            break
        dist[pos] = dist[child]
        ids[pos] = ids[child]
        pos = child
    dist[pos] = d
    ids[pos] = i


@njit(cache=True)
def min_push(dist: np.ndarray, ids: np.ndarray, size: int, d: np.float32, i: int) -> int:
    """Push (d, i) on a min-heap holding `size` items; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if dist[parent] <= d:
            break
        dist[pos] = dist[parent]
        ids[pos] = ids[parent]
        pos = parent
    dist[pos] = d
    ids[pos] = i
    return size + 1


@njit(cache=True)
def min_pop(dist: np.ndarray, ids: np.ndarray, size: int) -> int:
    """Remove the smallest item (read it from index 0 first); returns the new size."""
    size -= 1
    if size <= 0:
        return 0
    d = dist[size]
    i = ids[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and dist[child + 1] < dist[child]:
            child += 1
        if dist[child] >= d:
            break
        dist[pos] = dist[child]
        ids[pos] = ids[child]
        pos = child
    dist[pos] = d
    ids[pos] = i
    return size


@njit(cache=True)
def max_heap_sorted(dist: np.ndarray, ids: np.ndarray, size: int) -> int:
    """Sort a max-heap in place into ascending distance order (heap sort); returns size."""
    n = size
    while n > 1:
        d = dist[0]
        i = ids[0]
        n = max_pop(dist, ids, n)
        dist[n] = d
        ids[n] = i
    return size


@njit(cache=True, fastmath=True)
def topk_rows(dist: np.ndarray, k: int, out_d: np.ndarray, out_i: np.ndarray) -> None:
    """Exact top-k (smallest) of each row of `dist` (q, n) into out (q, k), ascending.

    Rows with fewer than k entries are padded with +inf / -1.
    """
    q = dist.shape[0]
    n = dist.shape[1]
    hd = np.empty(k, np.float32)
    hi = np.empty(k, np.int32)
    for r in range(q):
        size = 0
        for j in range(n):
            d = dist[r, j]
            if size < k:
                size = max_push(hd, hi, size, d, j)
            elif d < hd[0]:
                max_replace_top(hd, hi, size, d, j)
        max_heap_sorted(hd, hi, size)
        for j in range(k):
            if j < size:
                out_d[r, j] = hd[j]
                out_i[r, j] = hi[j]
            else:
                out_d[r, j] = np.inf
                out_i[r, j] = -1
