"""memray capture replay: per-marker engine-attributed bytes, attribution, broken captures."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import memray
import pytest
from memcycle.analysis import analyze, external_assets, flamegraphs, ledgers_at_markers
from memcycle.isolation import run_child
from memcycle.protocol import MARKER_BASE, ChildConfig, marker_index, marker_size
from memcycle.records import RunRecord, StepEvent
from memcycle.runner import run_one
from memcycle.scenario import load_scenario

HERE = Path(__file__).resolve().parent


def _capture(tmp_path: Path, engine: str, repeat: int = 5) -> tuple[str, dict]:
    scen = tmp_path / "s.toml"
    scen.write_text(
        f"""
dimension = 8
[[cycle]]
repeat = {repeat}
steps = [ {{ op = "insert", count = 100 }}, {{ op = "clear" }} ]
"""
    )
    cap = str(tmp_path / "capture.bin")
    config = ChildConfig(
        load_scenario(scen),
        f"tests.engines_for_tests:{engine}",
        memray_path=cap,
        tracemalloc=False,
    )
    res = run_child(config, timeout=60)
    assert res.exit["kind"] == "clean", res.exit
    start = next(e for e in res.events if e["kind"] == "start")
    return cap, {"roots": start["source_roots"], "events": res.events}


def test_marker_sizes_round_trip() -> None:
    assert marker_index(marker_size(0)) == 0
    assert marker_index(marker_size(41)) == 41
    assert marker_index(MARKER_BASE - 2) is None
    assert marker_index(marker_size(3) + 1) is None


def test_leaky_engine_bytes_grow_per_marker(tmp_path: Path) -> None:
    cap, info = _capture(tmp_path, "make_leaky")
    an = analyze(cap, info["roots"])
    assert an.error is None and an.records > 0
    markers = [e for e in info["events"] if e["kind"] == "marker"]
    assert [m["index"] for m in an.markers] == [m["index"] for m in markers]
    after_clear = [
        an.markers[m["index"]]["engine_live_bytes"] for m in markers if m["op"] == "clear"
    ]
    steps = [b - a for a, b in itertools.pairwise(after_clear)]
    assert all(100 * 1024 <= s < 110 * 1024 for s in steps), steps
    assert any(
        any("engines_for_tests.py" in f and f.startswith("clear") for f in t["stack"][:3])
        for t in an.top_live
    )
    assert an.peak_bytes >= an.engine_peak_bytes > 0


def test_clean_engine_does_not_grow_and_attribution_needs_roots(tmp_path: Path) -> None:
    cap, info = _capture(tmp_path, "make_bruteforce")
    an = analyze(cap, info["roots"])
    after = [m["engine_live_bytes"] for m in an.markers]
    assert max(after[1:]) - min(after[1:]) < 16 * 1024
    nobody = analyze(cap, [str(tmp_path / "elsewhere")])
    assert nobody.engine_peak_bytes == 0 and nobody.top_live == []
    assert nobody.peak_bytes == an.peak_bytes


def test_broken_capture_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a memray file")
    an = analyze(bad, [])
    assert an.error and an.markers == []
    assert flamegraphs(bad, tmp_path) == {}


def test_flamegraphs_render_as_pages_that_load_nothing_from_the_network(tmp_path: Path) -> None:
    cap, _ = _capture(tmp_path, "make_bruteforce", repeat=1)
    made = flamegraphs(cap, tmp_path)
    assert set(made) == {"flamegraph", "leaks_flamegraph"}  # not *_online: self-contained
    vendor = Path(memray.__file__).parent / "reporters" / "templates" / "assets" / "vendor"
    d3 = (vendor / "d3.min.js").read_text()
    for path in made.values():
        html = Path(path).read_text()
        assert "<html" in html[:2000].lower()
        assert external_assets(html) == []
        assert d3[:200] in html  # the d3 that ships in memray's wheel, inline (--no-web)


def test_external_assets_finds_cdn_script_and_stylesheet_tags() -> None:
    page = (
        '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap.min.css">'
        "<script src='//cdn.example.org/d3.min.js'></script>"
        '<script>var u = "https://not-a-tag.example";</script>'
        '<a href="https://bloomberg.github.io/memray/">docs</a>'
    )
    found = external_assets(page)
    assert len(found) == 2 and "bootstrap" not in found[1]


def test_top_growth_points_at_the_leaking_line(tmp_path: Path) -> None:
    cap, info = _capture(tmp_path, "make_leaky")
    first_cycle = [e["index"] for e in info["events"] if e["kind"] == "marker" and e["cycle"] == 1]
    an = analyze(cap, info["roots"], baseline_index=first_cycle[-1])
    top = an.top_growth[0]
    assert top["blocks"] == 4 and 4 * 100 * 1024 <= top["bytes"] < 5 * 100 * 1024
    assert any(f.startswith("clear (") and "engines_for_tests.py" in f for f in top["stack"][:3])


def test_top_live_lists_the_engines_own_stacks_not_what_its_imports_allocated(
    tmp_path: Path,
) -> None:
    cap, info = _capture(tmp_path, "make_importing_leaky")
    an = analyze(cap, info["roots"])
    # the 4 MiB the imported module allocated passes through the engine's import line,
    # but loading code is not engine data: per-cycle engine bytes leave it out ...
    assert all(m["engine_live_bytes"] < 4 << 20 for m in an.markers)
    # ... and top_live ranks only what the engine's own code allocated
    assert an.top_live
    for t in an.top_live:
        assert not any("ballast_module.py" in f for f in t["stack"]), t["stack"][:3]
        assert "importlib" not in t["stack"][0], t["stack"][:3]
    assert any(f.startswith("clear (") for f in an.top_live[0]["stack"][:3])


# --- an allocator that keeps freed blocks (the checked allocator's quarantine) -----------
QUARANTINE_ENGINE = "tests.quarantine_engine"


def _quarantine_run(tmp_path: Path, factory: str, repeat: int = 6) -> RunRecord:
    scen = tmp_path / "q.toml"
    scen.write_text(
        f"""
name = "quarantine"
dimension = 32
[[cycle]]
repeat = {repeat}
steps = [ {{ op = "insert", count = 2000 }}, {{ op = "clear" }} ]
[expect]
verdict = "clean"
"""
    )
    return run_one(scen, f"{QUARANTINE_ENGINE}:{factory}", out_dir=tmp_path, flamegraphs="none")


def test_checked_allocators_quarantine_is_measured_apart_from_engine_live_bytes(
    tmp_path: Path,
) -> None:
    rec = _quarantine_run(tmp_path, "make_clean")
    assert rec.verdict == "clean", rec.findings
    clears = [m for m in rec.memray["markers"] if m["op"] == "clear"]
    # memray's raw engine figure climbs by every block the allocator keeps poisoned ...
    raw = [m["engine_live_with_cache_bytes"] for m in clears]
    assert raw[-1] - raw[0] > 1 << 20
    # ... which is exactly the ledger's quarantine (2000 x 32 float32 rows + guards a cycle)
    cached = [m["cached_bytes"] for m in clears]
    assert all(b - a == 2000 * 32 * 4 + 128 for a, b in itertools.pairwise(cached)), cached
    # engine live bytes leave it out: flat, and what the cycle table and the gate read
    live = [m["engine_live_bytes"] for m in clears]
    assert max(live) - min(live) < 4 * 1024, live
    assert [m["engine_live_bytes"] for m in clears] == [
        m["engine_live_with_cache_bytes"] - m["cached_bytes"] for m in clears
    ]
    summaries = [c.memray_leaked_bytes or 0 for c in rec.cycles]
    assert max(summaries) - min(summaries) < 4 * 1024, summaries
    # memray's view of the allocator's blocks at the end is the quarantine it reports
    cache = rec.memray["cache"]
    assert cache["live_bytes"] == 0
    assert 0 <= cache["allocator_bytes"] - cache["bytes"] < 16 * 1024
    assert any("alloc.py" in f for f in cache["allocator_files"])
    # nothing of the quarantine is ranked as live or as growth
    for entry in rec.memray["top_live"] + rec.memray["top_growth"]:
        assert entry["bytes"] < 64 * 1024, entry


def test_leak_ranking_puts_the_leaked_block_above_the_larger_quarantine(tmp_path: Path) -> None:
    rec = _quarantine_run(tmp_path, "make_leaky")
    assert rec.verdict == "leak"
    top = rec.memray["top_growth"][0]
    # 1 KiB a cycle leaked, 250 KiB a cycle quarantined: the leak comes first, by label
    assert top["label"] == "leaked.rows" and top["source"] == "allocator ledger"
    assert top["bytes"] == 1024 * (top["blocks"]) and top["blocks"] >= 5
    assert any("quarantine_engine.py" in f and f.startswith("clear (") for f in top["stack"])
    assert rec.memray["top_live"][0]["label"] == "leaked.rows"
    ranked = rec.memray["top_live"] + rec.memray["top_growth"]
    assert not any(e.get("label") == "engine.rows" for e in ranked)
    assert not any("alloc.py" in f for e in ranked for f in e["stack"][:1])
    # the quarantine is shown apart, with the allocator's stacks
    assert rec.memray["cache"]["bytes"] > 1 << 20
    assert rec.memray["cache"]["stacks"][0]["bytes"] > 1 << 20


def test_a_cache_memray_cannot_find_in_the_allocators_stacks_is_never_subtracted(
    tmp_path: Path,
) -> None:
    rec = _quarantine_run(tmp_path, "make_claims_cache")
    clears = [m for m in rec.memray["markers"] if m["op"] == "clear"]
    assert clears[-1]["cached_bytes"] >= 5 * 100 * 1024  # the ledger's claim is kept ...
    assert not any(m["cache_subtracted"] for m in clears)  # ... but not subtracted
    live = [m["engine_live_bytes"] for m in clears]
    assert all(100 * 1024 <= b - a < 110 * 1024 for a, b in itertools.pairwise(live)), live
    assert rec.memray["cache"] == {}


def test_ledgers_at_markers_takes_the_snapshot_each_marker_follows() -> None:
    def step(cycle: int, i: int, op: str, cached: int) -> StepEvent:
        ev = StepEvent(cycle=cycle, step=i, op=op, ok=True, seconds=0.0)
        ev.memory = {"ledger": {"cached_bytes": cached}}
        return ev

    steps = [step(1, 0, "insert", 1), step(1, 1, "clear", 2), step(1, 2, "close", 3)]
    markers = [
        {"index": 0, "cycle": 1, "step": 1, "op": "clear"},
        {"index": 1, "cycle": 1, "step": 2, "op": "end-of-cycle"},  # after the last step
        {"index": 2, "cycle": 1, "step": 2, "op": "close"},  # the teardown's own snapshot
        {"index": 3, "cycle": 2, "step": 0, "op": "clear"},  # no step event: no ledger
    ]
    got = ledgers_at_markers(markers, steps)
    assert {i: led["cached_bytes"] for i, led in got.items()} == {0: 2, 1: 2, 2: 3}


@pytest.mark.slow
def test_flat_buffer_leak_under_checked_is_a_leak_whose_top_growth_is_the_flat_buffer(
    tmp_path: Path,
) -> None:
    scen = HERE.parent / "scenarios" / "faults" / "flat-buffer-leak.toml"
    rec = run_one(scen, "refimpl", "checked", out_dir=tmp_path, flamegraphs="none")
    assert rec.verdict == "leak"
    assert rec.memray["cache"]["bytes"] > 0  # the quarantine was there, and set apart
    top = rec.memray["top_growth"][0]
    assert top["label"].startswith("flat."), rec.memray["top_growth"][:3]
    assert any("flat_buffer.py" in f for f in top["stack"][:2])
    assert not any(
        e.get("label", "").startswith("hnsw") or any("hnsw.py" in f for f in e["stack"][:3])
        for e in rec.memray["top_growth"][:2]
    )


@pytest.mark.slow
def test_the_same_table_without_the_fault_under_checked_is_clean_with_flat_engine_bytes(
    tmp_path: Path,
) -> None:
    sc = load_scenario(HERE.parent / "scenarios" / "faults" / "flat-buffer-leak.toml")
    rec = run_one(
        replace(sc, faults=()), "refimpl", "checked", out_dir=tmp_path, flamegraphs="none"
    )
    assert rec.verdict == "clean", rec.findings
    clears = [m for m in rec.memray["markers"] if m["op"] == "clear"]
    assert clears[-1]["cached_bytes"] > clears[0]["cached_bytes"] > 0  # the quarantine grows
    live = [m["engine_live_bytes"] for m in clears]
    assert max(live[1:]) - min(live[1:]) < 16 * 1024, live
