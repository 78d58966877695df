"""`memcycle` command line: bad input is one line and exit 2; runs write report.json and tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memcycle.cli import main
from memcycle.records import Report

ENG = "tests.engines_for_tests"


def _scenario(tmp_path: Path, name: str = "cli", repeat: int = 5) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(
        f"""
name = "{name}"
dimension = 8
[[cycle]]
repeat = {repeat}
steps = [ {{ op = "insert", count = 60 }}, {{ op = "search", queries = 3, k = 3 }}, {{ op = "clear" }} ]
"""
    )
    return p


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("memcycle: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    _one_line_error(capsys, "nope.toml", "no such")


def test_malformed_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('dimension = 4\n[[cycle]]\nsteps = [{ op = "insert", count = -1 }]\n')
    assert main(["run", str(bad)]) == 2
    _one_line_error(capsys, "bad.toml", "cycle 1", "step 0", "field 'count'")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--engine", "nosuch"], "unknown engine 'nosuch'"),
        (["--engine", "tests.no_such_module:f"], "cannot import"),
        (["--engine", f"{ENG}:make_nothing"], "has no factory"),
        (["--engine", "missing_file.py:f"], "does not exist"),
        (["--fault", "gremlins"], "unknown fault 'gremlins'"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main(["run", str(_scenario(tmp_path)), *args]) == 2
    _one_line_error(capsys, needle)


def test_unknown_allocator_is_an_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(_scenario(tmp_path)), "--allocator", "jemalloc"])
    assert info.value.code == 2
    assert "invalid choice: 'jemalloc'" in capsys.readouterr().err


def test_run_writes_report_and_prints_cycle_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(_scenario(tmp_path)),
            "--engine",
            f"{ENG}:make_bruteforce",
            "--no-memray",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    report = Report.from_dict(json.loads((out / "report.json").read_text()))
    (run,) = report.runs
    assert run.verdict == "clean" and len(run.cycles) == 5
    assert "| Cycle |" in captured.out and "| Status |" in captured.out
    assert "| 5 | 8 |" in captured.out
    assert "[1/1]" in captured.err  # plain progress line on a non-tty


def test_a_run_with_skipped_steps_is_judged_on_what_ran_and_lists_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "del.toml"
    sc.write_text(
        """
name = "del"
dimension = 8
[[cycle]]
repeat = 3
steps = [ { op = "insert", count = 40 }, { op = "delete", count = 5 }, { op = "clear" } ]
"""
    )
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(sc),
            "--engine",
            f"{ENG}:make_native_nodelete",
            "--no-memray",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0  # the inserts and clears that ran are clean
    assert "verdict=clean expected=clean  PASS" in text
    assert (
        "  skipped: 3 steps skipped: delete x3 (nodelete has no delete "
        "(capabilities.delete = False)) in cycles 1..3"
    ) in text
    assert "0 with an unexpected verdict, 0 skipped (not passed), 1 with skipped steps" in text
    (run,) = Report.from_dict(json.loads((out / "report.json").read_text())).runs
    assert run.verdict == "clean" and [f.verdict for f in run.findings] == ["skipped"]


def test_run_records_the_engines_own_allocator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["run", str(_scenario(tmp_path, repeat=2)), "--no-memray", "--out", str(out)]
    code = main([*args, "--engine", f"{ENG}:make_native_nodelete"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "allocator=native" in text and "allocator=numpy" not in text
    (run,) = Report.from_dict(json.loads((out / "report.json").read_text())).runs
    assert run.allocator == "native" and run.key.endswith("|native|-")
    # an engine without an allocator of its own keeps the one asked for
    code = main([*args, "--engine", f"{ENG}:make_bruteforce"])
    (run,) = Report.from_dict(json.loads((out / "report.json").read_text())).runs
    assert code == 0 and run.allocator == "numpy"


def test_unexpected_verdict_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(_scenario(tmp_path, repeat=6)),
            "--engine",
            f"{ENG}:make_leaky",
            "--no-memray",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 1
    assert "verdict=leak expected=clean  FAIL" in text
    assert "| leak |" in text
    assert "grew" not in text  # no memray: no allocation site


def _run_json(tmp_path: Path, scenario: Path, engine: str) -> tuple[int, str, Report]:
    out = tmp_path / "out"
    code = main(["run", str(scenario), "--engine", engine, "--no-memray", "--out", str(out)])
    return code, str(out), Report.from_dict(json.loads((out / "report.json").read_text()))


def test_an_engine_module_that_cannot_be_imported_is_error_exit_3_and_a_junit_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "vendor_engine.py"
    broken.write_text("import vendorlib_not_installed  # the native library is missing\n")
    code, out, report = _run_json(tmp_path, _scenario(tmp_path), f"{broken}:make")
    text = capsys.readouterr().out
    assert code == 3
    (run,) = report.runs
    assert run.verdict == "error" and not run.passed
    (f,) = run.findings
    assert (f.cycle, f.step) == (None, None)
    assert "No module named 'vendorlib_not_installed'" in f.summary
    assert "verdict=error expected=clean  ERROR" in text and "FAIL" not in text
    assert "| Cycle |" not in text  # no invented cycle table
    assert "1 error(s) (could not run)" in text
    import xml.etree.ElementTree as ET

    suite = ET.parse(Path(out) / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"
    error = suite.find("testcase/error")
    assert error is not None and "vendorlib_not_installed" in (error.get("message") or "")


def test_a_child_that_cannot_start_is_error_with_its_stderr_as_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a broken numpy ahead of the installed one on the child's path: the child dies importing
    # memcycle.child, before it can send its start event
    shadow = tmp_path / "shadow" / "numpy"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named numpy.core_x')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    code, _out, report = _run_json(tmp_path, _scenario(tmp_path), f"{ENG}:make_bruteforce")
    (run,) = report.runs
    assert (code, run.verdict) == (3, "error")
    (f,) = run.findings
    assert (f.cycle, f.step, f.op) == (None, None, "setup")
    assert f.summary.startswith("the child exited with code 1 before it started: ")
    assert "ImportError: No module named numpy.core_x" in f.summary
    assert "Traceback" in f.evidence["stderr_tail"]
    assert "  error: the child exited with code 1 before it started" in capsys.readouterr().out


def test_a_factory_raising_engine_error_is_error_not_lifecycle_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the progress line fits the width: room for the cause
    code, _out, report = _run_json(tmp_path, _scenario(tmp_path), f"{ENG}:make_factory_error")
    (run,) = report.runs
    assert (code, run.verdict) == (3, "error")
    assert run.findings[0].summary == (
        "engine setup failed: EngineError: license server unreachable: cannot build the engine"
    )
    captured = capsys.readouterr()
    assert "  error: engine setup failed: EngineError: license server" in captured.out
    # the progress line says ERROR and why, in one line
    assert (
        "error (ERROR) " in captured.err and "s: engine setup failed: EngineError" in captured.err
    )


def test_an_adapter_signature_mismatch_on_the_first_search_is_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, report = _run_json(
        tmp_path, _scenario(tmp_path), f"{ENG}:make_wrong_library_version"
    )
    (run,) = report.runs
    assert (code, run.verdict) == (3, "error")
    f = run.findings[0]
    assert (f.cycle, f.step, f.op) == (1, 1, "search")
    assert "unexpected keyword argument 'num_threads'" in f.summary
    assert f.summary.startswith("adapter/library API mismatch (first search of the run)")


def test_attribute_error_on_none_after_a_clear_stays_a_lifecycle_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, report = _run_json(tmp_path, _scenario(tmp_path), f"{ENG}:make_none_after_clear")
    (run,) = report.runs
    assert (code, run.verdict) == (1, "lifecycle-error")
    f = run.findings[0]
    assert (f.cycle, f.op) == (2, "search") and "'NoneType' object has no attribute" in f.summary


def test_an_expected_lifecycle_error_is_not_satisfied_by_a_setup_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = _scenario(tmp_path)
    sc.write_text(sc.read_text() + '\n[expect]\nverdict = "lifecycle-error"\n')
    code, _out, report = _run_json(tmp_path, sc, f"{ENG}:make_factory_error")
    (run,) = report.runs
    assert (run.expected_verdict, run.verdict, run.passed, code) == (
        "lifecycle-error",
        "error",
        False,
        3,
    )
    assert "PASS" not in capsys.readouterr().out


def test_a_module_that_exists_but_fails_to_import_is_left_to_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memcycle.engines.base import EngineError
    from memcycle.engines.registry import check_engine_spec

    (tmp_path / "needs_vendorlib.py").write_text("import vendorlib_not_installed\n")
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('no GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_engine_spec("needs_vendorlib:make")  # the child reports it: verdict error, exit 3
    check_engine_spec("raises_on_import:make")
    check_engine_spec("tests.engines_for_tests:make_bruteforce")
    check_engine_spec("faiss")  # built-in: its missing package would be the run's error
    with pytest.raises(EngineError, match=r"cannot import 'tests\.no_such_module'"):
        check_engine_spec("tests.no_such_module:f")
    with pytest.raises(EngineError, match="unknown engine 'refimp'; expected one of refimpl"):
        check_engine_spec("refimp")


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for needle in ("repeated-clear-insert", "soak-200", "refimpl-global", "sparse-map-recreate"):
        assert needle in out


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    _one_line_error(capsys, "report.json")
    (tmp_path / "report.json").write_text('{"schema_version": 99}')
    assert main(["report", str(tmp_path)]) == 2
    _one_line_error(capsys, "schema_version")


def test_help_for_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("run", "list", "report"):
        with pytest.raises(SystemExit) as info:
            main([sub, "--help"])
        assert info.value.code == 0
    assert "--allocator" in capsys.readouterr().out


def test_unknown_fault_in_a_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _scenario(tmp_path)
    p.write_text(p.read_text().replace('name = "cli"', 'name = "cli"\nfaults = ["gremlins"]'))
    assert main(["run", str(p)]) == 2
    _one_line_error(capsys, "unknown fault 'gremlins'")


def test_flamegraphs_only_for_failed_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    scen = str(_scenario(tmp_path, repeat=6))
    args = ["run", scen, "--engine", f"{ENG}:make_leaky", "--engine", f"{ENG}:make_bruteforce"]
    assert main([*args, "--flamegraphs", "failed", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "KiB at" in text and "engines_for_tests.py" in text  # the leaking line
    report = Report.from_dict(json.loads((out / "report.json").read_text()))
    by_engine = {r.engine.rsplit("_", 1)[-1]: r for r in report.runs}
    assert by_engine["leaky"].verdict == "leak" and by_engine["bruteforce"].verdict == "clean"
    assert (out / by_engine["leaky"].memray["leaks_flamegraph"]).is_file()
    assert "flamegraph" not in by_engine["bruteforce"].memray
    assert (out / by_engine["bruteforce"].memray["capture"]).is_file()


def test_delegated_subcommands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["gate", "--help"])
    assert info.value.code == 0 and "memcycle gate" in capsys.readouterr().out
    import memcycle.commands as commands

    monkeypatch.setitem(commands.REGISTRY, "faults", ("memcycle.no_such_module", "x"))
    assert main(["faults", "--all"]) == 2
    _one_line_error(capsys, "'memcycle faults' is not available", "memcycle.no_such_module")
