"""Judgements of the oracle that surviving mutants showed untested (docs/mutation.md).

Each test pins one behaviour a user relies on when the oracle calls an answer clean or wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
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


# -- the full run's survivors (main 9e1476c) -------------------------------------------------


def _one_query(o: Oracle, k: int, got: list[int], q: list[float]) -> dict[str, Any]:
    """The judgement of one query `q` answered with the ids `got`."""
    return o.check_search(np.array([q]), k, np.array([got], dtype=np.int64))


def test_an_answer_in_an_unreadable_form_is_a_protocol_violation_not_a_crash() -> None:
    (line,) = answer_violations([[1, 2], [3]], [[0.0, 1.0], [0.0]], 2, 2)
    assert line.startswith("answer is not an array pair: ValueError: ")


def test_id_zero_in_an_answer_is_a_hit_not_padding() -> None:
    assert answer_violations(np.array([[0, 1]]), np.array([[0.5, 0.7]]), 1, 2) == []
    nan_at_zero = answer_violations(np.array([[0, 1]]), np.array([[np.nan, 0.7]]), 1, 2)
    assert nan_at_zero == ["1 hit(s) with a NaN or infinite distance"]


def test_an_id_of_minus_two_is_a_protocol_violation() -> None:
    (line,) = answer_violations(np.array([[1, -2]]), np.array([[0.0, 1.0]]), 1, 2)
    assert line == "ids hold negative values other than -1 padding: [-2]"


def test_padding_before_a_hit_is_found_in_an_answer_of_two_columns() -> None:
    problems = answer_violations(np.array([[-1, 3]]), np.array([[0.0, 1.0]]), 1, 2)
    assert problems == ["-1 padding before a hit in 1 row(s) [0]"]


def test_padding_before_a_hit_names_the_first_five_rows_and_counts_them_all() -> None:
    ids = np.tile(np.array([[-1, 3]]), (7, 1))
    (line,) = answer_violations(ids, np.zeros((7, 2)), 7, 2)
    assert line == "-1 padding before a hit in 7 row(s) [0, 1, 2, 3, 4]"


def test_a_padding_slot_between_hits_is_never_compared_for_order() -> None:
    ids = np.array([[1, -1, 3]])
    dists = np.array([[1.0, 5.0, 2.0]])  # the padding slot's distance is anything
    assert answer_violations(ids, dists, 1, 3) == ["-1 padding before a hit in 1 row(s) [0]"]


def test_a_decrease_after_the_first_pair_of_a_row_is_an_order_violation() -> None:
    (line,) = answer_violations(np.array([[1, 2, 3]]), np.array([[1.0, 3.0, 2.0]]), 1, 3)
    assert line == "distances not nearest-first (decreasing) in 1 row(s) [0]"


def test_a_decrease_just_past_the_tolerance_is_an_order_violation() -> None:
    ids = np.array([[1, 2]])
    assert answer_violations(ids, np.array([[1.0, 1.0 - 1.5e-5]]), 1, 2) != []


def test_the_order_tolerance_grows_with_a_large_distance() -> None:
    # 1e-5 of 1000 is 0.01: a float32 engine's rounding at that size is not a reordering
    ids = np.array([[1, 2]])
    assert answer_violations(ids, np.array([[1000.0, 1000.0 - 0.005]]), 1, 2) == []
    assert answer_violations(ids, np.array([[1000.0, 1000.0 - 0.02]]), 1, 2) != []


def _ip_pair(second: float) -> Oracle:
    """ip oracle: id 1 at distance -0.0 from the query [1], id 2 at distance `second`."""
    o = Oracle("ip")
    o.insert(np.array([1, 2], dtype=np.int64), np.array([[0.0], [-second]], dtype=np.float64))
    return o


def test_a_row_exactly_at_the_tie_tolerance_past_the_kth_distance_is_a_hit() -> None:
    assert _one_query(_ip_pair(1e-5), 1, [2], q=[1.0])["recall"] == 1.0


def test_a_row_just_past_the_tie_tolerance_is_a_miss() -> None:
    assert _one_query(_ip_pair(1.5e-5), 1, [2], q=[1.0])["recall"] == 0.0


def test_the_tie_tolerance_grows_with_a_large_kth_distance() -> None:
    o = Oracle("l2")
    o.insert(np.array([1, 2], dtype=np.int64), np.array([[1000.0], [1000.001]]))
    assert _one_query(o, 1, [2], q=[0.0])["recall"] == 1.0  # +2e-6 relative: a tie


def test_a_deleted_row_with_the_highest_id_is_stale() -> None:
    o = _oracle(n=3)
    o.delete(np.array([3], dtype=np.int64))
    result = _one_query(o, 2, [1, 3], q=[0.0] * 4)
    assert result["stale_ids"] == [3] and result["n_unknown"] == 0


def test_an_id_returned_before_any_insert_is_unknown_not_stale() -> None:
    o = Oracle("l2")
    result = o.check_search(np.zeros((1, 2)), 1, np.array([[1]]))
    assert result["unknown_ids"] == [1] and result["n_stale"] == 0


def test_the_second_nearest_after_id_zero_is_a_hit() -> None:
    o = Oracle("l2")
    o.insert(np.array([0, 1], dtype=np.int64), np.eye(2, dtype=np.float32))
    result = _one_query(o, 2, [0, 1], q=[1.0, 0.0])  # id 0 at 0, id 1 at 2
    assert result["recall"] == 1.0
    assert result["returned_results"] == 2


def test_an_answer_missing_the_only_row_id_zero_is_a_miss_and_short() -> None:
    o = Oracle("l2")
    o.insert(np.array([0], dtype=np.int64), np.ones((1, 2), dtype=np.float32))
    result = _one_query(o, 1, [-1], q=[0.0, 0.0])
    assert result["recall"] == 0.0 and result["short_rows"] == 1
    assert result["expected_results"] == 1


def test_float_ids_of_the_right_shape_are_not_judged_as_ids() -> None:
    o = _oracle()
    q = np.zeros((1, 4), dtype=np.float32)
    result = o.check_search(q, 2, np.array([[1.0, 2.0]]), got_dists=np.array([[0.1, 0.2]]))
    assert result["protocol"] == ["ids have dtype float64, expected integers"]
    assert result["recall"] == 0.0 and result["returned_results"] is None


def test_an_answer_not_judged_reports_no_stale_or_unknown_ids() -> None:
    o = _oracle()
    result = o.check_search(np.zeros((1, 4)), 2, np.array([7, 8]), got_dists=np.zeros(2))
    assert (result["n_stale"], result["n_unknown"], result["stale_ids"]) == (0, 0, [])
    assert (result["unknown_ids"], result["filtered_out_ids"]) == ([], [])


def test_a_search_of_no_queries_has_recall_one() -> None:
    o = _oracle()
    result = o.check_search(np.zeros((0, 4)), 2, np.zeros((0, 2), dtype=np.int64))
    assert result["recall"] == 1.0 and result["expected_results"] == 0


def test_l2_ground_truth_keeps_distances_below_one_exact() -> None:
    o = Oracle("l2")
    o.insert(np.array([1, 2], dtype=np.int64), np.array([[0.5, 0.0], [0.1, 0.0]]))
    ids, d = o.ground_truth(np.zeros((1, 2)), 2)
    assert ids.tolist() == [[2, 1]]
    assert np.allclose(d, [[0.01, 0.25]])


def test_ground_truth_pads_with_minus_one_and_infinity_when_few_rows_live() -> None:
    ids, d = _oracle(n=2).ground_truth(np.zeros((1, 4)), 4)
    assert ids[0, 2:].tolist() == [-1, -1] and np.isinf(d[0, 2:]).all()


@pytest.mark.parametrize("k", [1, 2, 5])
def test_ground_truth_is_the_nearest_k_of_many_rows(k: int) -> None:
    rng = np.random.default_rng(16)
    rows = rng.normal(size=(300, 3))
    o = Oracle("l2")
    o.insert(np.arange(1, 301, dtype=np.int64), rows)
    q = rng.normal(size=(4, 3))
    ids, _ = o.ground_truth(q, k)
    want = np.argsort(((q[:, None, :] - rows[None, :, :]) ** 2).sum(-1), axis=1)[:, :k] + 1
    assert ids.tolist() == want.tolist()


def test_cosine_distances_of_short_queries_and_rows_are_normalised() -> None:
    from memcycle.oracle import distances, pair_distances

    q = np.array([[0.3, 0.0]])  # norm 0.3
    rows = np.array([[0.1, 0.0], [0.1, 0.1]])  # norms below one
    assert np.allclose(distances("cosine", q, rows), [[0.0, 1.0 - 1.0 / np.sqrt(2.0)]])
    pairs = pair_distances("cosine", np.repeat(q, 2, axis=0), rows)
    assert np.allclose(pairs, [0.0, 1.0 - 1.0 / np.sqrt(2.0)])


def test_get_checks_every_row_after_one_of_the_wrong_shape() -> None:
    o = _oracle()
    result = o.check_get(np.array([1, 2], dtype=np.int64), [np.zeros(3), np.zeros(4)])
    assert result["mismatched_ids"] == [1, 2]


def test_cosine_get_rejects_a_scaled_copy_of_the_normalised_row() -> None:
    o = Oracle("cosine")
    o.insert(np.array([7], dtype=np.int64), np.array([[3.0, 4.0]], dtype=np.float32))
    result = o.check_get(np.array([7], dtype=np.int64), [np.array([0.9, 1.2])])
    assert result["mismatched_ids"] == [7]


def test_last_wins_dedupe_keeps_a_first_row_whose_id_is_not_repeated() -> None:
    assert dedupe(np.array([3, 5, 5], dtype=np.int64), "last-wins").tolist() == [0, 2]


def test_dedupe_of_an_empty_batch_is_empty() -> None:
    for policy in ("last-wins", "first-wins"):
        assert dedupe(np.zeros(0, dtype=np.int64), policy).tolist() == []
