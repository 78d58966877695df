"""What a scenario's plan needs from an engine, and what to skip when the engine lacks it.

Apart from the parsing because it is asked of a parsed scenario and a built engine (the child
before it replays, the bundled-suite checks, the preflight): a whole-run need the engine lacks
skips the run (`unmet_needs`), a step's need skips that step only (`step_skip_reason`), and an
adapter whose declared capabilities are malformed is an error (`capability_problems`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .scenario_model import METRICS, PlannedCycle, Scenario, Step


@dataclass(frozen=True)
class Need:
    """One thing a scenario asks of an engine, derived from its plan (and `requires`).

    `whole`: without it nothing of the scenario can run, so the run is skipped as a whole
    (a metric the engine lacks, a dimension change it cannot do, a `requires` entry);
    otherwise only the steps that need it are skipped (a delete, a filtered search, a get,
    a reload) and the run is judged on the steps that ran.
    """

    capability: str  # a Capabilities field ("delete", "metrics", ...), or "get" (the method)
    why: str
    whole: bool


STEP_CAPABILITY = {"delete": "delete", "get": "get", "reload": "reload"}


def step_capability(step: Step) -> str | None:
    """The capability one step needs, if any (a search needs one only with a filter)."""
    if step.op == "search":
        return "metadata_filter" if step.filter else None
    return STEP_CAPABILITY.get(step.op)


def dimension_change(plan: tuple[PlannedCycle, ...]) -> tuple[int, int, int] | None:
    """(cycle, old, new) of the first time the plan opens one engine instance at another
    dimension (after a clear, or with no reset at all); a destroy or reload starts a new
    instance, which may take any dimension. None when the plan never does."""
    dim: int | None = None
    for pc in plan:
        for step in pc.steps:
            if step.op in ("insert", "open"):
                if dim is not None and dim != pc.dimension:
                    return pc.index, dim, pc.dimension
                dim = pc.dimension
            elif step.op in ("destroy", "reload"):
                dim = None
    return None


def scenario_needs(scenario: Scenario) -> tuple[Need, ...]:
    """Everything the scenario needs, in plan order: `requires`, the metric, a dimension
    change, then one Need per step capability (naming its first step and how many)."""
    out = [Need(c, "required by the scenario (requires)", True) for c in scenario.requires]
    out.append(Need("metrics", f"metric {scenario.metric}", True))
    change = dimension_change(scenario.plan)
    if change is not None:
        cycle, old, new = change
        out.append(
            Need("dimension_change", f"cycle {cycle} opens dimension {new} after {old}", True)
        )
    first: dict[str, tuple[int, int, str]] = {}
    counts: dict[str, int] = {}
    for pc in scenario.plan:
        for si, step in enumerate(pc.steps):
            cap = step_capability(step)
            if cap is not None:
                label = "filtered search" if cap == "metadata_filter" else step.op
                first.setdefault(cap, (pc.index, si, label))
                counts[cap] = counts.get(cap, 0) + 1
    for cap, (cycle, si, op) in first.items():
        out.append(Need(cap, f"{counts[cap]} {op} step(s), first cycle {cycle} step {si}", False))
    return tuple(out)


def has_capability(engine: Any, capability: str) -> bool:
    """Whether an engine (its `capabilities`, and its methods for `get`) has one capability.

    `clear` means a native clear (not the destroy-and-recreate `clear = "recreate"`);
    `get` is the optional `get()` method (and not `capabilities.get = False`, if declared)."""
    caps = getattr(engine, "capabilities", None)
    if capability == "get":
        return callable(getattr(engine, "get", None)) and getattr(caps, "get", True) is not False
    if capability == "clear":
        return getattr(caps, "clear", "native") == "native"
    return bool(getattr(caps, capability, False))


def capability_problems(engine: Any) -> list[str]:
    """What is malformed in an adapter's declared capabilities (they are enforced, so a
    wrong type would silently change what runs); empty when they are well-formed."""
    caps = getattr(engine, "capabilities", None)
    if caps is None:
        return ["the engine has no 'capabilities' (see memcycle.engines.base.Capabilities)"]
    problems = []
    clear = getattr(caps, "clear", "native")
    if clear not in ("native", "recreate"):
        problems.append(f"capabilities.clear = {clear!r}: expected 'native' or 'recreate'")
    metrics = getattr(caps, "metrics", ("l2",))
    if not isinstance(metrics, tuple | list) or not all(m in METRICS for m in metrics):
        problems.append(
            f"capabilities.metrics = {metrics!r}: expected a tuple from {', '.join(METRICS)}"
        )
    for name in ("delete", "metadata_filter", "dimension_change", "ledger", "reload"):
        value = getattr(caps, name, False)
        if not isinstance(value, bool):
            problems.append(f"capabilities.{name} = {value!r}: expected True or False")
    return problems


def unmet_needs(scenario: Scenario, engine: Any) -> list[str]:
    """Why the scenario cannot run on this engine at all (one reason per unmet whole-run
    need of `scenario_needs`); empty when it can run, perhaps with some steps skipped
    (`step_skip_reason`)."""
    lacking: list[str] = []
    reasons: list[str] = []
    for need in scenario_needs(scenario):
        if not need.whole:
            continue
        if need.capability == "metrics":
            metrics = tuple(getattr(engine.capabilities, "metrics", ("l2",)))
            if scenario.metric not in metrics:
                reasons.append(
                    f"engine lacks {need.why} (capabilities.metrics = {', '.join(metrics)})"
                )
        elif not has_capability(engine, need.capability):
            if need.capability == "dimension_change" and need.why.startswith("cycle"):
                reasons.append(
                    f"engine lacks dimension_change: {need.why} "
                    "(capabilities.dimension_change = False)"
                )
            elif need.capability not in lacking:
                lacking.append(need.capability)
    if lacking:
        detail = " (a native clear; it declares clear = 'recreate')" if "clear" in lacking else ""
        reasons.insert(0, f"engine lacks {', '.join(lacking)}{detail}")
    return reasons


def step_skip_reason(step: Step, engine: Any) -> str | None:
    """Why this step cannot run on this engine (a capability it lacks), or None."""
    cap = step_capability(step)
    if cap is None or has_capability(engine, cap):
        return None
    name = getattr(engine, "name", "engine")
    return {
        "delete": f"{name} has no delete (capabilities.delete = False)",
        "metadata_filter": f"{name} has no metadata filter (capabilities.metadata_filter = False)",
        "get": f"{name} has no get()",
        "reload": f"{name} cannot reload its module (capabilities.reload = False)",
    }[cap]
