"""Findings of the steps that ran: exceptions, allocator violations and the oracle's checks.

Apart because each finding here belongs to one step event (its exception, the allocator
violations new in that step, the count, recall, stale/unknown/duplicate ids and stored rows the
oracle checked), whereas a dead child, leaks and skips are judged across the whole run.

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
from typing import Any

from .records import VERDICTS, Finding, StepEvent, new_violations

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


def _first_line(s: str) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else ""


def _step_findings(steps: list[StepEvent]) -> list[Finding]:
    out: list[Finding] = []
    # one Finding per (verdict, block label), listing every cycle it happened in, so a
    # double free in every cycle marks every cycle without one Finding per occurrence
    by_kind: dict[tuple[str, str], Finding] = {}
    worked: set[str] = set()  # ops that ran without an exception earlier in the run
    for ev, violations in zip(steps, new_violations(steps), strict=True):
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
        for v in violations:
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
