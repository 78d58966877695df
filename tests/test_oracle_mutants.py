"""Judgements of the oracle that surviving mutants showed untested (docs/mutation.md).

Each test pins one behaviour a user relies on when the oracle calls an answer clean or wrong.
"""

from __future__ import annotations

import numpy as np
from memcycle.oracle import Oracle, answer_violations, dedupe


def _oracle(metric: str = "l2", n: int = 6, dim: int = 4) -> Oracle:
    o = Oracle(metric)
    rows = np.arange(n * dim, dtype=np.float32).reshape(n, dim) / 10.0 + 0.05
    o.insert(np.arange(1, n + 1, dtype=np.int64), rows)
    return o


def test_padding_distances_after_the_hits_are_not_judged_for_order() -> None:
    ids = np.array([[3, 5, -1, -1]])
    dists = np.array([[1.0, 2.0, 0.0, -7.0]])  # padding may hold anything
    assert answer_violations(ids, dists, 1, 4) == []


def test_a_farthest_first_answer_is_still_judged_for_stale_ids_and_recall() -> None:
    o = _oracle()
    o.delete(np.array([2], dtype=np.int64))
    q = np.zeros((1, 4), dtype=np.float32)
    got = np.array([[1, 2]])  # 2 was deleted: stale; distances farthest first: protocol
    result = o.check_search(q, 2, got, got_dists=np.array([[5.0, 1.0]]))
    assert result["protocol"] and "nearest-first" in result["protocol"][0]
    assert result["stale_ids"] == [2]
    assert result["recall"] == 0.5


def test_reported_id_lists_are_capped_at_twenty_with_the_full_count_beside_them() -> None:
    o = Oracle("l2")
    o.insert(np.arange(1, 31, dtype=np.int64), np.ones((30, 2), dtype=np.float32))
    o.delete(np.arange(1, 26, dtype=np.int64))
    got = np.concatenate([np.arange(1, 26), np.arange(101, 126)])[None, :]
    result = o.check_search(np.ones((1, 2), dtype=np.float32), 50, got)
    assert result["n_stale"] == 25 and result["stale_ids"] == list(range(1, 21))
    assert result["n_unknown"] == 25 and result["unknown_ids"] == list(range(101, 121))


def test_filtered_out_ids_are_capped_at_twenty() -> None:
    o = Oracle("l2")
    meta = [{"tag": "a" if i < 5 else "b"} for i in range(30)]
    o.insert(np.arange(1, 31, dtype=np.int64), np.ones((30, 2), dtype=np.float32), meta)
    got = np.arange(6, 31)[None, :]  # 25 rows that do not pass the filter
    result = o.check_search(np.ones((1, 2), dtype=np.float32), 25, got, flt={"tag": "a"})
    assert result["filtered_out_ids"] == list(range(6, 26))


def test_cosine_get_accepts_the_normalised_row_of_a_short_vector() -> None:
    o = Oracle("cosine")
    short = np.array([[0.3, 0.0, 0.4, 0.0]], dtype=np.float32)  # norm 0.5
    o.insert(np.array([1], dtype=np.int64), short)
    result = o.check_get(np.array([1], dtype=np.int64), [short[0] / 0.5])
    assert result["n_mismatched"] == 0


def test_cosine_get_accepts_the_vector_exactly_as_inserted() -> None:
    o = Oracle("cosine")
    v = np.array([[3.0, 0.0, 4.0, 0.0]], dtype=np.float32)
    o.insert(np.array([7], dtype=np.int64), v)
    assert o.check_get(np.array([7], dtype=np.int64), [v[0].copy()])["n_mismatched"] == 0


def test_cosine_get_rejects_a_row_that_is_neither_the_vector_nor_its_normalised_form() -> None:
    o = Oracle("cosine")
    v = np.array([[3.0, 0.0, 4.0, 0.0]], dtype=np.float32)
    o.insert(np.array([7], dtype=np.int64), v)
    wrong = v[0] / 5.0 + 0.1
    result = o.check_get(np.array([7], dtype=np.int64), [wrong])
    assert result["mismatched_ids"] == [7] and result["n_mismatched"] == 1


def test_get_reports_a_none_row_as_missing_and_a_wrong_shape_as_mismatched() -> None:
    o = _oracle()
    result = o.check_get(np.array([1, 2], dtype=np.int64), [None, np.zeros(3)])
    assert result["missing_ids"] == [1] and result["mismatched_ids"] == [2]
    assert result["checked"] == 2


def test_dedupe_keeps_the_last_or_the_first_row_of_each_repeated_id_in_batch_order() -> None:
    ids = np.array([5, 7, 5, 9, 7], dtype=np.int64)
    assert dedupe(ids, "last-wins").tolist() == [2, 3, 4]
    assert dedupe(ids, "first-wins").tolist() == [0, 1, 3]


def test_minus_one_padding_is_neither_a_duplicate_nor_an_unknown_id() -> None:
    o = _oracle(n=1)
    result = o.check_search(np.zeros((1, 4), dtype=np.float32), 3, np.array([[1, -1, -1]]))
    assert result["duplicates"] == 0 and result["n_unknown"] == 0
    assert result["recall"] == 1.0 and result["short_rows"] == 0


def test_an_order_violation_names_the_first_five_rows_and_counts_them_all() -> None:
    ids = np.tile(np.array([[1, 2]]), (7, 1))
    dists = np.tile(np.array([[2.0, 1.0]]), (7, 1))
    (line,) = answer_violations(ids, dists, 7, 2)
    assert "in 7 row(s) [0, 1, 2, 3, 4]" in line


def test_cosine_distance_does_not_depend_on_the_query_length() -> None:
    from memcycle.oracle import distances

    rows = np.array([[1.0, 0.0], [1.0, 1.0]])
    near = distances("cosine", np.array([[3.0, 0.0]]), rows)
    assert np.allclose(near, [[0.0, 1.0 - 1.0 / np.sqrt(2.0)]])


def test_a_decrease_within_the_relative_tolerance_is_not_an_order_violation() -> None:
    prev = 1.0
    ids = np.array([[1, 2]])
    dists = np.array([[prev, prev - 1e-5 * prev]])
    assert answer_violations(ids, dists, 1, 2) == []


def test_id_zero_held_by_the_oracle_is_an_expected_result() -> None:
    o = Oracle("l2")
    o.insert(np.array([0, 1], dtype=np.int64), np.eye(2, dtype=np.float32))
    result = o.check_search(np.zeros((1, 2), dtype=np.float32), 2, np.array([[0, 1]]))
    assert result["expected_results"] == 2 and result["recall"] == 1.0


def test_ids_of_the_wrong_shape_have_recall_zero_and_name_the_shape() -> None:
    o = _oracle()
    q = np.zeros((2, 4), dtype=np.float32)
    result = o.check_search(q, 2, np.array([1, 2, 3]), got_dists=np.zeros(3))
    assert result["recall"] == 0.0 and result["returned_results"] is None
    assert result["expected_results"] == 4
    assert result["duplicates"] == 0 and result["short_rows"] == 0
    assert any("shape" in line for line in result["protocol"])


def test_ids_of_the_wrong_shape_still_count_id_zero_as_expected() -> None:
    o = Oracle("l2")
    o.insert(np.array([0, 1], dtype=np.int64), np.eye(2, dtype=np.float32))
    result = o.check_search(
        np.zeros((1, 2), dtype=np.float32), 2, np.array([0]), got_dists=np.zeros(1)
    )
    assert result["expected_results"] == 2


def test_mismatched_and_missing_get_ids_are_capped_at_twenty() -> None:
    o = Oracle("l2")
    o.insert(np.arange(1, 51, dtype=np.int64), np.ones((50, 2), dtype=np.float32))
    rows: list[np.ndarray | None] = [np.zeros(2)] * 25 + [None] * 25
    result = o.check_get(np.arange(1, 51, dtype=np.int64), rows)
    assert result["n_mismatched"] == 25 and result["mismatched_ids"] == list(range(1, 21))
    assert result["n_missing"] == 25 and result["missing_ids"] == list(range(26, 46))
