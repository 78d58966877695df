"""ctypes bindings of the C twin: the library's functions, typed, and a small object API.

`load_library(variant)` builds (if needed) and loads one variant per process; the
signatures are set once. `NativeDB` wraps one `rc_db *` (init / add_batch / search / count /
get / delete / clear / destroy); the module functions wrap the singleton API.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_int, c_int64, c_void_p
from pathlib import Path

import numpy as np

from .builder import NativeBuildError, build
from .faults import FAULT_NAMES

METRIC_CODES: dict[str, int] = {"l2": 0, "ip": 1, "cosine": 2}
DEFAULT_SIZES: dict[str, int] = {
    "buffer_size": 1000,
    "segment_threshold": 10000,
    "segment_size": 2000,
}

_SIGNATURES: dict[str, tuple[list[object], object]] = {
    "rc_create": ([c_int64, c_int64, c_int64], c_void_p),
    "rc_init": ([c_void_p, c_int64, c_int], c_int),
    "rc_add_batch": ([c_void_p, c_void_p, c_void_p, c_int64], c_int),
    "rc_search": ([c_void_p, c_void_p, c_int64, c_int64, c_void_p, c_void_p], c_int),
    "rc_count": ([c_void_p], c_int64),
    "rc_dimension": ([c_void_p], c_int64),
    "rc_is_ready": ([c_void_p], c_int),
    "rc_get": ([c_void_p, c_int64, c_void_p], c_int),
    "rc_delete": ([c_void_p, c_void_p, c_int64], c_int64),
    "rc_clear": ([c_void_p], None),
    "rc_destroy": ([c_void_p], None),
    "rc_set_fault": ([c_char_p, c_int], c_int),
    "rc_fault_names": ([], c_char_p),
    "rc_last_error": ([], c_char_p),
    "rc_stats": ([c_void_p, c_void_p], None),
    "rc_get_global_db": ([c_int64, c_int64, c_int64], c_void_p),
    "rc_cleanup_global_db": ([], None),
    "rc_clear_database": ([], None),
    "rc_add_vector_batch": ([c_void_p, c_void_p, c_int64, c_int64, c_int], c_int),
}

_LOADED: dict[str, ctypes.CDLL] = {}


class NativeError(RuntimeError):
    """A call into the C twin returned an error code; the message is rc_last_error()."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (refimpl_c error {code})")
        self.code = code


def load_library(variant: str = "plain") -> ctypes.CDLL:
    """The C twin of this variant, built at first use and loaded once per process."""
    if variant in _LOADED:
        return _LOADED[variant]
    if variant == "asan" and not runtime_loaded("libasan"):
        # dlopen of an ASan library into a process without the ASan runtime does not fail:
        # the runtime kills the process ("ASan runtime does not come first ..."); refuse first
        raise NativeBuildError(
            "the asan build of the refimpl C twin needs libasan preloaded into the process "
            "(LD_PRELOAD=$(gcc -print-file-name=libasan.so)); run it through "
            "`memcycle run --sanitizer asan`"
        )
    path = build(variant)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeBuildError(f"cannot load {path}: {exc}") from None
    for name, (args, res) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    names = tuple(lib.rc_fault_names().decode().split(","))
    if names != FAULT_NAMES:
        raise NativeBuildError(
            f"{Path(path).name} knows faults {names}, the Python catalogue {FAULT_NAMES}"
        )
    _LOADED[variant] = lib
    return lib


def runtime_loaded(name: str) -> bool:
    """Whether a shared library whose file name starts with `name` is mapped in this process."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            return any(Path(line.split()[-1]).name.startswith(name) for line in fh if "/" in line)
    except OSError:
        return False


def _check(lib: ctypes.CDLL, rc: int) -> None:
    if rc < 0:
        raise NativeError(rc, lib.rc_last_error().decode("utf-8", "replace"))


def set_faults(lib: ctypes.CDLL, names: tuple[str, ...]) -> None:
    """Switch exactly these faults on (process-wide, as the singleton is)."""
    unknown = sorted(set(names) - set(FAULT_NAMES))
    if unknown:
        raise NativeError(-1, f"unknown fault(s) {', '.join(unknown)}")
    for name in FAULT_NAMES:
        _check(lib, lib.rc_set_fault(name.encode(), int(name in names)))


def stats(lib: ctypes.CDLL) -> tuple[int, int]:
    """(live blocks, live bytes) the twin holds through its allocator, over all databases."""
    blocks, nbytes = c_int64(), c_int64()
    lib.rc_stats(ctypes.byref(blocks), ctypes.byref(nbytes))
    return blocks.value, nbytes.value


def _ids(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)


def _rows(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, dimension)"
        raise NativeError(-1, f"vectors must have shape {want}, got {x.shape}")
    return x


def search_into(
    lib: ctypes.CDLL, db: int, queries: np.ndarray, k: int, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    q = _rows(queries, dim)
    ids = np.empty((q.shape[0], k), np.int64)
    dists = np.empty((q.shape[0], k), np.float32)
    _check(lib, lib.rc_search(db, q.ctypes.data, q.shape[0], k, ids.ctypes.data, dists.ctypes.data))
    return ids, dists


class NativeDB:
    """One C twin database: `rc_db *` with its lifecycle."""

    def __init__(self, lib: ctypes.CDLL, **sizes: int) -> None:
        self.lib = lib
        s = {**DEFAULT_SIZES, **sizes}
        ptr = lib.rc_create(s["buffer_size"], s["segment_threshold"], s["segment_size"])
        if not ptr:
            raise NativeError(-1, lib.rc_last_error().decode() or "rc_create failed")
        self.ptr: int | None = ptr
        self.metric = "l2"

    def _db(self) -> int:
        if self.ptr is None:
            raise NativeError(-5, "database destroyed")
        return self.ptr

    @property
    def dimension(self) -> int:
        return int(self.lib.rc_dimension(self._db()))

    def init(self, dim: int, metric: str = "l2") -> None:
        if metric not in METRIC_CODES:
            raise NativeError(-1, f"unknown metric {metric!r}; expected one of l2, ip, cosine")
        _check(self.lib, self.lib.rc_init(self._db(), dim, METRIC_CODES[metric]))
        self.metric = metric

    def add_batch(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        i, x = _ids(ids), _rows(vectors)
        if i.shape[0] != x.shape[0]:
            raise NativeError(-1, f"{i.shape[0]} ids for {x.shape[0]} vectors")
        _check(self.lib, self.lib.rc_add_batch(self._db(), i.ctypes.data, x.ctypes.data, len(i)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search_into(self.lib, self._db(), queries, k, self.dimension or queries.shape[1])

    def count(self) -> int:
        return int(self.lib.rc_count(self._db()))

    def get(self, id: int) -> np.ndarray:
        out = np.empty(self.dimension, np.float32)
        _check(self.lib, self.lib.rc_get(self._db(), int(id), out.ctypes.data))
        return out

    def delete(self, ids: np.ndarray) -> int:
        i = _ids(ids)
        return int(self.lib.rc_delete(self._db(), i.ctypes.data, len(i)))

    def clear(self) -> None:
        self.lib.rc_clear(self._db())

    def destroy(self) -> None:
        """Free everything, the database included; idempotent."""
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            self.lib.rc_destroy(ptr)


# -- the singleton API ----------------------------------------------------------------------
def get_global_db(lib: ctypes.CDLL, **sizes: int) -> int:
    """The process database (`rc_db *`), created with these sizes if there is none."""
    s = {**DEFAULT_SIZES, **sizes}
    ptr = lib.rc_get_global_db(s["buffer_size"], s["segment_threshold"], s["segment_size"])
    if not ptr:
        raise NativeError(-1, lib.rc_last_error().decode() or "rc_get_global_db failed")
    return int(ptr)


def add_vector_batch(lib: ctypes.CDLL, ids: np.ndarray, vectors: np.ndarray, metric: str) -> None:
    i, x = _ids(ids), _rows(vectors)
    rc = lib.rc_add_vector_batch(
        i.ctypes.data, x.ctypes.data, len(i), x.shape[1], METRIC_CODES[metric]
    )
    _check(lib, rc)


def clear_database(lib: ctypes.CDLL) -> None:
    lib.rc_clear_database()


def cleanup_global_db(lib: ctypes.CDLL) -> None:
    lib.rc_cleanup_global_db()
