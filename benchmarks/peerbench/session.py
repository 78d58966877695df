"""The parent's side: engine children, the interleaved search timing, the fresh-process
start of refimpl.DB.

Builds take minutes and one core's speed drifts by up to 2x within seconds on a
shared machine, so search is never compared across moments: the 1-thread builds
stay alive and every engine answers one timed pass in turn, the order rotating,
`REPEATS` rounds per ef; medians are reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EFS = (16, 32, 64, 128)
REPEATS = 9  # timed passes per search figure; the median is reported
SCRIPT = Path(__file__).resolve().parent.parent / "peers.py"


class Child:
    """One engine built in its own fresh process; with `serve`, kept alive for timing."""

    def __init__(
        self, engine: str, threads: int, data: Path, serve: bool, tmp: Path, cpu: int | None
    ) -> None:
        cmd = [sys.executable, str(SCRIPT), "--child", engine, "--threads", str(threads)]
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
    children: dict[str, Child], nq: int, n_one: int
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
            rows[e].append(_search_row(ef, got[e], nq, n_one))
    return rows


def _search_row(ef: int, g: dict[str, list[Any]], nq: int, n_one: int) -> dict[str, Any]:
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
    return row


def median_build(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One engine and thread count over several build rounds: the median build (of an
    even count, the faster of the middle two)."""
    runs = sorted(runs, key=lambda r: r["build_s"])
    mid = runs[(len(runs) - 1) // 2] | {"search": []}
    mid["build_rounds_vps"] = [r["build_vps"] for r in runs]
    return mid


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
