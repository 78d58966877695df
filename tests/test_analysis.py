"""memray capture replay: per-marker engine-attributed bytes, attribution, broken captures."""

from __future__ import annotations

import itertools
from pathlib import Path

from memcycle.analysis import analyze, flamegraphs
from memcycle.isolation import run_child
from memcycle.recording import MARKER_BASE, marker_index, marker_size

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
    res = run_child(
        {
            "scenario": str(scen),
            "engine": f"tests.engines_for_tests:{engine}",
            "memray_path": cap,
            "tracemalloc": False,
        },
        timeout=60,
    )
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


def test_flamegraphs_render(tmp_path: Path) -> None:
    cap, _ = _capture(tmp_path, "make_bruteforce", repeat=1)
    made = flamegraphs(cap, tmp_path)
    assert set(made) == {"flamegraph", "leaks_flamegraph"}
    assert "<html" in Path(made["flamegraph"]).read_text()[:2000].lower()


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
