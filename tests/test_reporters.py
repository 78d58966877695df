"""Reporters: pure renderings of synthetic run records (no harness run needed)."""

from __future__ import annotations

import inspect
import json
import xml.etree.ElementTree as ET
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from factories import MiB, crash_run, double_free_finding, make_run, sample_report
from memcycle.cli import build_parser
from memcycle.evidence import evidence_items
from memcycle.records import CycleSummary, Finding, Report, RunRecord, StepEvent
from memcycle.reporters import FILENAMES, render_html, render_json, render_junit, write_all
from memcycle.reporters.common import (
    QUARANTINE_KEPT_NOTE,
    QUARANTINE_NOTE,
    cell,
    cycle_table,
    fmt_bytes,
    memory_rows,
    quarantine_note,
)
from memcycle.reporters.console import format_run
from memcycle.reporters.markdown import render_markdown, render_run
from memcycle.reporters.plots import (
    ENGINE_LINE,
    ENGINE_WITH_CACHE_LINE,
    QUARANTINE_LINE,
    memory_plot_png,
    panels,
)
from memcycle.runner import RunSpec, run_one


# --- cycle table ----------------------------------------------------------------
def test_cells_use_the_reference_note_notation() -> None:
    run = crash_run()
    assert cell("ok") == "✅"
    assert cell("double-free") == "❌ (double-free)"
    assert cell("crash", run) == "⚡ (SIGABRT)"
    assert cell("timeout") == "⚡ (timeout)"
    assert cell("-") == "-"


def test_fault_run_is_compared_with_the_no_fault_run_of_the_same_scenario() -> None:
    clean = make_run()
    faulty = make_run(
        faults=["sparse-map-recreate"],
        expected="double-free",
        verdict="double-free",
        fail_at=2,
        findings=[double_free_finding()],
    )
    table = cycle_table(faulty, [clean, faulty])
    assert table.baseline_name == "without faults"
    rows = {r.cycle: r for r in table.rows}
    assert (rows[1].baseline, rows[1].this_run, rows[1].status) == ("✅", "✅", "Works")
    assert rows[2].this_run == "❌ (double-free)"
    assert rows[2].status == "Fails (baseline works)"
    assert (rows[3].this_run, rows[3].status) == ("-", "-")


def test_baseline_report_fills_the_baseline_column_and_status_says_what_changed() -> None:
    old = make_run(verdict="double-free", fail_at=5)
    new = make_run(verdict="crash", fail_at=2, exit={"kind": "signal", "signal": "SIGSEGV"})
    baseline = Report(run_id="old-run", created="x", runs=[old])
    table = cycle_table(new, [new], baseline)
    assert table.baseline_name == "baseline old-run"
    rows = {r.cycle: r for r in table.rows}
    assert rows[2].this_run == "⚡ (SIGSEGV)"
    assert rows[2].status.startswith("Crashes")
    assert rows[5].baseline == "❌ (double-free)"
    assert rows[5].status == "Not reached (baseline failed here)"
    fixed = cycle_table(make_run(), [], baseline)
    assert {r.cycle: r.status for r in fixed.rows}[5] == "Fixed"


def test_without_any_baseline_the_column_is_the_expectation() -> None:
    run = make_run(verdict="wrong-result", fail_at=3)
    table = cycle_table(run, [run])
    assert table.baseline_name == "expected (clean)"
    assert [r.status for r in table.rows][:3] == ["Works", "Works", "Fails"]
    expected_fault = crash_run()
    statuses = [r.status for r in cycle_table(expected_fault, [expected_fault]).rows]
    assert statuses[1] == "Fails as expected"


def test_evidence_shows_block_stacks_as_blocks_and_bytes_readably() -> None:
    items = {i.title: i for i in evidence_items(double_free_finding().evidence)}
    assert items["message"].text.startswith("double free of block #12")
    assert items["block.alloc_stack"].block
    assert "refimpl/metadata.py:22 in clear" in items["block.alloc_stack"].text
    assert items["block.nbytes"].text == "4.0 KiB (4096)"
    leak = evidence_items({"leaked_bytes_per_cycle": [0, MiB, 2 * MiB]})
    assert leak[0].text == "0 B, 1.0 MiB, 2.0 MiB"


def test_fmt_bytes() -> None:
    assert fmt_bytes(None) == "-"
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(3 * MiB) == "3.0 MiB"
    assert fmt_bytes(-2048) == "-2.0 KiB"


# --- markdown ---------------------------------------------------------------------
def test_summary_has_one_cycle_table_per_run_and_the_evidence() -> None:
    report = sample_report()
    md = render_markdown(report)
    assert md.count("| Cycle | ") == 2 * len(report.runs)  # cycle table + memory table each
    assert "| 2 | ✅ | ❌ (double-free) | Fails (baseline works) |" in md
    assert "⚡ (SIGABRT)" in md
    assert "free(): double free detected in tcache 2" in md  # stderr tail
    assert "refimpl/sparse_map.py:101 in __del__" in md  # the fault stack
    assert "0 B, 1.0 MiB, 2.0 MiB, 3.0 MiB" in md  # leaked bytes per cycle
    assert "1 failed" in md


def test_exit_is_shown_only_when_abnormal_with_the_native_message() -> None:
    clean = render_run(make_run())
    assert "exit:" not in clean
    crashed = render_run(crash_run())
    assert "exit: kind signal code -6 signal 6 (SIGABRT)" in crashed
    assert "native message: free(): double free detected in tcache 2" in crashed
    # a child that ended without its end event is worth showing even with code 0
    assert "exit:" in render_run(make_run(exit={"kind": "exit", "code": 0}))


def test_markdown_table_cells_escape_pipes() -> None:
    run = make_run(scenario="a|b")
    md = render_markdown(Report(run_id="r", created="c", runs=[run]))
    assert "a\\|b" in md


def test_render_run_without_cycles_says_so() -> None:
    run = make_run(n_cycles=0, verdict="crash", exit={"kind": "signal", "signal": 11})
    text = render_run(run)
    assert "no cycle was recorded" in text
    assert "SIGSEGV" in text


# --- json -------------------------------------------------------------------------
def test_json_round_trips_and_is_stable() -> None:
    report = sample_report()
    text = render_json(report)
    data = json.loads(text)
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == 1
    again = Report.from_dict(data)
    assert render_json(again) == text
    assert [r.key for r in again.runs] == [r.key for r in report.runs]
    # free-form dicts are sorted, so insertion order does not change the file
    a = make_run(exit={"signal": None, "kind": "exit", "code": 0})
    b = make_run(exit={"code": 0, "kind": "exit", "signal": None})
    assert render_json(Report("r", "c", [a])) == render_json(Report("r", "c", [b]))


# --- junit ------------------------------------------------------------------------
def test_junit_one_testcase_per_run_with_failure_and_skip() -> None:
    report = sample_report()
    root = ET.fromstring(render_junit(report))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(report.runs)
    assert suite.get("tests") == str(len(report.runs))
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    by_name = {(c.get("classname"), c.get("name")): c for c in cases}
    failed = by_name[("dimension-change", "refimpl/checked/no-faults")]
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("type") == "wrong-result"
    assert "expected clean" in (failure.get("message") or "")
    assert "FAIL (wrong-result)" in (failure.text or "")
    skipped = by_name[("peer-hnswlib", "hnswlib/native/no-faults")].find("skipped")
    assert skipped is not None and skipped.get("message") == "hnswlib is not installed"
    ok = by_name[("repeated-clear-insert", "refimpl/checked/sparse-map-recreate")]
    assert ok.find("failure") is None


def _setup_error_run(expected: str = "clean") -> RunRecord:
    run = make_run("engine-missing", engine="broken:make", verdict="error", expected=expected)
    run.steps = []
    run.cycles = [CycleSummary(c, 8, "-") for c in range(1, 9)]
    run.exit = {
        "kind": "exception",
        "code": 4,
        "stderr_tail": "Traceback ...\nModuleNotFoundError: No module named 'vendorlib'\n",
    }
    run.findings = [
        Finding(
            "error",
            None,
            None,
            "setup",
            "engine setup failed: ModuleNotFoundError: No module named 'vendorlib'",
            {"error": {"type": "builtins.ModuleNotFoundError", "traceback": "Traceback ..."}},
        )
    ]
    return run


def test_junit_error_run_is_an_error_element_counted_in_errors_not_failures() -> None:
    report = sample_report()
    report.runs.append(_setup_error_run())
    suite = ET.fromstring(render_junit(report)).find("testsuite")
    assert suite is not None
    assert (suite.get("errors"), suite.get("failures")) == ("1", "1")
    case = next(c for c in suite.findall("testcase") if c.get("classname") == "engine-missing")
    assert case.find("failure") is None
    error = case.find("error")
    assert error is not None and error.get("type") == "error"
    assert error.get("message") == (
        "ERROR at op setup: engine setup failed: ModuleNotFoundError: No module named 'vendorlib'"
    )
    body = error.text or ""
    assert "No cycle ran" in body and "No module named 'vendorlib'" in body
    assert "| 1 |" not in body  # no invented cycle table


def test_junit_messages_are_one_plain_line_and_bodies_carry_no_emoji_or_markdown() -> None:
    report = sample_report()
    report.runs.append(_setup_error_run())
    report.runs.append(crash_run(expected="clean"))
    root = ET.fromstring(render_junit(report))
    elements = root.findall(".//failure") + root.findall(".//error")
    assert len(elements) == 3
    for el in elements:
        message = el.get("message") or ""
        assert message and "\n" not in message, message
        assert el.get("type") in message or "ERROR" in message
        for text in (message, el.text or ""):
            for bad in ("✅", "❌", "⚡", "**", "|---", "```"):
                assert bad not in text, (bad, text)
    crash = next(el for el in elements if el.get("type") == "crash")
    assert (crash.get("message") or "").startswith("verdict crash (expected clean) at cycle ")
    assert "CRASH (SIGABRT)" in (crash.text or "")


def test_summary_counts_errors_and_marks_the_run_error() -> None:
    report = sample_report()
    report.runs.append(_setup_error_run())
    md = render_markdown(report)
    assert "1 error(s) (memcycle or the adapter could not run them)" in md
    assert "### broken:make/checked/no-faults: error (ERROR)" in md
    assert "(no cycle ran: memcycle or the adapter could not build the engine)" in md


def test_junit_survives_control_characters_in_stderr() -> None:
    run = crash_run(expected="clean")
    run.exit["stderr_tail"] = "bad \x00\x07 bytes"
    root = ET.fromstring(render_junit(Report("r", "c", [run])))
    assert root.find("testsuite/testcase/failure") is not None


# --- html -------------------------------------------------------------------------
class _Page(HTMLParser):
    """Collects what the structure test needs from index.html."""

    def __init__(self) -> None:
        super().__init__()
        self.sections = 0
        self.tables_in_sections: list[int] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections += 1
            self.tables_in_sections.append(0)
        if tag == "table" and self.tables_in_sections:
            self.tables_in_sections[-1] += 1
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "a":
            self.links.append(a.get("href") or "")
        if tag in ("link", "script"):
            self.scripts += 1
            if a.get("src") or a.get("href"):
                self.external.append(a.get("src") or a.get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_structure(tmp_path: Path) -> None:
    report = sample_report(tmp_flamegraph=str(tmp_path / "runs" / "a" / "flamegraph.html"))
    page = _Page()
    page.feed(render_html(report, base_dir=tmp_path))
    assert page.sections == len(report.runs)
    # each run: its cycle table plus the per-cycle numbers table
    assert page.tables_in_sections == [2] * len(report.runs)
    assert page.imgs and all(src.startswith("data:image/png;base64,") for src in page.imgs)
    assert len(page.imgs) == len(report.runs)
    assert "runs/a/flamegraph.html" in page.links  # absolute path made relative
    assert "runs/c/leaks.html" in page.links
    assert not any(link.startswith("/") for link in page.links)
    assert page.scripts == 0 and page.external == []
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text  # shown as text, after unescaping
    assert "<script>alert(1)</script>" not in render_html(report)  # never raw markup


def test_html_escapes_every_record_field() -> None:
    evil = "<b>x</b>&"
    run = make_run(
        scenario=evil,
        engine=evil,
        findings=[Finding("leak", 1, 0, evil, evil, {evil: evil, "stack": [evil]})],
        memray={"flamegraph": 'a"b<c>.html'},
        exit={"kind": "signal", "signal": 6, "stderr_tail": evil},
        verdict="leak",
    )
    html = render_html(Report(evil, evil, [run], host={evil: evil}, command=[evil]))
    assert "<b>x</b>" not in html
    assert 'a"b<c>' not in html


def test_run_without_measurements_has_no_plot() -> None:
    run = make_run(n_cycles=0)
    page = _Page()
    page.feed(render_html(Report("r", "c", [run])))
    assert page.imgs == []


# --- write_all --------------------------------------------------------------------
def test_write_all_writes_every_format_and_rerenders_from_json(tmp_path: Path) -> None:
    report = sample_report()
    paths = write_all(report, tmp_path / "out")
    assert set(paths) == set(FILENAMES)
    for fmt, path in paths.items():
        assert path.name == FILENAMES[fmt]
        assert path.stat().st_size > 0
    # `memcycle report RUN_DIR`: from report.json alone, the same files again
    loaded = Report.from_dict(json.loads(paths["json"].read_text(encoding="utf-8")))
    again = write_all(loaded, tmp_path / "again")
    for fmt in ("json", "markdown", "junit"):
        assert again[fmt].read_text(encoding="utf-8") == paths[fmt].read_text(encoding="utf-8")
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_from_dict_refuses_another_schema_version() -> None:
    data = json.loads(render_json(sample_report()))
    data["schema_version"] = 999
    with pytest.raises(ValueError, match="schema_version"):
        Report.from_dict(data)


def test_long_runs_merge_identical_rows_and_elide_the_numbers_table() -> None:
    run = make_run(n_cycles=200, verdict="leak", fail_at=150, live_growth=MiB)
    table = cycle_table(run, [run])
    assert [r.label for r in table.rows] == ["1–149", "150", "151–200"]
    assert table.rows[1].this_run == "❌ (leak)"
    md = render_run(run)
    assert "| 1–149 | ✅ | ✅ | Works |" in md
    numbers = [line for line in md.splitlines() if line.startswith("| ") and "MiB" in line]
    assert len(numbers) < 20  # first and last cycles plus the failing one
    assert "| 150 |" in md and "| …" in md


def test_per_cycle_measurements_in_evidence_read_as_lines() -> None:
    [item] = evidence_items(
        {
            "after_resets": [
                {"cycle": 1, "step": 7, "op": "clear", "live_blocks": 2, "live_bytes": 18432},
                {"cycle": 2, "step": 7, "op": "clear", "live_blocks": 4, "live_bytes": 36864},
            ]
        }
    )
    [labels] = evidence_items({"by_label": {"flat.ids": {"blocks": 1, "bytes": 2048}}})
    assert labels.text == "flat.ids: blocks 1, bytes 2.0 KiB (2048)"
    assert item.text.splitlines() == [
        "cycle 1, step 7 (clear): live_blocks 2, live_bytes 18.0 KiB (18432)",
        "cycle 2, step 7 (clear): live_blocks 4, live_bytes 36.0 KiB (36864)",
    ]


def test_stacks_already_quoted_in_the_message_are_not_repeated() -> None:
    message = "double free of block #3\n  allocated at:\n    a.py:1 in f\n    b.py:2 in g"
    run = make_run(
        verdict="double-free",
        findings=[
            Finding(
                "double-free",
                1,
                0,
                "clear",
                "double free",
                {"violation": {"message": message, "alloc_stack": ["b.py:2 in g", "a.py:1 in f"]}},
            )
        ],
    )
    text = render_run(run)
    assert text.count("a.py:1 in f") == 1
    assert "violation.alloc_stack" not in text


def test_an_error_record_in_evidence_shows_its_traceback_as_text() -> None:
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nDoubleFreeError: boom'
    items = {
        i.title: i
        for i in evidence_items(
            {"error": {"type": "DoubleFreeError", "message": "boom", "traceback": tb}}
        )
    }
    assert items["error.traceback"].block
    assert items["error.traceback"].text == tb
    assert items["error.type"].text == "DoubleFreeError"


def test_a_traceback_does_not_repeat_the_message_shown_above() -> None:
    message = "double free of block #1\n  allocated at:\n    a.py:1 in f\n    b.py:2 in g"
    tb = "Traceback (most recent call last):\n  File x.py\nDoubleFreeError: " + message
    run = make_run(
        verdict="double-free",
        findings=[
            Finding(
                "double-free", 2, 0, "insert", "s", {"error": {"message": message, "traceback": tb}}
            )
        ],
    )
    text = render_run(run)
    assert text.count("a.py:1 in f") == 1
    assert "DoubleFreeError: double free of block #1 [... as shown above]" in text


def test_memray_stacks_in_evidence_read_as_header_and_frames() -> None:
    [item] = evidence_items(
        {"top_growth": [{"bytes": 2 * MiB, "blocks": 3, "stack": ["alloc (a.py:1)", "f (b.py:2)"]}]}
    )
    assert item.text.splitlines() == [
        "bytes 2.0 MiB (2097152), blocks 3",
        "    alloc (a.py:1)",
        "    f (b.py:2)",
    ]


# --- the checked allocator's quarantine, apart from engine live bytes ----------------------
def _checked_clean_run(n: int = 5, *, separated: bool = True) -> RunRecord:
    """A clean checked run as the harness records it: engine live bytes flat at ~34 KiB,
    the quarantine growing by 8 MiB a cycle (the allocator's ledger, at each cycle's end).
    `separated=False` is a record written before the quarantine was measured apart."""
    run = make_run(n_cycles=n, allocator="checked")
    markers = []
    for c in run.cycles:
        q = 8 * MiB * c.cycle
        live = 34 * 1024 + 100 * c.cycle
        c.memray_leaked_bytes = live if separated else live + q
        mk = {"index": c.cycle - 1, "cycle": c.cycle, "step": 3, "op": "end-of-cycle"}
        if separated:
            mk.update(engine_live_bytes=live, cached_bytes=q, engine_live_with_cache_bytes=live + q)
        markers.append(mk)
    run.steps = [
        StepEvent(
            cycle=c.cycle,
            step=2,
            op="clear",
            ok=True,
            seconds=0.0,
            memory={
                "ledger": {"live_blocks": 0, "live_bytes": 0, "cached_bytes": 8 * MiB * c.cycle}
            },
        )
        for c in run.cycles
    ]
    run.memray = {"markers": markers, "capture": "r/capture.bin"}
    return run


@pytest.mark.parametrize("separated", [True, False])
def test_checked_clean_run_tables_show_engine_live_flat_and_quarantine_in_its_own_column(
    separated: bool,
) -> None:
    run = _checked_clean_run(separated=separated)
    rows = memory_rows(run)
    assert [r["Engine live (memray)"] for r in rows] == [
        fmt_bytes(34 * 1024 + 100 * c) for c in range(1, 6)
    ]
    assert [r["Quarantine"] for r in rows] == [f"{8.0 * c:.1f} MiB" for c in range(1, 6)]
    console = format_run(run)
    header = next(line for line in console.splitlines() if line.startswith("| Cycle"))
    assert "Engine live KiB (memray)" in header and "Quarantine KiB" in header
    cells = {
        line.split("|")[1].strip(): [x.strip() for x in line.split("|")[4:6]]
        for line in console.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    }
    assert cells["1"] == ["34", "8192"] and cells["5"] == ["34", "40960"]
    md = render_run(run)
    assert "| Quarantine |" in md and QUARANTINE_NOTE in md
    assert escape(QUARANTINE_NOTE) in render_html(Report("r", "c", [run]))


def test_a_run_without_a_quarantine_has_no_quarantine_column() -> None:
    run = make_run(allocator="numpy", leaked_growth=MiB)
    assert "Quarantine" not in memory_rows(run)[0]
    assert "Quarantine" not in format_run(run)
    assert QUARANTINE_NOTE not in render_run(run)
    lines = dict(panels(run)[1][1])
    assert list(lines) == ["engine live bytes (memray)"]


def test_plot_draws_the_quarantine_as_its_own_series_beside_flat_engine_bytes() -> None:
    run = _checked_clean_run()
    title, lines = panels(run)[1]
    assert title == "engine live bytes (memray)"
    assert set(lines) == {ENGINE_LINE, QUARANTINE_LINE}
    engine = [v for _, v in lines[ENGINE_LINE]]
    assert max(engine) - min(engine) < 1024  # flat: the climbing line is not the engine's
    assert lines[QUARANTINE_LINE] == [(c, 8 * MiB * c) for c in range(1, 6)]
    assert memory_plot_png(run)[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_ranks_live_blocks_from_the_ledger_and_shows_the_quarantine_apart() -> None:
    run = _checked_clean_run()
    run.verdict, run.expected_verdict = "leak", "clean"
    flat = ["__init__ (refimpl/flat_buffer.py:37)", "initialize (refimpl/database.py:264)"]
    hnsw = ["_acquire (refimpl/alloc.py:386)", "_alloc_block (refimpl/hnsw.py:171)"]
    run.memray.update(
        top_growth=[
            {"bytes": 2 * MiB, "blocks": 4, "label": "flat.vectors", "stack": flat},
        ],
        top_live=[{"bytes": 2 * MiB, "blocks": 5, "label": "flat.vectors", "stack": flat}],
        cache={
            "bytes": 24 * MiB,
            "live_bytes": 2 * MiB,
            "allocator_bytes": 26 * MiB,
            "stacks": [{"bytes": 24 * MiB, "blocks": 10, "stack": hnsw}],
        },
    )
    html = render_html(Report("r", "c", [run]))
    grew = html.index("what grew since the warm-up cycle")
    quarantine = html.index("Allocator quarantine at the end: 24.0 MiB")
    assert grew < html.index("flat.vectors") < quarantine < html.index("hnsw.py:171")
    assert "quarantine excluded" in html[grew : grew + 200]


def test_html_says_whether_flamegraphs_work_offline() -> None:
    offline = make_run(memray={"flamegraph": "a/flamegraph.html", "capture": "a/c.bin"})
    online = make_run(memray={"flamegraph_online": "a/flamegraph.html", "capture": "a/c.bin"})
    none = make_run(memray={"capture": "a/c.bin"})
    page = {
        name: render_html(Report("r", "c", [run]))
        for name, run in (("offline", offline), ("online", online), ("none", none))
    }
    assert "self-contained" in page["offline"] and "work offline" in page["offline"]
    assert "(needs network)" in page["online"] and "offline they stay blank" in page["online"]
    assert 'href="a/flamegraph.html"' in page["online"]
    assert "No flamegraph for this run" in page["none"] and "--flamegraphs all" in page["none"]


def test_flamegraphs_default_to_failed_runs_only() -> None:
    assert build_parser().parse_args(["run"]).flamegraphs == "failed"
    assert RunSpec("s.toml").flamegraphs == "failed"
    assert inspect.signature(run_one).parameters["flamegraphs"].default == "failed"


def test_leak_evidence_lists_live_blocks_by_label_largest_first_with_their_frames() -> None:
    by_label = {
        "flat.ids": {
            "blocks": 5,
            "bytes": 2000,
            "stack": ["refimpl/flat_buffer.py:40 in __init__"],
        },
        "flat.vectors": {
            "blocks": 5,
            "bytes": 8000,
            "stack": [
                "refimpl/flat_buffer.py:37 in __init__",
                "refimpl/database.py:264 in initialize",
            ],
        },
    }
    (item,) = evidence_items({"by_label": by_label})
    lines = item.text.splitlines()
    assert lines[0] == "flat.vectors: blocks 5, bytes 7.8 KiB (8000)"
    assert lines[1:3] == [
        "    refimpl/flat_buffer.py:37 in __init__",
        "    refimpl/database.py:264 in initialize",
    ]
    assert lines[3].startswith("flat.ids: blocks 5") and "{" not in item.text


def test_a_quarantine_that_was_not_verified_apart_is_said_to_be_included() -> None:
    run = _checked_clean_run()
    for mk, c in zip(run.memray["markers"], run.cycles, strict=True):
        mk["engine_live_bytes"] = mk["engine_live_with_cache_bytes"]
        mk["cache_subtracted"] = False
        c.memray_leaked_bytes = mk["engine_live_bytes"]
    assert quarantine_note(run) == QUARANTINE_KEPT_NOTE
    assert QUARANTINE_KEPT_NOTE in render_run(run)
    rows = memory_rows(run)
    assert rows[-1]["Engine live (memray)"] == fmt_bytes(40 * MiB + 34 * 1024 + 500)
    assert ENGINE_WITH_CACHE_LINE in panels(run)[1][1]


def test_the_console_and_the_reports_leave_out_the_same_cycles_of_a_long_run() -> None:
    run = make_run(n_cycles=40, verdict="leak", fail_at=20, live_growth=MiB)
    console = [
        line.split("|")[1].strip()
        for line in format_run(run).splitlines()
        if line.startswith("| ") and "Cycle" not in line
    ]
    numbers = [r["Cycle"] for r in memory_rows(run)]
    assert [c if c.isdigit() else "gap" for c in console] == [
        c if c.isdigit() else "gap" for c in numbers
    ]
    # the first and last cycles, the failing one and the first not reached
    assert {"1", "6", "20", "21", "35", "40"} <= set(numbers) and "10" not in numbers
    assert "| ... | | | | | (13 cycles) |" in format_run(run)
