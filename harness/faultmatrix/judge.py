"""Judging one matrix run: was the fault caught and named as the catalogue says, was the clean
engine clean, and (for the C twin) does the verdict carry the native evidence it needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from memcycle.evidence import names_engine_function
from memcycle.native_messages import recorded_native
from memcycle.records import RunRecord

from .plan import REQUIRED_STACKS, Case, catalogue_verdict, must_kill


@dataclass
class Outcome:
    case: Case
    record: RunRecord
    ok: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a PASS reads other than expected

    def remarks(self) -> str:
        """The problems of a FAIL, or the notes of a PASS, for the evidence column."""
        return "; ".join(self.notes if self.ok else self.problems)


# What glibc can say of heap damage: it checks only the chunk headers next to the pointer it is
# given, and what it finds there depends on the heap's layout in that run. Seen for the raw
# reinit-without-destroy double free, one layout each (2026-12-01): "double free or corruption
# (!prev)", "munmap_chunk(): invalid pointer", "free(): invalid size", and a SIGSEGV inside free
# before any message; for the raw migration-overflow, "free(): invalid next size (normal)" at the
# clear, or a SIGSEGV at the insert that wrote past the block. glibc names the symptom it tripped
# over, not the cause.
_HEAP_DAMAGE = frozenset({"double-free", "invalid-free", "buffer-overflow"})


def _glibc_symptom_of_heap_damage(case: Case, rec: RunRecord) -> bool:
    """A raw-allocator heap fault of refimpl (a double or invalid free, an overflow) that killed
    the child, read by glibc as whichever heap check it tripped over, or a bare signal when the
    process faulted first. The precise name is the checked allocator's job (its matrix requires
    it); here the run must die of a signal, with glibc's own heap message or none at all."""
    if not (
        case.subject == "refimpl"
        and case.allocator == "raw"
        and (case.expected in _HEAP_DAMAGE or case.expected == "crash")  # crash: dies, any way
        and rec.exit.get("kind") == "signal"
    ):
        return False
    said = recorded_native(rec.exit)
    if said is None:
        return rec.verdict == "crash"
    return said.get("runtime") == "glibc" and rec.verdict in _HEAP_DAMAGE


def judge_case(case: Case, rec: RunRecord) -> Outcome:
    """Whether one run did what the matrix requires (see module doc)."""
    problems: list[str] = []
    notes: list[str] = []
    if case.fault is None:
        if rec.verdict != "clean" or rec.findings:
            first = rec.findings[0].summary if rec.findings else rec.verdict
            problems.append(f"clean engine got {rec.verdict}: {first}")
        return Outcome(case, rec, not problems, problems)
    expected_by_catalogue = catalogue_verdict(case.subject, case.fault, case.allocator, case.mode)
    if rec.verdict == "clean":
        problems.append(f"missed: expected {case.expected}, nothing found")
    elif rec.verdict != case.expected:
        if _glibc_symptom_of_heap_damage(case, rec):
            notes.append(
                f"{rec.verdict}: glibc's reading of this {case.expected} (the symptom it met); "
                "the checked allocator names the cause"
            )
        else:
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
    return Outcome(case, rec, not problems, problems, notes)


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
