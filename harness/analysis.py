"""The only memray reader: per-cycle engine-attributed live bytes, peaks, top stacks.

The capture is an ALL_ALLOCATIONS file, so it is replayed record by record:
an allocation adds its address to a live map, a free removes it. At each
marker (see `harness.recording`) the bytes still live that were allocated
from engine code are read off. "Engine code" means an allocation whose Python
stack has a frame under one of the run's source roots (the refimpl package,
the adapter module, the engine module). Allocator caches do not matter here:
a block freed back to glibc is gone from the live map even if RSS keeps it.

An allocator that keeps freed blocks of its own (the checked allocator's poisoned
quarantine) is different: those blocks are still allocated as memray sees them,
so a clean run's engine bytes would climb by everything it ever freed. The
engine's ledger reports that cache (`cached_bytes`) at every step; each marker
subtracts the figure in force at that point (`engine_live_bytes` excludes it,
`cached_bytes` is it, `engine_live_with_cache_bytes` is memray's raw figure), and
the top stacks rank the ledger's live blocks (exact: a quarantined block is not in
the ledger's live set) beside the engine memory that did not come from the allocator.

Flamegraphs (`harness.analysis_flamegraphs`) are rendered by memray's own reporter
(`python -m memray flamegraph --no-web`: the page carries its scripts inline, so it works
offline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .analysis_attribution import (  # noqa: F401  (still importable from here)
    _allocator_files,
    _Attribution,
    _cached,
    _frame,
    _ledger_entries,
    _ledger_frames,
    _loads_code,
    _step_ledgers,
    ledgers_at_markers,
)
from .analysis_flamegraphs import _render, external_assets, flamegraphs  # noqa: F401
from .protocol import MARKER_FUNCTION, marker_index

_FREE_KINDS = {1, 5, 15}  # memray AllocatorType: PYMALLOC_FREE, FREE, MUNMAP


@dataclass
class MemrayAnalysis:
    capture: str
    records: int = 0
    peak_bytes: int = 0  # highest total live bytes (markers excluded)
    engine_peak_bytes: int = 0
    markers: list[dict[str, Any]] = field(default_factory=list)
    # engine stacks still live at the end, without what the engine's imports allocated
    top_live: list[dict[str, Any]] = field(default_factory=list)
    # engine stacks whose live bytes grew from the baseline marker to the end: the leak's origin
    top_growth: list[dict[str, Any]] = field(default_factory=list)
    baseline_index: int | None = None
    # the allocator's own cache of freed blocks at the end (checked allocator's quarantine),
    # shown apart from what is live: bytes (ledger), allocator_bytes (memray's view of all
    # allocator blocks, live and cached) and the allocator's stacks; empty without a cache
    cache: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # the capture has native frames (--native): stacks then name C/C++ frames, innermost first
    native_traces: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_marker(rec: Any) -> int | None:
    idx = marker_index(rec.size)
    if idx is None:
        return None
    try:
        stack = rec.stack_trace(max_stacks=1)
    except Exception:
        return None
    return idx if stack and stack[0][0] == MARKER_FUNCTION else None


def _by_stack(live: dict[int, tuple[int, Any, bool]]) -> dict[Any, list[int]]:
    """Engine-attributed live bytes and blocks per stack id."""
    by_stack: dict[Any, list[int]] = {}
    for size, sid, is_eng in live.values():
        if is_eng:
            entry = by_stack.setdefault(sid, [0, 0])
            entry[0] += size
            entry[1] += 1
    return by_stack


def analyze(
    capture: str | Path,
    roots: list[str],
    baseline_index: int | None = None,
    *,
    steps: Sequence[Any] = (),
    markers: Sequence[Mapping[str, Any]] = (),
) -> MemrayAnalysis:
    """Replay a capture; never raises (a broken capture is reported in `error`).

    `baseline_index` names the marker (usually the end of the warm-up cycle) from
    which per-stack growth is measured for `top_growth`. The run's step events and
    markers (as the child emitted them) carry the engine's ledger, which lets a cache
    the allocator keeps (`cached_bytes`) be measured apart from what is live.
    """
    out = MemrayAnalysis(capture=str(capture), baseline_index=baseline_index)
    ledgers = ledgers_at_markers(markers, steps)
    baseline: dict[int, list[int]] | None = None
    try:
        from memray import FileReader
    except ImportError as exc:  # pragma: no cover - memray is a dependency
        out.error = f"memray not importable: {exc}"
        return out
    attr = _Attribution(roots)
    live: dict[int, tuple[int, Any, bool]] = {}  # address -> (size, stack key, engine)
    # growth is measured at the last reset point (clear/destroy/reload), not after the final
    # close: what an engine holds until close would otherwise name no site at all
    op_at = {int(m["index"]): str(m.get("op", "")) for m in markers if "index" in m}
    at_reset: dict[Any, list[int]] | None = None
    total = engine = engine_blocks = 0
    seg_peak = seg_engine_peak = 0
    last_index: int | None = None
    peak = engine_peak = n_records = 0
    try:
        reader = FileReader(str(capture))
        native = out.native_traces = bool(getattr(reader.metadata, "has_native_traces", False))
        # the hot loop: one pass over every record, so names are bound locally and the
        # engine-attribution cache is read inline (`_Attribution.is_engine` fills it)
        free_kinds = _FREE_KINDS
        live_pop = live.pop
        eng_cache = attr.cache
        is_engine = attr.is_engine
        for rec in reader.get_allocation_records():
            n_records += 1
            if rec.allocator in free_kinds:
                old = live_pop(rec.address, None)
                if old is not None:
                    total -= old[0]
                    if old[2]:
                        engine -= old[0]
                        engine_blocks -= 1
                continue
            size = rec.size
            idx = _is_marker(rec) if size >= 1_000_000 else None
            if idx is not None:
                cached = _cached(ledgers.get(idx))
                # subtracted only when memray holds it among the engine's bytes (checked
                # again at the end, against the allocator's own stacks: _verify_cache)
                inside = 0 < cached <= engine
                out.markers.append(
                    {
                        "index": idx,
                        "engine_live_bytes": engine - cached if inside else engine,
                        "engine_live_blocks": engine_blocks,
                        "cached_bytes": cached,
                        "engine_live_with_cache_bytes": engine,
                        "cache_subtracted": inside,
                        "total_live_bytes": total,
                        "peak_bytes": seg_peak,
                        "engine_peak_bytes": seg_engine_peak,
                    }
                )
                seg_peak, seg_engine_peak = total, engine
                last_index = idx
                if idx == baseline_index:
                    baseline = _by_stack(live)
                elif op_at.get(idx) not in ("close", None) and baseline is not None:
                    at_reset = _by_stack(live)
                # the marker's own free follows; it must not match a live block
                live_pop(rec.address, None)
                continue
            sid = rec.stack_id
            is_eng = eng_cache.get(sid)
            if is_eng is None:
                is_eng = is_engine(rec)
            address = rec.address
            prev = live_pop(address, None)
            if prev is not None:  # realloc in place or a missed free
                total -= prev[0]
                if prev[2]:
                    engine -= prev[0]
                    engine_blocks -= 1
            key = attr.native_key(rec) if native and is_eng else sid
            live[address] = (size, key, is_eng)
            total += size
            if is_eng:
                engine += size
                engine_blocks += 1
                if engine > seg_engine_peak:
                    seg_engine_peak = engine
                    if engine > engine_peak:
                        engine_peak = engine
            if total > seg_peak:
                seg_peak = total
                if total > peak:
                    peak = total
        out.records = n_records
        out.peak_bytes = max(out.peak_bytes, peak)
        out.engine_peak_bytes = max(out.engine_peak_bytes, engine_peak)
        reader.close()
    except Exception as exc:  # truncated capture after a hard crash, etc.
        out.error = f"{type(exc).__name__}: {exc}"
        out.records = max(out.records, n_records)
        out.peak_bytes = max(out.peak_bytes, peak)
        out.engine_peak_bytes = max(out.engine_peak_bytes, engine_peak)
    by_stack = _by_stack(live)
    end_ledger = ledgers.get(last_index) if last_index is not None else None
    alloc_files = (
        _allocator_files(attr, _step_ledgers(steps)) if _cached(end_ledger) else frozenset()
    )
    if _verify_cache(out, attr, by_stack, end_ledger, alloc_files):
        _rank_apart(out, attr, by_stack, baseline, end_ledger, ledgers, alloc_files)
        return out
    for sid, (nbytes, count) in sorted(by_stack.items(), key=lambda kv: -kv[1][0])[:10]:
        out.top_live.append({"bytes": nbytes, "blocks": count, "stack": attr.frames.get(sid, [])})
    if baseline is not None:
        growth = []
        for sid, (nbytes, count) in (at_reset if at_reset is not None else by_stack).items():
            before = baseline.get(sid, [0, 0])
            if nbytes > before[0]:
                growth.append((nbytes - before[0], count - before[1], sid))
        for nbytes, count, sid in sorted(growth, reverse=True)[:10]:
            out.top_growth.append(
                {"bytes": nbytes, "blocks": count, "stack": attr.frames.get(sid, [])}
            )
    return out


def _from_allocator(attr: _Attribution, alloc_files: frozenset[str], sid: int) -> bool:
    """The innermost engine frame is the allocator's: its blocks, and what it needs for
    them (NumPy called from the allocator)."""
    inner = next((f for f in attr.files_of.get(sid, []) if attr.is_root(f)), "")
    return inner in alloc_files


def _verify_cache(
    out: MemrayAnalysis,
    attr: _Attribution,
    by_stack: dict[int, list[int]],
    end_ledger: Mapping[str, Any] | None,
    alloc_files: frozenset[str],
) -> bool:
    """Whether memray holds the allocator's cache where the ledger says it is: at the end,
    the bytes memray sees live in the allocator's own stacks cover the cache the ledger
    reports. When they do not (or the allocator's frames were not found), nothing is
    subtracted anywhere: an unverified figure never lowers the engine's bytes."""
    if not any(m["cache_subtracted"] for m in out.markers):
        return False
    held = sum(b for sid, (b, _n) in by_stack.items() if _from_allocator(attr, alloc_files, sid))
    if alloc_files and held >= _cached(end_ledger):
        return True
    for m in out.markers:
        m["engine_live_bytes"] = m["engine_live_with_cache_bytes"]
        m["cache_subtracted"] = False
    return False


def _rank_apart(
    out: MemrayAnalysis,
    attr: _Attribution,
    by_stack: dict[int, list[int]],
    baseline: dict[int, list[int]] | None,
    end_ledger: Mapping[str, Any] | None,
    ledgers: Mapping[int, Mapping[str, Any]],
    alloc_files: frozenset[str],
) -> None:
    """Top stacks for an allocator with a cache: what is live, with the cache apart.

    memray cannot tell a quarantined block from a live one (both are still allocated),
    so the allocator's own allocations leave memray's ranking; the ledger's live blocks
    by label (exact, and without the quarantine) take their place beside the engine
    memory that did not come from the allocator. The allocator's stacks as memray sees
    them (live blocks plus the cache) are kept in `cache`, apart.
    """

    held = {sid: v for sid, v in by_stack.items() if _from_allocator(attr, alloc_files, sid)}
    own = {sid: v for sid, v in by_stack.items() if sid not in held}
    live_entries = list(_ledger_entries(end_ledger).values())
    live_entries += [
        {"bytes": b, "blocks": n, "stack": attr.frames.get(sid, [])} for sid, (b, n) in own.items()
    ]
    out.top_live = sorted(live_entries, key=lambda e: -e["bytes"])[:10]
    if baseline is not None:
        base_ledger = ledgers.get(out.baseline_index) if out.baseline_index is not None else None
        before = _ledger_entries(base_ledger)
        growth = []
        for label, e in _ledger_entries(end_ledger).items():
            b0 = before.get(label, {"bytes": 0, "blocks": 0})
            if e["bytes"] > b0["bytes"]:
                growth.append(
                    {**e, "bytes": e["bytes"] - b0["bytes"], "blocks": e["blocks"] - b0["blocks"]}
                )
        for sid, (nbytes, count) in own.items():
            b0 = baseline.get(sid, [0, 0])
            if nbytes > b0[0]:
                growth.append(
                    {"bytes": nbytes - b0[0], "blocks": count - b0[1], "stack": attr.frames[sid]}
                )
        out.top_growth = sorted(growth, key=lambda e: -e["bytes"])[:10]
    out.cache = {
        "bytes": _cached(end_ledger),
        "live_bytes": int((end_ledger or {}).get("live_bytes") or 0),
        "allocator_bytes": sum(b for b, _n in held.values()),
        "allocator_blocks": sum(n for _b, n in held.values()),
        "allocator_files": sorted(alloc_files),
        "stacks": [
            {"bytes": b, "blocks": n, "stack": attr.frames.get(sid, [])}
            for sid, (b, n) in sorted(held.items(), key=lambda kv: -kv[1][0])[:5]
        ],
    }
