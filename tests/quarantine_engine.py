"""A pure-Python engine over refimpl's checked allocator, for the quarantine reports.

Loaded by the child as `tests.quarantine_engine:<factory>`. Every insert allocates
a block of rows through `CheckedAllocator`; `clear` frees them, so the blocks go
to the allocator's poisoned quarantine (still allocated, as memray sees them) and
the ledger reports them as `cached_bytes`. No Numba: it starts in a second.

- `make_clean`: frees every block on clear (the quarantine grows, nothing leaks).
- `make_leaky`: as clean, but each clear forgets one small `leaked.rows` block
  (`leak_rows` rows, default 64) without freeing it: a real leak, smaller than
  the quarantine around it.
- `make_claims_cache`: no allocator; every clear keeps 100 KiB in a plain list
  (a real leak) while its ledger claims that much as `cached_bytes`: a cache
  memray cannot find among an allocator's stacks, so it must not be subtracted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from memcycle.engines.base import Capabilities, EngineConfig
from memcycle.refimpl import alloc as _alloc


class QuarantineEngine:
    name = "quarantine"
    capabilities = Capabilities(delete=False, ledger=True)

    def __init__(self, config: EngineConfig, leak: bool = False) -> None:
        self.options: dict[str, Any] = dict(config.options or {})
        self.allocator = _alloc.CheckedAllocator()
        self.blocks: list[_alloc.Block] = []
        self.rows = 0
        self.dimension = 0
        self.leak = leak
        self.forgotten: list[_alloc.Block] = []  # never freed: the leak

    @property
    def source_roots(self) -> list[str]:
        # the allocator is part of the engine: its frames count as engine code
        return [str(Path(_alloc.__file__).resolve().parent), str(Path(__file__).resolve())]

    def open(self, dimension: int, metric: str = "l2") -> None:
        self.dimension = dimension

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        block = self.allocator.alloc("engine.rows", vectors.shape, np.float32)
        block.array[:] = vectors
        self.blocks.append(block)
        self.rows += len(ids)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), np.inf)

    def count(self) -> int:
        return self.rows

    def clear(self) -> None:
        if self.leak:
            n = int(self.options.get("leak_rows", 64))
            self.forgotten.append(self.allocator.alloc("leaked.rows", (n, 4), np.float32))
        for block in self.blocks:
            self.allocator.free(block)
        self.blocks = []
        self.rows = 0

    def close(self) -> None:
        self.clear()

    def ledger(self) -> dict[str, Any]:
        return self.allocator.snapshot()


def make_clean(config: EngineConfig) -> QuarantineEngine:
    return QuarantineEngine(config)


def make_leaky(config: EngineConfig) -> QuarantineEngine:
    return QuarantineEngine(config, leak=True)


class ClaimsCache(QuarantineEngine):
    """Leaks plain NumPy arrays and calls them a cache in its ledger (no allocator)."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.held: list[np.ndarray] = []
        self.kept: list[np.ndarray] = []

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.held.append(vectors.astype(np.float32))
        self.rows += len(ids)

    def clear(self) -> None:
        self.kept.append(np.ones(100 * 1024, np.uint8))
        self.held = []
        self.rows = 0

    def ledger(self) -> dict[str, Any]:
        cached = 100 * 1024 * len(self.kept)
        return {"live_blocks": 0, "live_bytes": 0, "by_label": {}, "cached_bytes": cached}


def make_claims_cache(config: EngineConfig) -> ClaimsCache:
    return ClaimsCache(config)
