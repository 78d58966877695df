"""Native stacks for crashes (issue 13, item 1): gdb replays the crashed child."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from memcycle import native_stack as ns
from memcycle.checks import judge
from memcycle.evidence import evidence_items
from memcycle.records import RunRecord
from memcycle.runner import run_one
from memcycle.scenario import load_scenario

from tests.engines_for_tests import build_native_subject, write_native_scenario

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="gdb and gcc on Linux")


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_native_subject(tmp_path_factory.mktemp("native"))


def _segfault_run(tmp_path: Path, subject: Path) -> RunRecord:
    sc = write_native_scenario(tmp_path / "seg.toml", "segfault", subject, expect="crash")
    return run_one(sc, memray=False, out_dir=tmp_path / "out", flamegraphs="none")


def test_a_c_function_that_segfaults_is_named_in_the_crash_native_stack(
    tmp_path: Path, subject: Path
) -> None:
    rec = _segfault_run(tmp_path, subject)
    assert rec.verdict == "crash"
    crash = rec.findings[0]
    assert (crash.cycle, crash.op) == (1, "search")
    frames = crash.evidence["native_stack"]
    top = frames[0]
    assert top["function"] == "subject_read_null_row"
    assert top["engine"] and top["origin"] == "engine"
    assert top["file"].endswith("subject.c") and isinstance(top["line"], int)
    assert frames[1]["function"] == "subject_search"
    # the interpreter's frames are there too, and are not the engine's
    assert any(f["origin"] == "python" and not f["engine"] for f in frames)
    assert crash.evidence["native_stack_method"] == "gdb-replay"
    assert "in subject_read_null_row" in crash.summary
    # the Python stack from faulthandler stays next to it
    assert "engines_for_tests.py" in crash.evidence["faulthandler"]


def test_without_gdb_the_crash_says_why_native_stack_is_absent_and_the_run_is_still_reported(
    tmp_path: Path, subject: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMCYCLE_GDB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gdb here; the child is sys.executable
    rec = _segfault_run(tmp_path, subject)
    assert rec.verdict == "crash"
    ev = rec.findings[0].evidence
    assert "native_stack" not in ev
    assert "gdb not found on PATH" in ev["native_stack_absent"]
    assert ev["signal_name"] == "SIGSEGV"


def test_memcycle_gdb_none_switches_native_stacks_off_with_that_reason(
    tmp_path: Path, subject: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCYCLE_GDB", "none")
    rec = _segfault_run(tmp_path, subject)
    assert "switched off" in rec.findings[0].evidence["native_stack_absent"]


def test_a_replay_that_does_not_crash_again_is_reported_as_absent() -> None:
    stacks = ns.replay_crash([sys.executable, "-c", "pass"], env=None, roots=[], timeout=60)
    assert stacks.threads == []
    assert "did not crash again" in str(stacks.absent)
    assert "code 0" in str(stacks.absent)


def test_replay_with_an_injected_missing_gdb_does_not_run_anything() -> None:
    stacks = ns.replay_crash(["/nonexistent"], env=None, roots=[], timeout=1, lookup=lambda: None)
    assert stacks.absent and "gdb" in stacks.absent


def test_frame_origin_tells_engine_python_and_system_apart(tmp_path: Path) -> None:
    lib = tmp_path / "libengine.so"
    lib.write_bytes(b"")
    assert ns.frame_origin(str(lib), [str(lib)]) == "engine"
    assert ns.frame_origin(str(lib), []) == "engine"  # a native library of nobody we know
    assert ns.frame_origin("/lib/x86_64-linux-gnu/libc.so.6", [str(lib)]) == "system"
    assert ns.frame_origin(sys.executable, []) == "python"
    numpy_so = Path(np_file()).parent / "_core" / "_multiarray_umath.so"
    assert ns.frame_origin(str(numpy_so), []) == "python"
    assert ns.frame_origin(None, []) == "jit"
    assert ns.frame_origin("[stack]", []) == "jit"


def np_file() -> str:
    import numpy

    return str(numpy.__file__)


def test_an_exit_without_a_signal_says_there_is_no_native_stack(tmp_path: Path) -> None:
    sc = load_scenario(
        write_native_scenario(tmp_path / "s.toml", "clean", tmp_path / "lib.so", expect="clean")
    )
    rec = RunRecord(sc.name, sc.path, "x", "native", [], "clean")
    rec.exit = {"kind": "exit", "code": 7, "stderr_tail": ""}
    judge(rec, sc.plan, started=True)  # the engine was built, then the child exited
    assert rec.verdict == "crash"
    assert "code 7 without a fatal signal" in rec.findings[0].evidence["native_stack_absent"]


def test_the_reports_print_native_frames_with_engine_frames_marked(
    tmp_path: Path, subject: Path
) -> None:
    rec = _segfault_run(tmp_path, subject)
    items = {i.title: i.text for i in evidence_items(rec.findings[0].evidence)}
    lines = items["native_stack"].splitlines()
    assert lines[0].startswith("=> #0 subject_read_null_row at ")
    assert "[engine: libsubject.so]" in lines[0]
    assert any(line.startswith("   #") and "[python:" in line for line in lines)


def test_with_native_traces_memray_leak_evidence_names_the_c_function_that_allocated(
    tmp_path: Path, subject: Path
) -> None:
    sc = tmp_path / "leak.toml"
    sc.write_text(
        'name = "native-leak-growth"\ndimension = 4\n'
        'engines = ["tests.engines_for_tests:make_native_subject"]\n'
        f'[engine]\nlibrary = "{subject}"\nnative_fault = "leak"\n'
        '[[cycle]]\nrepeat = 8\nsteps = [{ op = "insert", count = 4000 }, { op = "clear" }]\n',
        encoding="utf-8",
    )
    rec = run_one(sc, native=True, flamegraphs="none")
    assert rec.verdict == "leak"
    ev = rec.findings[0].evidence
    assert ev["memray_native_traces"] is True and "memray_native_note" not in ev
    assert ev["top_growth"][0]["stack"][0].startswith("subject_alloc_rows (")
    assert any(frame.startswith("subject_add (") for frame in ev["top_growth"][0]["stack"])


def test_without_native_traces_the_leak_evidence_says_they_are_off() -> None:
    from memcycle.checks import _memray_native_note

    assert _memray_native_note({"native_traces": True}) == {"memray_native_traces": True}
    off = _memray_native_note({"native_traces": False})
    assert off["memray_native_traces"] is False and "--native" in off["memray_native_note"]
    assert _memray_native_note(None) == {}  # no memray at all: nothing to say about it
