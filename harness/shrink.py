"""`memcycle shrink`: the smallest cycle table that still fails the same way.

"The same way" is the same verdict class (the run's verdict) whose first finding is at the
same kind of step (op), e.g. `double-free` at an `insert`. Every candidate is replayed in a
child exactly as `memcycle run` does, so a replay costs a child start; the passes are
ordered to remove the most with the fewest replays:

1. drop cycles (everything after the failing cycle first, then halves, then single cycles);
2. drop steps;
3. simplify steps (no batch split, no metadata, no re-used ids, no filter);
4. lower numbers (row counts, batch sizes, queries, k): the candidates are 1, every
   threshold t of the engine and t +- 1, then half the value, smallest first, so a count
   lands on the right side of a threshold that matters instead of being bisected across it;
   then a bisection between the largest failing candidate and the value, only where no
   threshold lies between them;
5. lower the dimension (all cycles at once, then one by one);
6. make neighbouring cycles identical (merge repeats), so they become one `[[cycle]]`;

repeated until a whole round changes nothing or the replay budget is spent. A candidate is
taken only when it is smaller by `cost` and still fails the same way; a dimension may change
only after a reset (as generated); and when refimpl faults are on, the same candidate with the
faults off must not fail the same way (one more replay per kept candidate), so the table
written shows the fault and not a misuse any engine would refuse. Identical
consecutive cycles are merged into one `[[cycle]]` with `repeat` when the file is written.
The candidate order depends only on the table, so shrinking is deterministic (as far as the
engine's failure is).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .fuzz import option_thresholds
from .records import RunRecord
from .runner import run_one
from .scenario import Scenario, Step, load_scenario
from .scenario_toml import scenario_toml
from .shrink_plan import (  # noqa: F401  (still importable from here)
    NUMERIC_FIELDS,
    Plan,
    cost,
    merged_cycles,
    plan_of,
    scenario_dict,
    size_text,
    valid,
)

NOT_FAILING = ("clean", "skipped", "error")
DIMENSION_CANDIDATES = (2, 4, 8, 16)


@dataclass(frozen=True)
class Target:
    """What a candidate must still show."""

    verdict: str
    op: str | None

    @classmethod
    def of(cls, rec: RunRecord) -> Target:
        first = next((f for f in rec.findings if f.verdict == rec.verdict), None)
        return cls(rec.verdict, first.op if first else None)

    def matches(self, rec: RunRecord) -> bool:
        if rec.verdict != self.verdict:
            return False
        first = next((f for f in rec.findings if f.verdict == self.verdict), None)
        return self.op is None or (first is not None and first.op == self.op)

    def __str__(self) -> str:
        return f"{self.verdict} at {self.op}" if self.op else self.verdict


@dataclass
class ShrinkResult:
    path: Path
    target: Target
    before: str
    after: str
    replays: int
    seconds: float
    plan: Plan
    record: RunRecord  # the run of the written table

    def line(self) -> str:
        return (
            f"{self.before} -> {self.after}; {self.replays} replays, {self.seconds:.0f} s "
            f"({self.target})"
        )


class Shrinker:
    """Replays candidates of one failing table (see the module doc)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        engine: str,
        allocator: str = "numpy",
        faults: Sequence[str] = (),
        work: Path,
        memray: bool = True,
        timeout: float = 120.0,
        max_replays: int = 60,
        budget: float = 900.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.base = scenario
        self.engine = engine
        self.allocator = allocator
        self.faults = tuple(faults)
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.memray = memray
        self.timeout = timeout
        self.max_replays = max_replays
        self.budget = budget
        self.log = log or (lambda _m: None)
        self.thresholds = option_thresholds(scenario.options())
        self.replays = 0
        self._cache: dict[str, bool] = {}
        self._t0 = time.perf_counter()
        self.target: Target | None = None

    # -- replay ---------------------------------------------------------------------
    def _write(self, plan: Plan, path: Path, *, control: bool = False) -> Path:
        data = scenario_dict(
            self.base,
            plan,
            name=self.base.name,
            engine=self.engine,
            allocator=self.allocator,
            faults=self.faults,
        )
        if control:
            data.pop("faults", None)
        path.write_text(scenario_toml(data), encoding="utf-8")
        return path

    @property
    def all_faults(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.base.faults, *self.faults]))

    def replay(self, plan: Plan, *, control: bool = False) -> RunRecord:
        """Run the candidate; with `control`, the same table with every fault off."""
        key = hashlib.sha1(repr(plan).encode()).hexdigest()[:12]
        name = f"control-{key}.toml" if control else f"candidate-{key}.toml"
        path = self._write(plan, self.work / name, control=control)
        self.replays += 1
        return run_one(
            load_scenario(path),
            self.engine,
            self.allocator,
            (),
            memray=self.memray,
            timeout=self.timeout,
            flamegraphs="none",
        )

    def out_of_budget(self) -> bool:
        return self.replays >= self.max_replays or time.perf_counter() - self._t0 > self.budget

    def accept(self, cand: Plan, plan: Plan) -> bool:
        """Take `cand` when it is smaller (see `cost`) and still shows the target."""
        return cost(cand) < cost(plan) and self.fails(cand)

    def fails(self, plan: Plan) -> bool:
        """Whether the candidate still shows the target (cached; False once out of budget)."""
        if not plan or any(not steps for _d, steps in plan):
            return False
        key = repr(plan)
        if key in self._cache:
            return self._cache[key]
        if self.out_of_budget():
            return False
        assert self.target is not None
        if not valid(plan):
            self._cache[key] = False
            return False
        rec = self.replay(plan)
        ok = self.target.matches(rec)
        why = ""
        if ok and self.all_faults and not self.out_of_budget():
            # with faults on, the failure must be the fault's: the same table with the faults
            # off must not fail the same way (a dimension change without a reset fails anyway)
            control = self.replay(plan, control=True)
            if self.target.matches(control):
                ok, why = False, " (fails without the fault too)"
        self._cache[key] = ok
        self.log(
            f"  replay {self.replays}: {size_text(plan)} -> {rec.verdict}"
            + (" (kept)" if ok else why)
        )
        return ok

    # -- passes -----------------------------------------------------------------------
    def _drop_cycles(self, plan: Plan, first_cycle: int | None) -> Plan:
        if first_cycle is not None and first_cycle < len(plan):
            cand = plan[:first_cycle]
            if self.accept(cand, plan):
                plan = cand
        n = len(plan)
        if n > 2:
            half = n // 2
            for cand in (plan[half:], plan[:half]):
                if self.accept(cand, plan):
                    plan = cand
                    break
        i = 0
        while i < len(plan) and len(plan) > 1:
            cand = plan[:i] + plan[i + 1 :]
            if self.accept(cand, plan):
                plan = cand
            else:
                i += 1
        return plan

    def _replace_step(self, plan: Plan, ci: int, si: int, step: Step | None) -> Plan:
        dim, steps = plan[ci]
        new = steps[:si] + ((step,) if step is not None else ()) + steps[si + 1 :]
        return (*plan[:ci], (dim, new), *plan[ci + 1 :])

    def _drop_steps(self, plan: Plan) -> Plan:
        ci = 0
        while ci < len(plan):
            si = 0
            while si < len(plan[ci][1]):
                cand = self._replace_step(plan, ci, si, None)
                if len(plan[ci][1]) > 1 and self.accept(cand, plan):
                    plan = cand
                else:
                    si += 1
            ci += 1
        return plan

    def _simplify_steps(self, plan: Plan) -> Plan:
        for ci in range(len(plan)):
            for si in range(len(plan[ci][1])):
                step = plan[ci][1][si]
                for change in (
                    {"batch": None},
                    {"metadata": False},
                    {"reuse_deleted": False},
                    {"filter": None},
                ):
                    ((k, v),) = change.items()
                    if getattr(step, k, v) in (v, None, False):
                        continue
                    new = dataclasses.replace(step, **change)
                    cand = self._replace_step(plan, ci, si, new)
                    if self.accept(cand, plan):
                        plan, step = cand, new
        return plan

    def lower_values(self, current: int) -> list[int]:
        """Smaller values to try, smallest first: 1, thresholds and their neighbours, half."""
        cands = {1, current // 2}
        for t in self.thresholds:
            cands |= {t - 1, t, t + 1}
        return sorted(c for c in cands if 1 <= c < current)

    def _lower_numbers(self, plan: Plan) -> Plan:
        for ci in range(len(plan)):
            for si in range(len(plan[ci][1])):
                for fname in NUMERIC_FIELDS:
                    step = plan[ci][1][si]
                    cur = getattr(step, fname, None)
                    if not isinstance(cur, int) or cur <= 1:
                        continue
                    best, lo = cur, 0
                    for v in self.lower_values(cur):
                        cand = self._replace_step(
                            plan, ci, si, dataclasses.replace(step, **{fname: v})
                        )
                        if self.fails(cand):
                            best = v
                            break
                        lo = v
                    # bisect (lo, best) where no threshold separates them
                    while best - lo > 2 and not any(lo < t <= best + 1 for t in self.thresholds):
                        mid = (lo + best) // 2
                        cand = self._replace_step(
                            plan, ci, si, dataclasses.replace(step, **{fname: mid})
                        )
                        if self.fails(cand):
                            best = mid
                        else:
                            lo = mid
                        if self.out_of_budget():
                            break
                    if best != cur:
                        plan = self._replace_step(
                            plan, ci, si, dataclasses.replace(step, **{fname: best})
                        )
        return plan

    def _unify_cycles(self, plan: Plan) -> Plan:
        """Make neighbouring cycles identical (one copied over the other) so they merge into
        one table with `repeat`."""
        i = 0
        while i + 1 < len(plan):
            if plan[i] != plan[i + 1]:
                for cand in (
                    (*plan[:i], plan[i + 1], *plan[i + 1 :]),
                    (*plan[: i + 1], plan[i], *plan[i + 2 :]),
                ):
                    if self.accept(cand, plan):
                        plan = cand
                        break
            i += 1
        return plan

    def _lower_dimension(self, plan: Plan) -> Plan:
        dims = sorted({d for d, _s in plan})
        # every distinct dimension to a smaller one, kept distinct (a change may matter)
        lower = dict(zip(dims, DIMENSION_CANDIDATES, strict=False))
        if len(lower) == len(dims) and any(lower[d] < d for d in dims):
            cand = tuple((min(lower[d], d), s) for d, s in plan)
            if self.accept(cand, plan):
                plan = cand
        for ci in range(len(plan)):
            dim, steps = plan[ci]
            for d in DIMENSION_CANDIDATES:
                if d >= dim:
                    break
                cand = (*plan[:ci], (d, steps), *plan[ci + 1 :])
                if self.accept(cand, plan):
                    plan = cand
                    break
        return plan

    # -- the whole shrink -------------------------------------------------------------
    def run(self, first: RunRecord | None = None) -> tuple[Plan, RunRecord]:
        """Shrink; `first` is a run of the scenario as it is (replayed when not given)."""
        plan = plan_of(self.base)
        rec = first if first is not None else self.replay(plan)
        if rec.verdict in NOT_FAILING:
            raise ShrinkError(
                f"nothing to shrink: {self.base.name} gives verdict {rec.verdict} on "
                f"{self.engine}/{self.allocator}"
            )
        self.target = Target.of(rec)
        self._cache[repr(plan)] = True
        first_cycle = next(
            (f.cycle for f in rec.findings if f.verdict == rec.verdict and f.cycle), None
        )
        while not self.out_of_budget():
            before = plan
            plan = self._drop_cycles(plan, first_cycle)
            first_cycle = None
            plan = self._drop_steps(plan)
            plan = self._simplify_steps(plan)
            plan = self._lower_numbers(plan)
            plan = self._lower_dimension(plan)
            plan = self._unify_cycles(plan)
            if plan == before:
                break
        return plan, rec


class ShrinkError(ValueError):
    """Nothing to shrink, or the input cannot be shrunk; the message says why."""


def shrink(
    scenario: Scenario,
    *,
    engine: str,
    allocator: str = "numpy",
    faults: Sequence[str] = (),
    out: Path,
    source: str = "",
    memray: bool = True,
    timeout: float = 120.0,
    max_replays: int = 60,
    budget: float = 900.0,
    first: RunRecord | None = None,
    log: Callable[[str], None] | None = None,
) -> ShrinkResult:
    """Shrink a failing scenario and write `<out>/<name>.min.toml` (verified by a replay)."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sh = Shrinker(
        scenario,
        engine=engine,
        allocator=allocator,
        faults=faults,
        work=out / f".shrink-{scenario.name}",
        memray=memray,
        timeout=timeout,
        max_replays=max_replays,
        budget=budget,
        log=log,
    )
    plan, _first = sh.run(first)
    assert sh.target is not None
    before, after = size_text(plan_of(scenario)), size_text(plan)
    src = source or scenario.path
    data = scenario_dict(
        scenario,
        plan,
        name=f"{scenario.name}-min",
        engine=engine,
        allocator=allocator,
        faults=faults,
        verdict=sh.target.verdict,
        description=f"shrunk by memcycle shrink from {src} ({before}): {sh.target}",
        note=f"{sh.target} on {engine}/{allocator}"
        + (f" with fault {', '.join(faults)}" if faults else "")
        + f"; shrunk from {before} in {sh.replays} replays",
    )
    path = out / f"{scenario.name}.min.toml"
    comment = (
        f"Shrunk by `memcycle shrink` from {src}\n"
        f"({before} -> {after}; {sh.replays} replays): {sh.target}"
    )
    path.write_text(scenario_toml(data, comment=comment), encoding="utf-8")
    final = run_one(
        load_scenario(path),
        engine,
        allocator,
        (),
        memray=memray,
        timeout=timeout,
        flamegraphs="none",
    )
    sh.replays += 1
    return ShrinkResult(
        path, sh.target, before, after, sh.replays, time.perf_counter() - t0, plan, final
    )
