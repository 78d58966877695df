"""The query plan: how a search is routed across the tiers, filtered and merged.

An unfiltered search asks each graph tier for its top-k and seeds the flat buffer's exact scan
with those hits (one merge, sorted); queries the graphs came back short for (many tombstones) are
redone exactly over every live row. A filter matching few rows is answered by an exact scan over
just those rows; a broad one searches the tiers with the rest masked out, and falls back to the
exact scan when the graphs return fewer than the filter matched. `_results` turns one query's
slots into `SearchResult`s.

`QueryPlan` is a part of `Database` (a base class holding these methods); the public `search`
and `search_batch` in `database.py` check their inputs and call it.
"""

from __future__ import annotations

from functools import partial
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from .errors import DimensionMismatchError, InvalidInputError
from .ids import Id
from .inputs import as_float32
from .kernels.distance import METRIC_COSINE, normalize_rows
from .kernels.flat import scan_rows
from .slots import LOC_ROW, LOC_SHIFT
from .tiers import TierRouting

_EXACT_FILTER_ROWS = 2048  # a filter matching at most this many rows is scanned exactly
_PARALLEL_QUERIES = 64
_NO_SKIP = np.zeros(1, np.uint8)


class SearchResult(NamedTuple):
    id: Id
    distance: float
    metadata: dict[str, Any] | None


# SearchResult from an (id, distance, metadata) tuple without a Python-level __new__
_new_result = partial(tuple.__new__, SearchResult)


class QueryPlan(TierRouting):
    """Top-k slots for a query matrix over every tier, with or without a metadata filter.
    Reads the rows through `TierRouting`; the attributes are set by `Database.__init__`."""

    _metric: int
    _ef_search: int

    def _query_matrix(self, vectors: Any, single: bool) -> np.ndarray:
        q = as_float32(vectors, "query")
        if single:
            if q.ndim != 1:
                raise InvalidInputError(
                    f"query must be 1-D (dimension,), got shape {q.shape}; "
                    f"use search_batch for many"
                )
            q = q.reshape(1, -1)
        elif q.ndim != 2 or q.shape[0] == 0:
            raise InvalidInputError(
                f"queries must be 2-D (q, dimension) with q >= 1, got shape {q.shape}"
            )
        if self.dimension is not None and q.shape[1] != self.dimension:
            raise DimensionMismatchError(
                f"query has dimension {q.shape[1]}, expected {self.dimension} "
                f"(the database's dimension)"
            )
        if self._metric == METRIC_COSINE:
            q = q.copy()
            normalize_rows(q)
        return q

    def _search_slots(
        self, q: np.ndarray, k: int, skip: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k slots over all tiers: graph results seed the exact flat scan."""
        ef = max(self._ef_search, k)
        # parallel search pays a thread start-up; worth it only for many queries
        threads = self.num_threads if q.shape[0] >= _PARALLEL_QUERIES else 1
        seeds = []
        hnsw = self._hnsw
        if hnsw is not None and len(hnsw):
            seeds.append(hnsw.search(q, k, ef, skip, num_threads=threads))
        seg = self._seg
        if seg is not None and len(seg):
            seeds.append(seg.search(q, k, ef, skip, num_threads=threads))
        flat = self._flat
        assert flat is not None
        if not seeds:
            return flat.search(q, k, self._metric, skip)
        if len(seeds) == 1:
            sl, sd = seeds[0]
            if not len(flat):
                return sl, sd  # one graph's top-k, already sorted and padded: the answer
        else:
            sl = np.concatenate([s[0] for s in seeds], axis=1)
            sd = np.concatenate([s[1] for s in seeds], axis=1)
        return self._flat.search(q, k, self._metric, skip, sl, sd)

    def _unfiltered(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over every live row; rows the graphs came back short for are redone exactly.

        With many tombstones a graph search can end with fewer than k live hits; the
        exact scan over the live slots is the answer the caller is owed then.
        """
        if not self._slots.n_deleted:
            return self._search_slots(q, k, None)
        labels, dists = self._search_slots(q, k, self._slots.deleted)
        want = min(k, len(self._meta))
        short = np.flatnonzero((labels >= 0).sum(axis=1) < want)
        if short.size:
            ex_l, ex_d = self._exact_live(q[short], k)
            labels[short] = ex_l
            dists[short] = ex_d
        return labels, dists

    def _exact_live(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over every live row: each tier scanned in place, tombstones skipped."""
        out_l = np.full((q.shape[0], k), -1, np.int64)
        out_d = np.full((q.shape[0], k), np.inf, np.float32)
        for tier in self._tiers():
            rows, slots = self._tier_rows(tier)
            if rows.shape[0]:
                seed_l, seed_d = out_l, out_d
                out_l = np.empty_like(seed_l)
                out_d = np.empty_like(seed_d)
                scan_rows(
                    rows,
                    slots,
                    rows.shape[0],
                    q,
                    self._metric,
                    self._slots.deleted,
                    True,
                    seed_l,
                    seed_d,
                    out_l,
                    out_d,
                )
        return out_l, out_d

    def _exact_over(
        self, q: np.ndarray, slots: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the given (sorted) slots: their rows gathered from the tiers."""
        loc = self._slots.loc[slots]
        tiers = loc >> LOC_SHIFT
        at = loc & LOC_ROW
        data = np.empty((slots.shape[0], self.dimension or 0), np.float32)
        found = np.zeros(slots.shape[0], np.bool_)
        for tier in np.unique(tiers[loc >= 0]).tolist():
            rows, _ = self._tier_rows(tier)
            sel = np.flatnonzero((loc >= 0) & (tiers == tier) & (at < rows.shape[0]))
            data[sel] = rows[at[sel]]
            found[sel] = True
        if not found.all():
            data, slots = data[found], slots[found]
        out_l = np.empty((q.shape[0], k), np.int64)
        out_d = np.empty((q.shape[0], k), np.float32)
        scan_rows(
            data,
            slots,
            data.shape[0],
            q,
            self._metric,
            _NO_SKIP,
            False,
            np.empty((q.shape[0], 0), np.int64),
            np.empty((q.shape[0], 0), np.float32),
            out_l,
            out_d,
        )
        return out_l, out_d

    def _filtered(
        self, q: np.ndarray, k: int, filter: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        match = self._meta.match(filter)
        if match.size <= _EXACT_FILTER_ROWS:
            return self._exact_over(q, match, k)
        skip = np.ones(self._slots.cap, np.uint8)
        skip[match] = 0
        labels, dists = self._search_slots(q, k, skip)
        if int((labels[0] >= 0).sum()) < min(k, match.size):
            return self._exact_over(q, match, k)
        return labels, dists

    def _results(self, labels: np.ndarray, dists: np.ndarray) -> list[SearchResult]:
        # one query's row: hits first (sorted), then -1 padding; plain-list work is the
        # cheapest here (a few numpy calls would cost more than the whole conversion)
        slots = labels.tolist()
        n = slots.index(-1) if -1 in slots else len(slots)
        del slots[n:]
        if self._obj_ids is None:
            ids: list[Id] = self._slots.sid.take(labels[:n]).tolist()
        else:
            ids = [self._obj_ids[s] for s in slots]
        d = dists.tolist()[:n]
        if self._meta.has_metadata:
            get = self._meta.get_metadata
            return list(map(_new_result, zip(ids, d, map(get, slots), strict=True)))
        return list(map(_new_result, zip(ids, d, repeat(None, n), strict=True)))
