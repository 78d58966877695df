"""Cycle tables: parse and validate a scenario TOML file into frozen dataclasses.

Validation is strict on purpose: a typo in a key would otherwise silently turn
a check off. Every error names the file, the cycle table, the step and the field.
`Scenario.plan` expands `repeat`, so cycle numbers in events and reports are the
1-based cycles as they ran (see scenarios/SCHEMA.md).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import VERDICTS

OPS: tuple[str, ...] = (
    "open",
    "insert",
    "search",
    "get",
    "delete",
    "clear",
    "destroy",
    "reload",
    "checkpoint",
    "upsert",
    "reopen",
    "compact",
    "flush",
    "delete_filter",
)
METRICS: tuple[str, ...] = ("l2", "ip", "cosine")
# capabilities a scenario may name in `requires` (fields of engines.base.Capabilities; `clear`
# there means a native clear, not destroy-and-recreate)
CAPABILITY_NAMES: tuple[str, ...] = (
    "delete",
    "metadata_filter",
    "dimension_change",
    "ledger",
    "reload",
    "clear",
    "upsert",
    "reopen",
    "compact",
    "flush",
    "delete_filter",
)
ALLOCATORS: tuple[str, ...] = ("numpy", "checked", "raw", "native")

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
# bundled sub-directories a plain `memcycle run` leaves out: fault tables, one engine's own
OPTIONAL_SUBDIRS: tuple[str, ...] = ("faults", "omendb")


class ScenarioError(ValueError):
    """A cycle table that cannot be run; the message says where and why."""


@dataclass(frozen=True)
class Step:
    """One operation of a cycle (fields not used by the op are None)."""

    op: str
    count: int | None = None
    batch: int | None = None
    metadata: bool = False
    reuse_deleted: bool = False
    queries: int | None = None
    k: int | None = None
    min_recall: float | None = None
    filter: tuple[tuple[str, Any], ...] | None = None  # frozen form of the filter table
    fraction: float | None = None
    timeout: float | None = None  # seconds this step may take (harness.hangs.Watchdog)
    duplicates: int | None = None  # insert: ids repeated within the one batch

    def filter_dict(self) -> dict[str, Any] | None:
        return dict(self.filter) if self.filter is not None else None

    def describe(self) -> str:
        """Short text for tables, e.g. 'insert 10000 (batch 1000)'."""
        parts = [self.op]
        if self.op == "insert":
            parts.append(str(self.count))
            if self.batch:
                parts.append(f"(batch {self.batch})")
            if self.duplicates:
                parts.append(f"({self.duplicates} duplicate ids)")
        elif self.op == "search":
            parts.append(f"{self.queries}q k={self.k}")
        elif self.op == "delete":
            parts.append(str(self.count) if self.count is not None else f"{self.fraction:.0%}")
        elif self.op in ("get", "upsert"):
            parts.append(str(self.count))
        elif self.op == "delete_filter":
            parts.append(str(self.filter_dict()))
        return " ".join(parts)


@dataclass(frozen=True)
class Cycle:
    """One [[cycle]] table as written (before `repeat` is expanded)."""

    steps: tuple[Step, ...]
    repeat: int = 1
    dimension: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class PlannedCycle:
    """One cycle as it runs: `index` is 1-based after expansion."""

    index: int
    dimension: int
    steps: tuple[Step, ...]
    table: int  # 1-based index of the [[cycle]] table it came from
    label: str | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    dimension: int | None
    cycles: tuple[Cycle, ...]
    description: str = ""
    metric: str = "l2"
    seed: int = 0
    tags: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()  # engines the scenario is written for; () = any
    requires: tuple[str, ...] = ()  # capabilities the engine must have
    faults: tuple[str, ...] = ()  # refimpl faults switched on for every run of it
    engine_options: tuple[tuple[str, Any], ...] = ()  # [engine] scalars: every engine
    # [engine.<spec>] tables: options for that engine only (e.g. refimpl's thresholds)
    scoped_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    default: str | None = None  # `default_engine`: the engine used when none is given
    expect: tuple[tuple[str, str], ...] = (("default", "clean"),)  # allocator -> verdict
    expect_note: str = ""
    timeout: float | None = None  # seconds the whole run may take (replaces the default)
    plan: tuple[PlannedCycle, ...] = field(default=(), compare=False)

    def expected(self, allocator: str = "numpy") -> str:
        table = dict(self.expect)
        return table.get(allocator, table.get("default", "clean"))

    def options(self, engine: str | None = None) -> dict[str, Any]:
        """The factory options for `engine` (its `--engine` spec): the `[engine]` scalars,
        overridden by an `[engine.<spec>]` table for exactly that spec. Without an engine,
        the scalars only."""
        out = dict(self.engine_options)
        if engine is not None:
            out.update(dict(self.scoped_options).get(engine, ()))
        return out

    @property
    def slow(self) -> bool:
        return "slow" in self.tags or "soak" in self.tags

    def default_engine(self) -> str:
        """`default_engine`, else the first of `engines`, else refimpl."""
        return self.default or (self.engines[0] if self.engines else "refimpl")


# -- validation helpers ---------------------------------------------------------
class _Where:
    def __init__(self, path: str) -> None:
        self.path = path

    def err(
        self, msg: str, *, cycle: int | None = None, step: int | None = None, key: str | None = None
    ) -> ScenarioError:
        where = [self.path]
        if cycle is not None:
            where.append(f"cycle {cycle}")
        if step is not None:
            where.append(f"step {step}")
        if key is not None:
            where.append(f"field '{key}'")
        return ScenarioError(f"{': '.join(where)}: {msg}")


def _int(
    w: _Where, v: Any, key: str, *, minimum: int = 1, maximum: int | None = None, **loc: Any
) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise w.err(f"expected an integer, got {type(v).__name__} {v!r}", key=key, **loc)
    if v < minimum:
        raise w.err(f"must be >= {minimum}, got {v}", key=key, **loc)
    if maximum is not None and v > maximum:
        raise w.err(f"must be <= {maximum:,}, got {v:,}", key=key, **loc)
    return v


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


def _bool(w: _Where, v: Any, key: str, **loc: Any) -> bool:
    if not isinstance(v, bool):
        raise w.err(f"expected true or false, got {v!r}", key=key, **loc)
    return v


def _seconds(w: _Where, v: Any, key: str, **loc: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise w.err(f"expected a number of seconds > 0, got {v!r}", key=key, **loc)
    return float(v)


def _str(w: _Where, v: Any, key: str, **loc: Any) -> str:
    if not isinstance(v, str):
        raise w.err(f"expected a string, got {type(v).__name__} {v!r}", key=key, **loc)
    return v


def _strlist(
    w: _Where, v: Any, key: str, allowed: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise w.err(f"expected a list of strings, got {v!r}", key=key)
    if allowed is not None:
        bad = [x for x in v if x not in allowed]
        if bad:
            raise w.err(f"unknown value(s) {bad}; expected from {list(allowed)}", key=key)
    return tuple(v)


def _unknown(w: _Where, table: Mapping[str, Any], allowed: set[str], what: str, **loc: Any) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise w.err(
            f"unknown key {extra[0]!r} in {what}; allowed: {', '.join(sorted(allowed)) or '(none)'}",
            key=extra[0],
            **loc,
        )


def _verdict(w: _Where, v: Any, key: str) -> str:
    v = _str(w, v, key)
    engine_verdicts = [x for x in VERDICTS if x != "error"]
    if v == "error":
        raise w.err(
            "'error' means memcycle or the adapter could not run the scenario and cannot be "
            f"expected; expected one of {', '.join(engine_verdicts)}",
            key=key,
        )
    if v not in VERDICTS:
        raise w.err(f"unknown verdict {v!r}; expected one of {', '.join(engine_verdicts)}", key=key)
    return v


def _scalar_table(w: _Where, v: Any, key: str, **loc: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(v, dict):
        raise w.err(f"expected a table, got {v!r}", key=key, **loc)
    for k2, x in v.items():
        if not isinstance(x, str | int | float | bool):
            raise w.err(f"value of {k2!r} must be a scalar, got {x!r}", key=key, **loc)
    return tuple(sorted(v.items()))


def _engine_spec(w: _Where, v: Any, key: str) -> str:
    """A built-in engine name or a `module:factory` / `file.py:factory` spec; anything else
    is a typo that would silently never match (`[engine.refimp]`)."""
    from .engines.registry import ENGINE_NAMES

    v = _str(w, v, key)
    module, sep, attr = v.partition(":")
    if v in ENGINE_NAMES or (sep and module and attr):
        return v
    raise w.err(
        f"unknown engine {v!r}; expected one of {', '.join(ENGINE_NAMES)} "
        "or a 'package.module:factory' spec",
        key=key,
    )


def _engine_tables(
    w: _Where, v: Any
) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]]:
    """`[engine]`: scalars for every engine, and `[engine.<spec>]` tables for one engine."""
    if not isinstance(v, dict):
        raise w.err(f"expected a table, got {v!r}", key="engine")
    scalars = {k: x for k, x in v.items() if not isinstance(x, dict)}
    scoped = []
    for name, table in sorted((k, x) for k, x in v.items() if isinstance(x, dict)):
        spec = _engine_spec(w, name, f"engine.{name}")
        scoped.append((spec, _scalar_table(w, table, f"engine.{name}")))
    return _scalar_table(w, scalars, "engine"), tuple(scoped)


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


def expand_plan(cycles: Sequence[Cycle], dimension: int | None) -> tuple[PlannedCycle, ...]:
    """The cycles as they run: `repeat` expanded, each with its dimension (its own, else the
    scenario's) and the 1-based [[cycle]] table it came from. Also how the child rebuilds
    the plan of the scenario it was sent (`memcycle.protocol`)."""
    plan: list[PlannedCycle] = []
    for ti, c in enumerate(cycles, start=1):
        dim = c.dimension or dimension
        if dim is None:
            raise ScenarioError(f"[[cycle]] table {ti} has no dimension, nor has the scenario")
        for _ in range(c.repeat):
            plan.append(PlannedCycle(len(plan) + 1, dim, c.steps, ti, c.label))
    return tuple(plan)


# -- what a plan needs from an engine -------------------------------------------------
@dataclass(frozen=True)
class Need:
    """One thing a scenario asks of an engine, derived from its plan (and `requires`).

    `whole`: without it nothing of the scenario can run, so the run is skipped as a whole
    (a metric the engine lacks, a dimension change it cannot do, a `requires` entry);
    otherwise only the steps that need it are skipped (a delete, a filtered search, a get,
    a reload) and the run is judged on the steps that ran.
    """

    capability: str  # a Capabilities field ("delete", "metrics", ...), or "get" (the method)
    why: str
    whole: bool


STEP_CAPABILITY = {"delete": "delete", "get": "get", "reload": "reload"}


def step_capability(step: Step) -> str | None:
    """The capability one step needs, if any (a search needs one only with a filter)."""
    if step.op == "search":
        return "metadata_filter" if step.filter else None
    return STEP_CAPABILITY.get(step.op)


def dimension_change(plan: tuple[PlannedCycle, ...]) -> tuple[int, int, int] | None:
    """(cycle, old, new) of the first time the plan opens one engine instance at another
    dimension (after a clear, or with no reset at all); a destroy or reload starts a new
    instance, which may take any dimension. None when the plan never does."""
    dim: int | None = None
    for pc in plan:
        for step in pc.steps:
            if step.op in ("insert", "open"):
                if dim is not None and dim != pc.dimension:
                    return pc.index, dim, pc.dimension
                dim = pc.dimension
            elif step.op in ("destroy", "reload"):
                dim = None
    return None


def scenario_needs(scenario: Scenario) -> tuple[Need, ...]:
    """Everything the scenario needs, in plan order: `requires`, the metric, a dimension
    change, then one Need per step capability (naming its first step and how many)."""
    out = [Need(c, "required by the scenario (requires)", True) for c in scenario.requires]
    out.append(Need("metrics", f"metric {scenario.metric}", True))
    change = dimension_change(scenario.plan)
    if change is not None:
        cycle, old, new = change
        out.append(
            Need("dimension_change", f"cycle {cycle} opens dimension {new} after {old}", True)
        )
    first: dict[str, tuple[int, int, str]] = {}
    counts: dict[str, int] = {}
    for pc in scenario.plan:
        for si, step in enumerate(pc.steps):
            cap = step_capability(step)
            if cap is not None:
                label = "filtered search" if cap == "metadata_filter" else step.op
                first.setdefault(cap, (pc.index, si, label))
                counts[cap] = counts.get(cap, 0) + 1
    for cap, (cycle, si, op) in first.items():
        out.append(Need(cap, f"{counts[cap]} {op} step(s), first cycle {cycle} step {si}", False))
    return tuple(out)


def has_capability(engine: Any, capability: str) -> bool:
    """Whether an engine (its `capabilities`, and its methods for `get`) has one capability.

    `clear` means a native clear (not the destroy-and-recreate `clear = "recreate"`);
    `get` is the optional `get()` method (and not `capabilities.get = False`, if declared)."""
    caps = getattr(engine, "capabilities", None)
    if capability == "get":
        return callable(getattr(engine, "get", None)) and getattr(caps, "get", True) is not False
    if capability == "clear":
        return getattr(caps, "clear", "native") == "native"
    return bool(getattr(caps, capability, False))


def capability_problems(engine: Any) -> list[str]:
    """What is malformed in an adapter's declared capabilities (they are enforced, so a
    wrong type would silently change what runs); empty when they are well-formed."""
    caps = getattr(engine, "capabilities", None)
    if caps is None:
        return ["the engine has no 'capabilities' (see memcycle.engines.base.Capabilities)"]
    problems = []
    clear = getattr(caps, "clear", "native")
    if clear not in ("native", "recreate"):
        problems.append(f"capabilities.clear = {clear!r}: expected 'native' or 'recreate'")
    metrics = getattr(caps, "metrics", ("l2",))
    if not isinstance(metrics, tuple | list) or not all(m in METRICS for m in metrics):
        problems.append(
            f"capabilities.metrics = {metrics!r}: expected a tuple from {', '.join(METRICS)}"
        )
    for name in ("delete", "metadata_filter", "dimension_change", "ledger", "reload"):
        value = getattr(caps, name, False)
        if not isinstance(value, bool):
            problems.append(f"capabilities.{name} = {value!r}: expected True or False")
    return problems


def unmet_needs(scenario: Scenario, engine: Any) -> list[str]:
    """Why the scenario cannot run on this engine at all (one reason per unmet whole-run
    need of `scenario_needs`); empty when it can run, perhaps with some steps skipped
    (`step_skip_reason`)."""
    lacking: list[str] = []
    reasons: list[str] = []
    for need in scenario_needs(scenario):
        if not need.whole:
            continue
        if need.capability == "metrics":
            metrics = tuple(getattr(engine.capabilities, "metrics", ("l2",)))
            if scenario.metric not in metrics:
                reasons.append(
                    f"engine lacks {need.why} (capabilities.metrics = {', '.join(metrics)})"
                )
        elif not has_capability(engine, need.capability):
            if need.capability == "dimension_change" and need.why.startswith("cycle"):
                reasons.append(
                    f"engine lacks dimension_change: {need.why} "
                    "(capabilities.dimension_change = False)"
                )
            elif need.capability not in lacking:
                lacking.append(need.capability)
    if lacking:
        detail = " (a native clear; it declares clear = 'recreate')" if "clear" in lacking else ""
        reasons.insert(0, f"engine lacks {', '.join(lacking)}{detail}")
    return reasons


def step_skip_reason(step: Step, engine: Any) -> str | None:
    """Why this step cannot run on this engine (a capability it lacks), or None."""
    cap = step_capability(step)
    if cap is None or has_capability(engine, cap):
        return None
    name = getattr(engine, "name", "engine")
    return {
        "delete": f"{name} has no delete (capabilities.delete = False)",
        "metadata_filter": f"{name} has no metadata filter (capabilities.metadata_filter = False)",
        "get": f"{name} has no get()",
        "reload": f"{name} cannot reload its module (capabilities.reload = False)",
    }[cap]


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; a missing file is a ScenarioError too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{p}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "a scenario file must be UTF-8 TOML"
        ) from None
    return parse_scenario(text, str(p))


def find_scenarios(paths: list[str | Path], *, include_faults: bool = False) -> list[Path]:
    """Scenario files under the given files/directories, sorted; directories are searched
    recursively, skipping a `faults/` or engine-specific (`omendb/`) sub-directory unless asked
    for (or named directly): the default suite stays the one every engine can run."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*.toml")):
                rel = f.relative_to(p).parts
                if not include_faults and set(rel[:-1]) & set(OPTIONAL_SUBDIRS):
                    continue
                found.append(f)
        elif p.exists():
            found.append(p)
        else:
            raise ScenarioError(f"{p}: no such scenario file or directory")
    return found
