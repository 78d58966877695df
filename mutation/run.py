"""Mutation testing of memcycle's judging code with cosmic-ray, one module at a time.

Why cosmic-ray: it mutates the source file *in place* and runs the test command as a fresh
process, so the mutant is exactly the code the editable install imports as `memcycle.*`, in the
pytest process and in every child process the runner starts. (mutmut 3 copies the sources into
`mutants/` and names mutants after the file path, `harness.checks`, which the `memcycle` package-dir
mapping never imports, and the runner's children would not see the copy at all.)

Usage (from the repository root, in a checkout you are not editing while it runs, because the file
under test is rewritten on disk for each mutant and restored afterwards):

    python mutation/run.py --list
    python mutation/run.py oracle            # init + scope + run + summary for one module
    python mutation/run.py oracle --survivors  # the surviving mutants' diffs, from the last run
    python mutation/run.py oracle --recheck    # today's tests against the last run's survivors
    python mutation/run.py oracle --sample 45  # a seeded random sample, on a loaded machine

See docs/mutation.md for the kill rates and the equivalent mutants.

Sessions (`mutation/sessions/<module>.sqlite`) are kept so a run can be resumed (`--resume`).
One worker, one module at a time: the tests start engines in child processes of their own.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from equivalents import Survivor, entry_for, judge_survivors, load_equivalents

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ROOT / "mutation" / "sessions"

# One mutant per decision site, in the spirit of mutmut's operator set: boundaries (< vs <=),
# equality and membership flipped, and/or swapped, conditions negated, constants moved by one,
# loops skipped, exception handlers disarmed. The all-to-all arithmetic and comparison swaps and
# the variable replacers of cosmic-ray multiply the count by ten without finding other gaps.
KEEP_OPERATORS = (
    r"core/ReplaceComparisonOperator_(Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Eq_NotEq|NotEq_Eq"
    r"|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)$",
    r"core/ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Mul|BitOr_BitAnd"
    r"|BitAnd_BitOr|LShift_RShift|Mod_FloorDiv)$",
    r"core/ReplaceUnaryOperator_(USub_UAdd|Delete_Not)$",
    r"core/(AddNot|ReplaceAndWithOr|ReplaceOrWithAnd|ReplaceTrueWithFalse|ReplaceFalseWithTrue"
    r"|ReplaceBreakWithContinue|ReplaceContinueWithBreak|ExceptionReplacer|NumberReplacer"
    r"|ZeroIterationForLoop|RemoveDecorator)$",
)


@dataclass(frozen=True)
class Target:
    """A module under mutation, the fast tests that cover it, and (optionally) which of its
    functions and classes are in scope (qualified names, `Class` or `Class.method`, in `path`).
    `also`: further files of the same module, mutated whole (a module split by job)."""

    path: str
    tests: tuple[str, ...]
    scope: tuple[str, ...] = field(default=())
    timeout: float = 120.0
    also: tuple[str, ...] = field(default=())
    first: tuple[str, ...] = field(default=())  # guard tests: run first for every mutant (-x)

    @property
    def files(self) -> tuple[str, ...]:
        return (self.path, *self.also)


TARGETS: dict[str, Target] = {
    "oracle": Target(
        "harness/oracle.py",
        ("tests/test_oracle.py", "tests/test_answer_protocol.py", "tests/test_oracle_mutants.py"),
    ),
    "scenario": Target(
        # scenario.py re-exports these: the validation, the data model, the needs, discovery
        "harness/scenario_parse.py",
        ("tests/test_scenario.py", "tests/test_scenario_mutants.py"),
        also=(
            "harness/scenario_fields.py",
            "harness/scenario_model.py",
            "harness/scenario_needs.py",
            "harness/scenario_files.py",
        ),
    ),
    "gate": Target("harness/gate.py", ("tests/test_gate.py", "tests/test_gate_mutants.py")),
    "alloc": Target(
        "refimpl/alloc.py",
        ("tests/test_alloc.py", "tests/test_alloc_mutants.py"),
    ),
    # the plugin is a package (one module per job): its outcome logic, option plumbing and
    # fixture are three targets, each with the scope it had as one module
    "pytest_plugin": Target(
        "harness/pytest_plugin/items.py",
        ("tests/test_pytest_plugin.py", "tests/test_pytest_plugin_mutants.py"),
        scope=("ScenarioItem", "_is_user_error", "_record_of", "pytest_runtest_makereport"),
        timeout=300.0,
    ),
    "pytest_plugin_options": Target(
        "harness/pytest_plugin/options.py",
        ("tests/test_pytest_plugin.py", "tests/test_pytest_plugin_mutants.py"),
        scope=("check_options", "engine_options"),
        timeout=300.0,
    ),
    "pytest_plugin_fixture": Target(
        "harness/pytest_plugin/fixture.py",
        ("tests/test_pytest_plugin.py", "tests/test_pytest_plugin_mutants.py"),
        scope=("memcycle_run",),
        timeout=300.0,
    ),
    "database": Target(
        "refimpl/database.py",
        (
            "tests/test_lifecycle.py",
            "tests/test_database.py",
            "tests/test_faults.py",
            "tests/test_database_mutants.py",
        ),
        scope=(
            "_serialized",
            "Database.__init__",
            "Database._reset_slots",
            "Database.initialize",
            "Database.clear",
            "Database.close",
            "Database.__enter__",
            "Database.__exit__",
            "Database.__del__",
            "Database._destroy_graphs",
            "Database._release_slots",
            "Database.owned_blocks",
            "Database._destroy_in_place",
            "Database._check_open",
        ),
        timeout=180.0,
    ),
    "checks": Target(
        # checks.py re-exports these: the judgement, a dead child, the steps, leaks, growth, skips
        "harness/checks_judge.py",
        (
            "tests/test_checks.py",
            "tests/test_small_leaks.py",
            "tests/test_growth_at_reset.py",
            "tests/test_evidence.py",
            "tests/test_checks_mutants.py",
        ),
        also=(
            "harness/checks_exit.py",
            "harness/checks_steps.py",
            "harness/checks_leaks.py",
            "harness/checks_growth.py",
            "harness/checks_skips.py",
        ),
    ),
    "isolation": Target(
        "harness/isolation.py",
        (
            # first: with -x its first test stops a mutant that takes every process for a holder
            # of the run's token before any kill_run can SIGKILL them (test_isolation_mutants.py)
            "tests/test_isolation_mutants.py",
            "tests/test_isolation.py",
            "tests/test_protocol.py",
        ),
        timeout=300.0,
        first=(
            "tests/test_isolation_mutants.py::"
            "test_only_the_processes_that_carry_the_runs_token_are_its_holders",
        ),
    ),
    "runner": Target(
        "harness/runner.py",
        # test_end_to_end.py (real children, 131 s a run) is left out: the plumbing is checked on
        # a recorder standing in for the child (test_runner_mutants.py)
        ("tests/test_runner_mutants.py", "tests/test_protocol.py"),  # the fast one first (-x)
        also=("harness/batch.py",),  # run_many and its job pool, moved out of runner.py
        timeout=120.0,
    ),
}


def test_files(target: Target) -> list[str]:
    return [t for t in target.tests if (ROOT / t).exists()]


def test_command(target: Target) -> str:
    """The plain command: a fresh pytest of the target's whole test list for each mutant."""
    return (
        f"{sys.executable} -m pytest -x -q -p no:cacheprovider -n 0 {' '.join(test_files(target))}"
    )


def client_command(sock: Path) -> str:
    """The fast command: a stdlib-only client asking the fork server (forkserver.py)."""
    return f"{sys.executable} -S -I {ROOT / 'mutation' / 'client.py'} {sock}"


def fingerprint(target: Target) -> str:
    """What the coverage map depends on: the target's files, its tests, the test configuration."""
    digest = hashlib.sha256()
    tool = ("mutation/covermap.py",)  # a new way of mapping makes every map stale
    for rel in (*target.files, *test_files(target), "tests/conftest.py", "pyproject.toml", *tool):
        path = ROOT / rel
        digest.update(rel.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def coverage_map(name: str, target: Target) -> Path:
    """The target's map of which tests run each line (covermap.py), rebuilt when stale."""
    SESSIONS.mkdir(parents=True, exist_ok=True)
    path = SESSIONS / f"{name}.map.json"
    want = fingerprint(target)
    if path.exists() and json.loads(path.read_text()).get("fingerprint") == want:
        return path
    print(f"building the coverage map of {name} (its tests once, under coverage)", flush=True)
    started = time.monotonic()
    # the baseline's pytest output is kept: a failure that does not come back on a rerun (a
    # flaky test) can only be explained from the output of the run that failed
    log = SESSIONS / f"{name}.map.log"
    with log.open("w") as out:
        rc = subprocess.call(
            [
                sys.executable,
                str(ROOT / "mutation" / "covermap.py"),
                str(path),
                "--root",
                str(ROOT),
                "--files",
                ",".join(target.files),
                "--",
                *test_files(target),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if rc:
        path.unlink(missing_ok=True)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(
            f"{tail}\nthe tests of {name} fail on the unmutated code (exit {rc}; the whole"
            f" output is in {log}): fix them first"
        )
    cmap = json.loads(path.read_text())
    cmap["fingerprint"] = want
    path.write_text(json.dumps(cmap))
    print(f"coverage map built in {time.monotonic() - started:.0f} s", flush=True)
    return path


@contextlib.contextmanager
def fork_server(name: str, target: Target, select: bool = True) -> Iterator[Path]:
    """Start forkserver.py for one session; yield its socket; stop it afterwards."""
    cmap = coverage_map(name, target) if select else None
    sock = SESSIONS / f"{name}.sock"
    log = (SESSIONS / f"{name}.server.log").open("a")
    command = [sys.executable, str(ROOT / "mutation" / "forkserver.py"), str(sock)]
    command += ["--root", str(ROOT), "--files", ",".join(target.files)]
    command += ["--timeout", str(target.timeout)]
    if target.first:
        command += ["--first", ",".join(target.first)]
    if cmap:
        command += ["--map", str(cmap)]
    else:
        command += ["--preload", "numpy,numba,pytest,hypothesis,memray,psutil,xdist"]
    server = subprocess.Popen(
        [*command, "--", *test_files(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        ready = server.stdout.readline() if server.stdout else ""
        if not ready.startswith("ready"):
            server.wait(timeout=30)
            raise SystemExit(f"the fork server did not start (see {log.name})")
        print(f"fork server: {ready.strip()}", flush=True)
        yield sock
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        sock.unlink(missing_ok=True)


def write_config(name: str, target: Target, command: str | None = None) -> Path:
    SESSIONS.mkdir(parents=True, exist_ok=True)
    config = SESSIONS / f"{name}.toml"
    paths = ", ".join(f'"{p}"' for p in target.files)  # cosmic-ray takes one path or a list
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {paths if len(target.files) == 1 else f'[{paths}]'}\n"
        f"timeout = {target.timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {command or test_command(target)!r}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return config


def spans(source: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """Line spans (first, last) of the named top-level functions/classes and methods."""
    out: list[tuple[int, int]] = []
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in ast.parse(source).body:
        if not isinstance(node, defs):
            continue
        if node.name in names:
            out.append((node.lineno, node.end_lineno or node.lineno))
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, defs) and f"{node.name}.{sub.name}" in names:
                    first = min([sub.lineno] + [d.lineno for d in sub.decorator_list])
                    out.append((first, sub.end_lineno or sub.lineno))
    found = len(out)
    if found < len(names):
        print(f"warning: only {found} of {len(names)} scope names found", file=sys.stderr)
    return out


def message_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of every f-string: a mutant there only rewords a message."""
    return [
        ((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0))
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.JoinedStr)
    ]


def skip_out_of_scope(session: Path, target: Target) -> None:
    """Mark as skipped every mutation of an operator not kept, outside the target's scope, inside
    an f-string (message wording), or a second number mutant (n-1 after n+1) at the same site."""
    import re

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    keep = re.compile("|".join(f"(?:{k})" for k in KEEP_OPERATORS))
    main = (ROOT / target.path).resolve()
    in_scope = spans(main.read_text(), target.scope) if target.scope else None
    messages = {(ROOT / f).resolve(): message_spans((ROOT / f).read_text()) for f in target.files}
    seen: set[tuple[str, str, tuple[int, int]]] = set()
    with use_db(str(session), WorkDB.Mode.open) as db:
        # in mutation order, so the same one of two number mutants at a site is kept every time
        for item in sorted(db.pending_work_items, key=mutation_key):
            m = item.mutations[0]
            why = None
            file = Path(m.module_path)
            file = (file if file.is_absolute() else ROOT / file).resolve()
            site = (str(file), m.operator_name, tuple(m.start_pos))
            if not keep.match(m.operator_name):
                why = "operator not in the kept set"
            elif (
                in_scope is not None
                and file == main
                and not any(a <= m.start_pos[0] <= b for a, b in in_scope)
            ):
                why = "outside the module's scope"
            elif any(a <= tuple(m.start_pos) < b for a, b in messages.get(file, ())):
                why = "inside an f-string (message wording)"
            elif site in seen:
                why = "second mutant of the same number"
            seen.add(site)
            if why:
                db.set_result(
                    item.job_id, WorkResult(output=why, worker_outcome=WorkerOutcome.SKIPPED)
                )


def keep_sample(session: Path, size: int, seed: int) -> None:
    """Keep a seeded random sample of `size` pending mutants (mark the rest skipped): a kill rate
    measured on a sample, for a loaded machine; the full run is the same command without it."""
    import random

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        # ordered by the mutation, not by cosmic-ray's random job ids: the same seed picks the
        # same mutants in every session (a plain and a fast run can be compared mutant by mutant)
        pending = [item.job_id for item in sorted(db.pending_work_items, key=mutation_key)]
        chosen = set(random.Random(seed).sample(pending, min(size, len(pending))))
        for job_id in pending:
            if job_id not in chosen:
                db.set_result(
                    job_id,
                    WorkResult(output="not in this sample", worker_outcome=WorkerOutcome.SKIPPED),
                )


def mutation_key(item: Any) -> tuple[str, int, int, str, int]:
    """A mutant's identity across sessions: file, position, operator, occurrence."""
    m = item.mutations[0]
    return (str(m.module_path), *tuple(m.start_pos), m.operator_name, m.occurrence)


def outcomes(session: Path) -> dict[tuple[str, int, int, str, int], str]:
    """killed / survived / incompetent of each mutant run in a session."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome

    with use_db(str(session), WorkDB.Mode.open) as db:
        done = dict(db.results)
        return {
            mutation_key(item): done[item.job_id].test_outcome.value
            for item in db.work_items
            if item.job_id in done and done[item.job_id].worker_outcome != WorkerOutcome.SKIPPED
        }


def compare(fast: Path, plain: Path) -> int:
    """Mutant by mutant, the fast session's outcome against the plain one's; 1 on a difference."""
    a, b = outcomes(fast), outcomes(plain)
    both = sorted(set(a) & set(b))
    differ = [k for k in both if a[k] != b[k]]
    for k in differ:
        print(f"DIFFERS {k[0]}:{k[1]} {k[3]} #{k[4]}: fast {a[k]}, plain {b[k]}")
    only = len(set(a) ^ set(b))
    print(
        f"compared {len(both)} mutants run in both sessions: {len(differ)} differ"
        f" ({only} run in one session only)"
    )
    return 1 if differ else 0


def cosmic(*args: str) -> int:
    return subprocess.call(["cosmic-ray", *args], cwd=ROOT)


def survivors(session: Path) -> None:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "incompetent": 0, "skipped": 0, "pending": 0}
    with use_db(str(session), WorkDB.Mode.open) as db:
        done = dict(db.results)
        for item in db.work_items:
            result = done.get(item.job_id)
            if result is None:
                counts["pending"] += 1
            elif result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                m = item.mutations[0]
                print(f"--- {item.job_id} {m.operator_name} line {m.start_pos[0]}")
                print(result.diff)
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1
            else:
                counts["killed"] += 1
    total = counts["killed"] + counts["survived"]
    rate = f"{100.0 * counts['killed'] / total:.1f}%" if total else "n/a"
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"kill rate {rate}")


def session_survivors(session: Path) -> tuple[list[Survivor], int]:
    """The survivors of a session, each with its original line as it is on disk now (the
    files are restored after a run), and how many mutants of it did not run (pending, or left
    out by --sample): a check needs a whole run."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    found: list[Survivor] = []
    not_run = 0
    lines: dict[str, list[str]] = {}
    with use_db(str(session), WorkDB.Mode.open) as db:
        done = dict(db.results)
        for item in db.work_items:
            result = done.get(item.job_id)
            if result is None or result.output == "not in this sample":
                not_run += 1
                continue
            if result.test_outcome != TestOutcome.SURVIVED:
                continue
            m = item.mutations[0]
            rel = str(Path(m.module_path).resolve().relative_to(ROOT))
            if rel not in lines:
                lines[rel] = (ROOT / rel).read_text(encoding="utf-8").splitlines()
            text = lines[rel][m.start_pos[0] - 1].strip()
            found.append(Survivor(rel, m.start_pos[0], m.operator_name, text, result.diff or ""))
    return found, not_run


def check(session: Path, name: str) -> int:
    """0 when every survivor of the (whole) session is a listed equivalent, else 1: the list
    of the others, each with its diff and a ready-to-edit entry for equivalent.toml."""
    found, not_run = session_survivors(session)
    if not_run:
        print(f"check: {not_run} mutants of the session did not run; a check needs a whole run")
        return 1
    unlisted, stale = judge_survivors(name, found, load_equivalents())
    for e in stale:
        print(f"stale entry (no such survivor now): {e.file}: {e.operator}: {e.text!r}")
    for s in unlisted:
        print(f"--- NOT LISTED {s.file}:{s.line} {s.operator}\n{s.diff}\n{entry_for(name, s)}")
    listed = len(found) - len(unlisted)
    print(
        f"check {name}: {len(found)} survivors, {listed} listed as equivalent, "
        f"{len(unlisted)} not listed (a test is missing, or an equivalent to argue and list)"
    )
    return 1 if unlisted else 0


def recheck(session: Path, target: Target) -> None:
    """Run the module's tests (as they are now) against each mutant that survived the session:
    the "after" figure once tests were added, without rerunning the killed ones."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    with use_db(str(session), WorkDB.Mode.open) as db:
        done = dict(db.results)
        lost = [
            (item, done[item.job_id].diff)
            for item in db.work_items
            if item.job_id in done and done[item.job_id].test_outcome == TestOutcome.SURVIVED
        ]
    if subprocess.call(test_command(target).split(), cwd=ROOT, stdout=subprocess.DEVNULL):
        raise SystemExit("the tests fail on the unmutated code: fix them before a recheck")
    still = 0
    for item, diff in lost:
        patch = (diff.split("--- mutation diff ---\n", 1)[-1].rstrip("\n") + "\n").encode()
        subprocess.run(
            ["patch", "-p1", "--quiet", "--no-backup-if-mismatch"],
            input=patch,
            cwd=ROOT,
            check=True,
        )
        try:
            rc = subprocess.call(test_command(target).split(), cwd=ROOT, stdout=subprocess.DEVNULL)
        finally:
            subprocess.run(
                ["patch", "-R", "-p1", "--quiet", "--no-backup-if-mismatch"],
                input=patch,
                cwd=ROOT,
                check=True,
            )
        m = item.mutations[0]
        verdict = "killed" if rc else "SURVIVES"
        still += not rc
        print(f"{verdict:9} {item.job_id} {m.operator_name} line {m.start_pos[0]}")
    print(f"recheck: {len(lost) - still} of {len(lost)} survivors now killed")


CONFINED_ENV = "MEMCYCLE_MUTATION_CONFINED"
# a PID namespace of its own with its own /proc: a mutant that signals "every process" (one of
# isolation.py's does: `_token_holders` made to return everything, then `kill_run`) can only
# reach the session's own processes. As root, or unprivileged through a user namespace.
UNSHARE_WAYS = (
    ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child"),
    ("unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child"),
)


# pid 1 of the namespace: starts the command, reaps every orphan the tests leave (an init's
# job; run.py's own waits must not be raced by a SIGCHLD handler), passes SIGTERM and SIGHUP
# on (Ctrl-C reaches the command from the terminal itself) and exits with the command's code
INIT = """
import os, signal, sys
child = os.fork()
if child == 0:
    os.execv(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGINT, signal.SIG_IGN)
for s in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, lambda n, _: os.kill(child, n))
code = 1
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
        break
sys.exit(code if code >= 0 else 128 - code)
"""


def confine(argv: list[str]) -> str | None:
    """Re-run this command in a PID namespace of its own (never returns then); the reason
    when that is not possible here (no `unshare`, namespaces not allowed)."""
    if os.environ.get(CONFINED_ENV):
        return None
    for way in UNSHARE_WAYS:
        try:
            probe = subprocess.run([*way, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"{way[0]}: {exc}"
            continue
        if probe.returncode == 0:
            os.environ[CONFINED_ENV] = "1"
            init = [sys.executable, "-S", "-I", "-c", INIT]
            os.execvp(way[0], [*way, *init, sys.executable, str(Path(__file__).resolve()), *argv])
        reason = probe.stderr.decode(errors="replace").strip() or f"exit {probe.returncode}"
    return reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--list", action="store_true", help="the modules and their tests")
    parser.add_argument("--survivors", action="store_true", help="report the last run only")
    parser.add_argument(
        "--recheck", action="store_true", help="rerun the tests on the last run's survivors"
    )
    parser.add_argument("--resume", action="store_true", help="continue the last session")
    parser.add_argument(
        "--unconfined",
        action="store_true",
        help="do not re-run in a PID namespace of its own (see confine())",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="a whole run, then exit 1 unless every survivor is listed in equivalent.toml",
    )
    parser.add_argument(
        "--sample", type=int, metavar="N", help="run only N of the pending mutants (seeded)"
    )
    parser.add_argument("--seed", type=int, default=16, help="seed of --sample (default 16)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="a fresh pytest of the whole test list per mutant (session <module>-plain)",
    )
    parser.add_argument(
        "--no-select", action="store_true", help="fork server, but the whole test list per mutant"
    )
    parser.add_argument(
        "--compare", action="store_true", help="outcomes of <module> against <module>-plain"
    )
    parser.add_argument(
        "--count", action="store_true", help="init and scope only: print the mutants in scope"
    )
    args = parser.parse_args(argv)
    if args.list or not args.module:
        for name, t in TARGETS.items():
            print(f"{name:14} {' '.join(t.files):26} {' '.join(t.tests)}")
        return 0
    if args.check and (args.sample is not None or args.plain or args.resume):
        parser.error("--check judges a whole run of its own: not with --sample, --plain, --resume")
    target = TARGETS[args.module]
    name = f"{args.module}-plain" if args.plain else args.module
    session = SESSIONS / f"{name}.sqlite"
    if args.compare:
        return compare(SESSIONS / f"{args.module}.sqlite", SESSIONS / f"{args.module}-plain.sqlite")
    if args.survivors:
        survivors(session)
        return 0
    if not args.unconfined and (why := confine(sys.argv[1:] if argv is None else argv)):
        if target.first:  # a target with a guard is one whose mutants can harm the machine
            raise SystemExit(
                f"{args.module}: cannot run its mutants in a PID namespace of their own ({why});"
                " run as root, allow user namespaces, or pass --unconfined at your own risk"
            )
        print(f"warning: not confined to a PID namespace ({why})", file=sys.stderr)
    elif os.environ.get(CONFINED_ENV):
        print(f"confined: a PID namespace of its own (this process is pid {os.getpid()})")
    if args.recheck:
        recheck(session, target)
        return 0
    config = write_config(name, target)
    if not args.resume:
        session.unlink(missing_ok=True)
        if rc := cosmic("init", str(config), str(session)):
            return rc
        skip_out_of_scope(session, target)
    if args.sample is not None:
        keep_sample(session, args.sample, args.seed)
    pending = count_pending(session)
    if args.count:
        print(f"{args.module}: {pending} mutants in scope")
        return 0
    started = time.time()
    print(f"{pending} mutants to run, from {time.strftime('%H:%M:%S', time.gmtime(started))} UTC")
    if args.plain:
        timed = f"{sys.executable} -S -I {ROOT / 'mutation' / 'timed.py'} {SESSIONS / name}.log --"
        config = write_config(name, target, f"{timed} {test_command(target)}")
        rc = cosmic("exec", str(config), str(session))
    else:
        with fork_server(args.module, target, select=not args.no_select) as sock:
            config = write_config(name, target, client_command(sock))
            rc = cosmic("exec", str(config), str(session))
    ended = time.time()
    ran = pending - count_pending(session)
    print(
        f"{ran} mutants in {ended - started:.0f} s"
        f" ({(ended - started) / max(ran, 1):.2f} s per mutant),"
        f" {time.strftime('%H:%M:%S', time.gmtime(started))}-"
        f"{time.strftime('%H:%M:%S', time.gmtime(ended))} UTC"
    )
    if rc:
        return rc
    survivors(session)
    return check(session, args.module) if args.check else 0


def count_pending(session: Path) -> int:
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(session), WorkDB.Mode.open) as db:
        return sum(1 for _ in db.pending_work_items)


if __name__ == "__main__":
    sys.exit(main())
