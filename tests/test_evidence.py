"""One explanation of a verdict (memcycle.evidence), the same facts in every output.

Three findings made the way the harness makes them (`checks.judge` on a child's steps and
exit): a crash with a native stack, a leak the checked allocator's ledger names, and an ASan
report. Each output (console, Markdown, HTML, JUnit, the fault matrix, the story table and
the pytest plugin's failure report) must name the same facts of each: the verdict, where it
happened and the engine's own code in its stacks.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from memcycle.checks import judge
from memcycle.evidence import PythonFrame, engine_frame, evidence_line, explain, new_violations
from memcycle.faultmatrix import FAULT_DIR, Case, Outcome, format_matrix
from memcycle.pytest_plugin import MemcycleFailure, _record_longrepr
from memcycle.records import Report, RunRecord, StepEvent
from memcycle.reporters import render_html, render_junit
from memcycle.reporters.console import format_run
from memcycle.reporters.markdown import render_run
from memcycle.reporters.story import story_table
from memcycle.sanitizers import parse_asan
from memcycle.scenario import load_scenario, parse_scenario

PLAN = parse_scenario(
    """
dimension = 8
[[cycle]]
repeat = 3
steps = [ { op = "insert", count = 10 }, { op = "clear" } ]
""",
    "syn.toml",
).plan
ASAN_REPORT = Path(__file__).parent / "data" / "sanitizers" / "asan-use-after-free.txt"
ASAN_LIBRARY = "/tmp/nst/libs-asan.so"  # the library the sample report was taken from


def _record(engine: str = "refimpl-c", allocator: str = "raw") -> RunRecord:
    return RunRecord("syn", "syn.toml", engine, allocator, [], "clean", exit={"kind": "clean"})


def _steps(cycles: int, ledger: dict[int, dict] | None = None) -> list[StepEvent]:
    out = []
    for c in range(1, cycles + 1):
        out.append(StepEvent(c, 0, "insert", True, 0.1, 8, 10, 10))
        memory = {"ledger": ledger[c]} if ledger and c in ledger else {}
        out.append(StepEvent(c, 1, "clear", True, 0.0, 8, 0, 0, memory=memory))
    return out


def _segv(**exit: object) -> RunRecord:
    """A child killed by SIGSEGV in cycle 2's insert, judged; `exit` adds to its exit facts."""
    rec = _record()
    rec.steps = _steps(1)
    rec.exit = {"kind": "signal", "signal": 11, "signal_name": "SIGSEGV", **exit}
    return judge(rec, PLAN)


def crash_record() -> RunRecord:
    """The child died of SIGSEGV in cycle 2's insert; gdb's native stack names the engine."""
    return _segv(
        stderr_tail="Fatal Python error: Segmentation fault",
        native_stack=[
            {
                "index": 0,
                "function": "seg_store",
                "file": "/src/refimpl_c.c",
                "line": 424,
                "object": "/lib/librefimpl_c.so",
                "origin": "engine",
                "engine": True,
            },
            {
                "index": 1,
                "function": "ffi_call",
                "object": "/lib/libffi.so.8",
                "origin": "system",
                "engine": False,
            },
        ],
    )


def leak_record() -> RunRecord:
    """The checked allocator's ledger holds 'flat.vectors' blocks after every clear."""

    def ledger(c: int) -> dict:
        return {
            "allocs": 10 * c,
            "frees": 9 * c,
            "live_blocks": c,
            "live_bytes": 1600 * c,
            "by_label": {"flat.vectors": {"blocks": c, "bytes": 1600 * c}},
            "violations": [],
        }

    rec = _record("refimpl", "checked")
    rec.steps = _steps(3, {c: ledger(c) for c in (1, 2, 3)})
    return judge(rec, PLAN)


def asan_record() -> RunRecord:
    """ASan reported a heap use after free (and aborted the child)."""
    (report,) = parse_asan(ASAN_REPORT.read_text(), [ASAN_LIBRARY])
    rec = _record()
    rec.steps = _steps(1)
    rec.exit = {
        "kind": "signal",
        "signal": 6,
        "signal_name": "SIGABRT",
        "sanitizer": {"tool": "asan", "reports": [report]},
    }
    return judge(rec, PLAN)


# (record, facts every output names): the verdict, the engine's function and its line
CASES = {
    "crash": (crash_record, ("crash", "SIGSEGV", "seg_store", "refimpl_c.c:424")),
    "leak": (leak_record, ("leak", "flat.vectors", "1600")),
    "asan": (
        asan_record,
        ("use-after-free", "heap-use-after-free", "subject_search", "subject_alloc_rows"),
    ),
}


class _Item:
    """What `_record_longrepr` asks of a pytest item."""

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path("syn.toml"), 0, "scenario syn"


def _outputs(rec: RunRecord) -> dict[str, str]:
    case = Case(load_scenario(FAULT_DIR / "flat-buffer-leak.toml"), rec.allocator, "f", "x")
    report = Report("r", "now", [rec])
    return {
        "console": format_run(rec),
        "markdown": render_run(rec),
        "html": html.unescape(re.sub(r"<[^>]+>", "", render_html(report))),
        "junit": html.unescape(render_junit(report)),
        "matrix": format_matrix([Outcome(case, rec, True)]),
        "pytest": str(_record_longrepr(_Item(), MemcycleFailure(rec))),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("name", list(CASES))
def test_every_output_names_the_same_evidence_facts(name: str) -> None:
    make, facts = CASES[name]
    rec = make()
    assert rec.verdict == facts[0], rec.findings
    for output, text in _outputs(rec).items():
        missing = [fact for fact in facts if fact not in text]
        assert not missing, f"{output} lacks {missing}:\n{text}"


@pytest.mark.parametrize("name", list(CASES))
def test_the_story_table_marks_the_verdict_in_the_cycle_it_happened(name: str) -> None:
    make, facts = CASES[name]
    rec = make()
    finding = next(f for f in rec.findings if f.verdict == rec.verdict)
    row = next(
        line
        for line in story_table(rec, _record()).splitlines()
        if line.startswith(f"| {finding.cycle} |")
    )
    assert (facts[1] if name == "crash" else rec.verdict) in row


def test_the_explanation_names_the_engine_sites_of_each_stack() -> None:
    crash = explain(crash_record())
    assert crash.findings[0].sites[0] == "in seg_store (refimpl_c.c:424)"
    assert "SIGSEGV in cycle 2 at insert, in seg_store (refimpl_c.c:424)" in crash.line
    asan = explain(asan_record()).findings[0]
    assert "allocated in subject_alloc_rows (subject.c:35)" in asan.sites
    assert "freed in subject_release_rows (subject.c:38)" in asan.sites
    assert asan.items[0].title == "where"


def test_a_crash_without_a_native_stack_says_why() -> None:
    sites = explain(_segv(native_stack_absent="gdb is not installed")).findings[0].sites
    assert sites == ("no native stack: gdb is not installed",)


def test_allocator_frames_are_read_as_file_line_function_and_the_harness_is_skipped() -> None:
    frame = PythonFrame.parse("/x/refimpl/flat_buffer.py:88 in destroy")
    assert frame == PythonFrame("/x/refimpl/flat_buffer.py", 88, "destroy")
    assert PythonFrame.parse("not a frame") is None
    stack = [
        "/x/refimpl/flat_buffer.py:88 in destroy",
        "/x/refimpl/alloc.py:200 in free",
        "/site/memcycle/child.py:310 in op_clear",
    ]
    assert engine_frame(stack) == "flat_buffer.py:88 destroy"


def test_violations_are_read_once_per_step_from_the_cumulative_ledger() -> None:
    v1, v2 = {"verdict": "double-free", "label": "a"}, {"verdict": "invalid-free", "label": "b"}
    steps = [
        StepEvent(
            1, 0, "insert", True, 0.0, memory={"ledger": {"n_violations": 1, "violations": [v1]}}
        ),
        StepEvent(
            1, 1, "clear", True, 0.0, memory={"ledger": {"n_violations": 1, "violations": [v1]}}
        ),
        StepEvent(
            2, 0, "clear", True, 0.0, memory={"ledger": {"n_violations": 2, "violations": [v1, v2]}}
        ),
    ]
    assert new_violations(steps) == [[v1], [], [v2]]


def test_an_invalid_free_is_named_by_the_pointer_the_allocator_recorded() -> None:
    from memcycle.refimpl.alloc import CheckedAllocator
    from memcycle.refimpl.errors import InvalidFreeError

    alloc = CheckedAllocator()
    block = alloc.alloc("flat.ids", 4, "float32")
    other = CheckedAllocator()
    with pytest.raises(InvalidFreeError):
        other.free(block)
    (v,) = other.violations
    assert v["address"] == block.address and v["label"] == "flat.ids"
    rec = _record("refimpl", "checked")
    rec.steps = [
        StepEvent(
            1, 0, "clear", True, 0.0, memory={"ledger": {"n_violations": 1, "violations": [v]}}
        )
    ]
    rec.verdict = "invalid-free"
    assert f"free() of {block.address:#x} ('flat.ids'), never allocated" in evidence_line(rec)


def test_an_overflow_is_described_by_the_bytes_the_allocator_recorded() -> None:
    import numpy as np
    from memcycle.refimpl.alloc import CheckedAllocator
    from memcycle.refimpl.errors import BufferOverflowError

    alloc = CheckedAllocator()
    block = alloc.alloc("flat.vectors", 4, "float32")
    with pytest.raises(BufferOverflowError):
        alloc.store(block, 3, np.ones(2, np.float32))
    (v,) = alloc.violations
    assert v["overflow"] == {
        "access": "write",
        "access_bytes": 8,
        "offset": 12,
        "past_end_bytes": 4,
    }
    rec = _record("refimpl", "checked")
    rec.steps = [
        StepEvent(
            1,
            0,
            "insert",
            True,
            0.0,
            memory={"ledger": {"allocs": 1, "n_violations": 1, "violations": [v]}},
        )
    ]
    rec.verdict = "buffer-overflow"
    line = evidence_line(rec)
    assert "block #1 'flat.vectors' (16 B): allocated in cycle 1 (insert" in line
    assert line.endswith("(WRITE of 8 bytes at offset 12)")
