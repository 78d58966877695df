"""Cycle-table parsing: the plan, defaults, expectations, and strict errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest
from memcycle.scenario import (
    ScenarioError,
    Step,
    find_scenarios,
    load_scenario,
    parse_scenario,
)

BUNDLED = Path(__file__).resolve().parent.parent / "scenarios"

GOOD = """
name = "demo"
description = "two tables"
dimension = 128
seed = 7
tags = ["slow"]
requires = ["delete"]

[engine]
buffer_size = 64

[[cycle]]
repeat = 3
steps = [
  { op = "insert", count = 1000, batch = 100, metadata = true },
  { op = "search", queries = 20, k = 5, min_recall = 0.95, filter = { tag = 1 } },
  { op = "delete", fraction = 0.5 },
  { op = "insert", count = 10, reuse_deleted = true },
  { op = "clear" },
]

[[cycle]]
dimension = 64
label = "smaller"
steps = [ { op = "insert", count = 20 }, { op = "get" }, { op = "destroy" } ]

[expect.verdict]
checked = "double-free"
raw = "crash"
"""


def test_plan_expands_repeat_and_dimensions() -> None:
    sc = parse_scenario(GOOD, "demo.toml")
    assert [pc.index for pc in sc.plan] == [1, 2, 3, 4]
    assert [pc.dimension for pc in sc.plan] == [128, 128, 128, 64]
    assert [pc.table for pc in sc.plan] == [1, 1, 1, 2]
    assert sc.plan[3].label == "smaller"
    assert sc.options() == {"buffer_size": 64}
    assert sc.slow and sc.requires == ("delete",)


def test_steps_are_typed_with_defaults() -> None:
    sc = parse_scenario(GOOD, "demo.toml")
    ins, search, delete, reinsert, clear = sc.cycles[0].steps
    assert ins == Step(op="insert", count=1000, batch=100, metadata=True)
    assert search.filter_dict() == {"tag": 1} and search.min_recall == 0.95
    assert delete.fraction == 0.5 and delete.count is None
    assert reinsert.reuse_deleted
    assert clear.op == "clear"
    get = sc.cycles[1].steps[1]
    assert get.count == 10  # default


def test_expect_per_allocator() -> None:
    sc = parse_scenario(GOOD, "demo.toml")
    assert sc.expected("checked") == "double-free"
    assert sc.expected("raw") == "crash"
    assert sc.expected("numpy") == "clean"
    plain = parse_scenario(GOOD.split("[expect.verdict]")[0] + '[expect]\nverdict = "leak"\n')
    assert plain.expected("raw") == "leak"


@pytest.mark.parametrize(
    ("mutation", "needle"),
    [
        (("seed = 7", "seed = 7\ncolour = 1"), "field 'colour'"),
        (('{ op = "clear" }', '{ op = "clean" }'), "cycle 1: step 4: field 'op'"),
        (("count = 1000,", 'count = "many",'), "cycle 1: step 0: field 'count'"),
        (("count = 1000,", "count = 0,"), "must be >= 1"),
        (("k = 5,", "k = 5, limit = 3,"), "cycle 1: step 1: field 'limit'"),
        (("min_recall = 0.95", "min_recall = 1.5"), "field 'min_recall'"),
        (("fraction = 0.5", "fraction = 0.5, count = 3"), "exactly one of"),
        (("repeat = 3", "repeat = 3\nrepeats = 2"), "cycle 1: field 'repeats'"),
        (('raw = "crash"', 'raw = "boom"'), "unknown verdict 'boom'"),
        (('requires = ["delete"]', 'requires = ["teleport"]'), "field 'requires'"),
        (("metadata = true", "metadata = 1"), "expected true or false"),
    ],
)
def test_errors_name_file_cycle_step_and_field(mutation: tuple[str, str], needle: str) -> None:
    text = GOOD.replace(*mutation, 1)
    assert text != GOOD
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.toml")
    msg = str(info.value)
    assert msg.startswith("bad.toml: ")
    assert needle in msg


def test_missing_dimension_and_cycles() -> None:
    with pytest.raises(ScenarioError, match="cycle 1: field 'dimension'"):
        parse_scenario('[[cycle]]\nsteps = [{ op = "clear" }]\n', "x.toml")
    with pytest.raises(ScenarioError, match="at least one"):
        parse_scenario("dimension = 4\n", "x.toml")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse_scenario("dimension = = 4\n", "x.toml")
    with pytest.raises(ScenarioError, match="missing 'op'"):
        parse_scenario("dimension = 4\n[[cycle]]\nsteps = [{ count = 3 }]\n", "x.toml")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.toml")


def test_find_scenarios_skips_faults_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "faults").mkdir()
    (tmp_path / "a.toml").write_text("")
    (tmp_path / "faults" / "f.toml").write_text("")
    assert [p.name for p in find_scenarios([tmp_path])] == ["a.toml"]
    assert len(find_scenarios([tmp_path], include_faults=True)) == 2
    assert [p.name for p in find_scenarios([tmp_path / "faults"])] == ["f.toml"]
    with pytest.raises(ScenarioError, match="no such"):
        find_scenarios([tmp_path / "missing"])


def test_every_bundled_scenario_parses() -> None:
    files = find_scenarios([BUNDLED], include_faults=True)
    assert len(files) >= 10
    names = set()
    for f in files:
        sc = load_scenario(f)
        assert sc.plan, f
        names.add(sc.name)
    assert len(names) == len(files)  # names are unique: they key the gate's baseline


def test_scenario_faults_key() -> None:
    sc = parse_scenario(GOOD.replace("seed = 7", 'seed = 7\nfaults = ["flat-buffer-leak"]'))
    assert sc.faults == ("flat-buffer-leak",)
    with pytest.raises(ScenarioError, match="field 'faults'"):
        parse_scenario(GOOD.replace("seed = 7", "seed = 7\nfaults = 3"))
