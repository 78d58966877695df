"""Small engines with known behaviour, for testing the harness itself.

Loaded by the child as `tests.engines_for_tests:<factory>` (the repo root is on
the child's sys.path). Options come from the scenario's `[engine]` table:

- `make_bruteforce`: exact NumPy search; correct, frees everything on clear.
- `make_segfault`: as brute force, but the first insert after `crash_after_clears`
  clears reads address 0 (`ctypes.string_at(0)`) -> SIGSEGV.
- `make_leaky`: as brute force, but every clear keeps `leak_bytes` (default 100 KiB).
- `make_raising`: raises RuntimeError on the insert after `raise_after_clears` clears.
- `make_stale`: clear() forgets the count but keeps the rows, so search after clear
  returns stale ids.
- `make_sleepy`: every insert sleeps `sleep_seconds` (for timeouts).
- `make_noisy`: writes to stdout on every call (the event stream must not care).
- `make_factory_error`: the factory raises EngineError (a setup problem: verdict `error`).
- `make_wrong_library_version`: search calls its "library" with a keyword argument the
  library does not take (an adapter written for another version: `error` on the first search).
- `make_none_after_clear`: clear drops the index object, so the search after a clear raises
  AttributeError on None (a lifecycle bug: `lifecycle-error`).
- `make_step_sleeper`: every insert sleeps `sleep_seconds` (default 0): a run to interrupt.
- `make_spawner`: starts a stdout-holding grandchild and a detached one (pids to `pid_file`).
- `make_huge_error`: the first insert raises with a `message_bytes`-long message.
- `make_native_subject`: brute force plus a C library with switchable memory bugs
  (tests/native/subject.c; build it with `build_native_subject`).
- `make_many_violations`: brute force with a ledger whose allocator records
  `violations_per_clear` (default 7) double frees, each of its own block, at every clear.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from memcycle.engines.base import Capabilities, EngineConfig, EngineError

_KEPT: list[np.ndarray] = []  # what the leaky engine never gives back


class BruteForce:
    name = "bruteforce"

    def __init__(self, config: EngineConfig) -> None:
        self.options: dict[str, Any] = dict(config.options or {})
        self.capabilities = Capabilities(
            delete=True, metadata_filter=True, metrics=("l2", "ip", "cosine")
        )
        self.clears = 0
        self.ids = np.empty(0, np.int64)
        self.vecs: np.ndarray | None = None
        self.meta: list[dict[str, Any] | None] = []
        self.metric = "l2"

    def open(self, dimension: int, metric: str = "l2") -> None:
        self.metric = metric
        if self.vecs is None:
            self.vecs = np.empty((0, dimension), np.float32)

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        assert self.vecs is not None
        self.ids = np.concatenate([self.ids, ids.astype(np.int64)])
        self.vecs = np.concatenate([self.vecs, vectors.astype(np.float32)])
        self.meta.extend(metadata if metadata is not None else [None] * len(ids))

    def _dist(self, queries: np.ndarray) -> np.ndarray:
        assert self.vecs is not None
        q = queries.astype(np.float64)
        x = self.vecs.astype(np.float64)
        if self.metric == "ip":
            return -(q @ x.T)
        if self.metric == "cosine":
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            return 1 - q @ x.T
        return (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        out_i = np.full((len(queries), k), -1, np.int64)
        out_d = np.full((len(queries), k), np.inf, np.float32)
        if self.vecs is None or len(self.ids) == 0:
            return out_i, out_d
        d = self._dist(queries)
        if filter:
            keep = np.array(
                [m is not None and all(m.get(a) == b for a, b in filter.items()) for m in self.meta]
            )
            d[:, ~keep] = np.inf
        order = np.argsort(d, axis=1)[:, :k]
        for qi in range(len(queries)):
            for j, col in enumerate(order[qi]):
                if np.isfinite(d[qi, col]):
                    out_i[qi, j] = self.ids[col]
                    out_d[qi, j] = d[qi, col]
        return out_i, out_d

    def get(self, ids: np.ndarray) -> np.ndarray:
        assert self.vecs is not None
        pos = {int(v): i for i, v in enumerate(self.ids)}
        return self.vecs[[pos[int(i)] for i in ids]]

    def delete(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.ids, ids)
        assert self.vecs is not None
        self.ids, self.vecs = self.ids[keep], self.vecs[keep]
        self.meta = [m for m, k in zip(self.meta, keep, strict=True) if k]

    def count(self) -> int:
        return len(self.ids)

    def clear(self) -> None:
        self.clears += 1
        self.ids = np.empty(0, np.int64)
        self.vecs = None
        self.meta = []

    def close(self) -> None:
        self.clear()

    def ledger(self) -> dict[str, Any] | None:
        return None

    def reload(self) -> None:
        raise NotImplementedError


class Segfaulting(BruteForce):
    name = "segfault"

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        if self.clears >= int(self.options.get("crash_after_clears", 1)):
            ctypes.string_at(0)  # SIGSEGV, as a dangling native pointer would
        super().insert(ids, vectors, metadata)


class Leaky(BruteForce):
    name = "leaky"

    def clear(self) -> None:
        _KEPT.append(np.ones(int(self.options.get("leak_bytes", 100 * 1024)), np.uint8))
        super().clear()


class Raising(BruteForce):
    name = "raising"

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        if self.clears >= int(self.options.get("raise_after_clears", 1)):
            raise RuntimeError("engine exploded on purpose")
        super().insert(ids, vectors, metadata)


class Stale(BruteForce):
    name = "stale"

    def clear(self) -> None:
        self.clears += 1  # keeps the rows: search after clear returns stale ids

    def count(self) -> int:
        return 0 if self.clears else len(self.ids)


class Sleepy(BruteForce):
    name = "sleepy"

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        time.sleep(float(self.options.get("sleep_seconds", 60)))
        super().insert(ids, vectors, metadata)


class Noisy(BruteForce):
    name = "noisy"

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        print('{"kind": "step", "cycle": 99} not an event', flush=True)
        sys.stdout.write("x" * 100_000 + "\n")
        super().insert(ids, vectors, metadata)


class ImportingLeaky(Leaky):
    """Leaks like Leaky, and imports a module that allocates 4 MiB at its first open."""

    name = "importing-leaky"

    def open(self, dimension: int, metric: str = "l2") -> None:
        import tests.ballast_module  # noqa: F401  (its import allocates; that is the point)

        super().open(dimension, metric)


class NativeNoDelete(BruteForce):
    """Like a peer engine: its own allocator ("native") and no delete."""

    name = "nodelete"
    allocator = "native"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.capabilities = Capabilities(delete=False, metrics=("l2", "ip", "cosine"))


def make_bruteforce(config: EngineConfig) -> BruteForce:
    return BruteForce(config)


def make_segfault(config: EngineConfig) -> Segfaulting:
    return Segfaulting(config)


def make_leaky(config: EngineConfig) -> Leaky:
    return Leaky(config)


def make_raising(config: EngineConfig) -> Raising:
    return Raising(config)


def make_stale(config: EngineConfig) -> Stale:
    return Stale(config)


def make_sleepy(config: EngineConfig) -> Sleepy:
    return Sleepy(config)


def make_noisy(config: EngineConfig) -> Noisy:
    return Noisy(config)


def make_native_nodelete(config: EngineConfig) -> NativeNoDelete:
    return NativeNoDelete(config)


def make_importing_leaky(config: EngineConfig) -> ImportingLeaky:
    return ImportingLeaky(config)


def make_factory_error(config: EngineConfig) -> BruteForce:
    raise EngineError("license server unreachable: cannot build the engine")


def _knn_query(index: BruteForce, queries: np.ndarray, k: int = 1) -> tuple[Any, Any]:
    """The 'library' call as this library version spells it (no `num_threads`)."""
    return BruteForce.search(index, queries, k)


class WrongLibraryVersion(BruteForce):
    name = "wrong-version"

    def search(self, queries, k, filter=None):  # type: ignore[no-untyped-def]
        return _knn_query(self, queries, k=k, num_threads=1)  # type: ignore[call-arg]


class NoneAfterClear(BruteForce):
    name = "none-after-clear"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.index: NoneAfterClear | None = self

    def search(self, queries, k, filter=None):  # type: ignore[no-untyped-def]
        return self.index.exact_search(queries, k)  # type: ignore[union-attr]

    def exact_search(self, queries: np.ndarray, k: int) -> tuple[Any, Any]:
        return BruteForce.search(self, queries, k)

    def clear(self) -> None:
        super().clear()
        self.index = None  # the handle is gone: the next search dereferences None


def make_wrong_library_version(config: EngineConfig) -> WrongLibraryVersion:
    return WrongLibraryVersion(config)


def make_none_after_clear(config: EngineConfig) -> NoneAfterClear:
    return NoneAfterClear(config)


# -- for tests/test_interrupts.py: engines that outstay, spawn or shout ------------------------
class StepSleeper(BruteForce):
    """Sleeps `sleep_seconds` (default 0) in every insert: a run to interrupt mid-step.
    With `mark_file`, creates that file as it starts sleeping (so a test knows it is there)."""

    name = "step-sleeper"

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        if self.options.get("mark_file"):
            open(str(self.options["mark_file"]), "a").close()
        time.sleep(float(self.options.get("sleep_seconds", 0)))
        super().insert(ids, vectors, metadata)


class Spawner(BruteForce):
    """At open, starts a grandchild that holds the child's stdout and one detached into its own
    session (as a daemon would), both sleeping for `sleep_seconds`; their pids go to `pid_file`."""

    name = "spawner"

    def open(self, dimension: int, metric: str = "l2") -> None:
        import subprocess

        if not getattr(self, "_spawned", False):
            self._spawned = True
            secs = str(self.options.get("sleep_seconds", 300))
            cmd = [sys.executable, "-c", f"import time; time.sleep({secs})"]
            holder = subprocess.Popen(cmd, stdout=sys.stdout, stderr=sys.stderr)
            detached = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            with open(str(self.options["pid_file"]), "w") as fh:
                fh.write(f"{holder.pid} {detached.pid}\n")
        super().open(dimension, metric)


class HugeError(BruteForce):
    """The first insert raises a RuntimeError whose message is `message_bytes` long."""

    name = "huge-error"

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("E" * int(self.options.get("message_bytes", 50_000_000)))


def make_step_sleeper(config: EngineConfig) -> StepSleeper:
    return StepSleeper(config)


def make_spawner(config: EngineConfig) -> Spawner:
    return Spawner(config)


def make_huge_error(config: EngineConfig) -> HugeError:
    return HugeError(config)


# -- native test subjects (issue 13: native stacks, hangs, sanitizers) ----------------------
NATIVE_SOURCE = Path(__file__).parent / "native" / "subject.c"
NATIVE_FAULTS = {
    "clean": 0,
    "segfault": 1,
    "spin": 2,
    "double-free": 3,
    "use-after-free": 4,
    "overflow": 5,
    "invalid-free": 6,
    "leak": 7,
}


def build_native_subject(out_dir: Path, sanitizer: str | None = None) -> Path:
    """Compile tests/native/subject.c into a shared library (`-g -O0`, optionally sanitized)."""
    flags = ["-g", "-O0", "-fno-omit-frame-pointer", "-shared", "-fPIC"]
    if sanitizer == "asan":
        flags.append("-fsanitize=address")
    elif sanitizer == "ubsan":
        flags.append("-fsanitize=undefined")
    target = Path(out_dir) / f"libsubject{'-' + sanitizer if sanitizer else ''}.so"
    subprocess.run(["gcc", *flags, str(NATIVE_SOURCE), "-o", str(target)], check=True)
    return target


class NativeSubject(BruteForce):
    """Brute force in Python, plus a C library that owns a row buffer (tests/native/subject.c).

    Options: `library` (path of the plain build), `library_asan` (the ASan build, loaded
    when the child runs with MEMCYCLE_SANITIZER=asan, as the C twin does), `native_fault`
    (a key of NATIVE_FAULTS). Every insert calls `subject_add`, every search
    `subject_search`, every clear `subject_clear`.
    """

    name = "native-subject"
    allocator = "native"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        sanitizer = os.environ.get("MEMCYCLE_SANITIZER")
        path = self.options.get(f"library_{sanitizer}") if sanitizer else None
        self.library_path = str(path or self.options["library"])
        self.lib = ctypes.CDLL(self.library_path)
        self.lib.subject_add.argtypes = [ctypes.c_size_t]
        self.lib.subject_search.restype = ctypes.c_float
        self.lib.subject_configure(NATIVE_FAULTS[str(self.options.get("native_fault", "clean"))])
        self.capabilities = Capabilities(delete=False, metrics=("l2", "ip", "cosine"))

    @property
    def source_roots(self) -> list[str]:
        return [self.library_path]

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        self.lib.subject_add(len(ids))
        super().insert(ids, vectors, metadata)

    def search(self, queries, k, filter=None):  # type: ignore[no-untyped-def]
        self.lib.subject_search()
        return super().search(queries, k, filter)

    def clear(self) -> None:
        self.lib.subject_clear()
        super().clear()


def make_native_subject(config: EngineConfig) -> NativeSubject:
    return NativeSubject(config)


def write_native_scenario(
    path: Path,
    fault: str,
    library: Path,
    *,
    library_asan: Path | None = None,
    expect: str = "clean",
    repeat: int = 2,
    top: str = "",
    search_timeout: float | None = None,
) -> Path:
    """A scenario for NativeSubject: per cycle insert 50, search, clear, search again."""
    lib_asan = f'library_asan = "{library_asan}"\n' if library_asan else ""
    limit = f", timeout = {search_timeout}" if search_timeout else ""
    path.write_text(
        f'name = "native-{fault}"\ndimension = 8\n{top}\n'
        'engines = ["tests.engines_for_tests:make_native_subject"]\n'
        f'[engine]\nlibrary = "{library}"\n{lib_asan}native_fault = "{fault}"\n'
        f"[[cycle]]\nrepeat = {repeat}\nsteps = [\n"
        '  { op = "insert", count = 50 },\n'
        '  { op = "search", queries = 5, k = 3, min_recall = 0.0 },\n'
        '  { op = "clear" },\n'
        f'  {{ op = "search", queries = 5, k = 3, min_recall = 0.0{limit} }},\n]\n'
        f'[expect]\nverdict = "{expect}"\n',
        encoding="utf-8",
    )
    return path


# -- engines for the small-leak, multi-verdict and shrinker tests (tests/test_small_leaks.py,
# tests/test_shrink.py) ----------------------------------------------------------------------
_PY_KEPT: list[list[float]] = []  # Python lists (not NumPy) the list-leaking engines keep
_LIST_BYTES = 56 + 16 * 8 + 16 * 24  # one list of 16 floats: header, item array, the floats


def _python_lists(kib: float) -> list[list[float]]:
    """About `kib` KiB of Python lists of 16 distinct floats each."""
    return [
        [float(i * 16 + j) + 0.5 for j in range(16)] for i in range(int(kib * 1024 / _LIST_BYTES))
    ]


class PyListLeak(BruteForce):
    """Every clear keeps `leak_kib` (default 128) KiB of Python lists: an annoy-sized leak."""

    name = "pylist-leak"

    def clear(self) -> None:
        _PY_KEPT.extend(_python_lists(float(self.options.get("leak_kib", 128))))
        super().clear()


class BoundedCache(BruteForce):
    """A cache of Python lists that grows at the first `cache_cycles` clears, then stays."""

    name = "bounded-cache"

    def clear(self) -> None:
        if self.clears < int(self.options.get("cache_cycles", 3)):
            _PY_KEPT.extend(_python_lists(float(self.options.get("leak_kib", 128))))
        super().clear()


class LateFree(BruteForce):
    """Each clear frees the lists of the cycle before: one cycle late, never a leak."""

    name = "late-free"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.previous: list[list[float]] = []

    def clear(self) -> None:
        self.previous = _python_lists(float(self.options.get("leak_kib", 128)))
        super().clear()


class WrongAndLeaky(PyListLeak):
    """Leaks Python lists like PyListLeak and answers every search with its first rows
    (recall far below any threshold)."""

    name = "wrong-and-leaky"

    def search(self, queries, k, filter=None):  # type: ignore[no-untyped-def]
        ids, dists = super().search(queries, k, filter)
        if len(self.ids) > k:
            ids[:, :] = self.ids[-k:][None, :]
        return ids, dists


class ThresholdCrash(BruteForce):
    """SIGSEGV when a clear follows an insert batch of exactly `buffer_size` rows, in the
    third cycle (two clears before): a bug only a particular lifecycle reaches."""

    name = "threshold-crash"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.last_batch = 0

    def insert(self, ids, vectors, metadata=None):  # type: ignore[no-untyped-def]
        self.last_batch = len(ids)
        super().insert(ids, vectors, metadata)

    def clear(self) -> None:
        if self.clears == 2 and self.last_batch == int(self.options.get("buffer_size", 16)):
            ctypes.string_at(0)
        self.last_batch = 0
        super().clear()


def make_pylist_leak(config: EngineConfig) -> PyListLeak:
    return PyListLeak(config)


def make_bounded_cache(config: EngineConfig) -> BoundedCache:
    return BoundedCache(config)


def make_late_free(config: EngineConfig) -> LateFree:
    return LateFree(config)


def make_wrong_and_leaky(config: EngineConfig) -> WrongAndLeaky:
    return WrongAndLeaky(config)


def make_threshold_crash(config: EngineConfig) -> ThresholdCrash:
    return ThresholdCrash(config)


class ManyViolations(BruteForce):
    """Every clear records `violations_per_clear` double frees at once, one per block label
    (`block-<clear>-<i>`), in a ledger that only grows, as refimpl's checked allocator's does."""

    name = "many-violations"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.capabilities = Capabilities(delete=True, metadata_filter=True, ledger=True)
        self.violations: list[dict[str, Any]] = []

    def clear(self) -> None:
        for i in range(int(self.options.get("violations_per_clear", 7))):
            label = f"block-{self.clears + 1}-{i}"
            self.violations.append(
                {"verdict": "double-free", "label": label, "message": f"double free of {label}"}
            )
        super().clear()

    def close(self) -> None:
        BruteForce.clear(self)

    def ledger(self) -> dict[str, Any] | None:
        return {
            "allocator": "test",
            "live_blocks": 0,
            "live_bytes": 0,
            "by_label": {},
            "violations": list(self.violations),
        }


def make_many_violations(config: EngineConfig) -> ManyViolations:
    return ManyViolations(config)
