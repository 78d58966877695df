"""Every table and every key of a scenario file is validated strictly (docs/mutation.md).

One bad value per key, in each table (top level, [engine], [engine.<spec>], [expect],
[expect.verdict], [[cycle]], each step kind): each must be refused with a message naming where,
and the good file beside them must parse. A key that is silently accepted with a wrong value is
how a scenario stops testing what it says.
"""

from __future__ import annotations

import pytest
from memcycle.scenario import MAX_DIMENSION, ScenarioError, parse_scenario

TOP = 'name = "demo"\ndimension = 8\n'
CYCLE = '[[cycle]]\nsteps = [ {{ op = "insert", count = 10 }}, {step} ]\n{cycle}'


def scenario(top: str = "", step: str = '{ op = "clear" }', cycle: str = "", tail: str = "") -> str:
    return TOP + top + "\n" + CYCLE.format(step=step, cycle=cycle) + tail


def test_the_template_itself_parses() -> None:
    sc = parse_scenario(scenario(), "ok.toml")
    assert [s.op for s in sc.plan[0].steps] == ["insert", "clear"]


BAD_TOP = [
    ("colour = 1", "unknown key 'colour' in the scenario"),
    ("description = 3", "field 'description': expected a string"),
    ('metric = "manhattan"', "field 'metric': unknown metric 'manhattan'"),
    ("seed = -1", "field 'seed': must be >= 0"),
    ("seed = true", "field 'seed': expected an integer"),
    ('tags = "slow"', "field 'tags': expected a list of strings"),
    ('engines = ["refimp"]', "field 'engines': unknown engine 'refimp'"),
    ('requires = ["teleport"]', "field 'requires': unknown value(s) ['teleport']"),
    ("faults = [1]", "field 'faults': expected a list of strings"),
    ('default_engine = "refimp"', "field 'default_engine': unknown engine"),
    (
        'engines = ["refimpl"]\ndefault_engine = "refimpl-c"',
        "field 'default_engine': 'refimpl-c' is not one of engines",
    ),
    ("timeout = 0", "field 'timeout': expected a number of seconds > 0"),
    ("timeout = true", "field 'timeout': expected a number of seconds > 0"),
    ('engine = "fast"', "field 'engine': expected a table"),
    ("engine = { sizes = [1, 2] }", "field 'engine': value of 'sizes' must be a scalar"),
    ("engine = { refimp = { buffer_size = 4 } }", "field 'engine.refimp': unknown engine"),
    (
        "engine = { refimpl = { sizes = [1] } }",
        "field 'engine.refimpl': value of 'sizes' must be a scalar",
    ),
    ('expect = "clean"', "field 'expect': [expect] must be a table"),
    ('expect = { verdict = "clean", why = "x" }', "unknown key 'why' in [expect]"),
    ("expect = { note = 3 }", "field 'note': expected a string"),
    ('expect = { verdict = "boom" }', "field 'verdict': unknown verdict 'boom'"),
    ('expect = { verdict = "error" }', "field 'verdict': 'error' means memcycle"),
    (
        'expect = { verdict = { jemalloc = "crash" } }',
        "unknown key 'jemalloc' in [expect.verdict]",
    ),
    ('expect = { verdict = { raw = "boom" } }', "field 'verdict.raw': unknown verdict"),
]


@pytest.mark.parametrize(("top", "needle"), BAD_TOP)
def test_every_top_level_key_and_table_refuses_a_bad_value(top: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario(top=top), "bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    assert needle in str(info.value)


BAD_CYCLE = [
    ("repeat = 0", "cycle 1: field 'repeat': must be >= 1"),
    ("repeat = 100001", "cycle 1: field 'repeat': must be <= 100,000"),
    ("dimension = true", "cycle 1: field 'dimension': expected an integer"),
    (f"dimension = {MAX_DIMENSION + 1}", "cycle 1: field 'dimension': must be <="),
    ("label = 5", "cycle 1: field 'label': expected a string"),
    ("colour = 1", "cycle 1: field 'colour': unknown key 'colour' in a [[cycle]]"),
]


@pytest.mark.parametrize(("cycle", "needle"), BAD_CYCLE)
def test_every_cycle_key_refuses_a_bad_value(cycle: str, needle: str) -> None:
    with pytest.raises(ScenarioError, match=r"bad\.toml: ") as info:
        parse_scenario(scenario(cycle=cycle), "bad.toml")
    assert needle in str(info.value)


BAD_STEP = [
    ('"clear"', "step 1: a step must be a table"),
    ("{ count = 3 }", "step 1: field 'op': missing 'op'"),
    ('{ op = "clean" }', "step 1: field 'op': unknown op 'clean'"),
    ('{ op = "clear", count = 1 }', "unknown key 'count' in a 'clear' step"),
    ('{ op = "clear", timeout = -1 }', "field 'timeout': expected a number of seconds > 0"),
    ('{ op = "insert" }', "field 'count': an insert needs 'count'"),
    ('{ op = "insert", count = 4, batch = 0 }', "field 'batch': must be >= 1"),
    ('{ op = "insert", count = 4, metadata = 1 }', "field 'metadata': expected true or false"),
    (
        '{ op = "insert", count = 4, reuse_deleted = "yes" }',
        "field 'reuse_deleted': expected true or false",
    ),
    ('{ op = "insert", count = 4, duplicates = 3 }', "at most half of count (4)"),
    ('{ op = "insert", count = 4, duplicates = 0 }', "field 'duplicates': must be >= 1"),
    (
        '{ op = "insert", count = 4, duplicates = 1, batch = 2 }',
        "duplicates need one batch of fresh ids",
    ),
    (
        '{ op = "insert", count = 4, duplicates = 1, reuse_deleted = true }',
        "duplicates need one batch of fresh ids",
    ),
    ('{ op = "upsert" }', "field 'count': an upsert needs 'count'"),
    ('{ op = "upsert", count = 0 }', "field 'count': must be >= 1"),
    ('{ op = "upsert", count = 2, metadata = 0 }', "field 'metadata': expected true or false"),
    ('{ op = "delete_filter" }', "field 'filter': a delete_filter needs 'filter'"),
    ('{ op = "delete_filter", filter = {} }', "field 'filter': an empty filter"),
    ('{ op = "delete_filter", filter = 3 }', "field 'filter': expected a table"),
    ('{ op = "search", queries = 0 }', "field 'queries': must be >= 1"),
    ('{ op = "search", k = 0 }', "field 'k': must be >= 1"),
    ('{ op = "search", min_recall = 1.5 }', "field 'min_recall': expected a number in [0, 1]"),
    ('{ op = "search", min_recall = -0.1 }', "field 'min_recall': expected a number in [0, 1]"),
    ('{ op = "search", min_recall = true }', "field 'min_recall': expected a number in [0, 1]"),
    ('{ op = "search", filter = { tag = [1] } }', "field 'filter': value of 'tag' must be"),
    ('{ op = "get", count = 0 }', "field 'count': must be >= 1"),
    ('{ op = "delete" }', "a delete needs exactly one of 'count' or 'fraction'"),
    ('{ op = "delete", count = 1, fraction = 0.5 }', "exactly one of 'count' or 'fraction'"),
    ('{ op = "delete", count = 0 }', "field 'count': must be >= 1"),
    ('{ op = "delete", fraction = 0 }', "field 'fraction': expected a number in (0, 1]"),
    ('{ op = "delete", fraction = 1.5 }', "field 'fraction': expected a number in (0, 1]"),
    ('{ op = "delete", fraction = true }', "field 'fraction': expected a number in (0, 1]"),
]


@pytest.mark.parametrize(("step", "needle"), BAD_STEP)
def test_every_key_of_every_step_kind_refuses_a_bad_value(step: str, needle: str) -> None:
    with pytest.raises(ScenarioError, match=r"bad\.toml: cycle 1: step 1") as info:
        parse_scenario(scenario(step=step), "bad.toml")
    assert needle in str(info.value)


GOOD_EDGES = [
    ('{ op = "search", min_recall = 0 }', "min_recall", 0.0),
    ('{ op = "search", min_recall = 1 }', "min_recall", 1.0),
    ('{ op = "delete", fraction = 1 }', "fraction", 1.0),
    ('{ op = "insert", count = 4, duplicates = 2 }', "duplicates", 2),
    ('{ op = "insert", count = 4, duplicates = 2, batch = 4 }', "duplicates", 2),
    ('{ op = "clear", timeout = 0.5 }', "timeout", 0.5),
    ('{ op = "search", filter = { tag = "a" } }', "filter", (("tag", "a"),)),
]


@pytest.mark.parametrize(("step", "field", "value"), GOOD_EDGES)
def test_values_at_the_edge_of_each_range_are_accepted(
    step: str, field: str, value: object
) -> None:
    sc = parse_scenario(scenario(step=step), "edge.toml")
    assert getattr(sc.plan[0].steps[1], field) == value


def test_a_scenario_without_cycles_or_with_an_empty_steps_list_is_refused() -> None:
    with pytest.raises(ScenarioError, match="needs at least one"):
        parse_scenario(TOP, "none.toml")
    with pytest.raises(ScenarioError, match="cycle 1: field 'steps': needs a non-empty"):
        parse_scenario(TOP + "[[cycle]]\nsteps = []\n", "empty.toml")
    with pytest.raises(ScenarioError, match="a \\[\\[cycle\\]\\] must be a table"):
        parse_scenario(TOP + "cycle = [1]\n", "notable.toml")


def test_the_plan_may_hold_exactly_the_maximum_number_of_cycles() -> None:
    sc = parse_scenario(scenario(cycle="repeat = 100000"), "max.toml")
    assert len(sc.plan) == 100_000
    with pytest.raises(
        ScenarioError, match=r"cycle 1: field 'repeat': the plan has 100,001 cycles"
    ):
        parse_scenario(
            scenario(cycle="repeat = 100000\n") + CYCLE.format(step='{ op = "clear" }', cycle=""),
            "over.toml",
        )


def test_the_expected_verdict_per_allocator_falls_back_to_the_default() -> None:
    sc = parse_scenario(scenario(top='expect = { verdict = { raw = "crash" } }'), "x.toml")
    assert sc.expected("raw") == "crash" and sc.expected("checked") == "clean"
    sc = parse_scenario(
        scenario(top='expect = { verdict = { default = "leak", raw = "crash" } }'), "x.toml"
    )
    assert sc.expected("numpy") == "leak"


def test_engine_options_are_split_into_shared_and_per_engine_tables() -> None:
    sc = parse_scenario(
        scenario(top="engine = { buffer_size = 8, refimpl = { buffer_size = 16 } }"), "e.toml"
    )
    assert sc.options() == {"buffer_size": 8}
    assert sc.options("refimpl") == {"buffer_size": 16}
