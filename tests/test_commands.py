"""The command family: one error type with its exit status, caught once by the dispatcher; no
command or fault-matrix module imports the dispatcher; report.json written once per run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from memcycle import cli
from memcycle.commands import REGISTRY
from memcycle.commands.base import Command
from memcycle.errors import CommandError, UsageError
from memcycle.records import Report, RunRecord

ENG = "tests.engines_for_tests"
REPO = Path(__file__).resolve().parent.parent


def _fake_command(monkeypatch: pytest.MonkeyPatch, raises: BaseException) -> None:
    """Register `memcycle boom`, whose run raises `raises` from deep inside the command."""

    def deep_inside(args: argparse.Namespace) -> int:
        raise raises

    module = types.ModuleType("fake_boom_command")
    module.COMMAND = Command(  # type: ignore[attr-defined]
        prepare_parser=lambda p: p.add_argument("--x"), run=deep_inside
    )
    monkeypatch.setitem(sys.modules, "fake_boom_command", module)
    monkeypatch.setitem(REGISTRY, "boom", ("fake_boom_command", "raise an error"))


def test_a_usage_error_raised_in_a_command_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_command(monkeypatch, UsageError("--x is 'y'; expected a number"))
    assert cli.main(["boom", "--x", "y"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "memcycle: error: --x is 'y'; expected a number\n"
    assert captured.out == ""


def test_a_command_error_carries_its_exit_status_and_its_detail_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_command(
        monkeypatch, CommandError("the engine could not run", exit_code=3, details=["a: why"])
    )
    assert cli.main(["boom"]) == 3
    assert capsys.readouterr().err == "memcycle: error: the engine could not run\n  a: why\n"


def test_the_gate_and_the_fault_plan_raise_usage_errors_the_dispatcher_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from memcycle.baseline import GateInputError
    from memcycle.faultmatrix import MatrixError
    from memcycle.preflight import PreflightError

    assert all(issubclass(e, UsageError) for e in (GateInputError, MatrixError, PreflightError))
    assert cli.main(["gate", str(tmp_path), "--baseline", str(tmp_path / "b.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"memcycle: error: report not found: {tmp_path / 'report.json'}\n"
    )
    assert cli.main(["faults", "--only", "no-such-fault", "--no-clean"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memcycle: error: unknown fault 'no-such-fault'; expected one of ")
    assert err.count("\n") == 1


def test_no_command_and_no_fault_matrix_module_imports_the_dispatcher() -> None:
    modules = [
        "memcycle.faultmatrix",
        "memcycle.gate",
        *sorted({module for module, _help in REGISTRY.values()}),
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print('memcycle.cli' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


def _report_json_writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file renamed or written onto a report.json from now on, in this process."""
    writes: list[Path] = []
    replace, write_text = os.replace, Path.write_text

    def spy_replace(src: object, dst: object) -> None:
        if Path(str(dst)).name == "report.json":
            writes.append(Path(str(dst)))
        replace(src, dst)  # type: ignore[arg-type]

    def spy_write_text(self: Path, *a: object, **kw: object) -> int:
        if self.name == "report.json":
            writes.append(self)
        return write_text(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(Path, "write_text", spy_write_text)
    return writes


def test_memcycle_run_writes_report_json_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "once.toml"
    scenario.write_text(
        'name = "once"\ndimension = 8\n[[cycle]]\nrepeat = 2\n'
        'steps = [ { op = "insert", count = 20 }, { op = "clear" } ]\n'
    )
    writes = _report_json_writes(monkeypatch)
    out = tmp_path / "out"
    argv = ["run", str(scenario), "--engine", f"{ENG}:make_bruteforce", "--no-memray"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert writes == [out / "report.json"]
    assert json.loads((out / "report.json").read_text())["runs"][0]["verdict"] == "clean"
    assert {p.name for p in out.iterdir()} >= {"summary.md", "index.html", "junit.xml"}


def test_memcycle_merge_writes_the_merged_report_json_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        run = RunRecord(
            scenario=name,
            scenario_path=f"/s/{name}.toml",
            engine="x",
            allocator="native",
            faults=[],
            expected_verdict="clean",
        )
        report = Report(run_id=name, created="2026-01-01T00:00:00+00:00", runs=[run])
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report.to_dict()))
    writes = _report_json_writes(monkeypatch)
    out = tmp_path / "merged"
    assert cli.main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert [p.resolve() for p in writes] == [(out / "report.json").resolve()]
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 2
