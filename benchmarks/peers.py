"""refimpl next to hnswlib and faiss on the same data and machine (issue 3).

    python benchmarks/peers.py            # 100,000 x 128, 1,000 queries (several minutes)
    python benchmarks/peers.py --quick    # 10,000 x 128, 200 queries (a smoke run)

One deterministic dataset (a seeded Gaussian mixture of 100 clusters, each with
its own low-rank covariance, plus noise) with exact top-10 ground truth computed
in chunks. Each engine and thread count is built in its own fresh process:
refimpl's HNSWIndex (the kernel), refimpl's DB API, hnswlib, faiss IndexHNSWFlat,
all with M=16, ef_construction=200, L2. Reported side by side: build vectors/s
with 1 and 2 threads; recall@10 and single-thread QPS for ef 16/32/64/128, batched
and one query at a time; memory per vector (refimpl: allocator bytes, peers: RSS
growth); the time a fresh process takes to its first query result, with a warm
and a cold Numba cache; and the ratios refimpl / hnswlib. Every search figure is
the median of 9 timed passes (the machine is shared; one pass is too noisy to
compare). Prints a Markdown table and writes it (plus the raw JSON) under
reports/bench/.

Figures are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

EFS = (16, 32, 64, 128)
K = 10
M = 16
EF_CONSTRUCTION = 200
REPEATS = 9  # timed passes per search figure; the median is reported
ONE_BY_ONE_QUERIES = 300  # queries per one-at-a-time pass
ROOT = Path(__file__).resolve().parent.parent


# -- data ---------------------------------------------------------------------------------
def make_dataset(n: int, nq: int, dim: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture: 100 clusters, each centre + its own rank-8 covariance + noise."""
    rng = np.random.default_rng(seed)
    clusters, rank = 100, 8
    centres = rng.normal(0.0, 1.0, (clusters, dim)).astype(np.float32)
    factors = rng.normal(0.0, 0.4, (clusters, dim, rank)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        c = rng.integers(0, clusters, count)
        z = rng.normal(0.0, 1.0, (count, rank)).astype(np.float32)
        low_rank = np.einsum("ndr,nr->nd", factors[c], z)
        noise = rng.normal(0.0, 1.5, (count, dim)).astype(np.float32)
        return np.ascontiguousarray(centres[c] + low_rank + noise, dtype=np.float32)

    return draw(n), draw(nq)


def ground_truth(x: np.ndarray, q: np.ndarray, k: int, chunk: int = 100) -> np.ndarray:
    """Exact top-k by squared L2, in float64, a chunk of queries at a time."""
    x64 = x.astype(np.float64)
    xx = np.einsum("ij,ij->i", x64, x64)
    out = np.empty((q.shape[0], k), np.int64)
    for lo in range(0, q.shape[0], chunk):
        qc = q[lo : lo + chunk].astype(np.float64)
        d = xx[None, :] - 2.0 * qc @ x64.T
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
        out[lo : lo + chunk] = np.take_along_axis(part, order, 1)
    return out


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(
        len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / (truth.shape[0] * k)


# -- child side: one engine, one thread count, one fresh process ------------------------------
def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class _Engine:
    name = "?"
    memory_kind = "RSS growth"

    def build(self, x: np.ndarray, threads: int) -> None: ...
    def set_ef(self, ef: int) -> None: ...
    def batch(self, q: np.ndarray) -> np.ndarray: ...
    def one(self, v: np.ndarray) -> np.ndarray: ...
    def memory(self) -> int | None:
        return None


class _Refimpl(_Engine):
    """The kernel: refimpl.hnsw.HNSWIndex (no DB on top)."""

    name = "refimpl"
    memory_kind = "allocator bytes"

    def __init__(self, dim: int) -> None:
        from memcycle.refimpl.alloc import NumpyAllocator
        from memcycle.refimpl.hnsw import HNSWIndex

        self.alloc = NumpyAllocator()
        warm = HNSWIndex(NumpyAllocator(), dim, 0, 64)  # load/compile the kernels first
        rows = np.random.default_rng(0).normal(size=(300, dim)).astype(np.float32)
        warm.add(rows, np.arange(300, dtype=np.int64))
        warm.search(rows[:70], K, 16)
        warm.search(rows[:70], K, 16, num_threads=2)
        self.index = HNSWIndex(self.alloc, dim, 0, 64, M=M, ef_construction=EF_CONSTRUCTION)
        self.ef = 64

    def build(self, x: np.ndarray, threads: int) -> None:
        self.index.add(x, np.arange(x.shape[0], dtype=np.int64), num_threads=threads)

    def set_ef(self, ef: int) -> None:
        self.ef = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q, K, self.ef, num_threads=1)[0]

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.search(v.reshape(1, -1), K, self.ef, num_threads=1)[0][0]

    def memory(self) -> int:
        return self.alloc.stats().live_bytes


class _DB(_Engine):
    """The user API: refimpl.DB (flat buffer + graphs + id/metadata maps)."""

    name = "refimpl-db"
    memory_kind = "allocator bytes"

    def __init__(self, dim: int) -> None:
        from memcycle.refimpl import DB

        self.DB = DB
        warm = DB(dim, buffer_size=50, segment_threshold=200, num_threads=2)
        rows = np.random.default_rng(0).normal(size=(400, dim)).astype(np.float32)
        warm.add_batch(rows[:100])
        warm.add_batch(rows[100:])
        warm.search(rows[0], limit=K)
        warm.search_batch(rows[:70], limit=K)
        warm.close()
        self.db: Any = None

    def build(self, x: np.ndarray, threads: int) -> None:
        self.db = self.DB(x.shape[1], M=M, ef_construction=EF_CONSTRUCTION, num_threads=threads)
        self.db.add_batch(x, ids=np.arange(x.shape[0], dtype=np.int64))
        self.db.num_threads = 1  # search is measured single-threaded

    def set_ef(self, ef: int) -> None:
        self.db.ef_search = ef
        self.ef = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.db.search_batch(q, limit=K)[0]

    def kernel_one(self, v: np.ndarray) -> None:
        """The graph search under DB.search, called directly (private access, benchmark only)."""
        graph = self.db._seg if len(self.db._seg) else self.db._hnsw
        graph.search(v.reshape(1, -1), K, self.ef, num_threads=1)

    def one(self, v: np.ndarray) -> np.ndarray:
        return np.array([r.id for r in self.db.search(v, limit=K)], np.int64)

    def memory(self) -> int:
        return self.db.allocator.stats().live_bytes


class _Hnswlib(_Engine):
    name = "hnswlib"

    def __init__(self, dim: int) -> None:
        import hnswlib

        self.hnswlib = hnswlib
        self.dim = dim

    def build(self, x: np.ndarray, threads: int) -> None:
        self.index = self.hnswlib.Index("l2", self.dim)
        self.index.init_index(x.shape[0], M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        self.index.set_num_threads(threads)
        self.index.add_items(x, np.arange(x.shape[0]))
        self.index.set_num_threads(1)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.knn_query(q, K)[0].astype(np.int64)

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.knn_query(v.reshape(1, -1), K)[0][0].astype(np.int64)


class _Faiss(_Engine):
    name = "faiss"

    def __init__(self, dim: int) -> None:
        import faiss

        self.faiss = faiss
        self.dim = dim

    def build(self, x: np.ndarray, threads: int) -> None:
        self.faiss.omp_set_num_threads(threads)
        self.index = self.faiss.IndexHNSWFlat(self.dim, M)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(x)
        self.faiss.omp_set_num_threads(1)

    def set_ef(self, ef: int) -> None:
        self.index.hnsw.efSearch = ef

    def batch(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q, K)[1].astype(np.int64)

    def one(self, v: np.ndarray) -> np.ndarray:
        return self.index.search(v.reshape(1, -1), K)[1][0].astype(np.int64)


ENGINES = {"refimpl": _Refimpl, "refimpl-db": _DB, "hnswlib": _Hnswlib, "faiss": _Faiss}


def run_child(engine: str, threads: int, data: Path, serve: bool, cpu: int | None) -> None:
    """Build one engine with `threads` threads and print the build figures as a JSON line.

    With `serve`, stay alive and answer timing requests from the parent, one JSON
    line each (`{"op": "batch"|"one"|"paired", "ef": ef}`, then `{"op": "exit"}`):
    the parent interleaves every engine's passes in time, so the shared machine's
    slow and fast seconds fall on all engines alike. `cpu` pins the process to one
    CPU (every single-thread child gets the same one, so no engine is measured on
    a quieter core than another).
    """
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
    built: dict[str, Any] = {
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
    print(json.dumps(built), flush=True)
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
            reply = {"wall": wall, "cpu": time.process_time() - c0, "recall": recall_at(found, gt)}
        elif req["op"] == "one":
            t0 = time.perf_counter()
            ones = [eng.one(q[i]) for i in range(n_one)]
            reply = {
                "wall": time.perf_counter() - t0,
                "recall": recall_at(np.array(ones), gt[:n_one]),
            }
        else:  # "paired": DB.search vs its own graph search, interleaved call by call
            t_db = t_kernel = 0.0
            half = n_one // 2  # a different query each time, so neither finds warm caches
            for i in range(n_one):
                t0 = time.perf_counter()
                eng.one(q[i])
                t1 = time.perf_counter()
                eng.kernel_one(q[(i + half) % n_one])
                t_db += t1 - t0
                t_kernel += time.perf_counter() - t1
            reply = {"db_us": t_db / n_one * 1e6, "kernel_us": t_kernel / n_one * 1e6}
        print(json.dumps(reply), flush=True)


# -- time to the first query in a fresh process --------------------------------------------
_FIRST_QUERY = """
import time
t0 = time.perf_counter()
import numpy as np
from memcycle.refimpl import DB
t_import = time.perf_counter()
x = np.random.default_rng(1).normal(size=(2000, 128)).astype(np.float32)
db = DB(128)
db.add_batch(x)
t_insert = time.perf_counter()
db.search(x[0], limit=10)
t_query = time.perf_counter()
print(t_import - t0, t_insert - t_import, t_query - t_insert)
"""


def first_query(cache_dir: Path) -> dict[str, float]:
    """Wall time from process start to the first DB.search result (2,000 rows inserted)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_QUERY], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    imp, ins, qry = (float(v) for v in proc.stdout.split())
    return {"wall_s": wall, "import_s": imp, "insert_s": ins, "query_s": qry}


# -- parent: orchestrate, tabulate ------------------------------------------------------------
class _Child:
    """One engine built in its own fresh process; with `serve`, kept alive for timing."""

    def __init__(
        self, engine: str, threads: int, data: Path, serve: bool, tmp: Path, cpu: int | None
    ) -> None:
        cmd = [sys.executable, __file__, "--child", engine, "--threads", str(threads)]
        cmd += ["--data", str(data)] + (["--serve"] if serve else [])
        cmd += ["--cpu", str(cpu)] if cpu is not None else []
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS="2")
        self.name = f"{engine} x{threads}"
        self.err = open(tmp / f"{engine}-{threads}.stderr", "w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, env=env
        )

    def read(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.err.seek(0)
            print(f"  {self.name}: failed\n{self.err.read()[-1500:]}", file=sys.stderr)
            return None
        return json.loads(line)

    def ask(self, op: str, ef: int) -> dict[str, Any] | None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "ef": ef}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.proc.wait()
        self.err.close()


def interleaved_search(
    children: dict[str, _Child], nq: int, n_one: int
) -> dict[str, list[dict[str, Any]]]:
    """Every engine's search figures per ef: REPEATS rounds, each engine once per round (the
    order rotating), medians reported; the passes of all engines share the same minutes."""
    rows: dict[str, list[dict[str, Any]]] = {e: [] for e in children}
    names = list(children)
    for ef in EFS:
        got: dict[str, dict[str, list[Any]]] = {e: {} for e in names}
        for r in range(REPEATS):
            for e in names[r % len(names) :] + names[: r % len(names)]:
                child = children[e]
                ops = ["batch", "one"] + (["paired"] if e == "refimpl-db" else [])
                for op in ops:
                    reply = child.ask(op, ef)
                    if reply is None:
                        raise RuntimeError(f"{child.name} died while searching")
                    for key, value in reply.items():
                        got[e].setdefault(f"{op}_{key}", []).append(value)
        for e in names:
            g = got[e]
            walls = g["batch_wall"]
            row = {
                "ef": ef,
                "recall": g["batch_recall"][0],
                "batch_qps": nq / float(np.median(walls)),
                "batch_qps_cpu": nq / max(float(np.median(g["batch_cpu"])), 1e-9),
                "batch_qps_worst": nq / max(walls),
                "batch_qps_best": nq / min(walls),
                "one_qps": n_one / float(np.median(g["one_wall"])),
                "one_us": float(np.median(g["one_wall"])) / n_one * 1e6,
                "one_recall": g["one_recall"][0],
            }
            if "paired_db_us" in g:
                row["paired_db_us"] = float(np.median(g["paired_db_us"]))
                row["paired_kernel_us"] = float(np.median(g["paired_kernel_us"]))
            rows[e].append(row)
    return rows


def _median_build(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One engine and thread count over several build rounds: the median build (of an
    even count, the faster of the middle two)."""
    runs = sorted(runs, key=lambda r: r["build_s"])
    mid = runs[(len(runs) - 1) // 2] | {"search": []}
    mid["build_rounds_vps"] = [r["build_vps"] for r in runs]
    return mid


def _qps_at(result: dict[str, Any], target: float, key: str = "batch_qps") -> tuple[int, float]:
    """(ef, QPS) at the smallest swept ef whose recall reaches `target`; (0, 0) if none."""
    for row in result["search"]:
        if row["recall"] >= target and key in row:
            return row["ef"], row[key]
    return 0, 0.0


def tabulate(res: dict[str, dict[int, dict[str, Any]]], ttfq: dict[str, Any], meta: str) -> str:
    engines = [e for e in ENGINES if e in res and 1 in res[e]]
    lines = [f"# refimpl vs peers — {meta}", ""]
    lines.append("## Build and memory")
    lines.append("")
    lines.append(
        "| engine | build vec/s, 1 thread | (per CPU-s) | build vec/s, 2 threads | "
        "(per CPU-s) | 2t / 1t | recall@10 ef=64 (2t build) | bytes/vector | measured as |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for e in engines:
        one, two = res[e].get(1), res[e].get(2)
        two_vps = f"{two['build_vps']:,.0f}" if two else "—"
        speed = f"{two['build_vps'] / one['build_vps']:.2f}x" if two else "—"
        rec2 = f"{two['recall_ef64']:.4f}" if two else "—"
        two_cpu = f"{two['build_vps_cpu']:,.0f}" if two else "—"
        lines.append(
            f"| {e} | {one['build_vps']:,.0f} | {one['build_vps_cpu']:,.0f} | {two_vps} | "
            f"{two_cpu} | {speed} | {rec2} | "
            f"{one['bytes_per_vector']:,.0f} | {one['memory_kind']} "
            f"(RSS growth {one['rss_growth_per_vector']:,.0f}) |"
        )
    lines += ["", f"## Search, single thread (recall@10 / QPS, median of {REPEATS} passes)", ""]
    head = "| ef | " + " | ".join(f"{e} recall | {e} batched QPS | {e} 1-by-1 QPS" for e in engines)
    lines.append(head + " |")
    lines.append("|---:|" + "---:|---:|---:|" * len(engines))
    for i, ef in enumerate(EFS):
        cells = []
        for e in engines:
            row = res[e][1]["search"][i]
            cells.append(f"{row['recall']:.4f} | {row['batch_qps']:,.0f} | {row['one_qps']:,.0f}")
        lines.append(f"| {ef} | " + " | ".join(cells) + " |")
    lines += ["", "## Ratios refimpl / hnswlib (same run)", ""]
    if "hnswlib" in res and 1 in res["hnswlib"]:
        h1 = res["hnswlib"][1]
        lines.append("| figure | refimpl (kernel) | refimpl-db | target |")
        lines.append("|---|---:|---:|---|")

        def both(fn: Any) -> str:
            return " | ".join(
                fn(res[e][1]) if e in res and 1 in res[e] else "—"
                for e in ("refimpl", "refimpl-db")
            )

        lines.append(
            "| build 1 thread (wall) | "
            + both(lambda r: f"{r['build_vps'] / h1['build_vps']:.2f}x")
            + " | >= 1.0x |"
        )
        lines.append(
            "| build 1 thread (CPU time) | "
            + both(lambda r: f"{r['build_vps_cpu'] / h1['build_vps_cpu']:.2f}x")
            + " | >= 1.0x |"
        )
        for target in (0.95, 0.99):
            hef, hq = _qps_at(h1, target)

            def ratio(
                r: dict[str, Any], target: float = target, hq: float = hq, hef: int = hef
            ) -> str:
                ef, qps = _qps_at(r, target)
                if not qps or not hq:
                    return "not reached"
                return f"{qps / hq:.2f}x (ef {ef} vs {hef})"

            lines.append(f"| batched QPS at recall >= {target} | " + both(ratio) + " | >= 1.0x |")
            for label, key in (
                ("best pass of each", "batch_qps_best"),
                ("CPU time", "batch_qps_cpu"),
            ):
                _, h_qps = _qps_at(h1, target, key)

                def key_ratio(
                    r: dict[str, Any], target: float = target, key: str = key, hq: float = h_qps
                ) -> str:
                    qps = _qps_at(r, target, key)[1]
                    return f"{qps / hq:.2f}x" if qps and hq else "not reached"

                lines.append(
                    f"| batched QPS at recall >= {target} ({label}) | "
                    + both(key_ratio)
                    + " | >= 1.0x |"
                )
        lines.append(
            "| bytes/vector | "
            + both(lambda r: f"{r['bytes_per_vector'] / h1['bytes_per_vector']:.2f}x")
            + " | <= 1.0x |"
        )

        def scaling(e: str) -> str:
            if e in res and 1 in res[e] and 2 in res[e]:
                return f"{res[e][2]['build_vps'] / res[e][1]['build_vps']:.2f}x"
            return "—"

        lines.append(
            f"| 2-thread build / 1-thread | {scaling('refimpl')} | {scaling('refimpl-db')} "
            f"| >= 1.8x (hnswlib: {scaling('hnswlib')}) |"
        )
    if "refimpl-db" in res and 1 in res["refimpl-db"]:
        lines += [
            "",
            "## DB.search per-call overhead over its graph search (one query at a time)",
            "",
        ]
        lines.append(
            "Same process, same graph, calls interleaved: `DB.search(v, limit=10)` vs the "
            "`search()` of the graph that holds the rows."
        )
        lines.append("")
        lines.append("| ef | graph search µs | DB.search µs | overhead µs (target <= 20) |")
        lines.append("|---:|---:|---:|---:|")
        for row in res["refimpl-db"][1]["search"]:
            if "paired_db_us" in row:
                a, b = row["paired_kernel_us"], row["paired_db_us"]
                lines.append(f"| {row['ef']} | {a:.1f} | {b:.1f} | {b - a:.1f} |")
    if ttfq:
        lines += ["", "## Fresh process to first DB.search result (2,000 rows inserted)", ""]
        lines.append(
            "| Numba cache | wall s (target <= 1.5 warm) | import s | insert s | query s |"
        )
        lines.append("|---|---:|---:|---:|---:|")
        for kind in ("cold", "warm"):
            t = ttfq[kind]
            lines.append(
                f"| {kind} | {t['wall_s']:.2f} | {t['import_s']:.2f} | {t['insert_s']:.2f} | "
                f"{t['query_s']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10,000 x 128 with 200 queries")
    p.add_argument("--n", type=int, default=None, help="vectors (default 100000, quick 10000)")
    p.add_argument("--queries", type=int, default=None, help="queries (default 1000, quick 200)")
    p.add_argument("--dim", type=int, default=128)
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
    a = p.parse_args(argv)
    if a.child:
        run_child(a.child, int(a.threads), a.data, a.serve, a.cpu)
        return 0

    if a.rounds < 1:
        p.error(f"--rounds must be at least 1, got {a.rounds}")
    n = a.n or (10_000 if a.quick else 100_000)
    nq = a.queries or (200 if a.quick else 1000)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    threads = [int(t) for t in a.threads.split(",")]
    available = []
    for e in engines:
        mod = {"hnswlib": "hnswlib", "faiss": "faiss"}.get(e)
        if mod is None:
            available.append(e)
            continue
        try:
            __import__(mod)
            available.append(e)
        except ImportError:
            print(f"{e} is not installed; skipped", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="memcycle-bench-") as tmp:
        t0 = time.perf_counter()
        x, q = make_dataset(n, nq, a.dim)
        gt = ground_truth(x, q, K)
        data = Path(tmp) / "data.npz"
        np.savez(data, x=x, q=q, gt=gt)
        print(
            f"dataset {n} x {a.dim}, {nq} queries, ground truth in {time.perf_counter() - t0:.1f}s"
        )
        res: dict[str, dict[int, dict[str, Any]]] = {}
        servers: dict[str, _Child] = {}  # the 1-thread builds, kept for the search sweep
        pin = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        try:
            builds: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for rnd in range(a.rounds):
                last = rnd == a.rounds - 1
                for t in threads:
                    for e in available:
                        print(f"  build {e}, {t} thread(s), round {rnd + 1} ...", flush=True)
                        serve = last and t == 1
                        child = _Child(e, t, data, serve, Path(tmp), pin if t == 1 else None)
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
                res.setdefault(e, {})[t] = _median_build(runs)
            print(f"  search sweep, {len(servers)} engines interleaved ...", flush=True)
            n_one = min(nq, ONE_BY_ONE_QUERIES)
            for e, rows in interleaved_search(servers, nq, n_one).items():
                res[e][1]["search"] = rows
        finally:
            for child in servers.values():
                child.close()
        ttfq: dict[str, Any] = {}
        if not a.no_first_query and "refimpl-db" in available:
            cache = Path(tmp) / "numba-cache"
            cache.mkdir()
            ttfq["cold"] = first_query(cache)
            ttfq["warm"] = first_query(cache)
    cpu = platform.processor() or platform.machine()
    meta = (
        f"{n:,} x {a.dim} float32, {nq} queries, M={M}, ef_construction={EF_CONSTRUCTION}, L2; "
        f"{os.cpu_count()} CPUs ({cpu}); {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"1-thread builds and all searches pinned to CPU {pin}, searches interleaved; "
        f"builds: median of {a.rounds} round(s)"
    )
    table = tabulate(res, ttfq, meta)
    cmd = "python benchmarks/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table += f"\nCommand: `{cmd.strip()}`\n"
    print()
    print(table)
    a.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    kind = "quick" if a.quick else f"{n}"
    md = a.out / f"peers-{kind}-{stamp}.md"
    md.write_text(table)
    (a.out / f"peers-{kind}-{stamp}.json").write_text(
        json.dumps({"meta": meta, "results": res, "first_query": ttfq}, indent=1)
    )
    print(f"written {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
