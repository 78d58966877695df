"""`memcycle fuzz`: generated tables are valid and seeded; the clean engine gives nothing, a
catalogue fault is found and shrunk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from memcycle import fuzz as fuzz_mod
from memcycle.commands.common import parse_budget
from memcycle.errors import UsageError
from memcycle.fuzz import REFIMPL_OPTIONS, Generator, fuzz, profile_for
from memcycle.scenario import STEP_KEYS, load_scenario, parse_scenario
from memcycle.scenario_toml import scenario_toml

REPO = Path(__file__).resolve().parent.parent


def _ops(data: dict) -> set[str]:  # type: ignore[type-arg]
    return {s["op"] for c in data["cycle"] for s in c["steps"]}


def test_generated_tables_parse_and_are_the_same_for_the_same_seed() -> None:
    gen = Generator(7, profile_for("refimpl"))
    for n in range(1, 40):
        data = gen.table(n)
        sc = parse_scenario(scenario_toml(data), f"try-{n}.toml")
        assert sc.plan
        assert data == Generator(7, profile_for("refimpl")).table(n)
    assert Generator(7, profile_for("refimpl")).table(1) != Generator(
        8, profile_for("refimpl")
    ).table(1)


def test_insert_sizes_sit_on_and_around_the_refimpl_thresholds() -> None:
    sizes = profile_for("refimpl").sizes()
    for t in (REFIMPL_OPTIONS["buffer_size"], REFIMPL_OPTIONS["segment_threshold"]):
        assert {t - 1, t, t + 1} <= set(sizes)
    gen = Generator(1, profile_for("refimpl"))
    counts = {
        s["count"]
        for n in range(1, 60)
        for c in gen.table(n)["cycle"]
        for s in c["steps"]
        if s["op"] == "insert"
    }
    assert {15, 16, 17, 63, 64, 65} <= counts


def test_any_engine_may_name_its_thresholds() -> None:
    prof = profile_for("pkg.mod:make", {"capacity": 100, "M": 8})
    assert prof.thresholds == (100,)
    assert {99, 100, 101} <= set(prof.sizes())
    assert profile_for("pkg.mod:make", thresholds=[5]).thresholds == (5,)


def test_the_grammar_covers_the_lifecycle_ops() -> None:
    gen = Generator(3, profile_for("refimpl"))
    seen = set().union(*(_ops(gen.table(n)) for n in range(1, 80)))
    assert {"insert", "search", "delete", "get", "clear", "destroy", "reload", "checkpoint"} <= seen
    dims = {c["dimension"] for n in range(1, 80) for c in gen.table(n)["cycle"]}
    assert len(dims) > 1


def test_upsert_is_generated_only_when_the_parser_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen = Generator(3, profile_for("refimpl"))
    seen = set().union(*(_ops(gen.table(n)) for n in range(1, 80)))
    assert ("upsert" in seen) == ("upsert" in STEP_KEYS)
    monkeypatch.setattr(fuzz_mod, "ops_supported", lambda: set(STEP_KEYS) | {"upsert"})
    gen = Generator(3, profile_for("refimpl"))
    assert any("upsert" in _ops(gen.table(n)) for n in range(1, 80))


def test_a_budget_is_seconds_with_an_optional_unit() -> None:
    assert parse_budget("300s") == 300 and parse_budget("5m") == 300 and parse_budget("90") == 90
    with pytest.raises(UsageError, match="bad budget"):
        parse_budget("soon")


@pytest.mark.slow
def test_fuzz_on_the_clean_refimpl_finds_nothing(tmp_path: Path) -> None:
    res = fuzz("refimpl", budget=600, seed=1, out=tmp_path, max_tries=4, memray=False)
    assert res.found is None, res.found and res.found.record.findings[0].summary
    assert len(res.tries) == 4 and res.stopped == "budget"


@pytest.mark.slow
def test_fuzz_finds_a_catalogue_fault_and_shrinks_it_to_at_most_3_cycles(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "memcycle.cli",
            "fuzz",
            "--engine",
            "refimpl",
            "--allocator",
            "checked",
            "--fault",
            "flat-buffer-double-free",
            "--budget",
            "300s",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1200,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "try 1:" in out.stdout and "double-free" in out.stdout
    [minimal] = tmp_path.glob("*.min.toml")
    sc = load_scenario(minimal)
    assert len(sc.plan) <= 3
    assert sc.expected("checked") == "double-free"
    assert sc.faults == ("flat-buffer-double-free",)


MINIMAL = sorted((REPO / "scenarios" / "faults" / "minimal").glob("*.toml"))


@pytest.mark.parametrize("path", MINIMAL, ids=[p.name for p in MINIMAL])
def test_a_committed_minimal_table_is_at_most_3_cycles_for_one_fault(path: Path) -> None:
    from memcycle.refimpl.faults import CATALOGUE

    sc = load_scenario(path)
    assert len(sc.plan) <= 3
    [fault] = sc.faults
    assert fault in CATALOGUE
    assert sc.expected("checked") not in ("clean", "skipped")
    assert sc.name == f"min-{fault}"


@pytest.mark.slow
@pytest.mark.parametrize("path", MINIMAL, ids=[p.name for p in MINIMAL])
def test_a_committed_minimal_table_replays_its_verdict_and_is_clean_without_the_fault(
    path: Path,
) -> None:
    import dataclasses

    from memcycle.runner import run_one

    sc = load_scenario(path)
    on = run_one(sc, None, "checked", flamegraphs="none")
    assert on.verdict == sc.expected("checked"), on.findings[:1]
    off = run_one(dataclasses.replace(sc, faults=()), None, "checked", flamegraphs="none")
    assert off.verdict == "clean", off.findings[:1]
