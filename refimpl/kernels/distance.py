"""Distance kernels over float32 rows.

Metric codes are small ints so kernels can branch without Python objects.
`cosine` is computed as `1 - dot` on rows the caller has already normalised;
`ip` is `1 - dot` on raw rows (hnswlib's convention), so smaller is closer for all.
"""

from __future__ import annotations

import numpy as np
from numba import njit

METRIC_L2 = 0
METRIC_IP = 1
METRIC_COSINE = 2

METRIC_CODES: dict[str, int] = {"l2": METRIC_L2, "ip": METRIC_IP, "cosine": METRIC_COSINE}


@njit(cache=True, fastmath=True, inline="always")
def l2sq(a: np.ndarray, b: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        d = a[i] - b[i]
        acc += d * d
    return acc


@njit(cache=True, fastmath=True, inline="always")
def dot(a: np.ndarray, b: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@njit(cache=True, fastmath=True, inline="always")
def distance(a: np.ndarray, b: np.ndarray, metric: int) -> np.float32:
    if metric == METRIC_L2:
        return l2sq(a, b)
    return np.float32(1.0) - dot(a, b)


@njit(cache=True, fastmath=True)
def normalize_rows(x: np.ndarray) -> None:
    """In place; a zero row stays zero."""
    for r in range(x.shape[0]):
        n = np.float32(0.0)
        for c in range(x.shape[1]):
            n += x[r, c] * x[r, c]
        if n > 0:
            inv = np.float32(1.0) / np.sqrt(n)
            for c in range(x.shape[1]):
                x[r, c] *= inv
