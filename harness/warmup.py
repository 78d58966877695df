"""`memcycle warmup`: the runs that fill refimpl's Numba cache before the first measured run.

Real runs through the harness (not direct kernel calls), so exactly the specialisations a run
needs get compiled and cached: one small scenario per metric (each metric has its own distance
kernels) under each allocator, reaching every refimpl code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .runner import RunSpec

# The warm-up cycle table: every refimpl code path a run reaches (flat buffer, HNSW, segmented
# HNSW, filtered search, get, delete and reuse, clear and a second cycle), small enough that a
# warm run takes a second or two. One per metric: each metric compiles its own distance kernels.
WARMUP_METRICS = ("l2", "ip", "cosine")
WARMUP_TOML = """
name = "warmup-{metric}"
description = "memcycle warmup: compile refimpl's kernels for metric {metric}"
dimension = 16
metric = "{metric}"
seed = 7
[engine]
buffer_size = 256
segment_threshold = 1024
ef_construction = 32
[[cycle]]
repeat = 2
steps = [
  {{ op = "insert", count = 120, metadata = true }},
  {{ op = "search", queries = 5, k = 5, min_recall = 0.0 }},
  {{ op = "insert", count = 400, batch = 200, metadata = true }},
  {{ op = "search", queries = 5, k = 5, min_recall = 0.0, filter = {{ tag = 1 }} }},
  {{ op = "get", count = 10 }},
  {{ op = "delete", count = 30 }},
  {{ op = "insert", count = 30, metadata = true, reuse_deleted = true }},
  {{ op = "insert", count = 1500, metadata = true }},
  {{ op = "search", queries = 5, k = 5, min_recall = 0.0 }},
  {{ op = "delete", fraction = 0.1 }},
  {{ op = "search", queries = 5, k = 5, min_recall = 0.0, filter = {{ tag = 2 }} }},
  {{ op = "clear" }},
]
[expect]
verdict = "clean"
"""


def warmup_specs(
    folder: Path,
    allocators: Sequence[str],
    *,
    timeout: float | None = None,
    metrics: Sequence[str] = WARMUP_METRICS,
) -> list[RunSpec]:
    """Write the warm-up scenarios into `folder`; one run per metric x allocator."""
    specs = []
    for metric in metrics:
        path = folder / f"warmup-{metric}.toml"
        path.write_text(WARMUP_TOML.format(metric=metric), encoding="utf-8")
        specs += [
            RunSpec(
                path,
                "refimpl",
                a,
                memray=False,
                tracemalloc=False,  # recording the compile would make it ~3x slower
                timeout=timeout,
                flamegraphs="none",
            )
            for a in allocators
        ]
    return specs
