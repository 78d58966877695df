"""The harness's cost over the engine it tests (issue 17, target 1): memcycle run / bare engine.

    python benchmarks/overhead.py                       # repeated-clear-insert + search-after-clear
    python benchmarks/overhead.py --passes 5 --scenario soak-200
    python benchmarks/overhead.py --startup 5           # child start-up only (warm cache)
    python benchmarks/overhead.py --bare SCENARIO       # one bare replay, prints JSON (internal)

Three kinds of pass per scenario, interleaved (the order rotates every pass, so a slow stretch
of the shared machine hits every kind alike), each in a fresh process timed from spawn to exit:

- `bare`: this script replays the scenario's steps on refimpl without the harness: the same
  scenario parser (`memcycle.scenario.load_scenario`), the same data generator calls
  (`memcycle.datagen.DataGen`, same seed, cycle and step keys), the same engine adapter and
  options, the same ops in the same order; no child process, no oracle, no recording, no report;
- `memray`: `memcycle run SCENARIO --out DIR` (memray on, reports written, flamegraphs at their
  default, `failed`);
- `no-memray`: the same with `--no-memray` (tracemalloc records instead).

It prints medians and the ratios to `bare`, then where the rest goes, from what each pass
wrote: the child's wall and its steps' seconds (report.json, events.jsonl), the parent's
share, and, measured apart in this process on the last pass's capture and steps, memray's
analysis (`memcycle.analysis.analyze`) and the oracle's work (`memcycle.oracle.Oracle`
mirroring the inserts and judging every search). Figures, never assertions; the machine
this was written on is shared, so only ratios of interleaved passes mean anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("bare", "memray", "no-memray")
DEFAULT_SCENARIOS = ("repeated-clear-insert", "search-after-clear")


def scenario_path(name: str) -> Path:
    """A bundled scenario by name, or a path."""
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        return p
    from memcycle.bundled import scenarios_dir

    found = scenarios_dir() / f"{name}.toml"
    if not found.exists():
        raise SystemExit(f"overhead.py: no bundled scenario {name!r} (expected {found})")
    return found


# -- the bare replay (runs in its own process) ----------------------------------------------
class BareReplay:
    """The scenario's engine calls and nothing else; ids bookkept as the oracle orders them."""

    def __init__(self, path: Path, *, with_oracle: bool = False) -> None:
        from memcycle.datagen import DataGen
        from memcycle.engines.base import EngineConfig
        from memcycle.engines.registry import make_engine
        from memcycle.oracle import Oracle
        from memcycle.scenario import load_scenario

        self.scenario = load_scenario(path)
        spec = self.scenario.default_engine()
        self.engine = make_engine(spec, EngineConfig(options=self.scenario.options(spec)))
        self.data = DataGen(self.scenario.seed, self.scenario.metric)
        self.live: dict[int, None] = {}  # insertion-ordered, like the oracle's rows
        self.deleted: list[int] = []
        self.open_dim: int | None = None
        self.last_dim: int | None = None
        # with_oracle: also mirror into the oracle and judge searches, timed apart
        self.oracle = Oracle(self.scenario.metric) if with_oracle else None
        self.oracle_seconds = 0.0
        self.engine_seconds = 0.0

    def _call(self, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def _mirror(self, fn: str, *args: Any) -> Any:
        if self.oracle is None:
            return None
        t0 = time.perf_counter()
        out = getattr(self.oracle, fn)(*args)
        self.oracle_seconds += time.perf_counter() - t0
        return out

    def _open(self, dim: int) -> None:
        if self.open_dim != dim:
            self._call(self.engine.open, dim, self.scenario.metric)
            self.open_dim = self.last_dim = dim

    def _live_ids(self) -> np.ndarray:
        return np.fromiter(self.live, dtype=np.int64, count=len(self.live))

    def step(self, cycle: int, dim: int, si: int, step: Any) -> None:
        op = step.op
        if op == "open":
            self._open(dim)
        elif op == "insert":
            if step.duplicates:
                raise SystemExit("overhead.py: insert with duplicates is not replayed bare")
            self._open(dim)
            n = int(step.count or 0)
            if step.reuse_deleted:
                reuse = np.asarray(self.deleted[:n], dtype=np.int64)
                ids = np.concatenate([reuse, self.data.next_ids(n - len(reuse))])
            else:
                ids = self.data.next_ids(n)
            vectors = self.data.vectors(n, dim, cycle, si)
            meta = self.data.metadata(ids, cycle) if step.metadata else None
            size = step.batch or n
            for lo in range(0, n, size):
                hi = min(lo + size, n)
                m = meta[lo:hi] if meta is not None else None
                self._call(self.engine.insert, ids[lo:hi], vectors[lo:hi], m)
                self._mirror("insert", ids[lo:hi], vectors[lo:hi], m)
            for i in ids.tolist():
                self.live[i] = None
            back = set(ids.tolist())
            self.deleted = [d for d in self.deleted if d not in back]
        elif op == "search":
            k = int(step.k or 10)
            flt = step.filter_dict()
            queries = self.data.queries(
                int(step.queries or 10), self.open_dim or self.last_dim or dim, cycle, si
            )
            ids, dists = self._call(self.engine.search, queries, k, flt)
            self._mirror("check_search", queries, k, ids, flt, dists)
        elif op == "get":
            ids = self.data.pick(self._live_ids(), int(step.count or 10), cycle, si)
            if len(ids):
                self._call(self.engine.get, ids)
        elif op == "delete":
            live = self._live_ids()
            n = (
                step.count
                if step.count is not None
                else math.ceil((step.fraction or 0) * len(live))
            )
            ids = self.data.pick(live, n, cycle, si)
            if len(ids):
                self._call(self.engine.delete, ids)
                self._mirror("delete", ids)
                for i in ids.tolist():
                    del self.live[i]
                    self.deleted.append(i)
        elif op in ("clear", "destroy", "reload"):
            fn = {"clear": "clear", "destroy": "close", "reload": "reload"}[op]
            self._call(getattr(self.engine, fn))
            self._mirror("clear")
            self.live.clear()
            self.deleted.clear()
            self.open_dim = None
        elif op == "checkpoint":
            pass
        else:
            raise SystemExit(f"overhead.py: op {op!r} is not replayed bare")
        self._call(self.engine.count)

    def run(self) -> None:
        for pc in self.scenario.plan:
            for si, step in enumerate(pc.steps):
                self.step(pc.index, pc.dimension, si, step)
        self._call(self.engine.close)


def bare_main(path: Path, with_oracle: bool) -> None:
    t0 = time.perf_counter()
    rep = BareReplay(path, with_oracle=with_oracle)
    t1 = time.perf_counter()
    rep.run()
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "setup_seconds": t1 - t0,
                "replay_seconds": t2 - t1,
                "engine_seconds": rep.engine_seconds,
                "oracle_seconds": rep.oracle_seconds,
            }
        )
    )


# -- the timed passes -------------------------------------------------------------------------
def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"overhead.py: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return wall, proc.stdout


def run_dir(run_root: Path) -> Path:
    """The one run folder (named after the run key's slug) under a `memcycle run --out`."""
    return next(p for p in run_root.iterdir() if (p / "events.jsonl").exists())


def memcycle_pass(path: Path, memray: bool, out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "memcycle", "run", str(path), "--out", str(out)]
    if not memray:
        cmd.append("--no-memray")
    wall, _ = timed(cmd)
    report = json.loads((out / "report.json").read_text())
    run = report["runs"][0]
    events = [json.loads(x) for x in (run_dir(out) / "events.jsonl").open()]
    steps = sum(e["seconds"] for e in events if e.get("kind") == "step")
    end = next((e for e in events if e.get("kind") == "end"), {})
    return {
        "wall": wall,
        "child_wall": float(run["seconds"]),
        "child_main": float(end.get("seconds") or 0.0),
        "steps": steps,
    }


def bare_pass(path: Path) -> dict[str, float]:
    wall, out = timed([sys.executable, __file__, "--bare", str(path)])
    got = json.loads(out.strip().splitlines()[-1])
    return {"wall": wall, "replay": got["replay_seconds"], "engine": got["engine_seconds"]}


def measure_apart(path: Path, memray_out: Path) -> dict[str, float]:
    """Analysis and oracle seconds, measured in this process (after the timed passes)."""
    from memcycle.analysis import analyze

    d = run_dir(memray_out)
    events = [json.loads(x) for x in (d / "events.jsonl").open()]
    roots = next(e for e in events if e.get("kind") == "start")["source_roots"]
    markers = [e for e in events if e.get("kind") == "marker"]
    t0 = time.perf_counter()
    analyze(d / "capture.bin", roots, markers=markers)
    analysis = time.perf_counter() - t0
    _wall, out = timed([sys.executable, __file__, "--bare", str(path), "--with-oracle"])
    got = json.loads(out.strip().splitlines()[-1])
    return {"analysis": analysis, "oracle": got["oracle_seconds"]}


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def bench(name: str, passes: int) -> dict[str, Any]:
    path = scenario_path(name)
    results: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="memcycle-overhead-") as tmp:
        root = Path(tmp)
        bare_pass(path)  # one untimed pass: page cache, numba's index files
        for i in range(passes):
            order = KINDS[i % 3 :] + KINDS[: i % 3]
            for kind in order:
                if kind == "bare":
                    results[kind].append(bare_pass(path))
                else:
                    out = root / f"{kind}-{i}"
                    results[kind].append(memcycle_pass(path, kind == "memray", out))
            print(
                f"  {name} pass {i + 1}/{passes}: "
                + ", ".join(f"{k} {results[k][-1]['wall']:.2f} s" for k in KINDS),
                file=sys.stderr,
            )
        apart = measure_apart(path, root / f"memray-{passes - 1}")
    return {"scenario": name, "passes": passes, "results": results, "apart": apart}


def table(all_results: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | bare s | memray s | ratio | no-memray s | ratio | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in all_results:
        res = r["results"]
        bare = median(res["bare"], "wall")
        mem = median(res["memray"], "wall")
        nom = median(res["no-memray"], "wall")
        lines.append(
            f"| {r['scenario']} | {bare:.2f} | {mem:.2f} | {mem / bare:.2f}x | {nom:.2f} | "
            f"{nom / bare:.2f}x | <= 1.15x / <= 1.05x |"
        )
    lines += [
        "",
        "Where the rest goes (medians, seconds; `analysis` and `oracle` measured apart):",
        "",
        "| scenario | kind | wall | bare engine calls | child wall | child steps | "
        "child outside steps | parent (CLI, analysis, reports) | analysis | oracle |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in all_results:
        res, apart = r["results"], r["apart"]
        lines.append(
            f"| {r['scenario']} | bare | {median(res['bare'], 'wall'):.2f} | "
            f"{median(res['bare'], 'engine'):.2f} | | | | | | |"
        )
        for kind in ("memray", "no-memray"):
            rows = res[kind]
            wall, child, steps = (median(rows, k) for k in ("wall", "child_wall", "steps"))
            extra = (
                f"{apart['analysis']:.2f} | {apart['oracle']:.2f}" if kind == "memray" else " | "
            )
            lines.append(
                f"| {r['scenario']} | {kind} | {wall:.2f} | | {child:.2f} | {steps:.2f} | "
                f"{child - steps:.2f} | {wall - child:.2f} | {extra} |"
            )
    return "\n".join(lines)


def startup(passes: int) -> None:
    """Child start-up with a warm cache, memray and tracemalloc off: `harness_figures.py`'s
    timing of its tiny scenario (spawn to engine built, and the whole tiny child)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness_figures import TINY, timed_child

    with tempfile.TemporaryDirectory(prefix="memcycle-startup-") as tmp:
        path = Path(tmp) / "tiny.toml"
        path.write_text(TINY)
        rows = [timed_child(path, memray=False) for _ in range(passes)]
    print(
        f"child start-up, warm cache, {passes} passes: spawn -> engine built median "
        f"{statistics.median(r[2] for r in rows):.2f} s, whole tiny child median "
        f"{statistics.median(r[0] for r in rows):.2f} s; "
        f"passes {[(round(r[2], 2), round(r[0], 2)) for r in rows]}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", help="bundled name or .toml (repeatable)")
    ap.add_argument("--passes", type=int, default=5, help="passes of each kind (default 5)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--startup", type=int, metavar="N", help="only time N child start-ups")
    ap.add_argument("--bare", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--with-oracle", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        bare_main(args.bare, args.with_oracle)
        return
    if args.startup:
        startup(args.startup)
        return
    if args.passes < 1:
        raise SystemExit(f"overhead.py: --passes must be at least 1, got {args.passes}")
    all_results = [bench(name, args.passes) for name in args.scenario or DEFAULT_SCENARIOS]
    print(
        f"# memcycle overhead, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs, {args.passes} interleaved passes, medians\n"
    )
    print(table(all_results))
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=1))


if __name__ == "__main__":
    main()
