"""`memcycle init`: the scaffold a new user starts from writes every file, never overwrites one,
and runs clean out of the box (the adapter wraps a working NumPy stand-in)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest
from memcycle.child import _resolve_spec
from memcycle.cli import main
from memcycle.engines import Engine, EngineBase
from memcycle.engines.registry import make_engine
from memcycle.scaffold import ADAPTER_SPEC, TEMPLATES
from memcycle.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = [
    "MEMCYCLE.md",
    "memcycle_adapter.py",
    "memcycle_scenarios/conftest.py",
    "memcycle_scenarios/lifecycle.toml",
]


def _files(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())


def _init(project: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["init", str(project), *extra]) == 0
    return capsys.readouterr().out


def test_init_writes_the_adapter_cycle_table_pytest_entry_and_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "myengine"
    out = _init(project, capsys)
    assert _files(project) == EXPECTED
    assert out.splitlines()[0] == f"memcycle init: wrote 4 files in {project}/"
    for name in EXPECTED:
        assert str(project / name) in out
    assert f"cd {project}" in out
    assert f"--engine {ADAPTER_SPEC}" in out
    adapter = (project / "memcycle_adapter.py").read_text(encoding="utf-8")
    assert "NOT your engine" in adapter and "TODO(memcycle)" in adapter
    assert 'name = "myengine"' in adapter
    scenario = load_scenario(project / "memcycle_scenarios" / "lifecycle.toml")
    assert scenario.name == "myengine-lifecycle"
    assert scenario.engines == (ADAPTER_SPEC,)
    assert "@@" not in "".join(p.read_text(encoding="utf-8") for p in project.rglob("*.*"))


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "existing"
    project.mkdir()
    (project / "MEMCYCLE.md").write_text("mine\n", encoding="utf-8")  # the last file written
    assert main(["init", str(project)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"{project / 'MEMCYCLE.md'} already exists; nothing written" in err
    assert _files(project) == ["MEMCYCLE.md"]  # not even the folders before it
    assert not (project / "memcycle_scenarios").exists()
    assert (project / "MEMCYCLE.md").read_text(encoding="utf-8") == "mine\n"


def test_init_twice_refuses_the_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _init(tmp_path, capsys)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["init", str(tmp_path)]) == 2
    assert "memcycle_adapter.py already exists" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_into_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "afile"
    target.write_text("x", encoding="utf-8")
    assert main(["init", str(target)]) == 2
    assert f"{target} exists and is not a folder" in capsys.readouterr().err


def test_init_defaults_to_the_current_folder_and_takes_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = _init(Path("."), capsys, "--name", "vec db")
    assert "cd " not in out  # already there
    assert _files(tmp_path) == EXPECTED
    assert 'name = "vec-db"' in (tmp_path / "memcycle_adapter.py").read_text(encoding="utf-8")


def test_templates_ship_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    assert "memcycle.templates" in setuptools["packages"]
    patterns = setuptools["package-data"]["memcycle.templates"]
    shipped = {p.name for p in files("memcycle.templates").iterdir()}
    for t in TEMPLATES:
        assert t.source in shipped
        assert any(Path(t.source).match(p) for p in patterns), t.source


def test_the_scaffolded_adapter_is_an_engine_base_with_honest_capabilities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _init(tmp_path, capsys)
    engine = make_engine(_resolve_spec(f"{tmp_path / 'memcycle_adapter.py'}:make_engine"))
    assert isinstance(engine, EngineBase) and isinstance(engine, Engine)
    caps = engine.capabilities
    assert caps.delete and not caps.ledger and not caps.reload and caps.clear == "recreate"
    assert callable(getattr(engine, "get", None))


def _run_scaffold(project: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    cmd = [sys.executable, "-m", "memcycle", "run", "memcycle_scenarios/lifecycle.toml"]
    cmd += ["--engine", ADAPTER_SPEC, "--out", "reports/first", *extra]
    done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300)
    report = project / "reports" / "first" / "report.json"
    return done, json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}


def test_the_scaffolded_scenario_runs_clean_on_the_scaffolded_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "myengine"
    _init(project, capsys)
    done, report = _run_scaffold(project, "--no-memray")
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = report["runs"]
    assert run["verdict"] == "clean" and run["passed"]
    assert run["key"] == f"myengine-lifecycle|{ADAPTER_SPEC}|native|-"
    assert not [s for s in run["steps"] if s["skipped"]]  # the stand-in does every op
    assert len(run["cycles"]) == 8 and all(c["status"] == "ok" for c in run["cycles"])


# no path: the conftest collects; a path: memcycle's plugin does, and the conftest must not again
@pytest.mark.parametrize("args", [[], ["memcycle_scenarios/"]])
def test_pytest_collects_the_scaffolded_table_once_under_strict_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    _init(tmp_path, capsys)
    cmd = [sys.executable, "-m", "pytest", "--strict-markers", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*cmd, "--co", "-q", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    items = [line for line in done.stdout.splitlines() if "::" in line]
    assert items == [
        "memcycle_scenarios/lifecycle.toml::"
        f"{tmp_path.name}-lifecycle[memcycle_adapter:make_engine-native]"
    ]


@pytest.mark.slow
def test_the_scaffold_runs_clean_with_memray_and_under_pytest_from_the_parent_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a new user types: `memcycle run` (memray on), then `python -m pytest
    --strict-markers` from their project root, next to tests of their own."""
    project = tmp_path / "myengine"
    _init(project, capsys)
    done, report = _run_scaffold(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["verdict"] for r in report["runs"]] == ["clean"]
    live = [c["memray_leaked_bytes"] for c in report["runs"][0]["cycles"]]
    assert all(x is not None and x < 1 << 20 for x in live), live  # the stand-in holds ~10 KiB

    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_users_own.py").write_text(
        "def test_users_own():\n    assert True\n", encoding="utf-8"
    )
    (tmp_path / "harness").mkdir()  # a user's folder of memcycle's old import name
    (tmp_path / "harness" / "__init__.py").write_text("", encoding="utf-8")
    cmd = [sys.executable, "-m", "pytest", "--strict-markers", "-p", "no:cacheprovider", "-v"]
    cmd += ["--memcycle-report", "mc"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_users_own PASSED" in done.stdout
    assert re.search(
        r"lifecycle\.toml::myengine-lifecycle\[memcycle_adapter:make_engine-native\] PASSED",
        done.stdout,
    ), done.stdout
    pytest_report = json.loads((tmp_path / "mc" / "report.json").read_text(encoding="utf-8"))
    assert [r["verdict"] for r in pytest_report["runs"]] == ["clean"]
    assert pytest_report["runs"][0]["key"] == report["runs"][0]["key"]  # one baseline for both
