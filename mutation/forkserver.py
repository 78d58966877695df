"""A warm test runner for mutation runs: imports the heavy third-party modules once, forks per mutant.

A fresh `python -m pytest` spends about 1.2 s importing hypothesis, numpy, numba, pytest and
their plugins before collecting anything. This server imports those once (the list comes from the
coverage map's run of the same tests) but never a `memcycle` module nor a test module, and never
configures pytest (the memcycle pytest11 plugin imports memcycle). For each request of
`client.py` it forks a child that runs `pytest.main` against the sources as they are on disk now,
so the child imports the mutant, and its own children (`python -m memcycle.child`) do too.

Soundness, kept here: no bytecode is written (`sys.dont_write_bytecode` and the environment), and
the target files' cached bytecode is removed at start, so a same-size mutant (`<` made `>`) in
the same second as its original can never be read from a stale `.pyc`; `sys.modules` is checked
to hold no memcycle module before the first fork; when the client dies (cosmic-ray's timeout
kills it) or the server's own timeout passes, the child's whole process group is killed.
Selection (covermap.py): a mutant runs the tests that execute its line, or the whole list.

    python mutation/forkserver.py SOCKET --root . --files F[,F...] [--map MAP] -- PYTEST_ARGS
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import covermap
import pytest

# every run: cosmic-ray's own flags for the plain command, and silence for the plugins already
# imported here (pytest cannot assertion-rewrite a module imported before it starts)
BASE_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-n", "0"]
QUIET_REWRITE = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]


def changed_lines(original: str, now: str) -> list[int]:
    """Line numbers of `original` that `now` replaces or deletes (an insertion: both neighbours)."""
    out: list[int] = []
    a, b = original.splitlines(), now.splitlines()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        out.extend(range(i1 + 1, i2 + 1) if i2 > i1 else (i1, i1 + 1))
    return out


def first_lines(source: str) -> dict[int, int]:
    """Each line's statement first line, as coverage records executed lines."""
    from coverage.parser import PythonParser

    parser = PythonParser(text=source)
    parser.parse_source()
    return {n: parser.first_line(n) for n in range(1, source.count("\n") + 2)}


def preload(modules: list[str]) -> int:
    """Import the third-party modules the tests use; return how many imported."""
    done = 0
    for name in sorted(modules):
        try:
            importlib.import_module(name)
            done += 1
        except BaseException:  # a module that will not import here is left to the child
            continue
    return done


def project_modules(root: Path) -> list[str]:
    """Modules in sys.modules that are the project's own code (must be none before a fork)."""
    own = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        top = name.split(".")[0]
        if top in {"memcycle", "tests", "conftest"} or (
            file
            and covermap.is_project_file(file, root)
            and not Path(file).resolve().is_relative_to(root / "mutation")
        ):
            own.append(name)
    return own


def drop_bytecode(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
            with contextlib.suppress(OSError):
                pyc.unlink()


class QuickestFirst:
    """Reorders the collected items, quickest (by the map's run) first, for the whole-list run:
    the files are collected as the plain command does (a mutant that changes what is collected
    still changes it here), only the order differs; a test the map never saw goes first. The
    target's guard tests (`first`) go before all of them, whatever their time: with -x they
    stop a mutant that would harm the machine before any other test can (run.py, isolation)."""

    def __init__(self, seconds: dict[str, float], first: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.first = first

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        rank = {nodeid: n for n, nodeid in enumerate(self.first)}
        items.sort(
            key=lambda item: (
                rank.get(item.nodeid, len(rank)),
                self.seconds.get(item.nodeid, 0.0),
            )
        )


class Server:
    def __init__(
        self,
        root: Path,
        files: list[str],
        pytest_args: list[str],
        cmap: dict[str, Any] | None,
        timeout: float,
        log: Any = sys.stderr,
        first: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.first = first
        self.files = files
        self.pytest_args = pytest_args
        self.cmap = cmap
        self.timeout = timeout
        self.log = log
        self.running: int | None = None  # the child now running, killed if the server ends
        self.originals = {f: (root / f).read_text() for f in files}
        self.statement_of = {f: first_lines(src) for f, src in self.originals.items()}

    def plan(self) -> tuple[list[str], str]:
        """The pytest arguments for the files as they are now, and a one-line note why."""
        changed: dict[str, list[int]] = {}
        for rel, original in self.originals.items():
            now = (self.root / rel).read_text()
            if now != original:
                lines = changed_lines(original, now)
                changed[rel] = sorted({self.statement_of[rel].get(n, n) for n in lines})
        where = " ".join(f"{f}:{','.join(map(str, ns))}" for f, ns in changed.items()) or "none"
        chosen = covermap.select(self.cmap, changed) if self.cmap and changed else None
        if not chosen:
            why = "no coverage map" if not self.cmap else "whole list, quickest first (fallback)"
            return [*BASE_ARGS, *QUIET_REWRITE, *self.pytest_args], f"changed {where}: {why}"
        note = f"changed {where}: {len(chosen)} of {len(self.cmap['tests'])} tests"  # type: ignore[index]
        guards = [t for t in self.first if t not in chosen]
        return [*BASE_ARGS, *QUIET_REWRITE, *guards, *chosen], note

    def serve(self, listener: socket.socket) -> None:
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    self.handle(listener, conn)
                except Exception:  # one bad request must not end the session
                    traceback.print_exc(file=self.log)

    def handle(self, listener: socket.socket, conn: socket.socket) -> None:
        first, fds, _, _ = socket.recv_fds(conn, 1, 2)
        data = first
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("the client left before its request ended")
            data += chunk
        request = json.loads(data)
        args, note = self.plan()
        started = time.monotonic()
        if threading.active_count() != 1:
            print("warning: forking with threads running", file=self.log)
        pid = os.fork()
        if pid == 0:
            seconds = self.cmap.get("seconds", {}) if self.cmap else {}
            run_child(listener, conn, fds, request, args, note, seconds, self.first)
        for fd in fds:
            os.close(fd)
        self.running = pid  # left set if the wait is cut short: main() then kills the child
        rc = self.wait(pid, conn)
        self.running = None
        seconds = time.monotonic() - started
        print(f"{time.strftime('%H:%M:%S')} rc={rc} {seconds:.2f}s {note}", file=self.log)
        self.log.flush()
        if rc is not None:
            conn.sendall(json.dumps({"rc": rc}).encode() + b"\n")

    def wait(self, pid: int, conn: socket.socket) -> int | None:
        """The child's exit code; None (child killed) when the client went away first."""
        pidfd = os.pidfd_open(pid)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    kill_group(pid)
                    return 124
                ready, _, _ = select.select([pidfd, conn], [], [], left)
                if pidfd in ready:
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    return code if code >= 0 else 128 - code
                if conn in ready and not conn.recv(1):
                    kill_group(pid)
                    return None
        finally:
            os.close(pidfd)


def kill_group(pid: int) -> None:
    """Kill the child and every process of its group (it leads its own session), then reap it."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def run_child(
    listener: socket.socket,
    conn: socket.socket,
    fds: list[int],
    request: dict[str, Any],
    args: list[str],
    note: str,
    seconds: dict[str, float] | None = None,
    first: tuple[str, ...] = (),
) -> None:
    """In the forked child: become the client's test process, run pytest, exit with its code."""
    code = 70
    try:
        os.setsid()
        listener.close()
        conn.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in (devnull, *fds):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "numpy" in sys.modules:  # a fresh process seeds numpy's global generator anew
            sys.modules["numpy"].random.seed()
        print(f"mutation fork server: {note}", flush=True)
        import pytest

        sys.argv = [str(Path(pytest.__file__).parent / "__main__.py"), *args]
        plugins = [QuickestFirst(seconds or {}, first)] if seconds or first else []
        code = int(pytest.main(args, plugins=plugins))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the child must always exit with a code
        traceback.print_exc()
        code = 70
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("socket", type=Path)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--files", required=True, help="comma-separated target files")
    parser.add_argument("--map", type=Path, help="the target's coverage map (covermap.py)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--preload", default="", help="comma-separated modules, without a map")
    parser.add_argument("--first", default="", help="comma-separated guard test ids, run first")
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    root = args.root.resolve()
    sys.path[0] = str(root)  # as `python -m pytest` run from the root has it
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    files = args.files.split(",")
    drop_bytecode(root, files)
    cmap = json.loads(args.map.read_text()) if args.map else None
    modules = cmap["modules"] if cmap else [m for m in args.preload.split(",") if m]
    loaded = preload(modules)
    own = project_modules(root)
    if own:
        print(f"error: the server imported project modules: {', '.join(own[:5])}", file=sys.stderr)
        return 1
    args.socket.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(args.socket))
    listener.listen(8)
    first = tuple(t for t in args.first.split(",") if t)
    server = Server(root, files, argv[cut + 1 :], cmap, args.timeout, first=first)
    print(f"ready: {loaded} modules imported, {len(sys.modules)} in sys.modules", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run.py's stop: clean up below
    try:
        server.serve(listener)
    except KeyboardInterrupt:
        return 130
    finally:
        if server.running is not None:  # Ctrl-C or a stop mid-mutant: the child goes too
            kill_group(server.running)
        listener.close()
        args.socket.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
