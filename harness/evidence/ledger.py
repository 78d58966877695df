"""The checked allocator's ledger read step by step: each violation once, the steps that
allocated and freed its block (from the allocator's counters), and what grew after resets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memcycle.protocol import RESET_OPS
from memcycle.records import RunRecord, StepEvent

from .frames import engine_frame


def _ledger(ev: StepEvent) -> dict[str, Any]:
    return (ev.memory or {}).get("ledger") or {}


def _step_of_counter(steps: Sequence[StepEvent], key: str, seq: Any) -> int | None:
    """The step during which the allocator's `allocs`/`frees` counter reached `seq` (block
    ids and `free_seq` count from 1, every step's ledger carries both counters)."""
    if not isinstance(seq, int) or seq <= 0:
        return None
    return next((i for i, ev in enumerate(steps) if int(_ledger(ev).get(key, 0)) >= seq), None)


def block_text(v: dict[str, Any]) -> str:
    """ "block #12 'flat.vectors' (1600 B)"."""
    size = f"{v['nbytes']} B" if v.get("nbytes") is not None else "? B"
    bid = f"#{v['block_id']} " if v.get("block_id") not in (None, -1) else ""
    return f"block {bid}'{v.get('label')}' ({size})"


def invalid_free_address(v: dict[str, Any]) -> str:
    """The pointer an invalid free was handed ('0xa'), as the allocator recorded it."""
    addr = v.get("address")
    return f"{addr:#x}" if isinstance(addr, int) else ""


def overflow_text(v: dict[str, Any]) -> str:
    """'WRITE of 8 bytes at offset 1600' or '4 byte(s) past the end' ('' unrecorded)."""
    o = v.get("overflow") or {}
    if o.get("access"):
        return f"{str(o['access']).upper()} of {o.get('access_bytes')} bytes at offset {o.get('offset')}"
    if o.get("past_end_bytes"):
        return f"{o['past_end_bytes']} byte(s) past the end"
    if o.get("before_start_bytes"):
        return f"{o['before_start_bytes']} byte(s) before the start"
    return ""


def _where(ev: StepEvent, stack: Sequence[str] | None = None) -> str:
    frame = engine_frame(stack)
    return f"cycle {ev.cycle} ({ev.op}{', ' + frame if frame else ''})"


def violation_line(steps: Sequence[StepEvent], step_i: int, v: dict[str, Any]) -> str:
    """One allocator violation: the block, where it was allocated, freed, and misused."""
    verdict = v.get("verdict")
    at = _where(steps[step_i], v.get("fault_stack"))
    if verdict == "invalid-free":
        addr = invalid_free_address(v) or "an address"
        return f"free() of {addr} ('{v.get('label')}'), never allocated, in {at}"
    a = _step_of_counter(steps, "allocs", v.get("block_id"))
    alloc = (
        f"allocated in {_where(steps[a], v.get('alloc_stack'))}" if a is not None else "allocated ?"
    )
    f = _step_of_counter(steps, "frees", v.get("free_seq"))
    freed = f"freed in {_where(steps[f], v.get('free_stack'))}" if f is not None else "freed ?"
    if verdict == "double-free":
        return f"{block_text(v)}: {alloc}, {freed}, freed again in {at}"
    if verdict == "use-after-free":
        return f"{block_text(v)}: {alloc}, {freed}, used in {at}"
    if verdict == "buffer-overflow":
        what = overflow_text(v)
        return f"{block_text(v)}: {alloc}, written past its end in {at}" + (
            f" ({what})" if what else ""
        )
    return f"{block_text(v)}: {verdict} in {at}"


def leak_line(run: RunRecord) -> str | None:
    """Labels whose live bytes after each reset grow, with bytes per cycle (ledger)."""
    points: dict[int, dict[str, int]] = {}
    for ev in run.steps:
        led = (ev.memory or {}).get("ledger")
        if ev.op in RESET_OPS and ev.ok and led is not None:
            points[ev.cycle] = {k: int(x["bytes"]) for k, x in led.get("by_label", {}).items()}
    cycles = sorted(points)
    if len(cycles) < 2:
        return None
    first, last = points[cycles[0]], points[cycles[-1]]
    span = cycles[-1] - cycles[0]
    grow = sorted(
        ((lab, (last.get(lab, 0) - first.get(lab, 0)) / span) for lab in set(first) | set(last)),
        key=lambda x: -x[1],
    )
    grow = [(lab, per) for lab, per in grow if per > 0]
    if not grow:
        return None
    labels = ", ".join(f"'{lab}' +{per:.0f} B/cycle" for lab, per in grow[:3])
    more = f" (+{len(grow) - 3} more labels)" if len(grow) > 3 else ""
    total = sum(per for _lab, per in grow)
    return (
        f"{labels}{more}; {total:.0f} B/cycle live after clear, "
        f"cycles {cycles[0]}..{cycles[-1]} (allocator ledger)"
    )
