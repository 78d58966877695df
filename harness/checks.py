"""Verdicts from measurements: every Finding names its cycle, step and evidence.

Sources, in the order they are judged:
- how the child ended (signal -> crash, timeout, a harness-level exit);
- step exceptions (a MemoryFault carries its verdict, anything else is a
  lifecycle-error) and allocator violations recorded by finalizers;
- oracle comparisons (count, recall, stale/unknown/duplicate ids, stored rows);
- leaks: the allocator ledger after every reset (exact: the contract says zero
  engine blocks after clear), and growth across cycles of memray's
  engine-attributed live bytes, tracemalloc and RSS, judged with a robust
  (Theil-Sen) slope over the cycles after warm-up plus a later-vs-earlier rise,
  so allocator caches and one-off buffers do not count. When the engine's
  allocator reports a cache of its own (`cached_bytes`, the checked allocator's
  quarantine of freed blocks), process-level growth is expected and only the
  exact ledger judges leaks.
A run with nothing wrong in which a step was skipped (the engine lacks a
capability) is `skipped`, with the skipped steps as evidence, never `clean`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import VERDICTS, CycleSummary, Finding, RunRecord, StepEvent, verdict_set, worst
from .scenario import PlannedCycle

RESET_OPS = ("clear", "destroy", "reload", "close")
# the label of the cycles the child added to confirm a rising series (runner.py, child.py)
CONFIRM_LABEL = "confirmation repeat"


@dataclass(frozen=True)
class GrowthRule:
    """When a per-cycle series counts as a leak."""

    source: str
    slope_min: float  # bytes per cycle
    rise_min: float  # later cycles minus early cycles, bytes
    frac_min: float = 0.6  # share of pairwise slopes that are positive
    unit: str = "bytes"


GROWTH_RULES: dict[str, GrowthRule] = {
    "memray": GrowthRule("memray engine-attributed live bytes", 4 * 1024, 32 * 1024),
    "tracemalloc": GrowthRule("tracemalloc traced bytes", 16 * 1024, 128 * 1024),
    "rss": GrowthRule("RSS", 1 << 20, 16 << 20, 0.75),
    # Numba NRT: allocations made by jitted code and not freed (alloc - free counters)
    "nrt": GrowthRule("Numba NRT live allocations", 0.5, 4, 0.6, unit="allocations"),
    # pymalloc blocks in use (sys.getallocatedblocks, after a collection): Python objects
    # that memray without trace_python_allocators sees only as 1 MiB arenas
    "py_blocks": GrowthRule("Python allocated blocks", 1000, 3000, 0.6, unit="blocks"),
}
# the types named as evidence of a Python-object leak: the top few that grow per cycle
TOP_GROWING_TYPES = 5
MIN_GROWTH_POINTS = 4


def growth(values: list[float], rule: GrowthRule) -> dict[str, Any] | None:
    """Judge a series sampled once per cycle at the same point (after a reset).

    The first cycles are warm-up (JIT compilation, BLAS buffers, allocator
    arenas) and are dropped; the rest must rise steadily: Theil-Sen slope,
    the median of the last third above the median of the first third, and
    most pairwise slopes positive. Returns the evidence when it is a leak.
    """
    n = len(values)
    if n < MIN_GROWTH_POINTS:
        return None
    warm = 1 if n < 10 else n // 10
    v = np.asarray(values[warm:], dtype=np.float64)
    m = len(v)
    if m < MIN_GROWTH_POINTS - 1:
        return None
    i, j = np.triu_indices(m, k=1)
    slopes = (v[j] - v[i]) / (j - i)
    slope = float(np.median(slopes))
    frac = float(np.mean(slopes > 0))
    third = max(1, m // 3)
    rise = float(np.median(v[-third:]) - np.median(v[:third]))
    if slope >= rule.slope_min and rise >= rule.rise_min and frac >= rule.frac_min:
        return {
            "source": rule.source,
            "slope_per_cycle": slope,
            "unit": rule.unit,
            "slope_bytes_per_cycle": slope if rule.unit == "bytes" else None,
            "rise_bytes": rise,
            "positive_slope_share": frac,
            "warmup_cycles": warm,
            "values": [int(x) for x in values],
        }
    return None


def _error_verdict(error: dict[str, Any]) -> str:
    v = error.get("verdict")
    return v if v in VERDICTS else "lifecycle-error"


def _first_line(s: str) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else ""


def _next_position(plan: tuple[PlannedCycle, ...], steps: list[StepEvent]) -> tuple[int, int, str]:
    """Where the child was when it died: the step after the last one reported."""
    if not plan:
        return 1, 0, "?"
    if not steps:
        return plan[0].index, 0, plan[0].steps[0].op
    last = steps[-1]
    if last.op == "close":
        return last.cycle, last.step, "close"
    pc = plan[last.cycle - 1]
    if last.step + 1 < len(pc.steps):
        return pc.index, last.step + 1, pc.steps[last.step + 1].op
    if last.cycle < len(plan):
        nxt = plan[last.cycle]
        return nxt.index, 0, nxt.steps[0].op
    return last.cycle, last.step + 1, "close"


def _exit_findings(
    record: RunRecord, plan: tuple[PlannedCycle, ...], setup_error: dict[str, Any] | None
) -> list[Finding]:
    ex = record.exit
    kind = ex.get("kind")
    cycle, step, op = _next_position(plan, record.steps)
    tail = {k: ex.get(k) for k in ("native_message", "fatal_error", "faulthandler", "stderr_tail")}
    if kind == "signal":
        msg = ex.get("native_message") or ex.get("fatal_error") or ""
        return [
            Finding(
                "crash",
                cycle,
                step,
                op,
                f"{ex.get('signal_name')} in cycle {cycle} at {op}" + (f": {msg}" if msg else ""),
                {"signal": ex.get("signal"), "signal_name": ex.get("signal_name"), **tail},
            )
        ]
    if kind == "timeout":
        return [
            Finding(
                "timeout",
                cycle,
                step,
                op,
                f"no end after {ex.get('timeout')} s (cycle {cycle}, {op})",
                {"timeout": ex.get("timeout"), "stderr_tail": ex.get("stderr_tail")},
            )
        ]
    if setup_error is not None:
        return [
            Finding(
                "lifecycle-error",
                None,
                None,
                "setup",
                f"engine setup failed: {setup_error.get('type')}: {_first_line(setup_error.get('message', ''))}",
                {"error": setup_error},
            )
        ]
    if kind == "exit":
        return [
            Finding(
                "crash",
                cycle,
                step,
                op,
                f"child exited with code {ex.get('code')} in cycle {cycle} at {op}",
                {"code": ex.get("code"), **tail},
            )
        ]
    return []


def _step_findings(steps: list[StepEvent]) -> list[Finding]:
    out: list[Finding] = []
    seen_violations = 0
    # one Finding per (verdict, block label), listing every cycle it happened in, so a
    # double free in every cycle marks every cycle without one Finding per occurrence
    by_kind: dict[tuple[str, str], Finding] = {}
    for ev in steps:
        if ev.error:
            verdict = _error_verdict(ev.error)
            out.append(
                Finding(
                    verdict,
                    ev.cycle,
                    ev.step,
                    ev.op,
                    f"{ev.error.get('type', '').rsplit('.', 1)[-1]} in cycle {ev.cycle} at "
                    f"{ev.op}: {_first_line(ev.error.get('message', ''))}"[:300],
                    {"error": ev.error},
                )
            )
        led = (ev.memory or {}).get("ledger") or {}
        nv = int(led.get("n_violations", len(led.get("violations") or [])))
        if nv > seen_violations:
            for v in (led.get("violations") or [])[-(nv - seen_violations) :]:
                verdict = v.get("verdict") if v.get("verdict") in VERDICTS else "lifecycle-error"
                kind = (verdict, str(v.get("label")))
                found = by_kind.get(kind)
                if found is None:
                    by_kind[kind] = found = Finding(
                        verdict,
                        ev.cycle,
                        ev.step,
                        ev.op,
                        f"allocator recorded {verdict} of '{v.get('label')}' by cycle {ev.cycle} "
                        f"({ev.op}): {_first_line(v.get('message', ''))}"[:300],
                        {"violation": v, "cycles": [], "occurrences": 0},
                    )
                    out.append(found)
                found.evidence["occurrences"] += 1
                if ev.cycle not in found.evidence["cycles"]:
                    found.evidence["cycles"].append(ev.cycle)
            seen_violations = nv
        if ev.skipped or not ev.ok:
            continue
        if ev.count is not None and ev.expected_count is not None and ev.count != ev.expected_count:
            out.append(
                Finding(
                    "wrong-result",
                    ev.cycle,
                    ev.step,
                    ev.op,
                    f"count {ev.count} != expected {ev.expected_count} after {ev.op} in cycle {ev.cycle}",
                    {"count": ev.count, "expected_count": ev.expected_count},
                )
            )
        chk = ev.check or {}
        if ev.op == "search":
            problems = []
            if ev.recall is not None and ev.min_recall is not None and ev.recall < ev.min_recall:
                problems.append(f"recall {ev.recall:.3f} < {ev.min_recall}")
            if chk.get("n_stale"):
                problems.append(f"{chk['n_stale']} stale id(s) {chk['stale_ids'][:5]}")
            if chk.get("n_unknown"):
                problems.append(f"{chk['n_unknown']} never-inserted id(s) {chk['unknown_ids'][:5]}")
            if chk.get("duplicates"):
                problems.append(f"{chk['duplicates']} duplicate id(s) in answers")
            if chk.get("filtered_out_ids"):
                problems.append("ids that fail the filter")
            if chk.get("short_rows"):
                got, want = chk.get("returned_results"), chk.get("expected_results")
                fewer = f"{got} of {want} requested hits returned" if got is not None else ""
                problems.append(
                    f"short answers in {chk['short_rows']} quer{'y' if chk['short_rows'] == 1 else 'ies'}"
                    + (f" ({fewer}; {chk.get('n_stale', 0)} stale)" if fewer else "")
                )
            for violation in chk.get("protocol") or []:
                problems.append(f"answer breaks the protocol: {violation}")
            if problems:
                out.append(
                    Finding(
                        "wrong-result",
                        ev.cycle,
                        ev.step,
                        ev.op,
                        f"search in cycle {ev.cycle}: {'; '.join(problems)}",
                        {"check": chk, "recall": ev.recall, "min_recall": ev.min_recall},
                    )
                )
        elif ev.op == "get" and chk.get("n_mismatched"):
            out.append(
                Finding(
                    "wrong-result",
                    ev.cycle,
                    ev.step,
                    ev.op,
                    f"get in cycle {ev.cycle}: {chk['n_mismatched']} row(s) differ from what was inserted",
                    {"check": chk},
                )
            )
    for f in by_kind.values():
        cycles = f.evidence["cycles"]
        if len(cycles) > 1:
            contiguous = cycles == list(range(cycles[0], cycles[-1] + 1))
            span = f"{cycles[0]}..{cycles[-1]}" if contiguous else ", ".join(map(str, cycles[:20]))
            f.summary = f"{f.summary[:220]} [in {len(cycles)} cycles: {span}]"[:300]
    return out


def _reset_points(steps: list[StepEvent], ops: tuple[str, ...] = RESET_OPS) -> dict[int, StepEvent]:
    """Per cycle, the last successful reset step (clear/destroy/reload/close)."""
    out: dict[int, StepEvent] = {}
    for ev in steps:
        if ev.op in ops and ev.ok and not ev.skipped:
            out[ev.cycle] = ev
    return out


def _ledger_findings(steps: list[StepEvent]) -> list[Finding]:
    leaks = []
    for ev in steps:
        if ev.op not in RESET_OPS or not ev.ok or ev.skipped:
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
    planned: int = 0,
    tables: dict[int, int] | None = None,
) -> list[Finding]:
    """Growth across cycles; `planned` is the number of cycles the table has (later ones are
    the child's confirmation repeats); `tables` maps each cycle to its [[cycle]] table."""
    points = _reset_points(steps, ("clear", "destroy", "reload"))
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
    series["tracemalloc"] = (tm, [points[c].memory["tracemalloc"] - cached(c) for c in tm])
    rs = [c for c in cycles if "rss" in points[c].memory]
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
            },
        )
    ]


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


def _skip_findings(steps: list[StepEvent]) -> list[Finding]:
    """Steps the engine could not run (a missing capability): the run did not test them.

    A run that is otherwise clean but skipped steps is `skipped`, never `clean`:
    the evidence lists every skipped step and the reasons.
    """
    skipped = [ev for ev in steps if ev.skipped]
    if not skipped:
        return []
    reasons: dict[str, int] = {}
    for ev in skipped:
        reasons[str(ev.skipped)] = reasons.get(str(ev.skipped), 0) + 1
    cycles = sorted({ev.cycle for ev in skipped})
    where = f"cycle {cycles[0]}" if len(cycles) == 1 else f"cycles {cycles[0]}..{cycles[-1]}"
    why = "; ".join(f"{r} (x{n})" if n > 1 else r for r, n in reasons.items())
    first = skipped[0]
    return [
        Finding(
            "skipped",
            first.cycle,
            first.step,
            first.op,
            f"{len(skipped)} step(s) skipped in {where}: {why}"[:300],
            {
                "skipped_steps": [
                    {"cycle": ev.cycle, "step": ev.step, "op": ev.op, "reason": ev.skipped}
                    for ev in skipped[:200]
                ],
                "n_skipped": len(skipped),
                "reasons": reasons,
                "cycles": cycles,
            },
        )
    ]


MAX_FINDINGS_PER_VERDICT = 10


def _cap(findings: list[Finding]) -> list[Finding]:
    """Keep the first few findings of each verdict; fold the rest into one (cycles kept)."""
    kept: list[Finding] = []
    extra: dict[str, list[Finding]] = {}
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.verdict] = counts.get(f.verdict, 0) + 1
        if counts[f.verdict] <= MAX_FINDINGS_PER_VERDICT:
            kept.append(f)
        else:
            extra.setdefault(f.verdict, []).append(f)
    for verdict, rest in extra.items():
        first = rest[0]
        cycles = sorted({f.cycle for f in rest if f.cycle is not None})
        kept.append(
            Finding(
                verdict,
                first.cycle,
                first.step,
                first.op,
                f"... {len(rest)} more {verdict} finding(s) in cycles {cycles[0]}..{cycles[-1]}"
                if cycles
                else f"... {len(rest)} more {verdict} finding(s)",
                {"cycles": cycles, "summaries": [f.summary for f in rest[:20]]},
            )
        )
    return kept


def judge(
    record: RunRecord,
    plan: tuple[PlannedCycle, ...],
    *,
    markers: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
    setup_error: dict[str, Any] | None = None,
) -> RunRecord:
    """Fill `record.findings`, `record.cycles` and `record.verdict`; returns the record."""
    if record.verdict == "skipped":
        record.cycles = [CycleSummary(pc.index, pc.dimension, "-") for pc in plan]
        return record
    findings = _exit_findings(record, plan, setup_error)
    findings += _cap(_step_findings(record.steps))
    findings += _ledger_findings(record.steps)
    planned = sum(1 for pc in plan if pc.label != CONFIRM_LABEL)
    tables = {pc.index: pc.table for pc in plan}
    findings += _growth_findings(record.steps, markers or [], analysis, planned, tables)
    if not findings:
        # nothing wrong, but a step the engine could not run was not tested: not a pass
        findings = _skip_findings(record.steps)
    record.findings = findings
    record.verdict = worst([f.verdict for f in findings]) if findings else "clean"
    record.verdicts = verdict_set([f.verdict for f in findings])
    record.cycles = summarize_cycles(record, plan, markers or [], analysis)
    return record


def summarize_cycles(
    record: RunRecord,
    plan: tuple[PlannedCycle, ...],
    markers: list[dict[str, Any]],
    analysis: dict[str, Any] | None,
) -> list[CycleSummary]:
    """One row per planned cycle: ok, the worst verdict found in it, or '-' if not reached."""
    reached = {ev.cycle for ev in record.steps}
    status: dict[int, list[str]] = {}
    for f in record.findings:
        cycles = f.evidence.get("cycles") or ([f.cycle] if f.cycle is not None else [plan[0].index])
        for c in cycles:
            status.setdefault(c, []).append(f.verdict)
            reached.add(c)
    engine_at: dict[int, int] = {}
    if analysis and analysis.get("markers"):
        by_index = {m["index"]: m for m in analysis["markers"]}
        for mk in markers:  # the last marker of a cycle wins
            m = by_index.get(mk["index"])
            if m is not None:
                engine_at[mk["cycle"]] = m["engine_live_bytes"]
    resets = _reset_points(record.steps)
    out = []
    for pc in plan:
        evs = [e for e in record.steps if e.cycle == pc.index]
        last = evs[-1] if evs else None
        mem = last.memory if last else {}
        led = mem.get("ledger") or {}
        reset = resets.get(pc.index)
        reset_led = ((reset.memory or {}).get("ledger") or {}) if reset else {}
        if pc.index not in reached:
            st = "-"
        elif pc.index in status:
            st = worst(status[pc.index])
        else:
            st = "ok"
        out.append(
            CycleSummary(
                cycle=pc.index,
                dimension=(last.dimension if last else pc.dimension),
                status=st,
                live_blocks_after_clear=reset_led.get("live_blocks") if reset_led else None,
                live_bytes=led.get("live_bytes"),
                memray_leaked_bytes=engine_at.get(pc.index),
                rss_bytes=mem.get("rss"),
                tracemalloc_bytes=mem.get("tracemalloc"),
                seconds=float(sum(e.seconds for e in evs)),
            )
        )
    return out
