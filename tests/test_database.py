"""The DB API: inserts, search, get, delete, metadata, ids, bad input and atomicity."""

from __future__ import annotations

import copy

import memcycle.refimpl as refimpl
import numpy as np
import pytest
from memcycle.refimpl import DB, SearchResult
from memcycle.refimpl.alloc import CheckedAllocator
from memcycle.refimpl.errors import (
    ClosedError,
    DimensionMismatchError,
    DuplicateIdError,
    IdNotFoundError,
    InvalidInputError,
    RefimplError,
    UnknownNameError,
)

SMALL = dict(buffer_size=20, segment_threshold=200, allocator="checked")


def vecs(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def brute_ids(x: np.ndarray, ids: list, q: np.ndarray, k: int) -> list:
    d = ((x - q) ** 2).sum(1)
    return [ids[i] for i in np.argsort(d, kind="stable")[:k]]


def test_public_api_is_exported() -> None:
    for name in (
        "DB",
        "SearchResult",
        "get_global_db",
        "cleanup_global_db",
        "clear_database",
        "add_vector_batch",
        "search_vectors",
        "FAULT_NAMES",
        "ALLOCATOR_NAMES",
    ):
        assert hasattr(refimpl, name)
    assert len(refimpl.FAULT_NAMES) == 10


def test_add_search_get_in_the_flat_buffer_is_exact() -> None:
    db = DB(**SMALL)
    assert db.state == "uninitialized" and db.dimension is None and db.count() == 0
    x = vecs(15)
    ids = db.add_batch(x, ids=list(range(100, 115)))
    assert ids == list(range(100, 115))
    assert db.state == "ready" and db.dimension == 8 and db.count() == 15
    assert db.info()["tiers"] == {"flat": 15, "hnsw": 0, "segments": 0}
    for i in range(15):
        res = db.search(x[i], limit=5)
        assert [r.id for r in res] == brute_ids(x, ids, x[i], 5)
        assert res[0] == SearchResult(100 + i, 0.0, None)
    v, md = db.get(103)
    assert np.array_equal(v, x[3]) and md is None
    db.close()


@pytest.mark.parametrize("n", [5, 20, 45, 250])
def test_every_tier_is_searched(n: int) -> None:
    """Batches below, at and above buffer_size and segment_threshold."""
    db = DB(**SMALL)
    x = vecs(n + 7, seed=n)
    db.add_batch(x[:n])
    db.add_batch(x[n:], ids=list(range(1000, 1007)))
    tiers = db.info()["tiers"]
    assert sum(tiers.values()) == n + 7 == db.count()
    if n >= 200:
        assert tiers["segments"] == n
    elif n >= 20:
        assert tiers["hnsw"] >= n
    all_ids = list(range(n)) + list(range(1000, 1007))
    hits = 0
    for i in range(0, n + 7, 3):
        res = db.search(x[i], limit=3)
        hits += res[0].id == all_ids[i]
        d = [r.distance for r in res]
        assert d == sorted(d)
    assert hits >= 0.9 * len(range(0, n + 7, 3))
    db.close()
    assert db.allocator.live() == []


def test_flat_buffer_migrates_when_full() -> None:
    db = DB(**SMALL)
    for i in range(7):
        db.add_batch(vecs(6, seed=i), ids=list(range(i * 6, i * 6 + 6)))
    tiers = db.info()["tiers"]
    assert tiers["hnsw"] == 40 and tiers["flat"] == 2  # 42 rows: two migrations of 20
    db.close()


def test_search_batch_int_ids_and_padding() -> None:
    db = DB(**SMALL)
    x = vecs(10)
    db.add_batch(x, ids=np.arange(10) * 3)
    ids, d = db.search_batch(x[:4], limit=12)
    assert ids.dtype == np.int64 and ids.shape == (4, 12) and d.dtype == np.float32
    assert ids[:, 0].tolist() == [0, 3, 6, 9]
    assert (ids[:, 10:] == -1).all() and np.isinf(d[:, 10:]).all()
    db.close()


def test_string_ids_and_object_search_batch() -> None:
    db = DB(**SMALL)
    x = vecs(30)
    names = [f"doc-{i}" for i in range(30)]
    assert db.add_batch(x, ids=names) == names
    ids, d = db.search_batch(x[:2], limit=31)
    assert ids.dtype == object and ids[0, 0] == "doc-0" and ids[1, 0] == "doc-1"
    assert ids[0, 30] is None and np.isinf(d[0, 30])
    assert db.search(x[5], 1)[0].id == "doc-5"
    assert np.array_equal(db.get("doc-7")[0], x[7])
    # mixed ids: an int and a str that prints the same are different ids
    db.add("7", vecs(1, seed=9)[0])
    db.add(7, vecs(1, seed=10)[0])
    assert db.count() == 32
    assert db.delete("7") and db.count() == 31
    assert db.get(7) is not None
    with pytest.raises(IdNotFoundError):
        db.get("7")
    # once the last str id is gone, search_batch is back on the int64 fast path
    assert db.delete_batch(names) == 30
    ids, _ = db.search_batch(x[:1], limit=2)
    assert ids.dtype == np.int64 and ids[0].tolist() == [7, -1]
    db.close()


def test_large_int_ids_are_hashed_but_kept() -> None:
    db = DB(**SMALL)
    big = 2**70
    db.add_batch(vecs(2), ids=[big, -5])
    assert db.search(vecs(2)[0], 1)[0].id == big
    assert db.get(big) is not None and db.delete(big) and db.count() == 1
    db.close()


def test_auto_ids_skip_ids_in_use() -> None:
    db = DB(**SMALL)
    db.add_batch(vecs(3), ids=[0, 2, 4])
    got = db.add_batch(vecs(4, seed=1))
    assert got == [1, 3, 5, 6]
    assert db.add_batch(vecs(2, seed=2)) == [7, 8]
    db.close()


def test_delete_tombstones_and_reinsert() -> None:
    db = DB(**SMALL)
    x = vecs(60)
    db.add_batch(x)  # 60 >= buffer_size: straight into the graph
    db.add_batch(vecs(5, seed=3), ids=list(range(100, 105)))  # flat buffer
    assert db.delete(10) and not db.delete(10) and db.delete(101)
    assert db.delete_batch([11, 12, 12, 999, 102]) == 3
    assert db.count() == 65 - 5
    for gone in (10, 11, 12, 101, 102):
        with pytest.raises(IdNotFoundError):
            db.get(gone)
    ids, _ = db.search_batch(x[10:13], limit=5)
    assert not np.isin(ids, [10, 11, 12, 101, 102]).any()
    # re-insert a deleted id with a new vector: found, with the new vector
    new = vecs(1, seed=42)[0]
    db.add(10, new, {"again": True})
    assert np.array_equal(db.get(10)[0], new) and db.get(10)[1] == {"again": True}
    assert db.search(new, 1)[0].id == 10
    assert db.info()["deleted"] == 5
    db.close()


def test_upsert_replaces_rows() -> None:
    db = DB(**SMALL)
    x = vecs(10)
    db.add_batch(x, ids=list(range(10)), metadata=[{"v": 1}] * 10)
    y = vecs(3, seed=5)
    assert db.upsert_batch(y, ids=[1, 2, 50], metadata=[{"v": 2}] * 3) == [1, 2, 50]
    assert db.count() == 11
    assert np.array_equal(db.get(2)[0], y[1]) and db.get(2)[1] == {"v": 2}
    assert db.search(x[1], 1)[0].id != 1 or db.search(x[1], 1)[0].distance > 0
    assert sorted(r.id for r in db.search(y[0], 11, filter={"v": 2})) == [1, 2, 50]
    db.close()


def test_metadata_and_filters_across_tiers() -> None:
    db = DB(**SMALL)
    x = vecs(300)
    md = [{"parity": i % 2, "bucket": f"b{i % 5}"} for i in range(300)]
    db.add_batch(x[:250], metadata=md[:250])  # segments
    db.add_batch(x[250:290], ids=list(range(250, 290)), metadata=md[250:290])  # hnsw
    db.add_batch(x[290:], ids=list(range(290, 300)), metadata=md[290:])  # flat
    assert db.get(7)[1] == {"parity": 1, "bucket": "b2"}
    for i in (3, 260, 295):
        res = db.search(x[i], limit=10, filter={"parity": 1, "bucket": "b3"})
        assert res and all(r.id % 2 == 1 and r.id % 5 == 3 for r in res)
        assert all(r.metadata == {"parity": 1, "bucket": "b3"} for r in res)
        # exact: the filtered scan is brute force over the matching rows
        match = [j for j in range(300) if j % 2 == 1 and j % 5 == 3]
        assert [r.id for r in res] == brute_ids(x[match], match, x[i], 10)
    assert db.search(x[0], 5, filter={"parity": 7}) == []
    assert len(db.search(x[0], 5, filter={})) == 5  # an empty filter filters nothing
    db.delete(3)
    assert all(r.id != 3 for r in db.search(x[3], 50, filter={"parity": 1}))
    db.close()


def test_large_filter_uses_the_graphs() -> None:
    db = DB(buffer_size=100, segment_threshold=10**6)
    x = vecs(5000, 16)
    db.add_batch(x, metadata=[{"half": i % 2} for i in range(5000)])
    res = db.search(x[11], 10, filter={"half": 1})
    assert len(res) == 10 and all(r.id % 2 == 1 for r in res)
    assert res[0].id == 11
    db.close()


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_metrics(metric: str) -> None:
    db = DB(metric=metric, **SMALL)
    x = vecs(50) * np.linspace(0.5, 3, 50, dtype=np.float32)[:, None]
    db.add_batch(x[:30])
    db.add_batch(x[30:], ids=list(range(30, 50)))
    q = vecs(1, seed=99)[0]
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        want = 1 - xn @ (q / np.linalg.norm(q))
    else:
        want = 1 - x @ q
    res = db.search(q, 5)
    assert [r.id for r in res] == np.argsort(want)[:5].tolist()
    np.testing.assert_allclose([r.distance for r in res], np.sort(want)[:5], atol=1e-4)
    # get() returns the vector as inserted, not the normalised copy (for cosine rebuilt
    # from the stored unit row and norm: equal to within a few float32 ulps)
    np.testing.assert_allclose(db.get(40)[0], x[40], rtol=1e-6, atol=0)
    assert db.get(40)[0].dtype == np.float32
    db.close()


def test_float64_and_non_contiguous_input_is_converted() -> None:
    db = DB(**SMALL)
    x64 = np.random.default_rng(1).standard_normal((10, 16))
    strided = x64[:, ::2]
    assert not strided.flags.c_contiguous
    db.add_batch(strided, ids=list(range(10)))
    assert db.dimension == 8
    assert db.search(strided[4].tolist(), 1)[0].id == 4
    assert db.search(strided[3], 1)[0].id == 3
    db.add(50, [1, 2, 3, 4, 5, 6, 7, 8])  # python ints
    assert db.get(50)[0].dtype == np.float32
    db.close()


def test_ef_search_is_settable() -> None:
    db = DB(**SMALL)
    db.add_batch(vecs(100))
    db.ef_search = 8
    assert db.ef_search == 8 and db.info()["ef_search"] == 8
    assert len(db.search(vecs(1)[0], 5)) == 5
    with pytest.raises(InvalidInputError):
        db.ef_search = 0
    db.close()


def test_info_is_plain_data() -> None:
    db = DB(allocator="checked", faults=["flat-buffer-leak"])
    db.add_batch(vecs(5))
    info = db.info()
    assert info["state"] == "ready" and info["count"] == 5 and info["metric"] == "l2"
    assert info["faults"] == ["flat-buffer-leak"]
    assert info["allocator"]["allocator"] == "checked" and info["allocator"]["live_blocks"] > 0
    import json

    json.dumps(info)
    db.close()


def test_context_manager_closes() -> None:
    alloc = CheckedAllocator()
    with DB(allocator=alloc) as db:
        db.add_batch(vecs(5))
    assert db.state == "closed" and alloc.live() == []


def test_dropped_database_frees_its_blocks() -> None:
    alloc = CheckedAllocator()
    db = DB(allocator=alloc, buffer_size=10)
    db.add_batch(vecs(25))
    del db
    assert alloc.live() == [] and alloc.violations == []


def test_explicit_dimension_initializes_eagerly() -> None:
    db = DB(12, allocator="checked")
    assert db.state == "ready" and db.dimension == 12 and db.allocator.live()
    with pytest.raises(DimensionMismatchError):
        db.add_batch(vecs(2, 8))
    db.clear()
    assert db.allocator.live() == [] and db.dimension is None
    db.close()


# -- lifecycle ---------------------------------------------------------------------
def test_clear_close_idempotent_and_closed_errors() -> None:
    db = DB(**SMALL)
    db.clear()  # before any insert: a no-op
    db.clear()
    db.add_batch(vecs(30))
    db.clear()
    db.clear()
    assert db.state == "uninitialized" and db.count() == 0 and db.allocator.live() == []
    assert db.search(vecs(1, 5)[0], 3) == []  # any dimension: nothing is initialized
    db.add_batch(vecs(4, 5))  # another dimension
    assert db.dimension == 5
    db.close()
    db.close()
    assert db.allocator.live() == []
    calls = [
        lambda: db.add(1, vecs(1, 5)[0]),
        lambda: db.add_batch(vecs(2, 5)),
        lambda: db.upsert_batch(vecs(2, 5), [1, 2]),
        lambda: db.search(vecs(1, 5)[0]),
        lambda: db.search_batch(vecs(2, 5)),
        lambda: db.get(1),
        lambda: db.delete(1),
        lambda: db.delete_batch([1]),
        lambda: db.count(),
        lambda: db.clear(),
        lambda: db.initialize(5),
    ]
    for call in calls:
        with pytest.raises(ClosedError, match="closed"):
            call()
    with pytest.raises(ClosedError):
        db.ef_search = 5


def test_uninitialized_reads() -> None:
    db = DB()
    assert db.search([1.0, 2.0], 3) == []
    ids, d = db.search_batch([[1.0, 2.0]], 2)
    assert ids.tolist() == [[-1, -1]] and np.isinf(d).all()
    assert db.delete(5) is False and db.delete_batch([1, 2]) == 0
    with pytest.raises(IdNotFoundError, match="not in the database"):
        db.get(5)
    db.close()


# -- bad input -------------------------------------------------------------------------
def snapshot(db: DB) -> tuple:
    """Everything observable, to prove a failed call changed nothing."""
    ids, d = db.search_batch(vecs(3, seed=77), limit=50)
    return (
        db.count(),
        db.state,
        db.dimension,
        ids.tolist(),
        d.tolist(),
        copy.deepcopy(db.info()["tiers"]),
        sorted((b.label, b.nbytes) for b in db.allocator.live()),
    )


BAD_BATCHES = [
    ("wrong dimension", lambda: (vecs(3, 9), None, None), DimensionMismatchError, "dimension 9"),
    ("nan", lambda: (np.full((2, 8), np.nan), None, None), InvalidInputError, "NaN"),
    (
        "inf",
        lambda: (np.r_[vecs(1), [[np.inf] * 8]], None, None),
        InvalidInputError,
        "infinity",
    ),
    (
        "float64 overflow",
        lambda: (np.full((1, 8), 1e300), None, None),
        InvalidInputError,
        "float32",
    ),
    ("empty batch", lambda: (np.zeros((0, 8)), None, None), InvalidInputError, "empty"),
    ("ragged", lambda: ([[1.0] * 8, [1.0] * 7], None, None), InvalidInputError, "rectangular"),
    ("1-D batch", lambda: (vecs(1)[0], None, None), InvalidInputError, "2-D"),
    ("strings", lambda: ([["a"] * 8], None, None), InvalidInputError, "numeric"),
    ("bools", lambda: (np.ones((2, 8), bool), None, None), InvalidInputError, "numeric"),
    ("objects", lambda: ([[object()] * 8], None, None), InvalidInputError, "numeric"),
    ("complex", lambda: (np.ones((2, 8), complex), None, None), InvalidInputError, "numeric"),
    ("ids too few", lambda: (vecs(3), [1, 2], None), InvalidInputError, "2 ids for 3"),
    (
        "ids array shape",
        lambda: (vecs(3), np.arange(6).reshape(3, 2), None),
        InvalidInputError,
        "1-D",
    ),
    ("ids a string", lambda: (vecs(3), "abc", None), InvalidInputError, "sequence"),
    ("float ids", lambda: (vecs(2), [1.5, 2.5], None), InvalidInputError, "str or int"),
    ("bool ids", lambda: (vecs(2), [True, False], None), InvalidInputError, "str or int"),
    ("None id", lambda: (vecs(2), ["a", None], None), InvalidInputError, "str or int"),
    ("dup in batch", lambda: (vecs(3), [5, 6, 5], None), DuplicateIdError, "within the batch"),
    ("dup str in batch", lambda: (vecs(2), ["x", "x"], None), DuplicateIdError, "within"),
    ("dup vs db", lambda: (vecs(2), [7, 1], None), DuplicateIdError, "already in the database"),
    ("dup str vs db", lambda: (vecs(1), ["s0"], None), DuplicateIdError, "already"),
    ("metadata a dict", lambda: (vecs(2), None, {"a": 1}), InvalidInputError, "sequence"),
    ("metadata count", lambda: (vecs(2), None, [{"a": 1}]), InvalidInputError, "1 metadata"),
    ("metadata row", lambda: (vecs(2), None, [{"a": 1}, 5]), InvalidInputError, "row 1"),
    ("metadata key", lambda: (vecs(1), None, [{1: 1}]), InvalidInputError, "keys must be str"),
    ("metadata list", lambda: (vecs(1), None, [{"a": [1]}]), InvalidInputError, "scalar"),
    ("metadata dict", lambda: (vecs(1), None, [{"a": {}}]), InvalidInputError, "scalar"),
]


@pytest.mark.parametrize("case", BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
def test_bad_batches_raise_and_change_nothing(case) -> None:
    _, make, exc, text = case
    db = DB(**SMALL)
    db.add_batch(vecs(25, seed=1), ids=list(range(25)))  # hnsw
    db.add_batch(vecs(5, seed=2), ids=[f"s{i}" for i in range(5)], metadata=[{"k": 1}] * 5)
    before = snapshot(db)
    vectors, ids, metadata = make()
    with pytest.raises(exc, match=text) as info:
        db.add_batch(vectors, ids=ids, metadata=metadata)
    assert isinstance(info.value, RefimplError)
    assert snapshot(db) == before
    if ids is not None and "vs db" not in case[0]:  # upsert validates the same way
        with pytest.raises(exc, match=text):
            db.upsert_batch(vectors, ids, metadata)
        assert snapshot(db) == before
    db.close()


def test_bad_batch_on_an_empty_db_leaves_it_uninitialized() -> None:
    db = DB(allocator="checked")
    with pytest.raises(InvalidInputError):
        db.add_batch([[1.0, np.nan]])
    with pytest.raises(DuplicateIdError):
        db.add_batch(vecs(2), ids=[1, 1])
    assert db.state == "uninitialized" and db.dimension is None and db.allocator.live() == []
    db.close()


@pytest.mark.parametrize(
    "call, exc, text",
    [
        (lambda db: db.search(vecs(1, 9)[0]), DimensionMismatchError, "expected 8"),
        (lambda db: db.search(vecs(2)), InvalidInputError, "1-D"),
        (lambda db: db.search([np.nan] * 8), InvalidInputError, "NaN"),
        (lambda db: db.search(vecs(1)[0], limit=0), InvalidInputError, "limit"),
        (lambda db: db.search(vecs(1)[0], limit=-3), InvalidInputError, "limit"),
        (lambda db: db.search(vecs(1)[0], limit=2.5), InvalidInputError, "limit"),
        (lambda db: db.search(vecs(1)[0], limit=True), InvalidInputError, "limit"),
        (lambda db: db.search(vecs(1)[0], filter=[1]), InvalidInputError, "filter"),
        (lambda db: db.search(vecs(1)[0], filter={"a": [1]}), InvalidInputError, "scalar"),
        (lambda db: db.search("abc"), InvalidInputError, "numeric"),
        (lambda db: db.search_batch(vecs(1)[0]), InvalidInputError, "2-D"),
        (lambda db: db.search_batch(np.zeros((0, 8))), InvalidInputError, "q >= 1"),
        (lambda db: db.search_batch(vecs(2, 3)), DimensionMismatchError, "expected 8"),
        (lambda db: db.search_batch(vecs(2), limit=0), InvalidInputError, "limit"),
        (lambda db: db.add(1, vecs(2)), InvalidInputError, "1-D"),
        (lambda db: db.add(1.5, vecs(1)[0]), InvalidInputError, "str or int"),
        (lambda db: db.add(99, vecs(1)[0], metadata=[1]), InvalidInputError, "dict"),
        (lambda db: db.add(3, vecs(1)[0]), DuplicateIdError, "already"),
        (lambda db: db.get(1.5), InvalidInputError, "str or int"),
        (lambda db: db.get(12345), IdNotFoundError, "12345"),
        (lambda db: db.delete(None), InvalidInputError, "str or int"),
        (lambda db: db.delete_batch(5), InvalidInputError, "sequence"),
        (lambda db: db.delete_batch([1, 2.5]), InvalidInputError, "str or int"),
        (lambda db: db.upsert_batch(vecs(1), None), InvalidInputError, "needs ids"),
        (lambda db: db.initialize(4), DimensionMismatchError, "clear"),
    ],
)
def test_bad_calls_raise_and_change_nothing(call, exc, text) -> None:
    db = DB(**SMALL)
    db.add_batch(vecs(30, seed=1), ids=list(range(30)))
    before = snapshot(db)
    with pytest.raises(exc, match=text):
        call(db)
    assert snapshot(db) == before
    db.close()


@pytest.mark.parametrize(
    "kwargs, exc, text",
    [
        ({"metric": "hamming"}, UnknownNameError, "expected one of"),
        ({"allocator": "tcmalloc"}, UnknownNameError, "expected one of"),
        ({"faults": ["no-such-fault"]}, UnknownNameError, "no-such-fault"),
        ({"buffer_size": 0}, InvalidInputError, "buffer_size"),
        ({"segment_threshold": -1}, InvalidInputError, "segment_threshold"),
        ({"M": 1}, InvalidInputError, "M must"),
        ({"ef_search": 0}, InvalidInputError, "ef_search"),
        ({"ef_construction": "x"}, InvalidInputError, "ef_construction"),
        ({"dimension": 0}, InvalidInputError, "dimension"),
        ({"num_threads": 0}, InvalidInputError, "num_threads"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, text) -> None:
    with pytest.raises(exc, match=text):
        DB(**kwargs)


def test_shared_allocator_instance_across_databases() -> None:
    alloc = CheckedAllocator()
    a, b = DB(allocator=alloc), DB(allocator=alloc)
    a.add_batch(vecs(5))
    b.add_batch(vecs(5, 4))
    assert a.allocator is b.allocator is alloc
    a.clear()
    assert alloc.live() and all(i.label for i in alloc.live())
    b.close()
    assert alloc.live() == []
    a.close()


def test_search_after_deleting_almost_everything() -> None:
    """A graph full of tombstones still answers with every live row there is."""
    db = DB(buffer_size=100, segment_threshold=10**6, ef_search=8)
    x = vecs(2000, 16)
    db.add_batch(x)
    keep = [5, 777, 1999]
    db.delete_batch([i for i in range(2000) if i not in keep])
    ids, d = db.search_batch(x[:4], limit=10)
    assert [sorted(r[r >= 0].tolist()) for r in ids] == [keep] * 4
    assert np.isinf(d[:, 3:]).all()
    res = db.search(x[777], 2)
    assert res[0].id == 777 and len(res) == 2
    db.close()


def test_short_graph_answers_are_redone_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    db = DB(buffer_size=10)
    x = vecs(50)
    db.add_batch(x)
    db.delete(3)
    real = db._search_slots

    def short(q, k, skip):  # a graph that came back with a single hit per query
        labels, dists = real(q, k, skip)
        labels[:, 1:] = -1
        dists[:, 1:] = np.inf
        return labels, dists

    monkeypatch.setattr(db, "_search_slots", short)
    ids, _ = db.search_batch(x[:2], limit=5)
    live = [i for i in range(50) if i != 3]
    assert ids.tolist() == [brute_ids(x[live], live, x[i], 5) for i in range(2)]
    db.close()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_rows_are_stored_once_and_read_from_their_tier(metric: str) -> None:
    """get(), the exact filtered scan and the exact redo read each row where it lives:
    segments, the main graph, the flat buffer (after a swap-remove moved its rows)."""
    db = DB(metric=metric, **SMALL)
    x = vecs(300, 8) * np.linspace(0.5, 3, 300, dtype=np.float32)[:, None]
    md = [{"g": i % 3} for i in range(300)]
    db.add_batch(x[:220], ids=list(range(220)), metadata=md[:220])  # segments
    db.add_batch(x[220:250], ids=list(range(220, 250)), metadata=md[220:250])  # main graph
    for i in range(250, 300, 7):  # flat buffer, with one migration on the way
        db.add_batch(x[i : i + 7], ids=list(range(i, min(i + 7, 300))), metadata=md[i : i + 7])
    tiers = db.info()["tiers"]
    assert tiers["segments"] == 220 and tiers["hnsw"] >= 30 and tiers["flat"] > 0
    gone = [252, 281, 295, 10, 230]  # flat rows (compacted) and graph rows
    for i in gone:
        assert db.delete(i)
    live = [i for i in range(300) if i not in gone]
    for i in live:
        v, m = db.get(i)
        assert v.dtype == np.float32 and m == md[i]
        np.testing.assert_allclose(v, x[i], rtol=1e-6, atol=0)
    labels = {b.label for b in db.allocator.live()}
    assert "db.vectors" not in labels and "db.locations" in labels
    assert ("db.norms" in labels) == (metric == "cosine")
    # one float32 copy of each vector, in the tiers' own '.vectors' blocks
    q = vecs(1, 8, seed=5)[0]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    qn = q / np.linalg.norm(q) if metric == "cosine" else q

    def brute(cands: list[int], k: int) -> list[int]:
        d = 1 - xn[cands] @ qn if metric == "cosine" else ((xn[cands] - qn) ** 2).sum(1)
        return [cands[j] for j in np.argsort(d, kind="stable")[:k]]

    want = [i for i in live if md[i]["g"] == 1]
    assert [r.id for r in db.search(q, 7, filter={"g": 1})] == brute(want, 7)
    assert [r.id for r in db.search(q, 400, filter={"g": 1})] == brute(want, 400)
    assert (
        sorted(
            db._exact_live(qn.reshape(1, -1).astype(np.float32), 300)[0][0][: len(live)].tolist()
        )
        == live
    )
    assert db._exact_live(qn.reshape(1, -1).astype(np.float32), 9)[0][0].tolist() == brute(live, 9)
    db.clear()
    assert db.allocator.live() == []
    db.close()


def test_finite_check_takes_huge_values_and_finds_every_non_finite() -> None:
    """The finite check is one pass over the values: huge finite values (whose sum of
    squares overflows float32) pass; a single NaN / inf anywhere is refused."""
    db = DB(**SMALL)
    x = np.full((3, 8), 1e30, np.float32)
    x[1] = 1.0
    db.add_batch(x)
    assert np.array_equal(db.get(0)[0], x[0])
    assert db.search(x[1], 1)[0].id == 1
    for bad in (np.nan, np.inf, -np.inf):
        y = vecs(4)
        y[3, 7] = bad
        with pytest.raises(InvalidInputError, match=r"index \(3, 7\)"):
            db.add_batch(y)
        with pytest.raises(InvalidInputError, match="NaN or infinity"):
            db.search(y[3], 2)
    assert db.count() == 3
    db.close()
