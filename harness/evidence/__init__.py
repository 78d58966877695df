"""Why a verdict: the one explanation of a finding and of a run, rendered by every output.

`explain(run)` returns a `RunEvidence`: each finding with its headline and its evidence items
(the allocator's message and its allocation/free/access stacks, the native stack with the
engine's frames marked or the reason it is absent, a sanitizer's report, hang stacks, leak
sizes), how the child ended, the run's headline (a JUnit `message`, a pytest crash line) and
the evidence in one line (the fault matrix). The console, Markdown, HTML, JUnit, the fault
matrix, the story table and the pytest plugin all render these values; no other module words
a verdict's evidence. Everything is read from the records' structured fields (violation
dicts, native frames, exit facts): nothing is parsed back out of a message.

The package, by job: `formats` (bytes, signal, place, headline), `frames` (engine frames in
allocator and native stacks), `ledger` (allocator violations step by step, ledger growth),
`lines` (one-line evidence, headlines, skip reasons), `items` (evidence as display items).
"""

from __future__ import annotations

from dataclasses import dataclass

from memcycle.records import CRASH_VERDICTS, Finding, RunRecord, new_violations

from .formats import crash_cause, finding_headline, fmt_bytes, place, signal_name
from .frames import (
    PythonFrame,
    engine_frame,
    engine_function,
    engine_native_frame,
    finding_sites,
    format_native_frames,
    names_engine_function,
)
from .items import (
    STDERR_TAIL_LINES,
    EvidenceItem,
    abnormal_exit,
    dedupe,
    evidence_items,
    exit_items,
)
from .ledger import (
    block_text,
    invalid_free_address,
    leak_line,
    overflow_text,
    violation_line,
)
from .lines import (
    TOOL_SOURCES,
    crash_line,
    evidence_line,
    growth_line,
    run_headline,
    skip_reason,
    tool_finding,
    tool_line,
    verdict_finding,
    verdict_finding_at,
)

__all__ = [
    "STDERR_TAIL_LINES",
    "TOOL_SOURCES",
    "EvidenceItem",
    "FindingEvidence",
    "PythonFrame",
    "RunEvidence",
    "abnormal_exit",
    "block_text",
    "crash_cause",
    "crash_line",
    "engine_frame",
    "engine_function",
    "engine_native_frame",
    "evidence_items",
    "evidence_line",
    "exit_items",
    "explain",
    "finding_headline",
    "finding_sites",
    "fmt_bytes",
    "format_native_frames",
    "growth_line",
    "invalid_free_address",
    "leak_line",
    "names_engine_function",
    "new_violations",
    "overflow_text",
    "place",
    "run_headline",
    "signal_name",
    "skip_reason",
    "tool_finding",
    "tool_line",
    "verdict_finding",
    "verdict_finding_at",
    "violation_line",
]


@dataclass(frozen=True)
class FindingEvidence:
    """One finding as every output shows it: its headline, the engine's sites in its stacks
    (`finding_sites`) and its evidence items, the sites first as a `where` item (text another
    finding of the run already shows is left out of the items)."""

    finding: Finding
    headline: str
    sites: tuple[str, ...]
    items: tuple[EvidenceItem, ...]


@dataclass(frozen=True)
class RunEvidence:
    """Why a run got its verdict: everything an output needs to say it."""

    run: RunRecord
    headline: str  # one line: verdict, expectation, where, what happened
    line: str  # the evidence in one line (the fault matrix's column)
    at: str  # 'cycle.step op' of the verdict's first finding, '-' when none
    findings: tuple[FindingEvidence, ...]
    exit: tuple[EvidenceItem, ...]  # how the child ended (empty for a normal exit)


def _finding_evidence(f: Finding, shown: list[tuple[str, set[str]]]) -> FindingEvidence:
    sites = finding_sites(f)
    items = dedupe(evidence_items(f.evidence), shown)
    if sites:
        items.insert(0, EvidenceItem("where", "; ".join(sites), False))
    return FindingEvidence(f, finding_headline(f), sites, tuple(items))


def explain(run: RunRecord) -> RunEvidence:
    """The run's evidence, with text repeated across findings and the exit shown once."""
    shown: list[tuple[str, set[str]]] = []
    findings = tuple(_finding_evidence(f, shown) for f in run.findings)
    exit_part: list[EvidenceItem] = []
    if abnormal_exit(run) or run.verdict in CRASH_VERDICTS:
        facts = {i.text for fe in findings for i in fe.items if not i.block}
        exit_part = [i for i in dedupe(exit_items(run), shown) if i.block or i.text not in facts]
    return RunEvidence(
        run=run,
        headline=run_headline(run),
        line=evidence_line(run),
        at=verdict_finding_at(run),
        findings=findings,
        exit=tuple(exit_part),
    )
