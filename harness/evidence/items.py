"""A finding's evidence dict and the child's exit as ordered display items: short facts and
titled blocks (messages, stacks, per-cycle measurements), text already shown left out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memcycle.records import RunRecord

from .formats import fmt_bytes, signal_name
from .frames import format_native_frames, is_native_stack

STDERR_TAIL_LINES = 25


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
        if is_native_stack(value):
            return format_native_frames(list(value)), True
        if all(isinstance(v, dict) and is_native_stack(v.get("frames")) for v in value):
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


def dedupe(items: list[EvidenceItem], shown: list[tuple[str, set[str]]]) -> list[EvidenceItem]:
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
