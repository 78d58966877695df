"""What the peer adapters (hnswlib, faiss, usearch) share: option checks and result shapes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import EngineConfig, EngineError

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
