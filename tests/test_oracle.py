"""The oracle's ground truth and judgements, and the seeded data generator."""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.datagen import DataGen
from memcycle.oracle import Oracle, distances


def _brute(metric: str, q: np.ndarray, x: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    out = []
    for row in q:
        if metric == "l2":
            d = ((x - row) ** 2).sum(1)
        elif metric == "ip":
            d = -(x @ row)
        else:
            d = 1 - (x @ row) / (np.linalg.norm(x, axis=1) * np.linalg.norm(row))
        out.append(ids[np.argsort(d, kind="stable")[:k]])
    return np.array(out)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_ground_truth_matches_brute_force(metric: str) -> None:
    gen = DataGen(5, metric)
    x = gen.vectors(300, 12, 1, 0).astype(np.float64)
    ids = gen.next_ids(300)
    q = gen.queries(7, 12, 1, 1).astype(np.float64)
    o = Oracle(metric)
    o.insert(ids, x)
    got, d = o.ground_truth(q, 5)
    assert (got == _brute(metric, q, x, ids, 5)).all()
    assert np.all(np.diff(d, axis=1) >= 0)
    assert o.check_search(q, 5, got)["recall"] == 1.0


def test_recall_counts_misses_and_ties() -> None:
    o = Oracle("l2")
    # two rows at the same distance from the query: either is a correct answer
    o.insert(np.array([1, 2, 3], np.int64), np.array([[1.0, 0], [-1.0, 0], [5.0, 0]], np.float32))
    q = np.zeros((1, 2), np.float32)
    assert o.check_search(q, 1, np.array([[2]]))["recall"] == 1.0
    assert o.check_search(q, 1, np.array([[3]]))["recall"] == 0.0
    assert o.check_search(q, 2, np.array([[1, -1]]))["recall"] == 0.5


def test_stale_ids_after_clear_and_delete() -> None:
    o = Oracle("l2")
    gen = DataGen(1)
    ids = gen.next_ids(10)
    o.insert(ids, gen.vectors(10, 4, 1, 0))
    o.delete(ids[:2])
    q = gen.queries(1, 4, 1, 1)
    chk = o.check_search(q, 3, np.array([[ids[0], ids[5], 999]]))
    assert chk["n_stale"] == 1 and chk["stale_ids"] == [int(ids[0])]
    assert chk["n_unknown"] == 1 and chk["unknown_ids"] == [999]
    o.clear()
    assert o.count() == 0
    empty = o.check_search(q, 3, np.array([[-1, -1, -1]]))
    assert empty["recall"] == 1.0 and empty["n_stale"] == 0 and empty["expected_results"] == 0
    stale = o.check_search(q, 3, np.array([[ids[4], -1, -1]]))
    assert stale["n_stale"] == 1


def test_duplicates_and_filter() -> None:
    o = Oracle("l2")
    gen = DataGen(2)
    ids = gen.next_ids(40)
    o.insert(ids, gen.vectors(40, 4, 1, 0), gen.metadata(ids, 1))
    q = gen.queries(2, 4, 1, 1)
    truth, _ = o.ground_truth(q, 3, {"tag": 1})
    assert all(int(i) % 4 == 1 for i in truth.ravel() if i >= 0)
    assert o.check_search(q, 3, truth, {"tag": 1})["recall"] == 1.0
    wrong = truth.copy()
    wrong[0, 0] = next(int(i) for i in ids if i % 4 == 2)
    chk = o.check_search(q, 3, wrong, {"tag": 1})
    assert chk["filtered_out_ids"] and chk["recall"] < 1.0
    dup = truth.copy()
    dup[0, 1] = dup[0, 0]
    assert o.check_search(q, 3, dup, {"tag": 1})["duplicates"] == 1


def test_reinsert_after_delete_and_get() -> None:
    o = Oracle("cosine")
    gen = DataGen(3, "cosine")
    ids = gen.next_ids(5)
    x = gen.vectors(5, 3, 1, 0)
    o.insert(ids, x)
    o.delete(ids[:2])
    assert o.deleted == [int(ids[0]), int(ids[1])]
    o.insert(ids[:1], x[:1] * 2)
    assert o.deleted == [int(ids[1])] and o.count() == 4
    normalised = x[:1] * 2 / np.linalg.norm(x[:1] * 2)
    assert o.check_get(ids[:1], normalised)["n_mismatched"] == 0  # cosine engines normalise
    assert o.check_get(ids[2:4], x[2:4] + 1)["n_mismatched"] == 2


def test_distances_are_nonnegative_l2() -> None:
    x = np.random.default_rng(0).standard_normal((5, 3))
    assert (distances("l2", x, x) >= 0).all()
    with pytest.raises(ValueError):
        distances("hamming", x, x)


def test_datagen_is_deterministic_per_step() -> None:
    a, b = DataGen(9), DataGen(9)
    assert np.array_equal(a.vectors(50, 8, 2, 1), b.vectors(50, 8, 2, 1))
    assert not np.array_equal(a.vectors(50, 8, 2, 1), a.vectors(50, 8, 3, 1))
    assert not np.array_equal(a.vectors(50, 8, 2, 1), a.queries(50, 8, 2, 1))
    assert a.vectors(5, 8, 1, 0).dtype == np.float32
    first, second = a.next_ids(3), a.next_ids(2)
    assert first.tolist() == [1, 2, 3] and second.tolist() == [4, 5]
    pool = np.arange(100, dtype=np.int64)
    assert np.array_equal(a.pick(pool, 10, 1, 2), b.pick(pool, 10, 1, 2))
    assert len(set(a.pick(pool, 10, 1, 2).tolist())) == 10
    assert len(a.pick(pool[:3], 10, 1, 2)) == 3
    assert a.metadata(np.array([5, 6]), 4) == [
        {"tag": 1, "cycle": 4, "even": False},
        {"tag": 2, "cycle": 4, "even": True},
    ]


def test_datagen_is_clustered() -> None:
    x = DataGen(4).vectors(2000, 16, 1, 0).astype(np.float64)
    centers = DataGen(4).centers(16)
    nearest = distances("l2", x, centers).min(1)
    spread = distances("l2", x, x[:1]).mean()
    assert nearest.mean() < 0.25 * spread  # rows sit near a centre, far from each other


def _recall_one_pair_at_a_time(o: Oracle, q: np.ndarray, k: int, got: np.ndarray, flt) -> float:
    """The judgement spelled out: each distinct live, matching returned id is a hit when its own
    exact distance is within the true k-th distance (the oracle batches these distances)."""
    true_ids, true_d = o.ground_truth(q, k, flt)
    recalls = []
    for qi in range(len(q)):
        expected = int((true_ids[qi] >= 0).sum())
        if expected == 0:
            recalls.append(1.0)
            continue
        kth = true_d[qi, expected - 1]
        hits = 0
        for i in {int(x) for x in got[qi] if x >= 0}:
            if i not in o._rows or (flt and (o._meta.get(i) or {}).get("tag") != flt["tag"]):
                continue
            d = distances(o.metric, q[qi : qi + 1], o.vector(i)[None, :])[0, 0]
            hits += d <= kth + 1e-5 * max(1.0, abs(kth))
        recalls.append(min(hits, expected) / expected)
    return float(np.mean(recalls))


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_batched_search_judgement_equals_one_distance_per_returned_id(metric: str) -> None:
    rng = np.random.default_rng(3)
    for trial in range(40):
        dim, n, k, nq = 6, int(rng.integers(1, 40)), int(rng.integers(1, 6)), 5
        o = Oracle(metric)
        ids = np.arange(1, n + 1, dtype=np.int64)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        if trial % 2:
            vectors = np.round(vectors)  # ties at the k-th distance
        o.insert(ids, vectors, [{"tag": int(i % 3)} for i in ids])
        o.delete(ids[rng.random(n) < 0.25])  # stale ids in answers
        flt = {"tag": 1} if trial % 3 == 0 else None
        q = rng.standard_normal((nq, dim)).astype(np.float32)
        got = o.ground_truth(q, k, flt)[0]
        got[:, -1] = rng.integers(-1, n + 3, size=nq)  # misses, stale, unknown and padding
        want = _recall_one_pair_at_a_time(o, q, k, got, flt)
        assert o.check_search(q, k, got, flt)["recall"] == pytest.approx(want, abs=1e-12)
