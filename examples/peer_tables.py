"""Side-by-side per-cycle tables from several `memcycle run` reports (one engine each).

    python -m examples.peer_tables reports/refimpl reports/hnswlib reports/faiss reports/usearch

prints, per scenario, one Markdown table: Cycle | dim | then, for each engine,
RSS at the end of the cycle and the memray bytes allocated from engine code and
still live at the end of the cycle; then one line per engine with the verdict,
the clear strategy and the reasons for skipped steps. It only reads report.json
(`harness.records.Report`), as every reporter does; docs/peers.md is its output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memcycle.records import Report, RunRecord


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**10:,.1f}"


def load(run_dir: Path) -> Report:
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))


def skipped_reasons(run: RunRecord) -> list[str]:
    seen: dict[str, int] = {}
    for step in run.steps:
        if step.skipped:
            seen[step.skipped] = seen.get(step.skipped, 0) + 1
    return [f"{reason} ({n} steps)" for reason, n in seen.items()]


def not_run(run: RunRecord) -> bool:
    """Skipped as a whole (scenario for other engines, or a capability the engine lacks)."""
    return run.verdict == "skipped" and not run.steps


def scenario_table(scenario: str, runs: list[RunRecord]) -> str:
    ran = [r for r in runs if not not_run(r)]
    notes: list[str] = []
    lines: list[str] = []
    if ran:
        head = ["Cycle", "dim"]
        for run in ran:
            head += [f"{run.engine} RSS MiB", f"{run.engine} memray live KiB"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i in range(max(len(r.cycles) for r in ran)):
            row: list[str] = []
            for run in ran:
                c = run.cycles[i] if i < len(run.cycles) else None
                if not row:
                    row = [str(c.cycle if c else i + 1), str(c.dimension if c else "-")]
                row += [_mib(c and c.rss_bytes), _kib(c and c.memray_leaked_bytes)]
            lines.append("| " + " | ".join(row) + " |")
    for run in ran:
        skipped = skipped_reasons(run)
        extra = f"; steps skipped: {'; '.join(skipped)}" if skipped else ""
        findings = "; ".join(f.summary for f in run.findings[:3])
        found = f"; findings: {findings}" if findings else ""
        clear = run.capabilities.get("clear", "?")
        notes.append(
            f"- **{run.engine}**: verdict `{run.verdict}` (clear: {clear}, "
            f"{run.seconds:.1f} s){extra}{found}"
        )
    notes += [
        f"- **{r.engine}**: not run (skipped: {r.exit.get('reason', '?')})"
        for r in runs
        if not_run(r)
    ]
    table = "\n".join(lines) + "\n\n" if lines else ""
    return f"### {scenario}\n\n{table}" + "\n".join(notes) + "\n"


def render(reports: list[Report]) -> str:
    by_scenario: dict[str, list[RunRecord]] = {}
    for report in reports:
        for run in report.runs:
            by_scenario.setdefault(run.scenario, []).append(run)
    return "\n".join(scenario_table(name, runs) for name, runs in by_scenario.items())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (or report.json files)")
    args = ap.parse_args(argv)
    print(render([load(p) for p in args.runs]))


if __name__ == "__main__":
    main()
