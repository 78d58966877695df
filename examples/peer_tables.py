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

from harness.records import Report, RunRecord


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


def scenario_table(scenario: str, runs: list[RunRecord]) -> str:
    head = ["Cycle", "dim"]
    for run in runs:
        head += [f"{run.engine} RSS MiB", f"{run.engine} memray live KiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    n = max((len(r.cycles) for r in runs), default=0)
    for i in range(n):
        row: list[str] = []
        for run in runs:
            c = run.cycles[i] if i < len(run.cycles) else None
            if not row:
                row = [str(c.cycle if c else i + 1), str(c.dimension if c else "-")]
            row += [_mib(c.rss_bytes if c else None), _kib(c.memray_leaked_bytes if c else None)]
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    for run in runs:
        clear = run.capabilities.get("clear", "?")
        skipped = skipped_reasons(run)
        extra = f"; skipped: {'; '.join(skipped)}" if skipped else ""
        findings = "; ".join(f.summary for f in run.findings[:3])
        found = f"; findings: {findings}" if findings else ""
        notes.append(f"- **{run.engine}**: verdict `{run.verdict}`, clear `{clear}`{extra}{found}")
    return f"### {scenario}\n\n" + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


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
