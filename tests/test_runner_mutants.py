"""The runner's option plumbing, without a child: every RunSpec option reaches the child's config
or the code that honours it (the time limit, the tool's stretch of it, memray, tracemalloc,
confirm, the faults, the expectation), through `run_one`, `run_spec` and `run_many` alike.

`run_child` is replaced by a recorder that answers a clean, empty run, so each test costs
milliseconds and a dropped or inverted option fails by name (mutation testing, docs/mutation.md).
"""

from __future__ import annotations

import _thread
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from memcycle import batch, runner
from memcycle.isolation import Cancelled, ChildRegistry, ChildResult
from memcycle.protocol import ChildConfig, ChildStream
from memcycle.records import StepEvent
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


def test_an_unknown_sanitizer_is_refused_by_name_not_run_with_plain_time_limits(
    tmp_path: Path, child: Recorder
) -> None:
    """The CLI's choices refuse it; the API must too, before a child runs with no tool and
    the limits of none."""
    with pytest.raises(ValueError, match=r"sanitizer must be one of asan, ubsan .* got 'msan'"):
        runner.run_one(_scenario(tmp_path), sanitizer="msan")
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


def test_a_run_whose_temporary_folder_vanished_during_the_run_still_gives_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tmp cleaner or the engine's own cleanup may remove the run's scratch folder first;
    removing it afterwards must not turn the run's verdict into a crash of memcycle."""
    import shutil

    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        if vanish:
            shutil.rmtree(Path(config.memray_path).parent)  # memray, no run folder: a temp one
        return ChildResult(stream=ChildStream(), exit={"kind": "exit", "code": 0})

    monkeypatch.setattr(runner, "run_child", fake)
    vanish = False
    kept = runner.run_one(_scenario(tmp_path), memray=True)
    vanish = True
    gone = runner.run_one(_scenario(tmp_path), memray=True)
    assert (gone.verdict, gone.exit) == (kept.verdict, kept.exit)
    assert [f.summary for f in gone.findings] == [f.summary for f in kept.findings]


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


# -- what the runner makes of the child's stream -----------------------------------------------
THREE_TABLES = """
name = "three"
dimension = 4
[[cycle]]
steps = [ { op = "insert", count = 4 }, { op = "clear" } ]
[[cycle]]
dimension = 8
steps = [ { op = "insert", count = 4 }, { op = "clear" } ]
[[cycle]]
dimension = 12
steps = [ { op = "insert", count = 4 }, { op = "clear" } ]
"""


def _answer(monkeypatch: pytest.MonkeyPatch, result: ChildResult) -> list[dict[str, Any]]:
    """`run_child` answers `result`; returns the calls it got."""
    calls: list[dict[str, Any]] = []

    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        calls.append({"config": config, **kwargs})
        return result

    monkeypatch.setattr(runner, "run_child", fake)
    return calls


def test_a_confirmation_repeat_is_judged_as_a_repeat_of_the_last_planned_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "three.toml"
    path.write_text(THREE_TABLES, encoding="utf-8")
    _answer(monkeypatch, ChildResult(stream=ChildStream(confirmed=[4]), exit={"kind": "exit"}))
    record = runner.run_one(path, memray=False)
    assert [(c.cycle, c.dimension) for c in record.cycles] == [(1, 4), (2, 8), (3, 12), (4, 12)]


def test_an_engines_own_allocator_is_recorded_and_its_expectation_used_unless_the_caller_gave_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = {"allocator": "native", "capabilities": {"delete": True}, "source_roots": []}
    _answer(monkeypatch, ChildResult(stream=ChildStream(start=start), exit={"kind": "exit"}))
    own = runner.run_one(_scenario(tmp_path), allocator="checked", memray=False)
    assert (own.allocator, own.expected_verdict) == ("native", "clean")
    assert own.capabilities == {"delete": True}
    told = runner.run_one(_scenario(tmp_path), allocator="checked", memray=False, expected="leak")
    assert (told.allocator, told.expected_verdict) == ("native", "leak")
    same = {**start, "allocator": "checked"}
    _answer(monkeypatch, ChildResult(stream=ChildStream(start=same), exit={"kind": "exit"}))
    kept = runner.run_one(_scenario(tmp_path), allocator="checked", memray=False)
    assert (kept.allocator, kept.expected_verdict) == ("checked", "double-free")


@pytest.mark.parametrize("said", ["", 7, None])
def test_a_start_events_empty_or_non_string_allocator_leaves_the_runs_own_and_its_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, said: Any
) -> None:
    start = {"allocator": said, "capabilities": {}, "source_roots": []}
    _answer(monkeypatch, ChildResult(stream=ChildStream(start=start), exit={"kind": "exit"}))
    record = runner.run_one(_scenario(tmp_path), allocator="checked", memray=False)
    assert (record.allocator, record.expected_verdict) == ("checked", "double-free")


def test_a_scenario_the_child_skipped_is_a_skipped_run_with_the_childs_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = ChildStream(skip_reason="the engine cannot delete")
    _answer(monkeypatch, ChildResult(stream=stream, exit={"kind": "clean", "code": 0}))
    record = runner.run_one(_scenario(tmp_path), memray=False)
    assert record.verdict == "skipped"
    assert record.exit["reason"] == "the engine cannot delete"


def test_after_a_crash_the_compile_time_is_the_sum_of_the_steps_that_reported_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = [
        StepEvent(1, 0, "insert", True, 0.1, compile_seconds=1.5),
        StepEvent(1, 1, "clear", True, 0.1, compile_seconds=None),
        StepEvent(1, 2, "insert", True, 0.1, compile_seconds=2.0),
    ]
    _answer(monkeypatch, ChildResult(stream=ChildStream(steps=steps), exit={"kind": "signal"}))
    assert runner.run_one(_scenario(tmp_path), memray=False).compile_seconds == 3.5


def test_the_run_folder_keeps_every_event_of_the_child_and_its_stderr_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [{"kind": "start", "n": 1}, {"kind": "end", "n": 2}]
    exit = {"kind": "exit", "stderr_tail": "the child's last words\n"}
    _answer(monkeypatch, ChildResult(events=events, stream=ChildStream(), exit=exit))
    record = runner.run_one(_scenario(tmp_path), memray=False, out_dir=tmp_path / "out")
    kept = tmp_path / "out" / runner.slug(record.key)
    lines = (kept / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == events
    assert (kept / "stderr.txt").read_text(encoding="utf-8") == "the child's last words\n"
    # the same run again into the same folder: the folder is reused, not refused
    runner.run_one(_scenario(tmp_path), memray=False, out_dir=tmp_path / "out")


def test_without_a_capture_and_without_memray_the_peak_is_the_highest_rss_of_a_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = [
        StepEvent(1, i, "insert", True, 0.1, memory={"rss": r}) for i, r in enumerate([5, 9, 7])
    ]
    _answer(monkeypatch, ChildResult(stream=ChildStream(steps=steps), exit={"kind": "exit"}))
    record = runner.run_one(_scenario(tmp_path), memray=True)
    assert record.peak_bytes == 9
    assert record.memray is None  # the child wrote no capture: nothing was analysed


def test_the_runs_seconds_are_the_time_from_its_start_to_its_end(
    tmp_path: Path, child: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter([100.0])
    monkeypatch.setattr(runner.time, "perf_counter", lambda: next(ticks, 103.5))
    assert runner.run_one(_scenario(tmp_path), memray=False).seconds == 3.5


class FakeMemray:
    """Stands in for `harness.analysis` (analyze, flamegraphs): keeps what it was asked."""

    def __init__(self) -> None:
        self.analyzed: list[dict[str, Any]] = []
        self.rendered: list[Path] = []

    def analyze(self, capture: str, roots: list[str], **kwargs: Any) -> Any:
        from memcycle.analysis import MemrayAnalysis

        self.analyzed.append({"capture": capture, "roots": roots, **kwargs})
        return MemrayAnalysis(
            capture=capture,
            records=5,
            peak_bytes=123,
            markers=[{"index": 2, "engine_live_bytes": 7}],
        )

    def flamegraphs(self, capture: str, out_dir: Path) -> dict[str, str]:
        self.rendered.append(out_dir)
        page = out_dir / "flamegraph.html"
        page.write_text("<html/>", encoding="utf-8")
        return {"flamegraph": str(page)}


MARKERS = [
    {"cycle": 1, "step": 0, "op": "insert", "index": 0},
    {"cycle": 1, "step": 1, "op": "clear", "index": 1},
    {"cycle": 1, "step": 1, "op": "clear", "index": 2},
    {"cycle": 2, "step": 1, "op": "clear", "index": 3},
]


def _with_capture(monkeypatch: pytest.MonkeyPatch, memray: FakeMemray) -> None:
    """`run_child` writes a capture where it was told to, with markers of two cycles."""
    start = {"source_roots": ["/engine"], "capabilities": {}}

    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        Path(config.memray_path or "").write_bytes(b"capture")
        stream = ChildStream(start=start, markers=[dict(m) for m in MARKERS])
        return ChildResult(stream=stream, exit={"kind": "exit", "code": 0})

    monkeypatch.setattr(runner, "run_child", fake)
    monkeypatch.setattr(runner, "_analysis", memray)


def test_a_capture_is_analysed_from_the_end_of_the_first_cycle_and_its_figures_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memray = FakeMemray()
    _with_capture(monkeypatch, memray)
    path = tmp_path / "two.toml"
    path.write_text(SCENARIO.format(timeout="").replace("[[cycle]]", "[[cycle]]\nrepeat = 2"))
    out = tmp_path / "out"
    record = runner.run_one(path, flamegraphs="none", out_dir=out)
    (asked,) = memray.analyzed
    assert asked["baseline_index"] == 2 and asked["roots"] == ["/engine"]
    assert [m["index"] for m in asked["markers"]] == [0, 1, 2, 3]
    assert record.peak_bytes == 123
    assert record.memray is not None
    assert record.memray["records"] == 5 and record.memray["source_roots"] == ["/engine"]
    assert record.memray["capture"] == f"{runner.slug(record.key)}/capture.bin"
    assert record.memray["markers"][2] == {**MARKERS[2], "engine_live_bytes": 7}


def test_a_capture_without_a_run_folder_is_analysed_but_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memray = FakeMemray()
    _with_capture(monkeypatch, memray)
    record = runner.run_one(_scenario(tmp_path))
    assert record.memray is not None and record.memray["capture"] is None
    assert memray.analyzed[0]["baseline_index"] == 2
    assert memray.rendered == []


@pytest.mark.parametrize(
    ("flamegraphs", "expected", "rendered"),
    [
        ("all", None, True),  # None: the run's own verdict, so it passed
        ("all", "leak", True),
        ("failed", None, False),
        ("failed", "leak", True),
        ("none", "leak", False),
    ],
)
def test_flamegraphs_are_rendered_for_every_run_for_a_failed_one_or_never(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flamegraphs: str,
    expected: str | None,
    rendered: bool,
) -> None:
    memray = FakeMemray()
    _with_capture(monkeypatch, memray)
    first = runner.run_one(_scenario(tmp_path), flamegraphs="none", out_dir=tmp_path / "o1")
    memray.rendered.clear()
    verdict = expected or first.verdict
    assert verdict != "error" and (verdict == first.verdict) is (expected is None)
    record = runner.run_one(
        _scenario(tmp_path), flamegraphs=flamegraphs, expected=verdict, out_dir=tmp_path / "out"
    )
    assert record.passed is (expected is None)
    assert bool(memray.rendered) is rendered
    if rendered:
        assert record.memray is not None
        assert record.memray["flamegraph"] == f"{runner.slug(record.key)}/flamegraph.html"


def test_a_sanitizer_run_with_memray_and_no_run_folder_reports_into_the_runs_own_temporary_folder(
    tmp_path: Path, child: Recorder
) -> None:
    runner.run_one(_scenario(tmp_path), memray=True, sanitizer="asan")
    call = child.only
    assert call["mode"].workdir.parent == Path(call["config"].memray_path).parent
    assert not call["mode"].workdir.parent.exists()


# -- the runner's own API ------------------------------------------------------------------------
def test_a_run_specs_defaults_are_memray_on_and_every_tool_off(
    tmp_path: Path, child: Recorder
) -> None:
    spec = runner.RunSpec(_scenario(tmp_path))
    assert (spec.memray, spec.native, spec.valgrind, spec.sanitizer) == (True, False, False, None)
    assert (spec.trace_python_allocators, spec.confirm, spec.flamegraphs) == (False, True, "failed")
    runner.run_one(_scenario(tmp_path))
    assert child.only["config"].memray_path is not None


def test_a_run_spec_cannot_be_changed_once_made(tmp_path: Path) -> None:
    import dataclasses

    spec = runner.RunSpec(_scenario(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.timeout = 3.0  # type: ignore[misc]


def test_the_default_time_limit_of_a_run_is_ten_minutes() -> None:
    assert runner.DEFAULT_TIMEOUT == 600.0


def test_run_ones_signature_lists_every_run_option_by_name_with_its_default() -> None:
    import inspect

    params = inspect.signature(runner.run_one).parameters
    assert params["memray"].default is True and params["confirm"].default is True
    assert params["options"].default == {} and params["timeout"].default is None
    assert params["memray"].kind is inspect.Parameter.KEYWORD_ONLY
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_the_run_options_after_the_faults_are_given_by_name_only(
    tmp_path: Path, child: Recorder
) -> None:
    path = _scenario(tmp_path)
    with pytest.raises(TypeError):
        runner.run_one(path, None, "numpy", (), tmp_path / "out")  # type: ignore[misc]
    with pytest.raises(TypeError):
        runner.run_spec(runner.RunSpec(path), tmp_path / "out")  # type: ignore[misc]
    with pytest.raises(TypeError):
        runner.run_many([runner.RunSpec(path)], tmp_path / "out", 2)  # type: ignore[misc]
    assert child.calls == []


def test_a_caller_named_engine_is_the_one_the_child_runs(tmp_path: Path, child: Recorder) -> None:
    runner.run_one(_scenario(tmp_path), "tests.engines_for_tests:make_bruteforce", memray=False)
    assert child.only["config"].engine == "tests.engines_for_tests:make_bruteforce"


def test_the_plan_of_a_run_is_announced_before_its_child_starts(
    tmp_path: Path, child: Recorder
) -> None:
    seen: list[dict[str, Any]] = []
    record = runner.run_one(_scenario(tmp_path), memray=False, on_event=seen.append)
    (plan,) = seen
    assert plan["kind"] == "plan" and plan["key"] == record.key
    assert (plan["cycles"], plan["ops"]) == (1, [["insert", "clear"]])


def test_a_run_key_slug_is_safe_for_a_file_name_and_never_empty() -> None:
    assert runner.slug("a b|c/d") == "a_b_c_d"
    assert runner.slug("x" * 300) == "x" * 120
    assert runner.slug("|||") == "run"


def test_a_new_run_id_is_the_time_and_a_random_suffix() -> None:
    import re

    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", runner.new_run_id())


# -- run_many: errors, order, jobs ---------------------------------------------------------------
def test_a_run_memcycle_cannot_finish_is_its_error_record_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        if kwargs["timeout"] == 1.0:
            raise RuntimeError("memcycle broke")
        return ChildResult(stream=ChildStream(), exit={"kind": "exit", "code": 0})

    monkeypatch.setattr(runner, "run_child", fake)
    finished: list[Any] = []
    path = _scenario(tmp_path)
    items = [runner.RunSpec(path, memray=False, timeout=t) for t in (1.0, 2.0)]
    report = runner.run_many(items, tmp_path / "out", progress=finished.append)
    broken, other = report.runs
    assert broken.verdict == "error" and "memcycle broke" in broken.findings[0].summary
    assert "memcycle broke" not in str(other.findings)
    assert sorted(id(r) for r in finished) == sorted(id(r) for r in report.runs)


def test_a_run_that_raises_systemexit_stops_the_batch_and_reaches_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        calls.append(kwargs["timeout"])
        raise SystemExit(4)

    monkeypatch.setattr(runner, "run_child", fake)
    path = _scenario(tmp_path)
    items = [runner.RunSpec(path, memray=False, timeout=t) for t in (1.0, 2.0, 3.0)]
    with pytest.raises(SystemExit):
        runner.run_many(items, tmp_path / "out")
    assert calls == [1.0]


def test_run_many_runs_one_child_at_a_time_unless_given_more_jobs_and_waits_for_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing here is timed: with two jobs the first child waits for the second to start
    (bounded only for a broken pool), and one job is known by the workers the pool makes."""
    import threading
    import types

    def run(jobs: int | None) -> tuple[int, int, int]:
        made: list[threading.Thread] = []

        class Recording(threading.Thread):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                made.append(self)

        lock = threading.Lock()
        second = threading.Event()
        running = [0, 0]  # now, most at once

        def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
            with lock:
                running[0] += 1
                running[1] = max(running)
                first = running[0] == 1
                if running[0] == 2:
                    second.set()
            if jobs == 2 and first:
                second.wait(10)  # two children at once: the first waits for the second
            with lock:
                running[0] -= 1
            return ChildResult(stream=ChildStream(), exit={"kind": "exit", "code": 0})

        monkeypatch.setattr(runner, "run_child", fake)
        monkeypatch.setattr(
            batch,
            "threading",
            types.SimpleNamespace(Thread=Recording, Lock=threading.Lock, Event=threading.Event),
        )
        items = [runner.RunSpec(_scenario(tmp_path), memray=False, timeout=t) for t in (1.0, 2.0)]
        extra = {} if jobs is None else {"jobs": jobs}
        report = runner.run_many(items, tmp_path / "out", **extra)
        return running[1], len(made), len(report.runs)

    assert run(None) == (1, 1, 2)
    assert run(0) == (1, 1, 2)  # no jobs at all is one
    assert run(2) == (2, 2, 2)


def test_a_batch_ends_without_an_uncaught_exception_in_any_worker(
    tmp_path: Path, child: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    uncaught: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    items = [runner.RunSpec(_scenario(tmp_path), memray=False)]
    runner.run_many(items, tmp_path / "out", jobs=3)
    assert uncaught == []


def test_a_batch_writes_into_a_new_nested_or_an_existing_folder(
    tmp_path: Path, child: Recorder
) -> None:
    items = [runner.RunSpec(_scenario(tmp_path), memray=False)]
    deep = tmp_path / "a" / "b"
    assert len(runner.run_many(items, deep).runs) == 1
    assert len(runner.run_many(items, deep).runs) == 1


def test_a_batch_report_is_named_after_its_folder_or_its_run_id_and_keeps_its_command(
    tmp_path: Path, child: Recorder
) -> None:
    import sys

    items = [runner.RunSpec(_scenario(tmp_path), memray=False)]
    plain = runner.run_many(items, tmp_path / "out")
    assert (plain.run_id, plain.command) == ("out", list(sys.argv))
    named = runner.run_many(items, tmp_path / "out", run_id="r1", command=["memcycle", "run"])
    assert (named.run_id, named.command) == ("r1", ["memcycle", "run"])
    import platform

    assert plain.host["python"] == platform.python_version()


def test_run_many_hands_each_items_events_to_the_caller_with_its_index(
    tmp_path: Path, child: Recorder
) -> None:
    seen: list[tuple[int, str]] = []
    items = [runner.RunSpec(_scenario(tmp_path), memray=False, timeout=t) for t in (1.0, 2.0)]
    runner.run_many(items, tmp_path / "out", on_event=lambda i, ev: seen.append((i, ev["kind"])))
    assert sorted(seen) == [(0, "plan"), (1, "plan")]


def test_the_run_key_of_a_built_scenario_or_a_missing_file_is_known_without_running_it(
    tmp_path: Path, child: Recorder
) -> None:
    sc = load_scenario(_scenario(tmp_path))
    spec = runner.RunSpec(sc, allocator="checked")
    assert runner.spec_key(spec) == runner.run_spec(spec).key
    missing = tmp_path / "gone.toml"
    assert runner.spec_key(runner.RunSpec(missing)) == f"{missing}|-|numpy|-"


def test_a_harness_error_record_of_a_built_scenario_a_renamed_file_or_a_broken_one(
    tmp_path: Path,
) -> None:
    sc = load_scenario(_scenario(tmp_path))
    built = runner.harness_error_record(runner.RunSpec(sc, engine="other:make"), RuntimeError("x"))
    assert (built.scenario, built.scenario_path, built.engine) == (
        "plumbing",
        sc.path,
        "other:make",
    )
    renamed = tmp_path / "renamed-file.toml"
    renamed.write_text(
        SCENARIO.format(timeout='default_engine = "tests.engines_for_tests:make_bruteforce"')
    )
    rec = runner.harness_error_record(runner.RunSpec(renamed, expected="leak"), RuntimeError("x"))
    assert (rec.scenario, rec.scenario_path) == ("plumbing", str(renamed))
    assert rec.engine == "tests.engines_for_tests:make_bruteforce"
    assert rec.expected_verdict == "leak"
    broken = tmp_path / "broken.toml"
    broken.write_text("dimension = 'eight'\n", encoding="utf-8")
    bad = runner.harness_error_record(runner.RunSpec(broken, faults=("f",)), RuntimeError("x"))
    assert (bad.scenario, bad.engine, bad.expected_verdict) == ("broken", "refimpl", "clean")
    assert bad.faults == ["f"]


def test_a_harness_errors_summary_and_traceback_are_bounded_and_keep_the_exception(
    tmp_path: Path,
) -> None:
    try:
        raise RuntimeError("w" * 10_000)
    except RuntimeError as exc:
        rec = runner.harness_error_record(runner.RunSpec(_scenario(tmp_path)), exc)
    (finding,) = rec.findings
    assert len(finding.summary) == 300 and "RuntimeError: www" in finding.summary
    assert len(finding.evidence["traceback"]) == 6000
    short = runner.harness_error_record(runner.RunSpec(_scenario(tmp_path)), ValueError("v"))
    assert "ValueError: v" in short.findings[0].evidence["traceback"]


# -- run_many interrupted ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _sigint_is_pythons() -> Iterator[None]:
    """Ctrl-C is simulated with `_thread.interrupt_main(SIGINT)`, which does nothing while
    SIGINT is ignored: and a process started as a background job of a shell without job
    control (as some CI runners start theirs) begins with SIGINT ignored. Python's own
    handler for the test, the inherited one restored after."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class Interrupting:
    """`run_child` for run_many: a run of time limit 1.0 ends at once; another presses Ctrl-C
    (simulated in the main thread, `_thread.interrupt_main`), waits for the batch to stop as
    a killed child would, takes `hand_back` seconds more to hand back, and is Cancelled."""

    def __init__(self, hand_back: float = 0.0, signum: int = signal.SIGINT) -> None:
        self.hand_back = hand_back
        self.signum = signum
        self.handed_back = False

    def __call__(self, config: ChildConfig, **kwargs: Any) -> ChildResult:
        if kwargs["timeout"] == 1.0:
            return ChildResult(stream=ChildStream(), exit={"kind": "exit", "code": 0})
        registry = kwargs["registry"]
        _thread.interrupt_main(self.signum)
        for _ in range(1000):  # up to 10 s: the main thread of a loaded machine may be slow
            if registry.stopped:
                break
            time.sleep(0.01)
        time.sleep(self.hand_back)
        self.handed_back = True
        raise Cancelled("stopped while the child ran")


def _three(tmp_path: Path) -> list[runner.RunSpec]:
    path = _scenario(tmp_path)
    return [
        runner.RunSpec(path, memray=False, timeout=1.0),
        runner.RunSpec(path, memray=False, timeout=2.0),
        runner.RunSpec(path, memray=False, timeout=3.0, allocator="checked"),
    ]


def test_an_interrupted_batch_reports_the_runs_that_finished_and_lists_the_others_as_not_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "run_child", Interrupting())
    items = _three(tmp_path)
    with pytest.raises(batch.RunInterrupted) as info:
        batch.run_many(items, tmp_path / "out")
    assert info.value.signum == signal.SIGINT
    report = info.value.report
    assert report.interrupted is True
    assert [r.key for r in report.runs] == [batch.spec_key(items[0])]
    assert report.not_done == [batch.spec_key(items[1]), batch.spec_key(items[2])]


def test_a_batch_stopped_by_sigterm_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raise_interrupted(signum: int, frame: Any) -> None:
        raise batch.Interrupted(signum)

    monkeypatch.setattr(runner, "run_child", Interrupting(signum=signal.SIGTERM))
    old = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        with pytest.raises(batch.RunInterrupted) as info:
            batch.run_many(_three(tmp_path), tmp_path / "out")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert info.value.signum == signal.SIGTERM and info.value.report.interrupted is True


def test_any_other_exception_in_the_wait_stops_every_child_and_reaches_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exit_now(signum: int, frame: Any) -> None:
        raise SystemExit(9)

    monkeypatch.setattr(runner, "run_child", Interrupting(signum=signal.SIGUSR1))
    registry = ChildRegistry()
    old = signal.signal(signal.SIGUSR1, exit_now)
    try:
        with pytest.raises(SystemExit):
            batch.run_many(_three(tmp_path), tmp_path / "out", registry=registry)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert registry.stopped


def _wait_after_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grace: float | None
) -> tuple[float | None, list[Any]]:
    """Interrupt a batch of one worker (with this STOP_GRACE, None: the module's own); return
    the one wait the main thread gave the workers after the stop, and the threads it made."""
    import threading
    import types

    waits: list[float | None] = []
    made: list[threading.Thread] = []

    class Recording(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    class RecordingEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(
        batch,
        "threading",
        types.SimpleNamespace(Thread=Recording, Lock=threading.Lock, Event=RecordingEvent),
    )
    if grace is not None:
        monkeypatch.setattr(batch, "STOP_GRACE", grace)
    monkeypatch.setattr(runner, "run_child", Interrupting())
    with pytest.raises(batch.RunInterrupted):
        batch.run_many(_three(tmp_path), tmp_path / "out")
    (after_stop,) = [w for w in waits if w != 0.2]  # one worker: one wait after the stop
    return after_stop, made


@pytest.mark.parametrize("grace", [0.0, 5.0])
def test_after_an_interrupt_the_workers_get_no_more_than_the_grace_and_never_hold_the_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grace: float
) -> None:
    """The waits are recorded, not timed."""
    after_stop, made = _wait_after_stop(tmp_path, monkeypatch, grace)
    assert after_stop is not None
    assert (after_stop == 0.0) if grace == 0.0 else (0.0 < after_stop <= grace)
    assert made and all(t.daemon for t in made)


def test_after_an_interrupt_a_batch_waits_at_most_one_second_for_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C returns promptly even when a worker hangs (its child is dead by then); the wait
    is recorded, not timed."""
    after_stop, _ = _wait_after_stop(tmp_path, monkeypatch, None)
    assert after_stop is not None and 0.5 < after_stop <= 1.0


def test_after_an_interrupt_a_worker_still_handing_back_its_run_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the grace, a worker that still cleans up (its run's scratch folder) finishes
    before the batch reports. A Ctrl-C inside Thread.join(timeout) makes CPython 3.11 mark the
    running thread stopped (bpo-45274), so a join-based wait returned at once and the cleanup
    was cut off at exit; the workers' own Events are waited on instead."""
    monkeypatch.setattr(batch, "STOP_GRACE", 30.0)
    interrupting = Interrupting(hand_back=0.5)
    monkeypatch.setattr(runner, "run_child", interrupting)
    with pytest.raises(batch.RunInterrupted):
        batch.run_many(_three(tmp_path), tmp_path / "out")
    assert interrupting.handed_back


def test_after_a_run_raised_systemexit_no_other_worker_starts_a_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing here is timed: the other run hands back only once the failing worker has
    ended (its failure recorded), then must not take the next item."""
    import threading

    both_started = threading.Barrier(2, timeout=10)
    failing: list[threading.Thread] = []
    calls: list[float] = []

    def fake(config: ChildConfig, **kwargs: Any) -> ChildResult:
        calls.append(kwargs["timeout"])
        if kwargs["timeout"] == 1.0:
            failing.append(threading.current_thread())
        if kwargs["timeout"] in (1.0, 2.0):
            both_started.wait()
        if kwargs["timeout"] == 1.0:
            raise SystemExit(4)
        failing[0].join(10)  # the failing worker has recorded its failure and ended
        return ChildResult(stream=ChildStream(), exit={"kind": "exit", "code": 0})

    monkeypatch.setattr(runner, "run_child", fake)
    path = _scenario(tmp_path)
    items = [runner.RunSpec(path, memray=False, timeout=t) for t in (1.0, 2.0, 3.0, 4.0)]
    with pytest.raises(SystemExit):
        runner.run_many(items, tmp_path / "out", jobs=2)
    assert sorted(calls) == [1.0, 2.0]
