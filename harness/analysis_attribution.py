"""Which allocations are the engine's, and the engine ledger's snapshots at each marker.

`harness.analysis` replays the memray capture; this module answers, per stack, whether it is
engine code (a frame under one of the run's source roots, not an import or a Numba compile)
or the engine's own allocator, and reads the ledgers the child recorded at each step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_IMPORT_FRAMES = "<frozen importlib."
_NUMBA_DISPATCHER = os.path.join("numba", "core", "dispatcher.py")
_NUMBA_COMPILE = ("_compile_for_args", "compile")


def _loads_code(fn: str, filename: str) -> bool:
    """A frame of code loading: an import, or Numba compiling / loading a cached overload.

    What these allocate (module code, bytecode, LLVM modules, typing registries) is a
    one-off cost of the first use of a module or of a kernel signature, reached through
    engine frames but not data the engine's cycles keep alive; a kernel first called in
    cycle 3 must not look like 100 KiB per cycle of engine growth.
    """
    return filename.startswith(_IMPORT_FRAMES) or (
        fn in _NUMBA_COMPILE and filename.endswith(_NUMBA_DISPATCHER)
    )


class _Attribution:
    """Caches, per memray stack id, whether an allocation is the engine's own.

    Engine-attributed (`is_engine`: what per-cycle engine bytes, leak growth and the
    top stacks count) means some frame lies under an engine root and no frame is
    code loading (`_loads_code`): module code and bytecode of NumPy, Numba or faiss,
    imported from the engine's `import` lines, and Numba's compiled kernels pass
    through engine frames, but they are the cost of loading code once, not what
    the engine's cycles keep alive.
    """

    def __init__(self, roots: list[str]) -> None:
        self.dirs = tuple(r.rstrip(os.sep) + os.sep for r in roots if Path(r).is_dir())
        self.files = {r for r in roots if not Path(r).is_dir()}
        self.cache: dict[int, bool] = {}
        self.frames: dict[int, list[str]] = {}
        self.files_of: dict[int, list[str]] = {}  # per engine stack: frame files, innermost first

    def is_root(self, filename: str) -> bool:
        return filename in self.files or filename.startswith(self.dirs)

    def is_engine(self, rec: Any) -> bool:
        sid = rec.stack_id
        hit = self.cache.get(sid)
        if hit is None:
            try:
                stack = rec.stack_trace()  # innermost frame first
            except Exception:
                stack = []
            hit = any(self.is_root(f) for _fn, f, _ln in stack) and not any(
                _loads_code(fn, f) for fn, f, _ln in stack
            )
            self.cache[sid] = hit
            if hit:
                self.frames[sid] = [_frame(fn, f, ln) for fn, f, ln in stack[:12]]
                self.files_of[sid] = [f for _fn, f, _ln in stack[:12]]
        return hit

    def native_key(self, rec: Any) -> tuple[int, int]:
        """With native traces, a stack is the Python stack plus the native one: the C/C++
        frames (memray's symbolisation, `hybrid_stack_trace`) name where the engine allocated."""
        key = (rec.stack_id, rec.native_stack_id)
        if key not in self.frames:
            try:
                stack = rec.hybrid_stack_trace(max_stacks=16)
            except Exception:
                stack = []
            self.frames[key] = [f"{fn} ({f}:{ln})" for fn, f, ln in stack] or self.frames.get(
                rec.stack_id, []
            )
        return key


def _frame(fn: str, filename: str, line: int | str) -> str:
    """One stack frame as the top stacks show it: 'func (file:line)'."""
    return f"{fn} ({filename}:{line})"


_LEDGER_FRAME = re.compile(r"^(?P<file>.*):(?P<line>\d+) in (?P<fn>.+)$")


def _ledger_frames(stack: Sequence[str]) -> list[str]:
    """A ledger stack ('file:line in func', innermost first) in memray's frame form."""
    out = []
    for entry in stack:
        m = _LEDGER_FRAME.match(str(entry))
        out.append(_frame(m["fn"], m["file"], m["line"]) if m else str(entry))
    return out


def ledgers_at_markers(
    markers: Sequence[Mapping[str, Any]], steps: Iterable[Any]
) -> dict[int, dict[str, Any]]:
    """The engine's ledger snapshot in force at each marker, by marker index.

    A marker follows the step event it is named after (same cycle, step and op:
    a reset, the teardown's close) or, at a cycle's end, the cycle's last step;
    nothing runs between that step's snapshot and the marker. Markers without a
    ledger (an engine that keeps none) are left out.
    """
    exact: dict[tuple[int, int, str], dict[str, Any]] = {}
    by_cycle: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for ev in steps:
        led = (getattr(ev, "memory", None) or {}).get("ledger")
        if not isinstance(led, dict):
            continue
        exact[(ev.cycle, ev.step, ev.op)] = led
        by_cycle.setdefault(ev.cycle, []).append((ev.step, led))
    out: dict[int, dict[str, Any]] = {}
    for mk in markers:
        c, s, op = mk.get("cycle"), mk.get("step"), mk.get("op")
        led = exact.get((c, s, op))
        if led is None:
            earlier = [(st, lg) for st, lg in by_cycle.get(c, []) if s is None or st < s]
            led = earlier[-1][1] if earlier else None
        if led is not None:
            out[int(mk["index"])] = led
    return out


def _cached(ledger: Mapping[str, Any] | None) -> int:
    return int((ledger or {}).get("cached_bytes") or 0)


def _allocator_files(attr: _Attribution, ledgers: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Files of the allocator's own frames, found by measurement: a ledger names, per
    label, the frames that called the allocator (its own frames left out); in memray's
    stack of that allocation the same frames follow the allocator's. Empty when no
    ledger stack matches a memray stack (then nothing is set apart by stack)."""
    sites = {
        tuple(_ledger_frames(entry["stack"]))
        for led in ledgers
        for entry in (led.get("by_label") or {}).values()
        if isinstance(entry, dict) and entry.get("stack")
    }
    found: set[str] = set()
    for sid, frames in attr.frames.items():
        for site in sites:
            try:
                k = frames.index(site[0], 1)
            except ValueError:
                continue
            if tuple(frames[k : k + len(site)]) == site[: len(frames) - k]:
                # the allocator is engine code; what it calls (NumPy) is not the allocator
                found.update(f for f in attr.files_of[sid][:k] if attr.is_root(f))
    return frozenset(found)


def _step_ledgers(steps: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for ev in steps:
        led = (getattr(ev, "memory", None) or {}).get("ledger")
        if isinstance(led, dict):
            out.append(led)
    return out


def _ledger_entries(ledger: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Live blocks by label as top-stack entries (bytes, blocks, label, stack)."""
    out = {}
    for label, entry in ((ledger or {}).get("by_label") or {}).items():
        if isinstance(entry, dict):
            out[label] = {
                "bytes": int(entry.get("bytes") or 0),
                "blocks": int(entry.get("blocks") or 0),
                "label": label,
                "source": "allocator ledger",
                "stack": _ledger_frames(entry.get("stack") or []),
            }
    return out
