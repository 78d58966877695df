"""--sanitizer asan/ubsan and --valgrind (issue 13, item 4): setup, report parsing, verdicts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from memcycle import sanitizers as san
from memcycle.cli import main as cli_main
from memcycle.runner import run_one

from tests.engines_for_tests import build_native_subject, write_native_scenario

DATA = Path(__file__).parent / "data" / "sanitizers"
SUBJECT_ROOT = "/tmp/nst/libs-asan.so"  # the library the sample ASan reports were taken from
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="gcc sanitizers on Linux")


def _one(name: str) -> dict:
    (rep,) = san.parse_asan((DATA / name).read_text(), [SUBJECT_ROOT])
    return rep


def _fns(stack: list[str]) -> list[str]:
    return [s.rsplit(" in ", 1)[-1] for s in stack]


# -- ASan report texts -----------------------------------------------------------------------
def test_asan_heap_use_after_free_gives_use_after_free_with_access_free_and_alloc_stacks() -> None:
    rep = _one("asan-use-after-free.txt")
    assert (rep["kind"], rep["verdict"]) == ("heap-use-after-free", "use-after-free")
    assert _fns(rep["fault_stack"])[-1] == "subject_search"  # innermost last, as refimpl's
    assert _fns(rep["free_stack"])[-2:] == ["subject_clear", "subject_release_rows"]
    assert _fns(rep["alloc_stack"])[-2:] == ["subject_add", "subject_alloc_rows"]
    assert rep["fault_stack"][-1].startswith(("/", "tests")) and ".c:" in rep["fault_stack"][-1]
    assert rep["access"].startswith("READ of size 4")
    assert "200-byte region" in rep["region"]
    assert rep["engine"]
    # the sanitizer's interceptor frames are dropped from the top of the stacks
    assert not any("__interceptor" in s for s in rep["free_stack"] + rep["alloc_stack"])


def test_asan_attempting_double_free_gives_double_free_naming_both_frees() -> None:
    rep = _one("asan-double-free.txt")
    assert rep["verdict"] == "double-free"
    assert _fns(rep["fault_stack"])[-2:] == ["subject_add", "subject_release_rows"]
    assert _fns(rep["free_stack"])[-2:] == ["subject_clear", "subject_release_rows"]
    assert _fns(rep["alloc_stack"])[-1] == "subject_alloc_rows"


def test_asan_free_of_a_pointer_not_malloced_gives_invalid_free() -> None:
    rep = _one("asan-bad-free.txt")
    assert (rep["kind"], rep["verdict"]) == ("bad-free", "invalid-free")
    assert _fns(rep["fault_stack"])[-2:] == ["subject_clear", "subject_release_rows"]
    assert rep["free_stack"] == []
    assert _fns(rep["alloc_stack"])[-1] == "subject_alloc_rows"


def test_asan_heap_buffer_overflow_gives_buffer_overflow_with_the_writing_function() -> None:
    rep = _one("asan-heap-buffer-overflow.txt")
    assert rep["verdict"] == "buffer-overflow"
    assert rep["access"].startswith("WRITE of size 4")
    assert _fns(rep["fault_stack"])[-1] == "subject_fill_rows"
    assert _fns(rep["alloc_stack"])[-1] == "subject_alloc_rows"


def test_lsan_leaks_are_leak_reports_and_only_the_engine_one_counts(tmp_path: Path) -> None:
    reps = san.parse_asan((DATA / "lsan-leaks.txt").read_text(), [SUBJECT_ROOT])
    assert reps and all(r["verdict"] == "leak" for r in reps)
    engine = [r for r in reps if r["engine"]]
    assert len(engine) == 1 and engine[0]["bytes"] == 400 and engine[0]["objects"] == 2
    # memray's malloc hook sits between ASan and the engine: dropped from the top too
    assert _fns(engine[0]["alloc_stack"])[-1] == "subject_add"
    # collect() keeps only the engine's leak, and counts the interpreter's as ignored
    mode = san.Mode("asan", tmp_path)
    shutil.copy(DATA / "lsan-leaks.txt", tmp_path / "asan.123")
    got = san.collect(mode, [SUBJECT_ROOT])
    assert [r["bytes"] for r in got["reports"]] == [400]
    assert got["ignored"] == len(reps) - 1


def test_an_asan_frame_line_without_symbols_is_parsed_as_module_and_offset() -> None:
    f = san._parse_frame("    #4 0x7f125c4a9264 in <null> <null> {/usr/lib/libfoo.so+0x1234}")
    assert f == {
        "pc": "0x7f125c4a9264",
        "function": None,
        "file": None,
        "line": None,
        "object": "/usr/lib/libfoo.so",
    }
    f = san._parse_frame("    #1 0x55971463e18e in f /tmp/nst/a.c:2")  # ASan's default format
    assert (f["function"], f["file"], f["line"]) == ("f", "/tmp/nst/a.c", 2)
    f = san._parse_frame("    #5 0x55971463e0a0 in _start (/tmp/nst/a+0x10a0)")
    assert (f["function"], f["object"]) == ("_start", "/tmp/nst/a")


def test_a_ubsan_runtime_error_is_parsed_with_its_location_and_stack() -> None:
    text = (DATA / "ubsan-index-out-of-bounds.txt").read_text()  # from the .c beside it
    (rep,) = san.parse_asan(text, ["/tmp/nst/ub"])
    assert (rep["tool"], rep["verdict"]) == ("ubsan", "buffer-overflow")
    assert "index 8 out of bounds" in rep["message"]
    assert _fns(rep["fault_stack"])[-2:] == ["main", "engine_put"]
    assert rep["engine"]


# -- valgrind XML ----------------------------------------------------------------------------
VG_ROOT = "/tmp/nst/uaf"  # the program valgrind-memcheck.xml was recorded from (its .c is beside)


def test_valgrind_xml_errors_map_to_precise_verdicts_with_their_stacks() -> None:
    reps = san.parse_valgrind_xml((DATA / "valgrind-memcheck.xml").read_text(), [VG_ROOT])
    verdicts = [r["verdict"] for r in reps]
    assert verdicts[:4] == ["use-after-free", "double-free", "invalid-free", "buffer-overflow"]
    assert verdicts[4:] == ["leak"] * (len(reps) - 4)
    uaf = reps[0]
    assert uaf["kind"] == "InvalidRead" and "free'd" in uaf["message"]
    assert uaf["fault_stack"][-1].endswith("uaf.c:3 in main")
    assert uaf["free_stack"] and uaf["alloc_stack"]  # valgrind's free/malloc frames dropped
    assert not any("vgpreload" in s for s in uaf["free_stack"] + uaf["alloc_stack"])
    assert all(isinstance(r["offset"], int) for r in reps)


def test_a_valgrind_xml_cut_short_by_a_kill_still_parses_its_complete_errors() -> None:
    text = (DATA / "valgrind-memcheck.xml").read_text()
    cut = text[: text.index("<kind>InvalidFree</kind>")]
    reps = san.parse_valgrind_xml(cut, [VG_ROOT])
    assert [r["verdict"] for r in reps] == ["use-after-free"]


TWIN_ROOT = "/work/wt/valgrind/refimpl/native"  # the C twin valgrind-died-* was recorded from


def test_a_valgrind_that_died_of_an_overflow_still_gives_memchecks_report_and_says_it_died(
    tmp_path: Path,
) -> None:
    # migration-overflow: the copy ran past memcheck's redzone, valgrind died of SIGSEGV and
    # its XML closes early, followed by a stack of its own panic
    mode = san.Mode("valgrind", tmp_path)
    for ext in ("xml", "log"):
        text = (DATA / f"valgrind-died-after-overflow.{ext}").read_text()
        (tmp_path / f"valgrind.27399.{ext}").write_text(text)
    found = san.collect(mode, [TWIN_ROOT])
    assert found["tool_died"] == (
        "VALGRIND INTERNAL ERROR: Valgrind received a signal 11 (SIGSEGV) - exiting"
    )
    (rep,) = found["reports"]
    assert rep["verdict"] == "buffer-overflow" and "0 bytes after a block" in rep["message"]
    assert _fns(rep["fault_stack"])[-1] == "to_flat"
    assert "tier_alloc" in _fns(rep["alloc_stack"])
    assert rep["n_later_errors"] == 3


def test_a_valgrind_run_that_ended_normally_does_not_say_valgrind_died(tmp_path: Path) -> None:
    (tmp_path / "valgrind.1.xml").write_text((DATA / "valgrind-memcheck.xml").read_text())
    (tmp_path / "valgrind.1.log").write_text("==1== Memcheck, a memory error detector\n")
    assert san.collect(san.Mode("valgrind", tmp_path), [VG_ROOT])["tool_died"] is None


# -- how the child is started ----------------------------------------------------------------
def test_asan_mode_preloads_the_runtime_and_sets_options_for_hosting_python(tmp_path: Path) -> None:
    mode = san.Mode("asan", tmp_path / "asan")
    cmd, env = san.prepare(mode, ["python", "-m", "x"], {"ASAN_OPTIONS": "verbosity=1"})
    assert cmd == ["python", "-m", "x"]
    assert "libasan.so" in env["LD_PRELOAD"]
    opts = env["ASAN_OPTIONS"]
    for want in ("halt_on_error=1", "abort_on_error=1", "symbolize=1", "leak_check_at_exit=0"):
        assert want in opts
    assert f"log_path={tmp_path / 'asan' / 'asan'}" in opts
    assert opts.endswith(":verbosity=1")  # the user's own options come last and win
    assert env["MEMCYCLE_SANITIZER"] == "asan" and env["MEMCYCLE_LSAN_CHECK"] == "1"


def test_valgrind_mode_wraps_the_command_with_xml_output_suppressions_and_malloc(
    tmp_path: Path,
) -> None:
    mode = san.Mode("valgrind", tmp_path / "vg")
    cmd, env = san.prepare(mode, ["python", "-m", "x"], {})
    assert cmd[-3:] == ["python", "-m", "x"] and "--xml=yes" in cmd
    assert any(a.startswith("--xml-file=") for a in cmd)
    supp = next(a.split("=", 1)[1] for a in cmd if a.startswith("--suppressions="))
    assert Path(supp).is_file() and "Memcheck:" in Path(supp).read_text()
    assert env["PYTHONMALLOC"] == "malloc" and env["MEMCYCLE_VALGRIND"] == "1"


def test_sanitizer_and_valgrind_together_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = write_native_scenario(tmp_path / "s.toml", "clean", tmp_path / "x.so")
    assert cli_main(["run", str(sc), "--sanitizer", "asan", "--valgrind"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


# -- end to end: the C subject built with -fsanitize=address ---------------------------------
@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("native")
    return build_native_subject(out), build_native_subject(out, "asan")


ASAN_CASES = [
    ("use-after-free", "use-after-free", "subject_search", "subject_clear"),
    ("double-free", "double-free", "subject_release_rows", "subject_clear"),
    ("invalid-free", "invalid-free", "subject_release_rows", None),
    ("overflow", "buffer-overflow", "subject_fill_rows", None),
]


@pytest.mark.parametrize(("fault", "verdict", "fault_fn", "free_fn"), ASAN_CASES)
def test_under_asan_each_native_bug_gets_its_precise_verdict_and_the_stacks_name_c_functions(
    tmp_path: Path, builds: tuple[Path, Path], fault: str, verdict: str, fault_fn: str, free_fn: str
) -> None:
    plain, asan = builds
    sc = write_native_scenario(
        tmp_path / "s.toml", fault, plain, library_asan=asan, expect=verdict, repeat=2
    )
    rec = run_one(sc, memray=False, sanitizer="asan", out_dir=tmp_path / "o", flamegraphs="none")
    assert rec.verdict == verdict, [f.summary for f in rec.findings]
    f = rec.findings[0]
    assert f.evidence["source"] == "asan"
    v = f.evidence["violation"]
    assert fault_fn in _fns(v["fault_stack"])
    assert "subject_alloc_rows" in _fns(v["alloc_stack"])
    if free_fn:
        assert free_fn in _fns(v["free_stack"])
    assert f.evidence["native_stack"][0]["engine"]
    # ASan aborted the child: the signal stays in the evidence, the verdict is the report's
    assert f.evidence["signal_name"] == "SIGABRT" and f.evidence["signal_class"] == "crash"
    assert f"in {fault_fn}" in f.summary or fault_fn in " ".join(v["fault_stack"])


def test_the_clean_subject_under_asan_has_no_finding(
    tmp_path: Path, builds: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the user's ASAN_OPTIONS come last and win: detect_leaks=0 skips the (slow) LSan pass
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0")
    plain, asan = builds
    sc = write_native_scenario(tmp_path / "s.toml", "clean", plain, library_asan=asan)
    rec = run_one(sc, memray=False, sanitizer="asan", flamegraphs="none")
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    assert rec.exit["sanitizer"]["tool"] == "asan" and rec.exit["sanitizer"]["reports"] == []


@pytest.mark.slow
def test_the_clean_subject_under_asan_with_leaksanitizer_has_no_finding(
    tmp_path: Path, builds: tuple[Path, Path]
) -> None:
    plain, asan = builds
    sc = write_native_scenario(tmp_path / "s.toml", "clean", plain, library_asan=asan)
    rec = run_one(sc, memray=False, sanitizer="asan", flamegraphs="none")
    assert rec.verdict == "clean", [f.summary for f in rec.findings]
    # LSan did run: the interpreter's own unreachable blocks were seen and not judged
    assert rec.exit["sanitizer"]["ignored"] > 0


@pytest.mark.slow
def test_under_asan_a_native_leak_is_found_by_leaksanitizer_after_the_last_close(
    tmp_path: Path, builds: tuple[Path, Path]
) -> None:
    plain, asan = builds
    sc = write_native_scenario(tmp_path / "s.toml", "leak", plain, library_asan=asan, expect="leak")
    rec = run_one(sc, memray=False, sanitizer="asan", flamegraphs="none")
    assert rec.verdict == "leak"
    (f,) = rec.findings
    assert f.evidence["source"] == "lsan" and f.op == "close"
    assert "subject_alloc_rows" in _fns(f.evidence["violation"]["alloc_stack"])


VALGRIND_CASES = [
    ("use-after-free", "use-after-free", "subject_search"),
    ("invalid-free", "invalid-free", "subject_release_rows"),
]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.parametrize(("fault", "verdict", "fault_fn"), VALGRIND_CASES)
def test_under_valgrind_a_native_bug_gets_its_precise_verdict_in_the_step_it_happened(
    tmp_path: Path, builds: tuple[Path, Path], fault: str, verdict: str, fault_fn: str
) -> None:
    plain, _asan = builds
    sc = write_native_scenario(tmp_path / "s.toml", fault, plain, expect=verdict)
    rec = run_one(sc, memray=False, valgrind=True, out_dir=tmp_path / "o", flamegraphs="none")
    assert rec.verdict == verdict, [f.summary for f in rec.findings]
    f = next(f for f in rec.findings if f.verdict == verdict)
    assert f.evidence["source"] == "valgrind"
    assert fault_fn in _fns(f.evidence["violation"]["fault_stack"])
    assert "subject_alloc_rows" in _fns(f.evidence["violation"]["alloc_stack"])
    # the first bad access is judged in the step that made it: cycle 1, after the clear
    assert (f.cycle, f.op) == ((1, "search") if fault == "use-after-free" else (1, "clear"))


def test_under_asan_a_segfault_is_one_crash_finding_from_the_report_naming_the_c_function(
    tmp_path: Path, builds: tuple[Path, Path]
) -> None:
    plain, asan = builds
    sc = write_native_scenario(
        tmp_path / "s.toml", "segfault", plain, library_asan=asan, expect="crash"
    )
    rec = run_one(sc, memray=False, sanitizer="asan", flamegraphs="none")
    assert rec.verdict == "crash"
    (f,) = rec.findings  # ASan exits with code 1 after its SEGV report: not a second finding
    assert f.evidence["violation"]["kind"] == "SEGV"
    assert f.evidence["native_stack"][0]["function"] == "subject_read_null_row"


def test_rss_growth_under_a_sanitizer_is_not_judged_a_leak(tmp_path: Path) -> None:
    from memcycle.checks import judge
    from memcycle.records import RunRecord, StepEvent
    from memcycle.scenario import parse_scenario

    sc = parse_scenario(
        'dimension = 4\n[[cycle]]\nrepeat = 8\nsteps = [{ op = "insert", count = 5 }, '
        '{ op = "clear" }]\n'
    )
    steps = []
    for c in range(1, 9):  # RSS 20 MiB higher after every clear, as ASan's quarantine makes it
        steps.append(StepEvent(c, 0, "insert", True, 0.0, memory={"rss": (100 + 20 * c) << 20}))
        steps.append(StepEvent(c, 1, "clear", True, 0.0, memory={"rss": (100 + 20 * c) << 20}))

    def verdict(exit: dict) -> str:
        rec = RunRecord("s", "s.toml", "x", "native", [], "clean", steps=list(steps), exit=exit)
        return judge(rec, sc.plan).verdict

    assert verdict({"kind": "clean"}) == "leak"  # without a tool, that is a leak
    assert verdict({"kind": "clean", "sanitizer": {"tool": "asan", "reports": []}}) == "clean"
    assert verdict({"kind": "clean", "sanitizer": {"tool": "valgrind", "reports": []}}) == "clean"


def test_asan_segv_inside_its_own_free_is_an_invalid_free_of_a_wild_pointer() -> None:
    # free((void*)0xa), the reference note's uninitialised slot (the .c beside the sample)
    (rep,) = san.parse_asan((DATA / "asan-free-of-0xa.txt").read_text(), ["/tmp/nst/a"])
    assert (rep["kind"], rep["verdict"]) == ("SEGV in free", "invalid-free")
    assert _fns(rep["fault_stack"])[-2:] == ["main", "g"]


LSAN_FATAL = (
    "Tracer caught signal 11: addr=0x3000006a0 pc=0x7fce7c2e80f0 sp=0x7fce5edb7d10\n"
    "==26846==LeakSanitizer has encountered a fatal error.\n"
    "==26846==HINT: LeakSanitizer does not work under ptrace (strace, gdb, etc)\n"
)


def test_a_leaksanitizer_failure_after_the_last_step_is_an_error_not_an_engine_crash(
    tmp_path: Path,
) -> None:
    from memcycle.checks import judge
    from memcycle.records import RunRecord, StepEvent
    from memcycle.scenario import parse_scenario

    (tmp_path / "asan.26846").write_text(LSAN_FATAL)  # as seen with refimpl under gcc 12
    found = san.collect(san.Mode("asan", tmp_path), [])
    assert found["leak_check_failed"].startswith("LeakSanitizer has encountered a fatal error")
    sc = parse_scenario('dimension = 4\n[[cycle]]\nsteps = [{ op = "clear" }]\n')
    rec = RunRecord("s", "s.toml", "x", "native", [], "clean")
    rec.steps = [StepEvent(1, 0, "clear", True, 0.0)]
    rec.exit = {"kind": "signal", "signal": 6, "signal_name": "SIGABRT", "sanitizer": found}
    judge(rec, sc.plan)
    assert [f.verdict for f in rec.findings] == ["error"]
    assert rec.verdict == "error" and "leaks were not checked" in rec.findings[0].summary


# numpy's BLAS threads asleep, glibc's unwinder loaded (backtrace() dlopens libgcc_s), then
# os._exit as the child leaves: under glibc's freeres at exit this hung for good
_EXIT_AFTER_BLAS_THREADS = """
import ctypes, os, time
import numpy as np
a = np.ones((300, 300)); (a @ a).sum()
ctypes.CDLL(None).backtrace((ctypes.c_void_p * 8)(), 8)
time.sleep(2)
os._exit(0)
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_a_child_under_valgrind_leaves_after_numpys_blas_threads_went_to_sleep(
    tmp_path: Path,
) -> None:
    import os
    import subprocess

    script = tmp_path / "leave.py"
    script.write_text(_EXIT_AFTER_BLAS_THREADS)
    cmd, env = san.prepare(
        san.Mode("valgrind", tmp_path / "vg"), [sys.executable, str(script)], dict(os.environ)
    )
    # a generous bound only so that a regression fails instead of hanging the suite
    proc = subprocess.run(cmd, env=env, timeout=900, capture_output=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
