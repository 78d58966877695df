"""The ops upsert, reopen, compact, flush, delete_filter and insert `duplicates`, replayed through
the child's Replayer (in process) on refimpl and on small test engines, and judged by checks.

refimpl is the known-good engine: each op must come out clean on it, so the oracle's semantics
are the engine's. The test engines break one contract each and must be named for it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from memcycle.checks import judge
from memcycle.child import Replayer
from memcycle.engines.base import EngineBase, EngineConfig
from memcycle.engines.refimpl_adapter import make_refimpl
from memcycle.protocol import EventWriter
from memcycle.recording import Recorder
from memcycle.records import RunRecord, StepEvent
from memcycle.scenario import ScenarioError, parse_scenario


def _replay(text: str, engine: Any) -> RunRecord:
    """Run a scenario in this process (no memray) and judge it like the parent does."""
    sc = parse_scenario("dimension = 8\nseed = 3\n" + text, "ops.toml")
    stream = io.StringIO()
    rep = Replayer(sc, engine, Recorder(None, use_tracemalloc=False), EventWriter(stream))
    ran = rep.replay()
    record = RunRecord("ops", "ops.toml", engine.name, "numpy", [], "clean")
    record.steps = [
        StepEvent(**{k: v for k, v in p.items() if k != "kind"})
        for p in map(json.loads, stream.getvalue().splitlines())
        if p["kind"] == "step"
    ]
    if ran:
        record.steps.append(rep.teardown())
    record.exit = {"kind": "clean" if ran else "step-error"}
    return judge(record, sc.plan)


def _step(record: RunRecord, op: str) -> StepEvent:
    return next(ev for ev in record.steps if ev.op == op)


class DictEngine(EngineBase):
    """Exact in-memory engine with every new op; subclasses break one of them."""

    name = "dict-engine"
    metadata_filter = True
    duplicate_ids = "last-wins"

    def open(self, dimension: int, metric: str = "l2") -> None:
        self.rows: dict[int, tuple[np.ndarray, dict[str, Any] | None]] = getattr(self, "rows", {})

    def insert(self, ids, vectors, metadata=None) -> None:  # type: ignore[no-untyped-def]
        for j, i in enumerate(ids.tolist()):
            self.rows[i] = (vectors[j].copy(), metadata[j] if metadata else None)

    def upsert(self, ids, vectors, metadata=None) -> None:  # type: ignore[no-untyped-def]
        self.insert(ids, vectors, metadata)

    def search(self, queries, k, filter=None):  # type: ignore[no-untyped-def]
        keys = [
            i
            for i, (_, m) in self.rows.items()
            if not filter or (m and all(m.get(a) == b for a, b in filter.items()))
        ]
        out_i = np.full((len(queries), k), -1, np.int64)
        out_d = np.full((len(queries), k), np.inf, np.float32)
        if keys:
            mat = np.stack([self.rows[i][0] for i in keys]).astype(np.float64)
            d = ((queries[:, None, :] - mat[None]) ** 2).sum(-1)
            order = np.argsort(d, axis=1)[:, :k]
            n = order.shape[1]
            out_i[:, :n] = np.array(keys)[order]
            out_d[:, :n] = np.take_along_axis(d, order, 1)
        return out_i, out_d

    def get(self, ids):  # type: ignore[no-untyped-def]
        return [self.rows[i][0] if i in self.rows else None for i in ids.tolist()]

    def delete(self, ids) -> None:  # type: ignore[no-untyped-def]
        for i in ids.tolist():
            self.rows.pop(i, None)

    def delete_filter(self, filter: dict[str, Any]) -> None:
        for i in [
            i
            for i, (_, m) in self.rows.items()
            if m and all(m.get(a) == b for a, b in filter.items())
        ]:
            del self.rows[i]

    def reopen(self) -> None:
        pass  # the rows dict is the "store": reopening keeps it

    def compact(self) -> None:
        pass

    def count(self) -> int:
        return len(getattr(self, "rows", {}))

    def clear(self) -> None:
        self.rows = {}


class KeepsOldOnUpsert(DictEngine):
    def upsert(self, ids, vectors, metadata=None) -> None:  # type: ignore[no-untyped-def]
        pass  # ignores the new vectors: the old rows survive


class LosesRowsOnReopen(DictEngine):
    def reopen(self) -> None:
        for i in list(self.rows)[:3]:
            del self.rows[i]
        self.rows = dict(self.rows)


class GetRaisesKeyError(DictEngine):
    """Loses rows 1 and 2 and says so with KeyError, as the old adapter contract asked."""

    def get(self, ids):  # type: ignore[no-untyped-def]
        if any(i in (1, 2) for i in ids.tolist()):
            raise KeyError(1)
        return super().get(ids)


class AcceptsDuplicatesDeclaresRefuse(DictEngine):
    duplicate_ids = "refuse"


class FirstWinsDeclaresLast(DictEngine):
    def insert(self, ids, vectors, metadata=None) -> None:  # type: ignore[no-untyped-def]
        for j, i in enumerate(ids.tolist()):
            self.rows.setdefault(i, (vectors[j].copy(), metadata[j] if metadata else None))


@pytest.fixture(scope="module")
def refimpl() -> Any:
    return make_refimpl(EngineConfig())


def test_upsert_on_refimpl_makes_the_new_vector_win(refimpl: Any) -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 60, metadata = true }, { op = "upsert", count = 20 },
          { op = "get", count = 60 }, { op = "search", queries = 5, k = 5 }, { op = "clear" } ]""",
        refimpl,
    )
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    assert _step(rec, "upsert").check == {"upserted": 20}
    assert _step(rec, "get").check["checked"] == 60 and _step(rec, "upsert").count == 60


def test_an_upsert_that_keeps_the_old_vector_is_a_wrong_result() -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 40 }, { op = "upsert", count = 10 }, { op = "get", count = 40 } ]""",
        KeepsOldOnUpsert(),
    )
    assert rec.verdict == "wrong-result"
    assert "10 row(s) differ from what was inserted" in rec.findings[0].summary


def test_a_duplicate_batch_refused_by_refimpl_leaves_the_state_unchanged(refimpl: Any) -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 30 }, { op = "insert", count = 20, duplicates = 5 },
          { op = "search", queries = 5, k = 5 }, { op = "get", count = 30 }, { op = "clear" } ]""",
        refimpl,
    )
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    dup = rec.steps[1]
    assert dup.check["refused"] is True and "DuplicateIdError" in dup.check["refusal"]
    assert dup.count == dup.expected_count == 30


def test_a_duplicate_batch_deduped_as_declared_keeps_one_row_per_id() -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 20, duplicates = 5 }, { op = "get", count = 15 } ]""",
        DictEngine(),
    )
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    assert rec.steps[0].count == rec.steps[0].expected_count == 15
    assert rec.steps[0].check["checked"] == 5 and rec.steps[0].check["n_mismatched"] == 0


def test_a_duplicate_batch_accepted_though_refusal_was_declared_is_a_wrong_result() -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 20, duplicates = 5 } ]""",
        AcceptsDuplicatesDeclaresRefuse(),
    )
    assert rec.verdict == "wrong-result"
    assert "declares duplicate_ids = 'refuse'" in rec.findings[0].summary


def test_a_duplicate_batch_kept_first_while_last_wins_was_declared_is_a_wrong_result() -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 20, duplicates = 5 } ]""",
        FirstWinsDeclaresLast(),
    )
    assert rec.verdict == "wrong-result"
    assert "5 row(s) differ" in rec.findings[0].summary


def test_delete_filter_on_refimpl_deletes_exactly_the_matching_rows(refimpl: Any) -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 80, metadata = true }, { op = "delete_filter", filter = { tag = 1 } },
          { op = "search", queries = 5, k = 5 }, { op = "search", queries = 5, k = 5, filter = { tag = 1 } },
          { op = "clear" } ]""",
        refimpl,
    )
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    step = rec.steps[1]
    assert step.check["deleted"] == 20 and step.count == step.expected_count == 60


def test_a_lost_row_in_get_is_a_wrong_result_naming_the_ids() -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 10 }, { op = "get", count = 10 } ]""",
        GetRaisesKeyError(),
    )
    assert rec.verdict == "wrong-result", [f.summary for f in rec.findings]
    summary = rec.findings[0].summary
    assert "2 live row(s) lost" in summary and "1" in summary and "2" in summary
    assert rec.steps[1].check["missing_ids"] == [1, 2]


def test_reopen_on_refimpl_is_skipped_with_the_reason(refimpl: Any) -> None:
    rec = _replay(
        """[[cycle]]
steps = [ { op = "insert", count = 10 }, { op = "reopen" }, { op = "compact" }, { op = "clear" } ]""",
        refimpl,
    )
    # judged on the steps that ran (clean), the skipped ones listed with their reasons
    assert rec.verdict == "clean"
    skipped = " ".join(f.summary for f in rec.findings if f.verdict == "skipped")
    assert "cannot reopen a store keeping its rows" in skipped
    assert "has no compact" in skipped


def test_a_reopen_that_keeps_every_row_is_clean_and_one_that_loses_rows_is_not() -> None:
    text = """[[cycle]]
steps = [ { op = "insert", count = 30 }, { op = "reopen" }, { op = "get", count = 30 },
          { op = "search", queries = 5, k = 5 } ]"""
    assert _replay(text, DictEngine()).verdict == "clean"
    lost = _replay(text, LosesRowsOnReopen())
    assert lost.verdict == "wrong-result"
    assert any("count 27 != expected 30 after reopen" in f.summary for f in lost.findings)


@pytest.mark.parametrize(
    ("step", "needle"),
    [
        ('{ op = "insert", count = 10, duplicates = 6 }', "at most half of count"),
        ('{ op = "insert", count = 10, batch = 5, duplicates = 2 }', "one batch of fresh ids"),
        ('{ op = "upsert" }', "an upsert needs 'count'"),
        ('{ op = "delete_filter" }', "needs 'filter'"),
        ('{ op = "delete_filter", filter = {} }', "empty filter would delete every row"),
        ('{ op = "reopen", count = 3 }', "unknown key 'count'"),
    ],
)
def test_bad_new_op_steps_are_refused_with_the_reason(step: str, needle: str) -> None:
    with pytest.raises(ScenarioError, match=needle):
        parse_scenario(f"dimension = 4\n[[cycle]]\nsteps = [ {step} ]", "bad.toml")


def test_the_omendb_tables_are_bundled_valid_and_left_out_of_the_default_suite() -> None:
    from memcycle.bundled import scenarios_dir
    from memcycle.scenario import find_scenarios, load_scenario

    own = find_scenarios([scenarios_dir() / "omendb"])
    assert len(own) == 6
    assert all(load_scenario(p).engines == ("omendb",) for p in own)
    default = find_scenarios([scenarios_dir()])
    assert default and not any("omendb" in p.relative_to(scenarios_dir()).parts for p in default)
