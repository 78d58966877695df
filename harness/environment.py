"""Where runs were made: host, Python and package versions, for the gate's baseline.

Why: a time figure means little on another machine, and a leak that appears with a
new numpy or engine version is worth naming; the gate records this beside the
baseline and reports what differs (`harness.gate`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from typing import Any

from memcycle.records import Report

CORE_PACKAGES = ("memcycle", "numpy", "numba", "memray")
# built-in engines backed by a library of their own (refimpl is part of memcycle)
_ENGINE_MODULES = {"hnswlib": "hnswlib", "faiss": "faiss", "usearch": "usearch"}
HOST_FIELDS = ("cpus", "machine", "platform")


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def engine_distribution(engine: str) -> str | None:
    """The installed distribution behind an engine name or `package.module:factory` spec."""
    module = _ENGINE_MODULES.get(engine)
    if module is None:
        spec_module, sep, _attr = engine.partition(":")
        if not sep or spec_module.endswith(".py"):
            return None
        module = spec_module.partition(".")[0]
        if module == "memcycle":
            return None
    dists = _module_distributions().get(module)
    return dists[0] if dists else None


def environment(report: Report) -> dict[str, Any]:
    """Host, Python and package versions of a report's runs.

    Taken from report.json's `host` where the runner recorded them, else from the
    process the gate runs in (in CI, the same venv right after the run).
    """
    host = report.host or {}
    packages: dict[str, str | None] = {name: _version(name) for name in CORE_PACKAGES}
    for engine in sorted({r.engine for r in report.runs}):
        dist = engine_distribution(engine)
        if dist is not None:
            packages[dist] = _version(dist)
    recorded = host.get("packages")
    if isinstance(recorded, dict):
        packages.update({str(k): None if v is None else str(v) for k, v in recorded.items()})
    return {
        "host": {
            "cpus": host.get("cpus") or os.cpu_count(),
            "machine": host.get("machine") or platform.machine(),
            "platform": host.get("platform") or platform.platform(),
        },
        "python": str(host.get("python") or platform.python_version()),
        "packages": packages,
    }


def host_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`cpus 8 -> 2`-style phrases for every host field that differs."""
    a, b = old.get("host") or {}, new.get("host") or {}
    return [f"{k} {a.get(k)} -> {b.get(k)}" for k in HOST_FIELDS if a.get(k) != b.get(k)]


def version_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Python and every package both environments list, where the versions differ."""
    out = []
    if old.get("python") != new.get("python"):
        out.append(f"python {old.get('python')} -> {new.get('python')}")
    a, b = old.get("packages") or {}, new.get("packages") or {}
    for name in sorted(set(a) & set(b)):
        if a[name] != b[name]:
            out.append(f"{name} {a[name] or 'not installed'} -> {b[name] or 'not installed'}")
    return out
