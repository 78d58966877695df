"""The bundled suite on engines other than refimpl: no `engines` locks on lifecycle scenarios,
refimpl's thresholds scoped to refimpl, requirements derived from the plan and enforced,
partial skips judged on what ran and shown, `--fail-on-skip`.

Most checks replay a scenario in this process through the child's own `run` (the same code a
child runs, without the process start); a few go through `memcycle run` end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from memcycle import child
from memcycle.checks import judge
from memcycle.cli import main
from memcycle.engines.base import Capabilities
from memcycle.protocol import ChildConfig
from memcycle.records import Report, RunRecord, StepEvent
from memcycle.reporters.console import format_run
from memcycle.scenario import (
    ScenarioError,
    capability_problems,
    dimension_change,
    load_scenario,
    parse_scenario,
    scenario_needs,
    step_skip_reason,
    unmet_needs,
)

BUNDLED = Path(__file__).resolve().parent.parent / "scenarios"
ENG = "tests.suite_engines"
FORMERLY_LOCKED = (
    "capacity-growth",
    "flat-buffer-threshold",
    "segment-threshold",
    "singleton-destroy-recreate",
    "soak-200",
    "module-reload",
)


class _Collect:
    """Stands in for the child's event stream."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, kind: str, **payload: Any) -> None:
        self.events.append({"kind": kind, **payload})


def _replay(path: Path, engine: str) -> RunRecord:
    """The child's replay in this process, folded and judged as the runner does."""
    sc = load_scenario(path)
    sink = _Collect()
    config = ChildConfig(scenario=sc, engine=engine, memray_path=None, tracemalloc=False)
    code = child.run(config, sink)  # type: ignore[arg-type]
    record = RunRecord(sc.name, str(path), engine, "native", [], sc.expected("native"))
    errors = [e for e in sink.events if e["kind"] == "error" or e.get("error")]
    record.exit = {"kind": "exception" if errors else "clean", "code": code}  # as isolation does
    setup_error = None
    for ev in sink.events:
        kind = ev.pop("kind")
        if kind == "step":
            record.steps.append(StepEvent.from_dict(ev))
        elif kind == "skip":
            record.verdict = "skipped"
            record.exit = {"kind": "skipped", "reason": ev["reason"]}
        elif kind == "error":
            setup_error = ev["error"]
    return judge(record, sc.plan, setup_error=setup_error)


class _Fake:
    """An engine object for the requirement logic (nothing is run)."""

    def __init__(self, **caps: Any) -> None:
        self.name = "fake"
        self.capabilities = Capabilities(**caps)


# -- the bundled files ----------------------------------------------------------------
@pytest.mark.parametrize("name", FORMERLY_LOCKED)
def test_no_lifecycle_scenario_is_locked_to_refimpl(name: str) -> None:
    sc = load_scenario(BUNDLED / f"{name}.toml")
    assert sc.engines == ()  # any engine may run it
    strict = _Fake(delete=True, metadata_filter=True, reload=True, metrics=("l2",))
    assert unmet_needs(sc, strict) == []
    # the fake has no get(): only get steps may skip
    assert {s.op for pc in sc.plan for s in pc.steps if step_skip_reason(s, strict)} <= {"get"}
    assert sc.options("hnswlib") == {} and sc.options(f"{ENG}:make_strict") == {}


def test_refimpl_thresholds_reach_refimpl_and_refimpl_global_only() -> None:
    sc = load_scenario(BUNDLED / "segment-threshold.toml")
    want = {"buffer_size": 256, "segment_threshold": 2048, "ef_construction": 64}
    assert sc.options("refimpl") == want and sc.options("refimpl-global") == want
    assert sc.options("faiss") == {} and sc.options() == {}


def test_default_engine_is_the_singleton_form_without_locking_others_out() -> None:
    for name in ("singleton-destroy-recreate", "module-reload"):
        sc = load_scenario(BUNDLED / f"{name}.toml")
        assert sc.default_engine() == "refimpl-global" and sc.engines == ()
    assert load_scenario(BUNDLED / "capacity-growth.toml").default_engine() == "refimpl"


# -- the format -------------------------------------------------------------------------
SCOPED = """
name = "scoped"
dimension = 8
default_engine = "refimpl-global"
[engine]
M = 8
[engine.refimpl]
buffer_size = 64
M = 12
[engine."pkg.mod:make"]
level = 3
[[cycle]]
steps = [ { op = "insert", count = 10 } ]
"""


def test_scoped_engine_options_apply_to_exactly_their_engine_over_the_shared_ones() -> None:
    sc = parse_scenario(SCOPED, "scoped.toml")
    assert sc.options("refimpl") == {"M": 12, "buffer_size": 64}
    assert sc.options("pkg.mod:make") == {"M": 8, "level": 3}
    assert sc.options("refimpl-global") == {"M": 8}
    assert sc.default_engine() == "refimpl-global"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[engine.refimpl]", "[engine.refimp]", "field 'engine.refimp': unknown engine 'refimp'"),
        ("level = 3", "level = [3]", "field 'engine.pkg.mod:make': value of 'level' must be"),
        ('= "refimpl-global"', '= "nope"', "field 'default_engine': unknown engine 'nope'"),
        (
            'default_engine = "refimpl-global"',
            'default_engine = "hnswlib"\nengines = ["faiss"]',
            "field 'default_engine': 'hnswlib' is not one of engines ['faiss']",
        ),
    ],
)
def test_a_bad_scope_or_default_engine_is_an_error_naming_the_field(
    old: str, new: str, message: str
) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(SCOPED.replace(old, new), "scoped.toml")
    assert str(exc.value).startswith(f"scoped.toml: {message}")


# -- what a plan needs ------------------------------------------------------------------
def test_needs_are_derived_from_the_plan() -> None:
    sc = load_scenario(BUNDLED / "delete-reinsert.toml")
    needs = {n.capability: n for n in scenario_needs(sc)}
    assert needs["metrics"].whole and needs["metrics"].why == "metric l2"
    assert not needs["delete"].whole and needs["delete"].why.startswith("6 delete step(s)")
    assert needs["metadata_filter"].why.startswith("3 filtered search step(s)")
    assert needs["get"].why.startswith("6 get step(s)")
    assert "dimension_change" not in needs and "reload" not in needs


def test_a_dimension_change_counts_after_clear_but_not_after_destroy() -> None:
    base = "[[cycle]]\ndimension = 8\nsteps = [ {{ op = 'insert', count = 5 }}, {{ op = '{}' }} ]\n"
    second = "[[cycle]]\ndimension = 16\nsteps = [ { op = 'insert', count = 5 } ]\n"
    after_clear = parse_scenario(base.format("clear") + second)
    after_destroy = parse_scenario(base.format("destroy") + second)
    assert dimension_change(after_clear.plan) == (2, 8, 16)
    assert dimension_change(after_destroy.plan) is None
    assert unmet_needs(after_destroy, _Fake(dimension_change=False)) == []


def test_dimension_change_false_skips_the_dimension_change_scenario_with_the_reason() -> None:
    record = _replay(BUNDLED / "dimension-change.toml", f"{ENG}:make_fixed_dimension")
    assert record.verdict == "skipped" and not record.steps
    assert record.exit["reason"] == (
        "engine lacks dimension_change: cycle 2 opens dimension 64 after 32 "
        "(capabilities.dimension_change = False)"
    )
    assert record.findings[0].summary == record.exit["reason"]


def test_a_metric_the_engine_lacks_skips_the_scenario_with_the_reason() -> None:
    record = _replay(BUNDLED / "dimension-change.toml", f"{ENG}:make_l2_only")
    assert record.verdict == "skipped" and not record.steps
    assert record.exit["reason"] == "engine lacks metric cosine (capabilities.metrics = l2)"


def test_requires_clear_means_a_native_clear() -> None:
    sc = parse_scenario("requires = ['clear']\n" + SCOPED)
    assert unmet_needs(sc, _Fake(clear="native")) == []
    assert unmet_needs(sc, _Fake(clear="recreate")) == [
        "engine lacks clear (a native clear; it declares clear = 'recreate')"
    ]


def test_malformed_capabilities_are_an_adapter_error_not_a_run() -> None:
    assert capability_problems(_Fake(clear="sometimes", metrics="l2")) == [  # type: ignore[arg-type]
        "capabilities.clear = 'sometimes': expected 'native' or 'recreate'",
        "capabilities.metrics = 'l2': expected a tuple from l2, ip, cosine",
    ]
    record = _replay(BUNDLED / "clear-empty-and-twice.toml", f"{ENG}:make_bad_capabilities")
    assert not record.steps and record.verdict != "clean"
    assert "declares bad capabilities" in record.findings[0].summary


# -- formerly locked scenarios on a third-party engine ------------------------------------
@pytest.mark.parametrize("name", FORMERLY_LOCKED)
def test_formerly_locked_scenario_runs_clean_on_a_third_party_engine(name: str) -> None:
    record = _replay(BUNDLED / f"{name}.toml", f"{ENG}:make_strict")
    assert record.verdict == "clean", [f.summary for f in record.findings]
    assert record.steps and not [s for s in record.steps if s.skipped]
    if name == "module-reload":
        assert [s.op for s in record.steps].count("reload") == 3
    if name == "soak-200":
        assert len({s.cycle for s in record.steps}) == 200


def test_module_reload_is_skipped_as_a_whole_on_an_engine_without_reload() -> None:
    record = _replay(BUNDLED / "module-reload.toml", "memcycle.examples.my_engine:make_engine")
    assert record.verdict == "skipped" and record.exit["reason"] == "engine lacks reload"


# -- partial skips ----------------------------------------------------------------------
def test_a_partial_skip_is_clean_on_what_ran_and_shows_the_skipped_steps() -> None:
    record = _replay(BUNDLED / "segment-threshold.toml", f"{ENG}:make_no_delete")
    assert record.verdict == "clean" and record.passed
    skip = record.findings[-1]
    assert skip.summary == (
        "3 steps skipped: delete x3 (no-delete has no delete (capabilities.delete = False)) "
        "in cycles 1..3"
    )
    text = format_run(record)
    assert "verdict=clean expected=clean  PASS" in text
    assert f"  skipped: {skip.summary}" in text


def test_memcycle_run_shows_skipped_steps_everywhere_and_fail_on_skip_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "del.toml"
    sc.write_text(
        'name = "del"\ndimension = 8\n[[cycle]]\nrepeat = 2\nsteps = [ { op = "insert", '
        'count = 40 }, { op = "delete", count = 5 }, { op = "search" }, { op = "clear" } ]\n'
    )
    args = ["run", str(sc), "--engine", f"{ENG}:make_no_delete", "--no-memray"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    line = "2 steps skipped: delete x2 (no-delete has no delete (capabilities.delete = False))"
    assert "verdict=clean expected=clean  PASS" in text and f"skipped: {line}" in text
    assert "0 skipped (not passed), 1 with skipped steps" in text
    (run,) = Report.from_dict(json.loads((tmp_path / "a" / "report.json").read_text())).runs
    assert run.verdict == "clean" and [f.verdict for f in run.findings] == ["skipped"]
    assert line in (tmp_path / "a" / "summary.md").read_text()
    assert main([*args, "--out", str(tmp_path / "b"), "--fail-on-skip"]) == 1
    assert "--fail-on-skip: 0 run(s) skipped, 1 run(s) with skipped steps" in (
        capsys.readouterr().err
    )


def test_fail_on_skip_passes_a_run_without_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "ok.toml"
    sc.write_text(
        'name = "ok"\ndimension = 8\n[[cycle]]\nsteps = [ { op = "insert", count = 9 } ]\n'
    )
    args = ["run", str(sc), "--engine", f"{ENG}:make_strict", "--no-memray", "--fail-on-skip"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0


PLUGIN_SCENARIO = """
name = "del"
dimension = 8
[[cycle]]
steps = [ { op = "insert", count = 20 }, { op = "delete", count = 2 }, { op = "clear" } ]
"""


def test_pytest_fail_on_skip_fails_an_item_with_skipped_steps(pytester: pytest.Pytester) -> None:
    (pytester.path / "del.toml").write_text(PLUGIN_SCENARIO)
    # the child starts in the pytester directory: the engine module lives there
    pytester.makepyfile(nodel=Path(__file__).with_name("suite_engines.py").read_text())
    common = ["-p", "no:cacheprovider", "del.toml", "--memcycle-no-memray"]
    common += ["--memcycle-engine", "nodel:make_no_delete"]
    pytester.runpytest(*common).assert_outcomes(passed=1)
    result = pytester.runpytest(*common, "--memcycle-fail-on-skip")
    result.assert_outcomes(failed=1)
    assert "--memcycle-fail-on-skip: 1 step skipped: delete" in result.stdout.str()


def test_the_schema_example_parses_with_its_refimpl_table() -> None:
    text = (BUNDLED / "SCHEMA.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    sc = parse_scenario(example, "example.toml")
    assert sc.options("refimpl") == {"M": 16, "buffer_size": 256, "segment_threshold": 2048}
    assert sc.options("hnswlib") == {"M": 16} and sc.engines == ()


def test_a_refimpl_table_reaches_refimpl_in_the_child_and_no_other_engine(tmp_path: Path) -> None:
    path = tmp_path / "scoped.toml"
    path.write_text(
        'name = "scoped"\ndimension = 8\n[engine.refimpl]\nbogus = 1\n'
        '[[cycle]]\nsteps = [ { op = "insert", count = 20 }, { op = "clear" } ]\n'
    )
    on_refimpl = _replay(path, "refimpl")  # refimpl refuses an option it does not know
    assert not on_refimpl.steps
    assert "unknown refimpl option(s) bogus" in on_refimpl.findings[0].summary
    on_strict = _replay(path, f"{ENG}:make_strict")  # strict refuses any option at all
    assert on_strict.verdict == "clean" and on_strict.steps


def test_the_bundled_refimpl_thresholds_are_what_the_refimpl_adapter_builds_with() -> None:
    from memcycle.engines.base import EngineConfig
    from memcycle.engines.registry import make_engine

    sc = load_scenario(BUNDLED / "flat-buffer-threshold.toml")
    engine = make_engine("refimpl", EngineConfig(options=sc.options("refimpl")))
    assert engine.kwargs == {"buffer_size": 256, "segment_threshold": 2048}  # type: ignore[attr-defined]


def test_a_leak_with_skipped_steps_shows_both_on_the_console() -> None:
    sc = parse_scenario(
        "dimension = 8\n[[cycle]]\nrepeat = 3\nsteps = [ { op = 'insert', count = 5 }, "
        "{ op = 'delete', count = 1 }, { op = 'clear' } ]\n"
    )
    record = RunRecord("s", "s.toml", "e", "native", [], "clean", exit={"kind": "clean"})
    for c in (1, 2, 3):
        ledger = {"live_blocks": c, "live_bytes": 64 * c, "by_label": {"rows": {"bytes": 64}}}
        record.steps += [
            StepEvent(c, 0, "insert", True, 0.0, 8, 5 * c, 5 * c),
            StepEvent(c, 1, "delete", True, 0.0, skipped="e has no delete"),
            StepEvent(c, 2, "clear", True, 0.0, 8, 0, 0, memory={"ledger": ledger}),
        ]
    judge(record, sc.plan)
    text = format_run(record)
    assert "verdict=leak expected=clean  FAIL" in text
    assert "  - leak: 1 block(s), 64 bytes still live after clear in cycle 1" in text
    assert "  skipped: 3 steps skipped: delete x3 (e has no delete) in cycles 1..3" in text
