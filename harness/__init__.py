"""memcycle: a memory-safety test harness for vector-index engines.

Import-light on purpose: `memcycle.refimpl` (the reference engine) lives under this package and
must not pull in the harness when it is imported.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memcycle")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from .assertions import (
    MemcycleAssertionError,
    MemcycleError,
    MemcycleUsageError,
    assert_clean,
    assert_verdict,
)

__all__ = [
    "MemcycleAssertionError",
    "MemcycleError",
    "MemcycleUsageError",
    "__version__",
    "assert_clean",
    "assert_verdict",
]
