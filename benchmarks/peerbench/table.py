"""The Markdown table of one data set's run, and the ratios against hnswlib.

Targets (issue 17, refimpl / hnswlib): batched QPS at recall >= 0.95 and >= 0.99
at least 1.5x, one query at a time at least 1.2x, bytes per vector at most 1.0x,
1-thread build at least 1.0x.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .engines import ENGINES
from .session import EFS, REPEATS

Result = dict[str, Any]  # one engine, one thread count: build figures + "search" rows
TARGETS = {"batch": ">= 1.5x", "one": ">= 1.2x", "bytes": "<= 1.0x", "build": ">= 1.0x"}


def qps_at(result: Result, target: float, key: str = "batch_qps") -> tuple[int, float]:
    """(ef, QPS) at the smallest swept ef whose recall reaches `target`; (0, 0) if none."""
    for row in result["search"]:  # ef picked by the batched recall (all queries), for every key
        if row["recall"] >= target and key in row:
            return row["ef"], row[key]
    return 0, 0.0


def _build_rows(res: dict[str, dict[int, Result]], engines: list[str]) -> list[str]:
    lines = ["## Build and memory", ""]
    lines.append(
        "| engine | build vec/s, 1 thread | (per CPU-s) | build vec/s, 2 threads | "
        "(per CPU-s) | 2t / 1t | recall@10 ef=64 (2t build) | bytes/vector | measured as |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for e in engines:
        one, two = res[e].get(1), res[e].get(2)
        two_vps = f"{two['build_vps']:,.0f}" if two else "—"
        speed = f"{two['build_vps'] / one['build_vps']:.2f}x" if two else "—"
        rec2 = f"{two['recall_ef64']:.4f}" if two else "—"
        two_cpu = f"{two['build_vps_cpu']:,.0f}" if two else "—"
        lines.append(
            f"| {e} | {one['build_vps']:,.0f} | {one['build_vps_cpu']:,.0f} | {two_vps} | "
            f"{two_cpu} | {speed} | {rec2} | "
            f"{one['bytes_per_vector']:,.0f} | {one['memory_kind']} "
            f"(RSS growth {one['rss_growth_per_vector']:,.0f}) |"
        )
    return lines


def _search_rows(res: dict[str, dict[int, Result]], engines: list[str]) -> list[str]:
    lines = [f"## Search, single thread (recall@10 / QPS, median of {REPEATS} passes)", ""]
    head = "| ef | " + " | ".join(f"{e} recall | {e} batched QPS | {e} 1-by-1 QPS" for e in engines)
    lines.append(head + " |")
    lines.append("|---:|" + "---:|---:|---:|" * len(engines))
    for i, ef in enumerate(EFS):
        cells = []
        for e in engines:
            row = res[e][1]["search"][i]
            cells.append(f"{row['recall']:.4f} | {row['batch_qps']:,.0f} | {row['one_qps']:,.0f}")
        lines.append(f"| {ef} | " + " | ".join(cells) + " |")
    return lines


def _ratio_rows(res: dict[str, dict[int, Result]], engines: list[str]) -> list[str]:
    h1 = res["hnswlib"][1]
    others = [e for e in engines if e != "hnswlib"]
    lines = ["## Ratios refimpl / hnswlib (same run; the peers too)", ""]
    lines.append("| figure | " + " | ".join(others) + " | target (refimpl) |")
    lines.append("|---|" + "---:|" * len(others) + "---|")

    def row(label: str, fn: Callable[[Result], str], target: str) -> None:
        cells = [fn(res[e][1]) for e in others]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    row("build 1 thread (wall)", lambda r: f"{r['build_vps'] / h1['build_vps']:.2f}x", ">= 1.0x")
    row(
        "build 1 thread (CPU time)",
        lambda r: f"{r['build_vps_cpu'] / h1['build_vps_cpu']:.2f}x",
        ">= 1.0x",
    )
    for target in (0.95, 0.99):
        for label, key, goal in (
            ("batched QPS", "batch_qps", TARGETS["batch"]),
            ("batched QPS, best pass of each", "batch_qps_best", TARGETS["batch"]),
            ("batched QPS, CPU time", "batch_qps_cpu", TARGETS["batch"]),
            ("1-by-1 QPS", "one_qps", TARGETS["one"]),
        ):
            hef, hq = qps_at(h1, target, key)

            def ratio(
                r: Result, target: float = target, key: str = key, hq: float = hq, hef: int = hef
            ) -> str:
                ef, qps = qps_at(r, target, key)
                if not qps or not hq:
                    return "not reached"
                return f"{qps / hq:.2f}x (ef {ef} vs {hef})"

            row(f"{label} at recall >= {target}", ratio, goal)
    row(
        "bytes/vector",
        lambda r: f"{r['bytes_per_vector'] / h1['bytes_per_vector']:.2f}x",
        TARGETS["bytes"],
    )

    def scaling(e: str) -> str:
        if 2 in res[e]:
            return f"{res[e][2]['build_vps'] / res[e][1]['build_vps']:.2f}x"
        return "—"

    cells = [scaling(e) for e in others]
    lines.append(
        "| 2-thread build / 1-thread | "
        + " | ".join(cells)
        + f" | >= 1.8x (hnswlib: {scaling('hnswlib')}) |"
    )
    return lines


def _overhead_rows(db: dict[int, Result]) -> list[str]:
    lines = ["## DB.search per-call overhead over its graph search (one query at a time)", ""]
    lines.append(
        "Same process, same graph, calls interleaved: `DB.search(v, limit=10)` vs the "
        "`search()` of the graph that holds the rows."
    )
    lines += ["", "| ef | graph search µs | DB.search µs | overhead µs (target <= 20) |"]
    lines.append("|---:|---:|---:|---:|")
    for r in db[1]["search"]:
        if "paired_db_us" in r:
            a, b = r["paired_kernel_us"], r["paired_db_us"]
            lines.append(f"| {r['ef']} | {a:.1f} | {b:.1f} | {b - a:.1f} |")
    return lines


def _first_query_rows(ttfq: dict[str, Any]) -> list[str]:
    lines = ["## Fresh process to first DB.search result (2,000 rows inserted)", ""]
    lines.append("| Numba cache | wall s (target <= 1.5 warm) | import s | insert s | query s |")
    lines.append("|---|---:|---:|---:|---:|")
    for kind in ("cold", "warm"):
        t = ttfq[kind]
        lines.append(
            f"| {kind} | {t['wall_s']:.2f} | {t['import_s']:.2f} | {t['insert_s']:.2f} | "
            f"{t['query_s']:.3f} |"
        )
    return lines


def tabulate(res: dict[str, dict[int, Result]], ttfq: dict[str, Any], meta: str) -> str:
    """The whole table: build and memory, the search sweep, ratios, DB overhead, start-up."""
    engines = [e for e in ENGINES if e in res and 1 in res[e]]
    lines = [f"# refimpl vs peers — {meta}", ""]
    lines += [*_build_rows(res, engines), "", *_search_rows(res, engines)]
    if "hnswlib" in engines:
        lines += ["", *_ratio_rows(res, engines)]
    if "refimpl-db" in engines:
        lines += ["", *_overhead_rows(res["refimpl-db"])]
    if ttfq:
        lines += ["", *_first_query_rows(ttfq)]
    return "\n".join(lines) + "\n"
