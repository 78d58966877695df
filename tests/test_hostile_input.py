"""Hostile and clumsy input to `memcycle run`: one line, exit 2, before anything runs; and
exit statuses and event streams that cannot lie (issue: hostile input, items 6, 8, 9, 11, 12,
13, 16, 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from memcycle.cli import main

TINY = """
name = "{name}"
dimension = 8
[[cycle]]
repeat = 2
steps = [{{ op = "insert", count = 20 }}, {{ op = "search", queries = 2, k = 3, min_recall = 0.0 }}, {{ op = "clear" }}]
"""
ENG = "tests.engines_for_tests:make_bruteforce"


def _write(tmp_path: Path, name: str, body: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(body, bytes):
        p.write_bytes(body)
    else:
        p.write_text(body, encoding="utf-8")
    return p


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("memcycle: error: "), err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


@pytest.mark.parametrize(
    ("value", "shown"), [("0", "0.0"), ("-1", "-1.0"), ("nan", "nan"), ("inf", "inf")]
)
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, shown: str
) -> None:
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    _usage_error(
        capsys,
        ["run", str(sc), "--timeout", value, "--out", str(tmp_path / "o")],
        f"--timeout is {shown}",
        "expected a positive number of seconds",
    )
    assert not (tmp_path / "o" / "report.json").exists()


def test_two_scenario_files_with_one_name_are_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "a.toml", TINY.format(name="same"))
    b = _write(tmp_path, "b.toml", TINY.format(name="same"))
    _usage_error(
        capsys,
        ["run", str(a), str(b), "--engine", ENG, "--out", str(tmp_path / "o")],
        "two scenario files are named 'same'",
        str(a),
        str(b),
    )


def test_the_same_file_given_twice_runs_once(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.toml", TINY.format(name="once"))
    out = tmp_path / "o"
    code = main(["run", str(a), str(a), "--engine", ENG, "--no-memray", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["runs"]) == 1


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--engine", "hnswlib", "--fault", "flat-buffer-leak"], ["apply to refimpl engines only"]),
        (["--engine", "faiss", "--allocator", "raw"], ["--allocator raw applies to refimpl only"]),
    ],
)
def test_faults_and_allocators_a_peer_cannot_honour_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]
) -> None:
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    _usage_error(capsys, ["run", str(sc), *args, "--out", str(tmp_path / "o")], *needles)


@pytest.mark.parametrize(
    ("engine_table", "needles"),
    [
        (
            "buffer_sise = 10",
            ["unknown refimpl option(s) buffer_sise", "expected from buffer_size"],
        ),
        ('M = "sixteen"', ["M = 'sixteen': expected a positive integer"]),
    ],
)
def test_a_mistyped_refimpl_option_is_a_usage_error_not_an_engine_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine_table: str, needles: list[str]
) -> None:
    body = TINY.format(name="t").replace("[[cycle]]", f"[engine]\n{engine_table}\n[[cycle]]")
    sc = _write(tmp_path, "t.toml", body)
    _usage_error(capsys, ["run", str(sc), "--out", str(tmp_path / "o")], *needles)


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (b'name = "t\xff"\n', ["not UTF-8 text", "byte 0xff"]),
        (
            TINY.format(name="t").replace("repeat = 2", "repeat = 1000000000").encode(),
            ["cycle 1", "field 'repeat'", "must be <= 100,000"],
        ),
        (
            TINY.format(name="t").replace("count = 20", "count = 1000000000000").encode(),
            ["cycle 1", "step 0", "field 'count'", "GiB of float32"],
        ),
        (
            TINY.format(name="t")
            .replace('name = "t"', 'name = "t"\nengines = ["refimpll"]')
            .encode(),
            ["field 'engines'", "unknown engine 'refimpll'"],
        ),
    ],
    ids=["not-utf8", "repeat-1e9", "count-1e12", "engines-typo"],
)
def test_a_scenario_the_machine_cannot_read_or_hold_is_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, needles: list[str]
) -> None:
    sc = _write(tmp_path, "t.toml", body)
    _usage_error(capsys, ["run", str(sc), "--out", str(tmp_path / "o")], *needles)


@pytest.mark.parametrize("target", ["file", "/dev/null", "/proc/memcycle-nope"])
def test_an_unusable_out_folder_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    out = str(_write(tmp_path, "afile", "x")) if target == "file" else target
    _usage_error(capsys, ["run", str(sc), "--engine", ENG, "--out", out], f"--out {out}")


def test_an_earlier_run_in_out_is_replaced_whole_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "a.toml", TINY.format(name="first"))
    b = _write(tmp_path, "b.toml", TINY.format(name="second"))
    out = tmp_path / "o"
    assert main(["run", str(a), "--engine", ENG, "--no-memray", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    capsys.readouterr()
    assert main(["run", str(b), "--engine", ENG, "--no-memray", "--out", str(out)]) == 0
    assert "held an earlier run; replaced" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert [r["scenario"] for r in report["runs"]] == ["second"]
    assert not any(p.name.startswith("first") for p in out.iterdir())  # no mixed folder
    assert (out / "notes.txt").read_text() == "mine"  # what is not memcycle's stays


def test_a_report_that_is_not_an_object_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.json").write_text("[]", encoding="utf-8")
    _usage_error(capsys, ["report", str(tmp_path / "r")], "holds a JSON list, not an object")


def test_an_engine_module_that_exits_at_import_cannot_end_memcycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spec is checked without running the user's module: os._exit(0) at its import
    happens in the child, and the run is an error (exit 3), never an exit 0 of memcycle."""
    engine = _write(
        tmp_path, "exits.py", "import os\nos._exit(0)\n\n\ndef make(config):\n    pass\n"
    )
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    code = main(
        ["run", str(sc), "--engine", f"{engine}:make", "--no-memray", "--out", str(tmp_path / "o")]
    )
    assert code == 3
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["runs"][0]["verdict"] == "error"


def test_a_factory_the_module_does_not_define_is_a_usage_error_read_from_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = _write(tmp_path, "eng.py", "import os\n\n\ndef make(config):\n    os._exit(7)\n")
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    _usage_error(
        capsys,
        ["run", str(sc), "--engine", f"{engine}:mkae", "--out", str(tmp_path / "o")],
        "has no factory 'mkae'",
    )


def test_a_closed_stdout_does_not_turn_a_failing_run_into_exit_0(tmp_path: Path) -> None:
    """`memcycle run ... | true`: the pipe closes, the wrong-result must still exit 1."""
    sc = _write(
        tmp_path,
        "t.toml",
        TINY.format(name="t").replace("min_recall = 0.0", "min_recall = 0.0")
        + '\n[expect]\nverdict = "leak"\n',
    )
    cmd = [
        sys.executable,
        "-m",
        "memcycle",
        "run",
        str(sc),
        "--engine",
        ENG,
        "--no-memray",
        "--out",
        str(tmp_path / "o"),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert p.stdout is not None
    p.stdout.close()  # the reader is gone before memcycle prints its results
    assert p.wait(timeout=300) == 1


FORGER = """
import json, os
from memcycle.examples.my_engine import MyEngine


class Forger(MyEngine):
    name = "forger"

    def clear(self):
        super().clear()
        fd = int(os.environ.get("FORGE_FD", "3"))
        # the child's events fd is the one after --events-fd on its command line
        import sys
        fd = int(sys.argv[sys.argv.index("--events-fd") + 1])
        os.write(fd, (json.dumps({"kind": "end", "code": 0}) + "\\n").encode())
        os._exit(0)


def make(config):
    return Forger(config)
"""


def test_an_engine_that_forges_an_end_event_and_exits_0_is_not_clean(tmp_path: Path) -> None:
    from memcycle.runner import run_one

    engine = _write(tmp_path, "forger.py", FORGER)
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    rec = run_one(sc, f"{engine}:make", memray=False)
    assert rec.verdict == "crash", [f.summary for f in rec.findings]
    summary = rec.findings[0].summary
    assert "exited with code 0" in summary and "not the child's" in summary
    assert rec.findings[0].evidence["forged_events"] == 1


def test_engine_options_from_the_command_line_reach_the_engine(tmp_path: Path) -> None:
    """`--engine-option KEY=VALUE` lands in EngineConfig.options (the strict test engine
    refuses any option, so the run is an error naming it); without it the run is clean."""
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    strict = "tests.suite_engines:make_strict"
    base = ["run", str(sc), "--engine", strict, "--no-memray"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--engine-option", "mode=persistent", "--out", str(tmp_path / "b")]) == 3
    run = json.loads((tmp_path / "b" / "report.json").read_text())["runs"][0]
    assert "strict takes no options, got ['mode']" in run["findings"][0]["summary"]


def test_a_malformed_engine_option_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    _usage_error(
        capsys,
        ["run", str(sc), "--engine-option", "novalue", "--out", str(tmp_path / "o")],
        "bad --engine-option 'novalue'; expected KEY=VALUE",
    )


GARBAGE_ENGINE = """
import os, sys
from memcycle.examples.my_engine import MyEngine


class Garbage(MyEngine):
    name = "garbage"

    def clear(self):
        fd = int(sys.argv[sys.argv.index("--events-fd") + 1])
        os.write(fd, b'{"kind": "step", "cycle": [1, 2], "op": {}}\\n{not json at all\\n')
        self.index = None


def make(config):
    return Garbage(config)
"""


def test_malformed_lines_on_the_events_fd_cost_only_that_run_and_are_never_clean(
    tmp_path: Path,
) -> None:
    """An engine writing malformed JSON (and JSON of the wrong shape) to the events fd: that
    run is not clean, the report is written, and the other run of the batch is judged."""
    engine = _write(tmp_path, "garbage.py", GARBAGE_ENGINE)
    sc = _write(tmp_path, "t.toml", TINY.format(name="t"))
    out = tmp_path / "o"
    code = main(
        [
            "run",
            str(sc),
            "--engine",
            f"{engine}:make",
            "--engine",
            ENG,
            "--no-memray",
            "--out",
            str(out),
        ]
    )
    assert code == 1
    runs = {r["engine"]: r for r in json.loads((out / "report.json").read_text())["runs"]}
    assert runs[ENG]["verdict"] == "clean"
    bad = runs[f"{engine}:make"]
    assert bad["verdict"] == "crash" and "not the child's" in bad["findings"][0]["summary"]


def test_a_run_folder_taken_by_a_file_is_that_runs_error_and_the_rest_go_on(
    tmp_path: Path,
) -> None:
    a = _write(tmp_path, "a.toml", TINY.format(name="alpha"))
    b = _write(tmp_path, "b.toml", TINY.format(name="beta"))
    out = tmp_path / "o"
    out.mkdir()
    from memcycle.runner import slug

    (out / slug(f"alpha|{ENG}|numpy|-")).write_text("in the way", encoding="utf-8")
    code = main(["run", str(a), str(b), "--engine", ENG, "--no-memray", "--out", str(out)])
    assert code == 3
    runs = {r["scenario"]: r for r in json.loads((out / "report.json").read_text())["runs"]}
    assert runs["beta"]["verdict"] == "clean"
    assert runs["alpha"]["verdict"] == "error"
    assert "memcycle could not finish this run" in runs["alpha"]["findings"][0]["summary"]


def test_a_lone_surrogate_in_an_engine_message_does_not_break_the_report_writers(
    tmp_path: Path,
) -> None:
    from factories import sample_report
    from memcycle.records import Finding
    from memcycle.reporters import write_all

    report = sample_report()
    report.runs[0].findings.append(
        Finding("lifecycle-error", 1, 0, "insert", "bad file \udcff name", {"error": "x\udcffy"})
    )
    written = write_all(report, tmp_path)
    for path in written.values():
        text = Path(path).read_text(encoding="utf-8")  # every file is valid UTF-8
        assert "bad file" in text
