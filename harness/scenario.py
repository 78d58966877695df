"""Cycle tables: parse and validate a scenario TOML file into frozen dataclasses.

This module is the one name callers import (`from memcycle.scenario import load_scenario`);
the work lives in modules with one job each, re-exported here unchanged:

- `scenario_model`: the data (`Scenario`, `Cycle`, `Step`, `PlannedCycle`), the vocabularies
  (`OPS`, `METRICS`, `CAPABILITY_NAMES`, `ALLOCATORS`), `ScenarioError`, and `expand_plan`
  (`repeat` expanded: cycle numbers in events and reports are the 1-based cycles as they ran).
- `scenario_parse`: `parse_scenario`, the schema's keys (`TOP_KEYS`, `STEP_KEYS`, ...) and the
  size limits; `scenario_fields`: the strict checks of one field. Validation is strict on
  purpose: a typo in a key would otherwise silently turn a check off, and every error names
  the file, the cycle table, the step and the field.
- `scenario_needs`: what a plan needs from an engine, and what is skipped when it lacks it.
- `scenario_files`: `load_scenario` and `find_scenarios` (the file system).
- `scenario_toml`: the inverse, a `Scenario` written back as TOML.

See scenarios/SCHEMA.md.
"""

from __future__ import annotations

from .scenario_files import OPTIONAL_SUBDIRS, find_scenarios, load_scenario
from .scenario_model import (
    ALLOCATORS,
    CAPABILITY_NAMES,
    METRICS,
    OPS,
    Cycle,
    PlannedCycle,
    Scenario,
    ScenarioError,
    Step,
    expand_plan,
)
from .scenario_needs import (
    STEP_CAPABILITY,
    Need,
    capability_problems,
    dimension_change,
    has_capability,
    scenario_needs,
    step_capability,
    step_skip_reason,
    unmet_needs,
)
from .scenario_parse import (
    CYCLE_KEYS,
    DEFAULT_MIN_RECALL,
    EXPECT_KEYS,
    MAX_DIMENSION,
    MAX_PLANNED_CYCLES,
    STEP_KEYS,
    TOP_KEYS,
    parse_scenario,
)

__all__ = [
    "ALLOCATORS",
    "CAPABILITY_NAMES",
    "CYCLE_KEYS",
    "DEFAULT_MIN_RECALL",
    "EXPECT_KEYS",
    "MAX_DIMENSION",
    "MAX_PLANNED_CYCLES",
    "METRICS",
    "OPS",
    "OPTIONAL_SUBDIRS",
    "STEP_CAPABILITY",
    "STEP_KEYS",
    "TOP_KEYS",
    "Cycle",
    "Need",
    "PlannedCycle",
    "Scenario",
    "ScenarioError",
    "Step",
    "capability_problems",
    "dimension_change",
    "expand_plan",
    "find_scenarios",
    "has_capability",
    "load_scenario",
    "parse_scenario",
    "scenario_needs",
    "step_capability",
    "step_skip_reason",
    "unmet_needs",
]
