"""End to end through real child processes: crash, leak, and refimpl clean on the bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from memcycle.runner import RunSpec, run_many, run_one
from memcycle.scenario import find_scenarios, load_scenario

BUNDLED = Path(__file__).resolve().parent.parent / "scenarios"
ENG = "tests.engines_for_tests"
QUICK = ["clear-empty-and-twice.toml", "singleton-destroy-recreate.toml"]


def _scenario(tmp_path: Path, options: str = "", repeat: int = 6) -> Path:
    p = tmp_path / "e2e.toml"
    p.write_text(
        f"""
name = "e2e"
dimension = 16
seed = 2
[engine]
{options}
[[cycle]]
repeat = {repeat}
steps = [
  {{ op = "insert", count = 200, batch = 50 }},
  {{ op = "search", queries = 5, k = 5, min_recall = 0.99 }},
  {{ op = "clear" }},
]
"""
    )
    return p


def test_segfaulting_engine_is_a_crash_with_the_cycle(tmp_path: Path) -> None:
    rec = run_one(
        _scenario(tmp_path, "crash_after_clears = 3"), f"{ENG}:make_segfault", memray=True
    )
    assert rec.verdict == "crash" and not rec.passed
    f = rec.findings[0]
    assert f.evidence["signal_name"] == "SIGSEGV"
    assert (f.cycle, f.op) == (4, "insert")
    assert [c.status for c in rec.cycles] == ["ok", "ok", "ok", "crash", "-", "-"]
    assert rec.memray and rec.memray["error"] is None  # the capture survived the crash


@pytest.mark.parametrize("memray", [True, False])
def test_leaking_engine_is_a_leak(tmp_path: Path, memray: bool) -> None:
    rec = run_one(
        _scenario(tmp_path, "leak_bytes = 102400", repeat=8), f"{ENG}:make_leaky", memray=memray
    )
    assert rec.verdict == "leak"
    f = rec.findings[0]
    source = "memray" if memray else "tracemalloc"
    assert source in f.evidence["source"]
    assert 95 * 1024 < f.evidence["slope_bytes_per_cycle"] < 120 * 1024
    assert rec.cycles[0].status == "ok" and rec.cycles[-1].status == "leak"


def test_clean_engine_long_run_is_clean(tmp_path: Path) -> None:
    rec = run_one(_scenario(tmp_path, repeat=40), f"{ENG}:make_bruteforce", memray=True)
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    assert len(rec.cycles) == 40 and {c.status for c in rec.cycles} == {"ok"}


def test_stale_engine_is_wrong_result(tmp_path: Path) -> None:
    p = tmp_path / "stale.toml"
    p.write_text(
        """
dimension = 8
[[cycle]]
repeat = 2
steps = [ { op = "insert", count = 50 }, { op = "clear" }, { op = "search", queries = 3, k = 3 } ]
"""
    )
    rec = run_one(p, f"{ENG}:make_stale", memray=False)
    assert rec.verdict == "wrong-result"
    stale = next(f for f in rec.findings if "stale" in f.summary)
    assert (stale.cycle, stale.op) == (1, "search") and stale.evidence["check"]["n_stale"] > 0


@pytest.mark.parametrize("name", QUICK)
def test_refimpl_quick_scenarios_are_clean(name: str) -> None:
    rec = run_one(BUNDLED / name, memray=True)
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    assert rec.passed and all(c.status == "ok" for c in rec.cycles)
    assert all(c.live_blocks_after_clear == 0 for c in rec.cycles)


@pytest.mark.slow
def test_refimpl_whole_bundle_is_clean(tmp_path: Path) -> None:
    files = find_scenarios([BUNDLED])
    report = run_many([RunSpec(f) for f in files], tmp_path, jobs=2)
    bad = {r.scenario: [f.summary for f in r.findings] for r in report.runs if not r.passed}
    assert not bad
    assert {r.scenario for r in report.runs} == {load_scenario(f).name for f in files}
    for r in report.runs:
        # a memray capture for every run; flamegraphs are rendered for failed runs only
        assert r.memray and r.memray.get("capture") and not r.memray.get("flamegraph")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "allocator", "verdict"),
    [
        ("flat-buffer-leak", "checked", "leak"),
        ("sparse-map-recreate", "checked", "double-free"),
        ("sparse-map-recreate", "raw", "double-free"),  # glibc's abort message
        ("migration-overflow", "checked", "buffer-overflow"),
    ],
)
def test_refimpl_faults_are_found(fault: str, allocator: str, verdict: str) -> None:
    rec = run_one(
        BUNDLED / "search-after-clear.toml",
        "refimpl",
        allocator,
        [fault],
        memray=False,
        expected=verdict,
    )
    assert rec.verdict == verdict, [f.summary for f in rec.findings]
    assert rec.findings[0].cycle is not None and rec.findings[0].evidence
