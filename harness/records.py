"""Run records: the plain data that flows from the child to checks, reports and the gate.

The child writes one `StepEvent` per step as a JSON line; the parent folds them
into a `RunRecord`; `checks` adds `Finding`s and the verdict; reporters and the
gate read only these records (never files, never engines). `report.json` is a
`Report` serialised with `to_dict` — bump `SCHEMA_VERSION` on any incompatible change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1

# In a step's `memory["ledger"]` (the engine's allocator snapshot, as the child sends it): how
# many violations the allocator has recorded so far, and the ones first recorded at this step.
LEDGER_VIOLATION_COUNT = "n_violations"
LEDGER_NEW_VIOLATIONS = "new_violations"

VERDICTS: tuple[str, ...] = (
    "clean",
    "leak",
    "double-free",
    "invalid-free",
    "use-after-free",
    "buffer-overflow",
    "crash",
    "wrong-result",
    "lifecycle-error",
    "timeout",
    "skipped",
    "error",
)

# when several findings exist, the run's verdict is the most severe one. `error` (memcycle or
# the adapter could not do its job: engine not importable, factory failed, adapter/library API
# mismatch, child could not start) ranks above every engine verdict: whatever else the run found
# is partial, the setup is what to fix first, and no engine verdict may hide it in `worst()` or
# the gate (an unknown verdict also ranks as an error there, never as clean).
SEVERITY: dict[str, int] = {
    "clean": 0,
    "skipped": 0,
    "leak": 1,
    "wrong-result": 2,
    "lifecycle-error": 3,
    "timeout": 4,
    "buffer-overflow": 5,
    "use-after-free": 6,
    "invalid-free": 7,
    "double-free": 8,
    "crash": 9,
    "error": 10,
}

# the verdict groups every reader names: the child did not end by itself (a cycle cell's
# lightning mark, a crash's exit shown); and what a checked allocator or a sanitizer catches
CRASH_VERDICTS: frozenset[str] = frozenset({"crash", "timeout"})
MEMORY_FAULT_VERDICTS: frozenset[str] = frozenset(
    {"double-free", "invalid-free", "use-after-free", "buffer-overflow"}
)


@dataclass
class StepEvent:
    """One step as the child saw it; one JSON line on the event stream."""

    cycle: int  # 1-based, after `repeat` is expanded
    step: int  # 0-based index within the cycle
    op: str
    ok: bool
    seconds: float
    dimension: int | None = None
    count: int | None = None  # engine's count after the step
    expected_count: int | None = None  # oracle's count after the step
    recall: float | None = None
    min_recall: float | None = None
    check: dict[str, Any] | None = None  # oracle comparison details (stale ids, mismatches)
    memory: dict[str, Any] = field(default_factory=dict)  # rss, tracemalloc, nrt, ledger
    error: dict[str, Any] | None = None  # type, message, traceback, verdict (MemoryFault.verdict)
    skipped: str | None = None  # reason, when the engine lacks a capability
    # seconds of Numba compilation inside the step; None when numba was never imported
    compile_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepEvent:
        return cls(**_known(cls, d))


@dataclass
class Finding:
    """One thing checks found; `evidence` holds the measurement behind it."""

    verdict: str
    cycle: int | None
    step: int | None
    op: str | None
    summary: str  # one line, for tables and the fault matrix
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(**_known(cls, d))


@dataclass
class CycleSummary:
    """Per-cycle row of the report tables and plots."""

    cycle: int
    dimension: int | None
    status: str  # "ok", a verdict, or "-" (not reached)
    live_blocks_after_clear: int | None = None
    live_bytes: int | None = None  # allocator live bytes at the cycle's end
    memray_leaked_bytes: int | None = None  # engine-attributed bytes allocated and still live
    rss_bytes: int | None = None
    tracemalloc_bytes: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CycleSummary:
        return cls(**_known(cls, d))


@dataclass
class RunRecord:
    """One scenario on one engine/allocator/fault combination, in one child process."""

    scenario: str
    scenario_path: str
    engine: str
    allocator: str
    faults: list[str]
    expected_verdict: str
    verdict: str = "clean"
    findings: list[Finding] = field(default_factory=list)
    cycles: list[CycleSummary] = field(default_factory=list)
    steps: list[StepEvent] = field(default_factory=list)
    exit: dict[str, Any] = field(default_factory=dict)  # kind, code, signal, stderr_tail
    capabilities: dict[str, Any] = field(default_factory=dict)
    memray: dict[str, Any] | None = None  # capture, flamegraph, leaks_flamegraph, top_leaks
    seconds: float = 0.0
    peak_bytes: int | None = None
    compile_seconds: float = 0.0  # Numba compile seconds of the whole child (cold cache)
    # every verdict class found, most severe first (`verdict` is the first); [] when clean
    verdicts: list[str] = field(default_factory=list)

    @property
    def verdict_text(self) -> str:
        """The headline form: 'wrong-result + leak' when several classes were found."""
        return " + ".join(self.verdicts) if len(self.verdicts) > 1 else self.verdict

    @property
    def passed(self) -> bool:
        # an `error` run tested nothing: it never passes, whatever was expected
        return self.verdict == self.expected_verdict and self.verdict != "error"

    @property
    def key(self) -> str:
        """Stable identity used by the gate to match runs across reports."""
        faults = "+".join(self.faults) or "-"
        return f"{self.scenario}|{self.engine}|{self.allocator}|{faults}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["key"] = self.key
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        d = _known(cls, d)  # drops the derived `passed` and `key` too
        d["findings"] = [Finding.from_dict(f) for f in d.get("findings", [])]
        d["cycles"] = [CycleSummary.from_dict(c) for c in d.get("cycles", [])]
        d["steps"] = [StepEvent.from_dict(s) for s in d.get("steps", [])]
        return cls(**d)


@dataclass
class Report:
    """What `report.json` holds."""

    run_id: str
    created: str
    runs: list[RunRecord]
    host: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    # stopped by Ctrl-C/SIGTERM: `runs` are the runs that finished, `not_done` the keys of the rest
    interrupted: bool = False
    not_done: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "created": self.created,
            "host": self.host,
            "command": self.command,
            "interrupted": self.interrupted,
            "not_done": list(self.not_done),
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        if not isinstance(d, dict):
            raise ValueError(f"report.json holds a JSON {type(d).__name__}, not an object")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"report.json has schema_version {version!r}; this memcycle reads {SCHEMA_VERSION}"
            )
        return cls(
            run_id=d["run_id"],
            created=d["created"],
            runs=[RunRecord.from_dict(r) for r in d["runs"]],
            host=d.get("host", {}),
            command=d.get("command", []),
            interrupted=bool(d.get("interrupted", False)),
            not_done=list(d.get("not_done", [])),
        )


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of `d` that are fields of `cls`.

    A newer memcycle may add optional fields without bumping SCHEMA_VERSION (see
    reports/SCHEMA.md); an older reader ignores them instead of refusing the file.
    """
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def new_violations(steps: Sequence[StepEvent]) -> list[list[dict[str, Any]]]:
    """Per step (in order), the allocator violations first recorded at it.

    A report.json written before the child sent `new_violations` carries, per step, the
    running count and the newest five of the whole list: its new ones are read from those
    (one past the fifth new in a step was not kept then)."""
    out: list[list[dict[str, Any]]] = []
    seen = 0  # the running count, for the older form only
    for ev in steps:
        led = (ev.memory or {}).get("ledger") or {}
        if LEDGER_NEW_VIOLATIONS in led:
            out.append(list(led[LEDGER_NEW_VIOLATIONS] or []))
            continue
        n = int(led.get(LEDGER_VIOLATION_COUNT, len(led.get("violations") or [])))
        out.append(list((led.get("violations") or [])[-(n - seen) :]) if n > seen else [])
        seen = max(seen, n)
    return out


def verdict_set(verdicts: list[str]) -> list[str]:
    """The distinct verdict classes of findings, most severe first ('skipped' left out
    unless it is all there is)."""
    found = [v for v in dict.fromkeys(verdicts) if v not in ("clean", "skipped")]
    if not found:
        return ["skipped"] if "skipped" in verdicts else []
    return sorted(found, key=lambda v: -SEVERITY.get(v, 0))


def worst(verdicts: list[str]) -> str:
    """The most severe verdict of a list ('clean' for an empty one; an unknown verdict ranks
    as an error, so a misspelt one can never make a run look clean)."""
    return max(verdicts, key=lambda v: SEVERITY.get(v, SEVERITY["error"]), default="clean")
