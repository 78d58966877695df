"""Version sweep of OmenDB under memcycle (not in CI: one venv per release, minutes each).

For each release: a venv with `omendb==X` and memcycle installed editable from this checkout,
`memcycle run` of the OmenDB scenarios (and the small bundled general ones) on `--engine
omendb`, and every plain-Python reproduction in `benchmarks/omendb_repro/` (no memcycle
imports) run with that venv's Python. The verdict table, the reproductions' results and, per
finding, the first and last release that show it go to `docs/omendb.md` (between markers, so
the hand-written parts of that file stay).

    python benchmarks/omendb_sweep.py                       # the default release spread
    python benchmarks/omendb_sweep.py --releases 0.0.16 0.0.37 --no-general
    python benchmarks/omendb_sweep.py --render-only         # rewrite the doc from saved runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPRO_DIR = ROOT / "benchmarks" / "omendb_repro"
DOC = ROOT / "docs" / "omendb.md"
RELEASES = ("0.0.16", "0.0.20", "0.0.24", "0.0.25", "0.0.30", "0.0.34", "0.0.36", "0.0.37")
GENERAL = (
    "clear-empty-and-twice",
    "search-after-clear",
    "flat-buffer-threshold",
    "dimension-change",
)
BEGIN, END = "<!-- sweep:begin -->", "<!-- sweep:end -->"
# reproduction -> the memcycle scenario that catches the same bug
CAUGHT_BY = {
    "short_after_delete": "omendb-delete-reinsert",
    "short_after_upsert": "omendb-upsert-live",
    "short_after_duplicate_batch": "omendb-duplicate-ids-batch",
    "duplicate_batch_counted_twice": "omendb-duplicate-ids-batch",
    "duplicate_batch_unknown_id": "omendb-duplicate-ids-batch",
    "replaced_row_old_vector_searched": "omendb-upsert-live",
    "persistent_reopen_after_delete": "omendb-persistent-reopen",
    "persistent_compact_reopen": "omendb-persistent-reopen",
}
# reproduction -> words of the memcycle finding that shows the same bug (first match is quoted)
EVIDENCE = {
    "short_after_delete": "short answers",
    "short_after_upsert": "short answers",
    "short_after_duplicate_batch": "short answers",
    "duplicate_batch_counted_twice": "after insert",
    "duplicate_batch_unknown_id": "never-inserted",
    "replaced_row_old_vector_searched": "recall",
    "persistent_reopen_after_delete": "search in cycle 1",
    "persistent_compact_reopen": "after reopen",
}


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def ensure_venv(root: Path, release: str) -> Path:
    """`root/v<release>` with omendb==release and this checkout's memcycle (editable)."""
    venv = root / f"v{release}"
    if not (venv / "bin" / "memcycle").exists():
        _run([sys.executable, "-m", "venv", str(venv)], 300, check=True)
        _run(
            [str(venv / "bin" / "pip"), "install", "-q", "-e", str(ROOT), f"omendb=={release}"],
            1800,
            check=True,
        )
    got = _run([str(venv / "bin" / "python"), "-c", "import omendb; print(omendb.__version__)"], 60)
    if got.stdout.strip() != release:
        raise SystemExit(f"{venv}: omendb {got.stdout.strip()!r} installed, expected {release}")
    return venv


def scenario_paths(general: bool) -> list[str]:
    paths = [str(ROOT / "scenarios" / "omendb")]
    if general:
        paths += [str(ROOT / "scenarios" / f"{name}.toml") for name in GENERAL]
    return paths


def run_release(venv: Path, release: str, out: Path, general: bool, jobs: int) -> dict[str, Any]:
    """memcycle's verdicts and every reproduction's exit code and line for one release."""
    t0 = time.time()
    rep_dir = out / release
    proc = _run(
        [
            str(venv / "bin" / "memcycle"),
            "run",
            *scenario_paths(general),
            "--engine",
            "omendb",
            "--jobs",
            str(jobs),
            "--out",
            str(rep_dir),
        ],
        3600,
    )
    runs: dict[str, Any] = {}
    report = rep_dir / "report.json"
    if report.exists():
        for r in json.loads(report.read_text())["runs"]:
            findings = [f for f in r.get("findings", []) if f.get("verdict") != "skipped"]
            runs[r["scenario"]] = {
                "verdict": r["verdict"],
                "expected": r.get("expected_verdict"),
                "first_finding": (findings or r.get("findings") or [{}])[0].get("summary", ""),
                "findings": [f.get("summary", "") for f in findings],
            }
    return {
        "release": release,
        "memcycle_exit": proc.returncode,
        "memcycle_tail": proc.stderr.strip()[-500:] if proc.returncode not in (0, 1) else "",
        "runs": runs,
        "repros": run_repros(venv),
        "seconds": round(time.time() - t0, 1),
    }


def run_repros(venv: Path) -> dict[str, Any]:
    """Every plain-Python reproduction with this venv's Python: exit code and last line."""
    repros: dict[str, Any] = {}
    for script in sorted(REPRO_DIR.glob("*.py")):
        p = _run([str(venv / "bin" / "python"), str(script)], 600, cwd="/tmp")
        line = (p.stdout.strip().splitlines() or [p.stderr.strip()[-200:]])[-1]
        repros[script.stem] = {"exit": p.returncode, "output": line}
    return repros


def _spans(rels: list[str], shows: list[str]) -> str:
    """'0.0.16 .. 0.0.24, 0.0.36 .. 0.0.37': the runs of consecutive releases showing it."""
    spans: list[list[str]] = []
    for r in rels:
        if r in shows:
            if spans and rels.index(spans[-1][-1]) == rels.index(r) - 1:
                spans[-1].append(r)
            else:
                spans.append([r])
    return ", ".join(f"{g[0]} .. {g[-1]}" if len(g) > 1 else g[0] for g in spans)


def _vkey(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in release.split("."))


def render(results: dict[str, dict[str, Any]], not_run: list[str]) -> str:
    rels = sorted(results, key=_vkey)
    scen = sorted({s for r in results.values() for s in r["runs"]})
    lines = [BEGIN, "", "### Verdicts per release (`memcycle run ... --engine omendb`)", ""]
    lines.append("| scenario | " + " | ".join(rels) + " |")
    lines.append("|---|" + "---|" * len(rels))
    for s in scen:
        cells = [results[r]["runs"].get(s, {}).get("verdict", "—") for r in rels]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Run time per release (s): "
        + ", ".join(f"{r}: {results[r]['seconds']}" for r in rels)
        + (f". Not run: {', '.join(not_run)}." if not_run else ".")
    )
    lines += ["", "### Plain-Python reproductions (exit 1 = the bug shows)", ""]
    repros = sorted({k for r in results.values() for k in r["repros"]})
    lines.append("| reproduction | " + " | ".join(rels) + " | first .. last release showing it |")
    lines.append("|---|" + "---|" * (len(rels) + 1))
    for name in repros:
        shows = [r for r in rels if results[r]["repros"].get(name, {}).get("exit") == 1]
        span = _spans(rels, shows) if shows else "none of these"
        cells = []
        for r in rels:
            code = results[r]["repros"].get(name, {}).get("exit")
            cells.append({1: "**bug**", 0: "ok"}.get(code, f"exit {code}"))
        lines.append(f"| `{name}.py` | " + " | ".join(cells) + f" | {span} |")
    lines += ["", "### Evidence per finding, on the releases whose reproduction shows it", ""]
    for name in repros:
        scenario = CAUGHT_BY.get(name, "?")
        lines.append(f"- `{name}.py` (caught by `{scenario}`):")
        for r in rels:
            rp = results[r]["repros"].get(name, {})
            if rp.get("exit") != 1:
                continue
            run = results[r]["runs"].get(scenario, {})
            word = EVIDENCE.get(name, "")
            quoted = next(
                (f for f in run.get("findings", [run.get("first_finding", "")]) if word in f),
                "",
            )
            lines.append(
                f"  - {r}: reproduction: {rp.get('output', '')!s} — memcycle: "
                f"{run.get('verdict', 'not run')}"
                + (f" ({quoted[:220]})" if quoted else " (no finding of this kind quoted)")
            )
    lines += ["", END]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# OmenDB under memcycle\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--releases", nargs="+", default=list(RELEASES))
    ap.add_argument("--venv-root", default="/tmp/omsweep", help="where the per-release venvs live")
    ap.add_argument("--out", default=str(ROOT / "reports" / "omendb-sweep"))
    ap.add_argument("--no-general", action="store_true", help="OmenDB scenarios only")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--render-only", action="store_true", help="rewrite the doc from saved runs")
    ap.add_argument(
        "--repros-only", action="store_true", help="rerun only the reproductions (venvs must exist)"
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "sweep.json"
    results: dict[str, dict[str, Any]] = json.loads(saved.read_text()) if saved.exists() else {}
    if args.repros_only:
        for release in args.releases:
            if release in results:
                results[release]["repros"] = run_repros(ensure_venv(Path(args.venv_root), release))
                saved.write_text(json.dumps(results, indent=1))
    elif not args.render_only:
        for release in args.releases:
            venv = ensure_venv(Path(args.venv_root), release)
            print(f"== omendb {release}", flush=True)
            results[release] = run_release(venv, release, out, not args.no_general, args.jobs)
            saved.write_text(json.dumps(results, indent=1))
            for s, r in sorted(results[release]["runs"].items()):
                print(f"   {s}: {r['verdict']}", flush=True)
    not_run = [r for r in RELEASES if r not in results]
    write_doc(render(results, not_run))
    print(f"wrote {DOC} ({len(results)} release(s); not run: {', '.join(not_run) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
