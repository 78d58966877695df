"""The runner's option plumbing, without a child: every RunSpec option reaches the child's config
or the code that honours it (the time limit, the tool's stretch of it, memray, tracemalloc,
confirm, the faults, the expectation), through `run_one`, `run_spec` and `run_many` alike.

`run_child` is replaced by a recorder that answers a clean, empty run, so each test costs
milliseconds and a dropped or inverted option fails by name (mutation testing, docs/mutation.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from memcycle import runner
from memcycle.isolation import ChildResult
from memcycle.protocol import ChildConfig, ChildStream
from memcycle.sanitizers import STEP_TIMEOUT_FACTOR, TIMEOUT_FACTOR, TIMEOUT_SLACK
from memcycle.scenario import load_scenario

SCENARIO = """
name = "plumbing"
dimension = 4
faults = ["double-free-on-clear"]
{timeout}
[[cycle]]
steps = [ {{ op = "insert", count = 4, timeout = 7 }}, {{ op = "clear" }} ]
[expect]
verdict = {{ default = "clean", checked = "double-free" }}
"""


class Recorder:
    """Stands in for `isolation.run_child`: keeps what it was given, answers a clean exit."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, config: ChildConfig, **kwargs: Any) -> ChildResult:
        self.calls.append({"config": config, **kwargs})
        return ChildResult(stream=ChildStream(), exit={"kind": "exit", "code": 0})

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(runner, "run_child", recorder)
    return recorder


def _scenario(tmp_path: Path, timeout: str = "") -> Path:
    path = tmp_path / "plumbing.toml"
    path.write_text(SCENARIO.format(timeout=timeout), encoding="utf-8")
    return path


def test_every_engine_option_of_a_run_reaches_the_childs_config(
    tmp_path: Path, child: Recorder
) -> None:
    runner.run_one(
        _scenario(tmp_path),
        "refimpl",
        "checked",
        ("use-after-free-on-search", "double-free-on-clear"),
        memray=False,
        native=True,
        options={"M": 12},
        trace_python_allocators=True,
        confirm=False,
        tracemalloc=False,
    )
    config = child.only["config"]
    assert config.engine == "refimpl"
    assert config.allocator == "checked"
    # the scenario's own faults first, then the caller's, each once
    assert config.faults == ("double-free-on-clear", "use-after-free-on-search")
    assert config.options == {"M": 12}
    assert config.native is True
    assert config.trace_python_allocators is True
    assert config.confirm is False
    assert config.tracemalloc is False
    assert config.memray_path is None


def test_the_childs_defaults_are_the_runs_defaults(tmp_path: Path, child: Recorder) -> None:
    runner.run_one(_scenario(tmp_path), memray=False)
    config = child.only["config"]
    assert config.native is False
    assert config.trace_python_allocators is False
    assert config.confirm is True
    assert config.allocator == "numpy"


def test_tracemalloc_is_on_exactly_when_memray_is_off_unless_the_caller_says(
    tmp_path: Path, child: Recorder
) -> None:
    path = _scenario(tmp_path)
    runner.run_one(path, memray=False)
    runner.run_one(path, memray=True)
    runner.run_one(path, memray=True, tracemalloc=True)
    off, on, forced = (c["config"] for c in child.calls)
    assert off.tracemalloc is True and off.memray_path is None
    assert on.tracemalloc is False and on.memray_path is not None
    assert on.memray_path.endswith("capture.bin")
    assert forced.tracemalloc is True and forced.memray_path is not None


def test_a_memray_capture_is_kept_in_the_runs_folder_when_one_is_given(
    tmp_path: Path, child: Recorder
) -> None:
    record = runner.run_one(_scenario(tmp_path), memray=True, out_dir=tmp_path / "out")
    capture = Path(child.only["config"].memray_path)
    assert capture.parent == tmp_path / "out" / runner.slug(record.key)
    assert (capture.parent / "stderr.txt").exists()
    assert (capture.parent / "events.jsonl").exists()


def test_the_callers_time_limit_reaches_the_child_and_its_watchdog(
    tmp_path: Path, child: Recorder
) -> None:
    runner.run_one(_scenario(tmp_path, "timeout = 50"), timeout=9.0)
    call = child.only
    assert call["timeout"] == 9.0
    assert call["watchdog"].run_timeout == 9.0
    assert call["mode"] is None


def test_without_a_callers_limit_the_scenarios_limit_then_the_default_applies(
    tmp_path: Path, child: Recorder
) -> None:
    runner.run_one(_scenario(tmp_path, "timeout = 50"))
    runner.run_one(_scenario(tmp_path))
    own, default = child.calls
    assert own["timeout"] == 50.0
    assert default["timeout"] == runner.DEFAULT_TIMEOUT


def test_a_step_limit_reaches_the_watchdog_at_its_position(tmp_path: Path, child: Recorder) -> None:
    runner.run_one(_scenario(tmp_path))
    positions = child.only["watchdog"].positions
    timed = [p for p in positions if p.timeout is not None]
    assert [(p.op, p.timeout) for p in timed] == [("insert", 7.0)]


@pytest.mark.parametrize("tool", ["asan", "ubsan"])
def test_a_sanitizer_stretches_the_run_and_step_limits_by_its_own_factors(
    tmp_path: Path, child: Recorder, tool: str
) -> None:
    runner.run_one(_scenario(tmp_path), timeout=10.0, sanitizer=tool)
    call = child.only
    assert call["timeout"] == TIMEOUT_FACTOR[tool] * 10.0 + TIMEOUT_SLACK[tool]
    assert call["watchdog"].run_timeout == call["timeout"]
    (timed,) = [p for p in call["watchdog"].positions if p.timeout is not None]
    assert timed.timeout == 7.0 * STEP_TIMEOUT_FACTOR[tool]
    assert call["mode"].tool == tool


def test_valgrind_wins_over_a_sanitizer_and_stretches_the_limits_by_its_factor(
    tmp_path: Path, child: Recorder
) -> None:
    runner.run_one(_scenario(tmp_path), timeout=10.0, sanitizer="asan", valgrind=True)
    call = child.only
    assert call["mode"].tool == "valgrind"
    assert call["timeout"] == TIMEOUT_FACTOR["valgrind"] * 10.0 + TIMEOUT_SLACK["valgrind"]


def test_run_many_hands_every_items_own_options_to_its_child(
    tmp_path: Path, child: Recorder
) -> None:
    path = _scenario(tmp_path)
    items = [
        runner.RunSpec(path, allocator="checked", memray=False, timeout=3.0, confirm=False),
        runner.RunSpec(path, memray=False, timeout=4.0, faults=("leak-on-clear",)),
    ]
    report = runner.run_many(items, tmp_path / "out")
    by_timeout = {c["timeout"]: c["config"] for c in child.calls}
    assert sorted(by_timeout) == [3.0, 4.0]
    assert by_timeout[3.0].allocator == "checked" and by_timeout[3.0].confirm is False
    assert by_timeout[4.0].faults == ("double-free-on-clear", "leak-on-clear")
    assert [r.allocator for r in report.runs] == ["checked", "numpy"]
    assert report.interrupted is False


def test_the_callers_expectation_overrides_the_scenarios(tmp_path: Path, child: Recorder) -> None:
    path = _scenario(tmp_path)
    assert runner.run_one(path, "refimpl", "checked", memray=False).expected_verdict == (
        "double-free"
    )
    assert runner.run_one(
        path, allocator="checked", memray=False, expected="leak"
    ).expected_verdict == ("leak")


def test_a_scenario_for_other_engines_is_skipped_without_a_child(
    tmp_path: Path, child: Recorder
) -> None:
    path = tmp_path / "other.toml"
    path.write_text(SCENARIO.format(timeout='engines = ["hnswlib"]'), encoding="utf-8")
    record = runner.run_one(path, "refimpl", memray=False)
    assert record.verdict == "skipped"
    assert child.calls == []


def test_an_unknown_run_option_or_flamegraph_choice_is_refused_by_name(
    tmp_path: Path, child: Recorder
) -> None:
    with pytest.raises(TypeError, match="unknown option 'timout'"):
        runner.run_one(_scenario(tmp_path), timout=3)
    with pytest.raises(ValueError, match="flamegraphs must be"):
        runner.run_one(_scenario(tmp_path), flamegraphs="some")
    assert child.calls == []


def test_the_run_key_of_a_spec_is_the_key_its_record_gets(tmp_path: Path, child: Recorder) -> None:
    spec = runner.RunSpec(_scenario(tmp_path), allocator="checked", faults=("leak-on-clear",))
    record = runner.run_spec(spec)
    assert runner.spec_key(spec) == record.key
    assert load_scenario(spec.scenario).name in record.key


def test_a_sanitizer_run_keeps_its_run_folder_and_removes_its_own_temporary_one(
    tmp_path: Path, child: Recorder
) -> None:
    path = _scenario(tmp_path)
    record = runner.run_one(path, memray=False, sanitizer="asan", out_dir=tmp_path / "out")
    kept = tmp_path / "out" / runner.slug(record.key)
    assert child.calls[0]["mode"].workdir == kept / "asan"
    assert kept.is_dir()
    runner.run_one(path, memray=False, sanitizer="asan")
    assert not child.calls[1]["mode"].workdir.parent.exists()


def test_a_memray_capture_without_a_run_folder_is_removed_after_the_run(
    tmp_path: Path, child: Recorder
) -> None:
    runner.run_one(_scenario(tmp_path), memray=True)
    assert not Path(child.only["config"].memray_path).parent.exists()


def test_the_childs_own_compile_total_is_the_runs_compile_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        return ChildResult(stream=ChildStream(end={"compile_seconds": 2.5}), exit={"kind": "clean"})

    monkeypatch.setattr(runner, "run_child", fake)
    assert runner.run_one(_scenario(tmp_path), memray=False).compile_seconds == 2.5


def test_a_harness_error_record_names_the_scenario_and_its_expectation(tmp_path: Path) -> None:
    spec = runner.RunSpec(_scenario(tmp_path), allocator="checked")
    record = runner.harness_error_record(spec, RuntimeError("boom"))
    assert (record.verdict, record.scenario) == ("error", "plumbing")
    assert record.expected_verdict == "double-free"
    assert record.faults == ["double-free-on-clear"]
    assert "RuntimeError: boom" in record.findings[0].summary


def test_the_run_key_of_a_scenario_that_does_not_load_is_made_of_the_spec_itself(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("dimension = 'eight'\n", encoding="utf-8")
    assert runner.spec_key(runner.RunSpec(bad, faults=("leak-on-clear",))) == (
        f"{bad}|-|numpy|leak-on-clear"
    )
