"""The CI gate: compare a report with a compact baseline; it must never pass by accident."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
from factories import MiB, double_free_finding, make_run
from memcycle import gate
from memcycle.cli import main as cli_main
from memcycle.commands import gate as gate_command
from memcycle.records import Finding, Report, RunRecord, StepEvent
from memcycle.reporters import render_json
from peers import need_peer

HOST = {"python": "3.11.9", "platform": "Linux-6.8-x86_64", "machine": "x86_64", "cpus": 2}


def _report(*runs: RunRecord, host: dict[str, Any] | None = None) -> Report:
    return Report(
        run_id="r1",
        created="2026-01-01T00:00:00+00:00",
        runs=list(runs),
        host=dict(HOST if host is None else host),
    )


def _timed(
    run: RunRecord,
    step_seconds: float,
    compile_seconds: float | None = 0.0,
    engine_peak: int | None = None,
) -> RunRecord:
    """`run` with one step of `step_seconds` (+ compile) and, optionally, a memray engine peak."""
    run.steps = [
        StepEvent(
            cycle=1,
            step=0,
            op="insert",
            ok=True,
            seconds=step_seconds + (compile_seconds or 0.0),
            count=100,
            compile_seconds=compile_seconds,
        )
    ]
    run.compile_seconds = compile_seconds or 0.0
    run.seconds = step_seconds + (compile_seconds or 0.0) + 1.0
    if engine_peak is not None:
        run.memray = {**(run.memray or {}), "engine_peak_bytes": engine_peak}
    return run


def _faulty(**kw: Any) -> RunRecord:
    kw.setdefault("verdict", "double-free")
    return make_run(
        faults=["sparse-map-recreate"],
        expected="double-free",
        fail_at=2,
        findings=[double_free_finding()],
        **kw,
    )


def _argv(run_dir: Path, baseline: Path | None, *extra: str) -> list[str]:
    flags = ["--baseline", str(baseline)] if baseline is not None else []
    return [str(run_dir), *flags, *extra]


def _args(run_dir: Path, baseline: Path | None, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    gate_command.prepare_parser(parser)
    return parser.parse_args(_argv(run_dir, baseline, *extra))


def _gate(run_dir: Path, baseline: Path | None, *extra: str) -> int:
    """`memcycle gate ...` through the dispatcher, which prints a command's error and maps it
    to its exit status (the gate itself raises)."""
    return cli_main(["gate", *_argv(run_dir, baseline, *extra)])


def _write_report(path: Path, report: Report) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.json").write_text(render_json(report), encoding="utf-8")
    return path


def _write_baseline(path: Path, report: Report, edit: Any = None) -> Path:
    data = gate.make_baseline(report)
    if edit is not None:
        edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("memcycle: error: "), err
    return lines[0]


# --- verdicts -------------------------------------------------------------------
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


def test_skipped_where_it_used_to_run_is_a_regression() -> None:
    base = gate.make_baseline(_report(make_run(), make_run(scenario="other")))
    [reg] = gate.compare(base, _report(make_run(verdict="skipped"), make_run(scenario="other")))
    assert reg.new == "skipped"


def test_an_error_run_is_a_regression_and_is_not_counted_as_compared() -> None:
    base = gate.make_baseline(_report(make_run(), make_run(scenario="other")))
    errored = make_run(verdict="error", findings=[Finding("error", None, None, None, "no faiss")])
    res = gate.diff(base, _report(errored, make_run(scenario="other")))
    assert [(c.metric, c.new) for c in res.regressions] == [("verdict", "error")]
    assert res.compared == 1 and res.matched == 2


# --- numbers --------------------------------------------------------------------
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
    base = gate.make_baseline(_report(_timed(make_run(peak_bytes=40 * MiB), 2.0)))
    now = _report(_timed(make_run(peak_bytes=60 * MiB), 9.0))
    regs = gate.compare(base, now)
    assert sorted(r.metric for r in regs) == ["process-peak", "time"]
    peak = next(r for r in regs if r.metric == "process-peak")
    assert "process peak 40.0 MiB -> 60.0 MiB (+50%, +20.0 MiB)" in peak.message
    time = next(r for r in regs if r.metric == "time")
    assert "time without compile 2.00 s -> 9.00 s" in time.message
    loose = gate.Tolerances(peak_rel=1.0, time_rel=10.0)
    assert gate.compare(base, now, loose) == []
    # 2x slower but only by 1.5 s: not a regression on a noisy machine
    assert gate.compare(base, _report(_timed(make_run(peak_bytes=40 * MiB), 3.5))) == []


def test_leaked_per_cycle_ignores_the_first_cycle_and_uses_the_ledger_without_memray() -> None:
    run = make_run(live_growth=MiB)
    for c in run.cycles:
        c.memray_leaked_bytes = None
    assert gate.leaked_bytes_per_cycle(run) == pytest.approx(MiB)
    run.cycles[0].live_bytes = 50 * MiB  # a first-cycle cache does not count
    assert gate.leaked_bytes_per_cycle(run) == pytest.approx(MiB)
    assert gate.leaked_bytes_per_cycle(make_run(n_cycles=1)) is None


# --- compile time is kept out ---------------------------------------------------
def test_a_cold_cache_run_passes_against_a_warm_baseline_where_raw_figures_fail() -> None:
    """The figures seen on a cold cache: 8 s -> 157 s, process peak +165%, engine peak equal."""
    warm = _timed(make_run(peak_bytes=85 * MiB), 1.0, 0.0, engine_peak=3 * MiB)
    base = gate.make_baseline(_report(warm))
    assert base["numba_cache"] == "warm"
    cold = _timed(make_run(peak_bytes=225 * MiB), 1.5, 150.0, engine_peak=3 * MiB)
    res = gate.diff(base, _report(cold))
    assert not res.failed, res.regressions
    assert any("this run cold (150.0 s compiling)" in n for n in res.notes), res.notes
    # the same runs without the compile and engine-peak measurements fail on both figures
    raw_base = gate.make_baseline(_report(_timed(make_run(peak_bytes=85 * MiB), 1.0, None)))
    raw = _timed(make_run(peak_bytes=225 * MiB), 151.5, None)
    regs = gate.compare(raw_base, _report(raw))
    assert sorted(r.metric for r in regs) == ["process-peak", "time"]


def test_a_cold_process_peak_is_not_compared_and_the_gate_says_so() -> None:
    base = gate.make_baseline(_report(_timed(make_run(peak_bytes=85 * MiB), 1.0, 0.0)))
    cold = _timed(make_run(peak_bytes=225 * MiB), 1.0, 30.0)  # no memray engine peak
    res = gate.diff(base, _report(cold))
    assert not res.failed
    assert any("process peak not compared (a cold Numba cache" in n for n in res.notes)


def test_engine_and_process_peaks_are_both_compared_on_a_warm_cache() -> None:
    """The process peak also sees native threads' allocations, which memray cannot attribute."""
    base = gate.make_baseline(_report(_timed(make_run(peak_bytes=80 * MiB), 1.0, 0.0, 3 * MiB)))
    native_growth = _timed(make_run(peak_bytes=200 * MiB), 1.0, 0.0, engine_peak=3 * MiB)
    [reg] = gate.compare(base, _report(native_growth))
    assert reg.metric == "process-peak" and "process peak 80.0 MiB -> 200.0 MiB" in reg.message
    engine_growth = _timed(make_run(peak_bytes=80 * MiB), 1.0, 0.0, engine_peak=30 * MiB)
    [reg] = gate.compare(base, _report(engine_growth))
    assert reg.metric == "peak" and "engine peak 3.0 MiB -> 30.0 MiB" in reg.message


def test_numba_cache_state_is_recorded_per_run_and_for_the_baseline() -> None:
    cold = _timed(make_run(), 1.0, 30.0)
    warm = _timed(make_run(scenario="warm"), 1.0, 0.0)
    unknown = _timed(make_run(scenario="native"), 1.0, None)  # numba never imported
    base = gate.make_baseline(_report(cold, warm, unknown))
    assert base["numba_cache"] == "cold"
    runs = base["runs"]
    assert runs[cold.key]["numba_cache"] == "cold" and runs[cold.key]["compile_seconds"] == 30.0
    assert runs[warm.key]["numba_cache"] == "warm"
    assert runs[unknown.key]["numba_cache"] is None
    assert gate.make_baseline(_report(unknown))["numba_cache"] == "unknown"


# --- new, missing, nothing compared ---------------------------------------------
def test_new_runs_are_listed_and_only_a_failing_new_run_fails() -> None:
    base = gate.make_baseline(_report(make_run()))
    res = gate.diff(base, _report(make_run(), make_run(scenario="fresh")))
    assert not res.failed
    assert [c.key for c in res.new] == ["fresh|refimpl|checked|-"]
    failing = gate.diff(base, _report(make_run(), make_run(scenario="fresh", verdict="leak")))
    assert [c.metric for c in failing.regressions] == ["passed"]
    assert "new run fails: leak, expected clean" in failing.regressions[0].message


def test_a_baseline_run_missing_from_the_run_fails_unless_allowed(tmp_path: Path) -> None:
    base = gate.make_baseline(_report(make_run(), make_run(scenario="gone")))
    now = _report(make_run())
    res = gate.diff(base, now)
    assert res.failed
    assert [c.key for c in res.missing] == ["gone|refimpl|checked|-"]
    assert "1 baseline run(s) missing" in res.failures()[0]
    assert not gate.diff(base, now, allow_missing=True).failed

    run_dir = _write_report(tmp_path / "run", now)
    baseline = _write_baseline(tmp_path / "b.json", _report(make_run(), make_run(scenario="gone")))
    out = io.StringIO()
    assert gate_command.main(_args(run_dir, baseline), out) == 1
    assert "MISSING     gone|refimpl|checked|-: in the baseline, not in this run" in out.getvalue()
    assert "gate FAILED" in out.getvalue()
    out = io.StringIO()
    assert gate_command.main(_args(run_dir, baseline, "--allow-missing"), out) == 0
    assert (
        "missing     gone|refimpl|checked|-" in out.getvalue() and "gate passed" in out.getvalue()
    )


def test_zero_runs_compared_fails_and_names_the_key_part_that_differs(tmp_path: Path) -> None:
    # the plugin's default allocator is checked, the CLI's numpy: no key matches
    base = gate.make_baseline(_report(make_run(allocator="numpy"), _faulty(allocator="numpy")))
    now = _report(make_run(allocator="checked"), _faulty(allocator="checked"))
    res = gate.diff(base, now, allow_missing=True)
    assert res.failed and res.compared == 0 and not res.regressions
    assert (
        "nothing compared: none of the report's 2 runs is in the baseline's 2"
        in (res.failures()[0])
    )
    assert "allocator is checked here, numpy there" in res.failures()[0]

    run_dir = _write_report(tmp_path / "run", now)
    baseline = _write_baseline(tmp_path / "b.json", _report(make_run(allocator="numpy")))
    out = io.StringIO()
    assert gate_command.main(_args(run_dir, baseline, "--allow-missing"), out) == 1
    assert "gate FAILED" in out.getvalue() and "0 runs compared" in out.getvalue()


def test_nothing_compared_when_every_matching_run_was_skipped_or_the_report_is_empty() -> None:
    base = gate.make_baseline(_report(make_run(verdict="skipped")))
    res = gate.diff(base, _report(make_run(verdict="skipped")))
    assert res.failed
    assert "all 1 runs that match the baseline were skipped or could not run" in res.failures()[0]
    empty = gate.diff(base, _report(), allow_missing=True)
    assert empty.failed and "the report has no runs" in empty.failures()[0]


# --- environment ----------------------------------------------------------------
def test_baseline_records_host_python_and_package_versions() -> None:
    base = gate.make_baseline(_report(make_run()))
    env = base["environment"]
    assert env["host"] == {"cpus": 2, "machine": "x86_64", "platform": "Linux-6.8-x86_64"}
    assert env["python"] == "3.11.9"
    assert {"memcycle", "numpy", "numba", "memray"} <= set(env["packages"])
    assert env["packages"]["numpy"]  # installed, so a version string


def test_baseline_records_the_version_of_an_engines_own_package() -> None:
    need_peer("hnswlib")
    base = gate.make_baseline(_report(make_run(), make_run(engine="hnswlib", allocator="native")))
    assert base["environment"]["packages"]["hnswlib"]


def test_a_host_mismatch_is_reported_and_time_is_not_compared_but_leaks_are() -> None:
    base = gate.make_baseline(_report(_timed(make_run(), 1.0), host={**HOST, "cpus": 8}))
    slow_and_leaking = _timed(make_run(leaked_growth=4 * MiB), 30.0)
    res = gate.diff(base, _report(slow_and_leaking))
    assert [r.metric for r in res.regressions] == ["leak"]
    note = next(n for n in res.notes if n.startswith("host differs"))
    assert "cpus 8 -> 2" in note and "time not compared" in note
    across = gate.diff(base, _report(slow_and_leaking), time_across_hosts=True)
    assert sorted(r.metric for r in across.regressions) == ["leak", "time"]


def test_a_version_mismatch_is_reported_in_the_gate_output(tmp_path: Path) -> None:
    def old_numpy(data: dict[str, Any]) -> None:
        data["environment"]["packages"]["numpy"] = "1.0.0"
        data["environment"]["python"] = "3.11.1"

    baseline = _write_baseline(tmp_path / "b.json", _report(make_run()), old_numpy)
    run_dir = _write_report(tmp_path / "run", _report(make_run()))
    out = io.StringIO()
    assert gate_command.main(_args(run_dir, baseline), out) == 0
    text = out.getvalue()
    assert "versions differ from the baseline's: python 3.11.1 -> 3.11.9, numpy 1.0.0 -> " in text


# --- --update -------------------------------------------------------------------
def test_update_refuses_failing_runs_and_accepts_them_with_accept_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaking = make_run(verdict="leak", live_growth=MiB)  # expected clean
    errored = make_run(scenario="broken", verdict="error")
    run_dir = _write_report(tmp_path / "run", _report(make_run(scenario="ok"), leaking, errored))
    baseline = tmp_path / "baseline.json"
    assert _gate(run_dir, baseline, "--update") == 1
    err = capsys.readouterr().err
    assert err.startswith("memcycle: error: refusing to write the baseline: 2 run(s) fail")
    assert "--accept-failures" in err
    assert "repeated-clear-insert|refimpl|checked|-: verdict leak, expected clean" in err
    assert "broken|refimpl|checked|-: verdict error, expected clean" in err
    assert not baseline.exists()

    out = io.StringIO()
    assert gate_command.main(_args(run_dir, baseline, "--update", "--accept-failures"), out) == 0
    assert "note: accepted failing run broken|refimpl|checked|-: verdict error" in out.getvalue()
    assert json.loads(baseline.read_text())["runs"][leaking.key]["verdict"] == "leak"


def test_update_records_a_skipped_run_without_accept_failures(tmp_path: Path) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run(), make_run(verdict="skipped")))
    baseline = tmp_path / "baseline.json"
    assert gate_command.main(_args(run_dir, baseline, "--update"), io.StringIO()) == 0


def test_update_then_gate_via_main(tmp_path: Path) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run(), _faulty()))
    baseline = tmp_path / "reports" / "baseline.json"
    out = io.StringIO()
    assert gate_command.main(_args(run_dir, baseline, "--update"), out) == 0
    data = json.loads(baseline.read_text())
    assert (data["kind"], data["version"]) == ("memcycle-baseline", gate.BASELINE_VERSION)
    entry = data["runs"]["repeated-clear-insert|refimpl|checked|sparse-map-recreate"]
    assert set(entry) == {
        "verdict",
        "verdicts",
        "expected",
        "leaked_bytes_per_cycle",
        "peak_bytes",
        "peak_source",
        "process_peak_bytes",
        "seconds",
        "wall_seconds",
        "compile_seconds",
        "numba_cache",
    }
    assert gate_command.main(_args(run_dir, baseline), out) == 0
    assert "gate passed" in out.getvalue()

    worse = _write_report(tmp_path / "run2", _report(make_run(verdict="use-after-free"), _faulty()))
    out = io.StringIO()
    assert gate_command.main(_args(worse, baseline), out) == 1
    text = out.getvalue()
    assert "REGRESSION" in text and "clean -> use-after-free" in text and "gate FAILED" in text
    # flags reach the tolerances
    assert (
        gate_command.tolerances_from(
            _args(worse, baseline, "--tolerance-leak-bytes", "2MiB")
        ).leak_abs
        == 2 * MiB
    )
    assert (
        gate_command.tolerances_from(_args(worse, baseline, "--tolerance-peak", "50%")).peak_rel
        == 0.5
    )


# --- bad input ------------------------------------------------------------------
def test_baseline_flag_is_required_with_a_usage_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run()))
    assert _gate(run_dir, None) == 2
    assert "--baseline FILE is required" in _error_line(capsys)
    assert _gate(run_dir, tmp_path / "nope.json") == 2
    line = _error_line(capsys)
    assert "baseline not found" in line and "--baseline" in line and "--update" in line


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("verdict", "leaky", "\"verdict\" is 'leaky'; expected one of clean, "),
        ("expected", 3, '"expected" is 3; expected one of '),
        ("peak_bytes", "lots", "\"peak_bytes\" is 'lots'; expected a finite number of bytes"),
        ("peak_bytes", -5, '"peak_bytes" is -5; expected a finite number of bytes >= 0'),
        ("seconds", float("nan"), '"seconds" is nan; expected a finite number of seconds >= 0'),
        ("seconds", None, '"seconds" is None; expected a finite number of seconds >= 0'),
        ("compile_seconds", True, '"compile_seconds" is True; expected a finite number'),
        ("peak_source", "rss", "\"peak_source\" is 'rss'; expected engine or process or null"),
    ],
)
def test_an_invalid_baseline_value_is_a_one_line_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any, expected: str
) -> None:
    run = make_run()

    def spoil(data: dict[str, Any]) -> None:
        data["runs"][run.key][field] = value

    baseline = _write_baseline(tmp_path / "b.json", _report(run), spoil)
    run_dir = _write_report(tmp_path / "run", _report(run))
    assert _gate(run_dir, baseline) == 2
    line = _error_line(capsys)
    assert f"baseline {baseline}: run '{run.key}': " in line
    assert expected in line


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--tolerance-time", "nan", "expected a finite slow-down factor >= 1"),
        ("--tolerance-time", "0.5", "expected a finite slow-down factor >= 1"),
        ("--tolerance-time-seconds", "-1", "expected a finite number of seconds >= 0"),
        ("--tolerance-leak", "-10%", "expected a fraction or percentage >= 0"),
        ("--tolerance-peak", "inf", "expected a fraction or percentage >= 0"),
        ("--tolerance-peak", "lots", "expected a fraction or percentage >= 0"),
        ("--tolerance-peak-bytes", "lots", "expected a size >= 0"),
    ],
)
def test_an_invalid_tolerance_is_a_one_line_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, expected: str
) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run()))
    baseline = _write_baseline(tmp_path / "b.json", _report(make_run()))
    assert _gate(run_dir, baseline, f"{flag}={value}") == 2
    line = _error_line(capsys)
    assert f"{flag} is '{value}'; {expected}" in line


def test_an_old_baseline_format_says_to_rerun_with_update(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {
        "created": "2026-11-25T19:34:50+00:00",
        "kind": "memcycle-baseline",
        "run_id": "20261125-193400-241c0f",
        "runs": {
            "capacity-growth|refimpl|numpy|-": {
                "expected": "clean",
                "leaked_bytes_per_cycle": 0,
                "peak_bytes": 85560242,
                "seconds": 8.465,
                "verdict": "clean",
            }
        },
        "version": 1,
    }
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(old))
    run_dir = _write_report(tmp_path / "run", _report(make_run()))
    assert _gate(run_dir, baseline) == 2
    assert "baseline format 1 is old (this memcycle reads 2); rerun with --update" in (
        _error_line(capsys)
    )


def test_an_unknown_optional_field_in_report_json_is_read(tmp_path: Path) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run(), _faulty()))
    path = run_dir / "report.json"
    data = json.loads(path.read_text())
    data["future_top_level"] = {"x": 1}
    run = data["runs"][0]
    run["future_run_field"] = "added by a newer memcycle"
    run["steps"][0]["future_step_field"] = 1.5
    run["cycles"][0]["future_cycle_field"] = None
    data["runs"][1]["findings"][0]["future_finding_field"] = []
    path.write_text(json.dumps(data))
    report = gate.load_report(run_dir)
    assert [r.key for r in report.runs] == [r["key"] for r in data["runs"]]
    assert report.runs[0].steps[0].op == "insert"
    baseline = _write_baseline(tmp_path / "b.json", report)
    assert gate_command.main(_args(run_dir, baseline), io.StringIO()) == 0


def test_missing_or_invalid_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _write_report(tmp_path / "run", _report(make_run()))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert _gate(run_dir, bad) == 2
    assert "not valid JSON" in _error_line(capsys)
    bad.write_text(json.dumps({"runs": {}}))
    assert _gate(run_dir, bad) == 2
    assert "not a memcycle baseline" in _error_line(capsys)
    assert _gate(tmp_path / "empty", bad) == 2
    assert "report not found" in _error_line(capsys)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps({"schema_version": 0}))
    assert _gate(tmp_path / "old", bad) == 2
    assert "report.json has schema_version 0; this memcycle reads 1" in _error_line(capsys)


def test_parse_size() -> None:
    assert gate_command.parse_size("1MiB") == MiB
    assert gate_command.parse_size("512k") == 512 * 1024
    assert gate_command.parse_size("1048576") == MiB
    with pytest.raises(argparse.ArgumentTypeError):
        gate_command.parse_size("lots")


def test_memcycle_gate_and_report_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's `gate` and `report` subcommands reach this module and the reporters."""
    run_dir = _write_report(tmp_path / "run", _report(make_run(), _faulty()))
    baseline = tmp_path / "baseline.json"
    assert cli_main(["gate", str(run_dir)]) == 2
    assert "--baseline FILE is required" in _error_line(capsys)
    assert cli_main(["gate", str(run_dir), "--baseline", str(baseline)]) == 2
    assert cli_main(["gate", str(run_dir), "--baseline", str(baseline), "--update"]) == 0
    assert cli_main(["gate", str(run_dir), "--baseline", str(baseline)]) == 0
    worse = _write_report(tmp_path / "worse", _report(make_run(verdict="crash"), _faulty()))
    assert cli_main(["gate", str(worse), "--baseline", str(baseline)]) == 1
    assert cli_main(["report", str(run_dir)]) == 0
    for name in ("summary.md", "index.html", "junit.xml"):
        assert (run_dir / name).stat().st_size > 0
