"""The child/parent contract (memcycle.protocol): the child's config round-trips and refuses
what it does not know, the event stream folds into one outcome, no allocator violation is lost."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from memcycle.bundled import scenarios_dir
from memcycle.isolation import CONFIG_ARG_LIMIT, classify, config_argument
from memcycle.protocol import (
    ChildConfig,
    ChildStream,
    EventKind,
    EventReader,
    EventWriter,
    ProtocolError,
    fold_events,
)
from memcycle.records import LEDGER_VIOLATION_COUNT, StepEvent, new_violations
from memcycle.runner import run_one
from memcycle.scenario import load_scenario

ENGINES = "tests.engines_for_tests"
SCENARIO = """
name = "proto"
dimension = 8
[engine]
M = 8
[engine."tests.engines_for_tests:make_bruteforce"]
ef = 2.5
[[cycle]]
repeat = 2
steps = [
  { op = "insert", count = 20, batch = 5, metadata = true },
  { op = "search", queries = 3, k = 3, filter = { group = "a" } },
  { op = "delete", fraction = 0.5 },
  { op = "clear" },
]
[[cycle]]
dimension = 16
label = "wider"
steps = [ { op = "insert", count = 10, timeout = 30 }, { op = "destroy" } ]
[expect]
verdict = { default = "clean", raw = "crash" }
"""


def _file(tmp_path: Path, text: str = SCENARIO) -> Path:
    path = tmp_path / "proto.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _config(tmp_path: Path) -> ChildConfig:
    return ChildConfig(
        load_scenario(_file(tmp_path)),
        f"{ENGINES}:make_bruteforce",
        allocator="checked",
        faults=("double-free-on-clear",),
        options={"M": 16, "names": ["a", "b"], "ratio": 0.5},
        memray_path="/tmp/capture.bin",
        native=True,
        tracemalloc=False,
        sys_path=("/work/project",),
        deadline=70.0,
        event_token="0123abcd",
    )


# -- the configuration -------------------------------------------------------------------------
def test_every_bundled_scenario_round_trips_through_the_child_config() -> None:
    paths = sorted(scenarios_dir().rglob("*.toml"))
    assert len(paths) > 10
    for path in paths:
        sc = load_scenario(path)
        config = ChildConfig(sc, "refimpl", options={"buffer_size": 64})
        back = ChildConfig.from_json(config.to_json())
        assert back == config, path
        assert back.scenario.plan == sc.plan, path  # the plan is rebuilt, not sent


def test_a_config_with_every_field_set_round_trips(tmp_path: Path) -> None:
    config = _config(tmp_path)
    back = ChildConfig.from_json(config.to_json())
    assert back == config
    assert back.scenario.plan == config.scenario.plan
    assert back.scenario.options(f"{ENGINES}:make_bruteforce") == {"M": 8, "ef": 2.5}
    assert [pc.dimension for pc in back.scenario.plan] == [8, 8, 16]


def test_the_child_config_carries_the_scenario_so_the_file_is_never_read_again(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    text = config.to_json()
    (tmp_path / "proto.toml").unlink()
    assert ChildConfig.from_json(text).scenario.cycles[1].label == "wider"


def _mutated(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads(_config(tmp_path).to_json())
    change(data)
    return json.dumps(data)


def _step0(data: dict[str, Any]) -> dict[str, Any]:
    return data["scenario"]["cycles"][0]["steps"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="red"), "child config: unknown field 'colour'; expected one of"),
        (lambda d: d.pop("engine"), "child config: missing field 'engine'"),
        (lambda d: d.pop("tracemalloc"), "child config: missing field 'tracemalloc'"),
        (lambda d: d.update(native="yes"), 'child config.native: expected bool, got "yes"'),
        (lambda d: d.update(deadline=True), "child config.deadline: expected float or null"),
        (lambda d: d.update(faults="x"), 'child config.faults: expected a list, got "x"'),
        (lambda d: d.update(options=[1]), "child config.options: expected an object, got [1]"),
        (lambda d: d["scenario"].pop("name"), "child config.scenario: missing field 'name'"),
        (
            lambda d: _step0(d).update(count="ten"),
            'child config.scenario.cycles[0].steps[0].count: expected int or null, got "ten"',
        ),
        (
            lambda d: _step0(d).update(colour=1),
            "child config.scenario.cycles[0].steps[0]: unknown field 'colour'",
        ),
        (
            lambda d: d["scenario"].update(expect=["clean"]),
            "child config.scenario.expect: expected an object",
        ),
    ],
)
def test_a_config_with_an_unknown_missing_or_mistyped_field_is_refused_in_one_line(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        ChildConfig.from_json(_mutated(tmp_path, change))
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "child config: not JSON"), ("[1, 2]", "child config: expected an object")],
)
def test_a_config_that_is_no_json_object_is_refused(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        ChildConfig.from_json(text)


def test_the_child_refuses_a_config_it_cannot_read_before_any_event() -> None:
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "memcycle.child", "--events-fd", "1", "--config", "{}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""  # the events fd: nothing was emitted
    assert "child config: missing field 'scenario'" in proc.stderr


# -- the event lines ----------------------------------------------------------------------------
def test_the_childs_lines_are_read_back_and_anyone_elses_are_forged_or_garbage() -> None:
    out = io.StringIO()
    writer = EventWriter(out, "tok1")
    writer.emit(EventKind.START, pid=np.int64(7), dims=np.arange(3), labels={"a"})
    writer.emit(EventKind.STEP, cycle=1)
    first, second = out.getvalue().splitlines()
    reader = EventReader("tok1")
    assert reader.read(first) == {"kind": "start", "pid": 7, "dims": [0, 1, 2], "labels": ["a"]}
    assert reader.read("  ") is None
    assert reader.read(first)["kind"] == EventKind.FORGED  # a replay: out of sequence
    assert reader.read('{"kind": "end", "tok": "other", "seq": 1}')["kind"] == EventKind.FORGED
    assert reader.read("hello")["kind"] == EventKind.GARBAGE
    assert reader.read(second) == {"kind": "step", "cycle": 1}  # the child's sequence goes on


# -- the fold ----------------------------------------------------------------------------------
START = {"kind": "start", "engine": "e", "capabilities": {"delete": True}, "source_roots": ["/r"]}
END = {"kind": "end", "code": 0, "seconds": 1.0, "compile_seconds": 0.5}


def _step(cycle: int, step: int, op: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "step",
        "cycle": cycle,
        "step": step,
        "op": op,
        "ok": True,
        "seconds": 0.1,
        **extra,
    }


def _outcome(
    events: list[dict[str, Any]], code: int | None, *, timed_out: bool = False, stderr: str = ""
) -> tuple[ChildStream, dict[str, Any]]:
    stream = fold_events(events)
    return stream, classify(code, timed_out, stream, stderr)


def test_a_clean_stream_folds_into_steps_markers_and_a_clean_end() -> None:
    marker = {"kind": "marker", "index": 0, "cycle": 1, "step": 1, "op": "clear"}
    events = [START, _step(1, 0, "insert"), _step(1, 1, "clear"), marker, _step(1, 2, "close"), END]
    stream, exit = _outcome(events, 0)
    assert exit["kind"] == "clean"
    assert stream.started and stream.ended and not stream.malformed
    assert [s.op for s in stream.steps] == ["insert", "clear", "close"]
    assert all(isinstance(s, StepEvent) for s in stream.steps)
    assert stream.markers == [{"index": 0, "cycle": 1, "step": 1, "op": "clear"}]
    assert stream.start is not None and stream.start["source_roots"] == ["/r"]
    assert stream.compile_seconds == 0.5


def test_a_crash_keeps_every_step_before_it_and_ends_as_a_signal() -> None:
    events = [START, _step(1, 0, "insert"), _step(1, 1, "clear")]
    stream, exit = _outcome(events, -11, stderr="Fatal Python error: Segmentation fault\n")
    assert exit["kind"] == "signal" and exit["signal_name"] == "SIGSEGV"
    assert len(stream.steps) == 2 and not stream.ended
    assert stream.compile_seconds is None  # known only from the end event


def test_a_timeout_is_a_timeout_whatever_the_stream_says() -> None:
    _stream, exit = _outcome([START, _step(1, 0, "insert")], -9, timed_out=True)
    assert exit["kind"] == "timeout"


def test_a_setup_error_is_an_exception_of_a_child_that_never_started() -> None:
    error = {"type": "builtins.ImportError", "message": "no module named x", "traceback": ""}
    stream, exit = _outcome([{"kind": "error", "phase": "setup", "error": error}, END], 4)
    assert exit["kind"] == "exception" and exit["error"] == error
    assert stream.setup_error == error and not stream.started


def test_a_step_error_is_the_first_error_of_the_stream() -> None:
    first = {"type": "builtins.RuntimeError", "message": "exploded"}
    events = [START, _step(1, 0, "insert", ok=False, error=first), END]
    stream, exit = _outcome(events, 3)
    assert exit["kind"] == "exception" and exit["error"] == first
    assert stream.setup_error is None and stream.steps[0].error == first


def test_a_truncated_stream_without_its_end_is_an_exit_not_clean() -> None:
    stream, exit = _outcome([START, _step(1, 0, "insert")], 0)
    assert exit["kind"] == "exit" and not stream.ended


def test_confirmations_skips_and_lines_of_others_are_told_apart() -> None:
    events = [
        START,
        {"kind": "confirm", "cycle": 4, "repeats": 3, "signal": "py_blocks"},
        {"kind": "skip", "reason": "engine lacks reload"},
        {"kind": EventKind.FORGED, "text": '{"kind": "end"}'},
        {"kind": EventKind.GARBAGE, "text": "hello"},
    ]
    stream, exit = _outcome(events, 0)
    assert stream.confirmed == [4] and stream.skip_reason == "engine lacks reload"
    assert stream.forged == ['{"kind": "end"}'] and stream.garbage == ["hello"]
    assert exit["forged_events"] == 1 and exit["kind"] == "exit"  # a forged end ends nothing
    assert not stream.malformed


def test_an_event_this_memcycle_cannot_read_is_listed_not_raised() -> None:
    stream = fold_events([{"kind": "step", "cycle": 1}, {"kind": "teleport"}])
    assert len(stream.malformed) == 2 and not stream.steps
    assert "step event" in stream.malformed[0] and "'teleport'" in stream.malformed[1]


# -- allocator violations ------------------------------------------------------------------------
def test_a_run_with_more_than_five_violations_in_one_step_keeps_every_one(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        """
dimension = 8
[engine]
violations_per_clear = 7
[[cycle]]
repeat = 2
steps = [ { op = "insert", count = 20 }, { op = "clear" } ]
""",
    )
    rec = run_one(
        path, f"{ENGINES}:make_many_violations", memray=False, tracemalloc=False, confirm=False
    )
    assert rec.verdict == "double-free"
    # one finding per block (past ten, the rest are rolled up into one, with their summaries)
    said = [f.summary for f in rec.findings]
    said += [s for f in rec.findings for s in f.evidence.get("summaries", [])]
    for label in (f"block-{c}-{i}" for c in (1, 2) for i in range(7)):
        assert any(f"'{label}'" in line for line in said), label
    per_step = new_violations(rec.steps)
    assert [len(new) for ev, new in zip(rec.steps, per_step, strict=True) if ev.op == "clear"] == [
        7,
        7,
    ]
    assert sum(map(len, per_step)) == 14  # each reported once, at the step that recorded it
    assert rec.steps[-1].memory["ledger"][LEDGER_VIOLATION_COUNT] == 14


def test_a_report_written_with_the_cumulative_list_reads_the_same_new_violations() -> None:
    a, b, c = ({"verdict": "double-free", "label": x} for x in "abc")
    ledgers = [
        {"n_violations": 0, "violations": []},
        {"n_violations": 1, "violations": [a]},
        {"n_violations": 3, "violations": [a, b, c]},
        {"n_violations": 3, "violations": [a, b, c]},
    ]
    steps = [
        StepEvent(1, i, "clear", True, 0.0, memory={"ledger": led}) for i, led in enumerate(ledgers)
    ]
    assert new_violations(steps) == [[], [a], [b, c], []]


def test_a_config_too_long_for_one_argument_reaches_the_child_through_a_file(
    tmp_path: Path,
) -> None:
    """Linux refuses one argv string over 128 KiB: a scenario that large still runs."""
    description = "x" * (3 * CONFIG_ARG_LIMIT)  # the config carries the scenario, text and all
    path = _file(
        tmp_path,
        f"""
description = "{description}"
dimension = 8
[[cycle]]
steps = [ {{ op = "insert", count = 20 }}, {{ op = "clear" }} ]
""",
    )
    config = ChildConfig(scenario=load_scenario(path), engine=f"{ENGINES}:make_many_violations")
    argument = config_argument(config)
    assert argument.startswith("@") and len(argument) < 4096
    assert ChildConfig.from_json(Path(argument[1:]).read_text()) == config
    rec = run_one(
        path, f"{ENGINES}:make_many_violations", memray=False, tracemalloc=False, confirm=False
    )
    assert [ev.op for ev in rec.steps][:2] == ["insert", "clear"]
    assert rec.verdict != "error", rec.findings


def test_a_config_that_fits_in_one_argument_is_passed_as_json_itself(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config_argument(config) == config.to_json()
