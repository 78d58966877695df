"""`memcycle run`: run scenarios (cycle tables) against engines, each run in its own child,
and judge every cycle; the report goes to --out."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from memcycle.batch import RunInterrupted, run_many
from memcycle.checks import was_skipped
from memcycle.engines.registry import ENGINE_NAMES
from memcycle.errors import UsageError
from memcycle.isolation import ChildRegistry
from memcycle.kernelcache import KernelCache, kernel_cache
from memcycle.preflight import (
    check_out_dir,
    check_run,
    check_timeout,
    clear_earlier_run,
    unique_scenarios,
)
from memcycle.progress import Progress, compile_seconds, fancy_output, run_mark
from memcycle.records import Report, RunRecord
from memcycle.report_files import QUICK_FORMATS, write_report
from memcycle.reporters.console import format_run
from memcycle.runner import (
    DEFAULT_TIMEOUT,
    RunSpec,
    new_run_id,
)
from memcycle.scenario import Scenario, ScenarioError, find_scenarios, load_scenario
from memcycle.shard import Shard, ShardError, parse_shard, select
from memcycle.warmup import run_warmup

from .base import INTERRUPT_CODES, Command, HelpFormatter
from .common import (
    ALLOCATOR_CHOICES,
    BUNDLED,
    StopSignals,
    add_fault_option,
    add_jobs_option,
    check_engine,
    check_fault_names,
    check_jobs,
    check_native_tool,
    command_line,
    parse_options,
    scenario_args,
)

# engines that run refimpl's Numba kernels (the cold-start notice is about them)
NUMBA_ENGINES = ("refimpl", "refimpl-global")


def _uses_numba(scenarios: Sequence[Scenario], engines: Sequence[str | None]) -> bool:
    return any((e or sc.default_engine()) in NUMBA_ENGINES for sc in scenarios for e in engines)


def _cold_notice(cache: KernelCache) -> str:
    return (
        "memcycle: compiling refimpl's Numba kernels first, in unrecorded warm-up runs (first "
        f"run only: the cache {cache.directory} has none yet; a minute or more on 2 cores), "
        "then the runs start warm. `memcycle warmup` does this ahead (CI)."
    )


def _warm_up_first(
    items: Sequence[RunSpec], scenarios: Sequence[Scenario], registry: ChildRegistry
) -> int | None:
    """Compile refimpl's kernels on a cold cache before any recorded run, for the metrics and
    allocators those runs use. Recording the compile made it about 3x slower and left the
    parent a capture of millions of LLVM allocations to read (docs/speed.md, cold start); a
    warm-up that fails is only noted, the runs then compile what is left. Returns the signal
    number when interrupted (nothing recorded has started then), else None."""
    by_path = {sc.path: sc for sc in scenarios}
    numba_items = [
        (it, by_path[it.scenario])
        for it in items
        if it.scenario in by_path
        and (it.engine or by_path[it.scenario].default_engine()) in NUMBA_ENGINES
    ]
    allocators = sorted({it.allocator for it, _ in numba_items})
    metrics = sorted({sc.metric for _, sc in numba_items})
    try:
        warm = run_warmup(
            allocators, metrics=metrics, registry=registry, notice=_cold_notice(kernel_cache())
        )
    except RunInterrupted as exc:
        return exc.signum
    bad, compiled = warm.not_clean, warm.compile_seconds
    print(
        f"memcycle: warm-up ({len(warm.runs)} unrecorded run(s): {', '.join(metrics)} x "
        f"{', '.join(allocators)}) took {warm.seconds:.1f} s"
        + (f", {compiled:.1f} s of it compiling" if compiled is not None else "")
        + (
            f"; {len(bad)} did not come back clean ({bad[0].verdict}), the runs compile the rest"
            if bad
            else ""
        ),
        file=sys.stderr,
    )
    return None


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
    written = write_report(report, out, QUICK_FORMATS)
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run scenarios (cycle tables) against engines, each run in its own child process, and
    judge every cycle: leaks, double/invalid frees, use-after-free, overflows, crashes, wrong
    results, lifecycle errors, timeouts. Progress shows each child's cycle and step; the report
    (report.json, summary.md, index.html, junit.xml, memray captures) goes to --out."""
    shard = _parse_shard(args.shard)
    paths = scenario_args(args.paths) if args.paths else [BUNDLED]
    try:
        files = find_scenarios(paths, include_faults=bool(args.paths))
        scenarios = [load_scenario(f) for f in files]
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    if not scenarios:
        raise UsageError(f"no scenario files (*.toml) under {', '.join(map(str, paths))}")
    for e in args.engine or []:
        check_engine(e)
    check_fault_names(list(args.fault or []) + [f for sc in scenarios for f in sc.faults])
    check_jobs(args.jobs)
    check_native_tool(args.sanitizer, args.valgrind)
    engines: list[str | None] = list(args.engine) if args.engine else [None]
    allocators = args.allocator or ["numpy"]
    run_id = new_run_id()
    out = Path(args.out) if args.out else Path("reports") / run_id
    options = parse_options(args.engine_option, "--engine-option")
    # a PreflightError is a UsageError: one line, exit 2
    if args.timeout is not None:
        check_timeout(args.timeout)
    scenarios = unique_scenarios(scenarios)
    for sc in scenarios:
        for eng in engines:
            for alloc in allocators:
                check_run(sc, eng or sc.default_engine(), alloc, args.fault or (), options)
    earlier = check_out_dir(out)
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
    cold = _uses_numba(scenarios, engines) and kernel_cache().cold
    registry = ChildRegistry()
    with StopSignals(registry) as stop:
        if cold and (signum := _warm_up_first(items, scenarios, registry)) is not None:
            print(
                f"memcycle: interrupted by {signal.Signals(signum).name} while compiling the "
                "kernels; no run had started, nothing written",
                file=sys.stderr,
            )
            return 128 + signum
        progress = Progress(len(items))  # after the warm-up's own display: one live at a time
        progress.note(
            f"memcycle: {len(items)} run(s), {min(args.jobs, len(items))} at a time; report in "
            f"{out}/",
            style="dim",
        )
        from memcycle.reporters.plots import prefetch_matplotlib  # `memcycle list` never pays it

        prefetch_matplotlib()  # the HTML report's plot import overlaps the runs (reporters.plots)
        try:
            report = run_many(
                items,
                out,
                jobs=args.jobs,
                progress=progress,
                on_event=progress.on_event,
                command=command_line(),
                run_id=run_id,
                registry=registry,
            )
        except RunInterrupted as exc:
            progress.close()
            return _finish_interrupted(exc.report, out, exc.signum, t0)
        finally:
            progress.close()
        stop.finishing()
        written = write_report(report, out)
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


EPILOG = (
    """examples:
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
2 cores); memcycle says so when it starts; `memcycle warmup` does it ahead."""
)


def prepare_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=(
            "scenario files or directories, or bundled scenarios by the name `memcycle list` "
            "shows (repeated-clear-insert, faults/flat-buffer-leak); default: the bundled "
            "scenarios, without faults/ and omendb/"
        ),
    )
    parser.add_argument(
        "--engine",
        action="append",
        metavar="NAME",
        help=f"engine: {', '.join(ENGINE_NAMES)} or package.module:factory "
        "(repeatable; default: each scenario's own engine, else refimpl)",
    )
    parser.add_argument(
        "--allocator",
        action="append",
        choices=ALLOCATOR_CHOICES,
        help="refimpl allocator (repeatable; default numpy)",
    )
    add_fault_option(parser)
    parser.add_argument(
        "--memray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record allocations with memray (default on; off uses tracemalloc instead)",
    )
    parser.add_argument("--native", action="store_true", help="memray native stack traces")
    parser.add_argument(
        "--trace-python-allocators",
        action="store_true",
        help="memray traces the Python allocators too, so a leak of Python objects shows "
        "with its stack (without it they are 1 MiB arena blocks); slower, bigger captures",
    )
    parser.add_argument(
        "--flamegraphs",
        choices=("all", "failed", "none"),
        default="failed",
        help="memray flamegraph HTML (self-contained, works offline) for runs with an "
        "unexpected verdict (default), every run, or none; each page is a few MB and takes "
        "a few seconds to render",
    )
    parser.add_argument(
        "--engine-option",
        action="append",
        metavar="KEY=VALUE",
        help="an engine option for every run (repeatable), over the scenario's [engine] table, "
        "e.g. --engine-option mode=persistent or --engine-option M=32",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default reports/<run-id>/); an earlier run in it is replaced "
        "whole (its report files and run folders removed first, and said so)",
    )
    add_jobs_option(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds per run before the child's stacks are dumped and it is killed (default: "
        f"the scenario's `timeout`, else {DEFAULT_TIMEOUT:.0f}; stretched under --sanitizer "
        "and --valgrind)",
    )
    parser.add_argument(
        "--sanitizer",
        choices=("asan", "ubsan"),
        help="run the child with the sanitizer runtime preloaded, for an engine built with "
        "-fsanitize=address (or undefined); the report's verdict and stacks become findings",
    )
    parser.add_argument(
        "--valgrind",
        action="store_true",
        help="run the child under valgrind memcheck (slow); its errors become findings",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="run only shard K of N (1-based) of the scenario x engine x allocator runs: a "
        "deterministic split for CI machines; put the shards together with 'memcycle merge'",
    )
    parser.add_argument(
        "--fail-on-skip",
        action="store_true",
        help="exit 1 when any run, or any step of a run, was skipped (a capability the engine "
        "lacks, a scenario written for other engines): for CI that must test everything",
    )


COMMAND = Command(
    prepare_parser=prepare_parser,
    run=cmd_run,
    epilog=EPILOG,
    formatter_class=HelpFormatter,
)
