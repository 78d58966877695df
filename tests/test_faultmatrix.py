"""The fault matrix: faults caught through real child processes, the note's table
rendered from records, and a wrong expectation turning the exit status non-zero."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from memcycle.cli import main as cli_main
from memcycle.faultmatrix import (
    FAULT_DIR,
    Case,
    evidence_line,
    fault_index,
    format_matrix,
    judge_case,
    load_fault_scenarios,
    plan,
    run_cases,
)
from memcycle.isolation import classify
from memcycle.records import CycleSummary, RunRecord, StepEvent
from memcycle.refimpl.faults import CATALOGUE, FAULT_NAMES
from memcycle.reporters.story import NoteColumn, cycle_cells, first_failure, story_table
from memcycle.scenario import load_scenario


# -- the fault scenarios themselves -----------------------------------------------------
def test_every_catalogue_fault_has_a_scenario_with_catalogue_verdicts() -> None:
    index = fault_index(load_fault_scenarios())
    assert set(index) == set(FAULT_NAMES)
    for name, scs in index.items():
        fault = CATALOGUE[name]
        for sc in scs:
            table = dict(sc.expect)
            assert table["checked"] == fault.verdict_checked, sc.path
            if fault.abort_class:  # the native failure must be replayed for these
                assert "raw" in table, sc.path
            if "raw" in table:
                assert table["raw"] == fault.verdict_raw, sc.path
            assert not sc.slow, sc.path


def test_plan_runs_raw_only_where_named_and_the_clean_engine_everywhere() -> None:
    cases, missing = plan(["checked", "raw"], only=["visited-not-reset", "flat-buffer-leak"])
    assert missing == []
    faulty = {(c.fault, c.allocator) for c in cases if c.fault}
    assert faulty == {
        ("visited-not-reset", "checked"),
        ("flat-buffer-leak", "checked"),
        ("flat-buffer-leak", "raw"),
    }
    clean = [c for c in cases if c.fault is None]
    assert len(clean) == 4 and all(c.expected == "clean" for c in clean)
    assert all(c.scenario_to_run().faults == () for c in clean)
    full, _ = plan(["checked"])
    names = {c.scenario.name for c in full if c.fault is None}
    assert "soak-200" not in names and "repeated-clear-insert" in names
    assert "note-story" in names and "fault-migration-overflow" in names


# -- through real child processes ---------------------------------------------------------
def _case(name: str, allocator: str) -> Case:
    sc = fault_index(load_fault_scenarios())[name][0]
    return Case(sc, allocator, name, sc.expected(allocator))


def test_double_free_and_crash_are_caught_and_named(tmp_path: Path) -> None:
    cases = [
        _case("flat-buffer-double-free", "checked"),
        _case("flat-buffer-double-free", "raw"),
    ]
    _report, (checked, raw) = run_cases(cases, tmp_path, jobs=2, memray=False)
    assert checked.ok and raw.ok, (checked.problems, raw.problems)
    line = evidence_line(checked.record)
    assert "'flat.vectors' (1600 B)" in line
    assert "allocated in cycle 1 (insert, flat_buffer.py:" in line
    assert "freed in cycle 1 (clear, " in line and "freed again in cycle 2 (insert, " in line
    # glibc aborts when it sees the second free, or the process faults inside free first,
    # depending on the heap's layout (both seen in CI): the judge takes either (judge.py)
    assert raw.record.exit["kind"] == "signal"
    assert raw.record.exit["signal_name"] in ("SIGABRT", "SIGSEGV")
    assert "in cycle 2 at insert" in evidence_line(raw.record)
    text = format_matrix([checked, raw])
    assert "flat-buffer-double-free" in text and "FAIL" not in text


def test_leak_line_names_growing_labels_and_clean_run_is_clean(tmp_path: Path) -> None:
    leak = _case("flat-buffer-leak", "checked")
    clean = Case(leak.scenario, "checked", None, "clean")
    _report, (lo, co) = run_cases([leak, clean], tmp_path, jobs=2, memray=False)
    assert lo.ok and co.ok, (lo.problems, co.problems)
    line = evidence_line(lo.record)
    assert "'flat.vectors' +1600 B/cycle" in line and "'flat.ids' +400 B/cycle" in line
    assert co.record.faults == [] and co.record.verdict == "clean"


def test_wrong_expectation_makes_the_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fault scenario that expects the wrong verdict is a misclassification: exit 1."""
    faults = tmp_path / "faults"
    faults.mkdir()
    src = (FAULT_DIR / "flat-buffer-leak.toml").read_text()
    (faults / "flat-buffer-leak.toml").write_text(
        src.replace('checked = "leak"', 'checked = "double-free"')
    )
    code = cli_main(
        [
            "faults",
            "--allocator",
            "checked",
            "--only",
            "flat-buffer-leak",
            "--no-clean",
            "--no-memray",
            "--faults-dir",
            str(faults),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "misclassified: leak, expected double-free" in out
    assert "the catalogue says leak" in out
    assert (tmp_path / "out" / "summary.md").read_text().count("## Fault matrix") == 1


def test_missing_scenario_and_unknown_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    shutil.copy(FAULT_DIR / "flat-buffer-leak.toml", faults)
    cases, missing = plan(["checked"], fault_dir=faults, bundled=None)
    assert {c.fault for c in cases} == {"flat-buffer-leak", None}
    assert set(missing) == set(FAULT_NAMES) - {"flat-buffer-leak"}
    assert format_matrix([], missing).count("no scenario names this fault") == len(missing)
    assert cli_main(["faults", "--only", "gremlins"]) == 2
    assert "unknown fault 'gremlins'" in capsys.readouterr().err


# -- judging and the story table on synthetic records --------------------------------------
def _died(signal_name: str | None, stderr: str | None) -> dict:
    """A child's exit as the isolation layer records it: killed by `signal_name` (None: exit
    status 1) with `stderr` (a runtime's message, or nothing)."""
    code = -signal.Signals[signal_name].value if signal_name else 1
    return classify(code, False, [], stderr or "")


def _record(statuses: list[str], **kw: object) -> RunRecord:
    rec = RunRecord("s", "s.toml", "refimpl", "checked", [], "clean", **kw)  # type: ignore[arg-type]
    rec.cycles = [CycleSummary(i + 1, 8, s) for i, s in enumerate(statuses)]
    return rec


def test_judge_flags_missed_and_clean_findings() -> None:
    sc = load_scenario(FAULT_DIR / "sparse-map-recreate.toml")
    missed = judge_case(Case(sc, "raw", "sparse-map-recreate", "double-free"), _record(["ok"]))
    assert not missed.ok and any("missed" in p for p in missed.problems)
    assert any("did not kill the child" in p for p in missed.problems)
    noisy = _record(["leak"], verdict="leak")
    assert not judge_case(Case(sc, "checked", None, "clean"), noisy).ok


@pytest.mark.parametrize(
    ("verdict", "message"),
    [
        ("double-free", "double free or corruption (!prev)"),
        ("invalid-free", "munmap_chunk(): invalid pointer"),
        ("buffer-overflow", "free(): invalid size"),
        ("crash", None),  # faulted inside free before glibc could print
    ],
)
def test_a_raw_double_free_is_caught_whichever_heap_check_glibc_trips_over(
    verdict: str, message: str | None
) -> None:
    """glibc sees a second free only through the chunk header, which may belong to a recycled
    block by then: every reading of it seen in CI passes, and the row says why it reads so."""
    sc = load_scenario(FAULT_DIR / "reinit-without-destroy.toml")
    case = Case(sc, "raw", "reinit-without-destroy", "double-free")
    exit_ = _died("SIGABRT", message)
    out = judge_case(case, _record(["ok", "crash"], verdict=verdict, exit=exit_))
    assert out.ok, out.problems
    assert bool(out.notes) == (verdict != "double-free")
    if out.notes:
        assert "checked allocator names the cause" in format_matrix([out])


def test_a_raw_double_free_reading_is_not_accepted_beyond_glibc_a_signal_and_raw() -> None:
    """The leeway is for glibc's symptoms of a double free under raw, nothing wider."""
    sc = load_scenario(FAULT_DIR / "reinit-without-destroy.toml")
    raw = Case(sc, "raw", "reinit-without-destroy", "double-free")
    size = _died("SIGABRT", "free(): invalid size")
    # the checked allocator must name the double free itself
    checked = Case(sc, "checked", "reinit-without-destroy", "double-free")
    assert not judge_case(
        checked, _record(["ok", "crash"], verdict="buffer-overflow", exit=size)
    ).ok
    # a run that did not die of a signal
    exited = _died(None, "free(): invalid size")
    assert not judge_case(raw, _record(["ok"], verdict="buffer-overflow", exit=exited)).ok
    # a message of another runtime, or a verdict no heap check gives
    rust = _died("SIGABRT", "thread 'main' panicked at src/lib.rs:3:5:\nboom")
    assert not judge_case(raw, _record(["ok", "crash"], verdict="crash", exit=rust)).ok
    assert not judge_case(raw, _record(["ok", "leak"], verdict="leak", exit=size)).ok
    # a fault expected to be a lifecycle error gets no leeway
    keep = load_scenario(FAULT_DIR / "keep-initialized.toml")
    lifecycle = Case(keep, "raw", "keep-initialized", "lifecycle-error")
    assert not judge_case(lifecycle, _record(["crash"], verdict="buffer-overflow", exit=size)).ok


@pytest.mark.parametrize(
    ("verdict", "message"),
    [("buffer-overflow", "free(): invalid next size (normal)"), ("crash", None)],
)
def test_a_raw_overflow_is_caught_whether_glibc_saw_it_at_the_free_or_the_write_faulted_first(
    verdict: str, message: str | None
) -> None:
    """Seen in CI: the raw migration-overflow aborts at the clear with glibc's words, or dies of
    a bare SIGSEGV at the insert that wrote past the block, depending on the heap's layout."""
    mig = load_scenario(FAULT_DIR / "migration-overflow.toml")
    overflow = Case(mig, "raw", "migration-overflow", "buffer-overflow")
    exit_ = _died("SIGSEGV", message)
    out = judge_case(overflow, _record(["crash"], verdict=verdict, exit=exit_))
    assert out.ok, out.problems
    assert bool(out.notes) == (verdict != "buffer-overflow")


def test_a_raw_fault_expected_to_crash_may_die_with_glibcs_heap_words_instead() -> None:
    """`crash` under raw means the process dies of a signal; glibc aborting first with a heap
    message is that, said more precisely."""
    sc = load_scenario(FAULT_DIR / "singleton-double-destroy.toml")
    case = Case(sc, "raw", "singleton-double-destroy", "crash")
    said = _died("SIGABRT", "free(): invalid size")
    out = judge_case(case, _record(["crash"], verdict="buffer-overflow", exit=said))
    assert out.ok and out.notes, out.problems
    exited = _died(None, "free(): invalid size")
    assert not judge_case(case, _record(["ok"], verdict="buffer-overflow", exit=exited)).ok


def test_story_table_cells_and_status() -> None:
    original = _record(["ok", "ok", "ok", "ok", "crash"], exit={"kind": "signal"})
    original.exit["signal_name"] = "SIGABRT"
    original.exit["native_message"] = "free(): invalid pointer"
    fixed = _record(["ok", "double-free", "-", "-", "-"])
    # a violation recorded in cycle 3 of the original (not in its findings) still shows
    original.steps = [
        StepEvent(
            3,
            2,
            "clear",
            True,
            0.0,
            memory={
                "ledger": {
                    "n_violations": 1,
                    "violations": [{"verdict": "double-free", "label": "flat.vectors"}],
                }
            },
        ),
    ]
    cells = cycle_cells(original)
    assert [c.status for c in cells] == ["ok", "ok", "double-free", "ok", "crash"]
    assert first_failure(cells) == 3
    md = story_table(
        original,
        fixed,
        title="T",
        note=(NoteColumn(5, "❌ (0xa)"), NoteColumn(2, "❌ (0x1)")),
    )
    rows = [line for line in md.splitlines() if line.startswith("| ") and "Cycle" not in line]
    assert rows[0] == "| 1 | ✅ | ✅ | Works |"
    assert rows[1].startswith("| 2 | ✅ | ❌ (double-free) | After fixes fail first here")
    assert rows[2].startswith("| 3 | ❌ (double-free: flat.vectors) | - | Original fails first")
    assert rows[4].startswith("| 5 | ⚡ (SIGABRT: free(): invalid pointer) | - |")
    assert "differ from the note's" in md
    same = story_table(
        _record(["ok"] * 4 + ["double-free"]),
        fixed,
        note=(NoteColumn(5, "❌ (0xa)"), NoteColumn(2, "❌ (0x1)")),
    )
    assert "match the note's" in same


@pytest.mark.slow
def test_whole_checked_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["faults", "--allocator", "checked", "--jobs", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in FAULT_NAMES:
        assert f"\n{name} " in out
    assert "FAIL" not in out


def test_a_raw_run_killed_without_a_runtime_message_is_accepted_as_crash_but_a_wrong_one_is_not() -> (
    None
):
    """reinit-without-destroy under raw aborts with glibc's double-free message on most heap
    layouts and dies of a bare SIGSEGV on others: a bare signal is `crash`, accepted; a crash
    with a message that says otherwise, or a clean run, is still a problem."""
    cases, _ = plan(["raw"])
    case = next(c for c in cases if c.fault == "reinit-without-destroy")
    assert isinstance(case, Case) and case.expected == "double-free"

    def rec(verdict: str, exit: dict) -> RunRecord:
        r = RunRecord("s", "s.toml", "refimpl", "raw", ["reinit-without-destroy"], "double-free")
        r.verdict, r.exit = verdict, exit
        return r

    bare = judge_case(case, rec("crash", _died("SIGSEGV", None)))
    assert bare.ok, bare.problems
    said = judge_case(case, rec("crash", _died("SIGABRT", "free(): invalid pointer")))
    assert not said.ok
    assert not judge_case(case, rec("clean", {"kind": "clean"})).ok
