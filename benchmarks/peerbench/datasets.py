"""Data sets of the peer benchmark: each deterministic, none downloaded at run time.

- `own`: the project's generator (100 clusters, each centre + its own rank-8
  covariance, with isotropic noise that dominates: nearly full-rank, hard).
- `lowrank`: a low-rank Gaussian mixture (clusters of unequal size and spread,
  each living near its own 12-dimensional subspace, little noise): a low intrinsic
  dimension, as real embeddings have; the kind of set the build lead of the
  project's own benchmark did not hold on (issue 17).
- `digits`: scikit-learn's bundled handwritten digits (1,797 x 64, shipped inside
  the package, `sklearn.datasets.load_digits`): a small real set; the last
  `queries` rows are held out as queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

K = 10


@dataclass(frozen=True)
class Dataset:
    """Base rows, queries and their exact top-K (row ids of `x`)."""

    name: str
    x: np.ndarray
    q: np.ndarray
    gt: np.ndarray
    note: str


def own_mixture(n: int, nq: int, dim: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture: 100 clusters, each centre + its own rank-8 covariance + noise."""
    rng = np.random.default_rng(seed)
    clusters, rank = 100, 8
    centres = rng.normal(0.0, 1.0, (clusters, dim)).astype(np.float32)
    factors = rng.normal(0.0, 0.4, (clusters, dim, rank)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        c = rng.integers(0, clusters, count)
        z = rng.normal(0.0, 1.0, (count, rank)).astype(np.float32)
        low_rank = np.einsum("ndr,nr->nd", factors[c], z)
        noise = rng.normal(0.0, 1.5, (count, dim)).astype(np.float32)
        return np.ascontiguousarray(centres[c] + low_rank + noise, dtype=np.float32)

    return draw(n), draw(nq)


def lowrank_mixture(n: int, nq: int, dim: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """40 clusters of Zipf-like sizes; cluster c is centre_c + U_c diag(s_c) z + small noise,
    with U_c an orthonormal dim x 12 basis and s_c decaying spreads."""
    rng = np.random.default_rng(seed)
    clusters, rank = 40, 12
    centres = rng.normal(0.0, 3.0, (clusters, dim)).astype(np.float32)
    bases = np.linalg.qr(rng.normal(size=(clusters, dim, rank)))[0].astype(np.float32)
    spreads = (rng.uniform(1.0, 3.0, (clusters, 1)) * 0.8 ** np.arange(rank)).astype(np.float32)
    weights = 1.0 / np.arange(1, clusters + 1)
    weights /= weights.sum()

    def draw(count: int) -> np.ndarray:
        c = rng.choice(clusters, count, p=weights)
        z = rng.normal(0.0, 1.0, (count, rank)).astype(np.float32) * spreads[c]
        on_plane = np.einsum("ndr,nr->nd", bases[c], z)
        noise = rng.normal(0.0, 0.05, (count, dim)).astype(np.float32)
        return np.ascontiguousarray(centres[c] + on_plane + noise, dtype=np.float32)

    return draw(n), draw(nq)


def digits(nq: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (no download): base rows, then the last `nq` as queries."""
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float32)
    nq = min(nq, data.shape[0] // 5)
    return np.ascontiguousarray(data[:-nq]), np.ascontiguousarray(data[-nq:])


def ground_truth(x: np.ndarray, q: np.ndarray, k: int = K, chunk: int = 100) -> np.ndarray:
    """Exact top-k by squared L2, in float64, a chunk of queries at a time."""
    x64 = x.astype(np.float64)
    xx = np.einsum("ij,ij->i", x64, x64)
    out = np.empty((q.shape[0], k), np.int64)
    for lo in range(0, q.shape[0], chunk):
        qc = q[lo : lo + chunk].astype(np.float64)
        d = xx[None, :] - 2.0 * qc @ x64.T
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
        out[lo : lo + chunk] = np.take_along_axis(part, order, 1)
    return out


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k found among its first k answers."""
    k = truth.shape[1]
    hits = sum(
        len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / (truth.shape[0] * k)


_MAKERS: dict[str, tuple[Callable[[int, int, int], tuple[np.ndarray, np.ndarray]], str]] = {
    "own": (own_mixture, "the project's generator: 100 clusters, rank-8 covariance, noise 1.5"),
    "lowrank": (lowrank_mixture, "low-rank mixture: 40 Zipf-sized clusters on rank-12 planes"),
    "digits": (lambda n, nq, dim: digits(nq), "scikit-learn digits (bundled), 64 dims, real"),
}
NAMES = tuple(_MAKERS)


def load(name: str, n: int, nq: int, dim: int) -> Dataset:
    """The data set `name` (`n`, `dim` apply to the generated ones) with its ground truth."""
    if name not in _MAKERS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(NAMES)}")
    make, note = _MAKERS[name]
    x, q = make(n, nq, dim)
    return Dataset(name, x, q, ground_truth(x, q), note)
