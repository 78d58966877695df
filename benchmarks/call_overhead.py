"""Where one `HNSWIndex.search` call's fixed cost goes, next to hnswlib's `knn_query`.

    python benchmarks/call_overhead.py

A 1,000 x 64 graph searched for one query at ef 1, k 1 (so the search itself is a few
steps): the whole call, then each of its parts alone. Best of 5 x 20,000 calls, pinned to
one CPU where the OS allows. Printed, never asserted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import hnswlib
import numpy as np
from memcycle.refimpl.alloc import NumpyAllocator
from memcycle.refimpl.hnsw import _NO_DELETED, HNSWIndex, prepare_search, search_view
from memcycle.refimpl.kernels import hnsw as K


def best_us(f: Callable[[], object], calls: int = 20_000, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        best = min(best, (time.perf_counter() - t) / calls * 1e6)
    return best


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    x = np.random.default_rng(0).normal(size=(1000, 64)).astype(np.float32)
    idx = HNSWIndex(NumpyAllocator(), 64, 0, 64)
    idx.add(x, np.arange(1000, dtype=np.int64))
    peer = hnswlib.Index("l2", 64)
    peer.init_index(1000)
    peer.add_items(x)
    peer.set_ef(1)
    v = x[:1].copy()
    view = idx.view()
    parts, walk = view.parts(), view.walk()
    out_l, out_d = np.empty((1, 1), np.int64), np.empty((1, 1), np.float32)
    kernel = K.search_batch
    kernel(parts, walk, v, 1, 1, _NO_DELETED, out_l, out_d)
    entry = next(iter(kernel.overloads.values())).entry_point  # the compiled code, no dispatch
    rows = [
        ("hnswlib knn_query", lambda: peer.knn_query(v, 1)),
        ("HNSWIndex.search", lambda: idx.search(v, 1, 1)),
        ("  prepare_search (checks the query)", lambda: prepare_search(v, 64, 1, None)),
        ("  HNSWIndex.view()", lambda: idx.view()),
        ("  GraphView.parts()", lambda: view.parts()),
        ("  GraphView.walk()", lambda: view.walk()),
        ("  two result arrays", lambda: (np.empty((1, 1), np.int64), np.empty((1, 1), np.float32))),
        ("  search_view (all below search)", lambda: search_view(view, v, 1, 1)),
        ("  the kernel call", lambda: kernel(parts, walk, v, 1, 1, _NO_DELETED, out_l, out_d)),
        (
            "  the kernel's entry point, no dispatch",
            lambda: entry(parts, walk, v, 1, 1, _NO_DELETED, out_l, out_d),
        ),
    ]
    print(f"one query, ef 1, k 1, 1,000 x 64; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("\n| call | µs (best of 5 x 20,000) |\n|---|---:|")
    for name, f in rows:
        print(f"| {name} | {best_us(f):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
