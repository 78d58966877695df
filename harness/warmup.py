"""`memcycle warmup`: the runs that fill refimpl's Numba cache before the first measured run.

Real runs through the harness (not direct kernel calls), so exactly the specialisations a run
needs get compiled and cached: one small scenario per metric (each metric has its own distance
kernels) under each allocator, reaching every refimpl code path.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .batch import run_many
from .isolation import ChildRegistry
from .progress import Progress, total_compile_seconds
from .records import RunRecord
from .runner import RunSpec

# The warm-up cycle table: every refimpl code path a run reaches (flat buffer, HNSW, its
# threaded insert past 512 nodes and threaded batch search of 64 queries or more, segmented
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
  {{ op = "insert", count = 900, batch = 300, metadata = true }},
  {{ op = "search", queries = 80, k = 5, min_recall = 0.0 }},
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


@dataclass(frozen=True)
class Warmup:
    """What a warm-up did: its runs (unrecorded) and how long they took in all."""

    runs: list[RunRecord]
    seconds: float

    @property
    def compile_seconds(self) -> float | None:
        return total_compile_seconds(self.runs)

    @property
    def not_clean(self) -> list[RunRecord]:
        return [r for r in self.runs if r.verdict != "clean"]


def run_warmup(
    allocators: Sequence[str],
    *,
    metrics: Sequence[str] = WARMUP_METRICS,
    timeout: float | None = None,
    registry: ChildRegistry | None = None,
    command: list[str] | None = None,
    notice: str | None = None,
) -> Warmup:
    """Run the warm-up scenarios one at a time (children compiling at once would compile the
    same kernels twice), with a progress line; `notice` is shown above it. Raises
    `RunInterrupted` on SIGINT/SIGTERM, as `run_many` does."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memcycle-warmup-") as tmp:
        specs = warmup_specs(Path(tmp), allocators, timeout=timeout, metrics=metrics)
        progress = Progress(len(specs))
        if notice:
            progress.note(notice)
        try:
            report = run_many(
                specs,
                Path(tmp) / "runs",
                jobs=1,
                progress=progress,
                on_event=progress.on_event,
                command=command,
                registry=registry,
            )
        finally:
            progress.close()
    return Warmup(list(report.runs), time.perf_counter() - t0)
