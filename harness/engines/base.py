"""The Engine protocol: what the harness needs from a vector-index engine.

An adapter wraps one engine behind these calls. Ids are int64, vectors float32
`(n, dimension)`; the harness generates both (see `harness.datagen`). An
adapter declares what it can do in `capabilities`; a scenario step that needs a
missing capability is reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Engine(Protocol):
    """One engine instance, driven by the child process step by step."""

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
