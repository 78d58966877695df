"""Third-party-like engines for the bundled-suite tests (`tests/test_bundled_suite.py`).

All wrap the example adapter (`memcycle.examples.my_engine`, an exact brute-force index) and,
like refimpl, refuse any factory option they do not know: a refimpl-only option that reached
them would be a setup error, so a clean run proves it did not.

- `make_strict`: every capability the bundled suite asks for, reload included (it re-imports
  the example module, as a native module would be unloaded and loaded again).
- `make_fixed_dimension`: `dimension_change = False`.
- `make_l2_only`: `metrics = ("l2",)`.
- `make_no_delete`: `delete = False` (its delete steps are skipped).
- `make_bad_capabilities`: declares `clear = "sometimes"` (an adapter error).
"""

from __future__ import annotations

import dataclasses
import importlib

from memcycle.engines.base import Capabilities, EngineConfig, EngineError
from memcycle.examples import my_engine

ALL = Capabilities(
    delete=True,
    metadata_filter=True,
    clear="recreate",
    dimension_change=True,
    reload=True,
    metrics=("l2", "ip", "cosine"),
    note="test engine over the example brute-force index",
)


class Strict(my_engine.MyEngine):
    name = "strict"
    capabilities = ALL

    def __init__(self, config: EngineConfig) -> None:
        if config.options:
            raise EngineError(f"strict takes no options, got {sorted(config.options)}")
        super().__init__(config)

    def reload(self) -> None:
        self.close()
        importlib.reload(my_engine)


def _with(name: str, **caps: object) -> type[Strict]:
    return type(name, (Strict,), {"name": name, "capabilities": dataclasses.replace(ALL, **caps)})


FixedDimension = _with("fixed-dimension", dimension_change=False)
L2Only = _with("l2-only", metrics=("l2",))
NoDelete = _with("no-delete", delete=False)
BadCapabilities = _with("bad-caps", clear="sometimes")


def make_strict(config: EngineConfig) -> Strict:
    return Strict(config)


def make_fixed_dimension(config: EngineConfig) -> Strict:
    return FixedDimension(config)


def make_l2_only(config: EngineConfig) -> Strict:
    return L2Only(config)


def make_no_delete(config: EngineConfig) -> Strict:
    return NoDelete(config)


def make_bad_capabilities(config: EngineConfig) -> Strict:
    return BadCapabilities(config)
