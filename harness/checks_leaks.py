"""Leak findings at the reset points: the exact allocator ledger and growth across cycles.

Apart because leaks are judged across cycles, at the same point of each (after a reset), from
the memory figures the child recorded there: the ledger's live blocks (exact, zero expected
after a clear) and the memray / tracemalloc / RSS / NRT / Python-block series, each judged by
`checks_growth`, with the Python object types that grow as evidence.
"""

from __future__ import annotations

from typing import Any

from .checks_growth import GROWTH_RULES, TOP_GROWING_TYPES, growth
from .protocol import EMPTYING_OPS, RESET_OPS
from .records import Finding, StepEvent


def _reset_points(
    steps: list[StepEvent], ops: tuple[str, ...] = EMPTYING_OPS
) -> dict[int, StepEvent]:
    """Per cycle, the last successful step of `ops` (a reset, or the teardown's close)."""
    out: dict[int, StepEvent] = {}
    for ev in steps:
        if ev.op in ops and ev.ok and not ev.skipped:
            out[ev.cycle] = ev
    return out


def _ledger_findings(steps: list[StepEvent]) -> list[Finding]:
    leaks = []
    for ev in steps:
        if ev.op not in EMPTYING_OPS or not ev.ok or ev.skipped:
            continue
        led = (ev.memory or {}).get("ledger")
        if led and led.get("live_blocks", 0) > 0:
            leaks.append(ev)
    if not leaks:
        return []
    first = leaks[0]
    led = first.memory["ledger"]
    series = [
        {
            "cycle": e.cycle,
            "step": e.step,
            "op": e.op,
            "live_blocks": e.memory["ledger"]["live_blocks"],
            "live_bytes": e.memory["ledger"]["live_bytes"],
        }
        for e in leaks
    ]
    grows = len(series) > 1 and series[-1]["live_bytes"] > series[0]["live_bytes"]
    # the allocator names the newest live block's allocation site per label (checked
    # allocator): the label holding the most bytes at the last reset is the one that grows
    last_by_label = (leaks[-1].memory["ledger"].get("by_label") or {}) if leaks else {}
    site = ""
    if last_by_label:
        label, entry = max(last_by_label.items(), key=lambda kv: kv[1].get("bytes", 0))
        if entry.get("stack"):
            site = f"; newest '{label}' block allocated at {' <- '.join(entry['stack'][:2])}"
    return [
        Finding(
            "leak",
            first.cycle,
            first.step,
            first.op,
            (
                f"{led['live_blocks']} block(s), {led['live_bytes']} bytes still live after "
                f"{first.op} in cycle {first.cycle} ({', '.join(sorted(led.get('by_label', {})))})"
                + ("; growing every cycle" if grows else "")
                + site
            )[:400],
            {
                "source": "allocator ledger",
                "by_label": led.get("by_label", {}),
                "after_resets": series[:50],
                "growing": grows,
                "cycles": sorted({e.cycle for e in leaks}),
            },
        )
    ]


def _growth_findings(
    steps: list[StepEvent],
    markers: list[dict[str, Any]],
    analysis: dict[str, Any] | None,
    tool: str | None = None,
    planned: int = 0,
    tables: dict[int, int] | None = None,
) -> list[Finding]:
    """Growth across cycles; `planned` is the number of cycles the table has (later ones are
    the child's confirmation repeats); `tables` maps each cycle to its [[cycle]] table."""
    points = _reset_points(steps, RESET_OPS)
    cycles = sorted(points)

    def cached(c: int) -> int:
        """Bytes the engine's allocator keeps as a cache (e.g. a quarantine) at that point."""
        return int(((points[c].memory or {}).get("ledger") or {}).get("cached_bytes", 0))

    if any(cached(c) for c in cycles):
        # an allocator that keeps freed blocks (the checked allocator's quarantine, with
        # their stacks) grows every process-level measure by design; its exact ledger
        # (_ledger_findings) is what judges leaks then
        return []

    series: dict[str, tuple[list[int], list[float]]] = {}
    if analysis and analysis.get("markers"):
        by_index = {m["index"]: m for m in analysis["markers"]}
        at: dict[tuple[int, int], int] = {}
        for mk in markers:
            m = by_index.get(mk["index"])
            if m is not None:
                at[(mk["cycle"], mk["step"])] = m["engine_live_bytes"]
        cs = [c for c in cycles if (c, points[c].step) in at]
        series["memray"] = (cs, [at[(c, points[c].step)] - cached(c) for c in cs])
    # tracemalloc traces Python objects too: not after a reload either (see py_blocks below)
    tm = [c for c in cycles if "tracemalloc" in points[c].memory and points[c].op != "reload"]
    # like the Python blocks below: tracemalloc traces the whole process, and a cycle of another
    # [[cycle]] table (a new dimension, new code paths) loads one-off objects of its own (seen:
    # the clean C twin under ASan, memray off, "growing" 81 KiB per new dimension)
    if tm and tables:
        tm = [c for c in tm if tables.get(c) == tables.get(tm[-1])]
    series["tracemalloc"] = (tm, [points[c].memory["tracemalloc"] - cached(c) for c in tm])
    # under ASan (its quarantine holds freed blocks) or valgrind (its own heap) RSS grows by
    # design; the tool's leak check judges the engine's leaks there
    rs = [c for c in cycles if "rss" in points[c].memory] if tool is None else []
    series["rss"] = (rs, [points[c].memory["rss"] - cached(c) for c in rs])
    # not after a reload: re-importing a module makes new function objects, and whatever
    # holds the old ones (Numba's dispatcher registry, inspect caches) keeps them, in any
    # engine; a reload's native memory is still judged by memray, RSS and the ledger
    # and only across the cycles of one [[cycle]] table (the last one's, which confirmation
    # repeats extend): a cycle that takes new code paths loads new Numba specialisations and
    # other one-off Python objects, so different tables are not the same point of a lifecycle
    pb = [c for c in cycles if "py_blocks" in points[c].memory and points[c].op != "reload"]
    if pb and tables:
        pb = [c for c in pb if tables.get(c) == tables.get(pb[-1])]
    series["py_blocks"] = (pb, [points[c].memory["py_blocks"] for c in pb])
    nr = [c for c in cycles if "nrt" in points[c].memory]
    series["nrt"] = (
        nr,
        [points[c].memory["nrt"]["alloc"] - points[c].memory["nrt"]["free"] for c in nr],
    )
    found: list[tuple[str, list[int], dict[str, Any]]] = []
    for key, (cs, vals) in series.items():
        ev = growth(vals, GROWTH_RULES[key])
        if ev is not None:
            found.append((key, cs, ev))
    if not found:
        return []
    key, cs, ev = found[0]
    base = ev["values"][ev["warmup_cycles"]]
    first_i = next(
        (
            i
            for i, v in enumerate(ev["values"])
            if i >= ev["warmup_cycles"] and v - base >= GROWTH_RULES[key].rise_min / 2
        ),
        len(cs) - 1,
    )
    cycle = cs[first_i]
    step = points[cycle]
    if ev["unit"] == "bytes":
        rate = f"{ev['slope_per_cycle'] / 1024:.1f} KiB per cycle"
        rise = f"+{ev['rise_bytes'] / 1024:.0f} KiB"
    else:
        digits = 0 if ev["unit"] == "blocks" else 1  # thousands of blocks; NRT counts are small
        rate = f"{ev['slope_per_cycle']:,.{digits}f} {ev['unit']} per cycle"
        rise = f"+{ev['rise_bytes']:,.0f} {ev['unit']}"
    types = growing_types(points, cs, ev["warmup_cycles"])
    type_text = (
        "; " + ", ".join(f"+{t['per_cycle']:,.0f} {t['type']} objects per cycle" for t in types[:3])
        if types
        else ""
    )
    confirmed = [c for c in cs if c > planned] if planned else []
    judged = (
        f" (judged over {len(cs)} cycles, {len(confirmed)} of them extra repeats to confirm)"
        if confirmed
        else ""
    )
    return [
        Finding(
            "leak",
            cycle,
            step.step,
            step.op,
            f"{ev['source']} grow {rate} after {step.op} (cycles {cs[0]}..{cs[-1]}, {rise})"
            f"{type_text}{judged}"[:400],
            {
                **ev,
                "cycles_sampled": cs,
                "also": {k: e for k, _c, e in found[1:]},
                "cycles": [c for c in cs if c >= cycle],
                "growing_types": types,
                "confirmation_cycles": len(confirmed),
                "top_growth": (analysis or {}).get("top_growth", [])[:5],
                "top_live": (analysis or {}).get("top_live", [])[:5],
                **_memray_native_note(analysis),
            },
        )
    ]


def _memray_native_note(analysis: dict[str, Any] | None) -> dict[str, Any]:
    """Whether memray's stacks name native (C/C++/Rust) frames, and what to do if not."""
    if analysis is None:
        return {}
    if analysis.get("native_traces"):
        return {"memray_native_traces": True}
    return {
        "memray_native_traces": False,
        "memray_native_note": "memray native traces off: stacks name Python frames only; "
        "run with --native to name the C/C++/Rust frames that allocated",
    }


def growing_types(
    points: dict[int, StepEvent], cycles: list[int], warmup: int
) -> list[dict[str, Any]]:
    """Python object types whose count rises from the first cycle after warm-up to the last
    (objgraph's growth view), most objects per cycle first."""
    have = [c for c in cycles if (points[c].memory or {}).get("py_objects")]
    if len(have) < 2:
        return []
    start = have[min(warmup, len(have) - 2)]
    first, last = points[start].memory["py_objects"], points[have[-1]].memory["py_objects"]
    span = have[-1] - start
    out = []
    for name, n in last.items():
        delta = n - int(first.get(name, 0))
        if delta > 0:
            out.append({"type": name, "per_cycle": delta / span, "count": n, "delta": delta})
    out.sort(key=lambda t: -t["per_cycle"])
    return [t for t in out[:TOP_GROWING_TYPES] if t["per_cycle"] >= 1]
