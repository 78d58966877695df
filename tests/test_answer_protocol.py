"""Search answers are checked against the protocol, and short answers are their own finding.

An engine must not be judged clean when it returns k+5 columns, float ids, NaN distances,
farthest-first rows or -1 padding before a hit, nor when it returns fewer than k hits while k
rows are live (recall alone let 4 of 5 such cycles pass on a real engine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from memcycle.oracle import Oracle, answer_violations
from memcycle.runner import run_one


def _oracle(n: int = 50, dim: int = 4) -> tuple[Oracle, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    o = Oracle("l2")
    o.insert(np.arange(1, n + 1, dtype=np.int64), x)
    return o, x, rng.standard_normal((3, dim)).astype(np.float32)


def test_a_well_formed_exact_answer_keeps_the_protocol() -> None:
    o, _, q = _oracle()
    ids, d = o.ground_truth(q, 5)
    assert answer_violations(ids, d.astype(np.float32), 3, 5) == []
    padded = np.full((3, 5), -1, np.int64), np.full((3, 5), np.inf, np.float32)
    assert answer_violations(*padded, 3, 5) == []


@pytest.mark.parametrize(
    ("mangle", "needle"),
    [
        (
            lambda i, d: (np.pad(i, ((0, 0), (0, 5)), constant_values=1), d),
            "ids have shape (3, 10)",
        ),
        (lambda i, d: (i.astype(np.float64), d), "expected integers"),
        (lambda i, d: (i, np.where(np.arange(5) == 2, np.nan, d)), "NaN or infinite"),
        (lambda i, d: (i[:, ::-1].copy(), d[:, ::-1].copy()), "not nearest-first"),
        (
            lambda i, d: (
                np.where(np.arange(5) == 1, -1, i),
                np.where(np.arange(5) == 1, np.inf, d),
            ),
            "-1 padding before a hit",
        ),
        (lambda i, d: (np.where(np.arange(5) == 4, -7, i), d), "negative values other than -1"),
    ],
    ids=["k+5-columns", "float-ids", "nan-distance", "farthest-first", "hole", "negative-id"],
)
def test_each_protocol_violation_is_named(mangle, needle) -> None:
    o, _, q = _oracle()
    ids, d = o.ground_truth(q, 5)
    bad_ids, bad_d = mangle(ids, d)
    problems = answer_violations(bad_ids, bad_d, 3, 5)
    assert any(needle in p for p in problems), problems
    check = o.check_search(q, 5, bad_ids, None, bad_d)
    assert check["protocol"] and any(needle in p for p in check["protocol"])


def test_a_short_answer_with_enough_live_rows_is_counted_per_query() -> None:
    o, _, q = _oracle()
    ids, d = o.ground_truth(q, 10)
    ids[0, 6:] = -1  # 6 of 10 for the first query
    d[0, 6:] = np.inf
    check = o.check_search(q, 10, ids, None, d.astype(np.float32))
    assert check["short_rows"] == 1
    assert check["returned_results"] == 26 and check["expected_results"] == 30


def test_an_answer_short_only_because_few_rows_live_is_not_short() -> None:
    o = Oracle("l2")
    o.insert(np.array([1, 2], np.int64), np.eye(2, 4, dtype=np.float32))
    ids = np.array([[1, 2, -1, -1]], np.int64)
    d = np.array([[0.0, 2.0, np.inf, np.inf]], np.float32)
    check = o.check_search(np.eye(1, 4, dtype=np.float32), 4, ids, None, d)
    assert check["short_rows"] == 0 and check["protocol"] == []


LYING_ENGINE = """
import numpy as np
from memcycle.examples.my_engine import MyEngine


class Lying(MyEngine):
    name = "lying"
    def __init__(self, config, how):
        super().__init__(config)
        self.how = how
    def search(self, queries, k, filter=None):
        ids, d = super().search(queries, k, filter)
        if self.how == "farthest-first":
            return ids[:, ::-1].copy(), d[:, ::-1].copy()
        if self.how == "short":
            ids[:, k // 2 :] = -1
            d[:, k // 2 :] = np.inf
            return ids, d
        if self.how == "extra-columns":
            return np.pad(ids, ((0, 0), (0, 5)), constant_values=-1), np.pad(d, ((0, 0), (0, 5)), constant_values=np.inf)
        return ids, d


def farthest_first(config):
    return Lying(config, "farthest-first")


def short(config):
    return Lying(config, "short")


def extra_columns(config):
    return Lying(config, "extra-columns")
"""

SCENARIO = """
name = "lying-answers"
dimension = 8
[[cycle]]
repeat = 2
steps = [{ op = "insert", count = 200 }, { op = "search", queries = 5, k = 10, min_recall = 0.0 }, { op = "clear" }]
"""


@pytest.mark.parametrize(
    ("factory", "needle"),
    [
        ("farthest_first", "not nearest-first"),
        ("short", "short answers in 5 queries (25 of 50 requested hits returned; 0 stale)"),
        ("extra_columns", "ids have shape (5, 15), expected (5, 10)"),
    ],
)
def test_an_engine_that_lies_in_its_answers_is_a_wrong_result(
    tmp_path: Path, factory, needle
) -> None:
    engine = tmp_path / "lying_engine.py"
    engine.write_text(LYING_ENGINE, encoding="utf-8")
    scenario = tmp_path / "lying.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    rec = run_one(scenario, f"{engine}:{factory}", memray=False)
    assert rec.verdict == "wrong-result", [f.summary for f in rec.findings]
    assert any(needle in f.summary for f in rec.findings), [f.summary for f in rec.findings]
