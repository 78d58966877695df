"""Judging one matrix run: was the fault caught and named as the catalogue says, was the clean
engine clean, and (for the C twin) does the verdict carry the native evidence it needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from memcycle.evidence import names_engine_function
from memcycle.records import RunRecord

from .plan import REQUIRED_STACKS, Case, catalogue_verdict, must_kill


@dataclass
class Outcome:
    case: Case
    record: RunRecord
    ok: bool
    problems: list[str] = field(default_factory=list)


def _signal_without_message(case: Case, rec: RunRecord) -> bool:
    """A raw-allocator run of refimpl killed by a signal with no runtime message: the precise
    verdict (double-free, ...) needs glibc's message, and whether glibc aborts with one or the
    process faults first inside free depends on the heap layout of that run (seen: the
    reinit-without-destroy double free aborted with 'double free or corruption' in 4 runs, and
    died of SIGSEGV without a word in a fifth). `crash` is then the most a run can say."""
    return (
        case.subject == "refimpl"
        and case.allocator == "raw"
        and rec.verdict == "crash"
        and rec.exit.get("kind") == "signal"
        and not rec.exit.get("native_message")
    )


# glibc checks an mmapped chunk (a large block) on free only for its alignment and size: a
# second free of one reads a header that may no longer hold and says "munmap_chunk(): invalid
# pointer", the words of a free of a pointer never allocated (seen once for the raw
# reinit-without-destroy double free, 2026-12-01; `double free or corruption` in other runs)
_MMAPPED_DOUBLE_FREE = "munmap_chunk(): invalid pointer"


def _mmapped_double_free(case: Case, rec: RunRecord) -> bool:
    """A raw-allocator double free that glibc could only call an invalid pointer."""
    return (
        case.subject == "refimpl"
        and case.allocator == "raw"
        and case.expected == "double-free"
        and rec.verdict == "invalid-free"
        and _MMAPPED_DOUBLE_FREE in str(rec.exit.get("native_message") or "")
    )


def judge_case(case: Case, rec: RunRecord) -> Outcome:
    """Whether one run did what the matrix requires (see module doc)."""
    problems: list[str] = []
    if case.fault is None:
        if rec.verdict != "clean" or rec.findings:
            first = rec.findings[0].summary if rec.findings else rec.verdict
            problems.append(f"clean engine got {rec.verdict}: {first}")
        return Outcome(case, rec, not problems, problems)
    expected_by_catalogue = catalogue_verdict(case.subject, case.fault, case.allocator, case.mode)
    if rec.verdict == "clean":
        problems.append(f"missed: expected {case.expected}, nothing found")
    elif (
        rec.verdict != case.expected
        and not _signal_without_message(case, rec)
        and not _mmapped_double_free(case, rec)
    ):
        problems.append(f"misclassified: {rec.verdict}, expected {case.expected}")
    if case.expected != expected_by_catalogue:
        problems.append(
            f"scenario expects {case.expected} but the catalogue says {expected_by_catalogue}"
        )
    if (
        must_kill(case.subject, case.fault, case.allocator, case.mode)
        and rec.exit.get("kind") != "signal"
    ):
        problems.append(f"abort-class fault did not kill the child (exit {rec.exit.get('kind')})")
    if case.subject == "refimpl-c" and rec.verdict == case.expected:
        problems += native_evidence_problems(case, rec)
    return Outcome(case, rec, not problems, problems)


def native_evidence_problems(case: Case, rec: RunRecord) -> list[str]:
    """What the C twin's verdict lacks: under a tool, the tool's own report with every stack
    of `REQUIRED_STACKS` naming a C function and line of the twin; plain, a crash-class
    verdict's native stack naming the C function (the gdb replay). A plain leak is
    memray's (no native stack to ask for)."""
    tool_sources = {"asan": ("asan", "lsan"), "valgrind": ("valgrind",)}.get(case.mode)
    found = [x for x in rec.findings if x.verdict == rec.verdict]
    if tool_sources is not None:
        found = [x for x in found if x.evidence.get("source") in tool_sources]
        if not found:
            return [f"no {case.mode} report gave the verdict {rec.verdict}"]
        f = found[0]
        return [
            f"the {case.mode} report's {key} names no C function and line of the twin"
            for key in REQUIRED_STACKS.get(rec.verdict, ())
            if not names_engine_function(f.evidence.get(key), need_line=True)
        ]
    if rec.exit.get("kind") == "signal" and found:
        ev = found[0].evidence
        if not names_engine_function(ev.get("native_stack"), need_line=False):
            why = ev.get("native_stack_absent") or rec.exit.get("native_stack_absent")
            return [
                "the crash's native stack names no C function of the twin"
                + (f" ({str(why)[:200]})" if why else "")
            ]
    return []
