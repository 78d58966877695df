"""Is refimpl's Numba cache cold? A file-system check that runs before any child starts.

The first refimpl run in a fresh install compiles every kernel (about a minute on 2 cores) and
prints nothing meanwhile; `memcycle run` says so up front when this check finds no cache. It must
answer within milliseconds, so it never imports numba: it repeats numba's cache-locator rules
(`numba/core/caching.py`): `$NUMBA_CACHE_DIR/<dir>_<sha1(dir)>/` when that variable is set, else
the `__pycache__/` next to the kernels when it is writable, else the user-wide
`~/.cache/numba/<dir>_<sha1(dir)>/`. Every ordinary refimpl run indexes (`.nbi`) at least one
function of each module in `KERNEL_MODULES`, so a module without an index for this Python means
the next run compiles. A stale index (edited sources) is not detected: numba then recompiles
quietly, as it would anyway.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

# refimpl's kernel modules whose functions every refimpl run calls (and so caches)
KERNEL_MODULES: tuple[str, ...] = ("flat", "hashmap", "heap", "hnsw")


@dataclass(frozen=True)
class KernelCache:
    """Where the kernels' cache is and which modules have no index in it yet."""

    directory: Path
    missing: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cold(self) -> bool:
        return bool(self.missing)


def kernels_dir() -> Path:
    """refimpl's kernel sources, located without importing them (that would import numba)."""
    spec = importlib.util.find_spec("memcycle.refimpl")  # imports `memcycle` only, not refimpl
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("memcycle.refimpl is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "kernels"


def _subpath(source_dir: Path) -> str:
    path = os.path.abspath(source_dir)
    return "_".join([os.path.basename(path), hashlib.sha1(path.encode()).hexdigest()])


def _user_cache_root() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "numba"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "numba"


def cache_dir(source_dir: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """The directory numba caches the kernels of `source_dir` in (numba's locator order)."""
    src = source_dir or kernels_dir()
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR"):
        return Path(env["NUMBA_CACHE_DIR"]) / _subpath(src)
    in_tree = src / "__pycache__"
    writable = in_tree if in_tree.is_dir() else src
    if os.access(writable, os.W_OK):
        return in_tree
    return _user_cache_root() / _subpath(src)


def kernel_cache(
    source_dir: Path | None = None, environ: dict[str, str] | None = None
) -> KernelCache:
    """The cache state of refimpl's kernels for the running Python version."""
    directory = cache_dir(source_dir, environ)
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    indexed = {n.split(".", 1)[0] for n in names if n.endswith(f".{tag}.nbi")}
    return KernelCache(directory, tuple(m for m in KERNEL_MODULES if m not in indexed))
