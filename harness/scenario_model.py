"""Cycle tables as data: the frozen `Scenario`, its `Cycle` tables, their `Step`s, and the plan.

Apart from the parsing so that everything that *uses* a scenario (the runner, the child, the
protocol that carries it, the shrinker and the fuzzer) reads the data model without the TOML
validation. `expand_plan` expands `repeat`, so cycle numbers in events and reports are the
1-based cycles as they ran (see scenarios/SCHEMA.md); the child rebuilds its plan with it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
