"""`memcycle faults --story`: the reference note's "Test Results" tables replayed, each cell a
measured run of one of the note's code paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memcycle.batch import run_many
from memcycle.records import Report
from memcycle.runner import RunSpec
from memcycle.scenario import Scenario

from .plan import FAULT_DIR, STORY_TAG, MatrixError, load_fault_scenarios


@dataclass(frozen=True)
class CodePath:
    """One version of the engine the note talks about: an engine adapter + faults."""

    name: str
    engine: str
    faults: tuple[str, ...]
    why: str = ""


def original() -> CodePath:
    """The note's original engine.

    Its four "Root Causes Identified" are the faults sparse-map-recreate (1),
    visited-not-reset (2), reinit-without-destroy (3: "reinitialize() creates NEW
    HNSWIndex and SegmentedHNSW instances ... double-free on destructor") and
    flat-buffer-leak (4: "Not freed in clear() ... memory leak"). Its symptom,
    "Attempt to free invalid pointer 0xa", is a free() of a pointer that was never
    allocated: uninitialized-slot-assign, the only catalogue fault that frees an
    uninitialised pointer (0xa). It clears in place ("Instead of db[].clear() which
    corrupts state"), so it runs on the `refimpl` adapter, whose clear is DB.clear().
    """
    faults = (
        "sparse-map-recreate",
        "visited-not-reset",
        "reinit-without-destroy",
        "flat-buffer-leak",
        "uninitialized-slot-assign",
    )
    return CodePath("original", "refimpl", faults, original.__doc__ or "")


def after_attempted_fixes() -> CodePath:
    """The note's first table, "After Fixes" (its "Attempted Fixes").

    Fixed: SparseMetadataMap uses clear() (sparse-map-recreate off), visited_size is
    reset (visited-not-reset off), "Added clear() method to SegmentedHNSW" (graphs
    cleared in place: reinit-without-destroy off). Still there: "Keeping initialized =
    True after clear()" (keep-initialized), "Not freeing flat_buffer creates memory
    leaks" (flat-buffer-leak), and the invalid-pointer free, which "shifted from 0xa
    to 0xd to 0x1" but did not go away (uninitialized-slot-assign). Still
    `db[].clear()`: the `refimpl` adapter.
    """
    faults = ("keep-initialized", "flat-buffer-leak", "uninitialized-slot-assign")
    return CodePath("after attempted fixes", "refimpl", faults, after_attempted_fixes.__doc__ or "")


def after_proper_fixes() -> CodePath:
    """The note's second table, "After Fixes" (its "Correct Fixes Applied").

    "Fixed Global Singleton Destruction Order: clear_database(): cleanup_global_db()":
    the `refimpl-global` adapter, whose clear is clear_database() (destroy; the next
    get_global_db() builds a fresh instance). "In initialize(): Check and free before
    allocating" is the catalogue's flat-buffer-double-free (its quote). The remaining
    segfault is blamed on "HNSWIndex/SegmentedHNSW have stale pointers after clear ...
    Cached pointers to freed memory": stale-segment-view. "Eliminated double-free
    completely": sparse-map-recreate, reinit-without-destroy and
    uninitialized-slot-assign are off. Both remaining faults live in DB.clear() and in
    a SegmentedHNSW that outlives a clear, which the destroy-and-recreate path may
    never reach: the replay measures whether it does.
    """
    faults = ("flat-buffer-double-free", "stale-segment-view")
    return CodePath(
        "after proper fixes", "refimpl-global", faults, after_proper_fixes.__doc__ or ""
    )


def _note_tables() -> tuple[tuple[str, CodePath, CodePath, tuple[Any, Any]], ...]:
    from memcycle.reporters.story import NoteColumn

    return (
        (
            "Test Results (the note's first table: attempted fixes)",
            original(),
            after_attempted_fixes(),
            (NoteColumn(5, "❌ (0xa)"), NoteColumn(2, "❌ (0x1)")),
        ),
        (
            "Results (the note's second table: proper fixes)",
            original(),
            after_proper_fixes(),
            (NoteColumn(5, "❌ (0xa)"), NoteColumn(4, "⚡ (segfault)")),
        ),
    )


def story_scenario(fault_dir: Path = FAULT_DIR) -> Scenario:
    """The 5-cycle clear / bulk-insert table tagged `story` in the fault directory."""
    for sc in load_fault_scenarios(fault_dir):
        if STORY_TAG in sc.tags:
            return sc
    raise MatrixError(f"no scenario tagged '{STORY_TAG}' under {fault_dir}")


def run_story(
    allocators: Sequence[str],
    out: Path,
    *,
    jobs: int = 1,
    memray: bool = True,
    timeout: float | None = None,
    fault_dir: Path = FAULT_DIR,
    progress: Any = None,
    command: list[str] | None = None,
) -> tuple[Report, str]:
    """Run each code path under each allocator; return the report and the tables."""
    from memcycle.reporters.story import story_table

    sc = story_scenario(fault_dir)
    tables = _note_tables()
    paths: list[CodePath] = []
    for _t, o, f, _n in tables:
        for p in (o, f):
            if p not in paths:
                paths.append(p)
    todo = [
        RunSpec(sc, p.engine, a, p.faults, memray=memray, timeout=timeout)
        for a in allocators
        for p in paths
    ]
    report = run_many(todo, out, jobs=jobs, progress=progress, command=command)
    runs = {(r.allocator, r.engine, tuple(r.faults)): r for r in report.runs}
    # run_one lists the scenario's own faults first; the story scenario has none
    parts = [
        "## The reference note's story, replayed",
        "",
        f"Scenario `{sc.name}` ({sc.description}); every cell is a measured run.",
        "",
    ]
    for a in allocators:
        for title, o, f, note in tables:
            parts.append(
                story_table(
                    runs[(a, o.engine, o.faults)],
                    runs[(a, f.engine, f.faults)],
                    title=f"{title}, {a} allocator",
                    note=note,
                )
            )
    return report, "\n".join(parts)
