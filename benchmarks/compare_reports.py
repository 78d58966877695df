"""Did a speed change keep the judgement? Compare two `memcycle run`/`faults` report.json files.

    python benchmarks/compare_reports.py BEFORE/report.json AFTER/report.json

Per run key: the verdict, the findings (verdict, check, cycle), the allocator's live bytes per
cycle, and the per-cycle growth of memray's engine bytes (differences between consecutive
cycles; absolute engine bytes carry one-off offsets such as a pymalloc arena). Prints every
difference and a count of runs identical in all of them. Two runs of the same tree are the noise
floor: compare those too before reading anything into a growth difference of a few bytes.
"""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any


def summary(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for run in json.loads(path.read_text())["runs"]:
        engine = [c.get("memray_leaked_bytes") for c in run.get("cycles", [])]
        out[run["key"]] = {
            "verdict": run["verdict"],
            "findings": sorted(
                (str(f.get("verdict")), str(f.get("check")), f.get("cycle") or 0)
                for f in run["findings"]
            ),
            "allocator live bytes": [c.get("live_bytes") for c in run.get("cycles", [])],
            "memray growth": [b - a for a, b in pairwise(engine) if None not in (a, b)],
        }
    return out


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: compare_reports.py BEFORE/report.json AFTER/report.json")
    before, after = (summary(Path(p)) for p in sys.argv[1:])
    same = 0
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            print(f"only in {'after' if a is None else 'before'}: {key}")
            continue
        diffs = [f for f in a if a[f] != b[f]]
        if not diffs:
            same += 1
        for f in diffs:
            print(f"{key}: {f}: {str(a[f])[:160]} -> {str(b[f])[:160]}")
    verdicts = all(before[k]["verdict"] == after[k]["verdict"] for k in before if k in after)
    print(
        f"{same}/{len(before)} runs identical in every field; verdicts identical: {verdicts}; "
        f"findings identical: "
        f"{all(before[k]['findings'] == after[k]['findings'] for k in before if k in after)}"
    )


if __name__ == "__main__":
    main()
