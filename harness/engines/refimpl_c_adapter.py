"""Adapters for refimpl's C twin (`memcycle.refimpl.native`): `refimpl-c` drives one
`rc_db *` (init / add_batch / search / clear / destroy), `refimpl-c-global` the singleton
functions the way the reference note's module was driven (`rc_get_global_db`,
`rc_add_vector_batch`, `rc_clear_database`).

The library variant follows the sanitizer mode: MEMCYCLE_SANITIZER=asan|ubsan loads the
build with that sanitizer, unset the plain build (`-g -O1`); under valgrind
(MEMCYCLE_VALGRIND=1, no sanitizer) the plain build, since memcheck instruments it itself
and an ASan build cannot run under valgrind. Faults come from
`EngineConfig.faults`, checked against the twin's own catalogue. The twin allocates with
malloc (allocator "native") and keeps no ledger the harness reads: a leak shows the way it
does for any native engine, in memray's engine-attributed bytes.

For a plain build the adapter pins glibc's mmap threshold at its default (128 KiB), as
memcycle does for refimpl's raw allocator (`isolation.RAW_ALLOCATOR_ENV`): unpinned, the
threshold rises after the first large free (numpy frees large arrays all the time), large
blocks move onto the heap, and a stale read of a freed segment returns recycled memory
instead of faulting. Pinned, every large block is unmapped on free.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from .base import Capabilities, EngineConfig, EngineError

SIZE_OPTIONS = ("buffer_size", "segment_threshold", "segment_size")
# refimpl's graph options: scenarios written for refimpl carry them; the twin has no graph
IGNORED_OPTIONS = ("M", "ef_construction", "ef_search", "num_threads")
METRICS = ("l2", "ip", "cosine")
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


def _pin_mmap_threshold() -> None:
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to pin
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def _sizes(config: EngineConfig) -> tuple[dict[str, int], list[str]]:
    opts = dict(config.options or {})
    unknown = sorted(set(opts) - set(SIZE_OPTIONS) - set(IGNORED_OPTIONS))
    if unknown:
        raise EngineError(
            f"unknown refimpl-c option(s) {', '.join(unknown)} in [engine]; "
            f"expected from {', '.join(SIZE_OPTIONS)} (ignored: {', '.join(IGNORED_OPTIONS)})"
        )
    sizes: dict[str, int] = {}
    for key in SIZE_OPTIONS:
        if key in opts:
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise EngineError(f"refimpl-c option {key}={v!r}: expected a positive integer")
            sizes[key] = v
    return sizes, sorted(k for k in opts if k in IGNORED_OPTIONS)


def _distances(metric: str, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The twin's distances in NumPy (l2 squared, -dot, 1 - cosine) for the filtered scan."""
    q = queries.astype(np.float32)
    if metric == "l2":
        return ((q[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
    dot = q @ rows.T
    if metric == "ip":
        return -dot
    denom = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(rows, axis=1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 1.0 - dot / denom, 1.0)


class _TwinBase:
    name = "refimpl-c"
    allocator = "native"
    clear_kind: Any = "native"  # Capabilities.clear: own reset, or destroy-and-recreate

    def __init__(self, config: EngineConfig) -> None:
        from memcycle.refimpl.native import builder, twin
        from memcycle.refimpl.native.faults import FAULT_NAMES

        if config.allocator not in ("numpy", "native"):
            raise EngineError(
                f"{self.name} allocates with malloc; allocator {config.allocator!r} "
                "applies to refimpl only"
            )
        unknown = [f for f in config.faults if f not in FAULT_NAMES]
        if unknown:
            raise EngineError(
                f"unknown refimpl-c fault(s) {', '.join(map(repr, unknown))}; "
                f"expected names from: {', '.join(FAULT_NAMES)}"
            )
        self.sizes, ignored = _sizes(config)
        try:
            self.variant = builder.variant_from_env()
            self.lib = twin.load_library(self.variant)
        except builder.NativeBuildError as exc:
            raise EngineError(str(exc)) from None
        if self.variant == "plain":
            _pin_mmap_threshold()
        self.twin = twin
        twin.set_faults(self.lib, tuple(config.faults))
        self.faults = tuple(config.faults)
        self.metric = "l2"
        self.dimension: int | None = None
        self.meta: dict[int, dict[str, Any]] = {}
        note = f"C twin of refimpl ({self.variant} build) through ctypes; exact search"
        if ignored:
            note += f"; ignored options: {', '.join(ignored)}"
        self.capabilities = Capabilities(
            delete=True,
            metadata_filter=True,
            clear=self.clear_kind,
            dimension_change=True,
            ledger=False,
            reload=False,
            metrics=METRICS,
            note=note + "; metadata filters are applied by the adapter (exact scan of matches)",
        )

    @property
    def source_roots(self) -> list[str]:
        """The twin's package, this adapter, and the loaded library: the .so lives in the
        build cache (`builder.cache_dir()`), outside the package, and is what gdb, ASan and
        valgrind frames name as their object."""
        from memcycle.refimpl import native

        roots = [str(Path(native.__file__).resolve().parent), str(Path(__file__).resolve())]
        so = getattr(self.lib, "_name", None)
        if so:
            roots.append(str(Path(so).resolve()))
        return roots

    def ledger(self) -> dict[str, Any] | None:
        return None

    # the twin stores no metadata: the adapter keeps it and filters an exact scan
    def _remember(self, ids: np.ndarray, metadata: list[dict[str, Any]] | None) -> None:
        if metadata is not None:
            for i, md in zip(ids.tolist(), metadata, strict=True):
                if md is not None:
                    self.meta[int(i)] = dict(md)

    def _filtered(
        self, queries: np.ndarray, k: int, flt: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array(
            [i for i, md in self.meta.items() if all(md.get(a) == v for a, v in flt.items())],
            np.int64,
        )
        out_i = np.full((len(queries), k), -1, np.int64)
        out_d = np.full((len(queries), k), np.inf, np.float32)
        if ids.size == 0:
            return out_i, out_d
        rows = self.get(ids)
        d = _distances(self.metric, queries, rows)
        order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
        n = order.shape[1]
        out_i[:, :n] = ids[order]
        out_d[:, :n] = np.take_along_axis(d, order, axis=1)
        return out_i, out_d

    def _forget(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            self.meta.pop(int(i), None)


class RefimplCEngine(_TwinBase):
    """One `rc_db *`; `clear()` is `rc_clear` (every buffer freed, dimension may change)."""

    name = "refimpl-c"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.db: Any = None

    def open(self, dimension: int, metric: str = "l2") -> None:
        if self.db is None:
            self.db = self.twin.NativeDB(self.lib, **self.sizes)
        self.db.init(dimension, metric)
        self.metric, self.dimension = metric, dimension

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.db.add_batch(ids, vectors)
        self._remember(ids, metadata)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if filter:
            return self._filtered(queries, k, filter)
        if self.db is None:
            return (
                np.full((len(queries), k), -1, np.int64),
                np.full((len(queries), k), np.inf, np.float32),
            )
        return self.db.search(queries, k)

    def get(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.db.get(int(i)) for i in ids])

    def delete(self, ids: np.ndarray) -> None:
        self.db.delete(ids)
        self._forget(ids)

    def count(self) -> int:
        return 0 if self.db is None else self.db.count()

    def clear(self) -> None:
        if self.db is not None:
            self.db.clear()
        self.meta.clear()

    def close(self) -> None:
        if self.db is not None:
            db, self.db = self.db, None
            db.destroy()
        self.meta.clear()

    def reload(self) -> None:
        raise EngineError("refimpl-c cannot reload its library")


class RefimplCGlobalEngine(_TwinBase):
    """The twin's singleton: `clear()` is `rc_clear_database()` (destroy; the next
    `rc_get_global_db()` builds a fresh database), the reference note's fix."""

    name = "refimpl-c-global"
    clear_kind = "recreate"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.opened = False

    def _db(self) -> int:
        return self.twin.get_global_db(self.lib, **self.sizes)

    def open(self, dimension: int, metric: str = "l2") -> None:
        self._db()  # the first rc_add_vector_batch initializes it
        self.metric, self.dimension = metric, dimension
        self.opened = True

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.twin.add_vector_batch(self.lib, ids, vectors, self.metric)
        self._remember(ids, metadata)

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if filter:
            return self._filtered(queries, k, filter)
        return self.twin.search_into(self.lib, self._db(), queries, k, queries.shape[1])

    def get(self, ids: np.ndarray) -> np.ndarray:
        db = self._db()
        out = np.empty((len(ids), int(self.lib.rc_dimension(db))), np.float32)
        for row, i in enumerate(ids.tolist()):
            rc = self.lib.rc_get(db, int(i), out[row].ctypes.data)
            if rc < 0:
                raise self.twin.NativeError(rc, self.lib.rc_last_error().decode())
        return out

    def delete(self, ids: np.ndarray) -> None:
        i = np.ascontiguousarray(ids, np.int64)
        self.lib.rc_delete(self._db(), i.ctypes.data, len(i))
        self._forget(ids)

    def count(self) -> int:
        return int(self.lib.rc_count(self._db())) if self.opened else 0

    def clear(self) -> None:
        self.twin.clear_database(self.lib)
        self.opened = False
        self.meta.clear()

    def close(self) -> None:
        self.twin.cleanup_global_db(self.lib)
        self.opened = False
        self.meta.clear()

    def reload(self) -> None:
        raise EngineError("refimpl-c-global cannot reload its library")


def make_refimpl_c(config: EngineConfig) -> RefimplCEngine:
    """Factory for `--engine refimpl-c`."""
    return RefimplCEngine(config)


def make_refimpl_c_global(config: EngineConfig) -> RefimplCGlobalEngine:
    """Factory for `--engine refimpl-c-global`."""
    return RefimplCGlobalEngine(config)
