"""Parse and validate a scenario's TOML text into a `Scenario` (strict: see scenario_fields).

The schema lives here: the keys each table and each op may have (`TOP_KEYS`, `STEP_KEYS`),
the checks one step's fields must pass (`_step`), the sizes this machine can hold
(`_check_sizes`), and the walk over the whole file (`parse_scenario`). See scenarios/SCHEMA.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .scenario_fields import (
    _bool,
    _engine_spec,
    _engine_tables,
    _int,
    _scalar_table,
    _seconds,
    _str,
    _strlist,
    _unknown,
    _verdict,
    _Where,
)
from .scenario_model import (
    ALLOCATORS,
    CAPABILITY_NAMES,
    METRICS,
    OPS,
    Cycle,
    Scenario,
    Step,
    expand_plan,
)

TOP_KEYS = {
    "name",
    "description",
    "dimension",
    "metric",
    "seed",
    "tags",
    "engines",
    "default_engine",
    "requires",
    "faults",
    "engine",
    "cycle",
    "expect",
    "timeout",
}
CYCLE_KEYS = {"repeat", "dimension", "label", "steps"}
EXPECT_KEYS = {"verdict", "note"}
# op -> allowed keys (besides "op")
STEP_KEYS: dict[str, set[str]] = {
    "open": set(),
    "insert": {"count", "batch", "metadata", "reuse_deleted", "duplicates"},
    "search": {"queries", "k", "min_recall", "filter"},
    "get": {"count"},
    "delete": {"count", "fraction"},
    "clear": set(),
    "destroy": set(),
    "reload": set(),
    "checkpoint": set(),
    "upsert": {"count", "metadata"},
    "reopen": set(),
    "compact": set(),
    "flush": set(),
    "delete_filter": {"filter"},
}
DEFAULT_MIN_RECALL = 0.9
# every op may carry its own time limit (seconds), enforced by the parent (harness.hangs)
for _keys in STEP_KEYS.values():
    _keys.add("timeout")

# Sizes a scenario may ask for. The plan is expanded up front (cycle numbers are stable), so
# `repeat` is bounded by the total number of cycles; a step's rows must fit in memory (half of
# this machine's RAM for the float32 vectors of one batch, which the harness itself generates).
MAX_PLANNED_CYCLES = 100_000
MAX_DIMENSION = 1 << 16


def _memory_budget() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total) // 2
    except Exception:  # no psutil or no /proc: a fixed 4 GiB
        return 4 << 30


def _check_sizes(w: _Where, cycles: list[Cycle], dimension: int | None) -> None:
    """Refuse a plan this machine cannot hold, naming the cycle, step and field."""
    total = sum(c.repeat for c in cycles)
    if total > MAX_PLANNED_CYCLES:
        worst = max(range(len(cycles)), key=lambda i: cycles[i].repeat)
        raise w.err(
            f"the plan has {total:,} cycles (at most {MAX_PLANNED_CYCLES:,}); lower 'repeat'",
            cycle=worst + 1,
            key="repeat",
        )
    budget = _memory_budget()
    for ci, c in enumerate(cycles, start=1):
        dim = c.dimension or dimension or 1
        for si, st in enumerate(c.steps):
            rows = {"insert": st.count, "upsert": st.count, "search": st.queries}.get(st.op)
            if rows and rows * dim * 4 > budget:
                key = "queries" if st.op == "search" else "count"
                raise w.err(
                    f"{rows:,} rows x dimension {dim} is {rows * dim * 4 / (1 << 30):.1f} GiB of "
                    f"float32 for one step; this machine holds at most {budget / (1 << 30):.1f} "
                    "GiB for it",
                    cycle=ci,
                    step=si,
                    key=key,
                )


def _step(w: _Where, raw: Any, cycle: int, index: int) -> Step:
    loc = {"cycle": cycle, "step": index}
    if not isinstance(raw, dict):
        raise w.err(
            f"a step must be a table like {{ op = 'insert', count = 10 }}, got {raw!r}", **loc
        )
    if "op" not in raw:
        raise w.err("missing 'op'", key="op", **loc)
    op = raw["op"]
    if op not in STEP_KEYS:
        raise w.err(f"unknown op {op!r}; expected one of {', '.join(OPS)}", key="op", **loc)
    _unknown(w, raw, STEP_KEYS[op] | {"op"}, f"a '{op}' step", **loc)
    kw: dict[str, Any] = {}
    if "timeout" in raw:
        kw["timeout"] = _seconds(w, raw["timeout"], "timeout", **loc)
    if op == "insert":
        if "count" not in raw:
            raise w.err("an insert needs 'count'", key="count", **loc)
        kw["count"] = _int(w, raw["count"], "count", **loc)
        if "batch" in raw:
            kw["batch"] = _int(w, raw["batch"], "batch", **loc)
        if "metadata" in raw:
            kw["metadata"] = _bool(w, raw["metadata"], "metadata", **loc)
        if "reuse_deleted" in raw:
            kw["reuse_deleted"] = _bool(w, raw["reuse_deleted"], "reuse_deleted", **loc)
        if "duplicates" in raw:
            dup = _int(w, raw["duplicates"], "duplicates", **loc)
            if 2 * dup > kw["count"]:
                raise w.err(
                    f"duplicates ({dup}) repeat ids of the same batch, so at most half of "
                    f"count ({kw['count']})",
                    key="duplicates",
                    **loc,
                )
            if kw.get("reuse_deleted") or kw.get("batch", kw["count"]) < kw["count"]:
                raise w.err(
                    "duplicates need one batch of fresh ids: no 'batch' smaller than count "
                    "and no 'reuse_deleted'",
                    key="duplicates",
                    **loc,
                )
            kw["duplicates"] = dup
    elif op == "upsert":
        if "count" not in raw:
            raise w.err("an upsert needs 'count' (live ids to re-insert)", key="count", **loc)
        kw["count"] = _int(w, raw["count"], "count", **loc)
        if "metadata" in raw:
            kw["metadata"] = _bool(w, raw["metadata"], "metadata", **loc)
    elif op == "delete_filter":
        if "filter" not in raw:
            raise w.err("a delete_filter needs 'filter' (a metadata table)", key="filter", **loc)
        kw["filter"] = _scalar_table(w, raw["filter"], "filter", **loc)
        if not kw["filter"]:
            raise w.err(
                "an empty filter would delete every row; use clear for that", key="filter", **loc
            )
    elif op == "search":
        kw["queries"] = _int(w, raw.get("queries", 10), "queries", **loc)
        kw["k"] = _int(w, raw.get("k", 10), "k", **loc)
        mr = raw.get("min_recall", DEFAULT_MIN_RECALL)
        if isinstance(mr, bool) or not isinstance(mr, int | float) or not 0.0 <= mr <= 1.0:
            raise w.err(f"expected a number in [0, 1], got {mr!r}", key="min_recall", **loc)
        kw["min_recall"] = float(mr)
        if "filter" in raw:
            kw["filter"] = _scalar_table(w, raw["filter"], "filter", **loc)
    elif op == "get":
        kw["count"] = _int(w, raw.get("count", 10), "count", **loc)
    elif op == "delete":
        if ("count" in raw) == ("fraction" in raw):
            raise w.err("a delete needs exactly one of 'count' or 'fraction'", key="count", **loc)
        if "count" in raw:
            kw["count"] = _int(w, raw["count"], "count", **loc)
        else:
            fr = raw["fraction"]
            if isinstance(fr, bool) or not isinstance(fr, int | float) or not 0.0 < fr <= 1.0:
                raise w.err(f"expected a number in (0, 1], got {fr!r}", key="fraction", **loc)
            kw["fraction"] = float(fr)
    return Step(op=op, **kw)


def parse_scenario(text: str, path: str = "<string>") -> Scenario:
    """Parse TOML text; `path` is used in error messages and the record."""
    w = _Where(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise w.err(f"not valid TOML: {exc}") from None
    _unknown(w, data, TOP_KEYS, "the scenario")
    name = _str(w, data.get("name", Path(path).stem), "name")
    dimension = (
        _int(w, data["dimension"], "dimension", maximum=MAX_DIMENSION)
        if "dimension" in data
        else None
    )
    metric = _str(w, data.get("metric", "l2"), "metric")
    if metric not in METRICS:
        raise w.err(
            f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}", key="metric"
        )
    seed = _int(w, data.get("seed", 0), "seed", minimum=0)
    tags = _strlist(w, data.get("tags", []), "tags")
    engines = _strlist(w, data.get("engines", []), "engines")
    for locked in engines:  # a typo would lock every engine out, silently
        _engine_spec(w, locked, "engines")
    requires = _strlist(w, data.get("requires", []), "requires", CAPABILITY_NAMES)
    faults = _strlist(w, data.get("faults", []), "faults")
    options, scoped = _engine_tables(w, data.get("engine", {}))
    default = (
        _engine_spec(w, data["default_engine"], "default_engine")
        if ("default_engine" in data)
        else None
    )
    if default is not None and engines and default not in engines:
        raise w.err(f"{default!r} is not one of engines {list(engines)}", key="default_engine")
    description = _str(w, data.get("description", ""), "description")
    timeout = _seconds(w, data["timeout"], "timeout") if "timeout" in data else None

    expect: tuple[tuple[str, str], ...] = (("default", "clean"),)
    note = ""
    if "expect" in data:
        ex = data["expect"]
        if not isinstance(ex, dict):
            raise w.err("[expect] must be a table", key="expect")
        _unknown(w, ex, EXPECT_KEYS, "[expect]")
        note = _str(w, ex.get("note", ""), "note")
        v = ex.get("verdict", "clean")
        if isinstance(v, dict):
            _unknown(w, v, set(ALLOCATORS) | {"default"}, "[expect.verdict]")
            table = {k: _verdict(w, x, f"verdict.{k}") for k, x in v.items()}
            table.setdefault("default", "clean")
            expect = tuple(sorted(table.items()))
        else:
            expect = (("default", _verdict(w, v, "verdict")),)

    raw_cycles = data.get("cycle")
    if not isinstance(raw_cycles, list) or not raw_cycles:
        raise w.err("needs at least one [[cycle]] table", key="cycle")
    cycles: list[Cycle] = []
    for ci, rc in enumerate(raw_cycles, start=1):
        if not isinstance(rc, dict):
            raise w.err("a [[cycle]] must be a table", cycle=ci)
        _unknown(w, rc, CYCLE_KEYS, "a [[cycle]]", cycle=ci)
        steps_raw = rc.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise w.err("needs a non-empty 'steps' list", cycle=ci, key="steps")
        steps = tuple(_step(w, s, ci, si) for si, s in enumerate(steps_raw))
        repeat = _int(w, rc.get("repeat", 1), "repeat", maximum=MAX_PLANNED_CYCLES, cycle=ci)
        cdim = (
            _int(w, rc["dimension"], "dimension", maximum=MAX_DIMENSION, cycle=ci)
            if "dimension" in rc
            else None
        )
        if cdim is None and dimension is None:
            raise w.err(
                "no dimension: set 'dimension' at the top or in this cycle",
                cycle=ci,
                key="dimension",
            )
        label = _str(w, rc["label"], "label", cycle=ci) if "label" in rc else None
        cycles.append(Cycle(steps=steps, repeat=repeat, dimension=cdim, label=label))

    _check_sizes(w, cycles, dimension)
    return Scenario(
        name=name,
        path=path,
        dimension=dimension,
        cycles=tuple(cycles),
        description=description,
        metric=metric,
        seed=seed,
        tags=tags,
        engines=engines,
        requires=requires,
        faults=faults,
        engine_options=options,
        scoped_options=scoped,
        default=default,
        expect=expect,
        expect_note=note,
        timeout=timeout,
        plan=expand_plan(cycles, dimension),
    )
