"""Synthetic run records for testing reporters, the gate and the plugin without a harness run."""

from __future__ import annotations

from typing import Any

from memcycle.records import CycleSummary, Finding, Report, RunRecord, StepEvent

MiB = 1 << 20


def cycles(
    n: int,
    *,
    fail_at: int | None = None,
    fail_status: str = "double-free",
    live: int = 0,
    live_growth: int = 0,
    leaked_growth: int = 0,
    rss: int = 80 * MiB,
    dimension: int = 16,
) -> list[CycleSummary]:
    """`n` cycles; from `fail_at` on the run stops (that cycle shows `fail_status`, later '-')."""
    out = []
    for i in range(1, n + 1):
        if fail_at is not None and i > fail_at:
            out.append(CycleSummary(cycle=i, dimension=dimension, status="-"))
            continue
        status = fail_status if fail_at == i else "ok"
        out.append(
            CycleSummary(
                cycle=i,
                dimension=dimension,
                status=status,
                live_blocks_after_clear=0 if not live_growth else i,
                live_bytes=live + live_growth * i,
                memray_leaked_bytes=leaked_growth * i,
                rss_bytes=rss + i * MiB // 4,
                tracemalloc_bytes=1000 * i,
                seconds=0.1 * i,
            )
        )
    return out


def make_run(
    scenario: str = "repeated-clear-insert",
    *,
    engine: str = "refimpl",
    allocator: str = "checked",
    faults: list[str] | None = None,
    expected: str = "clean",
    verdict: str = "clean",
    n_cycles: int = 5,
    fail_at: int | None = None,
    findings: list[Finding] | None = None,
    exit: dict[str, Any] | None = None,
    memray: dict[str, Any] | None = None,
    seconds: float = 1.5,
    peak_bytes: int | None = 40 * MiB,
    leaked_growth: int = 0,
    live_growth: int = 0,
) -> RunRecord:
    """A RunRecord shaped like the harness makes them."""
    status = verdict if verdict not in ("clean", "skipped") else "double-free"
    return RunRecord(
        scenario=scenario,
        scenario_path=f"scenarios/{scenario}.toml",
        engine=engine,
        allocator=allocator,
        faults=list(faults or []),
        expected_verdict=expected,
        verdict=verdict,
        findings=list(findings or []),
        cycles=cycles(
            n_cycles,
            fail_at=fail_at,
            fail_status=status,
            leaked_growth=leaked_growth,
            live_growth=live_growth,
        ),
        steps=[StepEvent(cycle=1, step=0, op="insert", ok=True, seconds=0.01, count=100)],
        exit=exit if exit is not None else {"kind": "clean", "code": 0},
        capabilities={"delete": True, "ledger": True},
        memray=memray,
        seconds=seconds,
        peak_bytes=peak_bytes,
    )


def double_free_finding(cycle: int = 2) -> Finding:
    return Finding(
        verdict="double-free",
        cycle=cycle,
        step=0,
        op="insert",
        summary="double free of block #12 'sparse_map.keys' (4096 bytes)",
        evidence={
            "message": "double free of block #12 'sparse_map.keys' (4096 bytes at 0x7f00) [checked allocator]",
            "block": {
                "label": "sparse_map.keys",
                "nbytes": 4096,
                "block_id": 12,
                "alloc_stack": [
                    "refimpl/sparse_map.py:40 in __init__",
                    "refimpl/metadata.py:22 in clear",
                ],
                "free_stack": ["refimpl/sparse_map.py:88 in destroy"],
                "fault_stack": ["refimpl/sparse_map.py:101 in __del__"],
            },
        },
    )


def leak_finding() -> Finding:
    return Finding(
        verdict="leak",
        cycle=3,
        step=2,
        op="clear",
        summary="engine blocks grow by 1.0 MiB per cycle (flat.vectors)",
        evidence={"leaked_bytes_per_cycle": [0, MiB, 2 * MiB, 3 * MiB], "label": "flat.vectors"},
    )


def crash_run(**kw: Any) -> RunRecord:
    kw.setdefault("faults", ["flat-buffer-double-free"])
    kw.setdefault("expected", "crash")
    kw.setdefault("allocator", "raw")
    return make_run(
        verdict="crash",
        fail_at=2,
        findings=[
            Finding(
                verdict="crash",
                cycle=2,
                step=0,
                op="insert",
                summary="child killed by SIGABRT: free(): double free detected in tcache 2",
                evidence={"signal": "SIGABRT"},
            )
        ],
        exit={
            "kind": "signal",
            "code": -6,
            "signal": 6,
            "signal_name": "SIGABRT",
            "native_message": "free(): double free detected in tcache 2",
            "stderr_tail": "Fatal Python error: Aborted\nfree(): double free detected in tcache 2\n",
        },
        **kw,
    )


def sample_report(tmp_flamegraph: str | None = None) -> Report:
    """A report with one of each kind of run: clean, fault found, crash, leak, skipped, unexpected."""
    runs = [
        make_run(
            memray={
                "capture": "runs/a/memray.bin",
                "flamegraph": tmp_flamegraph or "runs/a/flamegraph.html",
            }
        ),
        make_run(
            faults=["sparse-map-recreate"],
            expected="double-free",
            verdict="double-free",
            fail_at=2,
            findings=[double_free_finding()],
        ),
        crash_run(),
        make_run(
            faults=["flat-buffer-leak"],
            expected="leak",
            verdict="leak",
            findings=[leak_finding()],
            live_growth=MiB,
            leaked_growth=MiB,
            memray={"leaks_flamegraph": "runs/c/leaks.html"},
        ),
        make_run(
            scenario="peer-hnswlib",
            engine="hnswlib",
            allocator="native",
            verdict="skipped",
            findings=[Finding("skipped", None, None, None, "hnswlib is not installed")],
        ),
        make_run(
            scenario="dimension-change",
            verdict="wrong-result",
            fail_at=3,
            findings=[
                Finding(
                    "wrong-result",
                    3,
                    1,
                    "search",
                    "recall 0.41 < 0.95 <script>alert(1)</script>",
                    {"recall": 0.41, "min_recall": 0.95},
                )
            ],
        ),
    ]
    return Report(
        run_id="20260101-000000",
        created="2026-01-01T00:00:00+00:00",
        runs=runs,
        host={"python": "3.11", "cpus": 2},
        command=["memcycle", "run", "scenarios/"],
    )
