"""One field of a cycle table checked: each helper returns the value or raises a ScenarioError.

Apart from `scenario_parse` so that the table walk reads as the schema and these read as the
rules every field shares. Strict on purpose: a typo in a key would otherwise silently turn a
check off, so every error names the file, the cycle table, the step and the field (`_Where`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .records import VERDICTS
from .scenario_model import ScenarioError


class _Where:
    def __init__(self, path: str) -> None:
        self.path = path

    def err(
        self, msg: str, *, cycle: int | None = None, step: int | None = None, key: str | None = None
    ) -> ScenarioError:
        where = [self.path]
        if cycle is not None:
            where.append(f"cycle {cycle}")
        if step is not None:
            where.append(f"step {step}")
        if key is not None:
            where.append(f"field '{key}'")
        return ScenarioError(f"{': '.join(where)}: {msg}")


def _int(
    w: _Where, v: Any, key: str, *, minimum: int = 1, maximum: int | None = None, **loc: Any
) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise w.err(f"expected an integer, got {type(v).__name__} {v!r}", key=key, **loc)
    if v < minimum:
        raise w.err(f"must be >= {minimum}, got {v}", key=key, **loc)
    if maximum is not None and v > maximum:
        raise w.err(f"must be <= {maximum:,}, got {v:,}", key=key, **loc)
    return v


def _bool(w: _Where, v: Any, key: str, **loc: Any) -> bool:
    if not isinstance(v, bool):
        raise w.err(f"expected true or false, got {v!r}", key=key, **loc)
    return v


def _seconds(w: _Where, v: Any, key: str, **loc: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise w.err(f"expected a number of seconds > 0, got {v!r}", key=key, **loc)
    return float(v)


def _str(w: _Where, v: Any, key: str, **loc: Any) -> str:
    if not isinstance(v, str):
        raise w.err(f"expected a string, got {type(v).__name__} {v!r}", key=key, **loc)
    return v


def _strlist(
    w: _Where, v: Any, key: str, allowed: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise w.err(f"expected a list of strings, got {v!r}", key=key)
    if allowed is not None:
        bad = [x for x in v if x not in allowed]
        if bad:
            raise w.err(f"unknown value(s) {bad}; expected from {list(allowed)}", key=key)
    return tuple(v)


def _unknown(w: _Where, table: Mapping[str, Any], allowed: set[str], what: str, **loc: Any) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise w.err(
            f"unknown key {extra[0]!r} in {what}; allowed: {', '.join(sorted(allowed)) or '(none)'}",
            key=extra[0],
            **loc,
        )


def _verdict(w: _Where, v: Any, key: str) -> str:
    v = _str(w, v, key)
    engine_verdicts = [x for x in VERDICTS if x != "error"]
    if v == "error":
        raise w.err(
            "'error' means memcycle or the adapter could not run the scenario and cannot be "
            f"expected; expected one of {', '.join(engine_verdicts)}",
            key=key,
        )
    if v not in VERDICTS:
        raise w.err(f"unknown verdict {v!r}; expected one of {', '.join(engine_verdicts)}", key=key)
    return v


def _scalar_table(w: _Where, v: Any, key: str, **loc: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(v, dict):
        raise w.err(f"expected a table, got {v!r}", key=key, **loc)
    for k2, x in v.items():
        if not isinstance(x, str | int | float | bool):
            raise w.err(f"value of {k2!r} must be a scalar, got {x!r}", key=key, **loc)
    return tuple(sorted(v.items()))


def _engine_spec(w: _Where, v: Any, key: str) -> str:
    """A built-in engine name or a `module:factory` / `file.py:factory` spec; anything else
    is a typo that would silently never match (`[engine.refimp]`)."""
    from .engines.registry import ENGINE_NAMES

    v = _str(w, v, key)
    module, sep, attr = v.partition(":")
    if v in ENGINE_NAMES or (sep and module and attr):
        return v
    raise w.err(
        f"unknown engine {v!r}; expected one of {', '.join(ENGINE_NAMES)} "
        "or a 'package.module:factory' spec",
        key=key,
    )


def _engine_tables(
    w: _Where, v: Any
) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]]:
    """`[engine]`: scalars for every engine, and `[engine.<spec>]` tables for one engine."""
    if not isinstance(v, dict):
        raise w.err(f"expected a table, got {v!r}", key="engine")
    scalars = {k: x for k, x in v.items() if not isinstance(x, dict)}
    scoped = []
    for name, table in sorted((k, x) for k, x in v.items() if isinstance(x, dict)):
        spec = _engine_spec(w, name, f"engine.{name}")
        scoped.append((spec, _scalar_table(w, table, f"engine.{name}")))
    return _scalar_table(w, scalars, "engine"), tuple(scoped)
