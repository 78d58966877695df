"""`memcycle faults`: prove the harness works — every catalogue fault caught and named,
nothing reported on the clean engine.

Each fault scenario under `scenarios/faults/` switches its fault on with the
scenario key `faults = ["NAME"]` and gives its expected verdict per allocator
in `[expect.verdict]`. A fault runs with an allocator
only when its scenario names that allocator there: raw runs only where the
outcome is fixed. The matrix then checks, per run:

- the verdict is the scenario's expectation, and the expectation is the
  catalogue's (`refimpl.faults.CATALOGUE`: verdict_checked / verdict_raw);
- an abort-class fault with the raw allocator ended by a signal (a real crash);
- the clean engine (no fault) has no finding at all on every bundled scenario
  (slow/soak ones with `--all`) and on every fault scenario.

`--engine refimpl-c` runs the same matrix on refimpl's C twin
(`memcycle.refimpl.native`): its catalogue (`refimpl.native.faults.CATALOGUE`, verdict
of a plain run), its scenarios (`scenarios/faults/native/`, expectation key `native`),
malloc as the allocator, and the clean twin over every bundled scenario it can run.

`--engine refimpl-c --sanitizer asan` and `--valgrind` run that matrix with the child under
the tool (the twin's asan build, or its plain build under memcheck; memray off, since the
tool judges leaks and memray's hooks cut ASan's free stacks short). Every fault whose
catalogue entry has a verdict for the tool runs (migration-overflow too: its heap overflow
has no fixed plain outcome, a tool names it), judged by that verdict (`verdict_asan`,
`verdict_valgrind`), and the verdict must come from the tool's own report, whose access,
free and allocation stacks (as the verdict has them) must name a C function and line of
the twin. Both tools cost a fixed price per child, whatever the scenario: LeakSanitizer's
scan of the whole interpreter heap (~30-60 s) and memcheck's start of the interpreter and
NumPy (~60 s and more), so the clean twin runs on a few scenarios chosen to reach every
code path rather than on the whole bundle (`TOOL_CLEAN_SCENARIOS`):
- ASan: segment-threshold (flat buffer, migration into the main tier, segments, delete),
  dimension-change (clear back to uninitialized, three dimensions), delete-reinsert
  (delete, get, filtered search, re-insert of deleted ids) and singleton-destroy-recreate
  (the global database destroyed and rebuilt, through `refimpl-c-global`);
- valgrind: clear-empty-and-twice (clear of an empty and of a cleared database, flat buffer
  and migration), delete-reinsert (delete, get, filtered search, re-insert), dimension-change
  (clear back to uninitialized, three dimensions), and the uninitialized-slot-assign and
  singleton-double-destroy scenarios run clean (segments; the singleton's clear/cleanup).
  delete-reinsert was once left out: its clean run showed a tracemalloc growth of functions
  and cells, which was the child importing its growth rules at the first confirmation repeat
  (fixed: `harness.child` imports them up front).
Under valgrind every fault runs: stale-segment-view (once kept out by a hang at exit,
glibc's freeres under valgrind, see `harness.sanitizers`) and migration-overflow (valgrind
dies after memcheck's report of the overflow, which is taken as the verdict).
`--only NAME` still runs the clean twin on that fault's scenarios.

`--story` replays the reference note's "Test Results" tables instead (see
`STORY`). Reports go through `harness.reporters.write_all`; the matrix and the
story tables are appended to summary.md.

The pieces, each its own module: `plan` (what runs and what it must give), `judge` (was it
caught), `text` (the matrix as text and Markdown; its evidence column is
`memcycle.evidence.evidence_line`, the explanation every output shares),
`execute` (running the cases), `story` (the note's tables). The command itself (flags,
progress, output) is `memcycle.commands.faults`; nothing here imports the CLI.
"""

from __future__ import annotations

from memcycle.evidence import TOOL_SOURCES, evidence_line, verdict_finding_at

from .execute import run_cases, write_reports
from .judge import Outcome, judge_case, native_evidence_problems
from .plan import (
    ALLOCATORS,
    BUNDLED,
    FAULT_DIR,
    MODES,
    NATIVE_FAULT_DIR,
    REFIMPL_ENGINES,
    REQUIRED_STACKS,
    STORY_TAG,
    SUBJECTS,
    TOOL_CLEAN_SCENARIOS,
    TWIN_CAPABILITIES,
    TWIN_ENGINES,
    Case,
    MatrixError,
    catalogue_names,
    catalogue_verdict,
    explicit_allocators,
    fault_index,
    load_fault_scenarios,
    must_kill,
    plan,
)
from .story import (
    CodePath,
    after_attempted_fixes,
    after_proper_fixes,
    original,
    run_story,
    story_scenario,
)
from .text import axis, format_matrix, matrix_markdown

__all__ = [
    "ALLOCATORS",
    "BUNDLED",
    "FAULT_DIR",
    "MODES",
    "NATIVE_FAULT_DIR",
    "REFIMPL_ENGINES",
    "REQUIRED_STACKS",
    "STORY_TAG",
    "SUBJECTS",
    "TOOL_CLEAN_SCENARIOS",
    "TOOL_SOURCES",
    "TWIN_CAPABILITIES",
    "TWIN_ENGINES",
    "Case",
    "CodePath",
    "MatrixError",
    "Outcome",
    "after_attempted_fixes",
    "after_proper_fixes",
    "axis",
    "catalogue_names",
    "catalogue_verdict",
    "evidence_line",
    "explicit_allocators",
    "fault_index",
    "format_matrix",
    "judge_case",
    "load_fault_scenarios",
    "matrix_markdown",
    "must_kill",
    "native_evidence_problems",
    "original",
    "plan",
    "run_cases",
    "run_story",
    "story_scenario",
    "verdict_finding_at",
    "write_reports",
]
