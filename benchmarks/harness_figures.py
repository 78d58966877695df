"""The harness's own costs: memray recording overhead and child start-up (issue 4's figures).

    python benchmarks/harness_figures.py [--runs 5]

Runs the 5-cycle 10,000 x 128 scenario (scenarios/repeated-clear-insert.toml) in child
processes on refimpl, alternately with and without memray (tracemalloc off in both, so
only memray's cost is measured), and a tiny scenario for start-up with a warm Numba
cache. Prints medians; figures, never assertions. Time the whole bundled suite with the
CLI itself: `/usr/bin/time -f "wall %e s" memcycle run --jobs 2 --out /tmp/bundle`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from memcycle.isolation import run_child
from memcycle.protocol import ChildConfig
from memcycle.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "repeated-clear-insert.toml"
TINY = """dimension = 8
[[cycle]]
steps = [ { op = "insert", count = 10 }, { op = "search", queries = 1, k = 1 }, { op = "clear" } ]
"""


def timed_child(scenario: Path, memray: bool) -> tuple[float, float, float]:
    """(child wall s, sum of step seconds, seconds from spawn to engine built)."""
    capture = str(Path(tempfile.mkdtemp()) / "capture.bin") if memray else None
    t0 = time.perf_counter()
    started: list[float] = []

    def on_event(ev: dict) -> None:
        if ev.get("kind") == "start":
            started.append(time.perf_counter() - t0)

    config = ChildConfig(load_scenario(scenario), "refimpl", memray_path=capture, tracemalloc=False)
    result = run_child(
        config,
        timeout=600,
        on_event=on_event,
    )
    if result.exit.get("kind") != "clean":
        raise SystemExit(f"child did not end cleanly: {result.exit}")
    steps = sum(e["seconds"] for e in result.events if e.get("kind") == "step")
    return result.seconds, steps, started[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind (default 5)")
    runs = parser.parse_args().runs
    plain, recorded = [], []
    for _ in range(runs):  # alternate, so load changes hit both kinds alike
        plain.append(timed_child(SCENARIO, memray=False))
        recorded.append(timed_child(SCENARIO, memray=True))
    for label, rows in (("without memray", plain), ("with memray", recorded)):
        print(
            f"{label:15} child wall median {statistics.median(r[0] for r in rows):6.2f} s, "
            f"steps median {statistics.median(r[1] for r in rows):6.2f} s, "
            f"runs {[round(r[0], 2) for r in rows]}"
        )
    wall = statistics.median(r[0] for r in recorded) / statistics.median(r[0] for r in plain)
    steps = statistics.median(r[1] for r in recorded) / statistics.median(r[1] for r in plain)
    print(f"memray overhead: {wall:.2f}x child wall, {steps:.2f}x step time (goal <= 1.3x)")

    tiny = Path(tempfile.mkdtemp()) / "tiny.toml"
    tiny.write_text(TINY)
    starts = [timed_child(tiny, memray=False) for _ in range(runs)]
    print(
        f"child start-up, warm Numba cache: spawn -> engine built median "
        f"{statistics.median(r[2] for r in starts):.2f} s; whole tiny run median "
        f"{statistics.median(r[0] for r in starts):.2f} s"
    )


if __name__ == "__main__":
    main()
