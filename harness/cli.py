"""`memcycle`: run cycle tables in isolated children, list what exists, report, gate, warm up.

Exit status of `memcycle run`:
  0  every run's verdict is what its scenario expects, or the run was skipped (SKIP, never PASS)
  1  a run's verdict differs from its scenario's expectation (an engine finding: FAIL), or
     with --fail-on-skip, a run or a step was skipped
  2  bad input, before anything runs: missing file, malformed scenario, unknown engine name,
     allocator or fault (one line, never a traceback)
  3  a run is `error`: memcycle or the adapter could not do its job (engine module not
     importable, factory failed, adapter/library API mismatch, child could not start); takes
     precedence over 1, since such a run tested nothing
  130/143  interrupted (SIGINT/SIGTERM)

Every error is one line, `memcycle: error: ...`, never a traceback; each command's help
lists its exit statuses.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import __version__
from .atomicfile import write_text_atomic
from .bundled import scenarios_dir
from .checks import skip_findings, was_skipped
from .engines.base import EngineError, parse_engine_options
from .engines.registry import BUILTIN, ENGINE_NAMES, check_engine_spec
from .isolation import ChildRegistry
from .kernelcache import KernelCache, kernel_cache
from .preflight import (
    PreflightError,
    check_out_dir,
    check_run,
    check_timeout,
    clear_earlier_run,
    unique_scenarios,
)
from .progress import Progress, close_all, compile_seconds, fancy_output, run_mark
from .records import VERDICTS, Report, RunRecord
from .runner import DEFAULT_TIMEOUT, Interrupted, RunInterrupted, RunSpec, new_run_id, run_many
from .scenario import Scenario, ScenarioError, find_scenarios, load_scenario
from .shard import Shard, ShardError, parse_shard, select
from .warmup import warmup_specs

if TYPE_CHECKING:
    from .shrink import ShrinkResult

BUNDLED = scenarios_dir()
ALLOCATOR_CHOICES = ("numpy", "checked", "raw")
MAX_TABLE_ROWS = 12
# engines that run refimpl's Numba kernels (the cold-start notice is about them)
NUMBA_ENGINES = ("refimpl", "refimpl-global")
__all__ = ["Progress", "UsageError", "build_parser", "format_run", "main"]


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


# -- helpers -----------------------------------------------------------------------
def _fault_names() -> tuple[str, ...]:
    from memcycle.refimpl.faults import FAULT_NAMES

    return FAULT_NAMES


def _check_engine(spec: str) -> None:
    """A spec that names nothing is a usage error; one that names a module which cannot be
    imported is left to the run (its verdict is `error`, exit 3)."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        check_engine_spec(spec)
    except EngineError as exc:
        raise UsageError(str(exc)) from None


def _check_native_tool(sanitizer: str | None, valgrind: bool) -> None:
    from .sanitizers import SanitizerUnavailable, check_available

    if sanitizer and valgrind:
        raise UsageError("--sanitizer and --valgrind cannot be combined; choose one")
    try:
        if sanitizer or valgrind:
            check_available("valgrind" if valgrind else str(sanitizer))
    except SanitizerUnavailable as exc:
        raise UsageError(str(exc)) from None


def _mib(x: int | None) -> str:
    return "" if x is None else f"{x / (1 << 20):.1f}"


def _kib(x: int | None) -> str:
    return "" if x is None else f"{x / 1024:.0f}"


def _mark(rec: RunRecord) -> str:
    """PASS, FAIL, SKIP, or ERROR (memcycle or the adapter could not run it: not an engine bug)."""
    if rec.verdict == "error":
        return "ERROR"
    return "PASS" if rec.passed else ("SKIP" if rec.verdict == "skipped" else "FAIL")


def format_run(rec: RunRecord) -> str:
    """A run's header line, its first findings and its cycle table (reference-note form)."""
    mark = _mark(rec)
    faults = "+".join(rec.faults) or "-"
    lines = [
        f"{rec.scenario}  engine={rec.engine} allocator={rec.allocator} faults={faults}  "
        f"verdict={rec.verdict_text} expected={rec.expected_verdict}  {mark}  ({rec.seconds:.1f} s)"
    ]
    skips = skip_findings(rec)
    if rec.verdict == "skipped" and not rec.steps:
        # the whole scenario: a requirement the engine lacks, or written for other engines
        reason = rec.exit.get("reason") or (skips[0].summary if skips else "")
        lines.append(f"  skipped: {reason}")
        return "\n".join(lines)
    if rec.verdict == "error" and not rec.steps:
        # nothing ran: the cause in one line and the child's last words, no cycle table
        for f in [f for f in rec.findings if f.verdict == "error"][:1]:
            lines.append(f"  error: {f.summary}")
            tail = str(f.evidence.get("stderr_tail") or "").strip().splitlines()[-5:]
            lines.extend(f"    | {t}" for t in tail)
        return "\n".join(lines)
    # skipped steps are listed whatever the verdict: clean on what ran, or next to a leak
    lines.extend(f"  skipped: {f.summary}" for f in skips)
    real = [f for f in rec.findings if f.verdict != "skipped"]
    # the first finding of every verdict class, then the others, so a leak found next to a
    # dozen wrong results is on screen too
    firsts = [
        next(f for f in real if f.verdict == v) for v in dict.fromkeys(f.verdict for f in real)
    ]
    shown = firsts + [f for f in real if f not in firsts][: max(0, 3 - len(firsts))]
    for f in shown:
        lines.append(f"  - {f.verdict}: {f.summary}")
        growth = f.evidence.get("top_growth") or []
        if growth and growth[0].get("stack"):
            where = " <- ".join(growth[0]["stack"][:3])
            lines.append(f"      grew {growth[0]['bytes'] / 1024:.0f} KiB at {where}")
    if len(real) > len(shown):
        lines.append(f"  - ... {len(real) - len(shown)} more finding(s)")
    from .reporters.common import engine_live_per_cycle, quarantine_per_cycle

    # the checked allocator's quarantine of freed blocks: its own column, never in engine live
    quarantine = quarantine_per_cycle(rec)
    engine = engine_live_per_cycle(rec)
    q_head = " Quarantine KiB (freed, not live) |" if quarantine else ""
    lines.append(
        "| Cycle | Dim | Live blocks after clear | Engine live KiB (memray) |"
        f"{q_head} RSS MiB | Status |"
    )
    lines.append("|---|---|---|---|" + ("---|" if quarantine else "") + "---|---|")
    rows = rec.cycles
    keep = set(range(len(rows)))
    if len(rows) > MAX_TABLE_ROWS:
        keep = set(range(5)) | set(range(len(rows) - 5, len(rows)))
        keep |= {i for i, c in enumerate(rows) if c.status not in ("ok", "-")}
        first_missing = next((i for i, c in enumerate(rows) if c.status == "-"), None)
        if first_missing is not None:
            keep.add(first_missing)
    prev = -1
    for i, c in enumerate(rows):
        if i not in keep:
            continue
        if i != prev + 1:
            lines.append(f"| ... | | | | | ({i - prev - 1} cycles) |")
        prev = i
        status = {"ok": "ok", "-": "-"}.get(c.status, c.status)
        if c.status == "crash":
            sig = rec.exit.get("signal_name")
            msg = rec.exit.get("native_message")
            status = f"crash ({', '.join(x for x in (sig, msg) if x)})" if sig or msg else "crash"
        blocks = "" if c.live_blocks_after_clear is None else str(c.live_blocks_after_clear)
        q_cell = f" {_kib(quarantine.get(c.cycle))} |" if quarantine else ""
        lines.append(
            f"| {c.cycle} | {c.dimension or ''} | {blocks} | {_kib(engine.get(c.cycle))} |"
            f"{q_cell} {_mib(c.rss_bytes)} | {status} |"
        )
    if prev != len(rows) - 1:
        lines.append(f"| ... | | | | | ({len(rows) - prev - 1} cycles) |")
    return "\n".join(lines)


def _write_report(report: Report, out: Path, quick: bool = False) -> list[str]:
    """report.json first (atomically: it is what the gate and `memcycle report` read), then
    every format through the reporters (each file atomic, no temporary left behind); `quick`
    (an interrupt) leaves out index.html, whose plots take seconds (`memcycle report` makes it)."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        from .reporters import write_all
        from .reporters.json_report import render_json
    except ImportError:
        write_text_atomic(out / "report.json", json.dumps(report.to_dict(), indent=1) + "\n")
        return [str(out / "report.json")]
    write_text_atomic(out / "report.json", render_json(report))
    formats = ("json", "markdown", "junit") if quick else None
    return [str(p) for p in write_all(report, out, formats=formats).values()]


class StopSignals:
    """SIGINT/SIGTERM during a batch: the first kills every child at once (in the handler) and
    raises in the main thread (KeyboardInterrupt / `Interrupted`), so `run_many` hands back the
    finished runs; any later one kills again and never raises, so the report still gets written
    and three Ctrl-Cs cannot leave a child running. After `finishing()` no signal raises: the
    report of a completed batch is written, then the exit status says it was interrupted."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, registry: ChildRegistry) -> None:
        self.registry = registry
        self.signum: int | None = None
        self._raise = True
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # else: signals go elsewhere
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._saved.items():
            # once stopped, the process is on its way out with 130/143: a Ctrl-C more must not
            # turn that into a KeyboardInterrupt traceback (or a death by SIGINT)
            signal.signal(sig, signal.SIG_IGN if self.signum is not None else old)

    def finishing(self) -> None:
        self._raise = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.registry.stop()
        if self.signum is None:
            self.signum = signum
            if self._raise:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                raise Interrupted(signum)
        os.write(2, b"memcycle: stopping; writing the report of the runs that finished\n")


def _uses_numba(scenarios: Sequence[Scenario], engines: Sequence[str | None]) -> bool:
    return any((e or sc.default_engine()) in NUMBA_ENGINES for sc in scenarios for e in engines)


def _cold_notice(cache: KernelCache) -> str:
    return (
        "memcycle: compiling refimpl's Numba kernels (first run only: the cache "
        f"{cache.directory} has none yet); the first runs take minutes longer (recording "
        "slows the compile), later runs start in seconds. `memcycle warmup` does this ahead, "
        "without recording (CI)."
    )


def _after_cold_start(report: Report, progress: Progress) -> None:
    """Say how long the compile took (when the harness measured it) and whether it is cached."""
    measured = [s for s in (compile_seconds(r) for r in report.runs) if s is not None]
    if measured:
        progress.note(
            f"memcycle: Numba compile time {sum(measured):.1f} s over {len(measured)} run(s) "
            "(left out of the runs' own time)",
            style="",
        )
    cache = kernel_cache()
    if cache.cold:
        progress.note(
            f"memcycle: refimpl's kernel cache is still incomplete (no index for "
            f"{', '.join(cache.missing)} in {cache.directory}); the next run compiles again",
        )
    else:
        progress.note("memcycle: refimpl's kernels are cached now", style="")


def _summary_table(report: Report) -> None:
    """On a terminal, one coloured row per run after the cycle tables (fits the width)."""
    if not fancy_output(sys.stdout):
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("run", "left"), ("verdict", "left"), ("expected", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_column("result", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    for rec in report.runs:
        mark = run_mark(rec)
        style = {"ok": "green", "skip": "yellow", "FAIL": "bold red", "ERROR": "bold magenta"}[mark]
        result = {"ok": "PASS", "skip": "SKIP", "FAIL": "FAIL", "ERROR": "ERROR"}[mark]
        table.add_row(  # Text, not markup: a label like "[refimpl/raw]" is not a style
            Text(f"{rec.scenario} [{rec.engine}/{rec.allocator}]"),
            Text(rec.verdict),
            Text(rec.expected_verdict),
            Text(result, style=style),
            Text(f"{rec.seconds:.1f}"),
        )
    Console(highlight=False).print(table)


def _finish_interrupted(report: Report, out: Path, signum: int, t0: float) -> int:
    written = _write_report(report, out, quick=True)
    for rec in report.runs:
        print()
        print(format_run(rec))
    name = signal.Signals(signum).name
    print(
        f"memcycle: interrupted by {name} after {time.perf_counter() - t0:.1f} s: "
        f"{len(report.runs)} run(s) finished, {len(report.not_done)} not done; "
        f"report (marked interrupted): {out / 'report.json'}"
        + (f" (+{len(written) - 1} more)" if len(written) > 1 else "")
        + f"; 'memcycle report {out}' renders index.html",
        file=sys.stderr,
    )
    return 128 + signum


# -- subcommands -------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Run scenarios (cycle tables) against engines, each run in its own child process, and
    judge every cycle: leaks, double/invalid frees, use-after-free, overflows, crashes, wrong
    results, lifecycle errors, timeouts. Progress shows each child's cycle and step; the report
    (report.json, summary.md, index.html, junit.xml, memray captures) goes to --out."""
    shard = _parse_shard(args.shard)
    paths = args.paths or [BUNDLED]
    try:
        files = find_scenarios(paths, include_faults=bool(args.paths))
        scenarios = [load_scenario(f) for f in files]
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    if not scenarios:
        raise UsageError(f"no scenario files (*.toml) under {', '.join(map(str, paths))}")
    for e in args.engine or []:
        _check_engine(e)
    wanted = list(args.fault or []) + [f for sc in scenarios for f in sc.faults]
    if wanted:
        known = _fault_names()
        bad = [f for f in wanted if f not in known]
        if bad:
            raise UsageError(f"unknown fault {bad[0]!r}; expected one of {', '.join(known)}")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    _check_native_tool(args.sanitizer, args.valgrind)
    engines: list[str | None] = list(args.engine) if args.engine else [None]
    allocators = args.allocator or ["numpy"]
    run_id = new_run_id()
    out = Path(args.out) if args.out else Path("reports") / run_id
    options = _parse_options(args.engine_option, "--engine-option")
    try:
        if args.timeout is not None:
            check_timeout(args.timeout)
        scenarios = unique_scenarios(scenarios)
        for sc in scenarios:
            for eng in engines:
                for alloc in allocators:
                    check_run(sc, eng or sc.default_engine(), alloc, args.fault or (), options)
        earlier = check_out_dir(out)
    except PreflightError as exc:
        raise UsageError(str(exc)) from None
    if earlier:  # replaced whole, and said so: the folder never mixes two runs
        removed = clear_earlier_run(out)
        print(
            f"memcycle: {out} held an earlier run; replaced ({len(removed)} report file(s) and "
            "run folder(s) removed)",
            file=sys.stderr,
        )
    items = [
        RunSpec(
            scenario=sc.path,
            engine=eng,
            allocator=alloc,
            faults=tuple(args.fault or ()),
            memray=args.memray,
            native=args.native,
            timeout=args.timeout,
            options=options,
            flamegraphs=args.flamegraphs,
            sanitizer=args.sanitizer,
            valgrind=args.valgrind,
            trace_python_allocators=args.trace_python_allocators,
        )
        for sc in scenarios
        for eng in engines
        for alloc in allocators
    ]
    if shard is not None:
        items = _select_shard(items, scenarios, shard)
    t0 = time.perf_counter()
    progress = Progress(len(items))
    cold = _uses_numba(scenarios, engines) and kernel_cache().cold
    if cold:
        progress.note(_cold_notice(kernel_cache()))
    progress.note(
        f"memcycle: {len(items)} run(s), {args.jobs} at a time; report in {out}/", style="dim"
    )
    from .reporters.plots import prefetch_matplotlib  # here: `memcycle list` never pays it

    prefetch_matplotlib()  # the HTML report's plot import overlaps the runs (reporters.plots)
    registry = ChildRegistry()
    with StopSignals(registry) as stop:
        try:
            report = run_many(
                items,
                out,
                jobs=args.jobs,
                progress=progress,
                on_event=progress.on_event,
                command=["memcycle", *sys.argv[1:]],
                run_id=run_id,
                registry=registry,
            )
        except RunInterrupted as exc:
            progress.close()
            return _finish_interrupted(exc.report, out, exc.signum, t0)
        finally:
            progress.close()
        stop.finishing()
        written = _write_report(report, out)
    errors = [r for r in report.runs if r.verdict == "error"]
    failed = [r for r in report.runs if not r.passed and r.verdict not in ("skipped", "error")]
    skipped = [r for r in report.runs if not r.passed and r.verdict == "skipped"]
    partial = [r for r in report.runs if r.verdict != "skipped" and was_skipped(r)]
    # the status is known before anything is printed: a closed stdout (`memcycle run | head`)
    # must not turn a failing run into exit 0 (main returns this on BrokenPipeError)
    args.exit_status = _run_status(args, stop.signum, errors, failed, skipped, partial)
    if cold:
        _after_cold_start(report, progress)
    for rec in report.runs:
        print()
        print(format_run(rec))
    print()
    _summary_table(report)
    print(
        f"{len(report.runs)} run(s), {len(failed)} with an unexpected verdict, "
        f"{len(skipped)} skipped (not passed), {len(partial)} with skipped steps, "
        f"{len(errors)} error(s) (could not run); report: {out / 'report.json'}"
        + (f" (+{len(written) - 1} more)" if len(written) > 1 else "")
    )
    if args.fail_on_skip and (skipped or partial) and args.exit_status == 1 and not failed:
        print(
            f"memcycle: --fail-on-skip: {len(skipped)} run(s) skipped, "
            f"{len(partial)} run(s) with skipped steps",
            file=sys.stderr,
        )
    return int(args.exit_status)


def _run_status(
    args: argparse.Namespace,
    signum: int | None,
    errors: list[RunRecord],
    failed: list[RunRecord],
    skipped: list[RunRecord],
    partial: list[RunRecord],
) -> int:
    """`memcycle run`'s exit status (see the module docstring)."""
    if signum is not None:  # came after the last run: the report is whole, but say so
        return 128 + signum
    if errors:
        return 3
    if failed:
        return 1
    if args.fail_on_skip and (skipped or partial):
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what in ("all", "scenarios"):
        print(f"Scenarios (bundled, in {BUNDLED}/; faults/ and omendb/ run when named):")
        for f in find_scenarios([BUNDLED], include_faults=True):
            try:
                sc = load_scenario(f)
            except ScenarioError as exc:
                print(f"  {f.name}: INVALID: {exc}")
                continue
            expect = (
                ", ".join(f"{k}={v}" for k, v in sc.expect) if len(sc.expect) > 1 else sc.expected()
            )
            extra = f" [{', '.join(sc.tags)}]" if sc.tags else ""
            print(
                f"  {f.relative_to(BUNDLED)}: {sc.name} — {len(sc.plan)} cycle(s), "
                f"engine {sc.default_engine()}, expect {expect}{extra}"
            )
            if sc.description:
                print(f"      {sc.description}")
    if what in ("all", "engines"):
        print("Engines (--engine NAME or package.module:factory):")
        for name, target in BUILTIN.items():
            print(f"  {name:<16} {target}")
    if what in ("all", "faults"):
        print("Faults (--fault NAME; refimpl only):")
        from memcycle.refimpl.faults import CATALOGUE

        for f in CATALOGUE.values():
            print(f"  {f.name:<26} checked: {f.verdict_checked:<16} raw: {f.verdict_raw}")
            print(f"      {f.summary}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    try:
        report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read report: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a memcycle report: {exc}") from None
    try:
        from .reporters import write_all  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError("the reporters (harness.reporters.write_all) are not installed") from None
    for fmt, p in write_all(report, path.parent).items():
        print(f"{fmt}: {p}")
    return 0


def _parse_shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    try:
        return parse_shard(text)
    except ShardError as exc:
        raise UsageError(str(exc)) from None


def _select_shard(items: list[RunSpec], scenarios: list[Scenario], shard: Shard) -> list[RunSpec]:
    mine = select(items, {sc.path: sc for sc in scenarios}, shard)
    note = " (more shards than runs)" if not mine else ""
    print(f"memcycle: shard {shard}: {len(mine)} of {len(items)} runs{note}", file=sys.stderr)
    return mine


def cmd_init(args: argparse.Namespace) -> int:
    """Write an adapter skeleton, a starter cycle table, a pytest entry and MEMCYCLE.md into
    DIR (default: the current folder); never overwrites a file."""
    from .scaffold import ScaffoldError, next_steps, scaffold

    project = Path(args.dir)
    try:
        written = scaffold(project, args.name)
    except ScaffoldError as exc:
        raise UsageError(f"init: {exc}") from None
    print(f"memcycle init: wrote {len(written)} files in {project}/")
    width = max(len(str(p)) for p, _ in written)
    for path, what in written:
        print(f"  {path!s:<{width}}  {what}")
    print("next:")
    for line in next_steps(project):
        print(f"  {line}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge the report.json of several runs (the shards of `memcycle run --shard K/N`) into
    one report folder: report.json, summary.md, index.html, junit.xml and the runs' folders."""
    from .merge import MergeError, merge

    out = Path(args.out)
    try:
        report, shards = merge(
            args.dirs,
            out,
            run_id=new_run_id(),
            command=["memcycle", *sys.argv[1:]],
            allow_partial=args.allow_partial,
        )
    except MergeError as exc:
        raise UsageError(f"merge: {exc}") from None
    written = _write_report(report, out)
    failed = [r for r in report.runs if not r.passed and r.verdict != "skipped"]
    counts = " + ".join(str(len(s.report.runs)) for s in shards)
    print(
        f"merged {len(shards)} report(s) ({counts} runs): {len(report.runs)} run(s), "
        f"{len(failed)} with an unexpected verdict; report: {out / 'report.json'}"
        + (f" (+{len(written) - 1} more)" if len(written) > 1 else "")
    )
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    """Fill refimpl's Numba cache ahead of the first real run (e.g. a CI step before
    `memcycle run` and the gate, so compile time never lands in a measured run)."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    allocators = args.allocator or list(ALLOCATOR_CHOICES)
    before = kernel_cache()
    print(
        f"kernel cache: {before.directory} "
        + (f"(cold: no index for {', '.join(before.missing)})" if before.cold else "(warm)"),
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memcycle-warmup-") as tmp:
        items = warmup_specs(Path(tmp), allocators, timeout=args.timeout)
        progress = Progress(len(items))
        registry = ChildRegistry()
        with StopSignals(registry):
            try:
                report = run_many(
                    items,
                    Path(tmp) / "runs",
                    jobs=1,  # children compiling at once would compile the same kernels twice
                    progress=progress,
                    on_event=progress.on_event,
                    command=["memcycle", *sys.argv[1:]],
                    registry=registry,
                )
            except RunInterrupted as exc:
                progress.close()
                print(
                    f"memcycle: warmup interrupted by {signal.Signals(exc.signum).name}",
                    file=sys.stderr,
                )
                return 128 + exc.signum
            finally:
                progress.close()
    seconds = time.perf_counter() - t0
    after = kernel_cache()
    bad = [r for r in report.runs if r.verdict != "clean"]
    for rec in bad:
        print(format_run(rec))
    measured = [c for c in (compile_seconds(r) for r in report.runs) if c is not None]
    compile_note = f", {sum(measured):.1f} s of it compiling" if measured else ""
    state = "warm" if not after.cold else f"still cold (no index for {', '.join(after.missing)})"
    print(
        f"warmup: {len(report.runs)} run(s) in {seconds:.1f} s{compile_note}; "
        f"kernel cache {after.directory} is {state}"
    )
    if bad:
        print(
            f"memcycle: error: {len(bad)} warm-up run(s) did not come back clean; the cache may "
            "be incomplete",
            file=sys.stderr,
        )
    return 1 if bad or after.cold else 0


# -- fuzz and shrink -----------------------------------------------------------------
def parse_budget(text: str) -> float:
    """'300s', '5m', '1h' or plain seconds."""
    t = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:])
    num = t[:-1] if scale is not None else t
    try:
        value = float(num) * (scale or 1.0)
    except ValueError:
        raise UsageError(
            f"bad budget {text!r}; expected seconds like 300, 300s, 5m or 1h"
        ) from None
    if value <= 0:
        raise UsageError(f"budget must be positive, got {text!r}")
    return value


def _parse_options(items: list[str] | None, flag: str = "--option") -> dict[str, object]:
    """KEY=VALUE engine options (`engines.base.parse_engine_options`); a bad one is exit 2."""
    try:
        return parse_engine_options(items or [])
    except ValueError as exc:
        raise UsageError(
            f"bad {flag} {exc.args[0]!r}; expected KEY=VALUE, e.g. buffer_size=16"
        ) from None


def _check_faults(faults: list[str]) -> None:
    if faults:
        known = _fault_names()
        bad = [f for f in faults if f not in known]
        if bad:
            raise UsageError(f"unknown fault {bad[0]!r}; expected one of {', '.join(known)}")


def cmd_fuzz(args: argparse.Namespace) -> int:
    """Generate cycle tables from the op grammar (sizes around the engine's thresholds), replay
    each in an isolated child as `memcycle run` does, stop at the first failing verdict or at
    the budget, and shrink what was found to `<out>/<name>.min.toml`."""
    from .fuzz import Try, fuzz, table_size
    from .shrink import ShrinkError, shrink

    _check_engine(args.engine)
    faults = list(args.fault or [])
    _check_faults(faults)
    budget = parse_budget(args.budget)
    out = Path(args.out) if args.out else Path("reports") / f"fuzz-{new_run_id()}"
    options = _parse_options(args.option)

    def line(t: Try) -> None:
        data_size = table_size(_toml_data(t.path))
        print(
            f"try {t.index}: {data_size}: {t.record.verdict} "
            f"({t.record.seconds:.1f} s, elapsed {t.elapsed:.0f} s)",
            flush=True,
        )

    res = fuzz(
        args.engine,
        allocator=args.allocator,
        faults=faults,
        budget=budget,
        seed=args.seed,
        out=out,
        options=options,
        thresholds=args.threshold or (),
        memray=args.memray,
        timeout=args.timeout,
        want=args.want,
        progress=line,
    )
    if res.found is None:
        print(
            f"fuzz: nothing found in {len(res.tries)} tries, {res.seconds:.0f} s "
            f"(seed {args.seed}, budget {budget:.0f} s); tables in {out / 'tries'}"
        )
        return 0
    rec = res.found.record
    report = Report(
        run_id=out.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        runs=[rec],
        command=["memcycle", *sys.argv[1:]],
    )
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    print()
    print(format_run(rec))
    if res.stopped == "error":
        print(f"fuzz: try {res.found.index} could not run (error); nothing to shrink")
        return 3
    print(
        f"\nfuzz: try {res.found.index} fails ({rec.verdict}) after {res.found.elapsed:.0f} s: "
        f"{res.found.path}"
    )
    if args.no_shrink:
        return 1
    try:
        sr = shrink(
            load_scenario(res.found.path),
            engine=args.engine,
            allocator=args.allocator,
            faults=faults,
            out=out,
            memray=args.memray,
            timeout=args.timeout,
            max_replays=args.max_replays,
            first=rec,
            log=print if args.verbose else None,
        )
    except ShrinkError as exc:
        print(f"shrink: {exc}")
        return 1
    _print_shrunk(sr)
    return 1


def _toml_data(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


def _print_shrunk(sr: ShrinkResult) -> None:
    print(f"shrunk: {sr.line()}")
    same = sr.target.matches(sr.record)
    print(
        f"wrote {sr.path} (replayed: {sr.record.verdict}"
        + ("" if same else f", NOT the target {sr.target}: the failure is not deterministic")
        + ")"
    )


def cmd_shrink(args: argparse.Namespace) -> int:
    """The smallest cycle table that gives the same verdict class at the same kind of step,
    from a failing run (its folder or report.json: the first failing run in it) or a scenario
    file. Writes `<out>/<name>.min.toml` with [expect] set to the verdict found."""
    from .shrink import NOT_FAILING, ShrinkError, shrink

    target = Path(args.target)
    first = None
    engine, allocator, faults = args.engine, args.allocator, list(args.fault or [])
    if target.is_dir() or target.suffix == ".json":
        path = target / "report.json" if target.is_dir() else target
        try:
            report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise UsageError(f"{path}: cannot read report: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not a memcycle report: {exc}") from None
        failing = [r for r in report.runs if r.verdict not in NOT_FAILING]
        if not failing:
            raise UsageError(f"{path}: no failing run to shrink (every verdict is clean/skipped)")
        run = failing[0]
        try:
            sc = load_scenario(run.scenario_path)
        except ScenarioError as exc:
            raise UsageError(f"the run's scenario cannot be read: {exc}") from None
        engine = engine or run.engine
        allocator = allocator or run.allocator
        if not args.fault:
            faults = [f for f in run.faults if f not in sc.faults]
        out = Path(args.out) if args.out else path.parent
    else:
        try:
            sc = load_scenario(target)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
        engine = engine or sc.default_engine()
        allocator = allocator or "numpy"
        out = Path(args.out) if args.out else Path(".")
    _check_engine(engine)
    _check_faults(faults)
    print(
        f"shrink: {sc.name} on {engine}/{allocator}"
        + (f" faults={'+'.join(faults)}" if faults else ""),
        flush=True,
    )
    try:
        sr = shrink(
            sc,
            engine=engine,
            allocator=allocator,
            faults=faults,
            out=out,
            memray=args.memray,
            timeout=args.timeout,
            max_replays=args.max_replays,
            budget=parse_budget(args.budget),
            first=first,
            log=print if args.verbose else None,
        )
    except ShrinkError as exc:
        raise UsageError(str(exc)) from None
    _print_shrunk(sr)
    return 0 if sr.target.matches(sr.record) else 1


_DELEGATES = {
    "gate": ("memcycle.gate", "compare a run with the baseline; non-zero exit on regression"),
    "faults": ("memcycle.faultmatrix", "run the fault matrix (every fault x allocator)"),
}

INTERRUPT_CODES = "  130  stopped by SIGINT (Ctrl-C)\n  143  stopped by SIGTERM\n"

# per command: examples and exit statuses, shown under `memcycle COMMAND --help`
EPILOGS: dict[str, str] = {
    "run": """examples:
  memcycle run                                  the bundled scenarios on refimpl
  memcycle run scenarios/ --engine mypkg.adapter:make_engine --jobs 2 --out reports/ci
  memcycle run my.toml --allocator checked --fault flat-buffer-double-free
  COLUMNS=100 memcycle run my.toml 2> progress.log

exit status:
  0    every verdict is what its scenario expects (skipped runs show as SKIP)
  1    some verdict differs from its scenario's [expect]
  2    bad input, before anything runs (missing file, malformed scenario, unknown
       engine, allocator or fault); one line, memcycle: error: ...
  3    a run's outcome is `error`: memcycle or the adapter could not do its job
"""
    + INTERRUPT_CODES
    + """       (report.json of the finished runs is written, marked interrupted)

The first refimpl run after an install compiles the Numba kernels (about a minute on
2 cores); memcycle says so when it starts; `memcycle warmup` does it ahead.""",
    "list": """examples:
  memcycle list
  memcycle list faults

exit status:
  0    listed
  2    bad argument""",
    "report": """examples:
  memcycle report reports/20260101-120000-abc123/
  memcycle report reports/ci/report.json

exit status:
  0    summary.md, index.html, junit.xml written
  2    the folder or file is not readable or not a memcycle report.json""",
    "gate": """examples:
  memcycle gate reports/ci --baseline reports/baseline.json
  memcycle gate reports/ci --baseline reports/baseline.json --update

exit status:
  0    no regression (or the baseline was written, with --update)
  1    a regression: a new finding, more leaked bytes or peak memory, a slow-down
  2    bad input (unreadable run folder or baseline, bad tolerance)""",
    "faults": """examples:
  memcycle faults --jobs 2
  memcycle faults --allocator checked --only flat-buffer-double-free
  memcycle faults --story

exit status:
  0    every fault caught and named, every clean run clean
  1    a fault missed or misclassified, or a clean run with a finding
  2    bad input
"""
    + INTERRUPT_CODES.rstrip("\n"),
    "warmup": """examples:
  memcycle warmup                    all allocators (numpy, checked, raw)
  memcycle warmup --allocator numpy

The cache lives next to refimpl's kernels (__pycache__), or under $NUMBA_CACHE_DIR when set:
keep that folder between CI jobs to skip the compile there too.

exit status:
  0    the kernel cache is warm
  1    a warm-up run did not come back clean, or the cache is still incomplete
  2    bad input
"""
    + INTERRUPT_CODES.rstrip("\n"),
}

DESCRIPTIONS: dict[str, str] = {
    "list": "Show the bundled scenarios (with their cycle counts and expectations), the built-in "
    "engines and refimpl's switchable faults.",
    "report": "Re-render summary.md, index.html and junit.xml of a run folder from its "
    "report.json (after an upgrade, or for a report copied from CI).",
    "gate": "Compare a run's report.json with a baseline and fail on a new finding, on growth of "
    "leaked bytes per cycle or of peak memory, or on a slow-down, within tolerances made for "
    "noisy machines.",
    "faults": "Run every refimpl catalogue fault under its scenarios and the clean engine under "
    "every scenario: proves the harness catches and names each bug.",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples and exit-status tables stay as written; one-paragraph descriptions wrap."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


class _Parser(argparse.ArgumentParser):
    """argparse with memcycle's one error style: `memcycle: error: ...`, one line, exit 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"memcycle: error: {message} (see '{self.prog} --help')\n")


def _command(
    sub: Any, name: str, help_text: str, description: str | None, **kw: Any
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=inspect.cleandoc(description) if description else None,
        epilog=EPILOGS.get(name),
        formatter_class=_HelpFormatter,
        **kw,
    )


def _shrink_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--memray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record with memray (default on; off uses tracemalloc)",
    )
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per replay")
    p.add_argument(
        "--max-replays", type=int, default=60, metavar="N", help="replays the shrinker may do"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="one line per shrink replay")


def build_parser(delegate: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; `delegate` names a gate/faults subcommand to load."""
    ap = _Parser(
        prog="memcycle",
        description="Replay clear/insert cycle tables against vector-index engines in isolated "
        "child processes, record memory (memray, tracemalloc, RSS, Numba NRT, allocator ledger) "
        "and judge every cycle.",
        epilog="Run 'memcycle COMMAND --help' for a command's options, examples and exit "
        "status. Errors are one line: memcycle: error: ...",
    )
    ap.add_argument("--version", action="version", version=f"memcycle {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(sub, "run", "run scenarios and judge them", cmd_run.__doc__)
    run.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="scenario files or directories (default: the bundled scenarios/, without faults/)",
    )
    run.add_argument(
        "--engine",
        action="append",
        metavar="NAME",
        help=f"engine: {', '.join(ENGINE_NAMES)} or package.module:factory "
        "(repeatable; default: each scenario's own engine, else refimpl)",
    )
    run.add_argument(
        "--allocator",
        action="append",
        choices=ALLOCATOR_CHOICES,
        help="refimpl allocator (repeatable; default numpy)",
    )
    run.add_argument("--fault", action="append", metavar="NAME", help="switch on a refimpl fault")
    run.add_argument(
        "--memray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record allocations with memray (default on; off uses tracemalloc instead)",
    )
    run.add_argument("--native", action="store_true", help="memray native stack traces")
    run.add_argument(
        "--trace-python-allocators",
        action="store_true",
        help="memray traces the Python allocators too, so a leak of Python objects shows "
        "with its stack (without it they are 1 MiB arena blocks); slower, bigger captures",
    )
    run.add_argument(
        "--flamegraphs",
        choices=("all", "failed", "none"),
        default="failed",
        help="memray flamegraph HTML (self-contained, works offline) for runs with an "
        "unexpected verdict (default), every run, or none; each page is a few MB and takes "
        "a few seconds to render",
    )
    run.add_argument(
        "--engine-option",
        action="append",
        metavar="KEY=VALUE",
        help="an engine option for every run (repeatable), over the scenario's [engine] table, "
        "e.g. --engine-option mode=persistent or --engine-option M=32",
    )
    run.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default reports/<run-id>/); an earlier run in it is replaced "
        "whole (its report files and run folders removed first, and said so)",
    )
    run.add_argument("--jobs", type=int, default=1, metavar="N", help="children run at once")
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds per run before the child's stacks are dumped and it is killed (default: "
        f"the scenario's `timeout`, else {DEFAULT_TIMEOUT:.0f}; stretched under --sanitizer "
        "and --valgrind)",
    )
    run.add_argument(
        "--sanitizer",
        choices=("asan", "ubsan"),
        help="run the child with the sanitizer runtime preloaded, for an engine built with "
        "-fsanitize=address (or undefined); the report's verdict and stacks become findings",
    )
    run.add_argument(
        "--valgrind",
        action="store_true",
        help="run the child under valgrind memcheck (slow); its errors become findings",
    )
    run.add_argument(
        "--shard",
        metavar="K/N",
        help="run only shard K of N (1-based) of the scenario x engine x allocator runs: a "
        "deterministic split for CI machines; put the shards together with 'memcycle merge'",
    )
    run.add_argument(
        "--fail-on-skip",
        action="store_true",
        help="exit 1 when any run, or any step of a run, was skipped (a capability the engine "
        "lacks, a scenario written for other engines): for CI that must test everything",
    )
    run.set_defaults(func=cmd_run)

    init = sub.add_parser(
        "init",
        help="scaffold an adapter, a cycle table, a pytest entry and CI notes into a project",
        description=inspect.cleandoc(cmd_init.__doc__ or ""),
        epilog="examples:\n"
        "  memcycle init myengine\n"
        "  cd myengine && memcycle run memcycle_scenarios/ --engine memcycle_adapter:make_engine\n"
        "\nexit status:\n"
        "  0  files written\n"
        "  2  a file exists already (nothing written), or bad input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("dir", nargs="?", default=".", metavar="DIR", help="project folder")
    init.add_argument("--name", help="the engine's name in reports (default: DIR's name)")
    init.set_defaults(func=cmd_init)

    merge = sub.add_parser(
        "merge",
        help="merge the reports of several runs (shards) into one",
        description=inspect.cleandoc(cmd_merge.__doc__ or ""),
        epilog="examples:\n"
        "  memcycle run --shard 1/2 --out shards/1     # on one machine\n"
        "  memcycle run --shard 2/2 --out shards/2     # on another\n"
        "  memcycle merge shards/1 shards/2 --out reports/merged\n"
        "  memcycle gate reports/merged --baseline baseline.json\n"
        "\nexit status:\n"
        "  0  merged (whatever the verdicts: the gate judges them)\n"
        "  2  bad input: a missing report, schema versions differ, a run in two shards,\n"
        "     a shard of the split missing (see --allow-partial)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("dirs", nargs="+", metavar="DIR", help="run folders or their report.json")
    merge.add_argument("--out", required=True, metavar="DIR", help="folder for the merged report")
    merge.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge even when shards of a --shard K/N split are missing",
    )
    merge.set_defaults(func=cmd_merge)

    warm = _command(sub, "warmup", "compile refimpl's Numba kernels ahead (CI)", cmd_warmup.__doc__)
    warm.add_argument(
        "--allocator",
        action="append",
        choices=ALLOCATOR_CHOICES,
        help="allocators to warm (repeatable; default all three)",
    )
    warm.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds per warm-up run (default {DEFAULT_TIMEOUT:.0f})",
    )
    warm.set_defaults(func=cmd_warmup)

    fz = sub.add_parser(
        "fuzz",
        help="generate cycle tables until one fails, then shrink it",
        description=inspect.cleandoc(cmd_fuzz.__doc__ or ""),
        epilog="examples:\n"
        "  memcycle fuzz --engine refimpl --budget 300s --seed 1\n"
        "  memcycle fuzz --engine refimpl --allocator checked --fault flat-buffer-double-free\n"
        "  memcycle fuzz --engine mypkg.adapter:make_engine --option buffer_size=64\n"
        "\nexit status:\n"
        "  0  nothing found within the budget\n"
        "  1  a failing table was found (and shrunk to <out>/<name>.min.toml)\n"
        "  2  bad input\n"
        "  3  a try could not run (error: the engine or memcycle could not do its job)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fz.add_argument("--engine", required=True, metavar="NAME", help="engine name or spec")
    fz.add_argument("--allocator", choices=ALLOCATOR_CHOICES, default="numpy")
    fz.add_argument("--fault", action="append", metavar="NAME", help="switch on a refimpl fault")
    fz.add_argument("--budget", default="300s", help="time to search (default 300s)")
    fz.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    fz.add_argument("--out", metavar="DIR", help="output folder (default reports/fuzz-<id>/)")
    fz.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="engine option for every table (refimpl gets small thresholds of its own)",
    )
    fz.add_argument(
        "--threshold",
        action="append",
        type=int,
        metavar="N",
        help="a row count that matters to the engine (default: the integer options)",
    )
    fz.add_argument(
        "--want",
        choices=[v for v in VERDICTS if v not in ("clean", "skipped")],
        metavar="VERDICT",
        help="go on until a try's verdict is this one (e.g. the verdict a fault should give); "
        "other failing tries are shown and passed over",
    )
    fz.add_argument("--no-shrink", action="store_true", help="do not shrink what is found")
    _shrink_options(fz)
    fz.set_defaults(func=cmd_fuzz)

    sh = sub.add_parser(
        "shrink",
        help="shrink a failing run or scenario to the smallest table that fails the same way",
        description=inspect.cleandoc(cmd_shrink.__doc__ or ""),
        epilog="examples:\n"
        "  memcycle shrink reports/20260101-120000-abcdef\n"
        "  memcycle shrink my-scenario.toml --engine refimpl --allocator checked\n"
        "\nexit status:\n"
        "  0  shrunk, and the written table replays with the same verdict\n"
        "  1  the written table replayed differently (a failure that is not deterministic)\n"
        "  2  bad input, or nothing to shrink (the run is clean)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sh.add_argument("target", metavar="RUN_DIR|SCENARIO", help="a run folder, report.json or .toml")
    sh.add_argument("--engine", metavar="NAME", help="default: the run's or scenario's engine")
    sh.add_argument("--allocator", choices=ALLOCATOR_CHOICES, help="default: the run's, or numpy")
    sh.add_argument("--fault", action="append", metavar="NAME", help="switch on a refimpl fault")
    sh.add_argument("--out", metavar="DIR", help="folder for <name>.min.toml")
    sh.add_argument("--budget", default="900s", help="time to shrink (default 900s)")
    _shrink_options(sh)
    sh.set_defaults(func=cmd_shrink)

    ls = _command(sub, "list", "show bundled scenarios, engines and faults", DESCRIPTIONS["list"])
    ls.add_argument(
        "what", nargs="?", default="all", choices=("all", "scenarios", "engines", "faults")
    )
    ls.set_defaults(func=cmd_list)

    rep = _command(
        sub,
        "report",
        "re-render a run folder's report.json (md, html, junit)",
        DESCRIPTIONS["report"],
    )
    rep.add_argument("run_dir", metavar="RUN_DIR", help="reports/<run-id>/ or its report.json")
    rep.set_defaults(func=cmd_report)

    for name, (module, help_text) in _DELEGATES.items():
        p = _command(sub, name, help_text, DESCRIPTIONS[name], add_help=name == delegate)
        if name == delegate:
            mod = importlib.import_module(module)
            mod.add_arguments(p)  # may set its own description
            p.set_defaults(func=mod.main)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    delegate = next((a for a in argv if not a.startswith("-")), None)
    try:
        try:
            ap = build_parser(delegate if delegate in _DELEGATES else None)
        except ImportError as exc:
            raise UsageError(
                f"'memcycle {delegate}' is not available: {_DELEGATES[str(delegate)][0]} "
                f"cannot be imported ({exc})"
            ) from None
        args = ap.parse_args(argv)
        if args.func is None:
            raise UsageError(f"'memcycle {args.command}' is not available")
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"memcycle: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        close_all()
        print("memcycle: interrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:
        close_all()
        print(f"memcycle: interrupted by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except RunInterrupted as exc:  # a command that does not write the partial report itself
        close_all()
        print(f"memcycle: {exc}; every child was stopped", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # `memcycle list | head`: the status stays the command's own
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(getattr(args, "exit_status", 0))


if __name__ == "__main__":
    sys.exit(main())
