"""Which tests execute each line of a target's files, so a mutant runs only the tests that can see it.

Built once per target on the unmutated tree (and again whenever a target file or a test file
changes): the target's tests run under coverage.py with one context per test, switched by the
pytest hooks below (like pytest-cov's `--cov-context=test`). A line run outside a test's own
phases (at import or collection, in a fixture shared between tests, in the teardown at a module
boundary where shared fixtures end) is marked `SHARED`: a mutant there runs the whole list.
Tests that start a process (the runner's `python -m memcycle.child`, pytest in pytest, xdist
workers) are recorded too. Each Python child runs under coverage as well (one data file per pid,
saved at exit) and writes, through a `sitecustomize` put on its PYTHONPATH, a line when it starts
and one per memcycle module it imports, as it imports it (before that module's code runs, so a
child killed by a signal still tells). A test runs with a mutant when one of its children ran the
mutated line, or died without saving its coverage (killed) after importing the mutated file; and
with every mutant when one of its processes left no record at all (a fork, a program that is
not Python, an environment cleared).

    python mutation/covermap.py OUT.json --files harness/oracle.py -- tests/test_oracle.py ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest  # before coverage starts: only the target files are measured

SHARED = "<shared>"  # run outside one test's own phases: a mutant there runs every test

# Programs that never run Python code: pytest-benchmark asks git and hg about the checkout,
# `platform` asks `file` and `uname`, matplotlib's font cache `fc-list`, ctypes.util `ldconfig`
# and the C compiler, in every (inner) pytest session
NEVER_PYTHON = frozenset({"git", "hg", "file", "uname", "fc-list", "ldconfig", "gcc", "cc", "ld"})

# Loaded by every Python child of the run (PYTHONPATH): one line when it starts, one per memcycle
# module it imports, appended to the log (O_APPEND) at import, before the module's code runs.
CHILD_HOOK = """\
import os, sys
_log, _test = os.environ.get("COVERMAP_SPAWN_LOG"), os.environ.get("COVERMAP_TEST", "")
_package = os.environ.get("COVERMAP_PACKAGE", "memcycle")
def _write(kind, name=""):
    fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{kind}\\t{_test}\\t{os.getpid()}\\t{name}\\n".encode())
    finally:
        os.close(fd)
def _hook(event, args):
    if event == "import" and str(args[0]).split(".")[0] == _package:
        _write("import", args[0])
if _log:
    _write("start")
    sys.addaudithook(_hook)
"""


class Recorder:
    """A pytest plugin switching coverage's context to the running test's node id."""

    def __init__(self, cov: Any) -> None:
        self.cov = cov
        self.current = SHARED
        self.order: list[str] = []
        self.spawns: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.spawned_outside = False
        cov.switch_context(SHARED)

    def switch(self, context: str) -> None:
        self.current = context
        os.environ["COVERMAP_TEST"] = context  # the children's record names the test
        self.cov.switch_context(context)

    def spawned(self, python: bool = True) -> None:
        """Outside a test only a Python process counts (pytest-benchmark runs `git` at startup);
        inside one, any process does."""
        if self.current != SHARED:
            self.spawns[self.current] = self.spawns.get(self.current, 0) + 1
        elif python:
            self.spawned_outside = True

    def pytest_collection_finish(self, session: Any) -> None:
        self.order = [item.nodeid for item in session.items]

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Generator[None, Any, Any]:
        self.switch(item.nodeid)
        started = time.perf_counter()
        try:
            return (yield)
        finally:
            self.seconds[item.nodeid] = time.perf_counter() - started
            self.switch(SHARED)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Generator[None, Any, Any]:
        # at a module or class boundary pytest also ends the fixtures shared by the tests there
        if nextitem is None or nextitem.parent is not item.parent:
            self.switch(SHARED)
        try:
            return (yield)
        finally:
            self.switch(item.nodeid)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
        previous = self.current
        if fixturedef.scope != "function":
            self.switch(SHARED)
        try:
            return (yield)
        finally:
            self.switch(previous)


def _watch_spawns(recorder: Recorder) -> None:
    """Note the running test whenever a process is started (subprocess, fork, spawn, system)."""
    original = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    inside = threading.local()  # Popen may itself call os.posix_spawn: count it once

    def execute_child(self: Any, args: Any, executable: Any, *rest: Any, **kwargs: Any) -> Any:
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        program = os.fsdecode(executable or (argv[0] if argv else ""))
        if Path(program).name not in NEVER_PYTHON:
            recorder.spawned(python="python" in Path(program).name or program == sys.executable)
        inside.depth = getattr(inside, "depth", 0) + 1
        try:
            return original(self, args, executable, *rest, **kwargs)
        finally:
            inside.depth -= 1

    subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        low = getattr(os, name, None)
        if low is None:
            continue

        def wrapped(*args: Any, _low: Any = low, **kwargs: Any) -> Any:
            if not getattr(inside, "depth", 0):
                recorder.spawned()
            return _low(*args, **kwargs)

        setattr(os, name, wrapped)


def build(files: list[str], pytest_args: list[str], root: Path) -> dict[str, Any]:
    """Run the tests once under coverage; return the map (see `select`)."""
    import coverage

    absolute = [str((root / f).resolve()) for f in files]
    hook_dir = Path(tempfile.mkdtemp(prefix="covermap-"))
    (hook_dir / "sitecustomize.py").write_text(CHILD_HOOK)
    spawn_log = hook_dir / "spawns.log"
    os.environ["COVERMAP_SPAWN_LOG"] = str(spawn_log)
    # coverage in every Python child too (coverage's .pth starts it under COVERAGE_PROCESS_START);
    # one data file per process, named by its pid, saved at exit (os._exit and SIGTERM included)
    data_dir = hook_dir / "children"
    data_dir.mkdir()
    include = "".join(f"\n    {a}" for a in absolute)
    rc_file = hook_dir / "child.coveragerc"
    rc_file.write_text(
        f"[run]\ninclude ={include}\ndata_file = {data_dir / 'cov'}\nparallel = true\n"
        "sigterm = true\npatch = _exit\n"
    )
    os.environ["COVERAGE_PROCESS_START"] = str(rc_file)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(hook_dir), os.environ.get("PYTHONPATH", "")) if p
    )
    cov = coverage.Coverage(data_file=None, include=absolute, config_file=False)
    cov.start()
    recorder = Recorder(cov)
    _watch_spawns(recorder)
    rc = pytest.main([*pytest_args, "-p", "no:cacheprovider", "-n", "0", "-q"], plugins=[recorder])
    cov.stop()
    spawners = _spawners(
        recorder.spawns, spawn_log, data_dir, dict(zip(absolute, files, strict=True))
    )
    shutil.rmtree(hook_dir, ignore_errors=True)
    data = cov.get_data()
    lines: dict[str, dict[str, list[str]]] = {}
    for rel, path in zip(files, absolute, strict=True):
        by_line = data.contexts_by_lineno(path)
        lines[rel] = {str(n): sorted(set(c)) for n, c in sorted(by_line.items())}
    third_party = sorted(
        name
        for name, module in list(sys.modules.items())
        if _third_party(name, getattr(module, "__file__", None), root)
    )
    return {
        "rc": int(rc),
        "tests": recorder.order,
        "seconds": {t: round(recorder.seconds.get(t, 0.0), 4) for t in recorder.order},
        "spawners": spawners,
        "spawned_outside": recorder.spawned_outside,
        "lines": lines,
        "modules": third_party,
    }


def _child_lines(data_dir: Path, rel_of: dict[str, str]) -> dict[int, dict[str, set[int]]]:
    """pid -> target file -> lines, from the coverage data each Python child saved at its exit."""
    from coverage import CoverageData

    out: dict[int, dict[str, set[int]]] = {}
    for path in data_dir.glob("cov.*"):
        found = re.search(r"\.pid(\d+)\.", path.name)
        if not found:
            continue
        data = CoverageData(basename=str(path))
        data.read()
        lines = out.setdefault(int(found[1]), {})
        for absolute, rel in rel_of.items():
            lines.setdefault(rel, set()).update(data.lines(absolute) or ())
    return out


def _spawners(
    spawns: dict[str, int], log: Path, data_dir: Path, rel_of: dict[str, str]
) -> dict[str, dict[str, Any] | None]:
    """Each test that started processes, with what its children did to the target files, child
    by child: `lines` the lines run by the children that saved their coverage, `unsaved_imports`
    the files imported by those that died first (a signal). None when a process left no record
    at all: the test runs with every mutant."""
    pids: dict[str, list[int]] = {}
    imported: dict[int, set[str]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, test, pid, name = [*line.split("\t"), "", "", ""][:4]
        if kind == "start":
            pids.setdefault(test, []).append(int(pid))
        elif kind == "import":
            imported.setdefault(int(pid), set()).add(name)
    ran = _child_lines(data_dir, rel_of)
    out: dict[str, dict[str, Any] | None] = {}
    for test, count in spawns.items():
        if len(pids.get(test, ())) < count:
            out[test] = None
            continue
        lines: dict[str, set[int]] = {}
        unsaved: set[str] = set()
        for pid in pids[test]:
            if pid in ran:
                for rel, numbers in ran[pid].items():
                    lines.setdefault(rel, set()).update(numbers)
                continue
            files = _files_of(imported.get(pid, set()), rel_of)
            if files is None:
                out[test] = None
                break
            unsaved |= files
        else:
            out[test] = {
                "lines": {rel: sorted(ns) for rel, ns in sorted(lines.items()) if ns},
                "unsaved_imports": sorted(unsaved),
            }
    return out


def _files_of(names: set[str], rel_of: dict[str, str]) -> set[str] | None:
    """The target files among these imported modules; None if one cannot be found here."""
    import importlib.util

    files = set()
    for name in names:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module else None
        if origin is None:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            origin = spec.origin if spec else None
        if origin is None:  # a memcycle module not found here: assume the worst
            return None
        rel = rel_of.get(str(Path(origin).resolve()))
        if rel:
            files.add(rel)
    return files


def _third_party(name: str, file: str | None, root: Path) -> bool:
    """A module the fork server may import ahead: installed code, never memcycle nor the tests."""
    top = name.split(".")[0]
    if "$" in name:
        return False
    if top in {"memcycle", "tests", "conftest", "__main__", "mutation", "covermap", "coverage"}:
        return False
    if top.startswith("__editable__"):
        return False
    return file is None or not is_project_file(file, root)


def is_project_file(file: str, root: Path) -> bool:
    """In the checkout (memcycle, its tests, this tool), not an installed package: a virtual
    environment may live inside the checkout."""
    path = Path(file).resolve()
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return path.is_relative_to(root) and not any(path.is_relative_to(p) for p in prefixes)


def select(cmap: dict[str, Any], changed: dict[str, list[int]]) -> list[str] | None:
    """The tests to run against a mutant changing these lines (first lines of their statements,
    as coverage records them), quickest first; None means the whole list (a line no test
    runs in this process, or one run at import, collection or in a shared fixture)."""
    chosen: set[str] = set()
    for rel, numbers in changed.items():
        covered = cmap["lines"].get(rel)
        if covered is None:
            return None
        for n in numbers:
            contexts = covered.get(str(n))
            if not contexts or SHARED in contexts or "" in contexts:
                return None
            chosen.update(contexts)
    if cmap["spawned_outside"]:
        return None
    for test, children in cmap["spawners"].items():  # its children may run the mutant
        if (
            children is None
            or any(rel in children["unsaved_imports"] for rel in changed)
            or any(n in children["lines"].get(rel, ()) for rel, ns in changed.items() for n in ns)
        ):
            chosen.add(test)
    known = set(cmap["tests"])
    if not chosen <= known:  # a context that is not a test of this run: never guess
        return None
    # quickest first: a mutant is killed by its first failing test (-x), so a cheap killer found
    # early saves the rest; a survivor runs them all, in whatever order
    seconds = cmap.get("seconds", {})
    return sorted((t for t in cmap["tests"] if t in chosen), key=lambda t: seconds.get(t, 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", required=True, help="comma-separated target files")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    pytest_args = argv[cut + 1 :]
    sys.path[0] = str(args.root.resolve())  # as `python -m pytest` from the root has it
    cmap = build(args.files.split(","), pytest_args, args.root.resolve())
    args.out.write_text(json.dumps(cmap))
    return cmap["rc"]


if __name__ == "__main__":
    sys.exit(main())
