"""The shrinker: the smallest cycle table that fails the same way, written as a scenario.

The fast tests replace the child run with a predicate on the plan (what the engine would
do); the slow one shrinks a real crash in a child process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from memcycle.records import Finding, RunRecord
from memcycle.scenario import load_scenario, parse_scenario
from memcycle.scenario_toml import scenario_to_dict, scenario_toml
from memcycle.shrink import Plan, Shrinker, ShrinkError, merged_cycles, shrink

REPO = Path(__file__).resolve().parent.parent
BUFFER = 16

# the third clear follows a batch of exactly buffer_size rows (cycle 3), among other steps
LONG = f"""
name = "threshold-crash"
dimension = 32
seed = 5
engines = ["tests.engines_for_tests:make_threshold_crash"]
[engine]
buffer_size = {BUFFER}
[[cycle]]
repeat = 2
steps = [
  {{ op = "insert", count = 300, batch = 100, metadata = true }},
  {{ op = "search", queries = 20, k = 10 }},
  {{ op = "delete", fraction = 0.5 }},
  {{ op = "clear" }},
]
[[cycle]]
steps = [
  {{ op = "insert", count = 200 }},
  {{ op = "insert", count = 64, batch = {BUFFER} }},
  {{ op = "search", queries = 20, k = 10 }},
  {{ op = "clear" }},
]
[[cycle]]
repeat = 2
steps = [ {{ op = "insert", count = 500 }}, {{ op = "clear" }} ]
"""


def crashes(plan: Plan) -> tuple[bool, int, str]:
    """What ThresholdCrash does with a plan: (crashed, cycle, op)."""
    clears, last_batch = 0, 0
    for ci, (_dim, steps) in enumerate(plan, start=1):
        for st in steps:
            if st.op == "insert":
                n = st.count or 0
                last_batch = (n % st.batch or st.batch) if st.batch else n
            elif st.op in ("clear", "destroy"):
                if clears == 2 and last_batch == BUFFER:
                    return True, ci, st.op
                clears, last_batch = clears + 1, 0
    return False, 0, ""


class FakeShrinker(Shrinker):
    def replay(self, plan: Plan) -> RunRecord:
        self.replays += 1
        crashed, cycle, op = crashes(plan)
        rec = RunRecord("s", "s.toml", "e", "numpy", [], "clean")
        if crashed:
            rec.verdict = "crash"
            rec.findings = [Finding("crash", cycle, 0, op, "SIGSEGV")]
        return rec


def test_the_shrinker_keeps_the_batch_at_the_threshold_and_merges_repeats(tmp_path: Path) -> None:
    sc = parse_scenario(LONG, str(tmp_path / "long.toml"))
    sh = FakeShrinker(sc, engine="e", work=tmp_path, max_replays=200)
    plan, _rec = sh.run()
    assert crashes(plan)[0]
    assert len(merged_cycles(plan)) <= 2
    last_insert = [s for s in plan[-1][1] if s.op == "insert"][-1]
    assert BUFFER in (last_insert.count, last_insert.batch)
    assert sh.replays < 60
    assert all(d <= 4 for d, _s in plan)  # the dimension does not matter to this bug


def test_shrinking_is_deterministic(tmp_path: Path) -> None:
    sc = parse_scenario(LONG, str(tmp_path / "long.toml"))
    a = FakeShrinker(sc, engine="e", work=tmp_path / "a").run()[0]
    b = FakeShrinker(sc, engine="e", work=tmp_path / "b").run()[0]
    assert a == b


def test_lower_values_try_one_then_the_thresholds_and_their_neighbours(tmp_path: Path) -> None:
    sc = parse_scenario(LONG, str(tmp_path / "long.toml"))
    sh = Shrinker(sc, engine="e", work=tmp_path)
    assert sh.lower_values(300) == [1, 15, 16, 17, 150]
    assert sh.lower_values(16) == [1, 8, 15]


def test_a_clean_run_has_nothing_to_shrink(tmp_path: Path) -> None:
    sc = parse_scenario(LONG.replace("batch = 16", "batch = 15"), str(tmp_path / "x.toml"))
    with pytest.raises(ShrinkError, match="nothing to shrink"):
        FakeShrinker(sc, engine="e", work=tmp_path).run()


def test_the_writer_round_trips_a_parsed_scenario(tmp_path: Path) -> None:
    sc = parse_scenario(LONG, "long.toml")
    again = parse_scenario(scenario_toml(scenario_to_dict(sc), comment="a note\nline two"))
    assert again.cycles == sc.cycles
    assert (again.engine_options, again.engines, again.seed) == (
        sc.engine_options,
        sc.engines,
        sc.seed,
    )


@pytest.mark.slow
def test_shrink_of_a_real_crash_returns_a_short_table_with_the_threshold_batch(
    tmp_path: Path,
) -> None:
    src = tmp_path / "long.toml"
    src.write_text(LONG, encoding="utf-8")
    res = shrink(
        load_scenario(src),
        engine="tests.engines_for_tests:make_threshold_crash",
        out=tmp_path,
        memray=False,
        max_replays=80,
    )
    assert res.target.verdict == "crash" and res.target.op == "clear"
    assert res.record.verdict == "crash"
    small = load_scenario(res.path)
    assert len(small.cycles) <= 2
    assert small.expected() == "crash"
    last_insert = [s for s in small.cycles[-1].steps if s.op == "insert"][-1]
    assert BUFFER in (last_insert.count, last_insert.batch)
    assert "shrunk" in small.description


@pytest.mark.slow
def test_memcycle_shrink_prints_before_and_after(tmp_path: Path) -> None:
    src = tmp_path / "long.toml"
    src.write_text(LONG, encoding="utf-8")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "memcycle.cli",
            "shrink",
            str(src),
            "--no-memray",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 cycles (3 tables)" in out.stdout and " -> " in out.stdout and "replays" in out.stdout
    assert (tmp_path / "o" / "threshold-crash.min.toml").exists()
