"""Checks `memcycle run` makes before anything runs: a bad input is a usage error (exit 2).

A typo in a scenario's `[engine]` table, a fault given to an engine that cannot inject it, an
allocator a peer does not have, a timeout of 0 or NaN, two scenario files with one name, an
output folder that cannot be written: each is one line naming the
problem and what was expected, said before the first child starts. Nothing here imports or runs
the user's engine module (that happens in the child, under the timeout).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError
from .scenario import Scenario

REFIMPL_ENGINES = ("refimpl", "refimpl-global")
TWIN_ENGINES = ("refimpl-c", "refimpl-c-global")
PEER_ENGINES = ("hnswlib", "faiss", "usearch", "omendb")


class PreflightError(UsageError):
    """A bad input found before anything ran (the CLI prints it as a usage error)."""


def check_timeout(value: float, flag: str = "--timeout") -> float:
    """A finite, positive number of seconds (0, a negative number and NaN are refused)."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise PreflightError(f"{flag} is {value!r}; expected a positive number of seconds")
    return float(value)


def unique_scenarios(scenarios: Sequence[Scenario]) -> list[Scenario]:
    """The scenarios, each file once; two files with one `name` are refused (their runs would
    share a run folder and a report key, and the gate would judge one by the other)."""
    seen_paths: set[str] = set()
    by_name: dict[str, str] = {}
    out: list[Scenario] = []
    for sc in scenarios:
        path = os.path.realpath(sc.path)
        if path in seen_paths:
            continue  # the same file named twice (a file and its folder): run it once
        seen_paths.add(path)
        other = by_name.get(sc.name)
        if other is not None:
            raise PreflightError(
                f"two scenario files are named {sc.name!r}: {other} and {sc.path}; "
                "scenario names must be unique (they key run folders, reports and the baseline)"
            )
        by_name[sc.name] = sc.path
        out.append(sc)
    return out


REPORT_FILES = ("report.json", "summary.md", "index.html", "junit.xml")


def check_out_dir(out: Path) -> bool:
    """`out` must be a folder memcycle can write. Returns whether it holds an earlier run
    (its report.json), which `clear_earlier_run` then removes, so the folder never mixes two
    runs' files."""
    if out.exists() and not out.is_dir():
        raise PreflightError(f"--out {out}: exists and is not a folder; expected a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".memcycle-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PreflightError(
            f"--out {out}: cannot write there ({exc.strerror or exc}); expected a writable folder"
        ) from None
    return (out / "report.json").exists()


def clear_earlier_run(out: Path) -> list[str]:
    """Remove an earlier run's report files and run folders (those holding events.jsonl) from
    `out`; anything else in the folder is left alone. Returns what was removed."""
    import shutil

    removed: list[str] = []
    for name in REPORT_FILES:
        f = out / name
        if f.is_file():
            f.unlink()
            removed.append(name)
    for d in sorted(out.iterdir()):
        if d.is_dir() and (d / "events.jsonl").exists():
            shutil.rmtree(d)
            removed.append(d.name + "/")
    return removed


def _check_options(
    where: str,
    options: dict[str, Any],
    label: str,
    known: Sequence[str],
    positive_ints: Sequence[str],
) -> None:
    """Option names the engine knows, and positive integers where it needs them."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise PreflightError(
            f"{where}: unknown {label} option(s) {', '.join(unknown)} in [engine]; "
            f"expected from {', '.join(known)}"
        )
    for key in positive_ints:
        v = options.get(key, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise PreflightError(f"{where}: [engine] {key} = {v!r}: expected a positive integer")


def check_faults(
    faults: Sequence[str], known: Sequence[str], where: str = "", whose: str = ""
) -> None:
    """Every fault name is one of `known` (the one check of fault names: `memcycle run`, fuzz,
    shrink and the preflight of each run); `where` names the scenario, `whose` the catalogue."""
    bad = [f for f in faults if f not in known]
    if bad:
        raise PreflightError(
            f"{where + ': ' if where else ''}unknown fault {bad[0]!r}{whose}; "
            f"expected one of {', '.join(known)}"
        )


def check_run(
    scenario: Scenario,
    engine: str,
    allocator: str,
    faults: Sequence[str],
    extra_options: dict[str, Any] | None = None,
) -> None:
    """What the parent can know about one run of a built-in engine without building it: its
    options, faults and allocator. A `module:factory` engine is checked by its own child."""
    if scenario.engines and engine not in scenario.engines:
        return  # written for other engines: the run is skipped, its options never used
    faults = list(dict.fromkeys([*scenario.faults, *faults]))
    where = f"scenario {scenario.name!r} ({scenario.path}) on engine {engine}"
    if engine in REFIMPL_ENGINES:
        from .engines.refimpl_adapter import DB_OPTIONS
        from .refimpl.faults import FAULT_NAMES

        _check_options(
            where,
            {**scenario.options(engine), **(extra_options or {})},
            "refimpl",
            DB_OPTIONS,
            DB_OPTIONS,
        )
        check_faults(faults, FAULT_NAMES, where)
        return
    if engine in TWIN_ENGINES:
        from .engines.refimpl_c_adapter import IGNORED_OPTIONS, SIZE_OPTIONS
        from .refimpl.native.faults import FAULT_NAMES as TWIN_FAULTS

        known = (*SIZE_OPTIONS, *IGNORED_OPTIONS)
        _check_options(
            where,
            {**scenario.options(engine), **(extra_options or {})},
            "refimpl-c",
            known,
            SIZE_OPTIONS,
        )
        check_faults(faults, TWIN_FAULTS, where, " (the C twin's catalogue)")
        if allocator not in ("numpy", "native"):
            raise PreflightError(
                f"{where}: --allocator {allocator} applies to refimpl only (the C twin uses malloc)"
            )
        return
    if engine in PEER_ENGINES:
        if faults:
            raise PreflightError(
                f"{where}: --fault/faults ({', '.join(faults)}) apply to refimpl engines only; "
                f"{engine} cannot inject them"
            )
        if allocator not in ("numpy", "native"):
            raise PreflightError(
                f"{where}: --allocator {allocator} applies to refimpl only ({engine} allocates "
                "with its own native allocator)"
            )
