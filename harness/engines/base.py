"""The Engine protocol: what the harness needs from a vector-index engine.

An adapter wraps one engine behind these calls. Ids are int64, vectors float32
`(n, dimension)`; the harness generates both (see `memcycle.datagen`). An
adapter declares what it can do in `capabilities`; a scenario step that needs a
missing capability is reported as skipped with the reason, never as passed.

`EngineBase` is the easy way to write one: subclass it, implement what the
engine really does, and the optional parts get safe defaults (see its docstring).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Capabilities:
    """What an engine supports; reports show it next to every run."""

    delete: bool = True
    metadata_filter: bool = False
    clear: Literal["native", "recreate"] = "native"  # own reset, or destroy-and-recreate
    dimension_change: bool = True  # may a new cycle use another dimension after clear
    ledger: bool = False  # exposes an allocator ledger (live blocks by label)
    reload: bool = False  # can re-import its module between cycles
    metrics: tuple[str, ...] = ("l2",)
    note: str = ""
    upsert: bool = False  # `upsert(ids, vectors, metadata)` replaces live rows
    reopen: bool = False  # `reopen()` closes and opens the same store, keeping its rows
    compact: bool = False  # `compact()`: an engine's own maintenance call, rows unchanged
    flush: bool = False  # `flush()`: write buffered state out, rows unchanged
    delete_filter: bool = False  # `delete_filter(filter)` removes the rows matching it
    # what one insert batch holding an id twice does: refused whole, or one row per id kept
    duplicate_ids: Literal["refuse", "last-wins", "first-wins"] = "refuse"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Engine(Protocol):
    """One engine instance, driven by the child process step by step.

    Required: `open`, `insert`, `search`, `count`, `clear`, `close`. Optional:
    `delete` (called only when `capabilities.delete`), `ledger` (None = no allocator
    ledger), `reload` (only when `capabilities.reload`) and `get(ids) -> rows`,
    which is not part of the protocol at all: without it `get` steps are skipped.
    `get` returns one row per id: the vector, or None for an id the engine does not
    hold (raising KeyError is accepted too); a live id without a row is a lost row,
    judged `wrong-result`. `upsert`, `reopen`, `compact`, `flush` and `delete_filter`
    are called only when the capability of that name is on.
    """

    name: str
    capabilities: Capabilities

    def open(self, dimension: int, metric: str = "l2") -> None:
        """Create (or re-create) the index for vectors of this dimension."""

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        """Add rows. `ids` int64 `(n,)`, `vectors` float32 `(n, dimension)`."""

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: ids int64 `(q, k)` padded with -1, distances float32 `(q, k)`."""

    def delete(self, ids: np.ndarray) -> None:
        """Remove rows by id (only called when `capabilities.delete`)."""

    def count(self) -> int:
        """Rows currently held."""

    def clear(self) -> None:
        """Drop every row and free what the engine owns; the next `open` may change dimension."""

    def close(self) -> None:
        """Destroy the engine; later calls may re-`open` a fresh one."""

    def ledger(self) -> dict[str, Any] | None:
        """Allocator snapshot (`refimpl.alloc` snapshot format) or None."""

    def reload(self) -> None:
        """Re-import the engine module (only when `capabilities.reload`)."""


class EngineError(Exception):
    """An adapter could not be found or built (bad name, missing package)."""


@dataclass(frozen=True)
class EngineConfig:
    """How to build an adapter: `factory(config) -> Engine`.

    `allocator` and `faults` matter to refimpl only; a peer adapter records
    `allocator="native"` and refuses faults it cannot inject (EngineError).
    `options` carries the scenario's `[engine]` table (e.g. buffer_size, M).
    """

    allocator: str = "numpy"
    faults: tuple[str, ...] = ()
    options: dict[str, Any] | None = None


# capabilities that follow from an overridden method
_DERIVED = ("delete", "ledger", "reload", "upsert", "reopen", "compact", "flush", "delete_filter")


class EngineBase:
    """Defaults for the optional parts of `Engine`, so an adapter is only what its engine does.

    Implement `open`, `insert`, `search`, `count`, and `close` or `clear` (or both).
    Everything else has a default, and the capabilities follow from what you override,
    so a declared capability can never point at a method that is not there:

    - `delete`: on only when `delete` is overridden (otherwise delete steps are skipped).
    - `reload`: on only when `reload` is overridden; the default raises.
    - `ledger`: on only when `ledger` is overridden; the default returns None.
    - `get`: EngineBase has none; define `get(ids) -> rows` (float32 `(n, dimension)`,
      or a list with None for an id not held) to have `get` steps checked, leave it out
      to have them skipped.
    - `clear`: the default calls `close()` and the next `open` builds a new index
      (capability `clear = "recreate"`); override it for an in-place reset
      (`"native"`, or set `clear_mode = "recreate"` when your clear drops the index).
    - `close`: the default calls your `clear()`; either way it must be safe to call twice.

    Declare the rest as class attributes: `name` (default: the class name),
    `metadata_filter`, `dimension_change`, `metrics`, `note`, `duplicate_ids`
    ("refuse", "last-wins" or "first-wins": what one insert batch holding an id twice
    does); `upsert`, `reopen`, `compact`, `flush` and `delete_filter` are on only when the
    method of that name is overridden, like `delete`; `allocator` is
    "native" (what the run records instead of refimpl's allocators) and
    `source_roots` lists files or folders whose frames count as engine code in
    memray's attribution (your native library, for instance). Setting
    `capabilities = Capabilities(...)` yourself is allowed, but one that claims
    delete, reload or ledger without the method is refused when the adapter is built.
    """

    name: str = "engine"  # an adapter that names none gets its class name
    allocator: str = "native"
    metadata_filter: bool = False
    dimension_change: bool = True
    metrics: tuple[str, ...] = ("l2",)
    note: str = ""
    clear_mode: Literal["native", "recreate"] = "native"  # used when clear is overridden
    duplicate_ids: Literal["refuse", "last-wins", "first-wins"] = "refuse"
    source_roots: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name == EngineBase.name:  # neither it nor a parent adapter named it
            cls.name = cls.__name__

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        missing = [m for m in ("open", "insert", "search", "count") if not cls._overrides(m)]
        if not (cls._overrides("clear") or cls._overrides("close")):
            missing.append("clear or close")
        if missing:
            raise TypeError(
                f"{cls.__name__} must implement {', '.join(missing)} "
                "(EngineBase has no default for them)"
            )
        declared = getattr(cls, "capabilities", None)  # the property, unless a class set its own
        if isinstance(declared, Capabilities):
            claimed = [c for c in _DERIVED if getattr(declared, c) and not cls._overrides(c)]
            if claimed:
                raise TypeError(
                    f"{cls.__name__}.capabilities claims {', '.join(claimed)} but the class "
                    f"does not implement {', '.join(f'{c}()' for c in claimed)}"
                )
        return super().__new__(cls)

    @classmethod
    def _overrides(cls, method: str) -> bool:
        """Whether a subclass defines `method` (EngineBase's own default does not count)."""
        return getattr(cls, method, None) is not getattr(EngineBase, method, None)

    @property
    def capabilities(self) -> Capabilities:
        """Derived from the class: see the class docstring for the rule."""
        cls = type(self)
        return Capabilities(
            delete=cls._overrides("delete"),
            metadata_filter=self.metadata_filter,
            clear=self.clear_mode if cls._overrides("clear") else "recreate",
            dimension_change=self.dimension_change,
            ledger=cls._overrides("ledger"),
            reload=cls._overrides("reload"),
            metrics=tuple(self.metrics),
            note=self.note,
            upsert=cls._overrides("upsert"),
            reopen=cls._overrides("reopen"),
            compact=cls._overrides("compact"),
            flush=cls._overrides("flush"),
            delete_filter=cls._overrides("delete_filter"),
            duplicate_ids=self.duplicate_ids,
        )

    # -- required: no defaults --------------------------------------------------------
    def open(self, dimension: int, metric: str = "l2") -> None:
        raise NotImplementedError

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        raise NotImplementedError

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    # -- optional: defaults -----------------------------------------------------------
    def clear(self) -> None:
        """Default: destroy the index (`close`); the harness re-`open`s before the next insert."""
        self.close()

    def close(self) -> None:
        """Default: `clear()` (only reached when the subclass implements clear)."""
        self.clear()

    def delete(self, ids: np.ndarray) -> None:
        """Not supported unless overridden (capability off, so the harness never calls it)."""
        raise NotImplementedError(f"{self.name} cannot delete (capabilities.delete is off)")

    def ledger(self) -> dict[str, Any] | None:
        """No allocator ledger unless overridden."""
        return None

    def reload(self) -> None:
        """Not supported unless overridden (capability off, so the harness never calls it)."""
        raise NotImplementedError(f"{self.name} cannot reload (capabilities.reload is off)")

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        """Not supported unless overridden: replace live rows (and add new ones)."""
        raise NotImplementedError(f"{self.name} cannot upsert (capabilities.upsert is off)")

    def reopen(self) -> None:
        """Not supported unless overridden: close and open the same store, rows kept."""
        raise NotImplementedError(f"{self.name} cannot reopen (capabilities.reopen is off)")

    def compact(self) -> None:
        """Not supported unless overridden: the engine's own compaction."""
        raise NotImplementedError(f"{self.name} cannot compact (capabilities.compact is off)")

    def flush(self) -> None:
        """Not supported unless overridden: write buffered state out."""
        raise NotImplementedError(f"{self.name} cannot flush (capabilities.flush is off)")

    def delete_filter(self, filter: dict[str, Any]) -> None:
        """Not supported unless overridden: delete every row whose metadata matches."""
        raise NotImplementedError(
            f"{self.name} cannot delete by filter (capabilities.delete_filter is off)"
        )


def parse_engine_options(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE engine options from a command line (`--engine-option`,
    `--memcycle-engine-option`, `memcycle fuzz --option`); a VALUE that reads as JSON (16, 1.5,
    true, "x") is that, anything else the string. A malformed item raises ValueError(item)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(item)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out
