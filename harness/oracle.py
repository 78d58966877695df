"""Exact model of what the engine should hold and return.

The oracle mirrors every insert, delete and clear, computes exact brute-force
top-k in float64, and judges an engine's answer: recall (ties counted as hits),
ids that should not exist any more (stale after a delete or a clear), duplicate
ids in one answer, and rows whose stored vector differs from what was inserted.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def distances(metric: str, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`(q, n)` float64 distances, smaller is closer (l2 squared, -dot, 1 - cosine)."""
    q = np.asarray(queries, dtype=np.float64)
    x = np.asarray(rows, dtype=np.float64)
    if metric == "l2":
        d = (q * q).sum(1)[:, None] - 2.0 * q @ x.T + (x * x).sum(1)[None, :]
        return np.maximum(d, 0.0)
    if metric == "ip":
        return -(q @ x.T)
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return 1.0 - qn @ xn.T
    raise ValueError(f"unknown metric {metric!r}")


def pair_distances(metric: str, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row-wise float64 distances of `q[j]` to `x[j]` (the diagonal of `distances(q, x)`)."""
    q = np.asarray(q, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if metric == "l2":
        d = (q * q).sum(1) - 2.0 * np.einsum("ij,ij->i", q, x) + (x * x).sum(1)
        return np.maximum(d, 0.0)
    if metric == "ip":
        return -np.einsum("ij,ij->i", q, x)
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return 1.0 - np.einsum("ij,ij->i", qn, xn)
    raise ValueError(f"unknown metric {metric!r}")


def _matches(meta: dict[str, Any] | None, flt: dict[str, Any] | None) -> bool:
    if not flt:
        return True
    return meta is not None and all(meta.get(k) == v for k, v in flt.items())


def answer_violations(ids: Any, dists: Any, q: int, k: int) -> list[str]:
    """How a search answer breaks the protocol, one line each (empty when it keeps it).

    The protocol: ids integer `(q, k)`, padded with -1 only after the hits; distances `(q, k)`,
    finite for every hit and non-decreasing along a row (nearest first). An engine that returns
    k+5 columns, float ids, NaN distances or farthest-first rows must not be judged clean.
    """
    out: list[str] = []
    try:
        got_ids = np.asarray(ids)
        got_d = np.asarray(dists)
    except Exception as exc:  # ragged or odd objects
        return [f"answer is not an array pair: {type(exc).__name__}: {exc}"]
    if got_ids.shape != (q, k):
        out.append(f"ids have shape {got_ids.shape}, expected ({q}, {k})")
    if got_d.shape != (q, k):
        out.append(f"distances have shape {got_d.shape}, expected ({q}, {k})")
    if out:
        return out
    if got_ids.dtype.kind not in "iu":
        out.append(f"ids have dtype {got_ids.dtype}, expected integers")
        return out
    hit = got_ids >= 0
    if (got_ids < -1).any():
        out.append(
            f"ids hold negative values other than -1 padding: {sorted(set(got_ids[got_ids < -1].tolist()))[:5]}"
        )
    padded_then_hit = (~hit[:, :-1] & hit[:, 1:]).any(axis=1) if k > 1 else np.zeros(q, bool)
    if padded_then_hit.any():
        rows = np.flatnonzero(padded_then_hit)[:5].tolist()
        out.append(f"-1 padding before a hit in {int(padded_then_hit.sum())} row(s) {rows}")
    if got_d.dtype.kind not in "fiu":
        out.append(f"distances have dtype {got_d.dtype}, expected floats")
        return out
    d = got_d.astype(np.float64)
    bad = hit & ~np.isfinite(d)
    if bad.any():
        out.append(f"{int(bad.sum())} hit(s) with a NaN or infinite distance")
    ok = hit & np.isfinite(d)
    both = ok[:, 1:] & ok[:, :-1]  # compare neighbouring hits only
    prev, nxt = np.where(both, d[:, :-1], 0.0), np.where(both, d[:, 1:], 0.0)
    falling = both & (nxt < prev - 1e-5 * np.maximum(1.0, np.abs(prev)))
    if falling.any():
        rows = np.flatnonzero(falling.any(axis=1))[:5].tolist()
        out.append(
            f"distances not nearest-first (decreasing) in {int(falling.any(axis=1).sum())} "
            f"row(s) {rows}"
        )
    return out


class Oracle:
    """What the engine holds: live ids -> vectors (+ metadata), and what it no longer holds."""

    def __init__(self, metric: str = "l2") -> None:
        self.metric = metric
        self._rows: dict[int, np.ndarray] = {}
        self._meta: dict[int, dict[str, Any] | None] = {}
        self.deleted: list[int] = []  # deleted and not re-inserted, oldest first
        self.max_id = 0  # ids are issued increasing, so 1..max_id not live = once held, now gone
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    # -- mirror the engine ----------------------------------------------------
    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        for j, i in enumerate(ids.tolist()):
            self._rows[i] = vectors[j]
            self._meta[i] = metadata[j] if metadata is not None else None
        if len(ids):
            self.max_id = max(self.max_id, int(ids.max()))
        reinserted = set(ids.tolist())
        if reinserted & set(self.deleted):
            self.deleted = [d for d in self.deleted if d not in reinserted]
        self._cache = None

    def delete(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            if self._rows.pop(i, None) is not None:
                self._meta.pop(i, None)
                self.deleted.append(i)
        self._cache = None

    def delete_filter(self, flt: dict[str, Any]) -> np.ndarray:
        """Delete every live row whose metadata matches `flt`; returns their ids."""
        ids = np.array([i for i in self._rows if _matches(self._meta.get(i), flt)], dtype=np.int64)
        self.delete(ids)
        return ids

    def clear(self) -> None:
        self._rows.clear()
        self._meta.clear()
        self.deleted.clear()  # a clear forgets deletions: those ids are simply gone
        self._cache = None

    # -- state ----------------------------------------------------------------
    def count(self) -> int:
        return len(self._rows)

    def live_ids(self) -> np.ndarray:
        return np.fromiter(self._rows, dtype=np.int64, count=len(self._rows))

    def vector(self, i: int) -> np.ndarray:
        return self._rows[i]

    def _matrix(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            ids = self.live_ids()
            if len(ids):
                mat = np.stack([self._rows[i] for i in ids.tolist()])
            else:
                mat = np.empty((0, 0), np.float32)
            self._cache = (ids, mat)
        return self._cache

    # -- ground truth and judgement -------------------------------------------
    def ground_truth(
        self, queries: np.ndarray, k: int, flt: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k: ids int64 `(q, k)` padded -1, distances float64 padded +inf."""
        ids, mat = self._matrix()
        if flt and len(ids):
            keep = np.array([_matches(self._meta.get(i), flt) for i in ids.tolist()], dtype=bool)
            ids, mat = ids[keep], mat[keep]
        q = len(queries)
        out_ids = np.full((q, k), -1, dtype=np.int64)
        out_d = np.full((q, k), np.inf, dtype=np.float64)
        if len(ids) == 0:
            return out_ids, out_d
        d = distances(self.metric, queries, mat)
        kk = min(k, len(ids))
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        pd = np.take_along_axis(d, part, 1)
        order = np.argsort(pd, axis=1, kind="stable")
        out_ids[:, :kk] = ids[np.take_along_axis(part, order, 1)]
        out_d[:, :kk] = np.take_along_axis(pd, order, 1)
        return out_ids, out_d

    def check_search(
        self,
        queries: np.ndarray,
        k: int,
        got_ids: np.ndarray,
        flt: dict[str, Any] | None = None,
        got_dists: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Judge an engine's answer: recall and everything that must never happen.

        A returned id is a hit when it is live, passes the filter and its exact
        distance is within the true k-th distance (so ties are not misses). A row
        with fewer hits than min(k, rows that match) is *short* — judged on its own,
        not only through recall. With `got_dists`, the answer's shape and order are
        checked too (`answer_violations`).
        """
        true_ids, true_d = self.ground_truth(queries, k, flt)
        protocol = (
            answer_violations(got_ids, got_dists, len(queries), k) if got_dists is not None else []
        )
        got = np.asarray(got_ids)
        if protocol and (
            got.ndim != 2 or got.shape[0] != len(queries) or got.dtype.kind not in "iu"
        ):
            return {
                "recall": 0.0,
                "protocol": protocol,
                "expected_results": int((true_ids >= 0).sum()),
                "returned_results": None,
                "stale_ids": [],
                "n_stale": 0,
                "unknown_ids": [],
                "n_unknown": 0,
                "filtered_out_ids": [],
                "duplicates": 0,
                "short_rows": 0,
            }
        stale: set[int] = set()
        unknown: set[int] = set()
        filtered_out: set[int] = set()
        duplicates = 0
        short_rows = 0
        # each query's distinct returned ids that are live and pass the filter, judged against
        # the true k-th distance; their exact distances are computed in one batch for the step
        rows: list[list[int]] = []
        pairs_q: list[int] = []
        pairs_id: list[int] = []
        for qi in range(len(queries)):
            row = [int(x) for x in got[qi].tolist() if x is not None and int(x) >= 0]
            duplicates += len(row) - len(set(row))
            rows.append(row)
            for i in set(row):
                if i not in self._rows:
                    (stale if 1 <= i <= self.max_id else unknown).add(i)
                    continue
                if not _matches(self._meta.get(i), flt):
                    filtered_out.add(i)
                    continue
                pairs_q.append(qi)
                pairs_id.append(i)
        hit_d = self._pair_distances(queries, pairs_q, pairs_id)
        hits_of = np.zeros(len(queries), dtype=np.int64)
        if len(pairs_q):
            pq = np.asarray(pairs_q, dtype=np.int64)
            expected_all = (true_ids >= 0).sum(axis=1)
            # a query with nothing to find has no hits (its recall is 1.0 below)
            judged = expected_all[pq] > 0
            kth = true_d[pq, np.maximum(expected_all[pq] - 1, 0)]
            kth = np.where(judged, kth, 0.0)
            hit = judged & (hit_d <= kth + 1e-5 * np.maximum(1.0, np.abs(kth)))
            hits_of = np.bincount(pq[hit], minlength=len(queries))
        recalls: list[float] = []
        for qi, row in enumerate(rows):
            expected_n = int((true_ids[qi] >= 0).sum())
            if len(set(row)) < expected_n:
                short_rows += 1
            if expected_n == 0:
                recalls.append(1.0)
            else:
                recalls.append(min(int(hits_of[qi]), expected_n) / expected_n)
        return {
            "recall": float(np.mean(recalls)) if recalls else 1.0,
            "expected_results": int((true_ids >= 0).sum()),
            "returned_results": int((got >= 0).sum()) if got.dtype != object else None,
            "stale_ids": sorted(stale)[:20],
            "n_stale": len(stale),
            "unknown_ids": sorted(unknown)[:20],
            "n_unknown": len(unknown),
            "filtered_out_ids": sorted(filtered_out)[:20],
            "duplicates": duplicates,
            "short_rows": short_rows,
            "protocol": protocol,
        }

    def _pair_distances(
        self, queries: np.ndarray, pairs_q: list[int], pairs_id: list[int]
    ) -> np.ndarray:
        """Exact float64 distance of each (query, live id) pair, as `distances` gives it."""
        if not pairs_q:
            return np.empty(0, dtype=np.float64)
        q = np.asarray(queries, dtype=np.float64)[np.asarray(pairs_q, dtype=np.int64)]
        x = np.stack([self._rows[i] for i in pairs_id]).astype(np.float64)
        return pair_distances(self.metric, q, x)

    def check_get(self, ids: np.ndarray, vectors: Any) -> dict[str, Any]:
        """Rows the engine returns for live `ids` must be the vectors inserted (normalised for
        cosine); a None row is a live row the engine lost."""
        bad: list[int] = []
        missing: list[int] = []
        for j, i in enumerate(ids.tolist()):
            want = np.asarray(self._rows[i], dtype=np.float64)
            if vectors[j] is None:
                missing.append(i)
                continue
            got = np.asarray(vectors[j], dtype=np.float64)
            if got.shape != want.shape:
                bad.append(i)
                continue
            ok = np.allclose(got, want, rtol=1e-5, atol=1e-5)
            if not ok and self.metric == "cosine":
                wn = want / max(np.linalg.norm(want), 1e-30)
                ok = np.allclose(got, wn, rtol=1e-5, atol=1e-5)
            if not ok:
                bad.append(i)
        return {
            "checked": len(ids),
            "mismatched_ids": bad[:20],
            "n_mismatched": len(bad),
            "missing_ids": missing[:20],
            "n_missing": len(missing),
        }


def dedupe(ids: np.ndarray, policy: str) -> np.ndarray:
    """Positions of the rows kept from one batch with repeated ids: the last (or first) of
    each id, in batch order. What an engine declaring that `duplicate_ids` policy holds."""
    order = range(len(ids) - 1, -1, -1) if policy == "last-wins" else range(len(ids))
    seen: dict[int, int] = {}
    for j in order:
        seen.setdefault(int(ids[j]), j)
    return np.array(sorted(seen.values()), dtype=np.int64)
