"""`memcycle`: run cycle tables in isolated children, list what exists, report, gate.

Exit status: 0 when every run's verdict is what its scenario expects or the
run was skipped (shown as SKIP, never PASS), 1 when one differs, 2 for bad input (missing file, malformed scenario, unknown
engine, allocator or fault) — always a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .bundled import scenarios_dir
from .engines.base import EngineError
from .engines.registry import BUILTIN, ENGINE_NAMES, load_factory
from .records import VERDICTS, Report, RunRecord
from .runner import DEFAULT_TIMEOUT, RunSpec, new_run_id, run_many
from .scenario import Scenario, ScenarioError, find_scenarios, load_scenario
from .shard import Shard, ShardError, parse_shard, select

if TYPE_CHECKING:
    from .shrink import ShrinkResult

BUNDLED = scenarios_dir()
ALLOCATOR_CHOICES = ("numpy", "checked", "raw")
MAX_TABLE_ROWS = 12


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


# -- helpers -----------------------------------------------------------------------
def _fault_names() -> tuple[str, ...]:
    from memcycle.refimpl.faults import FAULT_NAMES

    return FAULT_NAMES


def _check_engine(spec: str) -> None:
    if spec in BUILTIN:
        return
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise UsageError(
            f"unknown engine {spec!r}; expected one of {', '.join(ENGINE_NAMES)} "
            "or a 'package.module:factory' spec"
        )
    if module.endswith(".py"):
        if not Path(module).is_file():
            raise UsageError(f"engine module file {module!r} does not exist")
        return
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        load_factory(spec)
    except EngineError as exc:
        raise UsageError(str(exc)) from None


def _mib(x: int | None) -> str:
    return "" if x is None else f"{x / (1 << 20):.1f}"


def _kib(x: int | None) -> str:
    return "" if x is None else f"{x / 1024:.0f}"


def format_run(rec: RunRecord) -> str:
    """A run's header line, its first findings and its cycle table (reference-note form)."""
    mark = "PASS" if rec.passed else ("SKIP" if rec.verdict == "skipped" else "FAIL")
    faults = "+".join(rec.faults) or "-"
    lines = [
        f"{rec.scenario}  engine={rec.engine} allocator={rec.allocator} faults={faults}  "
        f"verdict={rec.verdict_text} expected={rec.expected_verdict}  {mark}  ({rec.seconds:.1f} s)"
    ]
    if rec.verdict == "skipped":
        # the whole scenario (a requirement the engine lacks) or some of its steps
        reason = rec.exit.get("reason") or (rec.findings[0].summary if rec.findings else "")
        lines.append(f"  skipped: {reason}")
        if not rec.steps:
            return "\n".join(lines)
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
    lines.append(
        "| Cycle | Dim | Live blocks after clear | Engine live KiB (memray) | RSS MiB | Status |"
    )
    lines.append("|---|---|---|---|---|---|")
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
        lines.append(
            f"| {c.cycle} | {c.dimension or ''} | {blocks} | {_kib(c.memray_leaked_bytes)} | "
            f"{_mib(c.rss_bytes)} | {status} |"
        )
    if prev != len(rows) - 1:
        lines.append(f"| ... | | | | | ({len(rows) - prev - 1} cycles) |")
    return "\n".join(lines)


class Progress:
    """A one-line bar on a terminal; one plain line per finished run otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, rec: RunRecord) -> None:
        self.done += 1
        mark = "ok" if rec.passed else ("skip" if rec.verdict == "skipped" else "FAIL")
        label = f"{rec.scenario} [{rec.engine}/{rec.allocator}] {rec.verdict_text} ({mark})"
        if self.tty:
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\r[{bar}] {self.done}/{self.total} {time.perf_counter() - self.t0:5.0f}s "
                f"{label[:60]:<60}"
            )
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {label} {rec.seconds:.1f}s\n")
        self.stream.flush()


def _write_report(report: Report, out: Path) -> list[str]:
    """report.json always; the other formats when the reporters are there."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    try:
        from .reporters import write_all  # type: ignore[attr-defined]
    except ImportError:
        return [str(out / "report.json")]
    return [str(p) for p in write_all(report, out).values()]


# -- subcommands -------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
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
    engines: list[str | None] = list(args.engine) if args.engine else [None]
    allocators = args.allocator or ["numpy"]
    items = [
        RunSpec(
            scenario=sc.path,
            engine=eng,
            allocator=alloc,
            faults=tuple(args.fault or ()),
            memray=args.memray,
            native=args.native,
            timeout=args.timeout,
            flamegraphs=args.flamegraphs,
            trace_python_allocators=args.trace_python_allocators,
        )
        for sc in scenarios
        for eng in engines
        for alloc in allocators
    ]
    if shard is not None:
        items = _select_shard(items, scenarios, shard)
    run_id = new_run_id()
    out = Path(args.out) if args.out else Path("reports") / run_id
    progress = Progress(len(items))
    report = run_many(
        items,
        out,
        jobs=args.jobs,
        progress=progress,
        command=["memcycle", *sys.argv[1:]],
        run_id=run_id,
    )
    written = _write_report(report, out)
    for rec in report.runs:
        print()
        print(format_run(rec))
    failed = [r for r in report.runs if not r.passed and r.verdict != "skipped"]
    skipped = [r for r in report.runs if not r.passed and r.verdict == "skipped"]
    print()
    print(
        f"{len(report.runs)} run(s), {len(failed)} with an unexpected verdict, "
        f"{len(skipped)} skipped (not passed); "
        f"report: {out / 'report.json'}"
        + (f" (+{len(written) - 1} more)" if len(written) > 1 else "")
    )
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what in ("all", "scenarios"):
        print("Scenarios (bundled, scenarios/):")
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


def _parse_options(items: list[str] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad --option {item!r}; expected KEY=VALUE, e.g. buffer_size=16")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


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
    ap = argparse.ArgumentParser(
        prog="memcycle",
        description="Replay clear/insert cycle tables against vector-index engines in isolated "
        "child processes, record memory (memray, tracemalloc, RSS, Numba NRT, allocator ledger) "
        "and judge every cycle.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run scenarios and judge them", description=cmd_run.__doc__)
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
        default="all",
        help="memray flamegraph HTML for every run, only runs with an unexpected verdict, or "
        "none (rendering takes a few seconds per run; default all)",
    )
    run.add_argument("--out", metavar="DIR", help="output folder (default reports/<run-id>/)")
    run.add_argument("--jobs", type=int, default=1, metavar="N", help="children run at once")
    run.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds per run before the child is killed (default {DEFAULT_TIMEOUT:.0f})",
    )
    run.add_argument(
        "--shard",
        metavar="K/N",
        help="run only shard K of N (1-based) of the scenario x engine x allocator runs: a "
        "deterministic split for CI machines; put the shards together with 'memcycle merge'",
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

    ls = sub.add_parser("list", help="show bundled scenarios, engines and faults")
    ls.add_argument(
        "what", nargs="?", default="all", choices=("all", "scenarios", "engines", "faults")
    )
    ls.set_defaults(func=cmd_list)

    rep = sub.add_parser("report", help="re-render a run folder's report.json (md, html, junit)")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="reports/<run-id>/ or its report.json")
    rep.set_defaults(func=cmd_report)

    for name, (module, help_text) in _DELEGATES.items():
        p = sub.add_parser(name, help=help_text, add_help=name == delegate)
        if name == delegate:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(func=mod.main)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
        print("memcycle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `memcycle list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
