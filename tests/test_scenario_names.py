"""Bundled scenarios are reachable by the names `memcycle list` shows, from any directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from memcycle.bundled import bundled_scenario, scenario_path, scenarios_dir
from memcycle.commands.common import scenario_args
from memcycle.errors import UsageError


@pytest.mark.parametrize(
    ("name", "relative"),
    [
        ("repeated-clear-insert", "repeated-clear-insert.toml"),
        ("repeated-clear-insert.toml", "repeated-clear-insert.toml"),
        ("faults/flat-buffer-leak", "faults/flat-buffer-leak.toml"),
        ("omendb/delete-reinsert.toml", "omendb/delete-reinsert.toml"),
        ("faults", "faults"),
    ],
)
def test_a_bundled_name_with_or_without_toml_means_that_bundled_file(
    name: str, relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # someone else's project: no scenarios/ here
    assert scenario_args([name]) == [scenarios_dir() / relative]


def test_a_file_of_the_users_own_wins_over_the_bundled_one_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "repeated-clear-insert.toml").write_text("name = 'mine'\n", encoding="utf-8")
    assert scenario_args(["repeated-clear-insert.toml"]) == [Path("repeated-clear-insert.toml")]
    # without the suffix the user's file is not that path, so the bundled one is meant
    assert scenario_path("repeated-clear-insert") == scenarios_dir() / "repeated-clear-insert.toml"


@pytest.mark.parametrize(
    "name", ["../pyproject", "../../README.md", "/etc/hostname-nope", "x" * 5000]
)
def test_a_name_outside_the_bundle_or_unknown_is_refused_naming_the_argument(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert bundled_scenario(name) is None
    with pytest.raises(UsageError, match="no bundled scenario of that name") as info:
        scenario_args([name])
    assert str(info.value).startswith(name[:50])


@pytest.mark.parametrize("command", ["run", "shrink"])
def test_run_and_shrink_refuse_an_unknown_name_in_one_line_with_exit_2(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from memcycle import cli

    monkeypatch.chdir(tmp_path)
    for name in ("no-such-scenario", "z" * 5000):  # the second cannot even be looked up
        assert cli.main([command, name]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"memcycle: error: {name}: no such") and "Traceback" not in err
        assert err.endswith("(`memcycle list` shows them)")
