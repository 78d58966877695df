"""Write cycle tables: the inverse of `harness.scenario.parse_scenario`.

The shrinker and the fuzzer build scenarios as data and must hand back files a user can
read, edit and replay; the pytest plugin's `memcycle_run` fixture writes inline scenarios.
`scenario_to_dict` turns a parsed `Scenario` back into the dict form (only keys that differ
from the defaults), `scenario_toml` writes such a dict as TOML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .scenario import DEFAULT_MIN_RECALL, Cycle, Scenario, Step


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Sequence):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to a scenario TOML: {v!r}")


def scenario_toml(data: Mapping[str, Any], *, comment: str = "") -> str:
    """A scenario dict as TOML text: tables and arrays of tables for the top level
    (`[expect]`, `[[cycle]]`), inline values below; `comment` lines go first as `# ...`."""
    head: list[str] = [f"# {line}".rstrip() for line in comment.splitlines()]
    tables: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append(f"\n[{_toml_key(key)}]")
            tables.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        elif isinstance(value, Sequence) and value and all(isinstance(x, Mapping) for x in value):
            for entry in value:
                tables.append(f"\n[[{_toml_key(key)}]]")
                tables.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items())
        else:
            head.append(f"{_toml_key(key)} = {_toml_value(value)}")
    return "\n".join(head + tables) + "\n"


def step_to_dict(step: Step) -> dict[str, Any]:
    """One step as its TOML table (only the keys that were set)."""
    d: dict[str, Any] = {"op": step.op}
    if step.op == "search":
        d["queries"] = step.queries
        d["k"] = step.k
        if step.min_recall is not None and step.min_recall != DEFAULT_MIN_RECALL:
            d["min_recall"] = step.min_recall
        if step.filter is not None:
            d["filter"] = dict(step.filter)
        return d
    if step.op == "delete":
        if step.count is not None:
            d["count"] = step.count
        else:
            d["fraction"] = step.fraction
        return d
    if step.count is not None:
        d["count"] = step.count
    if step.batch:
        d["batch"] = step.batch
    if step.metadata:
        d["metadata"] = True
    if step.reuse_deleted:
        d["reuse_deleted"] = True
    return d


def cycle_to_dict(cycle: Cycle) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if cycle.label is not None:
        d["label"] = cycle.label
    if cycle.repeat != 1:
        d["repeat"] = cycle.repeat
    if cycle.dimension is not None:
        d["dimension"] = cycle.dimension
    d["steps"] = [step_to_dict(s) for s in cycle.steps]
    return d


def scenario_to_dict(sc: Scenario) -> dict[str, Any]:
    """A parsed scenario as the dict `scenario_toml` writes (parse(write(x)) == x)."""
    d: dict[str, Any] = {"name": sc.name}
    if sc.description:
        d["description"] = sc.description
    if sc.dimension is not None:
        d["dimension"] = sc.dimension
    if sc.metric != "l2":
        d["metric"] = sc.metric
    d["seed"] = sc.seed
    for key in ("tags", "engines", "requires", "faults"):
        if getattr(sc, key):
            d[key] = list(getattr(sc, key))
    if sc.engine_options:
        d["engine"] = dict(sc.engine_options)
    d["cycle"] = [cycle_to_dict(c) for c in sc.cycles]
    expect: dict[str, Any] = {}
    table = dict(sc.expect)
    if set(table) == {"default"}:
        expect["verdict"] = table["default"]
    else:
        expect["verdict"] = table
    if sc.expect_note:
        expect["note"] = sc.expect_note
    d["expect"] = expect
    return d
