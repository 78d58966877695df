"""Small formats every explanation shares: bytes, the signal's name, a finding's place and
headline, what ended a crashed child."""

from __future__ import annotations

import signal as _signal

from memcycle.records import Finding, RunRecord


def fmt_bytes(n: float | int | None) -> str:
    """Human-readable bytes (binary units), '-' for missing values."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{sign}{v:.0f} {unit}" if unit == "B" else f"{sign}{v:.1f} {unit}"
        v /= 1024
    return f"{sign}{v:.1f} GiB"  # pragma: no cover - loop always returns


def signal_name(run: RunRecord) -> str | None:
    """The signal that ended the child, as text ('SIGSEGV'), when there was one."""
    e = run.exit or {}
    if e.get("signal_name"):
        return str(e["signal_name"])
    sig = e.get("signal")
    if sig is None or sig == "":
        return None
    if isinstance(sig, int):
        try:
            return _signal.Signals(sig).name
        except ValueError:
            return f"signal {sig}"
    return str(sig)


def place(cycle: int | None, step: int | None, op: str | None) -> str:
    """'cycle 2, step 1 (insert)', 'op setup', or '' when nothing is known."""
    where = ", ".join(f"{k} {v}" for k, v in (("cycle", cycle), ("step", step)) if v is not None)
    if op:
        return f"{where} ({op})" if where else f"op {op}"
    return where


def finding_headline(f: Finding) -> str:
    """'double-free at cycle 2, step 1 (insert): summary'."""
    at = place(f.cycle, f.step, f.op)
    head = f"{f.verdict} at {at}" if at else f.verdict
    return f"{head}: {f.summary}" if f.summary else head


def crash_cause(run: RunRecord) -> list[str]:
    """What ended a crashed child, as its parts: the signal and the runtime's message."""
    return [str(x) for x in (signal_name(run), (run.exit or {}).get("native_message")) if x]
