"""Seeded, deterministic data for each step: vectors, ids, metadata, queries.

Every draw is keyed by (seed, cycle, step, purpose), so a step's data does not
depend on what earlier steps did and a run can be replayed exactly. Vectors are
clustered (a mixture of Gaussians), which is what real embeddings look like and
what makes approximate search non-trivial.
"""

from __future__ import annotations

from typing import Any

import numpy as np

N_CLUSTERS = 32
CLUSTER_SPREAD = 0.35

_VECTORS, _QUERIES, _PICK, _META = 1, 2, 3, 4


class DataGen:
    """All the data of one run; `next_ids` hands out ids unique across the run."""

    def __init__(self, seed: int, metric: str = "l2") -> None:
        self.seed = int(seed)
        self.metric = metric
        self._next_id = 1
        self._centers: dict[int, np.ndarray] = {}

    def _rng(self, cycle: int, step: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, cycle, step, purpose])

    def centers(self, dim: int) -> np.ndarray:
        c = self._centers.get(dim)
        if c is None:
            c = np.random.default_rng([self.seed, dim, 99]).standard_normal((N_CLUSTERS, dim))
            self._centers[dim] = c
        return c

    def _clustered(self, rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
        centers = self.centers(dim)
        assign = rng.integers(0, N_CLUSTERS, size=n)
        x = centers[assign] + CLUSTER_SPREAD * rng.standard_normal((n, dim))
        return np.ascontiguousarray(x, dtype=np.float32)

    def vectors(self, n: int, dim: int, cycle: int, step: int) -> np.ndarray:
        """`(n, dim)` float32 rows for an insert step."""
        return self._clustered(self._rng(cycle, step, _VECTORS), n, dim)

    def queries(self, n: int, dim: int, cycle: int, step: int) -> np.ndarray:
        """`(n, dim)` float32 queries drawn from the same clusters as the data."""
        return self._clustered(self._rng(cycle, step, _QUERIES), n, dim)

    def next_ids(self, n: int) -> np.ndarray:
        """`n` fresh int64 ids, never handed out before in this run."""
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def pick(self, pool: np.ndarray, n: int, cycle: int, step: int) -> np.ndarray:
        """`min(n, len(pool))` distinct ids from `pool`, in a seeded order."""
        n = min(int(n), len(pool))
        if n == 0:
            return np.empty(0, dtype=np.int64)
        rng = self._rng(cycle, step, _PICK)
        return np.asarray(rng.choice(pool, size=n, replace=False), dtype=np.int64)

    def metadata(self, ids: np.ndarray, cycle: int) -> list[dict[str, Any]]:
        """Small scalar metadata per row; `tag` (id % 4) is what filters use."""
        return [{"tag": int(i % 4), "cycle": int(cycle), "even": bool(i % 2 == 0)} for i in ids]
