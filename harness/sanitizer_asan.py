"""Reading ASan, LeakSanitizer and UBSan text reports into violation dicts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .sanitizer_findings import _verdict, _violation

ASAN_VERDICTS: tuple[tuple[str, str], ...] = (
    ("heap-use-after-free", "use-after-free"),
    ("use-after-poison", "use-after-free"),
    ("stack-use-after-return", "use-after-free"),
    ("stack-use-after-scope", "use-after-free"),
    ("attempting double-free", "double-free"),
    ("attempting free on address which was not malloc()-ed", "invalid-free"),
    ("alloc-dealloc-mismatch", "invalid-free"),
    ("new-delete-type-mismatch", "invalid-free"),
    ("heap-buffer-overflow", "buffer-overflow"),
    ("stack-buffer-overflow", "buffer-overflow"),
    ("global-buffer-overflow", "buffer-overflow"),
    ("stack-buffer-underflow", "buffer-overflow"),
    ("container-overflow", "buffer-overflow"),
    ("dynamic-stack-buffer-overflow", "buffer-overflow"),
    ("SEGV on unknown address", "crash"),
    ("BUS on unknown address", "crash"),
    ("FPE on unknown address", "crash"),
    ("ILL on unknown address", "crash"),
    ("stack-overflow", "crash"),
    ("requested allocation size", "crash"),
    ("allocation-size-too-big", "crash"),
    ("out of memory", "crash"),
)
UBSAN_VERDICTS: tuple[tuple[str, str], ...] = (
    ("out of bounds", "buffer-overflow"),
    ("outside the bounds", "buffer-overflow"),
    ("null pointer", "crash"),
)

_HEADER = re.compile(r"^=*\d*=*ERROR: (AddressSanitizer|LeakSanitizer): (.*)$", re.M)
_FRAME = re.compile(
    r"^\s*#(?P<n>\d+) (?P<pc>0x[0-9a-f]+)(?: in (?P<fn>.+?))?"
    r"(?: (?P<loc>(?:/|\.\./|\./)?[^\s{()]*:\d+(?::\d+)?|<null>))?"
    r"(?: \((?P<mod2>[^()+]+)\+0x[0-9a-f]+\))?"
    r"(?: \{(?P<mod>[^{}+]*)\+0x[0-9a-f]+\})?\s*$"
)
_UBSAN = re.compile(r"^(?P<loc>\S+:\d+(?::\d+)?): runtime error: (?P<what>.*)$", re.M)


def _parse_frame(line: str) -> dict[str, Any] | None:
    m = _FRAME.match(line)
    if not m:
        return None
    file = line_no = None
    if m.group("loc") and m.group("loc") != "<null>":
        parts = m.group("loc").split(":")
        if len(parts) >= 3 and parts[-1].isdigit() and parts[-2].isdigit():
            file, line_no = ":".join(parts[:-2]), int(parts[-2])
        elif parts[-1].isdigit():
            file, line_no = ":".join(parts[:-1]), int(parts[-1])
    obj = m.group("mod") or m.group("mod2")
    fn = m.group("fn")
    if fn == "<null>":
        fn = None
    if fn and " " in fn and fn.split(" ")[-1].startswith(("/", "(")):
        fn = fn.split(" ")[0]
    return {
        "pc": m.group("pc"),
        "function": fn,
        "file": file,
        "line": line_no,
        "object": obj if obj and obj != "<null>" else None,
    }


def _blocks(text: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(the line before a stack, the stack's frames) for every stack in `text`."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    title = ""
    frames: list[dict[str, Any]] = []
    for line in text.splitlines():
        f = _parse_frame(line) if line.lstrip().startswith("#") else None
        if f is not None:
            frames.append(f)
            continue
        if frames:
            out.append((title, frames))
            frames = []
        if line.strip():
            title = line.strip()
    if frames:
        out.append((title, frames))
    return out


_FREE_FUNCTIONS = ("asan_free", "Allocator::Deallocate", "__interceptor_free", "operator delete")


def _faults_inside_free(frames: list[dict[str, Any]]) -> bool:
    """A SEGV whose innermost frames are the sanitizer's free: the pointer was never malloc'd."""
    return any(
        any(name in (f.get("function") or "") for name in _FREE_FUNCTIONS) for f in frames[:8]
    )


def parse_asan(text: str, roots: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every AddressSanitizer / LeakSanitizer report in `text` (a log file or stderr)."""
    reports: list[dict[str, Any]] = []
    heads = list(_HEADER.finditer(text))
    for i, h in enumerate(heads):
        body = text[h.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        if h.group(1) == "LeakSanitizer":
            reports += _parse_leaks(body, roots)
            continue
        what = h.group(2).strip().split(" at pc ")[0]
        kind = what.split(" on ")[0].split(":")[0].strip()
        if what.startswith("attempting"):
            kind = "double-free" if "double-free" in what else "bad-free"
        verdict = _verdict(what, ASAN_VERDICTS)
        stacks: dict[str, list[dict[str, Any]]] = {}
        access = ""
        region = ""
        for title, frames in _blocks(body):
            low = title.lower()
            if "freed by thread" in low:
                stacks["free_stack"] = frames
            elif "allocated by thread" in low:
                stacks["alloc_stack"] = frames
            elif "stack" not in stacks:
                stacks["stack"] = frames
                if re.match(r"(READ|WRITE) of size", title):
                    access = title
        if verdict == "crash" and _faults_inside_free(stacks.get("stack", [])):
            # free() of a wild pointer (e.g. 0xa): ASan's own free faults reading its header
            kind, verdict = "SEGV in free", "invalid-free"
        m = re.search(r"^(0x[0-9a-f]+ is located .*)$", body, re.M)
        if m:
            region = m.group(1)
        summary = re.search(r"^SUMMARY: AddressSanitizer: (.*)$", body, re.M)
        reports.append(
            _violation(
                "asan",
                kind,
                verdict,
                f"AddressSanitizer: {what}" + (f"; {access}" if access else ""),
                stacks,
                roots,
                access=access,
                region=region,
                summary=summary.group(1) if summary else "",
            )
        )
    for m in _UBSAN.finditer(text):
        what = m.group("what")
        tail = text[m.end() :]
        frames = _blocks(tail)[0][1] if _blocks(tail) else []
        file, _, rest = m.group("loc").partition(":")
        line = int(rest.split(":")[0]) if rest else None
        top = {"pc": None, "function": None, "file": file, "line": line, "object": None}
        reports.append(
            _violation(
                "ubsan",
                "undefined-behavior",
                _verdict(what, UBSAN_VERDICTS),
                f"UndefinedBehaviorSanitizer: {m.group('loc')}: runtime error: {what}",
                {"stack": frames or [top]},
                roots,
            )
        )
    return reports


def _parse_leaks(body: str, roots: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for title, frames in _blocks(body):
        m = re.match(r"(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\)", title)
        if not m:
            continue
        out.append(
            _violation(
                "lsan",
                f"{m.group(1).lower()}-leak",
                "leak",
                f"LeakSanitizer: {title.rstrip(':')}",
                {"alloc_stack": frames},
                roots,
                bytes=int(m.group(2)),
                objects=int(m.group(3)),
            )
        )
    return out
