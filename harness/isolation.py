"""Start the child, stream its events, enforce a timeout, classify how it ended.

The child runs in its own session (process group), so a timeout kills it and
anything it started; a segfault or abort in the child is a result here, never
the parent's end. Events come over a dedicated pipe; stdout and stderr are
drained in threads (a full pipe would block the child) and their tails kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .hangs import Watchdog
from .native_extras import NativeExtras as _NativeExtras
from .sanitizers import Mode

STDERR_TAIL = 16_384
STDOUT_TAIL = 4_096

# glibc's malloc checks and other native last words, most specific first
_NATIVE_PATTERNS = [
    re.compile(p)
    for p in (
        r"double free or corruption[^\n]*",
        r"free\(\): [^\n]*",
        r"munmap_chunk\(\): [^\n]*",
        r"realloc\(\): [^\n]*",
        r"malloc\(\): [^\n]*",
        r"malloc_consolidate\(\): [^\n]*",
        r"corrupted [^\n]*",
        r"\*\*\* stack smashing detected \*\*\*[^\n]*",
        r"AddressSanitizer[^\n]*",
    )
]
_FATAL = re.compile(r"Fatal Python error: [^\n]*")


@dataclass
class ChildResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    exit: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _drain_lines(stream: Any, sink: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
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


def native_message(stderr: str) -> str | None:
    """The glibc (or sanitizer) message in a child's stderr, if any."""
    for pat in _NATIVE_PATTERNS:
        m = pat.search(stderr)
        if m:
            return m.group(0).strip()
    return None


def classify(
    returncode: int | None, timed_out: bool, events: list[dict[str, Any]], stderr: str
) -> dict[str, Any]:
    """How the child ended: clean, exception, signal, exit or timeout."""
    out: dict[str, Any] = {"code": returncode, "stderr_tail": stderr[-4000:]}
    fatal = _FATAL.search(stderr)
    native = native_message(stderr)
    if fatal:
        out["fatal_error"] = fatal.group(0)
        out["faulthandler"] = stderr[fatal.start() :][:4000]
    if native:
        out["native_message"] = native
    has_end = any(e.get("kind") == "end" for e in events)
    error = next(
        (
            e
            for e in events
            if e.get("kind") == "error" or (e.get("kind") == "step" and e.get("error"))
        ),
        None,
    )
    if timed_out:
        out["kind"] = "timeout"
    elif returncode is not None and returncode < 0:
        out["kind"] = "signal"
        out["signal"] = -returncode
        try:
            out["signal_name"] = signal.Signals(-returncode).name
        except ValueError:
            out["signal_name"] = f"signal {-returncode}"
    elif error is not None:
        out["kind"] = "exception"
        out["error"] = error.get("error")
    elif returncode == 0 and has_end:
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
    config: dict[str, Any],
    *,
    timeout: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    env: dict[str, str] | None = None,
    watchdog: Watchdog | None = None,
    mode: Mode | None = None,
) -> ChildResult:
    """Run `python -m memcycle.child` with `config`; never raises for the child's failures.

    `watchdog` adds per-step time limits and, with `timeout`, dumps the hung child's
    stacks before it is killed; `mode` runs it under a sanitizer or valgrind
    (`harness.sanitizers`). A crash gets a native stack (`harness.native_stack`).
    """
    config = dict(config)
    # the user's engine module resolves against the working directory, added by the child only
    # after memcycle itself is imported (and `-P` keeps the cwd off sys.path until then), so a
    # folder of the user's can never shadow memcycle
    config.setdefault("sys_path", [os.getcwd()])
    rfd, wfd = os.pipe()
    t0 = time.perf_counter()
    extras = _NativeExtras(config, mode, watchdog)
    try:
        command = child_command(config, wfd)
        base_env = child_env(
            {**RAW_ALLOCATOR_ENV, **(env or {})} if config.get("allocator") == "raw" else env
        )
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
    finally:
        os.close(wfd)
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_line(line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            ev = {"kind": "garbage", "text": line[:500]}
        with lock:
            events.append(ev)
        extras.on_event(ev)
        if on_event is not None:
            on_event(ev)

    err_buf: deque[bytes] = deque()
    out_buf: deque[bytes] = deque()
    threads = [
        threading.Thread(
            target=_drain_lines, args=(os.fdopen(rfd, "rb", buffering=0), on_line), daemon=True
        ),
        threading.Thread(target=_drain_tail, args=(proc.stderr, err_buf, STDERR_TAIL), daemon=True),
        threading.Thread(target=_drain_tail, args=(proc.stdout, out_buf, STDOUT_TAIL), daemon=True),
    ]
    for t in threads:
        t.start()
    timed_out = False
    try:
        timed_out = extras.wait(proc, timeout)
        if timed_out:
            _kill_group(proc)
            proc.wait()
    except BaseException:
        _kill_group(proc)
        proc.wait()
        extras.discard()
        raise
    for t in threads:
        t.join(timeout=10)
    stderr = b"".join(err_buf).decode("utf-8", "replace")[-STDERR_TAIL:]
    result = ChildResult(events=events, seconds=time.perf_counter() - t0)
    result.exit = classify(proc.returncode, timed_out, events, stderr)
    result.exit["stdout_tail"] = b"".join(out_buf).decode("utf-8", "replace")[-STDOUT_TAIL:]
    result.exit["seconds"] = result.seconds
    if timed_out:
        result.exit["timeout"] = timeout
    extras.finish(result.exit, command, proc_env)
    return result


def child_command(config: dict[str, Any], events_fd: int) -> list[str]:
    """The child's command line (also replayed under gdb after a crash)."""
    return [
        sys.executable,
        "-P",
        "-m",
        "memcycle.child",
        "--events-fd",
        str(events_fd),
        "--config",
        json.dumps(config),
    ]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
