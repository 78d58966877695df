"""Every table and every key of a scenario file is validated strictly (docs/mutation.md).

One bad value per key, in each table (top level, [engine], [engine.<spec>], [expect],
[expect.verdict], [[cycle]], each step kind): each must be refused with a message naming where,
and the good file beside them must parse. A key that is silently accepted with a wrong value is
how a scenario stops testing what it says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from memcycle.engines.base import Capabilities
from memcycle.scenario import (
    MAX_DIMENSION,
    METRICS,
    Cycle,
    Scenario,
    ScenarioError,
    Step,
    capability_problems,
    has_capability,
    parse_scenario,
    scenario_needs,
    step_skip_reason,
    unmet_needs,
)

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


# -- what a plan needs from an engine, and the reasons given when it cannot run --------------


class _Engine:
    """An engine as the capability checks see it: `capabilities`, a name, maybe `get`."""

    name = "toy"

    def __init__(self, with_get: bool = True, **caps: Any) -> None:
        self.capabilities = Capabilities(**caps)
        if with_get:
            self.get = lambda ids: None


NEEDY = """
name = "needy"
dimension = 8
metric = "ip"
requires = ["ledger"]
[[cycle]]
steps = [ { op = "insert", count = 4 }, { op = "delete", count = 1 },
          { op = "search", filter = { t = 1 } }, { op = "get" }, { op = "clear" } ]
[[cycle]]
dimension = 16
steps = [ { op = "insert", count = 4 }, { op = "delete", count = 1 } ]
"""


def test_scenario_needs_lists_requires_metric_dimension_change_and_each_step_kind() -> None:
    needs = scenario_needs(parse_scenario(NEEDY, "n.toml"))
    assert [(n.capability, n.why, n.whole) for n in needs] == [
        ("ledger", "required by the scenario (requires)", True),
        ("metrics", "metric ip", True),
        ("dimension_change", "cycle 2 opens dimension 16 after 8", True),
        ("delete", "2 delete step(s), first cycle 1 step 1", False),
        ("metadata_filter", "1 filtered search step(s), first cycle 1 step 2", False),
        ("get", "1 get step(s), first cycle 1 step 3", False),
    ]


def test_an_engine_with_every_capability_has_no_unmet_need() -> None:
    engine = _Engine(ledger=True, metrics=("l2", "ip"), metadata_filter=True)
    assert unmet_needs(parse_scenario(NEEDY, "n.toml"), engine) == []


def test_each_unmet_whole_run_need_is_one_reason() -> None:
    engine = _Engine(dimension_change=False)
    assert unmet_needs(parse_scenario(NEEDY, "n.toml"), engine) == [
        "engine lacks ledger",
        "engine lacks metric ip (capabilities.metrics = l2)",
        "engine lacks dimension_change: cycle 2 opens dimension 16 after 8 "
        "(capabilities.dimension_change = False)",
    ]


def test_a_required_native_clear_names_the_recreate_declaration() -> None:
    sc = parse_scenario(scenario(top='requires = ["clear", "delete"]'), "c.toml")
    assert unmet_needs(sc, _Engine(clear="recreate", delete=False)) == [
        "engine lacks clear, delete (a native clear; it declares clear = 'recreate')"
    ]
    assert unmet_needs(sc, _Engine()) == []


def test_has_capability_reads_get_from_the_method_and_clear_as_native_only() -> None:
    assert has_capability(_Engine(), "get")
    assert not has_capability(_Engine(with_get=False), "get")
    assert has_capability(_Engine(), "clear")
    assert not has_capability(_Engine(clear="recreate"), "clear")
    assert has_capability(_Engine(), "delete") and not has_capability(_Engine(), "reload")


def test_capability_problems_name_every_malformed_declaration() -> None:
    assert capability_problems(_Engine()) == []
    assert capability_problems(object())[0].startswith("the engine has no 'capabilities'")
    bad = _Engine()
    object.__setattr__(bad.capabilities, "clear", "sometimes")
    object.__setattr__(bad.capabilities, "metrics", ("hamming",))
    object.__setattr__(bad.capabilities, "reload", 1)
    object.__setattr__(bad.capabilities, "ledger", "yes")
    assert capability_problems(bad) == [
        "capabilities.clear = 'sometimes': expected 'native' or 'recreate'",
        "capabilities.metrics = ('hamming',): expected a tuple from " + ", ".join(METRICS),
        "capabilities.ledger = 'yes': expected True or False",
        "capabilities.reload = 1: expected True or False",
    ]


def test_each_skipped_step_says_which_capability_it_lacks() -> None:
    sc = parse_scenario(NEEDY, "n.toml")
    delete, search, get = sc.plan[0].steps[1:4]
    bare = _Engine(with_get=False, delete=False)
    assert step_skip_reason(delete, bare) == "toy has no delete (capabilities.delete = False)"
    assert step_skip_reason(search, bare) == (
        "toy has no metadata filter (capabilities.metadata_filter = False)"
    )
    assert step_skip_reason(get, bare) == "toy has no get()"
    full = _Engine(metadata_filter=True)
    assert [step_skip_reason(s, full) for s in (delete, search, get)] == [None, None, None]
    assert step_skip_reason(sc.plan[0].steps[0], bare) is None  # an insert needs nothing


def test_step_descriptions_name_the_sizes() -> None:
    text = scenario(
        step='{ op = "insert", count = 8, batch = 4 }, { op = "insert", count = 4, duplicates = 2 },'
        ' { op = "search", queries = 5, k = 3 }, { op = "delete", fraction = 0.25 },'
        ' { op = "delete", count = 2 }, { op = "get", count = 3 }, { op = "upsert", count = 2 },'
        ' { op = "delete_filter", filter = { t = 1 } }'
    )
    steps = parse_scenario(text, "d.toml").plan[0].steps
    assert [s.describe() for s in steps] == [
        "insert 10",
        "insert 8 (batch 4)",
        "insert 4 (2 duplicate ids)",
        "search 5q k=3",
        "delete 25%",
        "delete 2",
        "get 3",
        "upsert 2",
        "delete_filter {'t': 1}",
    ]


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ('{ op = "search", queries = 1000000000000 }', "queries"),
        ('{ op = "insert", count = 1000000000000 }', "count"),
        ('{ op = "upsert", count = 1000000000000 }', "count"),
    ],
)
def test_a_step_too_large_for_this_machine_names_its_field(step: str, field: str) -> None:
    with pytest.raises(
        ScenarioError, match=rf"cycle 1: step 1: field '{field}': .* GiB of float32"
    ):
        parse_scenario(scenario(step=step), "huge.toml")


def test_the_memory_budget_for_one_step_is_half_of_this_machine() -> None:
    import psutil
    from memcycle.scenario_parse import _memory_budget

    assert _memory_budget() == psutil.virtual_memory().total // 2


def test_a_wide_step_too_large_for_this_machine_is_refused_too() -> None:
    # few rows, the widest dimension: rows x dimension x 4 bytes, not rows / dimension
    text = 'name = "wide"\ndimension = 65536\n' + CYCLE.format(
        step='{ op = "insert", count = 100000000 }', cycle=""
    )
    with pytest.raises(ScenarioError, match=r"step 1: field 'count': 100,000,000 rows x dimension"):
        parse_scenario(text, "wide.toml")


def test_a_destroy_between_two_dimensions_is_not_a_dimension_change() -> None:
    from memcycle.scenario import dimension_change

    text = (
        TOP
        + '[[cycle]]\nsteps = [ { op = "insert", count = 4 }, { op = "destroy" } ]\n'
        + '[[cycle]]\ndimension = 16\nsteps = [ { op = "clear" }, { op = "insert", count = 4 } ]\n'
    )
    assert dimension_change(parse_scenario(text, "d.toml").plan) is None
    changed = text.replace('{ op = "destroy" }', '{ op = "clear" }')
    assert dimension_change(parse_scenario(changed, "d.toml").plan) == (2, 8, 16)


def test_a_faults_folder_at_any_depth_is_left_out_unless_asked(tmp_path: Path) -> None:
    from memcycle.scenario import find_scenarios

    deep = tmp_path / "suite" / "faults"
    deep.mkdir(parents=True)
    (tmp_path / "suite" / "plain.toml").write_text(scenario())
    (deep / "bad.toml").write_text(scenario())
    assert find_scenarios([tmp_path]) == [tmp_path / "suite" / "plain.toml"]
    assert find_scenarios([tmp_path], include_faults=True) == [
        deep / "bad.toml",
        tmp_path / "suite" / "plain.toml",
    ]


def test_an_engine_whose_capabilities_lack_a_field_does_not_have_it() -> None:
    from types import SimpleNamespace

    engine = SimpleNamespace(capabilities=SimpleNamespace(delete=True))
    assert has_capability(engine, "delete") and not has_capability(engine, "reload")


def test_a_parsed_step_is_immutable() -> None:
    import dataclasses

    step = parse_scenario(scenario(), "s.toml").plan[0].steps[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.count = 5  # type: ignore[misc]


# -- the full run's survivors (mutation/triage/scenario.md) -----------------------------------


def test_the_engine_run_by_default_is_default_engine_then_the_first_listed_then_refimpl() -> None:
    locked = 'engines = ["refimpl-c", "refimpl"]\n'
    assert parse_scenario(scenario(top=locked), "a.toml").default_engine() == "refimpl-c"
    chosen = locked + 'default_engine = "refimpl"\n'
    assert parse_scenario(scenario(top=chosen), "b.toml").default_engine() == "refimpl"
    assert parse_scenario(scenario(), "c.toml").default_engine() == "refimpl"


def test_a_scenario_is_slow_only_when_tagged_slow_or_soak() -> None:
    assert parse_scenario(scenario(), "a.toml").slow is False
    assert parse_scenario(scenario(top='tags = ["nightly"]'), "b.toml").slow is False
    assert parse_scenario(scenario(top='tags = ["soak"]'), "c.toml").slow is True


def test_keys_left_out_of_a_file_take_the_documented_defaults() -> None:
    # scenarios/SCHEMA.md: seed 0; an insert without metadata and fresh ids; a search of
    # 10 queries for k = 10 at min_recall 0.9
    sc = parse_scenario(scenario(step='{ op = "search" }'), "d.toml")
    insert, search = sc.plan[0].steps
    assert sc.seed == 0 and sc.cycles[0].repeat == 1
    assert (insert.metadata, insert.reuse_deleted) == (False, False)
    assert (search.queries, search.k, search.min_recall) == (10, 10, 0.9)


def test_a_scenario_built_in_python_has_the_defaults_of_a_file_that_leaves_the_keys_out() -> None:
    # the shrinker, the fuzzer and a user's own code build the data model without a file
    parsed = parse_scenario(TOP + CYCLE.format(step='{ op = "clear" }', cycle=""), "demo")
    built = Scenario(name="demo", path="demo", dimension=8, cycles=parsed.cycles)
    keys = ("seed", "metric", "description", "tags", "engines", "requires", "faults", "expect")
    assert {k: getattr(built, k) for k in keys} == {k: getattr(parsed, k) for k in keys}
    assert built.seed == 0
    assert Cycle(steps=parsed.cycles[0].steps).repeat == 1
    assert (Step(op="insert").metadata, Step(op="insert").reuse_deleted) == (False, False)


def test_the_shrinker_writes_a_single_cycle_without_repeat_and_three_alike_as_one_table() -> None:
    from memcycle.shrink_plan import plan_of, scenario_dict

    twice = (
        TOP
        + CYCLE.format(step='{ op = "clear" }', cycle="")
        + CYCLE.format(step='{ op = "destroy" }', cycle="")
    )
    rows = scenario_dict(
        parse_scenario(twice, "t.toml"),
        plan_of(parse_scenario(twice, "t.toml")),
        name="small",
        engine="refimpl",
        allocator="numpy",
        faults=(),
    )["cycle"]
    assert [("repeat" in r, r["steps"][-1]["op"]) for r in rows] == [
        (False, "clear"),
        (False, "destroy"),
    ]
    thrice = parse_scenario(scenario(cycle="repeat = 3"), "r.toml")
    rows = scenario_dict(
        thrice, plan_of(thrice), name="small", engine="refimpl", allocator="numpy", faults=()
    )["cycle"]
    assert [r.get("repeat") for r in rows] == [3]


def test_a_parsed_scenario_its_tables_its_plan_and_its_needs_are_immutable_and_hashable() -> None:
    import dataclasses

    sc = parse_scenario(NEEDY, "n.toml")
    need = scenario_needs(sc)[0]
    for obj, name in ((sc, "seed"), (sc.cycles[0], "repeat"), (sc.plan[0], "index")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        need.whole = False  # type: ignore[misc]
    assert len({sc, sc.cycles[0], sc.plan[0], need}) == 4


def test_an_unknown_verdict_is_refused_naming_every_verdict_an_engine_run_can_expect() -> None:
    from memcycle.records import VERDICTS

    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario(top='expect = { verdict = "boom" }'), "v.toml")
    listed = str(info.value).split("expected one of ", 1)[1].split(", ")
    assert "clean" in listed and "crash" in listed and "error" not in listed
    assert listed == [v for v in VERDICTS if v != "error"]


@pytest.mark.parametrize("spec", [":make", "mypkg.adapter:", ":"])
def test_an_engine_spec_needs_both_a_module_and_a_factory_around_its_colon(spec: str) -> None:
    with pytest.raises(ScenarioError, match=f"field 'engines': unknown engine '{spec}'"):
        parse_scenario(scenario(top=f'engines = ["{spec}"]'), "s.toml")
    ok = parse_scenario(scenario(top='engines = ["mypkg.adapter:make"]'), "ok.toml")
    assert ok.engines == ("mypkg.adapter:make",)


def test_a_required_dimension_change_is_reported_as_a_lacking_capability() -> None:
    sc = parse_scenario(scenario(top='requires = ["dimension_change"]'), "r.toml")
    assert unmet_needs(sc, _Engine(dimension_change=False)) == ["engine lacks dimension_change"]


def test_a_scenario_file_that_is_not_utf8_is_refused_naming_the_byte(tmp_path: Path) -> None:
    from memcycle.scenario import load_scenario

    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "café"\n'.encode("latin-1") + scenario().encode())
    with pytest.raises(ScenarioError, match=r"not UTF-8 text \(byte 0xe9 at offset 11\)"):
        load_scenario(path)


def test_find_scenarios_takes_include_faults_by_keyword_only(tmp_path: Path) -> None:
    from memcycle.scenario import find_scenarios

    with pytest.raises(TypeError):
        find_scenarios([tmp_path], True)  # type: ignore[misc]


@pytest.mark.parametrize(("count", "refused"), [(125, False), (126, True)])
def test_one_steps_float32_rows_may_fill_the_memory_budget_exactly_and_not_one_row_more(
    monkeypatch: pytest.MonkeyPatch, count: int, refused: bool
) -> None:
    import memcycle.scenario_parse as parse_mod

    # dimension 8: 125 rows x 8 x 4 bytes is exactly the budget, 126 rows are over it
    monkeypatch.setattr(parse_mod, "_memory_budget", lambda: 4000)
    for op in ("insert", "search"):
        key = "queries" if op == "search" else "count"
        text = scenario(step=f'{{ op = "{op}", {key} = {count} }}')
        if refused:
            with pytest.raises(ScenarioError, match=rf"step 1: field '{key}': {count} rows"):
                parse_scenario(text, "b.toml")
        else:
            assert getattr(parse_scenario(text, "b.toml").plan[0].steps[1], key) == count


def test_without_psutil_the_memory_budget_for_one_step_is_a_fixed_4_gib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from memcycle.scenario_parse import _memory_budget

    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    assert _memory_budget() == 4 * 1024**3


@pytest.mark.parametrize("cycle", ["cycle = []", 'cycle = "insert"'])
def test_a_cycle_key_that_is_empty_or_not_a_list_of_tables_is_refused(cycle: str) -> None:
    with pytest.raises(ScenarioError, match=r"field 'cycle': needs at least one \[\[cycle\]\]"):
        parse_scenario(TOP + cycle + "\n", "c.toml")


def test_the_widest_dimension_a_scenario_may_ask_for_is_the_widest_refimpl_accepts() -> None:
    from memcycle.refimpl.inputs import MAX_DIMENSION as REFIMPL_MAX_DIMENSION

    assert REFIMPL_MAX_DIMENSION == 65536
    widest = parse_scenario(scenario(cycle=f"dimension = {REFIMPL_MAX_DIMENSION}"), "w.toml")
    assert widest.plan[0].dimension == 65536
    with pytest.raises(ScenarioError, match="field 'dimension': must be <= 65,536, got 65,537"):
        parse_scenario(scenario(cycle="dimension = 65537"), "w.toml")
