"""`memcycle run --shard K/N`: a deterministic split of the run matrix for CI machines.

Every run of the matrix (scenario x engine x allocator x faults) has a key, the same
`scenario|engine|allocator|faults` the gate matches runs by (computed before the run, from
what was asked for). The keys are sorted and dealt round-robin: the i-th key (0-based) goes to
shard `i % N + 1`. So every run lands in exactly one shard, shard sizes differ by at most one,
and N machines given the same command line agree on the split without talking to each other.
`memcycle merge` puts the shards' reports back together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .runner import RunSpec
from .scenario import Scenario

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
EXPECTED_FORM = "K/N with 1 <= K <= N, e.g. 1/2"


class ShardError(ValueError):
    """A --shard value that is not K/N with 1 <= K <= N."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str) -> Shard:
    """'2/3' -> Shard(2, 3); anything else is a ShardError naming the expected form."""
    m = _SHARD.match(text)
    if not m:
        raise ShardError(f"--shard {text!r}: expected {EXPECTED_FORM}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise ShardError(f"--shard {text!r}: expected {EXPECTED_FORM} (N is at least 1)")
    if k < 1:
        raise ShardError(f"--shard {text!r}: expected {EXPECTED_FORM} (K counts from 1)")
    if k > n:
        raise ShardError(f"--shard {text!r}: expected {EXPECTED_FORM} (there are only {n} shards)")
    return Shard(k, n)


def planned_key(spec: RunSpec, scenario: Scenario) -> str:
    """The run's key as asked for: `scenario|engine|allocator|faults` (see RunRecord.key).

    A peer engine records allocator "native" once it runs, so this can differ from the
    report's key; it is only used to split, and it is the same on every machine."""
    engine = spec.engine or scenario.default_engine()
    faults = "+".join(dict.fromkeys([*scenario.faults, *spec.faults])) or "-"
    return f"{scenario.name}|{engine}|{spec.allocator}|{faults}"


def select(
    items: Sequence[RunSpec], scenarios: Mapping[str, Scenario], shard: Shard
) -> list[RunSpec]:
    """The items of one shard, in their original order.

    `scenarios` maps each item's scenario path to the loaded Scenario (or the item's
    `scenario` is a Scenario already)."""

    def scenario_of(spec: RunSpec) -> Scenario:
        sc = spec.scenario
        return sc if isinstance(sc, Scenario) else scenarios[str(sc)]

    order = sorted(
        range(len(items)),
        key=lambda i: (
            planned_key(items[i], scenario_of(items[i])),
            str(scenario_of(items[i]).path),
            i,
        ),
    )
    mine = {i for rank, i in enumerate(order) if rank % shard.total == shard.index - 1}
    return [spec for i, spec in enumerate(items) if i in mine]
