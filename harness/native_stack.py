"""Native (C/C++/Rust) stacks for crashes and hangs, read with gdb.

Why gdb, and why these two ways of using it:

- **Crash: replay the child under gdb.** The child is deterministic for a given
  config (seeded data, one process, no clock in the plan), so after a crash the
  parent runs the very same child command under `gdb -batch`, which stops at the
  first fatal signal, before faulthandler's handler runs, and unwinds the
  crashing thread with full symbols (function names, file:line from DWARF). It
  costs nothing for runs that do not crash, needs no core-dump setup (the
  kernel's `core_pattern` is system-wide and often pipes to systemd-coredump or
  apport on CI runners, and RLIMIT_CORE dumps of a NumPy/Numba process are
  hundreds of MB), and no native code of ours in the child (faulthandler owns the
  fatal-signal handlers; an in-process unwinder via `backtrace_symbols_fd` would
  have to chain with it in C and only sees exported symbols, no file:line).
  `py-spy dump --native` cannot read a dead process. When the replay does not
  crash again (a race, an address-layout dependent bug) the evidence says so.
- **Hang: attach gdb to the live child** (`gdb -p PID`), all threads, before it
  is killed. The child allows it under Yama (`prctl(PR_SET_PTRACER)`, see
  `harness.child`). Under valgrind `gdb -p` would see valgrind's own frames (the
  program runs on valgrind's synthetic CPU), so gdb talks to valgrind's gdbserver
  instead (`target remote | vgdb --pid=PID`, memcheck's default `--vgdb=yes`), which
  gives the program's threads and frames, symbols read from the program's files.

Every frame is tagged with where its code lives (`origin`): `engine` (a library
under the engine's source roots, or any native library that is neither the
Python runtime, its standard extension modules and infrastructure packages
nor a system library), `python`, `system`, or `jit` (no object file: Numba or
other generated code). When no stack can be had, a reason string says why;
nothing here raises for gdb's failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import PARENT_ENV

MAX_FRAMES = 48
REPLAY_TIMEOUT_FACTOR = 3.0  # the replay may take this many times the original run, plus slack
REPLAY_TIMEOUT_SLACK = 60.0
ATTACH_TIMEOUT = 60.0

# gdb's embedded Python writes the frames as JSON to `_memcycle_out`
_GDB_SCRIPT = r"""
import json
import gdb

def _object_of(pc):
    name = gdb.solib_name(pc)
    if name:
        return name
    try:
        obj = gdb.current_progspace().objfile_for_address(pc)
    except Exception:
        obj = None
    if obj is not None:
        return obj.filename
    try:
        if gdb.current_progspace().block_for_pc(pc) is not None:
            return gdb.current_progspace().filename
    except Exception:
        pass
    return None

def _frames(limit):
    out = []
    try:
        f = gdb.newest_frame()
    except gdb.error:
        return out
    while f is not None and len(out) < limit:
        pc = f.pc()
        try:
            name = f.name()
        except gdb.error:
            name = None
        sal = f.find_sal()
        path = None
        if sal.symtab is not None:
            try:
                path = sal.symtab.fullname()
            except Exception:
                path = sal.symtab.filename
        out.append({"pc": hex(pc), "function": name, "file": path,
                    "line": sal.line or None, "object": _object_of(pc)})
        try:
            f = f.older()
        except gdb.error:
            break
    return out

def _dump():
    result = {"mode": _memcycle_mode}
    inf = gdb.selected_inferior()
    if inf.pid == 0:
        try:
            result["exit_code"] = int(gdb.parse_and_eval("$_exitcode"))
        except Exception:
            result["exit_code"] = None
        result["threads"] = []
    else:
        try:
            result["signal"] = int(gdb.parse_and_eval("$_siginfo.si_signo"))
        except Exception:
            result["signal"] = None
        current = gdb.selected_thread()
        threads = [current] if _memcycle_mode == "crash" else sorted(
            inf.threads(), key=lambda t: t.num)
        dumped = []
        for t in threads:
            t.switch()
            dumped.append({"num": t.num, "name": t.name, "lwp": t.ptid[1],
                           "current": t == current, "frames": _frames(_memcycle_limit)})
        if current is not None:
            current.switch()
        result["threads"] = dumped
    with open(_memcycle_out, "w") as fh:
        json.dump(result, fh)

_dump()
"""

_GDB_SETUP = (
    "set pagination off",
    "set confirm off",
    "set print thread-events off",
    "set print inferior-events off",
    "set debuginfod enabled off",
    # the replay should see the same address-space randomisation as the original run
    "set disable-randomization off",
    "handle SIGPIPE SIGUSR1 SIGUSR2 SIGCHLD SIGALRM SIGWINCH nostop noprint pass",
)


@dataclass
class NativeStacks:
    """What gdb gave: per thread, frames (innermost first); or why nothing."""

    threads: list[dict[str, Any]] = field(default_factory=list)
    signal: int | None = None
    absent: str | None = None  # the reason no stack could be had
    method: str = ""  # "gdb-replay" | "gdb-attach"

    def crashing_frames(self) -> list[dict[str, Any]]:
        cur = next((t for t in self.threads if t.get("current")), None)
        return list((cur or (self.threads[0] if self.threads else {})).get("frames", []))


GdbLookup = Callable[[], str | None]


def find_gdb() -> str | None:
    """The gdb to use: `MEMCYCLE_GDB` (a path, or `none` to switch native stacks off), else PATH."""
    override = os.environ.get("MEMCYCLE_GDB")
    if override is not None:
        if override.strip().lower() in ("", "none", "off", "0"):
            return None
        return override if os.access(override, os.X_OK) else None
    return shutil.which("gdb")


def _gdb_missing_reason() -> str:
    override = os.environ.get("MEMCYCLE_GDB")
    if override is not None:
        if override.strip().lower() in ("", "none", "off", "0"):
            return f"native stacks switched off (MEMCYCLE_GDB={override!r})"
        return f"gdb not found at MEMCYCLE_GDB={override!r}"
    return "gdb not found on PATH (install gdb to get native stacks)"


# -- where a frame's code lives -------------------------------------------------------------
_SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")
_SYSTEM_NAMES = re.compile(
    r"^(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s|libffi|libz|"
    r"libgomp|libasan|libubsan|liblsan|libtsan|libutil|libcrypt|libexpat|libssl|libcrypto|"
    r"liblzma|libbz2|libuuid|libsqlite3|libreadline|libncurses[w]?|libtinfo|vgpreload_[^/]*|"
    r"linux-vdso)([.-][^/]*)?\.so[^/]*$"
)
# packages whose native code is the harness's own machinery, not the engine under test
_INFRA_PACKAGES = ("numpy", "numba", "llvmlite", "memray", "psutil", "_ctypes")


def _python_dirs() -> tuple[str, ...]:
    dirs = {
        sysconfig.get_path("stdlib") or "",
        sysconfig.get_path("platstdlib") or "",
        str(Path(sys.base_prefix) / "lib"),
        str(Path(sys.executable).resolve().parent),
    }
    return tuple(sorted(d.rstrip("/") + "/" for d in dirs if d))


def frame_origin(obj: str | None, roots: Sequence[str]) -> str:
    """engine | python | system | jit for a frame whose code is in `obj` (None: no object)."""
    if not obj or obj.startswith("["):  # no object file, or [stack] / [heap] / [vdso]
        return "jit"
    real = os.path.realpath(obj)
    for r in roots:
        rr = os.path.realpath(r)
        if real == rr or (os.path.isdir(rr) and real.startswith(rr.rstrip("/") + "/")):
            return "engine"
    base = os.path.basename(real)
    if base.startswith(("python", "libpython")) or real == os.path.realpath(sys.executable):
        return "python"
    parts = Path(real).parts
    if "site-packages" in parts or "dist-packages" in parts:
        i = max(
            (parts.index(p) for p in ("site-packages", "dist-packages") if p in parts), default=0
        )
        top = parts[i + 1] if i + 1 < len(parts) else ""
        top = top.split(".")[0]
        if top in _INFRA_PACKAGES:  # numpy.libs etc. split to numpy
            return "python"
        return "engine"
    if "lib-dynload" in parts or real.startswith(_python_dirs()):
        return "python"
    if _SYSTEM_NAMES.match(base) or real.startswith(_SYSTEM_DIRS):
        return "system"
    return "engine"


def annotate(frames: list[dict[str, Any]], roots: Sequence[str]) -> list[dict[str, Any]]:
    """Add `index`, `origin` and `engine` to each frame (innermost first)."""
    out = []
    for i, f in enumerate(frames):
        origin = frame_origin(f.get("object"), roots)
        out.append({"index": i, **f, "origin": origin, "engine": origin == "engine"})
    return out


def format_frame(f: dict[str, Any]) -> str:
    """'#3 subject_clear at /src/subject.c:71 [engine: libsubject.so]'."""
    where = f"{f['file']}:{f['line']}" if f.get("file") and f.get("line") else None
    obj = os.path.basename(f["object"]) if f.get("object") else "no object"
    text = f"#{f.get('index', '?')} {f.get('function') or '??'}"
    if where:
        text += f" at {where}"
    return f"{text} [{f.get('origin', '?')}: {obj}]"


# -- running gdb ----------------------------------------------------------------------------
def _run_gdb(
    args: list[str],
    mode: str,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    gdb: str,
) -> tuple[dict[str, Any] | None, str]:
    """Run gdb with the frame-dumping script; (parsed JSON or None, gdb's output tail)."""
    with tempfile.TemporaryDirectory(prefix="memcycle-gdb-") as tmp:
        script = Path(tmp) / "dump.py"
        script.write_text(_GDB_SCRIPT, encoding="utf-8")
        out = Path(tmp) / "stacks.json"
        log = Path(tmp) / "gdb.log"
        cmd = [gdb, "-nx", "-q", "-batch"]
        for c in _GDB_SETUP:
            cmd += ["-ex", c]
        pre, post = args[: args.index("--")], args[args.index("--") + 1 :]
        cmd += pre
        cmd += ["-ex", f"python _memcycle_out = {str(out)!r}"]
        cmd += ["-ex", f"python _memcycle_mode = {mode!r}"]
        cmd += ["-ex", f"python _memcycle_limit = {MAX_FRAMES}"]
        cmd += ["-x", str(script), *post]
        with open(log, "wb") as fh:
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=tuple(pass_fds),
                    start_new_session=True,
                )
            except OSError as exc:
                return None, f"could not start gdb: {exc}"
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None, f"gdb did not finish within {timeout:.0f} s"
        tail = log.read_bytes()[-3000:].decode("utf-8", "replace")
        if not out.exists():
            return None, tail
        try:
            return json.loads(out.read_text(encoding="utf-8")), tail
        except json.JSONDecodeError:
            return None, tail


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def replay_crash(
    command: list[str],
    *,
    env: dict[str, str] | None,
    roots: Sequence[str],
    timeout: float,
    pass_fds: Sequence[int] = (),
    lookup: GdbLookup = find_gdb,
) -> NativeStacks:
    """Run `command` (the child, as it crashed) under gdb; the crashing thread's stack."""
    gdb = lookup()
    if gdb is None:
        return NativeStacks(absent=_gdb_missing_reason(), method="gdb-replay")
    # under gdb the child's parent is gdb, not memcycle: without this the replay would take
    # itself for an orphan (child_lifeline.die_with_parent) and leave before it could crash again
    env = {k: v for k, v in (env if env is not None else os.environ).items()}
    env.pop(PARENT_ENV, None)
    # `run` is given before the script, so the script sees the stopped (or exited) inferior
    data, tail = _run_gdb(
        ["-ex", "run", "--", "--args", *command],
        "crash",
        timeout=timeout,
        env=env,
        pass_fds=pass_fds,
        gdb=gdb,
    )
    if data is None:
        return NativeStacks(absent=f"gdb replay failed: {_last_line(tail)}", method="gdb-replay")
    if not data.get("threads"):
        code = data.get("exit_code")
        return NativeStacks(
            absent=(
                "the replay under gdb did not crash again"
                + (f" (it exited with code {code})" if code is not None else "")
                + "; the crash depends on something that differs between runs"
            ),
            method="gdb-replay",
        )
    threads = [{**t, "frames": annotate(t["frames"], roots)} for t in data["threads"]]
    if not any(t["frames"] for t in threads):
        return NativeStacks(absent="gdb stopped the replay but could not unwind it")
    return NativeStacks(threads=threads, signal=data.get("signal"), method="gdb-replay")


def attach_all_threads(
    pid: int,
    *,
    roots: Sequence[str],
    timeout: float = ATTACH_TIMEOUT,
    lookup: GdbLookup = find_gdb,
    valgrind_program: str | None = None,
) -> NativeStacks:
    """Attach to a live process; every thread's stack (gdb detaches when done).

    `valgrind_program`: the process is that program running under valgrind; gdb goes
    through valgrind's gdbserver (vgdb), see the module doc."""
    gdb = lookup()
    method = "gdb-attach" if valgrind_program is None else "gdb-vgdb"
    if gdb is None:
        return NativeStacks(absent=_gdb_missing_reason(), method=method)
    if valgrind_program is None:
        args = ["-p", str(pid), "--"]
    else:
        vgdb = shutil.which("vgdb")
        if vgdb is None:
            return NativeStacks(
                absent="vgdb (valgrind's gdbserver relay) is not on PATH", method=method
            )
        args = [valgrind_program, "-ex", f"target remote | {vgdb} --pid={pid}", "--"]
    data, tail = _run_gdb(args, "all", timeout=timeout, gdb=gdb)
    if data is None or not data.get("threads"):
        reason = _last_line(tail)
        if "ptrace" in tail.lower() or "not permitted" in tail.lower():
            reason += (
                " (ptrace refused: check /proc/sys/kernel/yama/ptrace_scope and container "
                "seccomp/CAP_SYS_PTRACE)"
            )
        return NativeStacks(absent=f"gdb could not attach to pid {pid}: {reason}", method=method)
    threads = [{**t, "frames": annotate(t["frames"], roots)} for t in data["threads"]]
    return NativeStacks(threads=threads, method=method)
