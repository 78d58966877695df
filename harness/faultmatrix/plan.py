"""The fault matrix's plan: which runs it makes (every catalogue fault under the scenarios that
name it, the clean engine under every scenario it can run) and what verdict each must give.

No running and no printing here: `memcycle faults` (`memcycle.commands.faults`) runs the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from memcycle.bundled import scenarios_dir
from memcycle.errors import UsageError
from memcycle.records import MEMORY_FAULT_VERDICTS
from memcycle.scenario import Scenario, ScenarioError, find_scenarios, load_scenario

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
            "delete-reinsert",
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
_SIGNAL_VERDICTS = MEMORY_FAULT_VERDICTS | {"crash"}


class MatrixError(UsageError):
    """Bad input (unknown fault, malformed fault scenario): one line, exit status 2."""


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
