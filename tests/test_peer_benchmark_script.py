"""benchmarks/peers.py end to end at a tiny size: its processes talk, and the table is whole.

Figures are never checked (they are measurements); the structure of what the
script writes is: every engine asked for, every ef, the ratios, the build rounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from peers import need_peer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "peers.py"


def test_tiny_run_writes_the_table_and_json_for_each_engine(tmp_path: Path) -> None:
    need_peer("hnswlib")
    cmd = [sys.executable, str(SCRIPT), "--n", "1500", "--queries", "40", "--no-first-query"]
    cmd += ["--engines", "refimpl,refimpl-db,hnswlib", "--rounds", "2", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (md,) = tmp_path.glob("peers-1500-*.md")
    (js,) = tmp_path.glob("peers-1500-*.json")
    table = md.read_text()
    for heading in ("## Build and memory", "## Ratios refimpl / hnswlib", "overhead µs"):
        assert heading in table
    results = json.loads(js.read_text())["results"]
    assert set(results) == {"refimpl", "refimpl-db", "hnswlib"}
    for engine, by_threads in results.items():
        assert set(by_threads) == {"1", "2"}, engine
        assert len(by_threads["1"]["build_rounds_vps"]) == 2
        rows = by_threads["1"]["search"]
        assert [r["ef"] for r in rows] == [16, 32, 64, 128]
        assert all(0.0 <= r["recall"] <= 1.0 and r["batch_qps"] > 0 for r in rows)
    assert all("paired_db_us" in r for r in results["refimpl-db"]["1"]["search"])


def test_a_bad_round_count_is_refused_with_a_message() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "0"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "--rounds must be at least 1" in proc.stderr
