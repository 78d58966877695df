"""Scale-out for CI: `memcycle run --shard K/N` splits the run matrix deterministically (every
run in exactly one shard) and `memcycle merge` puts the shards' reports back into one gate input."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest
from memcycle.cli import main
from memcycle.merge import MergeError, load_shards, merge
from memcycle.records import Report, RunRecord
from memcycle.runner import RunSpec
from memcycle.scenario import parse_scenario
from memcycle.shard import Shard, ShardError, parse_shard, planned_key, select

EXAMPLE = "memcycle.examples.my_engine:make_engine"


def _table(name: str) -> str:
    return f"""
name = "{name}"
dimension = 8
seed = 5
[[cycle]]
repeat = 2
steps = [
  {{ op = "insert", count = 100 }},
  {{ op = "search", queries = 5, k = 5, min_recall = 1.0 }},
  {{ op = "clear" }},
]
"""


def _matrix(n_scenarios: int = 7) -> tuple[list[RunSpec], dict]:
    scenarios = {
        f"/s/{i}.toml": parse_scenario(_table(f"sc-{i:02d}"), f"/s/{i}.toml")
        for i in range(n_scenarios)
    }
    items = [
        RunSpec(scenario=path, engine=engine, allocator=alloc)
        for path in scenarios
        for engine in (None, "hnswlib", EXAMPLE)
        for alloc in ("numpy", "checked")
    ]
    return items, scenarios


def _keys(items: list[RunSpec], scenarios: dict) -> list[str]:
    return [planned_key(s, scenarios[str(s.scenario)]) for s in items]


@pytest.mark.parametrize("text", ["1/1", "1/2", "2/2", "3/7", " 2 / 3 "])
def test_parse_shard_accepts_k_over_n(text: str) -> None:
    k, n = (int(x) for x in text.split("/"))
    assert parse_shard(text) == Shard(k, n)


def test_shards_are_disjoint_complete_balanced_and_deterministic() -> None:
    items, scenarios = _matrix()
    every = _keys(items, scenarios)
    assert len(set(every)) == len(every) == 42
    for n in (1, 2, 3, 5, 42, 50):
        parts = [select(items, scenarios, Shard(k, n)) for k in range(1, n + 1)]
        keys = [_keys(p, scenarios) for p in parts]
        assert sorted(k for part in keys for k in part) == sorted(every)  # each exactly once
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        for part in parts:  # a shard keeps the matrix's order
            assert [items.index(s) for s in part] == sorted(items.index(s) for s in part)
        assert [select(items, scenarios, Shard(k, n)) for k in range(1, n + 1)] == parts
        shuffled = random.Random(n).sample(items, len(items))
        for k in range(1, n + 1):  # the split depends on the keys, not the order given
            assert set(_keys(select(shuffled, scenarios, Shard(k, n)), scenarios)) == set(
                keys[k - 1]
            )


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("0/2", "K counts from 1"),
        ("3/2", "there are only 2 shards"),
        ("x/2", None),
        ("1/0", "N is at least 1"),
        ("1/2/3", None),
        ("", None),
        ("-1/2", None),
    ],
)
def test_bad_shard_specs_are_usage_errors_naming_the_expected_form(
    spec: str, why: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ShardError):
        parse_shard(spec)
    scenario = tmp_path / "a.toml"
    scenario.write_text(_table("a"), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(scenario), f"--shard={spec}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"--shard {spec!r}: expected K/N with 1 <= K <= N, e.g. 1/2" in err
    if why:
        assert why in err
    assert not out.exists()  # nothing ran


def _report(
    path: Path,
    keys: list[tuple[str, str]],
    version: int | None = None,
    command: list[str] | None = None,
) -> Path:
    """A report.json with one clean run per (scenario, engine)."""
    runs = [
        RunRecord(
            scenario=sc,
            scenario_path=f"/s/{sc}.toml",
            engine=eng,
            allocator="native",
            faults=[],
            expected_verdict="clean",
        )
        for sc, eng in keys
    ]
    data = Report(
        run_id=path.name, created="2026-01-01T00:00:00+00:00", runs=runs, command=command or []
    ).to_dict()
    if version is not None:
        data["schema_version"] = version
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(data), encoding="utf-8")
    return path


def test_merge_refuses_a_run_key_in_two_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _report(tmp_path / "a", [("one", "x"), ("two", "x")])
    b = _report(tmp_path / "b", [("three", "x"), ("two", "x")])
    out = tmp_path / "merged"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert (
        f"run 'two|x|native|-' is in both {a / 'report.json'} and {b / 'report.json'}; "
        "each run must come from one shard" in err
    )
    assert not out.exists()  # checked before anything was written


def test_merge_refuses_the_same_folder_twice_and_a_duplicate_inside_one_report(
    tmp_path: Path,
) -> None:
    a = _report(tmp_path / "a", [("one", "x")])
    with pytest.raises(MergeError, match="is given twice"):
        load_shards([a, a / "report.json"])
    c = _report(tmp_path / "c", [("one", "x"), ("one", "x")])
    with pytest.raises(MergeError, match=r"run 'one\|x\|native\|-' is twice in"):
        load_shards([c])


def test_merge_refuses_mismatched_schema_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _report(tmp_path / "a", [("one", "x")])
    b = _report(tmp_path / "b", [("two", "x")], version=99)
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "schema versions differ" in err and "(99)" in err and "(1)" in err
    assert "merge reports written by one memcycle version" in err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "no report.json (expected a run folder or its report.json)"),
        (lambda d: (d.mkdir(), (d / "report.json").write_text("{no"))[0], "not valid JSON"),
        (lambda d: (d.mkdir(), (d / "report.json").write_text("[]"))[0], "not a memcycle report"),
    ],
)
def test_merge_says_which_input_is_not_a_report(tmp_path: Path, make, message: str) -> None:
    bad = tmp_path / "bad"
    make(bad)
    good = _report(tmp_path / "good", [("one", "x")])
    with pytest.raises(MergeError, match=re.escape(f"{bad}")) as info:
        load_shards([good, bad])
    assert message in str(info.value)


def test_merge_refuses_a_split_with_a_shard_missing_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["memcycle", "run", "scenarios/"]
    a = _report(tmp_path / "a", [("one", "x")], command=[*run, "--shard", "1/3"])
    c = _report(tmp_path / "c", [("three", "x")], command=[*run, "--shard=3/3"])
    out = tmp_path / "m"
    assert main(["merge", str(a), str(c), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "shard 2/3 missing (got 2 of 3); merge every shard, or pass --allow-partial" in err
    assert not out.exists()
    assert main(["merge", str(a), str(c), "--out", str(out), "--allow-partial"]) == 0
    assert len(json.loads((out / "report.json").read_text(encoding="utf-8"))["runs"]) == 2


def test_merge_refuses_shards_of_different_splits(tmp_path: Path) -> None:
    a = _report(tmp_path / "a", [("one", "x")], command=["memcycle", "run", "--shard", "1/2"])
    b = _report(tmp_path / "b", [("two", "x")], command=["memcycle", "run", "--shard", "2/3"])
    with pytest.raises(MergeError, match=r"shards of different splits: .*\(1/2\), .*\(2/3\)"):
        merge([a, b], tmp_path / "m", run_id="m", command=[])


SCENARIOS = {name: _table(name) for name in ("shard-a", "shard-b", "shard-c")}


def test_two_shards_merged_hold_every_run_once_and_pass_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, text in SCENARIOS.items():
        (suite / f"{name}.toml").write_text(text, encoding="utf-8")
    run = ["run", str(suite), "--engine", EXAMPLE, "--no-memray"]

    def memcycle(*argv: str) -> int:
        monkeypatch.setattr(sys, "argv", ["memcycle", *argv])  # what the report records
        return main(list(argv))

    assert memcycle(*run, "--shard", "1/2", "--out", str(tmp_path / "s1")) == 0
    assert memcycle(*run, "--shard", "2/2", "--out", str(tmp_path / "s2")) == 0
    assert memcycle(*run, "--jobs", "2", "--out", str(tmp_path / "full")) == 0
    err = capsys.readouterr().err
    assert "shard 1/2: 2 of 3 runs" in err and "shard 2/2: 1 of 3 runs" in err

    merged = tmp_path / "merged"
    assert memcycle("merge", str(tmp_path / "s1"), "--out", str(merged)) == 2  # 2/2 missing
    assert "shard 2/2 missing" in capsys.readouterr().err and not merged.exists()
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(merged)]) == 0
    assert "merged 2 report(s) (2 + 1 runs): 3 run(s)" in capsys.readouterr().out

    def keys(folder: Path) -> list[str]:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        return [r["key"] for r in data["runs"]]

    shard_keys = keys(tmp_path / "s1") + keys(tmp_path / "s2")
    assert sorted(keys(merged)) == sorted(shard_keys) == sorted(keys(tmp_path / "full"))
    assert len(set(keys(merged))) == 3
    for name in ("summary.md", "index.html", "junit.xml"):
        assert (merged / name).is_file()
    assert 'tests="3"' in (merged / "junit.xml").read_text(encoding="utf-8")
    run_folders = sorted(p.name for p in merged.iterdir() if p.is_dir())
    assert len(run_folders) == 3 and all(
        (merged / f / "events.jsonl").is_file() for f in run_folders
    )

    baseline = tmp_path / "baseline.json"
    assert main(["gate", str(tmp_path / "full"), "--baseline", str(baseline), "--update"]) == 0
    capsys.readouterr()
    assert main(["gate", str(merged), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "gate passed" in out and "3 runs compared" in out


def test_merge_refuses_two_shards_with_the_same_run_folder(tmp_path: Path) -> None:
    a = _report(tmp_path / "a", [("one", "x")])
    b = _report(tmp_path / "b", [("two", "x")])
    for shard in (a, b):
        (shard / "same-run").mkdir()
    with pytest.raises(MergeError, match=r"run folder 'same-run' is in both .*a and .*b"):
        merge([a, b], tmp_path / "m", run_id="m", command=[])
    assert not (tmp_path / "m").exists()
