"""What the child measures after each step, and when a rising series earns more cycles.

Apart from the replay loop so that the measurement contract reads in one place: the recorder's
memory figures (a full snapshot at checkpoints and at the teardown, Python objects by type at
every reset point), the allocator ledger with only the violations new since the last step, and
the adaptive confirmation that repeats the last cycle while a cheap series still rises.
"""

from __future__ import annotations

from typing import Any

# imported with the child, never between cycles: an import during the confirmation repeats would
# be measured by tracemalloc as the engine's growth (hundreds of KiB: a false leak)
from .checks import GROWTH_RULES
from .engines.base import Engine
from .recording import Recorder
from .records import LEDGER_NEW_VIOLATIONS, LEDGER_VIOLATION_COUNT

# Adaptive confirmation (scenarios/SCHEMA.md "Leak judgement"): when a cheap per-cycle series
# (pymalloc blocks, tracemalloc) still rose by at least its rule's slope in the last cycle,
# and fewer than CONFIRM_CYCLES cycles have run, the child repeats the last cycle until the
# series stops rising (a plateau: a cache that filled up) or CONFIRM_CYCLES points exist,
# at most CONFIRM_MAX_EXTRA extra cycles and CONFIRM_SECONDS (or 3x the table's own time).
CONFIRM_CYCLES = 8
CONFIRM_MAX_EXTRA = 6
CONFIRM_SECONDS = 60.0
CONFIRM_SIGNALS = ("py_blocks", "tracemalloc")

# the new violations one step reports in full (each carries its stacks): the events line must
# stay far below what the parent reads whole (isolation.MAX_EVENT_LINE)
MAX_NEW_VIOLATIONS = 256


class LedgerReader:
    """Reads the engine's allocator ledger (`engine.ledger()`, optional) after each step.

    Each step sends the violations recorded since the previous read, not the whole list again
    (each carries its stacks), so nothing past the first few is lost and no reader re-derives
    the new ones from a cumulative list."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reported = 0  # of the allocator's list, how many steps already sent

    def read(self) -> dict[str, Any] | None:
        fn = getattr(self.engine, "ledger", None)
        if fn is None:
            return None
        snap = fn()
        if snap is None:
            return None
        snap = dict(snap)
        # each step sends the violations recorded since the last one (the allocator's list only
        # grows; shorter means a new allocator), not the whole list again: each carries stacks
        viol = list(snap.pop("violations", None) or [])
        if len(viol) < self.reported:
            self.reported = 0
        new = viol[self.reported :]
        self.reported = len(viol)
        snap[LEDGER_VIOLATION_COUNT] = len(viol)
        snap[LEDGER_NEW_VIOLATIONS] = new[:MAX_NEW_VIOLATIONS]
        if len(new) > MAX_NEW_VIOLATIONS:
            snap["new_violations_not_sent"] = len(new) - MAX_NEW_VIOLATIONS
        return snap


def measure_step(
    recorder: Recorder, ledger: LedgerReader, *, full: bool, objects: bool
) -> dict[str, Any]:
    """The memory figures of one step (`Recorder.measure`), with the ledger when there is one."""
    memory = recorder.measure(full=full, objects=objects)
    led = ledger.read()
    if led is not None:
        memory["ledger"] = led
    return memory


def still_rising(reset_memory: dict[int, dict[str, Any]]) -> str | None:
    """The cheap series that rose by at least its rule's slope in the last cycle.

    `reset_memory` is cycle -> the memory measured at that cycle's last reset point."""
    cycles = sorted(reset_memory)
    if len(cycles) < 2 or len(cycles) >= CONFIRM_CYCLES:
        return None
    for key in CONFIRM_SIGNALS:
        last = [reset_memory[c] for c in cycles[-2:]]
        if any(m["op"] == "reload" for m in last):
            continue  # Python-object series are not judged after a reload (checks.py)
        vals = [m.get(key) for m in last]
        if None in vals:
            continue
        if vals[1] - vals[0] >= GROWTH_RULES[key].slope_min:
            return key
    return None
