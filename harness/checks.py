"""Verdicts from measurements: every Finding names its cycle, step and evidence.

Sources, in the order they are judged:
- how the child ended (signal -> crash, timeout, a harness-level exit);
- setup: the child's `error` event (engine module not importable, factory raised,
  adapter incomplete) and a child that exited before its `start` event (it could not
  even start: `No module named ...` in its stderr) are `error`, with the exception or
  the child's stderr tail as evidence and no cycle or step (none ran);
- step exceptions (a MemoryFault carries its verdict; an adapter/library API
  mismatch is `error`, see below; anything else is a lifecycle-error) and allocator
  violations recorded by finalizers;
- oracle comparisons (count, recall, stale/unknown/duplicate ids, stored rows);
- leaks: the allocator ledger after every reset (exact: the contract says zero
  engine blocks after clear), and growth across cycles of memray's
  engine-attributed live bytes, tracemalloc and RSS, judged with a robust
  (Theil-Sen) slope over the cycles after warm-up plus a later-vs-earlier rise,
  so allocator caches and one-off buffers do not count. When the engine's
  allocator reports a cache of its own (`cached_bytes`, the checked allocator's
  quarantine of freed blocks), process-level growth is expected and only the
  exact ledger judges leaks.
Steps the engine could not run (a capability it lacks) are never judged: the run's
verdict comes from the steps that ran, and a `skipped` finding listing every skipped
step and its reason is added whatever that verdict is (a leak shows its skipped steps
too). Only a run in which nothing could run is `skipped` as a whole.

The `error` rule for a step's exception (`is_api_mismatch`): it is `error` (the adapter
does not fit the library it drives, not an engine bug) only when it cannot be a lifecycle
bug, i.e. both
- the exception is one of: a `TypeError` whose message is a call-signature mismatch
  ("unexpected keyword argument", "positional argument", "missing N required ...",
  "takes no (keyword) arguments", "got multiple values for argument", pybind11's
  "incompatible function arguments"); an `AttributeError` on a module or a class
  ("module 'x' has no attribute", "type object 'X' has no attribute"; never on
  `NoneType` or on an instance, which is what a handle dropped by `clear` looks like);
  an `ImportError` (incl. `ModuleNotFoundError`) or a `NameError` (not
  `UnboundLocalError`, which depends on the path taken);
- and it is the first time that op ran in the run: an op that worked before and now
  raises is a lifecycle-error, whatever the exception.
Everything else a step raises stays `lifecycle-error`. An `error` is never an engine
verdict: a scenario expecting `lifecycle-error` is not satisfied by it, and an `error`
run never passes (`RunRecord.passed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .native_messages import find_native_message
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


_SIGNATURE_MISMATCH = re.compile(
    r"unexpected keyword argument|positional argument|missing \d+ required"
    r"|takes no (?:keyword )?arguments|got multiple values for argument"
    r"|incompatible function arguments"  # pybind11 (hnswlib, faiss, usearch bindings)
)
_CLASS_OR_MODULE_ATTR = re.compile(r"^(?:module '[^']+'|type object '[^']+') has no attribute ")
_MISSING_NAME_TYPES = frozenset({"ImportError", "ModuleNotFoundError", "NameError"})


def is_api_mismatch(error: dict[str, Any]) -> bool:
    """Whether a step's exception is an adapter/library API mismatch by its kind alone
    (see the module doc; the caller adds the first-time-this-op-ran condition)."""
    kind = str(error.get("type") or "").rsplit(".", 1)[-1]
    message = str(error.get("message") or "")
    if kind == "TypeError":
        return bool(_SIGNATURE_MISMATCH.search(message))
    if kind == "AttributeError":
        return bool(_CLASS_OR_MODULE_ATTR.match(message.strip()))
    return kind in _MISSING_NAME_TYPES


def _error_verdict(error: dict[str, Any], first_time: bool = False) -> str:
    v = error.get("verdict")
    if v in VERDICTS and v != "error":
        return v
    if first_time and is_api_mismatch(error):
        return "error"
    return "lifecycle-error"


def _tail(text: str | None, lines: int = 25) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def _last_error_line(stderr: str | None) -> str:
    """The line that says why a child died before it started ('ModuleNotFoundError: ...')."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", ln) or "No module named" in ln:
            return ln
    return lines[-1] if lines else ""


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


def _stack_evidence(ex: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """`native_stack` (frames, innermost first) or `native_stack_absent` (why), and companions."""
    out: dict[str, Any] = {}
    if ex.get("native_stack"):
        out["native_stack"] = ex["native_stack"]
    else:
        out["native_stack_absent"] = ex.get("native_stack_absent") or (
            f"the child exited with code {ex.get('code')} without a fatal signal: no crashing "
            "native frame to show"
            if kind == "exit"
            else "no native stack was collected for this run"
        )
    for k in ("native_stack_method", "native_stack_note", "native_threads"):
        if ex.get(k):
            out[k] = ex[k]
    return out


def _engine_function(frames: list[dict[str, Any]] | None) -> str | None:
    return next(
        (f.get("function") for f in frames or [] if f.get("engine") and f.get("function")), None
    )


def _sanitizer_findings(
    record: RunRecord, plan: tuple[PlannedCycle, ...], cycle: int, step: int, op: str
) -> list[Finding]:
    """One finding per distinct sanitizer / valgrind report (its verdict, its three stacks)."""
    san = record.exit.get("sanitizer") or {}
    out: list[Finding] = []
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for rep in san.get("reports") or []:
        key = (rep["verdict"], rep["kind"], tuple(rep.get("fault_stack") or rep.get("alloc_stack")))
        if key in seen:
            continue
        seen.add(key)
        c, s_, o = rep.get("cycle", cycle), rep.get("step", step), rep.get("op", op)
        if rep["verdict"] == "leak":
            last = plan[-1] if plan else None
            c, s_, o = (last.index, len(last.steps), "close") if last else (cycle, step, "close")
        frames = (rep.get("frames") or {}).get("stack") or (rep.get("frames") or {}).get(
            "alloc_stack"
        )
        fn = _engine_function(frames)
        evidence: dict[str, Any] = {
            "source": rep["tool"],
            "violation": {k: v for k, v in rep.items() if k not in ("frames",)},
            "cycles": [c] if c is not None else [],
        }
        if frames:
            evidence["native_stack"] = frames
        evidence["native_free_stack"] = (rep.get("frames") or {}).get("free_stack") or []
        evidence["native_alloc_stack"] = (rep.get("frames") or {}).get("alloc_stack") or []
        if record.exit.get("kind") == "signal":
            evidence["signal"] = record.exit.get("signal")
            evidence["signal_name"] = record.exit.get("signal_name")
            evidence["signal_class"] = "crash"
        out.append(
            Finding(
                rep["verdict"],
                c,
                s_,
                o,
                (f"{rep['message']} in cycle {c} at {o}" + (f", in {fn}" if fn else ""))[:400],
                evidence,
            )
        )
    return out


def _setup_error_finding(setup_error: dict[str, Any], ex: dict[str, Any]) -> Finding:
    """The engine could not be set up (the module, the factory, its capabilities): `error`."""
    return Finding(
        "error",
        None,
        None,
        "setup",
        f"engine setup failed: {str(setup_error.get('type', '')).rsplit('.', 1)[-1]}: "
        f"{_first_line(setup_error.get('message', ''))}"[:300],
        {"error": setup_error, "stderr_tail": _tail(ex.get("stderr_tail"))},
    )


def _exit_findings(
    record: RunRecord,
    plan: tuple[PlannedCycle, ...],
    setup_error: dict[str, Any] | None,
    started: bool,
) -> list[Finding]:
    ex = record.exit
    kind = ex.get("kind")
    tail = {k: ex.get(k) for k in ("native_message", "fatal_error", "faulthandler", "stderr_tail")}
    if not started and not record.steps:
        # nothing ran: no cycle or step to name (a signal or a hang here is the engine's
        # import or constructor, still an engine verdict; everything else is setup)
        if kind == "signal":
            msg = ex.get("native_message") or ex.get("fatal_error") or ""
            return [
                Finding(
                    "crash",
                    None,
                    None,
                    "setup",
                    f"{ex.get('signal_name')} while the engine was being built (before any step)"
                    + (f": {msg}" if msg else ""),
                    {"signal": ex.get("signal"), "signal_name": ex.get("signal_name"), **tail},
                )
            ]
        if kind == "timeout":
            return [
                Finding(
                    "timeout",
                    None,
                    None,
                    "setup",
                    f"no start after {ex.get('timeout')} s (the engine was being built)",
                    {"timeout": ex.get("timeout"), "stderr_tail": ex.get("stderr_tail")},
                )
            ]
        if setup_error is not None:
            return [_setup_error_finding(setup_error, ex)]
        if kind in ("exit", "exception", "clean", None):
            cause = _last_error_line(ex.get("stderr_tail")) or "no output on stderr"
            return [
                Finding(
                    "error",
                    None,
                    None,
                    "setup",
                    f"the child exited with code {ex.get('code')} before it started: {cause}"[:300],
                    {"code": ex.get("code"), "stderr_tail": _tail(ex.get("stderr_tail"))},
                )
            ]
        return []
    if setup_error is not None:  # built, but the adapter is unusable (malformed capabilities)
        return [_setup_error_finding(setup_error, ex)]
    cycle, step, op = _next_position(plan, record.steps)
    forged = int(ex.get("forged_events") or 0)
    forged_evidence = {"forged_events": forged, "forged_sample": ex.get("forged_sample")}
    sanitized = _sanitizer_findings(record, plan, cycle, step, op)
    if kind == "clean" and forged:
        # the child finished, but lines on its events fd were not its own (an engine writing
        # there): never clean, and the lines are kept as evidence
        return [
            Finding(
                "crash",
                cycle,
                step,
                op,
                f"{forged} event line(s) on the events fd were not the child's (no run token or "
                "out of sequence): the event stream was tampered with",
                {**forged_evidence, **tail},
            ),
            *sanitized,
        ]
    lsan_failed = (ex.get("sanitizer") or {}).get("leak_check_failed")
    if lsan_failed and kind == "signal" and ex.get("signal_name") == "SIGABRT" and op == "close":
        # the tool failed after the last step, not the engine: the run's memory errors were
        # checked, its leaks under LSan were not (an `error`, never a crash nor clean)
        return [
            *sanitized,
            Finding(
                "error",
                cycle,
                step,
                "close",
                f"LeakSanitizer failed, the engine's leaks were not checked: {lsan_failed}"[:300],
                {"leak_check_failed": lsan_failed, "stderr_tail": ex.get("stderr_tail")},
            ),
        ]
    # a sanitizer that aborts after its report (abort_on_error) explains the SIGABRT: the
    # report's precise verdict replaces the crash, the signal stays in its evidence
    explained = (
        (kind == "signal" and ex.get("signal_name") == "SIGABRT") or kind == "exit"
    ) and any(f.verdict != "leak" for f in sanitized)
    native = _native(ex)  # what the runtime said (glibc, C++, Rust): the precise verdict
    if kind == "signal" and not explained:
        msg = ex.get("native_message") or ex.get("fatal_error") or ""
        stack = _stack_evidence(ex, kind)
        fn = _engine_function(stack.get("native_stack"))
        return [
            Finding(
                native["verdict"] if native else "crash",
                cycle,
                step,
                op,
                f"{ex.get('signal_name')} in cycle {cycle} at {op}"
                + (f", in {fn}" if fn else "")
                + (f": {native['runtime']}: {msg}" if native else f": {msg}" if msg else ""),
                {
                    "signal": ex.get("signal"),
                    "signal_name": ex.get("signal_name"),
                    **_native_evidence(native),
                    **tail,
                    **stack,
                },
            ),
            *sanitized,
        ]
    if explained:
        # (ASan exits with code 1 after a SEGV report, aborts after the others)
        return sanitized
    if kind == "timeout":
        run = ex.get("running") or {}
        if run.get("phase") == "step":
            cycle, step, op = run["cycle"], run["step"], run["op"]
        stack = _stack_evidence(ex, kind)
        fn = _engine_function(stack.get("native_stack"))
        limit = "step limit" if ex.get("timeout_limit") == "step" else "run limit"
        where = (
            f"cycle {cycle} step {step} ({op})" if run.get("phase") == "step" else run.get("op", op)
        )
        running = f", running for {run['seconds']:.1f} s" if run.get("seconds") is not None else ""
        return [
            Finding(
                "timeout",
                cycle,
                step,
                op,
                f"no end after {ex.get('timeout')} s ({limit}): {where}{running}"
                + (f", in {fn}" if fn else ""),
                {
                    "timeout": ex.get("timeout"),
                    "limit": ex.get("timeout_limit", "run"),
                    "running": run,
                    "python_stacks": ex.get("python_stacks"),
                    **(
                        {"python_stacks_absent": ex["python_stacks_absent"]}
                        if ex.get("python_stacks_absent")
                        else {}
                    ),
                    **stack,
                    "stderr_tail": ex.get("stderr_tail"),
                },
            ),
            *sanitized,
        ]
    if kind == "exit":
        # a sanitizer or valgrind ends the child with an exit code, not a signal
        return [
            Finding(
                native["verdict"] if native else "crash",
                cycle,
                step,
                op,
                f"child exited with code {ex.get('code')} in cycle {cycle} at {op}"
                + (f": {native['runtime']}: {ex.get('native_message')}" if native else "")
                + (
                    f" ({forged} event line(s) not the child's, e.g. a forged end)"
                    if forged
                    else ""
                ),
                {
                    "code": ex.get("code"),
                    **forged_evidence,
                    **_native_evidence(native),
                    **tail,
                    **_stack_evidence(ex, kind),
                },
            ),
            *sanitized,
        ]
    return sanitized


def _native(ex: dict[str, Any]) -> dict[str, Any] | None:
    """The runtime message the child left (isolation.classify), re-read from its text for
    records made before the classifier existed."""
    native = ex.get("native")
    if isinstance(native, dict) and native.get("verdict") in VERDICTS:
        return native
    text = ex.get("native_message")
    if text:
        found = find_native_message(str(text))
        return found.to_dict() if found else None
    return None


def _native_evidence(native: dict[str, Any] | None) -> dict[str, Any]:
    """How the child died (signal_class 'crash') next to what its runtime said: the
    verdict comes from the runtime's message, the signal stays in the evidence."""
    if not native:
        return {"signal_class": "crash"}
    return {
        "signal_class": "crash",
        "runtime": native.get("runtime"),
        "verdict_basis": native.get("meaning"),
        **(native.get("details") or {}),
    }


def _step_findings(steps: list[StepEvent]) -> list[Finding]:
    out: list[Finding] = []
    seen_violations = 0
    # one Finding per (verdict, block label), listing every cycle it happened in, so a
    # double free in every cycle marks every cycle without one Finding per occurrence
    by_kind: dict[tuple[str, str], Finding] = {}
    worked: set[str] = set()  # ops that ran without an exception earlier in the run
    for ev in steps:
        if ev.error:
            verdict = _error_verdict(ev.error, first_time=ev.op not in worked)
            what = f"{ev.error.get('type', '').rsplit('.', 1)[-1]} in cycle {ev.cycle} at {ev.op}"
            if verdict == "error":
                what = f"adapter/library API mismatch (first {ev.op} of the run): {what}"
            out.append(
                Finding(
                    verdict,
                    ev.cycle,
                    ev.step,
                    ev.op,
                    f"{what}: {_first_line(ev.error.get('message', ''))}"[:300],
                    {"error": ev.error},
                )
            )
        elif not ev.skipped:
            worked.add(ev.op)
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
        elif ev.op in ("get", "insert") and (_row_problems(chk) or _accepted_refusal(chk)):
            problems = _row_problems(chk)
            if _accepted_refusal(chk):
                problems.insert(
                    0,
                    f"a batch with {chk['duplicates']} duplicate id(s) was accepted, but the "
                    "adapter declares duplicate_ids = 'refuse'",
                )
            what = "get" if ev.op == "get" else "insert with duplicate ids"
            out.append(
                Finding(
                    "wrong-result",
                    ev.cycle,
                    ev.step,
                    ev.op,
                    f"{what} in cycle {ev.cycle}: {'; '.join(problems)}"[:300],
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


def _row_problems(chk: dict[str, Any]) -> list[str]:
    """What a get check found: lost rows (live ids the engine does not return) and rows
    whose vector differs from the one inserted (after an upsert: the old one survived)."""
    out = []
    if chk.get("n_missing"):
        out.append(f"{chk['n_missing']} live row(s) lost, ids {chk.get('missing_ids', [])[:5]}")
    if chk.get("n_mismatched"):
        out.append(
            f"{chk['n_mismatched']} row(s) differ from what was inserted, "
            f"ids {chk.get('mismatched_ids', [])[:5]}"
        )
    return out


def _accepted_refusal(chk: dict[str, Any]) -> bool:
    return bool(chk.get("duplicates")) and chk.get("policy") == "refuse" and not chk["refused"]


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
    tool: str | None = None,
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


def _skip_findings(steps: list[StepEvent]) -> list[Finding]:
    """Steps the engine could not run (a missing capability): the run did not test them.

    Always listed, whatever the verdict (a leak and two skipped deletes show both); the
    summary reads '6 steps skipped: delete x6 (faiss has no delete ...) in cycles 1..3'.
    """
    skipped = [ev for ev in steps if ev.skipped]
    if not skipped:
        return []
    reasons: dict[str, int] = {}
    by_op: dict[tuple[str, str], int] = {}
    for ev in skipped:
        reasons[str(ev.skipped)] = reasons.get(str(ev.skipped), 0) + 1
        by_op[(ev.op, str(ev.skipped))] = by_op.get((ev.op, str(ev.skipped)), 0) + 1
    cycles = sorted({ev.cycle for ev in skipped})
    where = f"cycle {cycles[0]}" if len(cycles) == 1 else f"cycles {cycles[0]}..{cycles[-1]}"
    what = "; ".join(
        f"{op}{f' x{n}' if n > 1 else ''} ({reason})" for (op, reason), n in by_op.items()
    )
    first = skipped[0]
    n = len(skipped)
    return [
        Finding(
            "skipped",
            first.cycle,
            first.step,
            first.op,
            f"{n} step{'s' if n > 1 else ''} skipped: {what} in {where}"[:300],
            {
                "skipped_steps": [
                    {"cycle": ev.cycle, "step": ev.step, "op": ev.op, "reason": ev.skipped}
                    for ev in skipped[:200]
                ],
                "n_skipped": n,
                "reasons": reasons,
                "cycles": cycles,
            },
        )
    ]


def skip_findings(record: RunRecord) -> list[Finding]:
    """The record's `skipped` findings: the whole run, or the steps that could not run."""
    return [f for f in record.findings if f.verdict == "skipped"]


def was_skipped(record: RunRecord) -> bool:
    """Whether anything of the run was skipped (for `--fail-on-skip`): the whole run, or
    at least one step."""
    return (
        record.verdict == "skipped"
        or bool(skip_findings(record))
        or any(s.skipped for s in record.steps)
    )


def _ran_something(steps: list[StepEvent]) -> bool:
    """Whether any step of the plan ran (the final close alone does not count)."""
    return any(not ev.skipped and ev.op != "close" for ev in steps)


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
    started: bool | None = None,
) -> RunRecord:
    """Fill `record.findings`, `record.cycles` and `record.verdict`; returns the record.

    `started`: whether the child sent its `start` event (the engine was built). When the
    caller does not say, a run with steps, capabilities or a setup error is taken as
    started or as far as setup; anything else ended before it started."""
    if record.verdict == "skipped":
        # skipped as a whole before any step (a requirement the engine lacks): say why
        reason = str((record.exit or {}).get("reason") or "skipped")
        if not record.findings:
            record.findings = [Finding("skipped", None, None, None, reason)]
        record.cycles = [CycleSummary(pc.index, pc.dimension, "-") for pc in plan]
        return record
    if started is None:
        started = bool(record.steps or record.capabilities)
    findings = _exit_findings(record, plan, setup_error, started)
    findings += _cap(_step_findings(record.steps))
    findings += _ledger_findings(record.steps)
    planned = sum(1 for pc in plan if pc.label != CONFIRM_LABEL)
    tables = {pc.index: pc.table for pc in plan}
    findings += _growth_findings(
        record.steps,
        markers or [],
        analysis,
        (record.exit.get("sanitizer") or {}).get("tool"),
        planned,
        tables,
    )
    skips = _skip_findings(record.steps)
    if findings:
        verdict = worst([f.verdict for f in findings])
    elif skips and not _ran_something(record.steps):
        verdict = "skipped"  # nothing of the plan could run
    else:
        verdict = "clean"  # judged on the steps that ran; the skipped ones are listed
    record.findings = findings + skips
    record.verdict = verdict
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
    ran = {ev.cycle for ev in record.steps if not ev.skipped and ev.op != "close"}
    status: dict[int, list[str]] = {}
    for f in record.findings:
        if f.cycle is None and f.op == "setup":
            continue  # nothing ran: no cycle to mark
        cycles = f.evidence.get("cycles") or ([f.cycle] if f.cycle is not None else [plan[0].index])
        if f.verdict == "skipped":  # a cycle with skipped steps is judged on what ran in it
            cycles = [c for c in cycles if c not in ran]
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
