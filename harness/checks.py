"""Verdicts from measurements: every Finding names its cycle, step and evidence.

Sources, in the order they are judged:
- how the child ended (signal -> crash, timeout, a harness-level exit);
- setup: the child's `error` event (engine module not importable, factory raised,
  adapter incomplete) and a child that exited before its `start` event (it could not
  even start: `No module named ...` in its stderr) are `error`, with the exception or
  the child's stderr tail as evidence and no cycle or step (none ran);
- step exceptions (a MemoryFault carries its verdict; an adapter/library API
  mismatch is `error`, see below; anything else is a lifecycle-error) and allocator
  violations recorded by finalizers;
- oracle comparisons (count, recall, stale/unknown/duplicate ids, stored rows);
- leaks: the allocator ledger after every reset (exact: the contract says zero
  engine blocks after clear), and growth across cycles of memray's
  engine-attributed live bytes, tracemalloc and RSS, judged with a robust
  (Theil-Sen) slope over the cycles after warm-up plus a later-vs-earlier rise,
  so allocator caches and one-off buffers do not count. When the engine's
  allocator reports a cache of its own (`cached_bytes`, the checked allocator's
  quarantine of freed blocks), process-level growth is expected and only the
  exact ledger judges leaks.
Steps the engine could not run (a capability it lacks) are never judged: the run's
verdict comes from the steps that ran, and a `skipped` finding listing every skipped
step and its reason is added whatever that verdict is (a leak shows its skipped steps
too). Only a run in which nothing could run is `skipped` as a whole.

The `error` rule for a step's exception (`is_api_mismatch`) is written out in `checks_steps`.

This module is the one name callers import (`from memcycle.checks import judge`); the work
lives in modules with one job each, re-exported here unchanged:

- `checks_judge`: `judge` (every source below, in order, then the verdict), `summarize_cycles`,
  the cap on findings per verdict, `CONFIRM_LABEL`.
- `checks_exit`: how the child ended (signal, sanitizer and valgrind reports, timeout, setup
  failure, a forged event stream).
- `checks_steps`: each step's exception, its new allocator violations, the oracle's checks.
- `checks_leaks`: the allocator ledger and growth across cycles at the reset points.
- `checks_growth`: `GrowthRule`, `GROWTH_RULES` and `growth`, the judgement of one series (the
  child reads the same rules, so this one imports only NumPy).
- `checks_skips`: the steps an engine could not run, `skip_findings`, `was_skipped`.
"""

from __future__ import annotations

from .checks_exit import (
    _died,
    _exit_findings,
    _last_error_line,
    _native_evidence,
    _next_position,
    _sanitizer_findings,
    _setup_error_finding,
    _stack_evidence,
    _tail,
)
from .checks_growth import GROWTH_RULES, MIN_GROWTH_POINTS, TOP_GROWING_TYPES, GrowthRule, growth
from .checks_judge import CONFIRM_LABEL, MAX_FINDINGS_PER_VERDICT, _cap, judge, summarize_cycles
from .checks_leaks import (
    _growth_findings,
    _ledger_findings,
    _memray_native_note,
    _reset_points,
    growing_types,
)
from .checks_skips import _ran_something, _skip_findings, skip_findings, was_skipped
from .checks_steps import (
    _accepted_refusal,
    _error_verdict,
    _first_line,
    _row_problems,
    _step_findings,
    is_api_mismatch,
)

# the public names, and the private helpers as they were importable before the split
__all__ = [
    "CONFIRM_LABEL",
    "GROWTH_RULES",
    "MAX_FINDINGS_PER_VERDICT",
    "MIN_GROWTH_POINTS",
    "TOP_GROWING_TYPES",
    "GrowthRule",
    "_accepted_refusal",
    "_cap",
    "_died",
    "_error_verdict",
    "_exit_findings",
    "_first_line",
    "_growth_findings",
    "_last_error_line",
    "_ledger_findings",
    "_memray_native_note",
    "_native_evidence",
    "_next_position",
    "_ran_something",
    "_reset_points",
    "_row_problems",
    "_sanitizer_findings",
    "_setup_error_finding",
    "_skip_findings",
    "_stack_evidence",
    "_step_findings",
    "_tail",
    "growing_types",
    "growth",
    "is_api_mismatch",
    "judge",
    "skip_findings",
    "summarize_cycles",
    "was_skipped",
]
