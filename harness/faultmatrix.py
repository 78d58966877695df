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
  and migration), dimension-change (clear back to uninitialized, three dimensions), and the
  uninitialized-slot-assign and singleton-double-destroy scenarios run clean (segments; the
  singleton's clear/cleanup). Not delete-reinsert: under memcheck its clean run shows a
  tracemalloc growth of Python objects per cycle (functions, cells, re.Pattern; seen once,
  2026-12-01, not yet explained), which ASan's run of it does not.
Under valgrind every fault runs: stale-segment-view (once kept out by a hang at exit,
glibc's freeres under valgrind, see `harness.sanitizers`) and migration-overflow (valgrind
dies after memcheck's report of the overflow, which is taken as the verdict).
`--only NAME` still runs the clean twin on that fault's scenarios.

`--story` replays the reference note's "Test Results" tables instead (see
`STORY`). Reports go through `harness.reporters.write_all`; the matrix and the
story tables are appended to summary.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .bundled import scenarios_dir
from .records import Report, RunRecord, StepEvent
from .runner import DEFAULT_TIMEOUT, RunSpec, run_many
from .scenario import Scenario, ScenarioError, find_scenarios, load_scenario

BUNDLED = scenarios_dir()
FAULT_DIR = BUNDLED / "faults"
NATIVE_FAULT_DIR = FAULT_DIR / "native"
STORY_TAG = "story"
ALLOCATORS = ("checked", "raw")
REFIMPL_ENGINES = ("refimpl", "refimpl-global")
TWIN_ENGINES = ("refimpl-c", "refimpl-c-global")
SUBJECTS = ("refimpl", "refimpl-c")
# what the C twin's child runs under: nothing, AddressSanitizer (its asan build), memcheck
MODES = ("plain", "asan", "valgrind")
# the clean twin's scenarios under a tool (None: every one the plain matrix runs); see the
# module doc for the choice
TOOL_CLEAN_SCENARIOS: dict[str, frozenset[str] | None] = {
    "plain": None,
    "asan": frozenset(
        {"segment-threshold", "dimension-change", "delete-reinsert", "singleton-destroy-recreate"}
    ),
    "valgrind": frozenset(
        {
            "clear-empty-and-twice",
            "dimension-change",
            "native-uninitialized-slot-assign",
            "native-singleton-double-destroy",
        }
    ),
}
# the stacks a tool's report must carry for each verdict, each with an engine frame that
# names a C function and a line: the access (or second free), the free, the allocation
REQUIRED_STACKS: dict[str, tuple[str, ...]] = {
    "use-after-free": ("native_stack", "native_free_stack", "native_alloc_stack"),
    "double-free": ("native_stack", "native_free_stack", "native_alloc_stack"),
    "invalid-free": ("native_stack",),
    "buffer-overflow": ("native_stack", "native_alloc_stack"),
    "leak": ("native_alloc_stack",),
    "crash": ("native_stack",),
}
# capabilities of the C twin a scenario's `requires` may name (it cannot reload its library)
TWIN_CAPABILITIES = frozenset({"delete", "metadata_filter", "dimension_change"})
# a verdict that only a dead child can give: such a fault must end with a signal
_SIGNAL_VERDICTS = frozenset(
    {"double-free", "invalid-free", "use-after-free", "buffer-overflow", "crash"}
)


class MatrixError(Exception):
    """Bad input (unknown fault, malformed fault scenario): one line, exit status 2."""


# -- what to run ----------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One run of the matrix: a fault under one of its scenarios, or the clean engine."""

    scenario: Scenario
    allocator: str
    fault: str | None  # None: the clean engine
    expected: str
    engine: str | None = None  # None: the scenario's own default engine
    subject: str = "refimpl"  # whose catalogue judges it: refimpl or its C twin
    mode: str = "plain"  # plain | asan | valgrind: the tool the child runs under

    def scenario_to_run(self) -> Scenario:
        """The scenario as run: the clean engine runs a fault scenario with its faults off."""
        return self.scenario if self.fault else replace(self.scenario, faults=())


def explicit_allocators(sc: Scenario) -> list[str]:
    """Allocators the scenario's [expect.verdict] names (the ones worth running)."""
    return [a for a, _v in sc.expect if a != "default"]


def _for_subject(sc: Scenario, subject: str) -> bool:
    """Whether a scenario is written for this subject's engines (no `engines` key: any)."""
    own = TWIN_ENGINES if subject == "refimpl-c" else REFIMPL_ENGINES
    return not sc.engines or any(e in own for e in sc.engines)


def load_fault_scenarios(fault_dir: Path | None = None, subject: str = "refimpl") -> list[Scenario]:
    """The fault scenarios of a subject: refimpl's under scenarios/faults/ (the C twin's
    folder `native/` left out), the twin's under scenarios/faults/native/. `minimal/` holds the
    tables `memcycle fuzz` found and shrank (checked allocator only, replayed by
    tests/test_fuzz.py), not matrix cases."""
    if fault_dir is None:
        fault_dir = NATIVE_FAULT_DIR if subject == "refimpl-c" else FAULT_DIR
    try:
        files = find_scenarios([fault_dir], include_faults=True)
        files = [f for f in files if "minimal" not in f.relative_to(fault_dir).parts[:-1]]
        found = [load_scenario(f) for f in files]
    except ScenarioError as exc:
        raise MatrixError(str(exc)) from None
    return [sc for sc in found if _for_subject(sc, subject)]


def catalogue_names(subject: str = "refimpl") -> tuple[str, ...]:
    if subject == "refimpl-c":
        from memcycle.refimpl.native.faults import FAULT_NAMES as NATIVE_NAMES

        return NATIVE_NAMES
    from memcycle.refimpl.faults import FAULT_NAMES

    return FAULT_NAMES


def catalogue_verdict(subject: str, fault: str, allocator: str, mode: str = "plain") -> str | None:
    """The verdict the subject's catalogue says a run of `fault` must reach (None: no
    fixed outcome with that allocator, or under that mode)."""
    if subject == "refimpl-c":
        from memcycle.refimpl.native.faults import CATALOGUE as NATIVE

        return NATIVE[fault].verdict(mode)
    from memcycle.refimpl.faults import CATALOGUE

    f = CATALOGUE[fault]
    return f.verdict_raw if allocator == "raw" else f.verdict_checked


def must_kill(subject: str, fault: str, allocator: str, mode: str = "plain") -> bool:
    """Whether a run of `fault` must end with a signal (the native failure replayed).

    Under valgrind nothing must: memcheck reports a bad free or read and carries on (its
    free does not unmap, its free of a wild pointer is refused, not followed)."""
    if subject == "refimpl-c":
        if mode == "valgrind":
            return False
        return catalogue_verdict(subject, fault, allocator, mode) in _SIGNAL_VERDICTS
    from memcycle.refimpl.faults import CATALOGUE

    return allocator == "raw" and CATALOGUE[fault].abort_class


def fault_index(
    scenarios: Iterable[Scenario], subject: str = "refimpl"
) -> dict[str, list[Scenario]]:
    """fault name -> the scenarios that expose it; unknown names are errors."""
    names = catalogue_names(subject)
    out: dict[str, list[Scenario]] = {}
    for sc in scenarios:
        for name in sc.faults:
            if name not in names:
                raise MatrixError(
                    f"{sc.path}: faults = [{name!r}] names no catalogue fault; "
                    f"expected one of {', '.join(names)}"
                )
            out.setdefault(name, []).append(sc)
    return out


def _twin_engine(sc: Scenario) -> str | None:
    """The C twin engine a scenario runs on, or None when the twin cannot run it."""
    if set(sc.requires) - TWIN_CAPABILITIES:
        return None
    if not sc.engines:
        return "refimpl-c"
    return next((e for e in sc.engines if e in TWIN_ENGINES), None)


def plan(
    allocators: Sequence[str],
    *,
    only: Sequence[str] = (),
    fault_dir: Path | None = None,
    bundled: Path | None = BUNDLED,
    include_slow: bool = False,
    clean: bool = True,
    subject: str = "refimpl",
    mode: str = "plain",
) -> tuple[list[Case], list[str]]:
    """The cases to run and the catalogue faults that have no scenario (misses).

    `subject` "refimpl-c" plans the C twin's matrix: its allocator axis is "native"
    (malloc), whatever `allocators` says. `mode` "asan" or "valgrind" (the twin only) runs
    every fault whose catalogue gives a verdict under that tool, judged by that verdict
    (the scenarios' `[expect.verdict] native` is a plain run's), and the clean twin over
    `TOOL_CLEAN_SCENARIOS[mode]` (see the module doc for why those)."""
    if subject not in SUBJECTS:
        raise MatrixError(
            f"unknown engine {subject!r} for the fault matrix; expected one of {', '.join(SUBJECTS)}"
        )
    if mode not in MODES:
        raise MatrixError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode != "plain" and subject != "refimpl-c":
        raise MatrixError(
            f"the {mode} fault matrix is the C twin's (--engine refimpl-c); refimpl is Python "
            "and Numba, with no native build for a sanitizer or valgrind to judge"
        )
    names = catalogue_names(subject)
    if subject == "refimpl-c":
        allocators = ["native"]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise MatrixError(f"unknown fault {unknown[0]!r}; expected one of {', '.join(names)}")
    fault_scs = load_fault_scenarios(fault_dir, subject)
    index = fault_index(fault_scs, subject)
    wanted = list(only) or list(names)
    missing = [n for n in wanted if n not in index]
    cases: list[Case] = []
    for name in wanted:
        for sc in index.get(name, []):
            if mode != "plain":
                expected = catalogue_verdict(subject, name, "native", mode)
                if expected is not None:
                    cases.append(Case(sc, "native", name, expected, subject=subject, mode=mode))
                continue
            for alloc in allocators:
                if alloc in explicit_allocators(sc):
                    cases.append(Case(sc, alloc, name, sc.expected(alloc), subject=subject))
    if clean:
        clean_scs: list[Scenario] = []
        if only:
            clean_scs = [sc for n in wanted for sc in index.get(n, [])]
        else:
            if bundled is not None:
                try:
                    clean_scs = [load_scenario(f) for f in find_scenarios([bundled])]
                except ScenarioError as exc:
                    raise MatrixError(str(exc)) from None
                clean_scs = [sc for sc in clean_scs if include_slow or not sc.slow]
            clean_scs += fault_scs
            subset = TOOL_CLEAN_SCENARIOS.get(mode)
            if subset is not None:
                clean_scs = [sc for sc in clean_scs if sc.name in subset]
        seen: set[str] = set()
        for sc in clean_scs:
            if sc.path in seen:
                continue
            seen.add(sc.path)
            engine = None
            if subject == "refimpl-c":
                engine = _twin_engine(sc)
                if engine is None:  # written for refimpl only, or needs what the twin lacks
                    continue
            elif not _for_subject(sc, subject):
                continue
            cases.extend(
                Case(sc, alloc, None, "clean", engine=engine, subject=subject, mode=mode)
                for alloc in allocators
            )
    return cases, missing


# -- judging ---------------------------------------------------------------------------
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
    elif rec.verdict != case.expected and not _signal_without_message(case, rec):
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


def _engine_c_frame(frames: Sequence[dict[str, Any]] | None, need_line: bool) -> bool:
    return any(
        f.get("engine") and f.get("function") and (not need_line or f.get("line"))
        for f in frames or ()
    )


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
            if not _engine_c_frame(f.evidence.get(key), need_line=True)
        ]
    if rec.exit.get("kind") == "signal" and found:
        ev = found[0].evidence
        if not _engine_c_frame(ev.get("native_stack"), need_line=False):
            why = ev.get("native_stack_absent") or rec.exit.get("native_stack_absent")
            return [
                "the crash's native stack names no C function of the twin"
                + (f" ({str(why)[:200]})" if why else "")
            ]
    return []


# -- evidence in one line ----------------------------------------------------------------
_CHILD_OP = re.compile(r"(?:harness|memcycle)/child\.py:\d+ in (op_\w+|teardown)")


def _violations(steps: Sequence[StepEvent]) -> list[tuple[int, dict[str, Any]]]:
    """(step index, violation) for every allocator violation, in the order recorded."""
    out: list[tuple[int, dict[str, Any]]] = []
    seen = 0
    for i, ev in enumerate(steps):
        led = (ev.memory or {}).get("ledger") or {}
        n = int(led.get("n_violations", len(led.get("violations") or [])))
        if n > seen:
            out.extend((i, v) for v in (led.get("violations") or [])[-(n - seen) :])
            seen = n
    return out


def _where(ev: StepEvent, stack: Sequence[str] | None = None) -> str:
    frame = _engine_frame(stack)
    return f"cycle {ev.cycle} ({ev.op}{', ' + frame if frame else ''})"


def _is_harness_frame(frame: str) -> bool:
    """A frame of memcycle's own harness (`harness/` in a checkout, `memcycle/` installed),
    not of the engine (`refimpl/`, `memcycle/refimpl/`)."""
    return "/refimpl/" not in frame and ("/harness/" in frame or "/memcycle/" in frame)


def _engine_frame(stack: Sequence[str] | None) -> str:
    """The innermost engine frame of a stack ('sparse_map.py:166 __del__'), skipping the
    allocator itself and the harness."""
    for frame in reversed(list(stack or ())):
        m = re.match(r"(?:.*/)?([^/]+\.py):(\d+) in (\S+)", frame)
        if m and m.group(1) != "alloc.py" and not _is_harness_frame(frame):
            return f"{m.group(1)}:{m.group(2)} {m.group(3)}"
    return ""


def _alloc_step(steps: Sequence[StepEvent], block_id: int) -> int | None:
    """The step in which block #id was allocated: ids count allocations from 1, and every
    step's ledger carries the allocation counter."""
    for i, ev in enumerate(steps):
        led = (ev.memory or {}).get("ledger") or {}
        if int(led.get("allocs", 0)) >= block_id:
            return i
    return None


def _stack_op(stack: Sequence[str] | None) -> str | None:
    for frame in reversed(list(stack or ())):
        m = _CHILD_OP.search(frame)
        if m:
            return "close" if m.group(1) == "teardown" else m.group(1)[3:]
    return None


def _free_step(
    steps: Sequence[StepEvent], v: dict[str, Any], lo: int | None, hi: int
) -> int | None:
    """The step that first freed the block: exact when the allocator recorded the free
    counter (`free_seq`), else the first step after its allocation running the op
    named in the free stack."""
    seq = v.get("free_seq")
    if isinstance(seq, int):
        for i, ev in enumerate(steps):
            if int(((ev.memory or {}).get("ledger") or {}).get("frees", 0)) >= seq:
                return i
    op = _stack_op(v.get("free_stack"))
    if op is None:
        return None
    for i in range(lo or 0, hi + 1):
        if steps[i].op == op:
            return i
    return None


def _block(v: dict[str, Any]) -> str:
    size = f"{v['nbytes']} B" if v.get("nbytes") is not None else "? B"
    bid = f"#{v['block_id']} " if v.get("block_id") not in (None, -1) else ""
    return f"block {bid}'{v.get('label')}' ({size})"


def _violation_line(rec: RunRecord, step_i: int, v: dict[str, Any]) -> str:
    steps = rec.steps
    verdict = v.get("verdict")
    at = _where(steps[step_i])
    again = v.get("fault_stack")
    if verdict == "invalid-free":
        msg = (v.get("message") or "").splitlines()[0]
        m = re.search(r"free of (0x[0-9a-f]+) \('([^']*)'\)", msg)
        addr, label = (m.group(1), m.group(2)) if m else ("an address", v.get("label"))
        return f"free() of {addr} ('{label}'), never allocated, in {_where(steps[step_i], again)}"
    bid = v.get("block_id")
    a = _alloc_step(steps, int(bid)) if isinstance(bid, int) and bid > 0 else None
    alloc = (
        f"allocated in {_where(steps[a], v.get('alloc_stack'))}" if a is not None else "allocated ?"
    )
    f = _free_step(steps, v, a, step_i)
    freed = f"freed in {_where(steps[f], v.get('free_stack'))}" if f is not None else "freed ?"
    at = _where(steps[step_i], again)
    if verdict == "double-free":
        return f"{_block(v)}: {alloc}, {freed}, freed again in {at}"
    if verdict == "use-after-free":
        return f"{_block(v)}: {alloc}, {freed}, used in {at}"
    if verdict == "buffer-overflow":
        msg = (v.get("message") or "").splitlines()[0]
        m = re.search(r"(WRITE of \d+ bytes at offset \d+|\d+ byte\(s\) past the end)", msg)
        what = f" ({m.group(1)})" if m else ""
        return f"{_block(v)}: {alloc}, written past its end in {at}{what}"
    return f"{_block(v)}: {verdict} in {at}"


def _leak_line(rec: RunRecord) -> str | None:
    """Labels whose live bytes after each reset grow, with bytes per cycle (ledger)."""
    points: dict[int, dict[str, int]] = {}
    for ev in rec.steps:
        led = (ev.memory or {}).get("ledger")
        if ev.op in ("clear", "destroy", "reload") and ev.ok and led is not None:
            points[ev.cycle] = {k: int(x["bytes"]) for k, x in led.get("by_label", {}).items()}
    cycles = sorted(points)
    if len(cycles) < 2:
        return None
    first, last = points[cycles[0]], points[cycles[-1]]
    span = cycles[-1] - cycles[0]
    grow = sorted(
        ((lab, (last.get(lab, 0) - first.get(lab, 0)) / span) for lab in set(first) | set(last)),
        key=lambda x: -x[1],
    )
    grow = [(lab, per) for lab, per in grow if per > 0]
    if not grow:
        return None
    labels = ", ".join(f"'{lab}' +{per:.0f} B/cycle" for lab, per in grow[:3])
    more = f" (+{len(grow) - 3} more labels)" if len(grow) > 3 else ""
    total = sum(per for _lab, per in grow)
    return (
        f"{labels}{more}; {total:.0f} B/cycle live after clear, "
        f"cycles {cycles[0]}..{cycles[-1]} (allocator ledger)"
    )


def _crash_line(rec: RunRecord) -> str:
    """How the child died: signal, where, the runtime's message (the verdict came from it
    when it is not `crash`)."""
    f = next(
        (
            x
            for x in rec.findings
            if x.verdict in ("crash", "timeout") or x.evidence.get("signal_class")
        ),
        None,
    )
    ex = rec.exit
    sig = ex.get("signal_name") or ex.get("kind")
    msg = ex.get("native_message") or ex.get("fatal_error") or ""
    runtime = f"{ex['native']['runtime']}: " if isinstance(ex.get("native"), dict) else ""
    where = f" in cycle {f.cycle} at {f.op}" if f else ""
    return f"{sig}{where}" + (f': {runtime}"{msg}"' if msg else "")


TOOL_SOURCES = ("asan", "lsan", "ubsan", "valgrind")


# the twin's counting malloc/free: the frame that matters is their caller
_TWIN_ALLOC_WRAPPERS = frozenset({"rc_malloc", "rc_free"})


def _c_frame(frames: Sequence[dict[str, Any]] | None) -> str:
    """'seg_store (refimpl_c.c:424)': the innermost engine frame with a function (past the
    twin's allocation wrappers)."""
    own = [x for x in frames or () if x.get("engine") and x.get("function")]
    f = next((x for x in own if x["function"] not in _TWIN_ALLOC_WRAPPERS), own[0] if own else None)
    if f is None:
        return ""
    where = f" ({Path(f['file']).name}:{f['line']})" if f.get("file") and f.get("line") else ""
    return f"{f['function']}{where}"


def _tool_line(rec: RunRecord) -> str | None:
    """A sanitizer's or memcheck's verdict: its summary, then where the block was allocated
    and freed (the innermost engine frame of each stack)."""
    f = next(
        (
            x
            for x in rec.findings
            if x.verdict == rec.verdict and x.evidence.get("source") in TOOL_SOURCES
        ),
        None,
    )
    if f is None:
        return None
    parts = [f.summary]
    for key, label in (("native_alloc_stack", "allocated in"), ("native_free_stack", "freed in")):
        where = _c_frame(f.evidence.get(key))
        if where:
            parts.append(f"{label} {where}")
    return "; ".join(parts)


def evidence_line(rec: RunRecord) -> str:
    """The evidence behind a run's verdict, in one line (block, cycles, bytes, signal)."""
    v = rec.verdict
    if v == "clean":
        blocks = {c.live_blocks_after_clear for c in rec.cycles} - {None}
        return f"no finding in {len(rec.cycles)} cycles" + (
            f", {max(blocks)} live blocks after every clear" if blocks else ""
        )
    tool = _tool_line(rec)
    if tool:
        return tool
    if v in ("crash", "timeout"):
        return _crash_line(rec)
    if any(x.verdict == v and x.evidence.get("signal_class") for x in rec.findings):
        return _crash_line(rec)  # the verdict is the dead child's runtime message
    if v == "leak":
        line = _leak_line(rec)
        if line:
            return line
    line = ""
    if v in ("double-free", "invalid-free", "use-after-free", "buffer-overflow"):
        match = [(i, x) for i, x in _violations(rec.steps) if x.get("verdict") == v]
        if match:
            line = _violation_line(rec, *match[0])
    if not line:
        f = next((x for x in rec.findings if x.verdict == v), None)
        line = f.summary if f else v
    if v != "leak" and any(x.verdict == "leak" for x in rec.findings):
        leak = _leak_line(rec) or next(x.summary for x in rec.findings if x.verdict == "leak")
        first = next(x for x in rec.findings if x.verdict == "leak")
        line += f"; before it, a leak from cycle {first.cycle}: {leak}"
    return line


def verdict_finding_at(rec: RunRecord) -> str:
    """'cycle.step op' of the first finding with the run's verdict (where it showed)."""
    f = next((x for x in rec.findings if x.verdict == rec.verdict), None)
    if f is None or f.cycle is None:
        return "-"
    return f"{f.cycle}.{f.step} {f.op}"


# -- the matrix text ---------------------------------------------------------------------
def axis(case: Case) -> str:
    """The matrix's allocator column: the allocator, and the tool when there is one."""
    return case.allocator if case.mode == "plain" else f"{case.allocator}+{case.mode}"


def _row(cols: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)).rstrip()


def format_matrix(outcomes: Sequence[Outcome], missing: Sequence[str] = ()) -> str:
    """Plain text: fault x allocator -> verdict, where, evidence; then the clean engine."""
    lines: list[str] = []
    head = ("fault", "allocator", "verdict", "expected", "ok", "cycle.step", "evidence")
    faults = [o for o in outcomes if o.case.fault]
    rows = [
        (
            o.case.fault or "",
            axis(o.case),
            o.record.verdict,
            o.case.expected,
            "PASS" if o.ok else "FAIL",
            verdict_finding_at(o.record),
            evidence_line(o.record) + ("" if o.ok else "  <- " + "; ".join(o.problems)),
        )
        for o in faults
    ]
    rows += [(name, "-", "-", "-", "FAIL", "-", "no scenario names this fault") for name in missing]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head[:-1])]
    lines.append(_row(head, [*widths, 0]))
    lines.extend(_row(r, [*widths, 0]) for r in rows)
    clean = [o for o in outcomes if not o.case.fault]
    if clean:
        lines.append("")
        ch = ("clean engine: scenario", "allocator", "verdict", "ok", "evidence")
        crows = [
            (
                o.case.scenario.name,
                axis(o.case),
                o.record.verdict,
                "PASS" if o.ok else "FAIL",
                evidence_line(o.record) if o.ok else "; ".join(o.problems),
            )
            for o in clean
        ]
        cw = [max([len(h)] + [len(r[i]) for r in crows]) for i, h in enumerate(ch[:-1])]
        lines.append(_row(ch, [*cw, 0]))
        lines.extend(_row(r, [*cw, 0]) for r in crows)
    return "\n".join(lines)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def matrix_markdown(outcomes: Sequence[Outcome], missing: Sequence[str] = ()) -> str:
    """The same matrix as a Markdown section for summary.md."""
    lines = [
        "## Fault matrix",
        "",
        "| fault | allocator | verdict | expected | ok | cycle.step | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if not o.case.fault:
            continue
        ev = evidence_line(o.record) + ("" if o.ok else " ← " + "; ".join(o.problems))
        lines.append(
            f"| {o.case.fault} | {axis(o.case)} | {o.record.verdict} | {o.case.expected} | "
            f"{'✅' if o.ok else '❌'} | {verdict_finding_at(o.record)} | {_md_escape(ev)} |"
        )
    for name in missing:
        lines.append(f"| {name} | - | - | - | ❌ | - | no scenario names this fault |")
    clean = [o for o in outcomes if not o.case.fault]
    if clean:
        lines += [
            "",
            "### Clean engine (no fault)",
            "",
            "| scenario | allocator | verdict | ok |",
            "|---|---|---|---|",
        ]
        for o in clean:
            extra = "" if o.ok else " ← " + _md_escape("; ".join(o.problems))
            lines.append(
                f"| {o.case.scenario.name} | {axis(o.case)} | {o.record.verdict}{extra} | "
                f"{'✅' if o.ok else '❌'} |"
            )
    return "\n".join(lines) + "\n"


# -- running -------------------------------------------------------------------------------
def run_cases(
    cases: Sequence[Case],
    out: Path,
    *,
    jobs: int = 1,
    memray: bool = True,
    timeout: float | None = None,
    progress: Any = None,
    command: list[str] | None = None,
) -> tuple[Report, list[Outcome]]:
    """Run every case in its own child and judge it."""
    todo = [
        RunSpec(
            c.scenario_to_run(),
            engine=c.engine,
            allocator=c.allocator,
            # under a tool the tool judges leaks; memray would only slow it (valgrind: 3x)
            memray=memray and c.mode == "plain",
            timeout=timeout,
            expected=c.expected,
            sanitizer="asan" if c.mode == "asan" else None,
            valgrind=c.mode == "valgrind",
        )
        for c in cases
    ]
    report = run_many(todo, out, jobs=jobs, progress=progress, command=command)
    outcomes = [judge_case(c, r) for c, r in zip(cases, report.runs, strict=True)]
    return report, outcomes


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + text)


def write_reports(report: Report, out: Path, sections: Sequence[str]) -> dict[str, Path]:
    """write_all's formats, then our sections appended to summary.md."""
    from .reporters import write_all

    paths = write_all(report, out)
    md = paths.get("markdown", out / "summary.md")
    for s in sections:
        _append(md, s)
    return paths


# -- the reference note's story ------------------------------------------------------------
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
    from .reporters.story import NoteColumn

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
    from .reporters.story import story_table

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


# -- CLI -----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run every catalogue fault under its scenarios (scenarios/faults/) and the clean "
        "engine under every bundled scenario; print fault x allocator -> verdict. Exit 1 when "
        "a fault is missed or misclassified or the clean engine gets any finding."
    )
    parser.add_argument(
        "--engine",
        choices=SUBJECTS,
        default="refimpl",
        help="refimpl (default), or refimpl-c: its C twin, faults from scenarios/faults/native/",
    )
    parser.add_argument(
        "--allocator",
        choices=(*ALLOCATORS, "both"),
        default=None,
        help="refimpl's allocator: checked, raw or both (default both); the C twin uses malloc",
    )
    parser.add_argument(
        "--sanitizer",
        choices=("asan",),
        default=None,
        help="--engine refimpl-c only: run the twin's asan build under AddressSanitizer; "
        "verdicts from the catalogue's verdict_asan",
    )
    parser.add_argument(
        "--valgrind",
        action="store_true",
        help="--engine refimpl-c only: run every child under valgrind memcheck; verdicts from "
        "the catalogue's verdict_valgrind (slow: the clean twin on a few scenarios only)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="only this fault (repeatable); the clean runs then cover only its scenarios",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="children run at once")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default reports/faults-<timestamp>/)"
    )
    parser.add_argument(
        "--all", action="store_true", help="include slow/soak bundled scenarios in the clean runs"
    )
    parser.add_argument(
        "--no-clean", action="store_true", help="skip the clean-engine runs (faults only)"
    )
    parser.add_argument(
        "--story",
        action="store_true",
        help="replay the reference note's Test Results tables instead of the matrix",
    )
    parser.add_argument(
        "--faults-dir",
        default=None,
        metavar="DIR",
        help="fault scenarios (default scenarios/faults/, or scenarios/faults/native/ for refimpl-c)",
    )
    parser.add_argument(
        "--memray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record allocations with memray (default on)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help=f"seconds per run (default 120; memcycle run uses {DEFAULT_TIMEOUT:.0f})",
    )


def main(args: argparse.Namespace) -> int:
    from .cli import Progress, UsageError, _check_native_tool

    subject = getattr(args, "engine", "refimpl") or "refimpl"
    sanitizer = getattr(args, "sanitizer", None)
    valgrind = bool(getattr(args, "valgrind", False))
    mode = "valgrind" if valgrind else (sanitizer or "plain")
    if mode != "plain":
        if subject != "refimpl-c":
            raise UsageError(
                f"--{'valgrind' if valgrind else 'sanitizer'} applies to --engine refimpl-c "
                "(the C twin); refimpl has no native build to check"
            )
        _check_native_tool(sanitizer, valgrind)
    if subject == "refimpl-c":
        if args.allocator is not None:
            raise UsageError(
                "--allocator applies to --engine refimpl; the C twin allocates with malloc"
            )
        if args.story:
            raise UsageError("--story replays refimpl's code paths; it has no --engine refimpl-c")
        allocators = ["native"]
    else:
        choice = args.allocator or "both"
        allocators = list(ALLOCATORS) if choice == "both" else [choice]
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    if args.faults_dir:
        fault_dir = Path(args.faults_dir)
    else:
        fault_dir = NATIVE_FAULT_DIR if subject == "refimpl-c" else FAULT_DIR
    command = ["memcycle", *sys.argv[1:]]
    t0 = time.perf_counter()
    try:
        if args.story:
            out = Path(args.out) if args.out else Path("reports") / f"story-{stamp}"
            n = len(allocators) * 3
            report, text = run_story(
                allocators,
                out,
                jobs=args.jobs,
                memray=args.memray,
                timeout=args.timeout,
                fault_dir=fault_dir,
                progress=Progress(n),
                command=command,
            )
            write_reports(report, out, [text])
            print(text)
            print(f"report: {out / 'summary.md'} ({time.perf_counter() - t0:.0f} s)")
            broken = [r for r in report.runs if r.exit.get("kind") == "skipped"]
            return 1 if broken else 0
        out = Path(args.out) if args.out else Path("reports") / f"faults-{stamp}"
        cases, missing = plan(
            allocators,
            only=args.only,
            fault_dir=fault_dir,
            include_slow=args.all,
            clean=not args.no_clean,
            subject=subject,
            mode=mode,
        )
    except MatrixError as exc:
        raise UsageError(str(exc)) from None
    if not cases and not missing:
        raise UsageError("nothing to run")
    report, outcomes = run_cases(
        cases,
        out,
        jobs=args.jobs,
        memray=args.memray,
        timeout=args.timeout,
        progress=Progress(len(cases)),
        command=command,
    )
    ran = {c.fault for c in cases if c.fault}
    unrun = [
        n for n in (args.only or catalogue_names(subject)) if n not in ran and n not in missing
    ]
    if mode != "plain":
        why = f"the catalogue gives no verdict_{mode}"
    else:
        why = "no fixed outcome there; their scenarios name no such allocator in [expect.verdict]"
    where = ", ".join(allocators) + ("" if mode == "plain" else f" under {mode}")
    note = f"not run with {where} ({why}): {', '.join(unrun)}" if unrun else ""
    write_reports(
        report, out, [matrix_markdown(outcomes, missing) + (f"\n{note}\n" if note else "")]
    )
    print(format_matrix(outcomes, missing))
    if note:
        print(note)
    bad = [o for o in outcomes if not o.ok]
    n_fault = sum(1 for o in outcomes if o.case.fault)
    print()
    print(
        f"{n_fault} fault run(s), {len(outcomes) - n_fault} clean run(s); "
        f"{len(bad) + len(missing)} problem(s); {time.perf_counter() - t0:.0f} s; "
        f"report: {out / 'summary.md'}"
    )
    return 1 if bad or missing else 0
