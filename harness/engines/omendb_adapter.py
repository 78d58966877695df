"""OmenDB (PyPI `omendb`, an embedded Rust vector database) behind memcycle's Engine protocol.

One adapter for the whole release range (0.0.16 .. 0.0.37): it looks at what the installed
release offers instead of assuming one API, and declares only what is there:

- new stores: `omendb.open(":memory:" | path, dimensions=..., metric=...)`; from the release
  that has `omendb.create`, a new persistent store is `create(path, schema)` (open refuses it);
- reset: OmenDB has no clear, so `clear` drops the store (`close()` where present) and the next
  `open` builds a new one (capability `clear = "recreate"`), persistent files removed;
- ids are str: the harness's int64 ids travel as `str(int)` and come back through `int()`;
- rows: `get_batch` (0.0.24+) or `get_many` (0.0.16) or `get`, None for an id not held;
- maintenance: `compact()` and `flush()` where the release has them; delete by filter through
  `delete_by_filter` (0.0.24+) or `delete_where` (0.0.16);
- reopen (close and open the same store, rows kept): persistent mode only;
- distances: l2 is returned squared by some releases and as the Euclidean norm by others, so a
  two-row probe at build time decides whether to square it (the harness wants squared L2,
  `1 - cos` and `-dot`, see `memcycle.oracle.distances`).

Engine options (`[engine]` table or `--engine-option`): `mode = "memory" | "persistent"`
(persistent: a store in a temporary directory, removed on close), `m`, `ef_construction`,
`ef_search`.
"""

from __future__ import annotations

import gc
import importlib
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .base import Capabilities, EngineBase, EngineConfig, EngineError

OPTIONS = ("mode", "m", "ef_construction", "ef_search")
MODES = ("memory", "persistent")
METRIC_NAMES = {"l2": "l2", "cosine": "cosine", "ip": "ip"}


def _import_omendb() -> ModuleType:
    try:
        return importlib.import_module("omendb")
    except ImportError as exc:
        raise EngineError(
            f"cannot import omendb: {exc} (install the peers extra: pip install 'memcycle[peers]')"
        ) from exc


def _l2_is_squared(mod: ModuleType) -> bool:
    """Whether this release's l2 distance is squared (0.0.37) or the plain norm (0.0.16)."""
    db = mod.open(":memory:", dimensions=2, metric="l2")
    db.set(
        [{"id": "a", "vector": [0.0, 0.0], "metadata": {}}],
    )
    hit = db.search([3.0, 4.0], 1)[0]
    if hasattr(db, "close"):
        db.close()
    d = float(hit["distance"])
    if abs(d - 25.0) < 1e-3:
        return True
    if abs(d - 5.0) < 1e-3:
        return False
    raise EngineError(f"omendb l2 probe: distance {d} for squared 25 / norm 5; unknown convention")


class OmenDBEngine(EngineBase):
    """One OmenDB store; its capabilities follow the installed release."""

    name = "omendb"
    metadata_filter = True
    dimension_change = True
    clear_mode = "recreate"  # no clear in any release: the store is dropped and rebuilt
    metrics = tuple(METRIC_NAMES)
    # measured on 0.0.16 .. 0.0.37: `set` with an id twice in one batch keeps the last row
    duplicate_ids = "last-wins"

    def __init__(self, config: EngineConfig) -> None:
        opts = dict(config.options or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise EngineError(
                f"unknown omendb option(s) {', '.join(unknown)}; expected from {', '.join(OPTIONS)}"
            )
        if config.faults:
            raise EngineError(f"omendb cannot inject refimpl faults {list(config.faults)}")
        self.mode = str(opts.pop("mode", "memory"))
        if self.mode not in MODES:
            raise EngineError(f"omendb option mode={self.mode!r}; expected one of {MODES}")
        for key, value in opts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EngineError(f"omendb option {key}={value!r}; expected a positive integer")
        self.index_opts: dict[str, int] = opts
        self.mod = _import_omendb()
        self.version = str(getattr(self.mod, "__version__", "unknown"))
        self.squared_l2 = _l2_is_squared(self.mod)
        self.db: Any = None
        self.dimension = 0
        self.metric = "l2"
        self.tmp: Path | None = None
        self.path: str | None = None
        self._stores = 0
        probe = self.mod.open(":memory:", dimensions=2)
        self._has = {m: hasattr(probe, m) for m in _OPTIONAL}
        if self._has["close"]:
            probe.close()
        del probe

    # -- capabilities: what this release has --------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        base = super().capabilities
        has = self._has
        return replace(
            base,
            compact=has["compact"],
            flush=has["flush"],
            delete_filter=has["delete_by_filter"] or has["delete_where"],
            reopen=self.mode == "persistent",
            note=(
                f"omendb {self.version} ({self.mode}); clear drops the store and opens a new "
                "one (OmenDB has no clear); l2 distances "
                + ("as returned (squared)" if self.squared_l2 else "squared by the adapter")
            ),
        )

    @property
    def source_roots(self) -> list[str]:
        return [str(Path(self.mod.__file__).resolve().parent)]

    # -- lifecycle ----------------------------------------------------------------------
    def open(self, dimension: int, metric: str = "l2") -> None:
        if metric not in METRIC_NAMES:
            raise EngineError(f"omendb adapter metric {metric!r}; expected one of {self.metrics}")
        if self.db is not None and dimension == self.dimension and metric == self.metric:
            return
        self._drop()
        self.dimension, self.metric = dimension, metric
        if self.mode == "memory":
            self.db = self.mod.open(
                ":memory:", dimensions=dimension, metric=METRIC_NAMES[metric], **self.index_opts
            )
            return
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="memcycle-omendb-"))
        self._stores += 1
        self.path = str(self.tmp / f"store-{self._stores}")
        if hasattr(self.mod, "create"):  # 0.0.37: open() refuses a path with no store
            self.db = self.mod.create(
                self.path, {"metric": METRIC_NAMES[metric], "dense": {"dim": dimension}}
            )
        else:
            self.db = self._open_path()

    def _open_path(self) -> Any:
        return self.mod.open(
            self.path,
            dimensions=self.dimension,
            metric=METRIC_NAMES[self.metric],
            **self.index_opts,
        )

    def _drop(self) -> None:
        """Close the store (where the release can) and forget it; persistent files go too."""
        db, self.db = self.db, None
        if db is not None and self._has["close"]:
            db.close()
        del db
        gc.collect()
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def clear(self) -> None:
        self._drop()

    def close(self) -> None:
        self._drop()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def reopen(self) -> None:
        """Close the persistent store and open the same path again (rows must survive)."""
        if self.db is None:
            return
        if self._has["flush"]:
            self.db.flush()
        db, self.db = self.db, None
        if self._has["close"]:
            db.close()
        del db
        gc.collect()
        self.db = self._open_path()

    # -- rows ---------------------------------------------------------------------------
    def _records(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        return [
            {
                "id": str(int(i)),
                "vector": vectors[j].tolist(),
                "metadata": dict(metadata[j]) if metadata is not None else {},
            }
            for j, i in enumerate(ids.tolist())
        ]

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.db.set(self._records(ids, vectors, metadata))

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        """OmenDB's `set` inserts or replaces, so an upsert is the same call."""
        self.db.set(self._records(ids, vectors, metadata))

    def delete(self, ids: np.ndarray) -> None:
        self.db.delete([str(int(i)) for i in ids.tolist()])

    def delete_filter(self, filter: dict[str, Any]) -> None:
        if self.db is None:
            return
        if self._has["delete_by_filter"]:
            self.db.delete_by_filter(dict(filter))
        else:
            self.db.delete_where(dict(filter))

    def compact(self) -> None:
        if self.db is not None:
            self.db.compact()

    def flush(self) -> None:
        if self.db is not None:
            self.db.flush()

    def count(self) -> int:
        return 0 if self.db is None else len(self.db)

    def get(self, ids: np.ndarray) -> list[np.ndarray | None]:
        keys = [str(int(i)) for i in ids.tolist()]
        if self.db is None:
            return [None] * len(keys)
        if self._has["get_batch"]:
            found = self.db.get_batch(keys)
        elif self._has["get_many"]:
            found = self.db.get_many(keys)
        else:
            found = [self.db.get(k) for k in keys]
        return [None if r is None else np.asarray(r["vector"], np.float32) for r in found]

    # -- search -------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        q = len(queries)
        out_i = np.full((q, k), -1, np.int64)
        out_d = np.full((q, k), np.inf, np.float32)
        if self.db is None or q == 0:
            return out_i, out_d
        if filter:
            answers = [self.db.search(v.tolist(), k, filter=dict(filter)) for v in queries]
        elif self._has["search_batch"]:
            answers = self.db.search_batch(np.ascontiguousarray(queries, np.float32), k)
        else:
            answers = [self.db.search(v.tolist(), k) for v in queries]
        square = self.metric == "l2" and not self.squared_l2
        for row, hits in enumerate(answers):
            for j, hit in enumerate(hits[:k]):
                out_i[row, j] = _harness_id(hit["id"])
                d = float(hit["distance"])
                out_d[row, j] = d * d if square else d
        return out_i, out_d


NOT_OURS = np.iinfo(np.int64).max  # an id the harness never handed out


def _harness_id(key: object) -> int:
    """The int64 id behind an answer's str id; one that is not an integer the harness gave
    (0.0.16 answers 'unknown' after a batch with a repeated id) becomes NOT_OURS, which the
    oracle reports as a never-inserted id: a wrong result of the engine, not an adapter error."""
    try:
        return int(str(key))
    except ValueError:
        return int(NOT_OURS)


_OPTIONAL = (
    "close",
    "compact",
    "flush",
    "delete_by_filter",
    "delete_where",
    "get_batch",
    "get_many",
    "search_batch",
)


def make_omendb(config: EngineConfig) -> OmenDBEngine:
    """Factory for `--engine omendb`."""
    return OmenDBEngine(config)
