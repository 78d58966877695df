"""One method per scenario op: what the engine is asked to do, and what the oracle expects.

Apart from the replay loop (`child_replay.Replayer`, which mixes this class in) so that adding
an op means adding one `op_<name>` method here (and its keys in `scenario_parse.STEP_KEYS`),
without reading the loop, the measurements or the confirmation repeats. Each handler gets the
planned cycle, the step's index and the `Step`, and fills the step's `StepEvent` (a `check`, a
recall, or `skipped` when the engine lacks what the op needs).
"""

from __future__ import annotations

import gc
import math
from typing import Any

import numpy as np

from .datagen import DataGen
from .engines.base import Engine
from .oracle import Oracle, dedupe
from .records import StepEvent
from .scenario_model import PlannedCycle, Scenario, Step


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


class StepOps:
    """The op handlers; `Replayer` provides the state they read and change."""

    scenario: Scenario
    engine: Engine
    data: DataGen
    oracle: Oracle
    open_dim: int | None
    last_dim: int | None

    def ensure_open(self, dim: int) -> None:
        if self.open_dim != dim:
            self.engine.open(dim, self.scenario.metric)
            self.open_dim = dim
            self.last_dim = dim

    def op_open(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.ensure_open(pc.dimension)

    def op_insert(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.ensure_open(pc.dimension)
        n = int(step.count or 0)
        if step.duplicates:
            self._insert_duplicates(pc, si, step, ev)
            return
        if step.reuse_deleted:
            reuse = np.asarray(self.oracle.deleted[:n], dtype=np.int64)
            ids = np.concatenate([reuse, self.data.next_ids(n - len(reuse))])
        else:
            ids = self.data.next_ids(n)
        vectors = self.data.vectors(n, pc.dimension, pc.index, si)
        meta = self.data.metadata(ids, pc.index) if step.metadata else None
        size = step.batch or n
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            m = meta[lo:hi] if meta is not None else None
            self.engine.insert(ids[lo:hi], vectors[lo:hi], m)
            self.oracle.insert(ids[lo:hi], vectors[lo:hi], m)

    def _insert_duplicates(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """One batch whose last `duplicates` rows repeat ids of its earlier rows (with other
        vectors). Refusing the whole batch is always acceptable, and must leave the engine as
        it was (the count and later searches say whether it did); accepting it must keep one
        row per id, the one the adapter's `duplicate_ids` policy names, checked at once with
        `get` when the engine has it. Accepting under a declared "refuse" is a wrong-result."""
        n, m = int(step.count or 0), int(step.duplicates or 0)
        fresh = self.data.next_ids(n - m)
        repeated = self.data.pick(fresh, m, pc.index, si)
        ids = np.concatenate([fresh, repeated])
        vectors = self.data.vectors(n, pc.dimension, pc.index, si)
        meta = self.data.metadata(ids, pc.index) if step.metadata else None
        policy = str(getattr(self.engine.capabilities, "duplicate_ids", "refuse"))
        check: dict[str, Any] = {"duplicates": m, "policy": policy, "refused": False}
        try:
            self.engine.insert(ids, vectors, meta)
        except Exception as exc:
            if getattr(exc, "verdict", None):  # a memory fault is not a refusal
                raise
            check["refused"] = True
            check["refusal"] = f"{type(exc).__name__}: {_first_line(str(exc))}"[:300]
            ev.check = check
            return
        keep = dedupe(ids, "first-wins" if policy == "first-wins" else "last-wins")
        self.oracle.insert(
            ids[keep], vectors[keep], [meta[j] for j in keep.tolist()] if meta else None
        )
        get = getattr(self.engine, "get", None)
        if get is not None:
            rows = self._get_rows(get, repeated)
            check.update(self.oracle.check_get(repeated, rows))
        ev.check = check

    def op_upsert(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """Re-insert live ids with new vectors: the new row must win, the old one be gone."""
        if not getattr(self.engine.capabilities, "upsert", False):
            ev.skipped = f"{self.engine.name} cannot upsert"
            return
        ids = self.data.pick(self.oracle.live_ids(), int(step.count or 0), pc.index, si)
        dim = self.open_dim or pc.dimension
        vectors = self.data.vectors(len(ids), dim, pc.index, si)
        meta = self.data.metadata(ids, pc.index) if step.metadata else None
        if len(ids):
            self.engine.upsert(ids, vectors, meta)
            self.oracle.insert(ids, vectors, meta)
        ev.check = {"upserted": len(ids)}

    def op_reopen(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """Close and open the same store: every row must still be there."""
        if not getattr(self.engine.capabilities, "reopen", False):
            ev.skipped = f"{self.engine.name} cannot reopen a store keeping its rows"
            return
        self.engine.reopen()

    def op_compact(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        if not getattr(self.engine.capabilities, "compact", False):
            ev.skipped = f"{self.engine.name} has no compact"
            return
        self.engine.compact()

    def op_flush(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        if not getattr(self.engine.capabilities, "flush", False):
            ev.skipped = f"{self.engine.name} has no flush"
            return
        self.engine.flush()

    def op_delete_filter(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        """Delete by metadata filter: the oracle deletes the live rows that match."""
        if not getattr(self.engine.capabilities, "delete_filter", False):
            ev.skipped = f"{self.engine.name} cannot delete by filter"
            return
        flt = step.filter_dict() or {}
        self.engine.delete_filter(flt)
        ev.check = {"deleted": len(self.oracle.delete_filter(flt)), "filter": flt}

    def op_search(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        flt = step.filter_dict()
        dim = self.open_dim or self.last_dim or pc.dimension
        k = int(step.k or 10)
        queries = self.data.queries(int(step.queries or 10), dim, pc.index, si)
        ids, dists = self.engine.search(queries, k, flt)
        check = self.oracle.check_search(queries, k, ids, flt, dists)
        ev.recall = check["recall"]
        ev.min_recall = step.min_recall
        ev.check = check

    def op_get(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        get = self.engine.get  # type: ignore[attr-defined]  # present: step_skip_reason
        ids = self.data.pick(self.oracle.live_ids(), int(step.count or 10), pc.index, si)
        ev.check = self.oracle.check_get(ids, self._get_rows(get, ids))

    @staticmethod
    def _get_rows(get: Any, ids: np.ndarray) -> list[Any]:
        """One row (or None: not held) per live id. An adapter may return None rows or raise
        KeyError; on KeyError each id is asked alone, so the lost rows are named, and a lost
        row is a wrong-result, not an error of the step."""
        if not len(ids):
            return []
        try:
            rows = get(ids)
        except KeyError:
            rows = []
            for i in ids:
                try:
                    rows.append(get(np.array([i], dtype=np.int64))[0])
                except KeyError:
                    rows.append(None)
            return rows
        if isinstance(rows, np.ndarray):
            return list(rows)
        rows = list(rows)
        if len(rows) != len(ids):
            raise ValueError(f"get returned {len(rows)} rows for {len(ids)} ids")
        return rows

    def op_delete(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        live = self.oracle.live_ids()
        n = step.count if step.count is not None else math.ceil((step.fraction or 0) * len(live))
        ids = self.data.pick(live, n, pc.index, si)
        if len(ids):
            self.engine.delete(ids)
            self.oracle.delete(ids)
        ev.check = {"deleted": len(ids)}

    def op_clear(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.engine.clear()
        self.oracle.clear()
        self.open_dim = None

    def op_destroy(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.engine.close()
        self.oracle.clear()
        self.open_dim = None

    def op_reload(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        self.engine.reload()
        self.oracle.clear()
        self.open_dim = None

    def op_checkpoint(self, pc: PlannedCycle, si: int, step: Step, ev: StepEvent) -> None:
        gc.collect()
