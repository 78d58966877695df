"""Cycle tables: parse and validate a scenario TOML file into frozen dataclasses.

Validation is strict on purpose: a typo in a key would otherwise silently turn
a check off. Every error names the file, the cycle table, the step and the field.
`Scenario.plan` expands `repeat`, so cycle numbers in events and reports are the
1-based cycles as they ran (see scenarios/SCHEMA.md).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
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
CAPABILITY_NAMES: tuple[str, ...] = (
    "delete",
    "metadata_filter",
    "dimension_change",
    "ledger",
    "reload",
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
    "requires",
    "faults",
    "engine",
    "cycle",
    "expect",
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
    engine_options: tuple[tuple[str, Any], ...] = ()
    expect: tuple[tuple[str, str], ...] = (("default", "clean"),)  # allocator -> verdict
    expect_note: str = ""
    plan: tuple[PlannedCycle, ...] = field(default=(), compare=False)

    def expected(self, allocator: str = "numpy") -> str:
        table = dict(self.expect)
        return table.get(allocator, table.get("default", "clean"))

    def options(self) -> dict[str, Any]:
        return dict(self.engine_options)

    @property
    def slow(self) -> bool:
        return "slow" in self.tags or "soak" in self.tags

    def default_engine(self) -> str:
        return self.engines[0] if self.engines else "refimpl"


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


def _int(w: _Where, v: Any, key: str, *, minimum: int = 1, **loc: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise w.err(f"expected an integer, got {type(v).__name__} {v!r}", key=key, **loc)
    if v < minimum:
        raise w.err(f"must be >= {minimum}, got {v}", key=key, **loc)
    return v


def _bool(w: _Where, v: Any, key: str, **loc: Any) -> bool:
    if not isinstance(v, bool):
        raise w.err(f"expected true or false, got {v!r}", key=key, **loc)
    return v


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
    if v not in VERDICTS:
        raise w.err(f"unknown verdict {v!r}; expected one of {', '.join(VERDICTS)}", key=key)
    return v


def _scalar_table(w: _Where, v: Any, key: str, **loc: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(v, dict):
        raise w.err(f"expected a table, got {v!r}", key=key, **loc)
    for k2, x in v.items():
        if not isinstance(x, str | int | float | bool):
            raise w.err(f"value of {k2!r} must be a scalar, got {x!r}", key=key, **loc)
    return tuple(sorted(v.items()))


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
    dimension = _int(w, data["dimension"], "dimension") if "dimension" in data else None
    metric = _str(w, data.get("metric", "l2"), "metric")
    if metric not in METRICS:
        raise w.err(
            f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}", key="metric"
        )
    seed = _int(w, data.get("seed", 0), "seed", minimum=0)
    tags = _strlist(w, data.get("tags", []), "tags")
    engines = _strlist(w, data.get("engines", []), "engines")
    requires = _strlist(w, data.get("requires", []), "requires", CAPABILITY_NAMES)
    faults = _strlist(w, data.get("faults", []), "faults")
    options = _scalar_table(w, data.get("engine", {}), "engine")
    description = _str(w, data.get("description", ""), "description")

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
        repeat = _int(w, rc.get("repeat", 1), "repeat", cycle=ci)
        cdim = _int(w, rc["dimension"], "dimension", cycle=ci) if "dimension" in rc else None
        if cdim is None and dimension is None:
            raise w.err(
                "no dimension: set 'dimension' at the top or in this cycle",
                cycle=ci,
                key="dimension",
            )
        label = _str(w, rc["label"], "label", cycle=ci) if "label" in rc else None
        cycles.append(Cycle(steps=steps, repeat=repeat, dimension=cdim, label=label))

    plan: list[PlannedCycle] = []
    for ti, c in enumerate(cycles, start=1):
        dim = c.dimension or dimension
        assert dim is not None
        for _ in range(c.repeat):
            plan.append(PlannedCycle(len(plan) + 1, dim, c.steps, ti, c.label))

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
        expect=expect,
        expect_note=note,
        plan=tuple(plan),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; a missing file is a ScenarioError too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario: {exc.strerror or exc}") from None
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
