"""The reference note's "Test Results" table, rendered from measured runs.

The note compares two code paths cycle by cycle (Cycle | Original | After
Fixes | Status). `story_table` builds the same table from two real
`RunRecord`s of the same cycle table, so each cell is a measurement:
✅ the cycle ran with no finding, ❌ (verdict: block label or pointer) a
finding shown in that cycle, ⚡ (signal: native message) the child died in it,
- not reached. A pure function of run
records, like every reporter; `memcycle faults --story` runs the code paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memcycle.evidence import crash_cause, invalid_free_address, new_violations
from memcycle.records import CRASH_VERDICTS, RunRecord, worst

from .common import CRASH, FAIL, NOT_REACHED, OK


@dataclass(frozen=True)
class NoteColumn:
    """What the note reported for one code path: the cycle it failed in and its cell."""

    first_failure: int | None  # None: the note shows no failure in the replayed cycles
    cell: str  # e.g. "❌ (0xa)"


@dataclass(frozen=True)
class CycleCell:
    """One measured cell: status is 'ok', '-', or the worst verdict first shown there."""

    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "-")

    def text(self) -> str:
        if self.status == "ok":
            return OK
        if self.status == "-":
            return NOT_REACHED
        mark = CRASH if self.status in CRASH_VERDICTS else FAIL
        inner = self.status if not self.detail else f"{self.status}: {self.detail}"
        if self.status == "crash" and self.detail:
            inner = self.detail
        return f"{mark} ({inner})"


def _short(text: str, limit: int = 48) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _crash_detail(run: RunRecord) -> str:
    cause = crash_cause(run) or (["timeout"] if run.exit.get("kind") == "timeout" else [])
    return _short(": ".join(cause) or "crash")


def cycle_cells(run: RunRecord) -> list[CycleCell]:
    """Per planned cycle, what was measured in it.

    Besides the run's findings (`run.cycles`), every allocator violation and
    step error recorded in a cycle counts for that cycle: checks report a
    repeated violation once per run, but the table must show each cycle that
    freed a block twice, as the note's table would have.
    """
    per_cycle: dict[int, list[tuple[str, str]]] = {}
    for ev, violations in zip(run.steps, new_violations(run.steps), strict=True):
        for v in violations:
            # the note names an invalid free by its pointer ('0xa'), any other fault by its block
            invalid = v.get("verdict") == "invalid-free"
            label = (invalid_free_address(v) if invalid else "") or str(v.get("label") or "")
            per_cycle.setdefault(ev.cycle, []).append((str(v.get("verdict")), label))
        if ev.error:  # the allocator's record of a fault (above) names its block
            verdict = ev.error.get("verdict") or "lifecycle-error"
            per_cycle.setdefault(ev.cycle, []).append((str(verdict), ""))
    cells: list[CycleCell] = []
    for c in run.cycles:
        found = [(c.status, "")] if c.status not in ("ok", "-") else []
        found += per_cycle.get(c.cycle, [])
        if not found:
            cells.append(CycleCell(c.status))
            continue
        status = worst([v for v, _ in found])
        if status == "crash":
            cells.append(CycleCell("crash", _crash_detail(run)))
            continue
        label = next((lab for v, lab in found if v == status and lab), "")
        cells.append(CycleCell(status, _short(label, 32)))
    return cells


def first_failure(cells: Sequence[CycleCell]) -> int | None:
    """1-based cycle of the first failed cell."""
    return next((i + 1 for i, c in enumerate(cells) if c.failed), None)


def _status(i: int, o: CycleCell, f: CycleCell, fo: int | None, ff: int | None) -> str:
    if not o.failed and not f.failed and "-" not in (o.status, f.status):
        return "Works"
    if o.status == "-" and f.status == "-":
        return NOT_REACHED
    if i == fo and i == ff:
        return "Both fail first here"
    if i == ff:
        return "After fixes fail first here" + (
            " (earlier than original)" if fo is None or fo > i else ""
        )
    if i == fo:
        return "Original fails first here" + (
            " (after fixes got past it)" if not f.failed and f.status != "-" else ""
        )
    if o.failed and f.failed:
        return "Both still failing"
    if f.status == "-" and not o.failed:
        return "After fixes not reached"
    if o.status == "-" and not f.failed:
        return "Original not reached"
    return "Original failing" if o.failed else "After fixes failing"


def _describe(name: str, first: int | None, cells: Sequence[CycleCell]) -> str:
    if first is None:
        return f"{name}: no failure in {len(cells)} cycles"
    return f"{name}: first failure in cycle {first}, {cells[first - 1].text()}"


def story_table(
    original: RunRecord,
    fixed: RunRecord,
    *,
    title: str = "",
    note: tuple[NoteColumn, NoteColumn] | None = None,
) -> str:
    """Markdown: the note's table from two runs, then measured-vs-note lines."""
    oc, fc = cycle_cells(original), cycle_cells(fixed)
    n = max(len(oc), len(fc))
    oc += [CycleCell("-")] * (n - len(oc))
    fc += [CycleCell("-")] * (n - len(fc))
    fo, ff = first_failure(oc), first_failure(fc)
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| Cycle | original | after fixes | Status |", "|---|---|---|---|"]
    for i in range(1, n + 1):
        o, f = oc[i - 1], fc[i - 1]
        lines.append(f"| {i} | {o.text()} | {f.text()} | {_status(i, o, f, fo, ff)} |")
    lines.append("")
    lines.append(
        f"Measured ({original.allocator} allocator): {_describe('original', fo, oc)}; "
        f"{_describe('after fixes', ff, fc)}."
    )
    if note is not None:
        no, nf = note

        def said(name: str, col: NoteColumn) -> str:
            if col.first_failure is None:
                return f"{name} no failure"
            return f"{name} cycle {col.first_failure} {col.cell}"

        differs = (fo, ff) != (no.first_failure, nf.first_failure)
        lines.append(
            f"The note: {said('original', no)}; {said('after fixes', nf)}."
            + (
                " The measured cycles differ from the note's: the table shows what was measured."
                if differs
                else " The measured cycles match the note's."
            )
        )
    lines.append(
        f"Runs: original = {original.engine} with faults {'+'.join(original.faults) or '-'}; "
        f"after fixes = {fixed.engine} with faults {'+'.join(fixed.faults) or '-'}."
    )
    return "\n".join(lines) + "\n"
