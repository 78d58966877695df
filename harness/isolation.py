"""Start the child, stream its events, enforce a timeout, classify how it ended.

The child runs in its own session (process group), so a timeout kills it and
anything it started; a segfault or abort in the child is a result here, never
the parent's end. Events come over a dedicated pipe; stdout and stderr are
drained in threads (a full pipe would block the child) and their tails kept.

Nothing of a run outlives it: at the end of every run (clean, timeout, interrupt)
the child's whole process group is killed, and so is every process that carries
the run's token in its environment (`MEMCYCLE_RUN_TOKEN`: a daemon the engine
detached into its own session still has it). The child dies with its parent
(`PR_SET_PDEATHSIG`) and enforces its own deadline (see `memcycle.child`), so a
SIGKILLed parent leaves nothing behind. A `ChildRegistry` shared by the runs of
one batch lets an interrupt kill every live child at once.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
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
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .hangs import Watchdog
from .native_extras import NativeExtras as _NativeExtras
from .native_messages import find_native_message, native_message  # noqa: F401 (re-exported)
from .protocol import (
    PARENT_ENV,
    TOKEN_ENV,
    ChildConfig,
    ChildStream,
    EventKind,
    EventReader,
    bound_text,
    fold_events,
)
from .sanitizers import Mode

STDERR_TAIL = 16_384
STDOUT_TAIL = 4_096
MAX_EVENT_LINE = 4 * 1024 * 1024  # the longest events line read whole
# the child's own deadline is the parent's timeout plus this grace, so a live parent always
# classifies the timeout itself and the child's deadline only matters when the parent is gone
CHILD_DEADLINE_GRACE = 10.0

_FATAL = re.compile(r"Fatal Python error: [^\n]*")


@dataclass
class ChildResult:
    events: list[dict[str, Any]] = field(default_factory=list)  # as read (events.jsonl)
    stream: ChildStream = field(default_factory=ChildStream)  # the events, folded
    exit: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class Cancelled(Exception):
    """The batch was stopped from outside (Ctrl-C, SIGTERM) before this run finished."""


class ChildRegistry:
    """The live children of one batch of runs, so an interrupt kills every one at once.

    `stop()` is idempotent and safe to call from a signal handler (re-entrant lock); after
    it, no new child starts and a child that was starting is killed as it registers."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._live: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
        self.stopped = False

    def add(self, proc: subprocess.Popen[bytes], token: str) -> bool:
        """Track `proc`; False (and `proc` killed) when the batch is already stopping."""
        with self._lock:
            if self.stopped:
                kill_run(proc.pid, token)
                return False
            self._live[proc.pid] = (proc, token)
            return True

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._live.pop(proc.pid, None)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            live = list(self._live.values())
        for proc, token in live:
            kill_run(proc.pid, token)


def _token_holders(token: str) -> list[int]:
    """Pids whose environment carries this run's token (Linux /proc; empty elsewhere)."""
    needle = f"{TOKEN_ENV}={token}".encode()
    me = os.getpid()
    pids: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:  # gone, or another user's
            continue
        if needle in env.split(b"\0"):
            pids.append(int(name))
    return pids


def kill_run(pgid: int, token: str | None = None) -> None:
    """SIGKILL the run's process group and every process that carries its token."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if token:
        for pid in _token_holders(token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _bound_event(ev: dict[str, Any]) -> dict[str, Any]:
    """Bound the free text an engine controls (its exception message, traceback)."""
    err = ev.get("error")
    if isinstance(err, dict):
        ev["error"] = {k: bound_text(v) if isinstance(v, str) else v for k, v in err.items()}
    return ev


def _drain_lines(stream: Any, sink: Callable[[str], None]) -> None:
    while True:
        raw = stream.readline(MAX_EVENT_LINE)
        if not raw:
            break
        if len(raw) >= MAX_EVENT_LINE and not raw.endswith(b"\n"):
            # an over-long line: skip to its end and say so (kept as a garbage event)
            dropped = len(raw)
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_EVENT_LINE)
                dropped += len(raw)
            text = f"events line of {dropped} bytes dropped"
            sink(json.dumps({"kind": EventKind.GARBAGE, "text": text}))
            continue
        sink(raw.decode("utf-8", "replace"))
    stream.close()


def _drain_tail(stream: Any, buf: deque[bytes], limit: int) -> None:
    size = 0
    for chunk in iter(lambda: stream.read1(65536), b""):
        buf.append(chunk)
        size += len(chunk)
        while size - len(buf[0]) > limit and len(buf) > 1:
            size -= len(buf.popleft())
    stream.close()


def classify(
    returncode: int | None,
    timed_out: bool,
    events: ChildStream | Sequence[dict[str, Any]],
    stderr: str,
) -> dict[str, Any]:
    """How the child ended: clean, exception, signal, exit or timeout. `events` is the folded
    stream (`ChildResult.stream`), or the events as read (folded here)."""
    stream = events if isinstance(events, ChildStream) else fold_events(events)
    out: dict[str, Any] = {"code": returncode, "stderr_tail": stderr[-4000:]}
    fatal = _FATAL.search(stderr)
    native = find_native_message(stderr)
    if fatal:
        out["fatal_error"] = fatal.group(0)
        out["faulthandler"] = stderr[fatal.start() :][:4000]
    if native:
        out["native_message"] = native.message
        out["native"] = native.to_dict()  # runtime, verdict it supports, meaning, details
    if stream.forged:
        out["forged_events"] = len(stream.forged)
        out["forged_sample"] = stream.forged[:3]
    if timed_out:
        out["kind"] = "timeout"
    elif returncode is not None and returncode < 0:
        out["kind"] = "signal"
        out["signal"] = -returncode
        try:
            out["signal_name"] = signal.Signals(-returncode).name
        except ValueError:
            out["signal_name"] = f"signal {-returncode}"
    elif stream.first_error is not None:
        out["kind"] = "exception"
        out["error"] = stream.first_error
    elif returncode == 0 and stream.ended:
        out["kind"] = "clean"
    else:
        out["kind"] = "exit"
    return out


# With the raw allocator, pin glibc's mmap threshold at its default (128 KiB): setting it turns off
# glibc's dynamic threshold, which otherwise rises after the first large free and moves later large
# blocks onto the heap, where a freed block stays mapped and a stale view reads garbage quietly.
# Pinned, every large block is mmapped and unmapped on free, so a use-after-free faults every run.
RAW_ALLOCATOR_ENV: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: NRT stats on, glibc messages to stderr, unbuffered."""
    env = dict(os.environ)
    env["NUMBA_NRT_STATS"] = "1"
    env["LIBC_FATAL_STDERR_"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run_child(
    config: ChildConfig,
    *,
    timeout: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    env: dict[str, str] | None = None,
    registry: ChildRegistry | None = None,
    watchdog: Watchdog | None = None,
    mode: Mode | None = None,
) -> ChildResult:
    """Run `python -m memcycle.child` with `config`; never raises for the child's failures.

    Raises `Cancelled` when `registry` was stopped before or while the child ran (its
    result would describe the kill, not the engine). Call it from a thread that lives
    until it returns: the child's death signal follows the thread that started it.
    `watchdog` adds per-step time limits and, with `timeout`, dumps the hung child's
    stacks before it is killed; `mode` runs it under a sanitizer or valgrind
    (`harness.sanitizers`). A crash gets a native stack (`harness.native_stack`)."""
    # the user's engine module resolves against the working directory, added by the child only
    # after memcycle itself is imported (and `-P` keeps the cwd off sys.path until then), so a
    # folder of the user's can never shadow memcycle
    event_token = config.event_token or uuid.uuid4().hex[:16]
    deadline = config.deadline
    if deadline is None and timeout is not None:
        deadline = timeout + CHILD_DEADLINE_GRACE
    sys_path = config.sys_path or (os.getcwd(),)
    config = replace(config, sys_path=sys_path, deadline=deadline, event_token=event_token)
    token = uuid.uuid4().hex
    extra = {**(env or {}), TOKEN_ENV: token, PARENT_ENV: str(os.getpid())}
    if config.allocator == "raw":
        extra = {**RAW_ALLOCATOR_ENV, **extra}
    if registry is not None and registry.stopped:
        raise Cancelled("stopped before the child started")
    rfd, wfd = os.pipe()
    t0 = time.perf_counter()
    extras = _NativeExtras(config, mode, watchdog)
    try:
        command = child_command(config, wfd)
        base_env = child_env(extra)
        command, proc_env = extras.prepare(command, base_env)
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(wfd,),
            start_new_session=True,
            env=proc_env,
        )
    except BaseException:
        os.close(rfd)
        extras.discard()  # its scratch folder: no child will ever write there
        raise
    finally:
        os.close(wfd)
    if registry is not None and not registry.add(proc, token):
        proc.wait()
        os.close(rfd)
        raise Cancelled("stopped while the child started")
    events: list[dict[str, Any]] = []
    lock = threading.Lock()
    reader = EventReader(event_token)

    def on_line(line: str) -> None:
        read = reader.read(line)  # one reader thread: the lines come in order
        if read is None:
            return
        ev = _bound_event(read)
        with lock:
            events.append(ev)
        extras.on_event(ev)
        if on_event is not None:
            on_event(ev)

    err_buf: deque[bytes] = deque()
    out_buf: deque[bytes] = deque()
    threads = [
        threading.Thread(target=_drain_lines, args=(os.fdopen(rfd, "rb"), on_line), daemon=True),
        threading.Thread(target=_drain_tail, args=(proc.stderr, err_buf, STDERR_TAIL), daemon=True),
        threading.Thread(target=_drain_tail, args=(proc.stdout, out_buf, STDOUT_TAIL), daemon=True),
    ]
    for t in threads:
        t.start()
    timed_out = False
    try:
        timed_out = extras.wait(proc, timeout)  # stacks of a hung child dumped before the kill
    except BaseException:
        extras.discard()
        raise
    finally:
        # every run ends with its whole group gone: a grandchild holding stdout, a detached
        # daemon, the child itself on a timeout or an interrupt
        kill_run(proc.pid, token)
        proc.wait()
        if registry is not None:
            registry.discard(proc)
    for t in threads:
        t.join(timeout=10)
    if registry is not None and registry.stopped:
        raise Cancelled("stopped while the child ran")
    stderr = b"".join(err_buf).decode("utf-8", "replace")[-STDERR_TAIL:]
    result = ChildResult(
        events=events, stream=fold_events(events), seconds=time.perf_counter() - t0
    )
    result.exit = classify(proc.returncode, timed_out, result.stream, stderr)
    result.exit["stdout_tail"] = b"".join(out_buf).decode("utf-8", "replace")[-STDOUT_TAIL:]
    result.exit["seconds"] = result.seconds
    if timed_out:
        result.exit["timeout"] = timeout
    extras.finish(result.exit, command, proc_env)
    return result


# Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN) and the config carries the whole
# scenario: a larger one goes through a file, named `@path` on the command line (JSON never starts
# with "@"). The file lives until this process ends, so a replay under gdb still finds it.
CONFIG_ARG_LIMIT = 64 * 1024
_spill_dir: Path | None = None


def config_argument(config: ChildConfig) -> str:
    """The child's `--config` value: the JSON itself, or `@file` when it is too long for argv."""
    text = config.to_json()
    if len(text.encode("utf-8")) <= CONFIG_ARG_LIMIT:
        return text
    global _spill_dir
    if _spill_dir is None:
        _spill_dir = Path(tempfile.mkdtemp(prefix="memcycle-config-"))
        atexit.register(shutil.rmtree, _spill_dir, True)
    path = _spill_dir / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:20]}.json"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return f"@{path}"


def child_command(config: ChildConfig, events_fd: int) -> list[str]:
    """The child's command line (also replayed under gdb after a crash)."""
    return [
        sys.executable,
        "-P",
        "-m",
        "memcycle.child",
        "--events-fd",
        str(events_fd),
        "--config",
        config_argument(config),
    ]
