"""Findings of how the child ended: a signal, a sanitizer or valgrind report, a timeout, a setup
failure, a forged event stream.

Apart because these read the child's exit record (its signal, exit code, stderr tail, native
stack, the runtime's last message, the sanitizer reports), not its step events: where the child
was when it died is inferred from the plan and the last step it reported.
"""

from __future__ import annotations

import re
from typing import Any

from .checks_steps import _first_line
from .evidence import engine_function
from .native_messages import recorded_native
from .protocol import TEARDOWN_OP
from .records import Finding, RunRecord, StepEvent
from .scenario import PlannedCycle


def _tail(text: str | None, lines: int = 25) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def _last_error_line(stderr: str | None) -> str:
    """The line that says why a child died before it started ('ModuleNotFoundError: ...')."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", ln) or "No module named" in ln:
            return ln
    return lines[-1] if lines else ""


def _next_position(plan: tuple[PlannedCycle, ...], steps: list[StepEvent]) -> tuple[int, int, str]:
    """Where the child was when it died: the step after the last one reported."""
    if not plan:
        return 1, 0, "?"
    if not steps:
        return plan[0].index, 0, plan[0].steps[0].op
    last = steps[-1]
    if last.op == TEARDOWN_OP:
        return last.cycle, last.step, TEARDOWN_OP
    pc = plan[last.cycle - 1]
    if last.step + 1 < len(pc.steps):
        return pc.index, last.step + 1, pc.steps[last.step + 1].op
    if last.cycle < len(plan):
        nxt = plan[last.cycle]
        return nxt.index, 0, nxt.steps[0].op
    return last.cycle, last.step + 1, TEARDOWN_OP


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
            c, s_, o = (
                (last.index, len(last.steps), TEARDOWN_OP) if last else (cycle, step, TEARDOWN_OP)
            )
        frames = (rep.get("frames") or {}).get("stack") or (rep.get("frames") or {}).get(
            "alloc_stack"
        )
        fn = engine_function(frames)
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
    if (
        lsan_failed
        and kind == "signal"
        and ex.get("signal_name") == "SIGABRT"
        and op == TEARDOWN_OP
    ):
        # the tool failed after the last step, not the engine: the run's memory errors were
        # checked, its leaks under LSan were not (an `error`, never a crash nor clean)
        return [
            *sanitized,
            Finding(
                "error",
                cycle,
                step,
                TEARDOWN_OP,
                f"LeakSanitizer failed, the engine's leaks were not checked: {lsan_failed}"[:300],
                {"leak_check_failed": lsan_failed, "stderr_tail": ex.get("stderr_tail")},
            ),
        ]
    # a sanitizer that aborts after its report (abort_on_error) explains the SIGABRT: the
    # report's precise verdict replaces the crash, the signal stays in its evidence
    explained = (
        (kind == "signal" and ex.get("signal_name") == "SIGABRT") or kind == "exit"
    ) and any(f.verdict != "leak" for f in sanitized)
    native = recorded_native(ex)  # what the runtime said (glibc, C++, Rust): the precise verdict
    if kind == "signal" and not explained:
        msg = ex.get("native_message") or ex.get("fatal_error") or ""
        stack = _stack_evidence(ex, kind)
        fn = engine_function(stack.get("native_stack"))
        said = f": {native['runtime']}: {msg}" if native else f": {msg}" if msg else ""
        how = f"{ex.get('signal_name')} in cycle {cycle} at {op}" + (f", in {fn}" if fn else "")
        facts = {"signal": ex.get("signal"), "signal_name": ex.get("signal_name")}
        return [_died(native, (cycle, step, op), how + said, facts, tail, stack), *sanitized]
    if explained:
        # (ASan exits with code 1 after a SEGV report, aborts after the others)
        return sanitized
    if kind == "timeout":
        run = ex.get("running") or {}
        if run.get("phase") == "step":
            cycle, step, op = run["cycle"], run["step"], run["op"]
        stack = _stack_evidence(ex, kind)
        fn = engine_function(stack.get("native_stack"))
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
        said = f": {native['runtime']}: {ex.get('native_message')}" if native else ""
        how = f"child exited with code {ex.get('code')} in cycle {cycle} at {op}" + said
        if forged:
            how += f" ({forged} event line(s) not the child's, e.g. a forged end)"
        facts = {"code": ex.get("code"), **forged_evidence}
        stack = _stack_evidence(ex, kind)
        return [_died(native, (cycle, step, op), how, facts, tail, stack), *sanitized]
    return sanitized


def _died(
    native: dict[str, Any] | None,
    where: tuple[int, int, str],
    summary: str,
    facts: dict[str, Any],
    tail: dict[str, Any],
    stack: dict[str, Any],
) -> Finding:
    """The child died (a signal, or an exit code from a sanitizer or valgrind): the verdict
    is what its runtime said, else `crash`; how it died stays in the evidence (its facts, the
    runtime's reading, the child's last words, the native stack or why there is none)."""
    verdict = native["verdict"] if native else "crash"
    evidence = {**facts, **_native_evidence(native), **tail, **stack}
    return Finding(verdict, *where, summary, evidence)


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
