"""Recall of the graph tiers against brute force, and filtered search.

The full-size check (20,000 clustered vectors of dim 128, recall@10 >= 0.95 at
ef_search=64, for the HNSW path and the segmented path) is marked slow; a
smaller variant of the same checks runs by default.
"""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl import DB


def clustered(n: int, dim: int, seed: int, centers: int = 100, latent: int = 32) -> np.ndarray:
    """Seeded clustered vectors with a lower intrinsic dimension, as embeddings have.

    The space (centres, projection) is fixed; `seed` draws the points, so data and
    queries come from the same clusters.
    """
    space = np.random.default_rng(12345)
    c = space.standard_normal((centers, latent)) * 3
    w = space.standard_normal((latent, dim)) / np.sqrt(latent)
    rng = np.random.default_rng(seed)
    z = c[rng.integers(0, centers, n)] + rng.standard_normal((n, latent))
    return (z @ w + 0.4 * rng.standard_normal((n, dim))).astype(np.float32)


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    d = (q64 * q64).sum(1)[:, None] - 2 * q64 @ x64.T + (x64 * x64).sum(1)[None, :]
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def check_paths(n: int, dim: int, queries: int, min_recall: float = 0.95) -> None:
    x = clustered(n, dim, seed=1)
    q = clustered(queries, dim, seed=2)
    truth = exact_topk(x, q, 10)
    for path, threshold in (("hnsw", n + 1), ("segmented", n)):
        db = DB(ef_search=64, segment_threshold=threshold)
        db.add_batch(x)
        tiers = db.info()["tiers"]
        assert tiers["hnsw" if path == "hnsw" else "segments"] == n, tiers
        ids, dists = db.search_batch(q, limit=10)
        r = recall(ids, truth)
        assert r >= min_recall, f"{path}: recall@10 {r:.3f} < {min_recall}"
        assert (dists[:, :-1] <= dists[:, 1:]).all()
        single = [[res.id for res in db.search(v, limit=10)] for v in q[:20]]
        assert single == ids[:20].tolist()  # one query or many: the same answer
        db.close()


def test_recall_small() -> None:
    check_paths(3000, 32, 100)


@pytest.mark.slow
def test_recall_20k_dim128_hnsw_and_segmented() -> None:
    check_paths(20_000, 128, 200)


def test_recall_with_all_tiers_and_deletes() -> None:
    """Rows spread over segments, the main graph and the flat buffer; deletes honoured."""
    x = clustered(3000, 32, seed=3)
    q = clustered(60, 32, seed=4)
    db = DB(buffer_size=400, segment_threshold=1500, ef_search=64)
    db.add_batch(x[:1500])  # segments
    db.add_batch(x[1500:2400], ids=np.arange(1500, 2400))  # main graph
    for lo in range(2400, 3000, 100):  # flat buffer, migrating once full
        db.add_batch(x[lo : lo + 100], ids=np.arange(lo, lo + 100))
    tiers = db.info()["tiers"]
    assert tiers["segments"] == 1500 and tiers["flat"] > 0 and sum(tiers.values()) == 3000
    gone = np.arange(0, 3000, 7)
    assert db.delete_batch(gone) == gone.size
    keep = np.setdiff1d(np.arange(3000), gone)
    truth = keep[exact_topk(x[keep], q, 10)]
    ids, _ = db.search_batch(q, limit=10)
    assert not np.isin(ids, gone).any()
    assert recall(ids, truth) >= 0.95
    db.close()


def test_filtered_search_returns_only_matching_rows() -> None:
    n = 4000
    x = clustered(n, 32, seed=5)
    q = clustered(30, 32, seed=6)
    colours = np.array(["red", "green", "blue", "gold"])
    md = [{"colour": str(colours[i % 4]), "rare": i % 97 == 0} for i in range(n)]
    db = DB(buffer_size=500, segment_threshold=2000, ef_search=64)
    db.add_batch(x[:2000], metadata=md[:2000])
    db.add_batch(x[2000:3500], ids=np.arange(2000, 3500), metadata=md[2000:3500])
    db.add_batch(x[3500:], ids=np.arange(3500, n), metadata=md[3500:])
    for flt, pred in (
        ({"colour": "gold"}, lambda i: i % 4 == 3),  # large: graph search with a mask
        ({"rare": True}, lambda i: i % 97 == 0),  # small: exact scan
        ({"colour": "red", "rare": True}, lambda i: i % 4 == 0 and i % 97 == 0),
    ):
        match = np.array([i for i in range(n) if pred(i)])
        truth = match[exact_topk(x[match], q, 10)]
        got = []
        for v in q:
            res = db.search(v, limit=10, filter=flt)
            assert all(pred(r.id) for r in res), flt
            assert len(res) == min(10, match.size)
            assert all(r.metadata == md[r.id] for r in res)
            got.append([r.id for r in res] + [-1] * (10 - len(res)))
        k = min(10, match.size)
        assert recall(np.array(got)[:, :k], truth[:, :k]) >= 0.95, flt
    db.close()
