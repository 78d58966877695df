"""The CI gate: compare a report with a compact baseline; exit 1 on regression, 2 on bad input."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from factories import MiB, double_free_finding, make_run
from memcycle import gate
from memcycle.records import Report, RunRecord
from memcycle.reporters import render_json


def _report(*runs: RunRecord) -> Report:
    return Report(run_id="r1", created="2026-01-01T00:00:00+00:00", runs=list(runs))


def _faulty(**kw) -> RunRecord:
    kw.setdefault("verdict", "double-free")
    return make_run(
        faults=["sparse-map-recreate"],
        expected="double-free",
        fail_at=2,
        findings=[double_free_finding()],
        **kw,
    )


def _args(run_dir: Path, baseline: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    gate.add_arguments(parser)
    return parser.parse_args([str(run_dir), "--baseline", str(baseline), *extra])


def _write_report(path: Path, report: Report) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.json").write_text(render_json(report), encoding="utf-8")
    return path


def test_identical_run_passes() -> None:
    report = _report(make_run(), _faulty())
    res = gate.diff(gate.make_baseline(report), report)
    assert not res.failed
    assert res.compared == 2
    assert res.improvements == res.new == res.missing == []


def test_worse_verdict_is_a_regression_with_the_finding() -> None:
    base = gate.make_baseline(_report(make_run()))
    now = _report(make_run(verdict="double-free", fail_at=2, findings=[double_free_finding()]))
    [reg] = gate.compare(base, now)
    assert (reg.metric, reg.old, reg.new) == ("verdict", "clean", "double-free")
    assert "new finding at cycle 2" in reg.message


def test_a_fault_no_longer_detected_is_a_regression() -> None:
    base = gate.make_baseline(_report(_faulty()))
    now = _report(_faulty(verdict="clean"))  # severity went down, but the run now fails
    [reg] = gate.compare(base, now)
    assert reg.metric == "passed"


def test_better_verdict_is_an_improvement() -> None:
    base = gate.make_baseline(_report(make_run(verdict="leak", live_growth=MiB)))
    res = gate.diff(base, _report(make_run()))
    assert not res.failed
    assert [c.metric for c in res.improvements] == ["verdict"]


@pytest.mark.parametrize(
    ("old", "new", "regressed"),
    [
        (0, 2 * MiB, True),  # from zero, above the absolute floor
        (0, MiB // 2, False),  # below the absolute floor
        (10 * MiB, 12 * MiB, False),  # +20%: within the relative tolerance
        (10 * MiB, 13 * MiB, True),  # +30% and +3 MiB
        (100, 1000, False),  # x10 but a few hundred bytes: noise
    ],
)
def test_leak_growth_needs_relative_and_absolute_excess(
    old: int, new: int, regressed: bool
) -> None:
    base = gate.make_baseline(_report(make_run(leaked_growth=old)))
    regs = gate.compare(base, _report(make_run(leaked_growth=new)))
    assert [r.metric for r in regs] == (["leak"] if regressed else [])


def test_peak_and_time_regressions_and_tolerance_flags() -> None:
    base = gate.make_baseline(_report(make_run(peak_bytes=40 * MiB, seconds=2.0)))
    now = _report(make_run(peak_bytes=60 * MiB, seconds=9.0))
    regs = gate.compare(base, now)
    assert sorted(r.metric for r in regs) == ["peak", "time"]
    peak = next(r for r in regs if r.metric == "peak")
    assert "+50%" in peak.message and "40.0 MiB -> 60.0 MiB" in peak.message
    loose = gate.Tolerances(peak_rel=1.0, time_rel=10.0)
    assert gate.compare(base, now, loose) == []
    # 2x slower but only by 1 s: not a regression on a noisy machine
    assert gate.compare(base, _report(make_run(seconds=3.5))) == []


def test_leaked_per_cycle_ignores_the_first_cycle_and_uses_the_ledger_without_memray() -> None:
    run = make_run(live_growth=MiB)
    for c in run.cycles:
        c.memray_leaked_bytes = None
    assert gate.leaked_bytes_per_cycle(run) == pytest.approx(MiB)
    run.cycles[0].live_bytes = 50 * MiB  # a first-cycle cache does not count
    assert gate.leaked_bytes_per_cycle(run) == pytest.approx(MiB)
    assert gate.leaked_bytes_per_cycle(make_run(n_cycles=1)) is None


def test_new_and_missing_runs() -> None:
    base = gate.make_baseline(_report(make_run(scenario="gone")))
    res = gate.diff(base, _report(make_run(scenario="fresh")))
    assert not res.failed
    assert [c.key for c in res.new] == ["fresh|refimpl|checked|-"]
    assert [c.key for c in res.missing] == ["gone|refimpl|checked|-"]
    failing_new = gate.diff(base, _report(make_run(scenario="fresh", verdict="leak")))
    assert [c.metric for c in failing_new.regressions] == ["passed"]


def test_skipped_where_it_used_to_run_is_a_regression() -> None:
    base = gate.make_baseline(_report(make_run()))
    [reg] = gate.compare(base, _report(make_run(verdict="skipped")))
    assert reg.new == "skipped"


def test_update_then_gate_via_main(tmp_path: Path) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run(), _faulty()))
    baseline = tmp_path / "reports" / "baseline.json"
    out = io.StringIO()
    assert gate.main(_args(run_dir, baseline, "--update"), out) == 0
    data = json.loads(baseline.read_text())
    assert data["kind"] == "memcycle-baseline"
    entry = data["runs"]["repeated-clear-insert|refimpl|checked|sparse-map-recreate"]
    assert set(entry) == {"verdict", "expected", "leaked_bytes_per_cycle", "peak_bytes", "seconds"}
    assert gate.main(_args(run_dir, baseline), out) == 0
    assert "gate passed" in out.getvalue()

    worse = _write_report(tmp_path / "run2", _report(make_run(verdict="use-after-free"), _faulty()))
    out = io.StringIO()
    assert gate.main(_args(worse, baseline), out) == 1
    text = out.getvalue()
    assert "REGRESSION" in text and "clean -> use-after-free" in text and "gate FAILED" in text
    # flags reach the tolerances
    assert (
        gate.tolerances_from(_args(worse, baseline, "--tolerance-leak-bytes", "2MiB")).leak_abs
        == 2 * MiB
    )
    assert gate.tolerances_from(_args(worse, baseline, "--tolerance-peak", "50%")).peak_rel == 0.5


def test_missing_or_invalid_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run()))
    assert gate.main(_args(run_dir, tmp_path / "nope.json")) == 2
    assert "baseline not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert gate.main(_args(run_dir, bad)) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"runs": {}}))
    assert gate.main(_args(run_dir, bad)) == 2
    assert "not a memcycle baseline" in capsys.readouterr().err
    assert gate.main(_args(tmp_path / "empty", bad)) == 2
    assert "report not found" in capsys.readouterr().err
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps({"schema_version": 0}))
    assert gate.main(_args(tmp_path / "old", bad)) == 2
    assert "schema_version" in capsys.readouterr().err


def test_parse_size() -> None:
    assert gate.parse_size("1MiB") == MiB
    assert gate.parse_size("512k") == 512 * 1024
    assert gate.parse_size("1048576") == MiB
    with pytest.raises(argparse.ArgumentTypeError):
        gate.parse_size("lots")


def test_memcycle_gate_and_report_commands(tmp_path: Path) -> None:
    """The CLI's `gate` and `report` subcommands reach this module and the reporters."""
    from memcycle.cli import main as cli_main

    run_dir = _write_report(tmp_path / "run", _report(make_run(), _faulty()))
    baseline = tmp_path / "baseline.json"
    assert cli_main(["gate", str(run_dir), "--baseline", str(baseline)]) == 2
    assert cli_main(["gate", str(run_dir), "--baseline", str(baseline), "--update"]) == 0
    assert cli_main(["gate", str(run_dir), "--baseline", str(baseline)]) == 0
    worse = _write_report(tmp_path / "worse", _report(make_run(verdict="crash"), _faulty()))
    assert cli_main(["gate", str(worse), "--baseline", str(baseline)]) == 1
    assert cli_main(["report", str(run_dir)]) == 0
    for name in ("summary.md", "index.html", "junit.xml"):
        assert (run_dir / name).stat().st_size > 0
