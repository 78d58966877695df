"""The fast mutation runner (mutation/forkserver.py, client.py, covermap.py): it must run the
mutant as it is on disk, report the tests' exit code, kill what a timeout abandons, and only ever
leave out tests that cannot see the mutated line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MUTATION = Path(__file__).resolve().parent.parent / "mutation"
sys.path.insert(0, str(MUTATION))

import covermap  # noqa: E402
import forkserver  # noqa: E402

PROBE = "VALUE = 1\n\n\ndef double(x):\n    return 2 * x\n"
TESTS = """\
import os, subprocess, sys, time
import probe


def test_value():
    assert probe.VALUE == 1


def test_double():
    assert probe.double(3) == 6


def test_hangs_when_asked():
    if os.environ.get("PROBE_HANG"):
        sleeper = subprocess.Popen(["sleep", "60"])
        with open(os.environ["PROBE_HANG"], "w") as fh:
            fh.write(f"{os.getpid()} {sleeper.pid}")
        time.sleep(60)


def test_child_imports_probe():
    subprocess.run([sys.executable, "-c", "import probe"], check=True)


def test_child_killed_after_calling_double():
    code = "import os, probe; probe.double(1); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code])
"""


# the probe's pytest needs no plugin but xdist (the runner passes `-n 0`): without the others
# (hypothesis, memcycle's own, benchmark) each forked run takes a fraction of a second
LEAN_PYTEST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_PLUGINS": "xdist.plugin"}


def wait_until(predicate, seconds: float = 30.0) -> bool:
    """Poll for an event (not a timing assertion: the deadline only bounds a broken run)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def alive(pid: int) -> bool:
    """Is `pid` running (not gone, not a zombie)? A process can vanish between the signal
    probe and the read of its /proc entry (seen in a fresh-clone CI run): that is dead too."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead
            return fh.read().split(") ")[-1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "test_probe.py").write_text(TESTS)
    return tmp_path


def start_server(project: Path, *extra: str, preload: str = "pytest") -> subprocess.Popen:
    sock = project / "s.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            str(MUTATION / "forkserver.py"),
            str(sock),
            "--root",
            str(project),
            "--files",
            "probe.py",
            "--preload",
            preload,
            *extra,
            "--",
            "test_probe.py",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server.ready = server.stdout.readline()  # type: ignore[attr-defined]
    return server


@pytest.fixture
def server(project: Path) -> Iterator[subprocess.Popen]:
    proc = start_server(project)
    assert proc.ready.startswith("ready"), proc.stderr.read()  # type: ignore[attr-defined]
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


def ask(project: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", "-I", str(MUTATION / "client.py"), str(project / "s.sock")],
        cwd=project,
        env={**os.environ, **LEAN_PYTEST, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_client_exits_with_the_childs_pytest_exit_code(project: Path, server) -> None:
    passed = ask(project)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "5 passed" in passed.stdout
    (project / "probe.py").write_text(PROBE.replace("2 * x", "3 * x"))
    failed = ask(project)
    assert failed.returncode == 1
    assert "test_double" in failed.stdout


def test_a_same_size_mutant_with_the_originals_mtime_is_still_what_the_child_imports(
    project: Path,
) -> None:
    probe = project / "probe.py"
    compile_it = "import py_compile; py_compile.compile('probe.py', doraise=True)"
    subprocess.run([sys.executable, "-c", compile_it], cwd=project, check=True)
    assert list((project / "__pycache__").glob("probe.*.pyc")), "the stale bytecode to beat"
    stamp = probe.stat()
    proc = start_server(project)
    try:
        assert proc.ready.startswith("ready")
        probe.write_text(PROBE.replace("VALUE = 1", "VALUE = 2"))  # same size
        os.utime(probe, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # and the same mtime
        assert probe.stat().st_size == stamp.st_size
        assert ask(project).returncode == 1
        probe.write_text(PROBE)
        assert ask(project).returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_client_killed_at_its_timeout_takes_the_child_and_its_processes_with_it(
    project: Path, server
) -> None:
    pids = project / "pids"
    client = subprocess.Popen(
        [sys.executable, "-S", "-I", str(MUTATION / "client.py"), str(project / "s.sock")],
        cwd=project,
        env={**os.environ, **LEAN_PYTEST, "PROBE_HANG": str(pids)},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert wait_until(lambda: pids.exists() and pids.read_text().count(" ") == 1)
    test_pid, sleeper_pid = map(int, pids.read_text().split())
    os.killpg(client.pid, signal.SIGKILL)  # what cosmic-ray does at its timeout
    client.wait()
    assert wait_until(lambda: not alive(test_pid)), "the forked pytest outlived its client"
    assert wait_until(lambda: not alive(sleeper_pid)), "the test's own process outlived it"


def test_the_servers_own_timeout_kills_a_hung_child_and_fails_the_mutant(project: Path) -> None:
    proc = start_server(project, "--timeout", "2")
    try:
        hung = ask(project, PROBE_HANG=str(project / "pids"))
        assert hung.returncode == 124
        test_pid, _ = map(int, (project / "pids").read_text().split())
        assert wait_until(lambda: not alive(test_pid))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_server_refuses_to_start_once_a_project_module_is_imported(project: Path) -> None:
    proc = start_server(project, preload="probe")
    _, err = proc.communicate(timeout=30)
    assert not proc.ready.startswith("ready")  # type: ignore[attr-defined]
    assert proc.returncode == 1
    assert "imported project modules: probe" in err


def test_changed_lines_are_numbered_as_in_the_original_even_when_a_line_is_removed() -> None:
    original = "@decorator\ndef f():\n    return a < b\n"
    assert forkserver.changed_lines(original, original.replace("<", ">")) == [3]
    assert forkserver.changed_lines(original, original.replace("@decorator\n", "")) == [1]


def test_a_mutated_continuation_line_is_looked_up_at_its_statements_first_line() -> None:
    source = "x = (\n    1\n    + 2\n)\ny = 3\n"
    lines = forkserver.first_lines(source)
    assert lines[3] == 1
    assert lines[5] == 5


CMAP = {
    "tests": ["t::a", "t::b", "t::c", "t::spawns"],
    "spawned_outside": False,
    "spawners": {"t::spawns": {"lines": {"m.py": [6]}, "unsaved_imports": []}},
    "lines": {
        "m.py": {
            "1": ["<shared>"],
            "5": ["t::b"],
            "6": ["t::a", "t::c"],
            "7": ["<shared>", "t::a"],
        },
        "n.py": {"3": ["t::c"]},
    },
}


def test_selection_runs_the_covering_tests_and_those_whose_children_ran_the_line() -> None:
    assert covermap.select(CMAP, {"m.py": [6]}) == ["t::a", "t::c", "t::spawns"]
    assert covermap.select(CMAP, {"m.py": [5]}) == ["t::b"]  # its children never ran line 5
    assert covermap.select(CMAP, {"n.py": [3]}) == ["t::c"]


def test_selection_keeps_a_test_whose_child_died_unsaved_for_every_file_it_imported() -> None:
    cmap = {**CMAP, "spawners": {"t::spawns": {"lines": {}, "unsaved_imports": ["m.py"]}}}
    assert covermap.select(cmap, {"m.py": [5]}) == ["t::b", "t::spawns"]
    assert covermap.select(cmap, {"n.py": [3]}) == ["t::c"]  # n.py never imported there


def test_selection_falls_back_to_every_test_for_a_line_run_at_import_or_by_no_test() -> None:
    assert covermap.select(CMAP, {"m.py": [1]}) is None  # import time
    assert covermap.select(CMAP, {"m.py": [7]}) is None  # also run in a shared fixture
    assert covermap.select(CMAP, {"m.py": [9]}) is None  # no test runs it in this process
    assert covermap.select(CMAP, {"other.py": [1]}) is None  # a file the map does not know


def test_selection_keeps_a_spawning_test_whose_processes_left_no_record() -> None:
    cmap = {**CMAP, "spawners": {"t::spawns": None}}
    assert covermap.select(cmap, {"n.py": [3]}) == ["t::c", "t::spawns"]
    assert covermap.select({**CMAP, "spawned_outside": True}, {"n.py": [3]}) is None


def test_the_map_gives_each_line_its_tests_and_each_spawning_test_its_childrens_imports(
    project: Path,
) -> None:
    out = project / "map.json"
    subprocess.run(
        [
            sys.executable,
            str(MUTATION / "covermap.py"),
            str(out),
            "--root",
            str(project),
            "--files",
            "probe.py",
            "--",
            "test_probe.py",
        ],
        cwd=project,
        env={**os.environ, **LEAN_PYTEST, "COVERMAP_PACKAGE": "probe"},
        check=True,
        capture_output=True,
    )
    cmap = json.loads(out.read_text())
    lines = cmap["lines"]["probe.py"]
    assert lines["1"] == ["<shared>"]  # VALUE = 1 runs at import
    assert lines["5"] == ["test_probe.py::test_double"]
    # the child only imports probe: it ran lines 1 and 4 (import time), never double()'s body
    children = cmap["spawners"]["test_probe.py::test_child_imports_probe"]
    assert children == {"lines": {"probe.py": [1, 4]}, "unsaved_imports": []}
    # this one's child was killed before saving its coverage: it counts for all of probe.py
    killed = cmap["spawners"]["test_probe.py::test_child_killed_after_calling_double"]
    assert killed == {"lines": {}, "unsaved_imports": ["probe.py"]}
    assert covermap.select(cmap, {"probe.py": [5]}) == [
        "test_probe.py::test_double",
        "test_probe.py::test_child_killed_after_calling_double",
    ]


def test_selected_tests_run_quickest_first_so_a_cheap_killer_ends_the_run_early() -> None:
    cmap = {**CMAP, "seconds": {"t::a": 2.0, "t::c": 0.1, "t::spawns": 1.0}}
    assert covermap.select(cmap, {"m.py": [6]}) == ["t::c", "t::spawns", "t::a"]


def test_stopping_the_server_mid_mutant_kills_the_running_child(project: Path) -> None:
    proc = start_server(project)
    pids = project / "pids"
    client = subprocess.Popen(
        [sys.executable, "-S", "-I", str(MUTATION / "client.py"), str(project / "s.sock")],
        cwd=project,
        env={**os.environ, **LEAN_PYTEST, "PROBE_HANG": str(pids)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: pids.exists() and pids.read_text().count(" ") == 1)
        test_pid, sleeper_pid = map(int, pids.read_text().split())
        proc.terminate()  # what run.py does at the end of a session, or a Ctrl-C
        proc.wait(timeout=30)
        assert wait_until(lambda: not alive(test_pid))
        assert wait_until(lambda: not alive(sleeper_pid))
        assert client.wait(timeout=30) != 0  # the mutant is not reported as survived
    finally:
        client.kill()


class _Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def test_a_guard_test_runs_first_in_the_whole_list_whatever_its_time() -> None:
    """isolation's guard must run before any test that calls kill_run, quickest or not."""
    items = [_Item(n) for n in ("t::slow_guard", "t::quick", "t::quicker")]
    seconds = {"t::slow_guard": 5.0, "t::quick": 0.2, "t::quicker": 0.1}
    forkserver.QuickestFirst(seconds, first=("t::slow_guard",)).pytest_collection_modifyitems(items)
    assert [i.nodeid for i in items] == ["t::slow_guard", "t::quicker", "t::quick"]
    forkserver.QuickestFirst(seconds).pytest_collection_modifyitems(items)
    assert items[-1].nodeid == "t::slow_guard"  # without the guard, only time orders them


def test_a_selection_that_leaves_the_guard_out_still_runs_it_first(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = "test_probe.py::test_value"
    server = forkserver.Server(
        project, ["probe.py"], ["test_probe.py"], {"tests": ["x"]}, 30.0, first=(guard,)
    )
    monkeypatch.setattr(covermap, "select", lambda cmap, changed: ["test_probe.py::test_double"])
    (project / "probe.py").write_text(PROBE.replace("2 * x", "3 * x"))
    args, _ = server.plan()
    tests = [a for a in args if a.startswith("test_probe.py::")]
    assert tests == [guard, "test_probe.py::test_double"]
    assert "-x" in args  # the guard's failure ends the mutant's run there


def test_a_confined_session_sees_only_its_own_processes_and_keeps_its_exit_code() -> None:
    """run.py re-runs itself in a PID namespace: a mutant that signals every process it can see
    reaches only the session's own, never the machine's."""
    import run

    probe = (
        "import os, sys; print(len([p for p in os.listdir('/proc') if p.isdigit()])); sys.exit(7)"
    )
    init = [sys.executable, "-S", "-I", "-c", run.INIT]
    for way in run.UNSHARE_WAYS:
        proc = subprocess.run(
            [*way, *init, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 1 or "unshare" not in proc.stderr:  # 1 + unshare's words: refused
            break
    assert proc.returncode == 7, proc.stderr
    outside = len([p for p in os.listdir("/proc") if p.isdigit()])
    assert int(proc.stdout) <= 3 < outside  # the init, the probe (and a moment's fork)
