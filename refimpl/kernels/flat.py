"""Exact top-k scans: the flat buffer's search and the filtered fallback.

Results go into caller-provided `(q, k)` arrays kept sorted by distance
(insertion into a short sorted list: k is small and most candidates lose to the
current k-th best at the first comparison). A scan can be seeded with results
from the graphs, so one pass merges flat rows with HNSW and segment hits.
Labels are slots (int64); -1 / +inf pad missing entries.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .distance import distance


@njit(cache=True, inline="always")
def _offer(out_labels: np.ndarray, out_dists: np.ndarray, qi: int, label: int, d: float) -> None:
    k = out_dists.shape[1]
    if not d < out_dists[qi, k - 1]:
        return
    j = k - 1
    while j > 0 and out_dists[qi, j - 1] > d:
        out_dists[qi, j] = out_dists[qi, j - 1]
        out_labels[qi, j] = out_labels[qi, j - 1]
        j -= 1
    out_dists[qi, j] = d
    out_labels[qi, j] = label


@njit(cache=True, inline="always")
def _seed(
    seed_labels: np.ndarray,
    seed_dists: np.ndarray,
    out_labels: np.ndarray,
    out_dists: np.ndarray,
    qi: int,
) -> None:
    for j in range(out_dists.shape[1]):
        out_dists[qi, j] = np.inf
        out_labels[qi, j] = -1
    for s in range(seed_labels.shape[1]):
        lab = seed_labels[qi, s]
        if lab >= 0:
            _offer(out_labels, out_dists, qi, lab, seed_dists[qi, s])


@njit(cache=True, fastmath=True)
def scan_rows(
    data: np.ndarray,
    labels: np.ndarray,
    n: int,
    queries: np.ndarray,
    metric: int,
    skip: np.ndarray,
    use_skip: bool,
    seed_labels: np.ndarray,
    seed_dists: np.ndarray,
    out_labels: np.ndarray,
    out_dists: np.ndarray,
) -> None:
    """Top-k over rows data[:n] (label labels[r]), merged with the seeds.

    `skip` is indexed by label (1 = leave out), read only when `use_skip`.
    """
    for qi in range(queries.shape[0]):
        _seed(seed_labels, seed_dists, out_labels, out_dists, qi)
        q = queries[qi]
        for r in range(n):
            lab = labels[r]
            if use_skip and skip[lab] != 0:
                continue
            d = distance(q, data[r], metric)
            _offer(out_labels, out_dists, qi, lab, d)


@njit(cache=True)
def all_finite(x: np.ndarray) -> bool:
    """True when no element of the 1-D float32 array `x` is NaN or infinite.

    Input validation for every insert and query: a dispatch plus one pass, where
    `np.isfinite(x).all()` allocates a mask and makes two NumPy calls.
    """
    for i in range(x.shape[0]):  # noqa: SIM110 (Numba compiles no generator inside all())
        if not np.isfinite(x[i]):
            return False
    return True
