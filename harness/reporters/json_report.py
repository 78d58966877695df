"""report.json: the Report as `Report.to_dict`, with a stable, versioned layout.

Record fields keep their dataclass order (so `schema_version` comes first and a
diff of two reports lines up); free-form dicts inside records (exit, memray,
evidence, memory, ...) are sorted by key. `reports/SCHEMA.md` documents it.
"""

from __future__ import annotations

import json
from typing import Any

from memcycle.records import Report

# dicts whose key order is the dataclass order; every other dict is sorted
_RECORD_LISTS = ("runs", "findings", "cycles", "steps")


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def _record(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in _RECORD_LISTS and isinstance(v, list):
            out[k] = [_record(x) if isinstance(x, dict) else _sorted(x) for x in v]
        else:
            out[k] = _sorted(v)
    return out


def report_dict(report: Report) -> dict[str, Any]:
    """`Report.to_dict` with the key order made deterministic."""
    return _record(report.to_dict())


def render_json(report: Report) -> str:
    """The text of report.json (UTF-8, indented, newline-terminated)."""
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False, default=str) + "\n"
