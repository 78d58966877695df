"""The child process: build one engine on one data set with a given thread count,
print the build figures, then (with `serve`) answer timing requests.

Requests and replies are JSON lines on the child's original stdout; whatever an
engine prints itself (glass reports progress on stdout) goes to stderr instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .datasets import recall_at
from .engines import ENGINES, RefimplDB

ONE_BY_ONE_QUERIES = 300  # queries per one-at-a-time pass


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _protocol_channel() -> TextIO:
    """The original stdout for the replies; fd 1 (for native code too) points to stderr."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def run_child(engine: str, threads: int, data: Path, serve: bool, cpu: int | None) -> None:
    """Build `engine` with `threads` threads on the data in `data` (x, q, gt) and reply.

    `cpu` pins the process to one CPU (every single-thread child gets the same one,
    so no engine is measured on a quieter core than another). With `serve`, each
    request is `{"op": "batch"|"one"|"paired", "ef": ef}`, ended by `{"op": "exit"}`.
    """
    out = _protocol_channel()

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    z = np.load(data)
    x, q, gt = z["x"], z["q"], z["gt"]
    eng = ENGINES[engine](x.shape[1])
    rss0 = _rss()
    c0 = time.process_time()
    t0 = time.perf_counter()
    eng.build(x, threads)
    build_s = time.perf_counter() - t0
    build_cpu = time.process_time() - c0
    rss_growth = _rss() - rss0
    own = eng.memory()
    eng.set_ef(64)
    reply(
        {
            "engine": engine,
            "threads": threads,
            "n": int(x.shape[0]),
            "build_s": build_s,
            "build_vps": x.shape[0] / build_s,
            "build_cpu_s": build_cpu,
            "build_vps_cpu": x.shape[0] / build_cpu,
            "memory_kind": eng.memory_kind,
            "bytes_per_vector": (own if own is not None else rss_growth) / x.shape[0],
            "rss_growth_per_vector": rss_growth / x.shape[0],
            "recall_ef64": recall_at(eng.batch(q), gt),
        }
    )
    if not serve:
        return
    n_one = min(q.shape[0], ONE_BY_ONE_QUERIES)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "exit":
            return
        eng.set_ef(req["ef"])
        eng.batch(q[:8])
        if req["op"] == "batch":
            c0 = time.process_time()
            t0 = time.perf_counter()
            found = eng.batch(q)
            wall = time.perf_counter() - t0
            reply({"wall": wall, "cpu": time.process_time() - c0, "recall": recall_at(found, gt)})
        elif req["op"] == "one":
            t0 = time.perf_counter()
            ones = [eng.one(q[i]) for i in range(n_one)]
            wall = time.perf_counter() - t0
            reply({"wall": wall, "recall": recall_at(np.array(ones), gt[:n_one])})
        else:  # "paired": DB.search vs its own graph search, interleaved call by call
            assert isinstance(eng, RefimplDB)
            t_db = t_kernel = 0.0
            half = n_one // 2  # a different query each time, so neither finds warm caches
            for i in range(n_one):
                t0 = time.perf_counter()
                eng.one(q[i])
                t1 = time.perf_counter()
                eng.kernel_one(q[(i + half) % n_one])
                t_db += t1 - t0
                t_kernel += time.perf_counter() - t1
            reply({"db_us": t_db / n_one * 1e6, "kernel_us": t_kernel / n_one * 1e6})
