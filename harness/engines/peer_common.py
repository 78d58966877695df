"""What the peer adapters (hnswlib, faiss, usearch) share: option checks, result shapes and
`NativePeer`, the lifecycle frame of an engine that owns its memory natively."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Self

import numpy as np

from .base import Capabilities, EngineConfig, EngineError

# refimpl's HNSW defaults, so every engine builds the same graph shape; one thread keeps the
# peers' graphs deterministic and their workers off the other jobs' cores
PEER_DEFAULTS: dict[str, int] = {
    "M": 16,
    "ef_construction": 200,
    "ef_search": 64,
    "num_threads": 1,
    "capacity": 1024,
    "seed": 100,
}


def peer_options(name: str, config: EngineConfig, known: tuple[str, ...]) -> dict[str, Any]:
    """Validate a peer's config: no faults, native memory, ints for known options.

    Options a peer does not use (refimpl's buffer_size, ...) are returned under
    "ignored" so the adapter can say so in its capabilities note (`ignored_note`).
    Known options not given take the peers' shared defaults (`PEER_DEFAULTS`).
    """
    if config.faults:
        raise EngineError(
            f"{name} cannot inject refimpl faults ({', '.join(config.faults)}); "
            "faults apply to --engine refimpl only"
        )
    if config.allocator not in ("numpy", "native"):
        raise EngineError(
            f"{name} allocates with its own native allocator; allocator {config.allocator!r} "
            "applies to refimpl only"
        )
    opts = dict(config.options or {})
    out: dict[str, Any] = {k: v for k, v in PEER_DEFAULTS.items() if k in known}
    out["ignored"] = sorted(k for k in opts if k not in known)
    for key in known:
        if key in opts:
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise EngineError(f"{name} option {key}={value!r}: expected a positive integer")
            out[key] = value
    return out


def matches(meta: dict[str, Any] | None, flt: dict[str, Any]) -> bool:
    """Equality filter: every key of `flt` present in `meta` with the same value."""
    return meta is not None and all(k in meta and meta[k] == v for k, v in flt.items())


def empty_result(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A `(q, k)` result with no hits: ids -1, distances +inf."""
    return np.full((q, k), -1, dtype=np.int64), np.full((q, k), np.inf, dtype=np.float32)


def ignored_note(opts: dict[str, Any]) -> str:
    """The capabilities-note suffix naming the scenario options this peer does not use."""
    return f"; ignored options: {', '.join(opts['ignored'])}" if opts["ignored"] else ""


class NativePeer:
    """The frame every native peer shares, so each adapter writes only what its library does.

    A subclass names its library (`name`, `package`: the import name), the metrics it takes,
    the options it reads, and builds its `Capabilities` in `describe`. What is the same for
    all three lives here: validated options, one index per (dimension, metric) kept until
    either changes, no allocator ledger, no re-import, the engine's source root for memray's
    attribution, and a factory that turns a missing package into an `EngineError` naming the
    extra to install.
    """

    name: str = "peer"
    package: str = ""
    allocator = "native"
    metrics: tuple[str, ...] = ("l2", "ip", "cosine")
    known_options: tuple[str, ...] = ("M", "ef_construction", "ef_search", "num_threads")

    def __init__(self, config: EngineConfig) -> None:
        opts = peer_options(self.name, config, self.known_options)
        self.M: int = opts["M"]
        self.ef_construction: int = opts["ef_construction"]
        self.ef_search: int = opts["ef_search"]
        # one thread by default: deterministic graphs, and native worker pools (OpenMP's
        # spinning threads) do not fight other processes for shared cores
        self.num_threads: int = opts["num_threads"]
        self.options = opts
        self.capabilities = self.describe(ignored_note(opts))
        self._index: Any = None
        self._dimension: int | None = None
        self._metric = "l2"

    def describe(self, ignored: str) -> Capabilities:
        """The adapter's capabilities; `ignored` is the note suffix for unused options."""
        raise NotImplementedError

    # -- lifecycle frame ---------------------------------------------------------------------
    def _is_open_for(self, dimension: int, metric: str) -> bool:
        """Whether the current index serves (dimension, metric); an unknown metric is refused."""
        if metric not in self.metrics:
            raise ValueError(
                f"{self.name}: unknown metric {metric!r}; expected one of {self.metrics}"
            )
        return self._index is not None and (dimension, metric) == (self._dimension, self._metric)

    def _open_for_insert(self, dimension: int) -> None:
        """Open on the first insert, or on the first after clear with a new dimension (as refimpl)."""
        if self._index is None or (dimension != self._dimension and self.count() == 0):
            self.open(dimension, self._metric)

    def open(self, dimension: int, metric: str = "l2") -> None:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def _drop(self) -> None:
        self._index = None
        self._dimension = None

    def close(self) -> None:
        self._drop()

    # -- introspection -----------------------------------------------------------------------
    def ledger(self) -> dict[str, Any] | None:
        return None

    @property
    def source_roots(self) -> list[str]:
        """The package's folder (Python wrapper and native library): memray's engine frames."""
        module = importlib.import_module(self.package)
        return [str(Path(module.__file__ or "").parent)]

    def reload(self) -> None:
        raise NotImplementedError(f"{self.name} is a native extension; it cannot be re-imported")

    @classmethod
    def factory(cls, config: EngineConfig) -> Self:
        """Build the adapter, or say which package is missing and which extra brings it."""
        try:
            importlib.import_module(cls.package)
        except ImportError as exc:
            raise EngineError(
                f"{cls.name} is not installed ({exc}); pip install 'memcycle[peers]'"
            ) from exc
        return cls(config)
