"""The child boundary's own bookkeeping, each behaviour on its own (mutation testing,
docs/mutation.md): which processes a run kills, the batch registry, the events and tail readers,
what reaches the child's config and environment, and how the end is classified.

Most tests need no engine: `sleep` processes stand in for children and holders of a run's token,
and `child_command` is swapped for a few lines of Python (no memcycle import), so a run of
`run_child` costs a fraction of a second.

The first test must stay first: a mutant that takes every process for a holder of the token would
make the first `kill_run` SIGKILL the whole machine, and with `pytest -x` that test stops the
session before anything calls `kill_run`.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from memcycle import isolation
from memcycle.isolation import (
    CHILD_DEADLINE_GRACE,
    CONFIG_ARG_LIMIT,
    Cancelled,
    ChildRegistry,
    _drain_lines,
    _drain_tail,
    _token_holders,
    child_env,
    classify,
    config_argument,
    kill_run,
    run_child,
)
from memcycle.protocol import TOKEN_ENV, ChildConfig
from memcycle.scenario import load_scenario

MIB4 = 4 * 1024 * 1024  # the longest events line read whole, as documented in isolation.py
SLEEP = shutil.which("sleep") or "/bin/sleep"


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `sleep 60` in a session of its own, optionally carrying a run token; every one is
    killed at the end of the test (directly, never through the code under test)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(token: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        if token is not None:
            env[TOKEN_ENV] = token
        proc = subprocess.Popen([SLEEP, "60"], env=env, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _token() -> str:
    return uuid.uuid4().hex


def _gone(pid: int) -> bool:
    """No such process, or only its zombie is left (killed, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _dies(pid: int) -> bool:
    """The process is gone or goes within 10 s (a SIGKILL is delivered, not instantaneous)."""
    for _ in range(1000):
        if _gone(pid):
            return True
        time.sleep(0.01)
    return False


def _config(tmp_path: Path, **fields: Any) -> ChildConfig:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "iso"\ndimension = 4\n[[cycle]]\nsteps = [ { op = "insert", count = 4 } ]\n',
        encoding="utf-8",
    )
    return ChildConfig(load_scenario(path), "tests.engines_for_tests:make_bruteforce", **fields)


class FakeChild:
    """Stands in for `child_command`: a short Python program (no memcycle import) that writes
    `events` with the run's token on the events fd, then runs `code`; keeps each config."""

    def __init__(self) -> None:
        self.configs: list[ChildConfig] = []
        self.events: list[dict[str, Any]] = []
        self.code = ""

    def __call__(self, config: ChildConfig, events_fd: int) -> list[str]:
        self.configs.append(config)
        lines = [
            json.dumps({**ev, "tok": config.event_token, "seq": i})
            for i, ev in enumerate(self.events)
        ]
        program = (
            "import os, sys\n"
            f"fd = {events_fd}\n"
            f"for line in {lines!r}:\n"
            "    os.write(fd, (line.replace('PID', str(os.getpid())) + '\\n').encode())\n"
            f"{self.code}\n"
        )
        return [sys.executable, "-S", "-c", program]

    @property
    def only(self) -> ChildConfig:
        assert len(self.configs) == 1, self.configs
        return self.configs[0]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeChild:
    child = FakeChild()
    monkeypatch.setattr(isolation, "child_command", child)
    return child


# -- which processes a run kills (the first test must stay first: module doc) ------------------
def test_only_the_processes_that_carry_the_runs_token_are_its_holders(spawn: Any) -> None:
    token = _token()
    holder = spawn(token)
    spawn(_token())  # another run's
    spawn()  # no run's
    assert _token_holders(token) == [holder.pid]


def test_kill_run_kills_the_runs_group_and_every_holder_of_its_token_and_no_one_else(
    spawn: Any,
) -> None:
    token = _token()
    leader, holder, bystander = spawn(), spawn(token), spawn(_token())
    kill_run(leader.pid, token)
    assert leader.wait(timeout=10) == -signal.SIGKILL
    assert holder.wait(timeout=10) == -signal.SIGKILL  # a daemon in a session of its own
    assert bystander.poll() is None


def test_without_proc_no_process_is_taken_for_a_holder(
    spawn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token()
    spawn(token)
    real = os.listdir

    def listdir(path: Any = ".") -> list[str]:
        if str(path) == "/proc":
            raise FileNotFoundError(path)
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    assert _token_holders(token) == []


def test_a_process_whose_environment_cannot_be_read_is_passed_over_and_the_scan_goes_on(
    spawn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token()
    holder = spawn(token)
    refused: list[str] = []

    def guarded_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).startswith("/proc/") and not refused:  # the first process read: not ours
            refused.append(str(path))
            raise PermissionError(path)
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(isolation, "open", guarded_open, raising=False)
    assert _token_holders(token) == [holder.pid]
    assert refused and str(holder.pid) not in refused[0]


# -- the registry of a batch ---------------------------------------------------------------------
def test_a_registry_keeps_its_children_alive_until_it_is_stopped_then_kills_every_one(
    spawn: Any,
) -> None:
    registry = ChildRegistry()
    assert registry.stopped is False
    ta, tb = _token(), _token()
    a, b = spawn(ta), spawn(tb)
    assert registry.add(a, ta) is True and registry.add(b, tb) is True
    assert a.poll() is None and b.poll() is None
    registry.stop()
    assert registry.stopped is True
    assert a.wait(timeout=10) == -signal.SIGKILL
    assert b.wait(timeout=10) == -signal.SIGKILL


def test_a_child_that_registers_after_the_stop_is_refused_and_killed(spawn: Any) -> None:
    registry = ChildRegistry()
    registry.stop()
    token = _token()
    late = spawn(token)
    assert registry.add(late, token) is False
    assert late.wait(timeout=10) == -signal.SIGKILL


def test_a_child_discarded_from_the_registry_is_not_killed_by_the_stop(spawn: Any) -> None:
    registry = ChildRegistry()
    token = _token()
    done = spawn(token)
    registry.add(done, token)
    registry.discard(done)
    registry.stop()
    assert done.poll() is None


# -- the events reader ---------------------------------------------------------------------------
class Lines(io.BytesIO):
    """An events pipe that fails a reader going on reading after its end (an endless loop)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads_at_end = 0

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not line:
            self.reads_at_end += 1
            if self.reads_at_end > 3:
                raise AssertionError("the reader read on past the end of the stream")
        return line


def _drained(data: bytes) -> list[str]:
    out: list[str] = []
    _drain_lines(Lines(data), out.append)
    return out


def test_every_events_line_reaches_the_reader_even_a_last_one_without_its_newline() -> None:
    assert _drained(b'{"a":1}\n{"b":2}\n{"c":3}') == ['{"a":1}\n', '{"b":2}\n', '{"c":3}']


def test_an_events_line_of_4_mib_or_more_is_dropped_whole_as_one_garbage_event_and_reading_goes_on() -> (
    None
):
    out = _drained(b"x" * MIB4 + b"rest\n" + b'{"next":1}\n')
    assert len(out) == 2 and out[1] == '{"next":1}\n'
    assert json.loads(out[0]) == {
        "kind": "garbage",
        "text": f"events line of {MIB4 + 5} bytes dropped",
    }


def test_an_events_line_just_under_4_mib_is_read_whole() -> None:
    line = b"y" * (MIB4 - 1) + b"\n"
    assert _drained(line + b"z\n") == [line.decode(), "z\n"]


def test_an_over_long_line_cut_off_by_the_end_of_the_stream_is_dropped_and_reading_ends() -> None:
    out = _drained(b"x" * (MIB4 + 10))
    assert [json.loads(o)["text"] for o in out] == [f"events line of {MIB4 + 10} bytes dropped"]


# -- the stdout/stderr tails ---------------------------------------------------------------------
class Chunks:
    """A pipe read in the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def read1(self, size: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        pass


def _tail(chunks: list[bytes], limit: int) -> bytes:
    from collections import deque

    buf: deque[bytes] = deque()
    _drain_tail(Chunks(chunks), buf, limit)
    return b"".join(buf)


def test_a_tail_read_in_small_chunks_keeps_at_least_its_last_limit_bytes() -> None:
    chunks = [bytes([65 + i % 26]) * 10 for i in range(100)]
    kept = _tail(chunks, 95)
    assert len(kept) >= 95 and kept.endswith(b"".join(chunks)[-95:])


def test_a_tail_keeps_an_old_long_chunk_while_its_last_bytes_are_still_needed() -> None:
    kept = _tail([b"a" * 100, b"b"], 50)
    assert kept.endswith(b"a" * 49 + b"b")


# -- how the end is classified -------------------------------------------------------------------
def test_the_exit_record_keeps_the_last_4000_characters_of_stderr() -> None:
    long = "".join(str(i % 10) for i in range(10_000))
    assert classify(1, False, [], long)["stderr_tail"] == long[-4000:]
    assert classify(1, False, [], "short")["stderr_tail"] == "short"


def test_a_fatal_error_keeps_its_line_and_4000_characters_of_faulthandler_output() -> None:
    stderr = "noise\nFatal Python error: Segmentation fault\n" + "f" * 5000
    out = classify(-11, False, [], stderr)
    assert out["fatal_error"] == "Fatal Python error: Segmentation fault"
    assert out["faulthandler"] == stderr[len("noise\n") :][:4000]


def test_a_native_allocator_message_in_stderr_is_named_in_the_exit_record() -> None:
    out = classify(-6, False, [], "free(): invalid pointer\n")
    assert out["native_message"] == "free(): invalid pointer"
    assert out["native"]["message"] == "free(): invalid pointer"
    assert "native_message" not in classify(-6, False, [], "nothing known\n")


def test_forged_lines_are_counted_and_the_first_three_kept_as_a_sample() -> None:
    events = [{"kind": "forged", "text": f"line {i}"} for i in range(5)]
    out = classify(0, False, events, "")
    assert out["forged_events"] == 5
    assert out["forged_sample"] == ["line 0", "line 1", "line 2"]
    assert "forged_events" not in classify(0, False, [{"kind": "end"}], "")


def test_a_child_killed_by_sighup_the_lowest_signal_ended_by_a_signal() -> None:
    out = classify(-1, False, [{"kind": "end"}], "")
    assert (out["kind"], out["signal"], out["signal_name"]) == ("signal", 1, "SIGHUP")


def test_a_signal_python_has_no_name_for_is_named_by_its_number() -> None:
    out = classify(-40, False, [], "")
    assert (out["kind"], out["signal"], out["signal_name"]) == ("signal", 40, "signal 40")


def test_an_end_event_is_clean_only_with_exit_code_zero() -> None:
    assert classify(0, False, [{"kind": "end"}], "")["kind"] == "clean"
    assert classify(1, False, [{"kind": "end"}], "")["kind"] == "exit"


def test_an_engines_error_message_is_bounded_and_its_other_fields_kept() -> None:
    ev = isolation._bound_event({"kind": "step", "error": {"message": "m" * 200_000, "line": 7}})
    assert len(ev["error"]["message"]) < 70_000 and ev["error"]["message"].startswith("mmm")
    assert ev["error"]["line"] == 7


# -- the environment and the config the child gets ----------------------------------------------
def test_the_childs_environment_is_the_parents_with_memcycles_settings_and_the_callers_on_top() -> (
    None
):
    env = child_env({"MEMCYCLE_TEST_EXTRA": "1", "PYTHONUNBUFFERED": "0"})
    assert env["MEMCYCLE_TEST_EXTRA"] == "1" and env["PYTHONUNBUFFERED"] == "0"
    assert env["NUMBA_NRT_STATS"] == "1" and env["PYTHONFAULTHANDLER"] == "1"
    assert child_env()["PATH"] == os.environ["PATH"]


def test_the_child_gets_the_callers_working_directory_a_deadline_after_the_timeout_and_a_token(
    tmp_path: Path, fake: FakeChild
) -> None:
    run_child(_config(tmp_path), timeout=5)
    given = fake.configs[-1]
    assert given.sys_path == (os.getcwd(),)
    assert given.deadline == 5 + CHILD_DEADLINE_GRACE and given.deadline > 5
    assert given.event_token and re.fullmatch(r"[0-9a-f]+", given.event_token)
    run_child(_config(tmp_path))
    assert fake.configs[-1].deadline is None  # no timeout: no deadline of its own


def test_the_callers_own_path_deadline_and_token_reach_the_child_unchanged(
    tmp_path: Path, fake: FakeChild
) -> None:
    cfg = _config(tmp_path, sys_path=("/work/project",), deadline=99.0, event_token="ab12" * 4)
    run_child(cfg, timeout=5)
    assert (fake.only.sys_path, fake.only.deadline, fake.only.event_token) == (
        ("/work/project",),
        99.0,
        "ab12" * 4,
    )


def test_the_callers_environment_the_runs_token_and_the_raw_allocators_setting_reach_the_child(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.code = (
        "print('X=' + os.environ.get('MEMCYCLE_TEST_X', ''),"
        " 'M=' + os.environ.get('MALLOC_MMAP_THRESHOLD_', ''),"
        f" 'T=' + os.environ.get({TOKEN_ENV!r}, ''))"
    )
    raw = run_child(_config(tmp_path, allocator="raw"), timeout=30, env={"MEMCYCLE_TEST_X": "seen"})
    numpy = run_child(_config(tmp_path), timeout=30)
    out = raw.exit["stdout_tail"].split()
    assert out[0] == "X=seen" and out[1] == "M=131072" and len(out[2]) > len("T=")
    assert numpy.exit["stdout_tail"].split()[1] == "M="


def test_run_childs_options_are_given_by_name_only(tmp_path: Path, fake: FakeChild) -> None:
    with pytest.raises(TypeError):
        run_child(_config(tmp_path), 5)  # type: ignore[misc]
    assert fake.configs == []


def test_the_config_argument_holds_a_config_of_exactly_the_limit_and_spills_one_byte_more(
    tmp_path: Path,
) -> None:
    def config(n: int) -> ChildConfig:
        path = tmp_path / "long.toml"
        path.write_text(
            f'name = "l"\ndescription = "{"d" * n}"\ndimension = 4\n'
            '[[cycle]]\nsteps = [ { op = "clear" } ]\n',
            encoding="utf-8",
        )
        return ChildConfig(load_scenario(path), "refimpl")

    n = CONFIG_ARG_LIMIT - len(config(1).to_json().encode()) + 1  # one "d" is one byte
    fits = config(n)
    assert len(fits.to_json().encode()) == CONFIG_ARG_LIMIT
    assert config_argument(fits) == fits.to_json()
    over = config(n + 1)
    spilled = config_argument(over)
    assert spilled.startswith("@") and Path(spilled[1:]).read_text() == over.to_json()


# -- run_child with a stand-in child -------------------------------------------------------------
def test_the_exit_record_keeps_the_last_4096_bytes_of_the_childs_stdout(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.code = "sys.stdout.write(''.join(str(i % 10) for i in range(10000)))"
    res = run_child(_config(tmp_path), timeout=30)
    assert res.exit["stdout_tail"] == "".join(str(i % 10) for i in range(10000))[-4096:]


@pytest.mark.parametrize(("size", "found"), [(16 * 1024, True), (16 * 1024 + 1, False)])
def test_only_the_last_16_kib_of_the_childs_stderr_are_kept_and_read(
    tmp_path: Path, fake: FakeChild, size: int, found: bool
) -> None:
    line = "Fatal Python error: Aborted\n"
    fake.code = f"sys.stderr.write({line!r} + 'y' * {size - len(line)}); sys.stderr.flush()"
    res = run_child(_config(tmp_path), timeout=30)
    assert ("fatal_error" in res.exit) is found


def test_a_grandchild_that_dropped_the_token_still_dies_with_the_childs_own_session(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.code = (
        "import subprocess\n"
        f"p = subprocess.Popen([{SLEEP!r}, '60'], env={{}}, stdin=subprocess.DEVNULL,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid)"
    )
    res = run_child(_config(tmp_path), timeout=30)
    grandchild = int(res.exit["stdout_tail"].split()[0])
    try:
        assert _dies(grandchild)
    finally:
        if not _gone(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_a_run_waits_for_its_events_reader_so_no_line_written_before_the_end_is_lost(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.events = [{"kind": "note", "pid": "PID"}, {"kind": "note"}, {"kind": "end"}]
    seen: list[str] = []

    def slow_reader(ev: dict[str, Any]) -> None:
        seen.append(ev["kind"])
        if len(seen) == 1:  # hold the reader until the child is dead and reaped
            for _ in range(1000):
                if not Path(f"/proc/{ev['pid']}").exists():
                    break
                time.sleep(0.01)
            time.sleep(0.1)

    res = run_child(_config(tmp_path), timeout=30, on_event=slow_reader)
    assert [e["kind"] for e in res.events] == ["note", "note", "end"]
    assert seen == ["note", "note", "end"]
    assert res.exit["kind"] == "clean"


def test_a_pipe_reader_is_a_daemon_thread_so_a_pipe_held_open_never_holds_the_parents_exit(
    tmp_path: Path, fake: FakeChild, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[threading.Thread] = []

    class Recording(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(
        isolation,
        "threading",
        types.SimpleNamespace(Thread=Recording, Lock=threading.Lock, RLock=threading.RLock),
    )
    run_child(_config(tmp_path), timeout=30)
    assert len(made) == 3 and all(t.daemon for t in made)


def test_a_run_of_a_live_batch_runs_and_ends_as_its_child_did(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.events = [{"kind": "end"}]
    registry = ChildRegistry()
    res = run_child(_config(tmp_path), timeout=30, registry=registry)
    assert res.exit["kind"] == "clean" and not registry.stopped


def test_a_run_that_ends_in_time_has_no_time_limit_in_its_exit_record(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.events = [{"kind": "end"}]
    res = run_child(_config(tmp_path), timeout=30)
    assert res.exit["kind"] == "clean" and "timeout" not in res.exit


def test_a_run_of_a_stopped_batch_is_cancelled_before_any_child_starts(
    tmp_path: Path, fake: FakeChild
) -> None:
    registry = ChildRegistry()
    registry.stop()
    with pytest.raises(Cancelled, match="before the child started"):
        run_child(_config(tmp_path), timeout=30, registry=registry)
    assert fake.configs == []


def test_a_batch_stopped_while_its_child_runs_cancels_the_run_and_kills_the_child(
    tmp_path: Path, fake: FakeChild
) -> None:
    fake.events = [{"kind": "note", "pid": "PID"}]
    fake.code = "import time\ntime.sleep(60)"
    registry = ChildRegistry()
    pids: list[int] = []

    def stop_on_first(ev: dict[str, Any]) -> None:
        pids.append(int(ev["pid"]))
        registry.stop()

    with pytest.raises(Cancelled, match="while the child ran"):
        run_child(_config(tmp_path), timeout=60, registry=registry, on_event=stop_on_first)
    assert len(pids) == 1 and _gone(pids[0])


def test_a_child_that_cannot_start_leaves_no_descriptor_open_and_no_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "child_command", lambda config, fd: [str(tmp_path / "none")])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError):
        run_child(_config(tmp_path), timeout=30)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert list(tmp_path.glob("memcycle-native-*")) == []


def test_an_interrupted_run_kills_its_child_and_removes_its_scratch_folder(
    tmp_path: Path, fake: FakeChild, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.code = "import time\ntime.sleep(60)"
    children: list[subprocess.Popen[bytes]] = []

    class Interrupted(isolation._NativeExtras):
        def wait(self, proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
            children.append(proc)
            raise KeyboardInterrupt

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(isolation, "_NativeExtras", Interrupted)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(KeyboardInterrupt):
        run_child(_config(tmp_path), timeout=30)
    assert children[0].returncode == -signal.SIGKILL
    assert list(scratch.iterdir()) == []


def test_a_spilled_config_is_written_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        f'name = "b"\ndescription = "{"b" * (2 * CONFIG_ARG_LIMIT)}"\ndimension = 4\n'
        '[[cycle]]\nsteps = [ { op = "clear" } ]\n',
        encoding="utf-8",
    )
    cfg = ChildConfig(load_scenario(path), "refimpl")
    first, second = config_argument(cfg), config_argument(replace(cfg))
    assert first == second and ChildConfig.from_json(Path(first[1:]).read_text()) == cfg


def test_memcycle_exits_quietly_even_when_its_spilled_configs_folder_is_already_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        f'name = "b"\ndescription = "{"b" * (2 * CONFIG_ARG_LIMIT)}"\ndimension = 4\n'
        '[[cycle]]\nsteps = [ { op = "clear" } ]\n',
        encoding="utf-8",
    )
    program = (
        "import shutil\n"
        "from memcycle import isolation\n"
        "from memcycle.protocol import ChildConfig\n"
        "from memcycle.scenario import load_scenario\n"
        f"isolation.config_argument(ChildConfig(load_scenario({str(path)!r}), 'refimpl'))\n"
        "shutil.rmtree(isolation._spill_dir)  # a tmp cleaner got there first\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
