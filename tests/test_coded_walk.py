"""The coded walk: HNSWIndex searches on 8-bit codes and re-ranks on the exact rows.

What must hold whatever the codes are: every distance returned is the exact distance of the
row it names; the codes are allocator blocks with the graph's lifecycle; the codes cover
every row (a row outside the coded range widens it); a row the codes cannot hold turns the
coded walk off rather than answering from garbage.
"""

from __future__ import annotations

import numpy as np
import pytest
from memcycle.refimpl.alloc import CheckedAllocator, NumpyAllocator
from memcycle.refimpl.hnsw import HNSWIndex
from memcycle.refimpl.kernels import codes as C
from memcycle.refimpl.kernels.distance import METRIC_IP, METRIC_L2, normalize_rows

DIM = 16


def clustered(n: int, seed: int, spread: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, DIM)).astype(np.float32) * spread
    rows = centres[rng.integers(0, 12, n)] + rng.normal(size=(n, DIM))
    return rows.astype(np.float32)


def exact_distances(x: np.ndarray, q: np.ndarray, metric: int) -> np.ndarray:
    if metric == METRIC_L2:
        return ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    return 1.0 - q.astype(np.float64) @ x.T.astype(np.float64)


def graph(rows: np.ndarray, metric: int = METRIC_L2, **kw: object) -> HNSWIndex:
    idx = HNSWIndex(CheckedAllocator(), DIM, metric, capacity=32, M=6, ef_construction=40, **kw)
    idx.add(rows, np.arange(rows.shape[0], dtype=np.int64))
    return idx


def numpy_codes(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The codes as kernels/codes.py defines them, computed independently in NumPy."""
    units = np.rint((x - scale[C.SC_LO]) * scale[C.SC_INV])
    return np.clip(units, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("metric", [METRIC_L2, METRIC_IP])
def test_a_coded_search_returns_the_exact_distance_of_every_row_it_names(metric: int) -> None:
    x = clustered(800, seed=1)
    q = clustered(40, seed=2)
    if metric == METRIC_IP:
        normalize_rows(x)
        normalize_rows(q)
    idx = graph(x, metric)
    assert idx.view().coded
    labels, dist = idx.search(q, 10, 32)
    want = np.take_along_axis(exact_distances(x, q, metric), labels, axis=1)
    np.testing.assert_allclose(dist, want, rtol=1e-5, atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()  # ascending by the exact distance


def test_with_ef_above_the_row_count_the_coded_search_is_exact_brute_force() -> None:
    x = clustered(300, seed=3)
    q = clustered(25, seed=4)
    labels, dist = graph(x).search(q, 10, 400)  # every row is reached and re-ranked
    d = exact_distances(x, q, METRIC_L2)
    np.testing.assert_array_equal(labels, np.argsort(d, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(dist, np.sort(d, axis=1)[:, :10], rtol=1e-5, atol=1e-4)


def test_the_walk_reads_the_codes_and_the_answer_stays_exact_when_they_mislead_it() -> None:
    x = clustered(1200, seed=5)
    q = clustered(60, seed=6)
    idx = graph(x)
    honest, _ = idx.search(q, 10, 24)
    idx.view().codes.array[:] = np.random.default_rng(0).integers(0, 256, (32, DIM))[
        np.arange(idx.capacity) % 32
    ]  # codes that say nothing about the rows
    misled, dist = idx.search(q, 10, 24)
    assert (misled != honest).any(), "the search did not walk on the codes"
    want = np.take_along_axis(exact_distances(x, q, METRIC_L2), misled, axis=1)
    np.testing.assert_allclose(dist, want, rtol=1e-5, atol=1e-4)


def test_the_exact_walk_and_the_coded_walk_find_nearly_the_same_rows() -> None:
    x = clustered(2000, seed=7)
    q = clustered(100, seed=8)
    coded, _ = graph(x).search(q, 10, 64)
    plain, _ = graph(x, coded_walk=False).search(q, 10, 64)
    shared = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(coded, plain, strict=True)])
    assert shared >= 0.97


def test_every_row_has_the_code_of_its_vector_under_the_current_range() -> None:
    first = clustered(500, seed=9)
    wider = clustered(300, seed=10, spread=9.0)  # most of these fall outside the first range
    idx = graph(first)
    before = idx.view().scale.array.copy()
    idx.add(wider, np.arange(500, 800, dtype=np.int64))
    view = idx.view()
    scale = view.scale.array
    rows = np.concatenate([first, wider])
    assert (scale[C.SC_LO] <= rows.min(axis=0)).all() and (scale[C.SC_HI] >= rows.max(axis=0)).all()
    assert (scale[C.SC_HI] - scale[C.SC_LO] > before[C.SC_HI] - before[C.SC_LO]).any()
    np.testing.assert_array_equal(view.codes.array[:800], numpy_codes(rows, scale))
    decoded = scale[C.SC_LO] + view.codes.array[:800] * scale[C.SC_STEP]
    assert (np.abs(decoded - rows) <= scale[C.SC_STEP] * 0.5 + 1e-5).all()
    norms = ((view.codes.array[:800] * scale[C.SC_STEP].astype(np.float64)) ** 2).sum(axis=1)
    np.testing.assert_allclose(view.norms.array[:800], norms, rtol=1e-5)


def test_an_inner_product_graph_has_no_per_row_term() -> None:
    x = clustered(200, seed=19)
    normalize_rows(x)
    view = graph(x, METRIC_IP).view()
    assert view.coded and not view.norms.array[:200].any()


def test_rows_inside_the_range_are_coded_without_re_coding_the_rest() -> None:
    idx = graph(clustered(600, seed=11))
    scale = idx.view().scale.array.copy()
    inside = np.clip(clustered(100, seed=12), scale[C.SC_LO], scale[C.SC_HI])
    idx.add(inside, np.arange(600, 700, dtype=np.int64))
    view = idx.view()
    np.testing.assert_array_equal(view.scale.array, scale)
    np.testing.assert_array_equal(view.codes.array[600:700], numpy_codes(inside, scale))


def test_a_dimension_with_one_value_is_coded_without_dividing_by_zero() -> None:
    x = clustered(400, seed=13)
    x[:, 3] = 2.5
    idx = graph(x)
    scale = idx.view().scale.array
    assert scale[C.SC_STEP, 3] == 1.0 and np.isfinite(scale).all()
    labels, dist = idx.search(x[:5], 1, 32)
    assert labels[:, 0].tolist() == [0, 1, 2, 3, 4] and np.allclose(dist, 0.0, atol=1e-4)


def test_a_non_finite_row_turns_the_coded_walk_off_until_clear() -> None:
    x = clustered(300, seed=14)
    idx = graph(x)
    bad = clustered(1, seed=15)
    bad[0, 0] = np.inf
    idx.add(bad, np.array([300], np.int64))
    assert not idx.view().coded
    labels, dist = idx.search(x[:3], 1, 32)  # the exact walk answers
    assert labels[:, 0].tolist() == [0, 1, 2] and np.allclose(dist, 0.0, atol=1e-4)
    idx.add(clustered(10, seed=16), np.arange(301, 311, dtype=np.int64))
    assert not idx.view().coded  # still off: the codes do not cover the inf row
    idx.clear()
    idx.add(x, np.arange(300, dtype=np.int64))
    assert idx.view().coded


def test_the_codes_are_allocator_blocks_copied_by_resize_and_freed_by_clear() -> None:
    alloc = CheckedAllocator()
    idx = HNSWIndex(alloc, DIM, METRIC_L2, capacity=64, M=6, ef_construction=40)
    x = clustered(60, seed=17)
    idx.add(x, np.arange(60, dtype=np.int64))
    names = {b.label for b in alloc.live()}
    assert {"hnsw.codes", "hnsw.norms", "hnsw.scale"} <= names
    codes = idx.view().codes.array[:60].copy()
    idx.resize(500)
    np.testing.assert_array_equal(idx.view().codes.array[:60], codes)
    assert idx.view().codes.array.shape == (500, DIM)
    idx.clear()
    assert alloc.stats().live_blocks == 0
    alloc.verify()


def test_without_the_coded_walk_no_codes_are_allocated() -> None:
    alloc = NumpyAllocator()
    idx = HNSWIndex(alloc, DIM, METRIC_L2, capacity=64, coded_walk=False)
    idx.add(clustered(50, seed=18), np.arange(50, dtype=np.int64))
    assert not {"hnsw.codes", "hnsw.norms", "hnsw.scale"} & {b.label for b in alloc.live()}
    assert not idx.view().coded
    assert idx.nbytes() == sum(b.nbytes for b in alloc.live())
