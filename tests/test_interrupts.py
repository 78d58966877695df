"""Interrupted and hostile runs: a real `memcycle run` process gets real signals.

Each test starts `memcycle run` in its own session (so a signal reaches only it), reads its
plain progress lines to know when the first run has finished and the second is inside its
sleeping step, then signals it and checks with psutil that no process of the run survives
(every one carries `MEMCYCLE_PARENT_PID=<memcycle's pid>` in its environment), the exit
status, and report.json. The only time limits are generous hang guards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from memcycle.records import Report

ENG = "tests.engines_for_tests"
REPO = Path(__file__).resolve().parent.parent
HANG_GUARD = 120.0  # seconds: only to fail instead of hanging, never a timing assertion


def _scenario(tmp_path: Path, name: str, options: str = "", repeat: int = 2) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(
        f"""
name = "{name}"
dimension = 8
[engine]
{options}
[[cycle]]
repeat = {repeat}
steps = [ {{ op = "insert", count = 40 }}, {{ op = "search", queries = 2, k = 3 }}, {{ op = "clear" }} ]
"""
    )
    return p


class Memcycle:
    """A `memcycle run` process in its own session, its stderr collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memcycle", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            text=True,
        )
        self.err: list[str] = []
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_for(self, what: Callable[[], bool], label: str) -> None:
        end = time.monotonic() + HANG_GUARD
        while not what():
            if self.proc.poll() is not None:
                pytest.fail(f"memcycle exited ({self.proc.returncode}) before {label}: {self.err}")
            if time.monotonic() > end:
                self.kill()
                pytest.fail(f"hang guard: no {label} within {HANG_GUARD:.0f} s: {self.err}")
            time.sleep(0.05)

    def wait_line(self, needle: str) -> None:
        self.wait_for(lambda: any(needle in line for line in self.err), repr(needle))

    def run_processes(self) -> list[psutil.Process]:
        """Every live process started for this memcycle (children, lifelines, grandchildren)."""
        mine = str(self.proc.pid)
        found = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("MEMCYCLE_PARENT_PID") == mine and p.status() != "zombie":
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def child_pids(self) -> list[int]:
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [k.pid for k in kids]

    def finish(self) -> int:
        try:
            rc = self.proc.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"hang guard: memcycle did not exit: {self.err}")
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.read()
        self._reader.join(timeout=10)
        return rc

    def kill(self) -> None:
        for p in self.run_processes():
            p.kill()
        self.proc.kill()


def _none_survive(mc: Memcycle, pids: list[int]) -> None:
    """No process of the run left (zombies of the test's own children aside)."""
    end = time.monotonic() + 30
    while True:
        alive = [p for p in pids if psutil.pid_exists(p) and _not_zombie(p)]
        tagged = mc.run_processes()
        if not alive and not tagged:
            return
        if time.monotonic() > end:
            for p in tagged:
                p.kill()
            pytest.fail(f"processes of the run survive: {alive} {[p.pid for p in tagged]}")
        time.sleep(0.1)


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _two_runs(tmp_path: Path) -> list[str]:
    """A quick run that finishes, then one whose every insert sleeps a minute (and says so by
    creating `tmp_path/sleeping`)."""
    quick = _scenario(tmp_path, "a-quick")
    slow = _scenario(
        tmp_path, "b-sleeps", f'sleep_seconds = 60\nmark_file = "{tmp_path / "sleeping"}"'
    )
    return [
        "run",
        str(quick),
        str(slow),
        "--engine",
        f"{ENG}:make_step_sleeper",
        "--no-memray",
        "--flamegraphs",
        "none",
        "--out",
        str(tmp_path / "out"),
    ]


def _interrupt(tmp_path: Path, sig: int, times: int = 1) -> tuple[Memcycle, int, Report]:
    mc = Memcycle(_two_runs(tmp_path))
    mc.wait_line("[1/2]")  # the quick run finished
    mc.wait_for((tmp_path / "sleeping").exists, "the second run's sleeping insert")
    pids = [p.pid for p in mc.run_processes()] + mc.child_pids()
    for _ in range(times):
        os.kill(mc.proc.pid, sig)
        time.sleep(0.05)
    rc = mc.finish()
    _none_survive(mc, pids)
    report = Report.from_dict(json.loads((tmp_path / "out" / "report.json").read_text()))
    return mc, rc, report


def _leftover_temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_sigint_kills_every_child_and_writes_the_finished_runs_marked_interrupted(
    tmp_path: Path,
) -> None:
    mc, rc, report = _interrupt(tmp_path, signal.SIGINT)
    assert rc == 130, mc.err
    assert report.interrupted is True
    assert [r.scenario for r in report.runs] == ["a-quick"]
    assert report.runs[0].verdict == "clean"
    assert report.not_done == [f"b-sleeps|{ENG}:make_step_sleeper|numpy|-"]
    assert "Interrupted" in (tmp_path / "out" / "summary.md").read_text()
    assert not _leftover_temp_files(tmp_path / "out")
    assert any("interrupted by SIGINT" in line for line in mc.err), mc.err


@pytest.mark.slow
def test_sigterm_stops_the_run_with_exit_143_and_keeps_finished_runs(tmp_path: Path) -> None:
    mc, rc, report = _interrupt(tmp_path, signal.SIGTERM)
    assert rc == 143, mc.err
    assert report.interrupted and [r.scenario for r in report.runs] == ["a-quick"]
    assert len(report.not_done) == 1


@pytest.mark.slow
def test_three_ctrl_cs_leave_no_child_running_and_still_write_the_report(tmp_path: Path) -> None:
    mc, rc, report = _interrupt(tmp_path, signal.SIGINT, times=3)
    assert rc == 130, mc.err
    assert report.interrupted and [r.scenario for r in report.runs] == ["a-quick"]


@pytest.mark.slow
def test_sigkill_of_the_parent_takes_the_child_with_it(tmp_path: Path) -> None:
    mc = Memcycle(_two_runs(tmp_path))
    mc.wait_for((tmp_path / "sleeping").exists, "the second run's sleeping insert")
    pids = [p.pid for p in mc.run_processes()]
    assert pids
    os.kill(mc.proc.pid, signal.SIGKILL)
    mc.finish()
    _none_survive(mc, pids)


@pytest.mark.slow
def test_grandchildren_of_the_engine_are_gone_after_the_run(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.txt"
    sc = _scenario(tmp_path, "spawns", f'pid_file = "{pid_file}"\nsleep_seconds = 300')
    mc = Memcycle(
        ["run", str(sc), "--engine", f"{ENG}:make_spawner", "--no-memray", "--out", str(tmp_path)]
    )
    rc = mc.finish()
    assert rc == 0, mc.err
    holder, detached = (int(x) for x in pid_file.read_text().split())
    _none_survive(mc, [holder, detached])


@pytest.mark.slow
def test_a_huge_engine_error_message_is_cut_in_report_json(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, "huge")
    out = tmp_path / "out"
    mc = Memcycle(
        ["run", str(sc), "--engine", f"{ENG}:make_huge_error", "--no-memray", "--out", str(out)]
    )
    rc = mc.finish()
    assert rc != 0, mc.err  # the scenario expects clean; the engine raised
    text = (out / "report.json").read_text()
    assert len(text) < 2_000_000, len(text)
    (run,) = Report.from_dict(json.loads(text)).runs
    assert run.verdict != "timeout"
    err = next(s.error for s in run.steps if s.error)
    assert err is not None and "more characters not kept" in err["message"]
    assert len(err["message"]) < 70 * 1024


# -- report files: atomic, all or none, no temporary left ------------------------------------
def _empty_report(run_id: str) -> Report:
    return Report(run_id=run_id, created="2026-01-01T00:00:00+00:00", runs=[])


def test_a_failing_report_renderer_leaves_the_previous_files_whole_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memcycle import reporters

    reporters.write_all(_empty_report("first"), tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}

    def boom(*args: object) -> str:
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(reporters, "render_junit", boom)
    with pytest.raises(RuntimeError):
        reporters.write_all(_empty_report("second"), tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_a_full_disk_mid_write_leaves_the_previous_files_whole_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memcycle import atomicfile, reporters

    reporters.write_all(_empty_report("first"), tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the third file of four
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomicfile.os, "fsync", fsync)
    with pytest.raises(OSError):
        reporters.write_all(_empty_report("second"), tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    assert json.loads((tmp_path / "report.json").read_text())["run_id"] == "first"


@pytest.mark.slow
def test_the_child_stops_itself_at_its_deadline_when_no_parent_enforces_one(
    tmp_path: Path,
) -> None:
    from memcycle.isolation import run_child
    from memcycle.protocol import ChildConfig
    from memcycle.scenario import load_scenario

    sc = _scenario(tmp_path, "stuck", "sleep_seconds = 600")
    config = ChildConfig(load_scenario(sc), f"{ENG}:make_step_sleeper", deadline=3.0)
    box: dict[str, object] = {}
    worker = threading.Thread(target=lambda: box.update(res=run_child(config, timeout=None)))
    worker.start()
    worker.join(HANG_GUARD)
    assert not worker.is_alive(), "the child did not stop at its own deadline"
    res = box["res"]
    assert res.exit["kind"] == "exit" and res.exit["code"] == 1  # type: ignore[attr-defined]
    assert "Timeout" in res.exit["stderr_tail"]  # type: ignore[attr-defined]  # faulthandler's
