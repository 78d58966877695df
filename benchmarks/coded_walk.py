"""refimpl's coded walk next to its exact walk, on one graph in one process.

    python benchmarks/coded_walk.py                     # own data set, 100,000 x 128
    python benchmarks/coded_walk.py --datasets lowrank,digits --n 20000

One graph is built (1 thread, M=16, ef_construction=200, the coded walk on, as refimpl's
default); every search pass then runs twice on it, alternating: walking on the 8-bit codes
and re-ranking on the exact rows (the default), and measuring every distance on the exact
float32 rows (the same graph's view with `coded` off). Batched, single thread, pinned to one
CPU where the OS allows; medians of interleaved passes; recall@10 against exact search. The
figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memcycle.refimpl.alloc import NumpyAllocator
from memcycle.refimpl.hnsw import HNSWIndex, search_view
from peerbench.datasets import NAMES, load, recall_at

K = 10


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="own", help=f"comma-separated of {', '.join(NAMES)}")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--ef", default="16,32,64,128")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    efs = [int(e) for e in args.ef.split(",")]
    for name in args.datasets.split(","):
        ds = load(name, args.n, args.queries, 128)
        idx = HNSWIndex(NumpyAllocator(), ds.x.shape[1], 0, 64, M=16, ef_construction=200)
        t0 = time.perf_counter()
        idx.add(ds.x, np.arange(ds.x.shape[0], dtype=np.int64))
        build = time.perf_counter() - t0
        coded = idx.view()
        exact = coded._replace(coded=False)
        print(f"\n## {name}: {ds.x.shape[0]:,} x {ds.x.shape[1]}, {ds.q.shape[0]} queries")
        print(
            f"build {build:.1f} s (1 thread); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        print("\n| ef | coded recall | exact recall | coded QPS | exact QPS | coded / exact |")
        print("|---:|---:|---:|---:|---:|---:|")
        for ef in efs:
            times: dict[str, list[float]] = {"coded": [], "exact": []}
            found: dict[str, np.ndarray] = {}
            for p in range(args.passes):
                order = ("coded", "exact") if p % 2 == 0 else ("exact", "coded")
                for kind in order:
                    view = coded if kind == "coded" else exact
                    t = time.perf_counter()
                    found[kind] = search_view(view, ds.q, K, ef)[0]
                    times[kind].append(time.perf_counter() - t)
            qps = {k: ds.q.shape[0] / float(np.median(v)) for k, v in times.items()}
            print(
                f"| {ef} | {recall_at(found['coded'], ds.gt):.4f} | "
                f"{recall_at(found['exact'], ds.gt):.4f} | {qps['coded']:,.0f} | "
                f"{qps['exact']:,.0f} | {qps['coded'] / qps['exact']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
