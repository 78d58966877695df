"""Why a verdict: the one explanation of a finding and of a run, rendered by every output.

`explain(run)` returns a `RunEvidence`: each finding with its headline and its evidence items
(the allocator's message and its allocation/free/access stacks, the native stack with the
engine's frames marked or the reason it is absent, a sanitizer's report, hang stacks, leak
sizes), how the child ended, the run's headline (a JUnit `message`, a pytest crash line) and
the evidence in one line (the fault matrix). The console, Markdown, HTML, JUnit, the fault
matrix, the story table and the pytest plugin all render these values; no other module words
a verdict's evidence. Everything is read from the records' structured fields (violation
dicts, native frames, exit facts): nothing is parsed back out of a message.
"""

from __future__ import annotations

import json
import signal as _signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from .records import CRASH_VERDICTS, MEMORY_FAULT_VERDICTS, Finding, RunRecord, StepEvent

STDERR_TAIL_LINES = 25
NATIVE_FRAMES_SHOWN = 24


# -- small formats -------------------------------------------------------------------------
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


# -- stacks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PythonFrame:
    """One frame of an allocator stack ('path/flat_buffer.py:88 in destroy')."""

    file: str
    line: int
    function: str

    @classmethod
    def parse(cls, text: str) -> PythonFrame | None:
        """The allocator writes frames as 'file:line in function' (refimpl/alloc.py)."""
        loc, sep, function = text.strip().partition(" in ")
        file, _, line = loc.rpartition(":")
        if not sep or not file or not line.isdigit():
            return None
        return cls(file, int(line), function.split()[0] if function.split() else "")

    @property
    def harness(self) -> bool:
        """memcycle's own harness (`harness/` in a checkout, `memcycle/` installed), not the
        engine (`refimpl/`, `memcycle/refimpl/`) and not the allocator."""
        path = self.file.replace("\\", "/")
        return "/refimpl/" not in path and ("/harness/" in path or "/memcycle/" in path)

    @property
    def short(self) -> str:
        return f"{PurePath(self.file).name}:{self.line} {self.function}"


def engine_frame(stack: Sequence[str] | None) -> str:
    """The innermost engine frame of an allocator stack ('sparse_map.py:166 __del__'),
    skipping the allocator itself and the harness."""
    for text in reversed(list(stack or ())):
        f = PythonFrame.parse(text)
        name = PurePath(f.file).name if f is not None else ""
        if f is not None and name.endswith(".py") and name != "alloc.py" and not f.harness:
            return f.short
    return ""


# the C twin's counting malloc/free: the frame that matters is their caller
_TWIN_ALLOC_WRAPPERS = frozenset({"rc_malloc", "rc_free"})


def engine_function(frames: Sequence[dict[str, Any]] | None) -> str | None:
    """The innermost native engine frame's function (what a crash's summary names)."""
    return next(
        (f.get("function") for f in frames or () if f.get("engine") and f.get("function")), None
    )


def engine_native_frame(frames: Sequence[dict[str, Any]] | None) -> str:
    """'seg_store (refimpl_c.c:424)': the innermost native engine frame with a function,
    past the twin's allocation wrappers."""
    own = [x for x in frames or () if x.get("engine") and x.get("function")]
    f = next((x for x in own if x["function"] not in _TWIN_ALLOC_WRAPPERS), own[0] if own else None)
    if f is None:
        return ""
    where = f" ({PurePath(f['file']).name}:{f['line']})" if f.get("file") and f.get("line") else ""
    return f"{f['function']}{where}"


def names_engine_function(frames: Sequence[dict[str, Any]] | None, *, need_line: bool) -> bool:
    """Whether a native stack names one of the engine's functions (and its line)."""
    return any(
        f.get("engine") and f.get("function") and (not need_line or f.get("line"))
        for f in frames or ()
    )


def _native_frames(value: Any) -> bool:
    """A native stack from gdb or a sanitizer: dicts with `function` and `origin`."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and "function" in v and "origin" in v for v in value)
    )


def format_native_frames(frames: list[dict[str, Any]], indent: str = "") -> str:
    """One line per frame, innermost first; the engine's own frames marked with '=>'."""
    from .native_stack import format_frame

    lines = [
        f"{indent}{'=>' if f.get('engine') else '  '} {format_frame(f)}"
        for f in frames[:NATIVE_FRAMES_SHOWN]
    ]
    if len(frames) > NATIVE_FRAMES_SHOWN:
        lines.append(f"{indent}   ... {len(frames) - NATIVE_FRAMES_SHOWN} more frame(s)")
    return "\n".join(lines)


# -- the allocator's ledger, step by step -------------------------------------------------
def new_violations(steps: Sequence[StepEvent]) -> list[tuple[int, dict[str, Any]]]:
    """(step index, violation) for every allocator violation, in the order recorded: each
    step's ledger snapshot carries the run's count and its latest violations."""
    out: list[tuple[int, dict[str, Any]]] = []
    seen = 0
    for i, ev in enumerate(steps):
        led = (ev.memory or {}).get("ledger") or {}
        n = int(led.get("n_violations", len(led.get("violations") or [])))
        if n > seen:
            out.extend((i, v) for v in (led.get("violations") or [])[-(n - seen) :])
            seen = n
    return out


def _ledger(ev: StepEvent) -> dict[str, Any]:
    return (ev.memory or {}).get("ledger") or {}


def _step_of_counter(steps: Sequence[StepEvent], key: str, seq: Any) -> int | None:
    """The step during which the allocator's `allocs`/`frees` counter reached `seq` (block
    ids and `free_seq` count from 1, every step's ledger carries both counters)."""
    if not isinstance(seq, int) or seq <= 0:
        return None
    return next((i for i, ev in enumerate(steps) if int(_ledger(ev).get(key, 0)) >= seq), None)


def block_text(v: dict[str, Any]) -> str:
    """ "block #12 'flat.vectors' (1600 B)"."""
    size = f"{v['nbytes']} B" if v.get("nbytes") is not None else "? B"
    bid = f"#{v['block_id']} " if v.get("block_id") not in (None, -1) else ""
    return f"block {bid}'{v.get('label')}' ({size})"


def invalid_free_address(v: dict[str, Any]) -> str:
    """The pointer an invalid free was handed ('0xa'), as the allocator recorded it."""
    addr = v.get("address")
    return f"{addr:#x}" if isinstance(addr, int) else ""


def overflow_text(v: dict[str, Any]) -> str:
    """'WRITE of 8 bytes at offset 1600' or '4 byte(s) past the end' ('' unrecorded)."""
    o = v.get("overflow") or {}
    if o.get("access"):
        return f"{str(o['access']).upper()} of {o.get('access_bytes')} bytes at offset {o.get('offset')}"
    if o.get("past_end_bytes"):
        return f"{o['past_end_bytes']} byte(s) past the end"
    if o.get("before_start_bytes"):
        return f"{o['before_start_bytes']} byte(s) before the start"
    return ""


def _where(ev: StepEvent, stack: Sequence[str] | None = None) -> str:
    frame = engine_frame(stack)
    return f"cycle {ev.cycle} ({ev.op}{', ' + frame if frame else ''})"


def violation_line(steps: Sequence[StepEvent], step_i: int, v: dict[str, Any]) -> str:
    """One allocator violation: the block, where it was allocated, freed, and misused."""
    verdict = v.get("verdict")
    at = _where(steps[step_i], v.get("fault_stack"))
    if verdict == "invalid-free":
        addr = invalid_free_address(v) or "an address"
        return f"free() of {addr} ('{v.get('label')}'), never allocated, in {at}"
    a = _step_of_counter(steps, "allocs", v.get("block_id"))
    alloc = (
        f"allocated in {_where(steps[a], v.get('alloc_stack'))}" if a is not None else "allocated ?"
    )
    f = _step_of_counter(steps, "frees", v.get("free_seq"))
    freed = f"freed in {_where(steps[f], v.get('free_stack'))}" if f is not None else "freed ?"
    if verdict == "double-free":
        return f"{block_text(v)}: {alloc}, {freed}, freed again in {at}"
    if verdict == "use-after-free":
        return f"{block_text(v)}: {alloc}, {freed}, used in {at}"
    if verdict == "buffer-overflow":
        what = overflow_text(v)
        return f"{block_text(v)}: {alloc}, written past its end in {at}" + (
            f" ({what})" if what else ""
        )
    return f"{block_text(v)}: {verdict} in {at}"


_LEDGER_RESETS = ("clear", "destroy", "reload")


def leak_line(run: RunRecord) -> str | None:
    """Labels whose live bytes after each reset grow, with bytes per cycle (ledger)."""
    points: dict[int, dict[str, int]] = {}
    for ev in run.steps:
        led = (ev.memory or {}).get("ledger")
        if ev.op in _LEDGER_RESETS and ev.ok and led is not None:
            points[ev.cycle] = {k: int(x["bytes"]) for k, x in led.get("by_label", {}).items()}
    cycles = sorted(points)
    if len(cycles) < 2:
        return None
    first, last = points[cycles[0]], points[cycles[-1]]
    span = cycles[-1] - cycles[0]
    grow = sorted(
        ((lab, (last.get(lab, 0) - first.get(lab, 0)) / span) for lab in set(first) | set(last)),
        key=lambda x: -x[1],
    )
    grow = [(lab, per) for lab, per in grow if per > 0]
    if not grow:
        return None
    labels = ", ".join(f"'{lab}' +{per:.0f} B/cycle" for lab, per in grow[:3])
    more = f" (+{len(grow) - 3} more labels)" if len(grow) > 3 else ""
    total = sum(per for _lab, per in grow)
    return (
        f"{labels}{more}; {total:.0f} B/cycle live after clear, "
        f"cycles {cycles[0]}..{cycles[-1]} (allocator ledger)"
    )


def crash_cause(run: RunRecord) -> list[str]:
    """What ended a crashed child, as its parts: the signal and the runtime's message."""
    return [str(x) for x in (signal_name(run), (run.exit or {}).get("native_message")) if x]


def crash_line(run: RunRecord) -> str:
    """How the child died: signal, where, the runtime's message (the verdict came from it
    when it is not `crash`)."""
    f = next(
        (x for x in run.findings if x.verdict in CRASH_VERDICTS or x.evidence.get("signal_class")),
        None,
    )
    ex = run.exit
    sig = ex.get("signal_name") or ex.get("kind")
    msg = ex.get("native_message") or ex.get("fatal_error") or ""
    runtime = f"{ex['native']['runtime']}: " if isinstance(ex.get("native"), dict) else ""
    where = f" in cycle {f.cycle} at {f.op}" if f else ""
    frame = engine_native_frame(f.evidence.get("native_stack")) if f else ""
    where += f", in {frame}" if frame else ""
    return f"{sig}{where}" + (f': {runtime}"{msg}"' if msg else "")


TOOL_SOURCES = ("asan", "lsan", "ubsan", "valgrind")


def tool_finding(run: RunRecord) -> Finding | None:
    """The sanitizer's or memcheck's finding behind the run's verdict, if a tool gave it."""
    return next(
        (
            x
            for x in run.findings
            if x.verdict == run.verdict and x.evidence.get("source") in TOOL_SOURCES
        ),
        None,
    )


def tool_line(run: RunRecord) -> str | None:
    """A sanitizer's or memcheck's verdict: its summary, then where the block was allocated
    and freed (the innermost engine frame of each stack)."""
    f = tool_finding(run)
    if f is None:
        return None
    parts = [f.summary]
    for key, label in (("native_alloc_stack", "allocated in"), ("native_free_stack", "freed in")):
        where = engine_native_frame(f.evidence.get(key))
        if where:
            parts.append(f"{label} {where}")
    return "; ".join(parts)


def finding_sites(f: Finding) -> tuple[str, ...]:
    """Where the engine's own code was, from the finding's stacks: the innermost engine frame
    of the native stack (a crash, a hang, a sanitizer's access), of the native allocation and
    free stacks, of the checked allocator's allocation/free/fault stacks; or why no native
    stack is there. The same sites every output names."""
    ev = f.evidence
    out: list[str] = []
    for key, label in (
        ("native_stack", "in"),
        ("native_alloc_stack", "allocated in"),
        ("native_free_stack", "freed in"),
    ):
        where = engine_native_frame(ev.get(key))
        if where:
            out.append(f"{label} {where}")
    v = ev.get("violation") if isinstance(ev.get("violation"), dict) else ev.get("block")
    if isinstance(v, dict):
        for key, label in (
            ("alloc_stack", "allocated at"),
            ("free_stack", "freed at"),
            ("fault_stack", "faulted at"),
        ):
            where = engine_frame(v.get(key))
            if where:
                out.append(f"{label} {where}")
    if not ev.get("native_stack") and ev.get("native_stack_absent"):
        out.append(f"no native stack: {str(ev['native_stack_absent']).splitlines()[0]}")
    return tuple(out)


def growth_line(f: Finding) -> str:
    """memray's largest growing stack of a leak finding ('grew 12 KiB at a <- b <- c')."""
    growth = f.evidence.get("top_growth") or []
    if not growth or not isinstance(growth[0], dict) or not growth[0].get("stack"):
        return ""
    where = " <- ".join(growth[0]["stack"][:3])
    return f"grew {growth[0].get('bytes', 0) / 1024:.0f} KiB at {where}"


def evidence_line(run: RunRecord) -> str:
    """The evidence behind a run's verdict, in one line (block, cycles, bytes, signal)."""
    v = run.verdict
    if v == "clean":
        blocks = {c.live_blocks_after_clear for c in run.cycles} - {None}
        return f"no finding in {len(run.cycles)} cycles" + (
            f", {max(blocks)} live blocks after every clear" if blocks else ""
        )
    tool = tool_line(run)
    if tool:
        return tool
    if v in CRASH_VERDICTS:
        return crash_line(run)
    if any(x.verdict == v and x.evidence.get("signal_class") for x in run.findings):
        return crash_line(run)  # the verdict is the dead child's runtime message
    if v == "leak":
        line = leak_line(run)
        if line:
            return line
    line = ""
    if v in MEMORY_FAULT_VERDICTS:
        match = [(i, x) for i, x in new_violations(run.steps) if x.get("verdict") == v]
        if match:
            line = violation_line(run.steps, *match[0])
    if not line:
        f = next((x for x in run.findings if x.verdict == v), None)
        line = f.summary if f else v
    if v != "leak" and any(x.verdict == "leak" for x in run.findings):
        leak = leak_line(run) or next(x.summary for x in run.findings if x.verdict == "leak")
        first = next(x for x in run.findings if x.verdict == "leak")
        line += f"; before it, a leak from cycle {first.cycle}: {leak}"
    return line


def skip_reason(run: RunRecord) -> str:
    """Why a run (or some of its steps) was skipped: its `skipped` finding's summary, the
    exit's reason, or a step's reason (the JUnit <skipped> message, pytest's skip and
    --memcycle-fail-on-skip message, the console's 'skipped:' line)."""
    for f in run.findings:
        if f.verdict == "skipped" and f.summary:
            return f.summary
    reason = (run.exit or {}).get("reason")
    if reason:
        return str(reason)
    for s in run.steps:
        if s.skipped:
            return s.skipped
    return "skipped"


def verdict_finding(run: RunRecord) -> Finding | None:
    """The first finding with the run's verdict (all findings when none has it)."""
    relevant = [f for f in run.findings if f.verdict == run.verdict] or run.findings
    return relevant[0] if relevant else None


def verdict_finding_at(run: RunRecord) -> str:
    """'cycle.step op' of the first finding with the run's verdict (where it showed)."""
    f = next((x for x in run.findings if x.verdict == run.verdict), None)
    if f is None or f.cycle is None:
        return "-"
    return f"{f.cycle}.{f.step} {f.op}"


def run_headline(run: RunRecord) -> str:
    """One line: 'ERROR at op setup: engine setup failed: ...' or
    'verdict crash (expected clean) at cycle 2, step 0 (insert): SIGSEGV in ...'."""
    first = verdict_finding(run)
    at = place(first.cycle, first.step, first.op) if first is not None else ""
    at = f" at {at}" if at else ""
    if run.verdict == "error":
        cause = first.summary if first is not None else "memcycle could not run the scenario"
        return f"ERROR{at}: {cause}"
    line = f"verdict {run.verdict_text} (expected {run.expected_verdict}){at}"
    if first is not None and first.summary:
        line += f": {first.summary}"
    return line


# -- evidence items: a finding's evidence dict as display values ------------------------------
@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence: a short `key: value` fact, or a titled block of text."""

    title: str
    text: str
    block: bool  # render as preformatted text


# keys shown first, in this order; everything else follows alphabetically
_KEY_ORDER = (
    "message",
    "exception",
    "type",
    "label",
    "block",
    "block_id",
    "nbytes",
    "leaked_bytes_per_cycle",
    "alloc_stack",
    "free_stack",
    "fault_stack",
    "traceback",
)
_BYTE_KEYS = ("bytes", "nbytes")
_LEAD = ("cycle", "step", "op")


def _is_bytes_key(key: str) -> bool:
    return any(
        key == k or key.endswith("_" + k) or key.startswith(k + "_") or f"_{k}_" in key
        for k in _BYTE_KEYS
    )


def _size(d: dict[str, Any]) -> float:
    v = d.get("bytes", d.get("nbytes", 0))
    return float(v) if isinstance(v, int | float) else 0.0


def _frames_entry(d: dict[str, Any]) -> bool:
    """A dict of scalars plus lists of strings (a stack with its numbers)."""
    return all(
        not isinstance(x, dict) and (not isinstance(x, list) or all(isinstance(f, str) for f in x))
        for x in d.values()
    )


def _fmt_flat(d: dict[str, Any]) -> str:
    """'cycle 2, step 7 (clear): live_blocks 4, live_bytes 36.0 KiB'."""
    where = ", ".join(f"{k} {d[k]}" for k in ("cycle", "step") if d.get(k) is not None)
    if d.get("op"):
        where = f"{where} ({d['op']})" if where else str(d["op"])
    rest = ", ".join(
        f"{k} {_fmt_value(k, v)[0]}" for k, v in d.items() if k not in _LEAD and v is not None
    )
    return f"{where}: {rest}" if where and rest else where or rest


def _fmt_value(key: str, value: Any) -> tuple[str, bool]:
    """Text for one evidence value and whether it needs a preformatted block."""
    if isinstance(value, bool) or value is None:
        return str(value), False
    if isinstance(value, int | float) and _is_bytes_key(key):
        return f"{fmt_bytes(value)} ({value})", False
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value), False
    if isinstance(value, str):
        return value.rstrip(), "\n" in value.strip() or len(value) > 160
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            if _is_bytes_key(key):
                return ", ".join(fmt_bytes(v) for v in value), False
            return ", ".join(str(v) for v in value), False
        if _native_frames(value):
            return format_native_frames(list(value)), True
        if all(isinstance(v, dict) and _native_frames(v.get("frames")) for v in value):
            # native_threads: every thread's stack (a hang)
            return "\n".join(
                f"thread {t.get('num')} {t.get('name') or ''} (lwp {t.get('lwp')}):\n"
                + format_native_frames(t["frames"], indent="  ")
                for t in value
            ), True
        if all(isinstance(v, str) for v in value):
            # a stack (list of frames) or a list of lines
            return "\n".join(v.rstrip("\n") for v in value) or "(empty)", True
        if all(isinstance(v, dict) for v in value) and all(
            not isinstance(x, dict | list) for v in value for x in v.values()
        ):
            # measurements per cycle/step: one readable line each
            return "\n".join(_fmt_flat(v) for v in value), True
        if all(isinstance(v, dict) for v in value) and all(_frames_entry(v) for v in value):
            # memray stacks with their bytes (top_growth, top_live): a header line, then frames
            out = []
            for v in value:
                head = {k: x for k, x in v.items() if not isinstance(x, list)}
                out.append(_fmt_flat(head))
                out.extend(f"    {frame}" for x in v.values() if isinstance(x, list) for frame in x)
            return "\n".join(out), True
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, dict) and _frames_entry(v) for v in value.values())
    ):
        # e.g. live blocks by label: one line per label, its allocation frames under it
        # (the checked allocator's ledger: the newest block's site), largest first
        out = []
        for k, v in sorted(value.items(), key=lambda kv: -_size(kv[1])):
            out.append(f"{k}: {_fmt_flat({x: y for x, y in v.items() if not isinstance(y, list)})}")
            out.extend(f"    {frame}" for y in v.values() if isinstance(y, list) for frame in y)
        return "\n".join(out), True
    return json.dumps(value, indent=2, sort_keys=True, default=str), True


def _order(keys: Sequence[str]) -> list[str]:
    first = [k for k in _KEY_ORDER if k in keys]
    return first + sorted(k for k in keys if k not in _KEY_ORDER)


def evidence_items(evidence: dict[str, Any]) -> list[EvidenceItem]:
    """A finding's evidence dict as ordered display items (stacks and messages as blocks)."""
    items = []
    for key in _order(list(evidence)):
        value = evidence[key]
        if value in (None, "", [], {}):
            continue
        if isinstance(value, dict) and not all(isinstance(v, dict) for v in value.values()):
            # a record (the allocator's violation, the exception with its traceback):
            # flatten it one level so messages and stacks show as text, not JSON
            items.extend(
                EvidenceItem(f"{key}.{k}", *(_fmt_value(k, value[k])))
                for k in _order(list(value))
                if value[k] not in (None, "", [], {})
            )
            continue
        text, block = _fmt_value(key, value)
        items.append(EvidenceItem(key, text, block))
    return items


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def _dedupe(items: list[EvidenceItem], shown: list[tuple[str, set[str]]]) -> list[EvidenceItem]:
    """Drop blocks whose every line another block already shows: the same stderr arrives
    as faulthandler output, stderr tail and exit tail, and an allocator message already
    quotes the block's stacks; a traceback that ends with a message shown above keeps
    only the message's first line. `shown` carries across a run."""
    out: list[EvidenceItem] = []
    for item in items:
        if not item.block:
            out.append(item)
            continue
        lines = _lines(item.text)
        if lines and any(lines <= other for _, other in shown):
            continue
        text = item.text
        for other_text, _ in shown:
            body = other_text.strip()
            if body.count("\n") >= 3 and body in text:
                text = text.replace(body, body.splitlines()[0] + " [... as shown above]")
        shown.append((item.text.strip(), lines))
        out.append(item if text == item.text else EvidenceItem(item.title, text, True))
    return out


def exit_items(run: RunRecord) -> list[EvidenceItem]:
    """How the child ended: kind, code, signal and the tail of its stderr."""
    e = run.exit or {}
    items = []
    facts = [
        f"{key} {e[key]}" for key in ("kind", "code", "signal") if e.get(key) not in (None, "")
    ]
    sig = signal_name(run)
    if sig and str(e.get("signal")) != sig:
        facts.append(f"({sig})")
    if facts:
        items.append(EvidenceItem("exit", " ".join(facts), False))
    for key, title in (("native_message", "native message"), ("fatal_error", "fatal error")):
        if e.get(key):
            items.append(EvidenceItem(title, str(e[key]), "\n" in str(e[key])))
    tail = e.get("stderr_tail")
    if tail:
        if isinstance(tail, list):
            tail = "\n".join(tail)
        lines = str(tail).rstrip().splitlines()[-STDERR_TAIL_LINES:]
        items.append(EvidenceItem("stderr (tail)", "\n".join(lines), True))
    return items


_NORMAL_EXITS = frozenset({None, "", "ok", "clean", "normal", "skipped"})


def abnormal_exit(run: RunRecord) -> bool:
    """Whether the exit deserves showing (a signal, a non-zero code, a timeout)."""
    e = run.exit or {}
    if e.get("signal") not in (None, "", 0):
        return True
    if e.get("code") not in (None, 0):
        return True
    return e.get("kind") not in _NORMAL_EXITS


# -- the explanation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FindingEvidence:
    """One finding as every output shows it: its headline, the engine's sites in its stacks
    (`finding_sites`) and its evidence items, the sites first as a `where` item (text another
    finding of the run already shows is left out of the items)."""

    finding: Finding
    headline: str
    sites: tuple[str, ...]
    items: tuple[EvidenceItem, ...]


@dataclass(frozen=True)
class RunEvidence:
    """Why a run got its verdict: everything an output needs to say it."""

    run: RunRecord
    headline: str  # one line: verdict, expectation, where, what happened
    line: str  # the evidence in one line (the fault matrix's column)
    at: str  # 'cycle.step op' of the verdict's first finding, '-' when none
    findings: tuple[FindingEvidence, ...]
    exit: tuple[EvidenceItem, ...]  # how the child ended (empty for a normal exit)


def _finding_evidence(f: Finding, shown: list[tuple[str, set[str]]]) -> FindingEvidence:
    sites = finding_sites(f)
    items = _dedupe(evidence_items(f.evidence), shown)
    if sites:
        items.insert(0, EvidenceItem("where", "; ".join(sites), False))
    return FindingEvidence(f, finding_headline(f), sites, tuple(items))


def explain(run: RunRecord) -> RunEvidence:
    """The run's evidence, with text repeated across findings and the exit shown once."""
    shown: list[tuple[str, set[str]]] = []
    findings = tuple(_finding_evidence(f, shown) for f in run.findings)
    exit_part: list[EvidenceItem] = []
    if abnormal_exit(run) or run.verdict in CRASH_VERDICTS:
        facts = {i.text for fe in findings for i in fe.items if not i.block}
        exit_part = [i for i in _dedupe(exit_items(run), shown) if i.block or i.text not in facts]
    return RunEvidence(
        run=run,
        headline=run_headline(run),
        line=evidence_line(run),
        at=verdict_finding_at(run),
        findings=findings,
        exit=tuple(exit_part),
    )
