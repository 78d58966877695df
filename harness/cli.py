"""`memcycle`: run cycle tables in isolated children, list what exists, report, gate.

Exit status: 0 when every run's verdict is what its scenario expects or the
run was skipped (shown as SKIP, never PASS), 1 when one differs, 2 for bad input (missing file, malformed scenario, unknown
engine, allocator or fault) — always a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .bundled import scenarios_dir
from .engines.base import EngineError
from .engines.registry import BUILTIN, ENGINE_NAMES, load_factory
from .records import Report, RunRecord
from .runner import DEFAULT_TIMEOUT, RunSpec, new_run_id, run_many
from .scenario import ScenarioError, find_scenarios, load_scenario

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


def format_run(rec: RunRecord) -> str:
    """A run's header line, its first findings and its cycle table (reference-note form)."""
    mark = "PASS" if rec.passed else ("SKIP" if rec.verdict == "skipped" else "FAIL")
    faults = "+".join(rec.faults) or "-"
    lines = [
        f"{rec.scenario}  engine={rec.engine} allocator={rec.allocator} faults={faults}  "
        f"verdict={rec.verdict} expected={rec.expected_verdict}  {mark}  ({rec.seconds:.1f} s)"
    ]
    if rec.verdict == "skipped":
        # the whole scenario (a requirement the engine lacks) or some of its steps
        reason = rec.exit.get("reason") or (rec.findings[0].summary if rec.findings else "")
        lines.append(f"  skipped: {reason}")
        if not rec.steps:
            return "\n".join(lines)
    for f in [f for f in rec.findings if f.verdict != "skipped"][:3]:
        lines.append(f"  - {f.verdict}: {f.summary}")
        growth = f.evidence.get("top_growth") or []
        if growth and growth[0].get("stack"):
            where = " <- ".join(growth[0]["stack"][:3])
            lines.append(f"      grew {growth[0]['bytes'] / 1024:.0f} KiB at {where}")
    if len(rec.findings) > 3:
        lines.append(f"  - ... {len(rec.findings) - 3} more finding(s)")
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
        label = f"{rec.scenario} [{rec.engine}/{rec.allocator}] {rec.verdict} ({mark})"
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
            sanitizer=args.sanitizer,
            valgrind=args.valgrind,
        )
        for sc in scenarios
        for eng in engines
        for alloc in allocators
    ]
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


_DELEGATES = {
    "gate": ("memcycle.gate", "compare a run with the baseline; non-zero exit on regression"),
    "faults": ("memcycle.faultmatrix", "run the fault matrix (every fault x allocator)"),
}


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
    run.set_defaults(func=cmd_run)

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
