"""The evidence behind a matrix run's verdict, in one line (block, cycles, bytes, signal)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memcycle.records import RunRecord, StepEvent

_CHILD_OP = re.compile(r"(?:harness|memcycle)/child\.py:\d+ in (op_\w+|teardown)")


def _violations(steps: Sequence[StepEvent]) -> list[tuple[int, dict[str, Any]]]:
    """(step index, violation) for every allocator violation, in the order recorded."""
    out: list[tuple[int, dict[str, Any]]] = []
    seen = 0
    for i, ev in enumerate(steps):
        led = (ev.memory or {}).get("ledger") or {}
        n = int(led.get("n_violations", len(led.get("violations") or [])))
        if n > seen:
            out.extend((i, v) for v in (led.get("violations") or [])[-(n - seen) :])
            seen = n
    return out


def _where(ev: StepEvent, stack: Sequence[str] | None = None) -> str:
    frame = _engine_frame(stack)
    return f"cycle {ev.cycle} ({ev.op}{', ' + frame if frame else ''})"


def _is_harness_frame(frame: str) -> bool:
    """A frame of memcycle's own harness (`harness/` in a checkout, `memcycle/` installed),
    not of the engine (`refimpl/`, `memcycle/refimpl/`)."""
    return "/refimpl/" not in frame and ("/harness/" in frame or "/memcycle/" in frame)


def _engine_frame(stack: Sequence[str] | None) -> str:
    """The innermost engine frame of a stack ('sparse_map.py:166 __del__'), skipping the
    allocator itself and the harness."""
    for frame in reversed(list(stack or ())):
        m = re.match(r"(?:.*/)?([^/]+\.py):(\d+) in (\S+)", frame)
        if m and m.group(1) != "alloc.py" and not _is_harness_frame(frame):
            return f"{m.group(1)}:{m.group(2)} {m.group(3)}"
    return ""


def _alloc_step(steps: Sequence[StepEvent], block_id: int) -> int | None:
    """The step in which block #id was allocated: ids count allocations from 1, and every
    step's ledger carries the allocation counter."""
    for i, ev in enumerate(steps):
        led = (ev.memory or {}).get("ledger") or {}
        if int(led.get("allocs", 0)) >= block_id:
            return i
    return None


def _stack_op(stack: Sequence[str] | None) -> str | None:
    for frame in reversed(list(stack or ())):
        m = _CHILD_OP.search(frame)
        if m:
            return "close" if m.group(1) == "teardown" else m.group(1)[3:]
    return None


def _free_step(
    steps: Sequence[StepEvent], v: dict[str, Any], lo: int | None, hi: int
) -> int | None:
    """The step that first freed the block: exact when the allocator recorded the free
    counter (`free_seq`), else the first step after its allocation running the op
    named in the free stack."""
    seq = v.get("free_seq")
    if isinstance(seq, int):
        for i, ev in enumerate(steps):
            if int(((ev.memory or {}).get("ledger") or {}).get("frees", 0)) >= seq:
                return i
    op = _stack_op(v.get("free_stack"))
    if op is None:
        return None
    for i in range(lo or 0, hi + 1):
        if steps[i].op == op:
            return i
    return None


def _block(v: dict[str, Any]) -> str:
    size = f"{v['nbytes']} B" if v.get("nbytes") is not None else "? B"
    bid = f"#{v['block_id']} " if v.get("block_id") not in (None, -1) else ""
    return f"block {bid}'{v.get('label')}' ({size})"


def _violation_line(rec: RunRecord, step_i: int, v: dict[str, Any]) -> str:
    steps = rec.steps
    verdict = v.get("verdict")
    at = _where(steps[step_i])
    again = v.get("fault_stack")
    if verdict == "invalid-free":
        msg = (v.get("message") or "").splitlines()[0]
        m = re.search(r"free of (0x[0-9a-f]+) \('([^']*)'\)", msg)
        addr, label = (m.group(1), m.group(2)) if m else ("an address", v.get("label"))
        return f"free() of {addr} ('{label}'), never allocated, in {_where(steps[step_i], again)}"
    bid = v.get("block_id")
    a = _alloc_step(steps, int(bid)) if isinstance(bid, int) and bid > 0 else None
    alloc = (
        f"allocated in {_where(steps[a], v.get('alloc_stack'))}" if a is not None else "allocated ?"
    )
    f = _free_step(steps, v, a, step_i)
    freed = f"freed in {_where(steps[f], v.get('free_stack'))}" if f is not None else "freed ?"
    at = _where(steps[step_i], again)
    if verdict == "double-free":
        return f"{_block(v)}: {alloc}, {freed}, freed again in {at}"
    if verdict == "use-after-free":
        return f"{_block(v)}: {alloc}, {freed}, used in {at}"
    if verdict == "buffer-overflow":
        msg = (v.get("message") or "").splitlines()[0]
        m = re.search(r"(WRITE of \d+ bytes at offset \d+|\d+ byte\(s\) past the end)", msg)
        what = f" ({m.group(1)})" if m else ""
        return f"{_block(v)}: {alloc}, written past its end in {at}{what}"
    return f"{_block(v)}: {verdict} in {at}"


def _leak_line(rec: RunRecord) -> str | None:
    """Labels whose live bytes after each reset grow, with bytes per cycle (ledger)."""
    points: dict[int, dict[str, int]] = {}
    for ev in rec.steps:
        led = (ev.memory or {}).get("ledger")
        if ev.op in ("clear", "destroy", "reload") and ev.ok and led is not None:
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


def _crash_line(rec: RunRecord) -> str:
    """How the child died: signal, where, the runtime's message (the verdict came from it
    when it is not `crash`)."""
    f = next(
        (
            x
            for x in rec.findings
            if x.verdict in ("crash", "timeout") or x.evidence.get("signal_class")
        ),
        None,
    )
    ex = rec.exit
    sig = ex.get("signal_name") or ex.get("kind")
    msg = ex.get("native_message") or ex.get("fatal_error") or ""
    runtime = f"{ex['native']['runtime']}: " if isinstance(ex.get("native"), dict) else ""
    where = f" in cycle {f.cycle} at {f.op}" if f else ""
    return f"{sig}{where}" + (f': {runtime}"{msg}"' if msg else "")


TOOL_SOURCES = ("asan", "lsan", "ubsan", "valgrind")


# the twin's counting malloc/free: the frame that matters is their caller
_TWIN_ALLOC_WRAPPERS = frozenset({"rc_malloc", "rc_free"})


def _c_frame(frames: Sequence[dict[str, Any]] | None) -> str:
    """'seg_store (refimpl_c.c:424)': the innermost engine frame with a function (past the
    twin's allocation wrappers)."""
    own = [x for x in frames or () if x.get("engine") and x.get("function")]
    f = next((x for x in own if x["function"] not in _TWIN_ALLOC_WRAPPERS), own[0] if own else None)
    if f is None:
        return ""
    where = f" ({Path(f['file']).name}:{f['line']})" if f.get("file") and f.get("line") else ""
    return f"{f['function']}{where}"


def _tool_line(rec: RunRecord) -> str | None:
    """A sanitizer's or memcheck's verdict: its summary, then where the block was allocated
    and freed (the innermost engine frame of each stack)."""
    f = next(
        (
            x
            for x in rec.findings
            if x.verdict == rec.verdict and x.evidence.get("source") in TOOL_SOURCES
        ),
        None,
    )
    if f is None:
        return None
    parts = [f.summary]
    for key, label in (("native_alloc_stack", "allocated in"), ("native_free_stack", "freed in")):
        where = _c_frame(f.evidence.get(key))
        if where:
            parts.append(f"{label} {where}")
    return "; ".join(parts)


def evidence_line(rec: RunRecord) -> str:
    """The evidence behind a run's verdict, in one line (block, cycles, bytes, signal)."""
    v = rec.verdict
    if v == "clean":
        blocks = {c.live_blocks_after_clear for c in rec.cycles} - {None}
        return f"no finding in {len(rec.cycles)} cycles" + (
            f", {max(blocks)} live blocks after every clear" if blocks else ""
        )
    tool = _tool_line(rec)
    if tool:
        return tool
    if v in ("crash", "timeout"):
        return _crash_line(rec)
    if any(x.verdict == v and x.evidence.get("signal_class") for x in rec.findings):
        return _crash_line(rec)  # the verdict is the dead child's runtime message
    if v == "leak":
        line = _leak_line(rec)
        if line:
            return line
    line = ""
    if v in ("double-free", "invalid-free", "use-after-free", "buffer-overflow"):
        match = [(i, x) for i, x in _violations(rec.steps) if x.get("verdict") == v]
        if match:
            line = _violation_line(rec, *match[0])
    if not line:
        f = next((x for x in rec.findings if x.verdict == v), None)
        line = f.summary if f else v
    if v != "leak" and any(x.verdict == "leak" for x in rec.findings):
        leak = _leak_line(rec) or next(x.summary for x in rec.findings if x.verdict == "leak")
        first = next(x for x in rec.findings if x.verdict == "leak")
        line += f"; before it, a leak from cycle {first.cycle}: {leak}"
    return line


def verdict_finding_at(rec: RunRecord) -> str:
    """'cycle.step op' of the first finding with the run's verdict (where it showed)."""
    f = next((x for x in rec.findings if x.verdict == rec.verdict), None)
    if f is None or f.cycle is None:
        return "-"
    return f"{f.cycle}.{f.step} {f.op}"
