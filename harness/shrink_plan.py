"""The cycle table as the shrinker edits it: a `Plan` (dimension and steps per cycle), its
size and cost, its validity, and the scenario dict written back from it."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

from .protocol import RESET_OPS
from .scenario import Cycle, Scenario, Step
from .scenario_toml import cycle_to_dict

NUMERIC_FIELDS = ("count", "batch", "queries", "k")

# one cycle as it runs: (dimension, steps)
Plan = tuple[tuple[int, tuple[Step, ...]], ...]


def plan_of(sc: Scenario) -> Plan:
    return tuple((pc.dimension, pc.steps) for pc in sc.plan)


def size_text(plan: Plan) -> str:
    """'5 cycles x 3 steps x 10,000 rows' (steps of the longest cycle, the largest insert)."""
    steps = max((len(s) for _d, s in plan), default=0)
    rows = max((st.count or 0 for _d, s in plan for st in s if st.op == "insert"), default=0)
    n, tables = len(plan), len(merged_cycles(plan))
    in_tables = f" ({tables} table{'s' if tables != 1 else ''})" if tables != n else ""
    return f"{n} cycle{'s' if n != 1 else ''}{in_tables} x {steps} steps x {rows:,} rows"


def valid(plan: Plan) -> bool:
    """The generator's invariant: a cycle changes dimension only after a reset, since an
    open engine at another dimension is an error on any engine, not a finding."""
    for (d0, steps0), (d1, _s1) in itertools.pairwise(plan):
        if d0 != d1 and steps0[-1].op not in RESET_OPS:
            return False
    return True


def cost(plan: Plan) -> tuple[int, ...]:
    """How big a table is, compared in this order: cycles run, steps run, [[cycle]] tables
    written, row counts (inserts, deletes, gets, queries, k, batches), flags set, dimension."""
    steps = [st for _d, ss in plan for st in ss]
    numbers = sum(int(getattr(st, f, None) or 0) for st in steps for f in NUMERIC_FIELDS)
    flags = sum(
        bool(st.batch) + st.metadata + st.reuse_deleted + (st.filter is not None) for st in steps
    )
    tables = len(merged_cycles(plan))
    return (len(plan), len(steps), tables, numbers, flags, sum(d for d, _s in plan))


def merged_cycles(plan: Plan) -> list[Cycle]:
    """Consecutive identical cycles as one table with `repeat`."""
    out: list[Cycle] = []
    for dim, steps in plan:
        if out and out[-1].dimension == dim and out[-1].steps == steps:
            out[-1] = dataclasses.replace(out[-1], repeat=out[-1].repeat + 1)
        else:
            out.append(Cycle(steps=steps, dimension=dim))
    return out


def scenario_dict(
    base: Scenario,
    plan: Plan,
    *,
    name: str,
    engine: str,
    allocator: str,
    faults: Sequence[str],
    verdict: str | None = None,
    description: str = "",
    note: str = "",
) -> dict[str, Any]:
    cycles = merged_cycles(plan)
    top_dim = cycles[0].dimension
    rows = []
    for c in cycles:
        d = cycle_to_dict(c if c.dimension != top_dim else dataclasses.replace(c, dimension=None))
        rows.append(d)
    data: dict[str, Any] = {"name": name}
    if description:
        data["description"] = description
    data["dimension"] = top_dim
    if base.metric != "l2":
        data["metric"] = base.metric
    data["seed"] = base.seed
    data["engines"] = [engine]
    if base.requires:
        data["requires"] = list(base.requires)
    all_faults = list(dict.fromkeys([*base.faults, *faults]))
    if all_faults:
        data["faults"] = all_faults
    if base.engine_options:
        data["engine"] = dict(base.engine_options)
    data["cycle"] = rows
    if verdict is not None:
        expect: dict[str, Any] = {
            "verdict": {allocator: verdict} if allocator != "numpy" else verdict
        }
        if note:
            expect["note"] = note
        data["expect"] = expect
    return data
