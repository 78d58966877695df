"""refimpl next to hnswlib, faiss, usearch and glass on the same data and machine.

    python benchmarks/peers.py                      # own data set, 100,000 x 128, 1,000 queries
    python benchmarks/peers.py --datasets all       # own, lowrank (100,000 x 128) and digits
    python benchmarks/peers.py --quick              # 10,000 x 128, 200 queries (a smoke run)

Each engine and thread count is built in its own fresh process (all with M=16,
ef_construction=200, L2). Reported side by side, per data set: build vectors/s
with 1 and 2 threads; recall@10 and single-thread QPS for ef 16/32/64/128, batched
and one query at a time (interleaved passes, medians); memory per vector
(refimpl: allocator bytes, peers: RSS growth); the time a fresh process takes to
its first query result; and the ratios to hnswlib. Writes the Markdown table and
the raw JSON under reports/bench/ (one pair per data set).

The parts live in `benchmarks/peerbench/` (data sets, engines, child, session,
table). Figures are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package

from peerbench import datasets
from peerbench.child import ONE_BY_ONE_QUERIES, run_child
from peerbench.engines import EF_CONSTRUCTION, ENGINES, M
from peerbench.session import Child, first_query, interleaved_search, median_build
from peerbench.table import tabulate

ROOT = Path(__file__).resolve().parent.parent


def _arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10,000 x 128 with 200 queries")
    p.add_argument("--n", type=int, default=None, help="vectors (default 100000, quick 10000)")
    p.add_argument("--queries", type=int, default=None, help="queries (default 1000, quick 200)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument(
        "--datasets",
        default="own",
        help=f"comma-separated, or 'all' ({', '.join(datasets.NAMES)}); default own",
    )
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset")
    p.add_argument("--threads", default="1,2", help="build thread counts")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="build every engine and thread count this many times, in rotation, and "
        "report the median build (default 1; each round of the full size takes ~3 min)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    p.add_argument("--no-first-query", action="store_true", help="skip the fresh-process timing")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    return p


def _measure(
    data: Path, engines: list[str], threads: list[int], rounds: int, nq: int, tmp: Path
) -> tuple[dict[str, dict[int, dict[str, Any]]], int | None]:
    """Build every engine x thread count `rounds` times in rotation, then time the searches
    of the 1-thread builds interleaved. Returns the results and the CPU searches ran on."""
    res: dict[str, dict[int, dict[str, Any]]] = {}
    servers: dict[str, Child] = {}  # the 1-thread builds of the last round, kept for search
    pin = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        builds: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rnd in range(rounds):
            last = rnd == rounds - 1
            for t in threads:
                for e in engines:
                    print(f"  build {e}, {t} thread(s), round {rnd + 1} ...", flush=True)
                    serve = last and t == 1
                    child = Child(e, t, data, serve, tmp, pin if t == 1 else None)
                    r = child.read()
                    if r is None:
                        child.close()
                        continue
                    builds.setdefault((e, t), []).append(r)
                    if serve:
                        servers[e] = child
                    else:
                        child.close()
        for (e, t), runs in builds.items():
            res.setdefault(e, {})[t] = median_build(runs)
        print(f"  search sweep, {len(servers)} engines interleaved ...", flush=True)
        n_one = min(nq, ONE_BY_ONE_QUERIES)
        for e, rows in interleaved_search(servers, nq, n_one).items():
            res[e][1]["search"] = rows
    finally:
        for child in servers.values():
            child.close()
    return res, pin


def _available(names: list[str]) -> list[str]:
    out = []
    for e in names:
        if ENGINES[e].available():
            out.append(e)
        else:
            print(f"{e} is not installed; skipped", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = _arguments()
    a = p.parse_args(argv)
    if a.child:
        run_child(a.child, int(a.threads), a.data, a.serve, a.cpu)
        return 0
    if a.rounds < 1:
        p.error(f"--rounds must be at least 1, got {a.rounds}")
    names = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = [e for e in names if e not in ENGINES]
    if unknown:
        p.error(f"unknown engine {unknown[0]!r}; expected some of {', '.join(ENGINES)}")
    sets = list(datasets.NAMES) if a.datasets == "all" else a.datasets.split(",")
    bad = [s for s in sets if s not in datasets.NAMES]
    if bad:
        p.error(f"unknown data set {bad[0]!r}; expected some of {', '.join(datasets.NAMES)}")
    n = a.n or (10_000 if a.quick else 100_000)
    nq = a.queries or (200 if a.quick else 1000)
    threads = [int(t) for t in a.threads.split(",")]
    engines = _available(names)
    cmd = "python benchmarks/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in sets:
        with tempfile.TemporaryDirectory(prefix="memcycle-bench-") as tmp:
            t0 = time.perf_counter()
            ds = datasets.load(name, n, nq, a.dim)
            data = Path(tmp) / "data.npz"
            np.savez(data, x=ds.x, q=ds.q, gt=ds.gt)
            rows, dim, queries = ds.x.shape[0], ds.x.shape[1], ds.q.shape[0]
            print(
                f"data set {name}: {rows} x {dim}, {queries} queries, "
                f"ground truth in {time.perf_counter() - t0:.1f}s"
            )
            res, pin = _measure(data, engines, threads, a.rounds, queries, Path(tmp))
            ttfq: dict[str, Any] = {}
            if not a.no_first_query and "refimpl-db" in engines:
                cache = Path(tmp) / "numba-cache"
                cache.mkdir()
                ttfq["cold"] = first_query(cache)
                ttfq["warm"] = first_query(cache)
        cpu = platform.processor() or platform.machine()
        meta = (
            f"{name} ({ds.note}): {rows:,} x {dim} float32, {queries} queries, M={M}, "
            f"ef_construction={EF_CONSTRUCTION}, L2; {os.cpu_count()} CPUs ({cpu}); "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; 1-thread builds and all searches pinned "
            f"to CPU {pin}, searches interleaved; builds: median of {a.rounds} round(s)"
        )
        table = tabulate(res, ttfq, meta) + f"\nCommand: `{cmd.strip()}`\n"
        print()
        print(table)
        a.out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kind = "quick" if a.quick else f"{rows}"
        stem = f"peers-{kind}-{stamp}" if name == "own" else f"peers-{name}-{kind}-{stamp}"
        (a.out / f"{stem}.md").write_text(table)
        (a.out / f"{stem}.json").write_text(
            json.dumps({"meta": meta, "results": res, "first_query": ttfq}, indent=1)
        )
        print(f"written {a.out / stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
