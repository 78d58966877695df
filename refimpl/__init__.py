"""refimpl — a reference vector database whose memory lifecycle is done right.

The names below are imported on first use (PEP 562), not with the package: its C twin
(`refimpl.native`) is a subpackage, and a child that runs only the twin must not load
Numba through this file (under valgrind, Numba and LLVM add ~50 s to every child's start
and to memcheck's exit-time heap scan; measured 24 s for `import numpy` against 76 s for
`import memcycle.refimpl.native` with the eager imports).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule that defines it
_EXPORTS = {
    "ALLOCATOR_NAMES": "alloc",
    "DB": "database",
    "Database": "database",
    "SearchResult": "database",
    "State": "database",
    "FAULT_NAMES": "faults",
    "add_vector_batch": "singleton",
    "cleanup_global_db": "singleton",
    "clear_database": "singleton",
    "get_global_db": "singleton",
    "search_vectors": "singleton",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
