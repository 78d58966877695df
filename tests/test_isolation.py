"""The child process boundary: events survive a crash, timeouts kill, the end is classified."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from memcycle.isolation import classify, native_message, run_child
from memcycle.protocol import ChildConfig
from memcycle.scenario import load_scenario

ENGINES = "tests.engines_for_tests"


def _scenario(tmp_path: Path, options: str = "", repeat: int = 3) -> str:
    p = tmp_path / "s.toml"
    p.write_text(
        f"""
name = "iso"
dimension = 8
[engine]
{options}
[[cycle]]
repeat = {repeat}
steps = [ {{ op = "insert", count = 50 }}, {{ op = "search", queries = 3, k = 3 }}, {{ op = "clear" }} ]
"""
    )
    return str(p)


def _config(path: str, engine: str) -> ChildConfig:
    return ChildConfig(load_scenario(path), f"{ENGINES}:{engine}", tracemalloc=False)


def test_clean_child_streams_every_step(tmp_path: Path) -> None:
    res = run_child(_config(_scenario(tmp_path), "make_bruteforce"), timeout=60)
    assert res.exit["kind"] == "clean" and res.exit["code"] == 0
    kinds = [e["kind"] for e in res.events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    steps = [e for e in res.events if e["kind"] == "step"]
    assert [(s["cycle"], s["op"]) for s in steps[:3]] == [
        (1, "insert"),
        (1, "search"),
        (1, "clear"),
    ]
    assert steps[-1]["op"] == "close" and len(steps) == 10
    assert all(s["memory"]["rss"] > 0 for s in steps)


def test_segfault_keeps_events_up_to_the_crash(tmp_path: Path) -> None:
    res = run_child(
        _config(_scenario(tmp_path, "crash_after_clears = 2"), "make_segfault"), timeout=60
    )
    assert res.exit["kind"] == "signal"
    assert res.exit["signal"] == signal.SIGSEGV and res.exit["signal_name"] == "SIGSEGV"
    assert "Segmentation fault" in res.exit["fatal_error"]
    assert "engines_for_tests.py" in res.exit["faulthandler"]  # faulthandler's traceback
    steps = [e for e in res.events if e["kind"] == "step"]
    assert steps[-1]["cycle"] == 2 and steps[-1]["op"] == "clear"


def test_python_exception_is_classified(tmp_path: Path) -> None:
    res = run_child(_config(_scenario(tmp_path), "make_raising"), timeout=60)
    assert res.exit["kind"] == "exception"
    assert res.exit["error"]["type"] == "builtins.RuntimeError"
    assert "exploded" in res.exit["error"]["message"]
    assert "Traceback" in res.exit["error"]["traceback"]


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    res = run_child(_config(_scenario(tmp_path, "sleep_seconds = 120"), "make_sleepy"), timeout=3)
    assert res.exit["kind"] == "timeout" and res.exit["timeout"] == 3
    assert res.seconds < 60
    start = next(e for e in res.events if e["kind"] == "start")
    with pytest.raises(ProcessLookupError):
        os.kill(start["pid"], 0)


def test_engine_stdout_does_not_pollute_events(tmp_path: Path) -> None:
    res = run_child(_config(_scenario(tmp_path, repeat=1), "make_noisy"), timeout=60)
    assert res.exit["kind"] == "clean"
    assert not any(e["kind"] == "garbage" for e in res.events)
    assert all(e.get("cycle") != 99 for e in res.events)
    assert "x" * 100 in res.exit["stdout_tail"]


def test_engine_module_given_as_a_file(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parent / "engines_for_tests.py"
    cfg = ChildConfig(load_scenario(_scenario(tmp_path, repeat=1)), f"{here}:make_bruteforce")
    res = run_child(cfg, timeout=60)
    assert res.exit["kind"] == "clean"


def test_setup_error_for_unknown_factory(tmp_path: Path) -> None:
    res = run_child(_config(_scenario(tmp_path), "make_nothing"), timeout=60)
    assert res.exit["kind"] == "exception"
    err = next(e for e in res.events if e["kind"] == "error")
    assert "make_nothing" in err["error"]["message"]


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        ("free(): invalid pointer\nFatal Python error: Aborted\n", "free(): invalid pointer"),
        ("double free or corruption (!prev)\n", "double free or corruption (!prev)"),
        ("munmap_chunk(): invalid pointer\n", "munmap_chunk(): invalid pointer"),
        ("corrupted size vs. prev_size\n", "corrupted size vs. prev_size"),
        ("Fatal Python error: Segmentation fault\n", None),
    ],
)
def test_native_messages(stderr: str, message: str | None) -> None:
    assert native_message(stderr) == message


def test_classify_orders_evidence() -> None:
    err_step = {"kind": "step", "error": {"type": "E"}}
    assert classify(-6, False, [err_step], "free(): invalid pointer")["kind"] == "signal"
    assert classify(3, False, [err_step, {"kind": "end"}], "")["kind"] == "exception"
    assert classify(0, False, [{"kind": "end"}], "")["kind"] == "clean"
    assert classify(0, False, [], "")["kind"] == "exit"  # no end event: it did not finish
    assert classify(None, True, [], "")["kind"] == "timeout"
    out = classify(
        -11, False, [], "Fatal Python error: Segmentation fault\n\nThread 0x1:\n  File x"
    )
    assert out["signal_name"] == "SIGSEGV" and out["faulthandler"].startswith("Fatal Python")
