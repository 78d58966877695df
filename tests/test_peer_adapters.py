"""The peer adapters (hnswlib, faiss, usearch) and the example own-engine adapter keep the Engine contract.

Each test builds the engine through the registry, the way the harness does,
and checks it against exact brute force on small seeded data. A peer's tests
are skipped only when its package is not installed (CI installs the peers extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from memcycle.engines.base import Capabilities, Engine, EngineConfig, EngineError
from memcycle.engines.registry import make_engine
from memcycle.records import RunRecord
from peers import need_peer

OWN = "examples.my_engine:make_engine"
PEER_PACKAGE = {"hnswlib": "hnswlib", "faiss": "faiss", "usearch": "usearch"}
SPECS = [*PEER_PACKAGE, OWN]
DIM = 16
N = 1000


def build(spec: str, **options: Any) -> Engine:
    if spec in PEER_PACKAGE:
        need_peer(PEER_PACKAGE[spec])
    return make_engine(spec, EngineConfig(options=options or None))


@pytest.fixture(params=SPECS)
def spec(request: pytest.FixtureRequest) -> str:
    return request.param


def data(n: int = N, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(10 * n)[:n].astype(np.int64) + 1
    return (
        ids,
        rng.standard_normal((n, dim)).astype(np.float32),
        rng.standard_normal((40, dim)).astype(np.float32),
    )


def exact(ids: np.ndarray, x: np.ndarray, q: np.ndarray, k: int, metric: str = "l2") -> np.ndarray:
    if metric == "l2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    else:
        if metric == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1.0 - q @ x.T
    return ids[np.argsort(d, axis=1, kind="stable")[:, :k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(
        np.mean(
            [len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)]
        )
    )


def test_protocol_and_declared_capabilities(spec: str) -> None:
    engine = build(spec)
    assert isinstance(engine, Engine)
    caps = engine.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.clear in ("native", "recreate")
    assert "l2" in caps.metrics
    assert caps.note  # says how clear and delete are done
    assert caps.ledger is False and engine.ledger() is None
    assert getattr(engine, "allocator", None) == "native"


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_insert_count_and_recall_against_brute_force(spec: str, metric: str) -> None:
    engine = build(spec)
    if metric not in engine.capabilities.metrics:
        pytest.skip(f"{spec} does not declare metric {metric}")
    ids, x, q = data()
    engine.open(DIM, metric)
    engine.insert(ids[:400], x[:400])
    engine.insert(ids[400:], x[400:])  # a second batch grows the index
    assert engine.count() == N
    found, dists = engine.search(q, 10)
    assert found.dtype == np.int64 and found.shape == (len(q), 10)
    assert dists.dtype == np.float32 and dists.shape == (len(q), 10)
    assert set(found.ravel().tolist()) <= set(ids.tolist())
    assert np.all(np.diff(dists, axis=1) >= -1e-4)  # nearest first
    assert recall(found, exact(ids, x, q, 10, metric)) >= 0.9
    engine.close()


def test_padding_when_fewer_rows_than_k(spec: str) -> None:
    engine = build(spec)
    ids, x, q = data(n=5)
    empty_ids, empty_d = engine.search(q, 3)  # before open: nothing, padded
    assert (empty_ids == -1).all() and np.isinf(empty_d).all()
    engine.open(DIM)
    engine.insert(ids, x)
    found, dists = engine.search(q, 8)
    assert found.shape == (len(q), 8)
    assert (found[:, :5] >= 0).all() and (found[:, 5:] == -1).all()
    assert np.isfinite(dists[:, :5]).all() and np.isposinf(dists[:, 5:]).all()
    assert sorted(found[0, :5].tolist()) == sorted(ids.tolist())


def test_delete_semantics_or_declared_unsupported(spec: str) -> None:
    engine = build(spec)
    ids, x, q = data()
    engine.open(DIM)
    engine.insert(ids, x)
    if not engine.capabilities.delete:
        with pytest.raises(NotImplementedError):
            engine.delete(ids[:1])
        assert engine.count() == N
        return
    gone = ids[::3]
    engine.delete(gone)
    engine.delete(gone[:5])  # deleting again is a no-op
    engine.delete(np.array([10**9], dtype=np.int64))  # an unknown id too
    keep = np.setdiff1d(np.arange(N), np.arange(N)[::3])
    assert engine.count() == len(keep)
    found, _ = engine.search(q, 10)
    assert not set(found.ravel().tolist()) & set(gone.tolist())
    assert recall(found, exact(ids[keep], x[keep], q, 10)) >= 0.9
    engine.insert(gone[:10], x[::3][:10])  # a deleted id may come back
    assert engine.count() == len(keep) + 10
    back, _ = engine.search(x[::3][:10], 1)
    assert (back[:, 0] == gone[:10]).mean() >= 0.9


def test_metadata_filter_or_declared_unsupported(spec: str) -> None:
    engine = build(spec)
    ids, x, q = data()
    meta = [{"part": int(i % 4)} for i in range(N)]
    engine.open(DIM)
    engine.insert(ids, x, meta)
    if not engine.capabilities.metadata_filter:
        with pytest.raises(NotImplementedError):
            engine.search(q, 10, {"part": 1})
        return
    found, _ = engine.search(q, 10, {"part": 1})
    part = np.arange(N) % 4 == 1
    assert set(found.ravel().tolist()) - {-1} <= set(ids[part].tolist())
    assert recall(found, exact(ids[part], x[part], q, 10)) >= 0.9
    none, _ = engine.search(q, 10, {"part": 9})
    assert (none == -1).all()


def test_clear_then_reopen_with_another_dimension(spec: str) -> None:
    engine = build(spec)
    engine.clear()  # before any open: a no-op
    ids, x, q = data()
    engine.open(DIM)
    engine.insert(ids, x)
    engine.clear()
    engine.clear()
    assert engine.count() == 0
    ids2, x2, q2 = data(n=300, dim=24, seed=1)
    engine.open(24, "l2")
    engine.insert(ids2, x2)
    assert engine.count() == 300
    found, _ = engine.search(q2, 10)
    assert recall(found, exact(ids2, x2, q2, 10)) >= 0.9
    engine.clear()
    engine.open(DIM)  # back to the first dimension, same engine object
    engine.insert(ids[:200], x[:200])
    assert engine.count() == 200
    found, _ = engine.search(q, 5)
    assert recall(found, exact(ids[:200], x[:200], q, 5)) >= 0.9


def test_insert_without_open_takes_the_batch_dimension(spec: str) -> None:
    engine = build(spec)
    ids, x, _ = data(n=50)
    engine.insert(ids, x)
    assert engine.count() == 50
    engine.clear()
    engine.insert(ids, x[:, :8].copy())  # after clear: a new dimension, no explicit open
    assert engine.count() == 50


def test_close_is_idempotent_and_a_closed_engine_can_reopen(spec: str) -> None:
    engine = build(spec)
    engine.close()
    ids, x, _ = data(n=100)
    engine.open(DIM)
    engine.insert(ids, x)
    engine.close()
    engine.close()
    assert engine.count() == 0
    engine.open(DIM)
    engine.insert(ids, x)
    assert engine.count() == 100
    engine.close()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_get_returns_the_stored_rows(spec: str, metric: str) -> None:
    engine = build(spec)
    ids, x, _ = data(n=100)
    engine.open(DIM, metric)
    engine.insert(ids, x)
    rows = engine.get(ids[[5, 1, 70]])  # type: ignore[attr-defined]
    want = x[[5, 1, 70]]
    if metric == "cosine" and not np.allclose(rows, want, atol=1e-5):
        want = want / np.linalg.norm(want, axis=1, keepdims=True)  # stored normalised
    assert rows.dtype == np.float32 and np.allclose(rows, want, atol=1e-5)
    with pytest.raises(KeyError):
        engine.get(np.array([10**9], dtype=np.int64))  # type: ignore[attr-defined]
    if engine.capabilities.delete:
        engine.delete(ids[:1])
        with pytest.raises(KeyError):
            engine.get(ids[:1])  # type: ignore[attr-defined]


def test_faults_are_refused(spec: str) -> None:
    if spec in PEER_PACKAGE:
        need_peer(PEER_PACKAGE[spec])
    with pytest.raises(EngineError, match="fault"):
        make_engine(spec, EngineConfig(faults=("flat-buffer-leak",)))


@pytest.mark.parametrize("peer", list(PEER_PACKAGE))
def test_peer_refuses_refimpl_allocators_and_bad_options(peer: str) -> None:
    need_peer(PEER_PACKAGE[peer])
    with pytest.raises(EngineError, match="allocator"):
        make_engine(peer, EngineConfig(allocator="checked"))
    with pytest.raises(EngineError, match="ef_search"):
        make_engine(peer, EngineConfig(options={"ef_search": 0}))
    engine = make_engine(peer, EngineConfig(options={"buffer_size": 10, "M": 8}))
    assert "ignored options: buffer_size" in engine.capabilities.note


def test_hnswlib_grows_capacity_and_uses_options() -> None:
    need_peer("hnswlib")
    engine = build("hnswlib", capacity=16, ef_search=32, M=8)
    ids, x, q = data(n=500)
    engine.open(DIM)
    for lo in range(0, 500, 100):
        engine.insert(ids[lo : lo + 100], x[lo : lo + 100])
    index = engine._index  # type: ignore[attr-defined]
    assert index.get_max_elements() >= 500 and index.ef == 32 and index.M == 8
    assert engine.count() == 500
    assert recall(engine.search(q, 10)[0], exact(ids, x, q, 10)) >= 0.9


def test_hnswlib_answers_query_by_query_when_a_batch_finds_too_few() -> None:
    """hnswlib raises for the whole batch when one query finds fewer than k live rows."""
    need_peer("hnswlib")
    engine = build("hnswlib")

    class ShortIndex:  # reachable rows: 2 for query 0, 3 for query 1
        element_count = 6

        def knn_query(
            self, q: np.ndarray, k: int, num_threads: int, filter: Any
        ) -> tuple[np.ndarray, np.ndarray]:
            reach = 2 if len(q) > 1 or q[0, 0] == 0 else 3
            if k > reach:
                raise RuntimeError("Cannot return the results in a contiguous 2D array")
            labels = np.tile(np.arange(10, 10 + k, dtype=np.uint64), (len(q), 1))
            return labels, np.tile(np.arange(k, dtype=np.float32), (len(q), 1))

    engine._index = ShortIndex()  # type: ignore[attr-defined]
    queries = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    ids, dists = engine.search(queries, 5)
    assert ids.tolist() == [[10, 11, -1, -1, -1], [10, 11, 12, -1, -1]]
    assert np.isposinf(dists[0, 2:]).all() and dists[1, :3].tolist() == [0.0, 1.0, 2.0]


def test_faiss_hnsw_really_cannot_remove_ids() -> None:
    """Pins the reason faiss declares delete=False; fails if a faiss release adds it."""
    faiss = need_peer("faiss")
    index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(DIM, 16))
    _, x, _ = data(n=10)
    index.add_with_ids(x, np.arange(10, dtype=np.int64))
    with pytest.raises(RuntimeError, match="remove_ids not implemented"):
        index.remove_ids(np.array([1], dtype=np.int64))


def test_faiss_clear_is_a_native_reset_of_the_same_index() -> None:
    need_peer("faiss")
    engine = build("faiss")
    ids, x, _ = data(n=100)
    engine.open(DIM)
    engine.insert(ids, x)
    before = engine._index  # type: ignore[attr-defined]
    engine.clear()
    assert before.ntotal == 0
    engine.open(DIM)
    assert engine._index is before  # type: ignore[attr-defined]
    engine.open(8)
    assert engine._index is not before  # type: ignore[attr-defined]


# -- through the harness: one child process per run, judged by the oracle ---------------------
NEEDS_DELETE_AND_FILTER = """
name = "peer-capabilities"
dimension = 16
seed = 5
requires = ["delete", "metadata_filter"]
[[cycle]]
repeat = 2
steps = [
  { op = "insert", count = 400, metadata = true },
  { op = "delete", fraction = 0.25 },
  { op = "search", queries = 10, k = 10, filter = { tag = 1 } },
  { op = "clear" },
]
"""

DELETE_WITHOUT_REQUIRES = """
name = "peer-delete-step"
dimension = 16
seed = 5
[[cycle]]
steps = [
  { op = "insert", count = 300 },
  { op = "delete", count = 50 },
  { op = "search", queries = 10, k = 10 },
  { op = "clear" },
]
"""


def _run(tmp_path: Path, text: str, engine: str) -> RunRecord:
    from memcycle.runner import run_one

    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return run_one(path, engine=engine, memray=False, timeout=120)


@pytest.mark.parametrize("peer", list(PEER_PACKAGE))
def test_harness_skips_a_scenario_whose_requirements_the_engine_lacks(
    tmp_path: Path, peer: str
) -> None:
    need_peer(PEER_PACKAGE[peer])
    record = _run(tmp_path, NEEDS_DELETE_AND_FILTER, peer)
    caps = record.capabilities
    lacking = [c for c in ("delete", "metadata_filter") if not caps[c]]
    if lacking:
        assert record.verdict == "skipped" and not record.passed
        assert record.exit["reason"] == f"engine lacks {', '.join(lacking)}"
        assert not record.steps  # nothing ran, nothing was judged as passing
    else:
        assert record.verdict == "clean", [f.summary for f in record.findings]
        assert [s.op for s in record.steps].count("delete") == 2


def test_a_skipped_delete_step_is_listed_and_the_run_judged_on_what_ran(tmp_path: Path) -> None:
    need_peer("faiss")
    record = _run(tmp_path, DELETE_WITHOUT_REQUIRES, "faiss")
    assert any(s.skipped for s in record.steps)  # faiss cannot delete
    assert record.verdict == "clean"
    assert record.findings[-1].verdict == "skipped"
    assert "(faiss has no delete (capabilities.delete = False))" in record.findings[-1].summary
