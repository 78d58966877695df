"""`memcycle merge DIR... --out DIR`: one report from the report.json of several shards.

The shards of `memcycle run --shard K/N` (or any runs of the same memcycle) are merged into one
`Report`: every run exactly once, sorted by scenario file and run key, so the merged report.json
is the gate's input like an unsharded one. Each shard's per-run folders (stderr.txt,
events.jsonl, the memray capture and flamegraphs) are linked or copied next to it, so the
links in index.html keep working. Everything is checked before anything is written: a missing
or unreadable report, reports of different schema versions, a run key present twice, two
shards with the same run folder, or (when every input was a `--shard K/N` run) a shard of the
split missing is a `MergeError` with a one-line message.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import SCHEMA_VERSION, Report
from .shard import Shard, ShardError, parse_shard


class MergeError(ValueError):
    """Inputs that cannot be merged; the message names the file and the problem."""


@dataclass(frozen=True)
class ShardReport:
    source: Path  # the report.json
    report: Report

    @property
    def folder(self) -> Path:
        return self.source.parent


def _read(path: Path) -> tuple[Path, dict[str, Any]]:
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise MergeError(f"{path}: no report.json (expected a run folder or its report.json)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "runs" not in data:
        raise MergeError(f"{file}: not a memcycle report.json (no 'runs')")
    return file, data


def shard_of(command: Sequence[str]) -> Shard | None:
    """The `--shard K/N` a report's command line asked for, if any."""
    for i, arg in enumerate(command):
        value = None
        if arg == "--shard" and i + 1 < len(command):
            value = command[i + 1]
        elif arg.startswith("--shard="):
            value = arg.partition("=")[2]
        if value is not None:
            try:
                return parse_shard(value)
            except ShardError:
                return None
    return None


def check_complete(shards: Sequence[ShardReport]) -> None:
    """When every input is a `--shard K/N` run, all N shards of one split must be there:
    a shard whose job died must not leave a merged report that looks whole."""
    found = [(s, shard_of(s.report.command)) for s in shards]
    if not found or any(sh is None for _s, sh in found):
        return
    totals = {sh.total for _s, sh in found if sh is not None}
    if len(totals) > 1:
        listed = ", ".join(f"{s.source} ({sh})" for s, sh in found)
        raise MergeError(f"shards of different splits: {listed}")
    total = totals.pop()
    missing = sorted(set(range(1, total + 1)) - {sh.index for _s, sh in found if sh})
    if missing:
        names = ", ".join(f"{k}/{total}" for k in missing)
        raise MergeError(
            f"shard {names} missing (got {len(found)} of {total}); merge every shard, "
            "or pass --allow-partial"
        )


def load_shards(paths: Sequence[Path | str]) -> list[ShardReport]:
    """Read and check every input; MergeError on the first problem."""
    if not paths:
        raise MergeError("nothing to merge: give one or more run folders")
    raw = [_read(Path(p)) for p in paths]
    versions = {file: data.get("schema_version") for file, data in raw}
    if len(set(versions.values())) > 1:
        listed = ", ".join(f"{f} ({v!r})" for f, v in versions.items())
        raise MergeError(
            f"schema versions differ: {listed}; merge reports written by one memcycle version"
        )
    shards: list[ShardReport] = []
    for file, data in raw:
        try:
            shards.append(ShardReport(file.resolve(), Report.from_dict(data)))
        except (ValueError, KeyError, TypeError) as exc:
            raise MergeError(f"{file}: not a memcycle report.json: {exc}") from None
    sources = [s.source for s in shards]
    twice = next((src for i, src in enumerate(sources) if src in sources[:i]), None)
    if twice is not None:
        raise MergeError(f"{twice} is given twice")
    owner: dict[str, Path] = {}
    for s in shards:
        for run in s.report.runs:
            if run.key in owner:
                where = (
                    "twice in" if owner[run.key] == s.source else f"in both {owner[run.key]} and"
                )
                raise MergeError(
                    f"run {run.key!r} is {where} {s.source}; each run must come from one shard"
                )
            owner[run.key] = s.source
    return shards


def _run_folders(shards: Sequence[ShardReport], out: Path) -> dict[Path, Path]:
    """Each shard's per-run folders -> where they go in `out` (refusing a name in two shards)."""
    plan: dict[Path, Path] = {}
    taken: dict[str, Path] = {}
    for s in shards:
        if s.folder == out:
            raise MergeError(f"--out {out} is one of the inputs; merge into a new folder")
        for child in sorted(p for p in s.folder.iterdir() if p.is_dir()):
            if child.name in taken:
                raise MergeError(
                    f"run folder {child.name!r} is in both {taken[child.name]} and {s.folder}"
                )
            taken[child.name] = s.folder
            plan[child] = out / child.name
    return plan


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def merged_report(shards: Sequence[ShardReport], run_id: str, command: list[str]) -> Report:
    runs = sorted(
        (r for s in shards for r in s.report.runs), key=lambda r: (r.scenario_path, r.key)
    )
    hosts = [s.report.host for s in shards]
    host = dict(hosts[0]) if hosts else {}
    if any(h != hosts[0] for h in hosts[1:]):
        host["merged_hosts"] = len({json.dumps(h, sort_keys=True) for h in hosts})
    return Report(
        run_id=run_id,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        runs=runs,
        host=host,
        command=command,
        schema_version=SCHEMA_VERSION,
    )


def merge(
    paths: Sequence[Path | str],
    out: Path | str,
    *,
    run_id: str,
    command: list[str],
    allow_partial: bool = False,
) -> tuple[Report, list[ShardReport]]:
    """Check the inputs, then copy the shards' run folders into `out`.

    Returns the merged report and the shards; the caller writes its files once
    (`report_files.write_report`: report.json first, then md/html/junit)."""
    out = Path(out).resolve()
    shards = load_shards(paths)
    if not allow_partial:
        check_complete(shards)
    if out.exists() and not out.is_dir():
        raise MergeError(f"--out {out} exists and is not a folder")
    plan = _run_folders(shards, out)
    report = merged_report(shards, run_id, command)
    out.mkdir(parents=True, exist_ok=True)
    for src, dst in plan.items():
        shutil.copytree(src, dst, copy_function=_link_or_copy, dirs_exist_ok=True)
    return report, shards
