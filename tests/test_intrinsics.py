"""The LLVM intrinsics under the HNSW kernels: an atomic counter and a prefetch."""

from __future__ import annotations

import numba
import numpy as np
from memcycle.refimpl.kernels.intrinsics import fetch_add, prefetch
from numba import njit, prange


@njit(cache=True, parallel=True)
def _take_all(counter: np.ndarray, taken: np.ndarray, workers: int) -> None:
    for _w in prange(workers):
        while True:
            a = fetch_add(counter, 1)
            if a >= taken.shape[0]:
                break
            taken[a] += 1


def test_fetch_add_hands_every_index_to_exactly_one_worker() -> None:
    """Two threads race on one counter: a non-atomic increment would hand out an index
    twice (or skip one) within a few thousand takes."""
    n = 200_000
    counter = np.zeros(1, np.int64)
    taken = np.zeros(n, np.int64)
    old = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        _take_all(counter, taken, 2)
    finally:
        numba.set_num_threads(old)
    assert np.all(taken == 1)
    assert counter[0] >= n  # each worker's last take overshoots once


@njit(cache=True)
def _sum_with_prefetch(x: np.ndarray) -> float:
    s = 0.0
    for i in range(x.shape[0]):
        if i + 1 < x.shape[0]:
            prefetch(x, i + 1, 0)
        s += x[i, 0]
    return s


def test_prefetch_changes_nothing_but_timing() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    assert _sum_with_prefetch(x) == float(x[:, 0].sum())
