"""What `memcycle run` shows: per-step progress fitted to the width, plain off a terminal, the
cold-cache notice, and the command surface (`--version`, help, one error prefix)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from memcycle import __version__, cli
from memcycle import warmup as warmup_module
from memcycle.commands import run as run_command
from memcycle.kernelcache import KERNEL_MODULES, KernelCache, cache_dir, kernel_cache
from memcycle.progress import PLAIN_HEARTBEAT, Progress, fancy_output, fit
from memcycle.records import RunRecord
from memcycle.runner import RunSpec, run_many

ENG = "tests.engines_for_tests"
REPO = Path(__file__).resolve().parent.parent
LONG = "a-scenario-with-a-name-much-too-long-for-a-narrow-terminal"


def _scenario(tmp_path: Path, name: str = "prog", repeat: int = 3) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(
        f"""
name = "{name}"
dimension = 8
[[cycle]]
repeat = {repeat}
steps = [ {{ op = "insert", count = 40 }}, {{ op = "clear" }} ]
"""
    )
    return p


def _record(verdict: str = "clean", expected: str = "clean") -> RunRecord:
    return RunRecord(
        scenario=LONG,
        scenario_path="x.toml",
        engine=f"{ENG}:make_bruteforce",
        allocator="checked",
        faults=[],
        expected_verdict=expected,
        verdict=verdict,
        seconds=12.3,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- fitting and plain output ----------------------------------------------------------------
def test_fit_shortens_the_label_and_keeps_counter_and_verdict() -> None:
    line = fit("[3/11]", LONG + " [refimpl/checked]", "double-free (FAIL) 9.4s", 60)
    assert len(line) <= 60
    assert line.startswith("[3/11] a-scenario") and line.endswith("double-free (FAIL) 9.4s")
    assert "..." in line
    assert fit("[1/1]", "short", "clean (ok) 1.0s", 60) == "[1/1] short clean (ok) 1.0s"
    assert fit("[1/1]", LONG, "clean", None) == f"[1/1] {LONG} clean"  # a log: no limit


def test_plain_progress_has_no_escape_codes_and_every_line_fits_60_columns() -> None:
    out = io.StringIO()
    clock = FakeClock()
    progress = Progress(2, out, fancy=False, width=60, clock=clock, ticker=False)
    progress.note("memcycle: a note " + "long " * 30)
    ops = [["insert", "search", "clear"]] * 5
    plan = {"kind": "plan", "key": _record().key, "scenario": LONG, "cycles": 5, "ops": ops}
    progress.on_event(0, {**plan, "engine": f"{ENG}:make_bruteforce", "allocator": "checked"})
    clock.now = PLAIN_HEARTBEAT + 1
    progress.on_event(0, {"kind": "step", "cycle": 3, "step": 0, "op": "insert"})  # search next
    progress.tick()
    progress(_record("double-free"))
    progress(_record())
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()
    assert all(len(line) <= 60 for line in lines), lines
    assert any("cycle 3/5 search" in line for line in lines), lines
    assert lines[-2].startswith("[1/2] ") and lines[-2].endswith("double-free (FAIL) 12.3s")
    assert lines[-1].endswith("clean (ok) 12.3s")


def test_plain_heartbeat_lines_come_at_most_every_few_seconds_per_run_even_when_silent() -> None:
    out = io.StringIO()
    clock = FakeClock()
    progress = Progress(1, out, fancy=False, width=None, clock=clock, ticker=False)
    ops = [["insert", "clear"]] * 200
    progress.on_event(0, {"kind": "plan", "key": "k", "scenario": "s", "cycles": 200, "ops": ops})
    progress.on_event(0, {"kind": "start"})
    clock.now = PLAIN_HEARTBEAT - 1
    progress.tick()
    assert out.getvalue() == ""  # a run younger than the heartbeat period: nothing yet
    clock.now = PLAIN_HEARTBEAT + 1  # a silent first step (a cold compile): still a heartbeat
    progress.tick()
    assert out.getvalue().endswith("cycle 1/200 insert, 11s\n"), out.getvalue()
    for i in range(1, 101):  # 100 steps and ticks within one heartbeat period: no line
        clock.now = PLAIN_HEARTBEAT + 1 + i * PLAIN_HEARTBEAT / 200
        progress.on_event(0, {"kind": "step", "cycle": i, "step": 1, "op": "clear"})
        progress.tick()
    assert out.getvalue().count("\n") == 1
    clock.now = 2 * PLAIN_HEARTBEAT + 1.5
    progress.on_event(0, {"kind": "step", "cycle": 101, "step": 0, "op": "insert"})
    progress.tick()
    assert out.getvalue().count("\n") == 2 and "cycle 101/200 clear, 22s" in out.getvalue()
    progress.on_event(0, {"kind": "step", "cycle": 200, "step": 1, "op": "clear"})
    clock.now = 4 * PLAIN_HEARTBEAT
    progress.tick()
    assert out.getvalue().rstrip().endswith("cycle 200/200 close, 40s")  # the teardown


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_color_or_a_dumb_terminal_means_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert fancy_output(_Tty()) is True
    assert fancy_output(io.StringIO()) is False  # not a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    assert fancy_output(_Tty()) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert fancy_output(_Tty()) is False


def test_the_rich_display_keeps_the_verdict_in_a_narrow_terminal() -> None:
    out = _Tty()
    progress = Progress(1, out, fancy=True, width=60)
    progress(_record("leak"))  # the last run: the display closes itself
    text = out.getvalue()
    assert "leak (FAIL) 12.3s" in text
    assert "\x1b[" in text  # coloured on a terminal


def test_run_many_hands_every_child_event_to_on_event(tmp_path: Path) -> None:
    seen: list[tuple[int, str, object]] = []
    spec = RunSpec(_scenario(tmp_path), f"{ENG}:make_bruteforce", memray=False)
    run_many([spec], tmp_path / "out", on_event=lambda i, ev: seen.append((i, ev["kind"], ev)))
    kinds = [k for _, k, _ in seen]
    assert kinds[0] == "plan" and seen[0][2]["cycles"] == 3  # type: ignore[index]
    assert kinds.count("step") == 7 and kinds[-1] == "end"  # 3 x 2 steps + close
    assert {i for i, _, _ in seen} == {0}


@pytest.mark.slow
def test_a_real_run_off_a_terminal_prints_plain_lines_that_fit_columns_60(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, LONG)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memcycle",
            "run",
            str(sc),
            "--engine",
            f"{ENG}:make_bruteforce",
            "--no-memray",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60", "TERM": "xterm-256color"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(len(line) <= 60 for line in lines), lines
    assert lines[-1].startswith("[1/1] ") and lines[-1].endswith("s") and "clean (ok)" in lines[-1]


# -- the cold Numba cache ---------------------------------------------------------------------
def test_an_empty_numba_cache_dir_is_cold_and_indexed_modules_make_it_warm(
    tmp_path: Path,
) -> None:
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    cold = kernel_cache(environ=env)
    assert cold.cold and cold.missing == KERNEL_MODULES
    assert cold.directory.parent == tmp_path
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    cold.directory.mkdir(parents=True)
    for mod in KERNEL_MODULES[:-1]:
        (cold.directory / f"{mod}.some_kernel-12.{tag}.nbi").write_bytes(b"")
    assert kernel_cache(environ=env).missing == KERNEL_MODULES[-1:]
    (cold.directory / f"{KERNEL_MODULES[-1]}.k-3.py27.nbi").write_bytes(b"")  # another Python
    assert kernel_cache(environ=env).cold
    (cold.directory / f"{KERNEL_MODULES[-1]}.k-3.{tag}.nbi").write_bytes(b"")
    assert not kernel_cache(environ=env).cold


def test_the_cache_directory_is_where_numba_itself_puts_the_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memcycle.refimpl.kernels import flat
    from numba.core import caching, config

    fn = flat.scan_rows.py_func
    src = flat.__file__
    assert cache_dir() == Path(caching.InTreeCacheLocator(fn, src).get_cache_path())
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    theirs = caching.UserProvidedCacheLocator(fn, src).get_cache_path()
    assert cache_dir(environ={"NUMBA_CACHE_DIR": str(tmp_path)}) == Path(theirs)


def _run_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(
        [
            "run",
            str(_scenario(tmp_path)),
            "--engine",
            f"{ENG}:make_bruteforce",
            "--no-memray",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    return code, capsys.readouterr().err


def test_a_cold_cache_is_compiled_by_unrecorded_warm_up_runs_before_the_first_recorded_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the compile made it ~3x slower: on a cold cache the run says so, warms the
    kernels for the scenario's own metric and allocator with memray and tracemalloc off, and
    only then starts the recorded run."""
    # the test engine stands in for refimpl, so nothing compiles for real
    monkeypatch.setattr(run_command, "NUMBA_ENGINES", (f"{ENG}:make_bruteforce",))
    monkeypatch.setattr(run_command, "kernel_cache", lambda: KernelCache(tmp_path, ("hnsw",)))
    asked: list[tuple[list[str], list[str]]] = []
    real_specs = warmup_module.warmup_specs

    def fake_warmup_specs(folder: Path, allocators: list[str], **kw: object) -> list[RunSpec]:
        asked.append((list(allocators), list(kw["metrics"])))  # type: ignore[call-overload]
        specs = real_specs(folder, allocators, **kw)  # type: ignore[arg-type]
        assert all(not spec.memray and not spec.tracemalloc for spec in specs)
        return [dataclasses.replace(spec, engine=f"{ENG}:make_bruteforce") for spec in specs]

    monkeypatch.setattr(warmup_module, "warmup_specs", fake_warmup_specs)
    code, err = _run_main(tmp_path, capsys)
    assert code == 0, err
    assert asked == [(["numpy"], ["l2"])]
    flat = " ".join(err.split())  # the notices may be wrapped to the terminal's width
    notice = flat.index("memcycle: compiling refimpl's Numba kernels first, in unrecorded warm-up")
    warmed = flat.index("memcycle: warm-up (1 unrecorded run(s): l2 x numpy) took")
    recorded = flat.index("memcycle: 1 run(s), 1 at a time")
    assert notice < warmed < recorded
    assert "`memcycle warmup` does this ahead" in flat
    assert "kernel cache is still incomplete" in flat[recorded:]  # the fake stays cold


def test_run_says_nothing_about_compiling_when_the_cache_is_warm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_command, "NUMBA_ENGINES", (f"{ENG}:make_bruteforce",))
    monkeypatch.setattr(run_command, "kernel_cache", lambda: KernelCache(tmp_path, ()))
    code, err = _run_main(tmp_path, capsys)
    assert code == 0 and "compil" not in err, err


@pytest.mark.slow
def test_warmup_runs_every_allocator_and_leaves_the_cache_warm() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "memcycle", "warmup", "--allocator", "numpy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warmup: 3 run(s)" in proc.stdout and "is warm" in proc.stdout
    assert proc.stderr.count("clean (ok)") == 3


# -- the command surface ----------------------------------------------------------------------
def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memcycle {__version__}"


@pytest.mark.parametrize("command", ["run", "list", "report", "gate", "faults", "warmup"])
def test_every_command_has_a_description_examples_and_exit_statuses(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: memcycle {command}")
    assert rest.strip() and not rest.startswith(("options:", "positional")), text  # a description
    examples = text.partition("examples:\n")[2]
    assert examples.startswith(f"  memcycle {command}"), text
    assert "exit status:\n  0 " in text and "\n  2 " in text


@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "no-such-run-dir", "--baseline", "no-such-baseline.json"],
        ["faults", "--jobs", "0"],
        ["faults", "--allocator", "jemalloc"],
        ["gate", "x", "--tolerance-time", "fast"],
        ["warmup", "--timeout", "0"],
        ["nosuchcommand"],
    ],
)
def test_errors_of_every_command_are_one_memcycle_error_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memcycle: error: ") and "\n" not in err, err


def test_report_json_of_a_run_is_the_reporters_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run_main(tmp_path, capsys)
    assert code == 0
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["interrupted"] is False and data["not_done"] == []
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]
