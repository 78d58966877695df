"""The last words of native runtimes in a child's stderr, and the verdict each supports.

A native engine that dies leaves its runtime's own message: glibc's heap checks
(`free(): double free detected in tcache 2`), the C++ runtime's `terminate called after
throwing an instance of 'T'` with `what()`, a Rust panic, an AddressSanitizer, UBSan or
valgrind report. Each rule maps one family of texts to the most precise verdict it
supports (a double-free abort is `double-free`, an invalid-pointer abort `invalid-free`,
glibc's heap-corruption texts `buffer-overflow`), says in `meaning` why, and pulls out
the details a developer needs (exception type and what(), panic location and payload,
leaked bytes). How the process ended (the signal) stays in the evidence as the signal
class `crash`; the verdict says what the runtime saw.

glibc's texts are symptoms found at the next malloc/free, not the bug itself: "double free
or corruption (!prev)" can also follow an overflow that cleared the next chunk's in-use
bit. The verdict is the first reading of the text, and `meaning` says so where it matters.

When several texts are present, the earliest in stderr wins (what went wrong first);
rules are tried in the order below, so a more specific rule wins a tie.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import VERDICTS

_PID = r"(?:==\d+==\s*)?"  # ASan / valgrind line prefix


@dataclass(frozen=True)
class NativeMessage:
    """One recognised runtime message."""

    runtime: str  # glibc | c++ | rust | asan | lsan | ubsan | valgrind
    verdict: str  # the most precise verdict the text supports ("crash" when none)
    message: str  # the runtime's own words, on one line
    meaning: str  # why that verdict
    details: dict[str, Any] = field(default_factory=dict)
    start: int = 0  # offset in the stderr text

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "verdict": self.verdict,
            "message": self.message,
            "meaning": self.meaning,
            **({"details": dict(self.details)} if self.details else {}),
        }


@dataclass(frozen=True)
class Rule:
    runtime: str
    pattern: re.Pattern[str]
    verdict: str | Callable[[re.Match[str], str], str]
    meaning: str | Callable[[re.Match[str], str], str]
    details: Callable[[re.Match[str], str], dict[str, Any]] | None = None
    message: Callable[[re.Match[str], str], str] | None = None


def _rx(p: str) -> re.Pattern[str]:
    return re.compile(p, re.MULTILINE)


def _one_line(s: str) -> str:
    return " ".join(s.split())


# -- AddressSanitizer / LeakSanitizer ---------------------------------------------------------
_ASAN_KINDS: tuple[tuple[str, str, str], ...] = (
    ("attempting double-free", "double-free", "ASan: the block was already freed"),
    (
        "attempting free on address which was not malloc()-ed",
        "invalid-free",
        "ASan: free() of an address malloc() never returned",
    ),
    ("alloc-dealloc-mismatch", "invalid-free", "ASan: freed with the wrong deallocator"),
    ("new-delete-type-mismatch", "invalid-free", "ASan: deleted with the wrong size/type"),
    ("heap-use-after-free", "use-after-free", "ASan: access to a freed heap block"),
    ("stack-use-after-return", "use-after-free", "ASan: access to a returned stack frame"),
    ("stack-use-after-scope", "use-after-free", "ASan: access to a variable out of scope"),
    ("use-after-poison", "use-after-free", "ASan: access to poisoned (released) memory"),
    ("heap-buffer-overflow", "buffer-overflow", "ASan: access past the end of a heap block"),
    ("stack-buffer-overflow", "buffer-overflow", "ASan: access past a stack buffer"),
    ("stack-buffer-underflow", "buffer-overflow", "ASan: access before a stack buffer"),
    ("global-buffer-overflow", "buffer-overflow", "ASan: access past a global"),
    ("dynamic-stack-buffer-overflow", "buffer-overflow", "ASan: access past an alloca buffer"),
    ("container-overflow", "buffer-overflow", "ASan: access past a container's size"),
    ("intra-object-overflow", "buffer-overflow", "ASan: access past a field"),
)


def _asan_kind(m: re.Match[str], _s: str) -> tuple[str, str]:
    text = m.group("text")
    for key, verdict, meaning in _ASAN_KINDS:
        if key in text:
            return verdict, meaning
    return "crash", "ASan: a fatal error that is not a heap-lifetime or bounds error"


def _asan_message(m: re.Match[str], _s: str) -> str:
    text = re.split(r" (?:\(pc|at pc|pc) 0x", m.group("text"))[0]
    return _one_line(f"AddressSanitizer: {text}")


def _asan_details(m: re.Match[str], s: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    summary = re.search(r"^SUMMARY: AddressSanitizer: ([^\n]*)", s[m.end() :], re.MULTILINE)
    if summary:
        out["asan_summary"] = summary.group(1).strip()
    access = re.search(r"^(READ|WRITE) of size (\d+)", s[m.end() :], re.MULTILINE)
    if access:
        out["access"] = f"{access.group(1)} of size {access.group(2)}"
    return out


def _lsan_details(m: re.Match[str], s: str) -> dict[str, Any]:
    leaked = re.search(r"SUMMARY: \w+Sanitizer: (\d+) byte\(s\) leaked in (\d+) allocation", s)
    if not leaked:
        return {}
    return {"leaked_bytes": int(leaked.group(1)), "allocations": int(leaked.group(2))}


# -- valgrind memcheck ----------------------------------------------------------------------------
def _valgrind_follow(m: re.Match[str], s: str) -> str:
    """The 'Address 0x... is ...' line that follows a memcheck error header."""
    tail = s[m.end() : m.end() + 4000]
    addr = re.search(r"^==\d+==\s+Address 0x[0-9a-fA-F]+ is ([^\n]*)", tail, re.MULTILINE)
    return addr.group(1) if addr else ""


def _valgrind_verdict(m: re.Match[str], s: str) -> str:
    head, where = m.group("head"), _valgrind_follow(m, s)
    in_freed = re.search(r"(?:inside|after|before) a block of size [\d,]+ free'd", where)
    if head.startswith("Invalid free") or head.startswith("Mismatched free"):
        if in_freed:
            return "double-free"
        return "invalid-free"
    if head.startswith("Invalid read") or head.startswith("Invalid write"):
        if in_freed:
            return "use-after-free"
        if "after a block" in where or "before a block" in where:
            return "buffer-overflow"
    return "crash"


def _valgrind_meaning(m: re.Match[str], s: str) -> str:
    where = _valgrind_follow(m, s)
    return f"valgrind memcheck: {m.group('head')}" + (f"; the address is {where}" if where else "")


# -- C++ / Rust ------------------------------------------------------------------------------------
def _cxx_details(m: re.Match[str], _s: str) -> dict[str, Any]:
    d = {"exception_type": m.group("type")}
    if m.groupdict().get("what") is not None:
        d["what"] = m.group("what").strip()
    return d


def _cxx_message(m: re.Match[str], _s: str) -> str:
    what = m.groupdict().get("what")
    base = f"terminate called after throwing an instance of '{m.group('type')}'"
    return base + (f": what(): {what.strip()}" if what is not None else "")


def _cxx_meaning(m: re.Match[str], _s: str) -> str:
    if "bad_alloc" in m.group("type"):
        return "C++: an allocation failed (out of memory, or a huge size from a corrupted length) and nothing caught std::bad_alloc"
    return "C++: an exception escaped to std::terminate (no handler, or thrown through a noexcept/C boundary)"


def _rust_new_details(m: re.Match[str], _s: str) -> dict[str, Any]:
    return {"thread": m.group("thread"), "location": m.group("loc"), "payload": m.group("msg")}


RULES: tuple[Rule, ...] = (
    Rule(
        "asan",
        _rx(_PID + r"ERROR: AddressSanitizer: (?P<text>[^\n]*)"),
        lambda m, s: _asan_kind(m, s)[0],
        lambda m, s: _asan_kind(m, s)[1],
        _asan_details,
        _asan_message,
    ),
    Rule(
        "lsan",
        _rx(_PID + r"ERROR: LeakSanitizer: detected memory leaks"),
        "leak",
        "LeakSanitizer: blocks still allocated and unreachable at exit",
        _lsan_details,
    ),
    Rule(
        "ubsan",
        _rx(r"^(?P<loc>\S+:\d+:\d+): runtime error: (?P<text>[^\n]*)"),
        lambda m, _s: "buffer-overflow" if "out of bounds" in m.group("text") else "crash",
        lambda m, _s: f"UBSan: undefined behaviour at {m.group('loc')}",
        lambda m, _s: {"location": m.group("loc")},
    ),
    Rule(
        "valgrind",
        _rx(
            r"^==\d+== (?P<head>Invalid free\(\) / delete / delete\[\] / realloc\(\)"
            r"|Mismatched free\(\) / delete / delete ?\[\]"
            r"|Invalid (?:read|write) of size \d+"
            r"|Process terminating with default action of signal \d+ \(\w+\))"
        ),
        _valgrind_verdict,
        _valgrind_meaning,
        lambda m, s: {"address": _valgrind_follow(m, s)} if _valgrind_follow(m, s) else {},
    ),
    Rule(
        "valgrind",
        _rx(
            r"^==\d+==\s+definitely lost: (?P<bytes>[1-9][\d,]*) bytes in (?P<blocks>[\d,]+) blocks"
        ),
        "leak",
        "valgrind memcheck: blocks no pointer reaches at exit",
        lambda m, _s: {
            "leaked_bytes": int(m.group("bytes").replace(",", "")),
            "blocks": int(m.group("blocks").replace(",", "")),
        },
    ),
    Rule(
        "c++",
        _rx(
            r"terminate called after throwing an instance of '(?P<type>[^'\n]+)'"
            r"(?:\n\s*what\(\):\s*(?P<what>[^\n]*))?"
        ),
        "crash",
        _cxx_meaning,
        _cxx_details,
        _cxx_message,
    ),
    Rule(
        "c++",
        _rx(
            r"libc\+\+abi: terminating due to uncaught exception of type (?P<type>[^:\n]+)"
            r"(?:: (?P<what>[^\n]*))?"
        ),
        "crash",
        _cxx_meaning,
        _cxx_details,
        _cxx_message,
    ),
    Rule(
        "c++",
        _rx(r"terminate called (?:without an active exception|recursively)"),
        "crash",
        "C++: std::terminate (a joinable std::thread destroyed, or a rethrow with nothing to rethrow)",
    ),
    Rule(
        "c++",
        _rx(r"pure virtual method called|libc\+\+abi: Pure virtual function called!"),
        "use-after-free",
        "C++: a virtual call on an object whose destructor already ran (used after it was destroyed)",
    ),
    Rule(
        "c++",
        _rx(r"std::bad_alloc"),
        "crash",
        "C++: an allocation failed (out of memory, or a huge size from a corrupted length)",
    ),
    Rule(
        "rust",
        _rx(
            r"^thread '(?P<thread>[^'\n]*)' panicked at (?P<loc>[^\n]+?:\d+:\d+):\n(?P<msg>[^\n]*)"
        ),
        "crash",
        "Rust: a panic that was not caught (panic=abort, or it unwound into a foreign frame)",
        _rust_new_details,
        lambda m, _s: (
            f"thread '{m.group('thread')}' panicked at {m.group('loc')}: {m.group('msg')}"
        ),
    ),
    Rule(
        "rust",
        _rx(r"^thread '(?P<thread>[^'\n]*)' panicked at '(?P<msg>[^\n]*)', (?P<loc>\S+:\d+:\d+)"),
        "crash",
        "Rust: a panic that was not caught (panic=abort, or it unwound into a foreign frame)",
        _rust_new_details,
        lambda m, _s: (
            f"thread '{m.group('thread')}' panicked at {m.group('loc')}: {m.group('msg')}"
        ),
    ),
    Rule(
        "rust",
        _rx(r"memory allocation of (?P<bytes>\d+) bytes failed"),
        "crash",
        "Rust: the allocation error handler aborted (out of memory, or a huge size from a corrupted length)",
        lambda m, _s: {"bytes": int(m.group("bytes"))},
    ),
    Rule(
        "rust",
        _rx(r"^fatal runtime error: [^\n]*|^thread caused non-unwinding panic\. aborting\."),
        "crash",
        "Rust: the runtime aborted",
    ),
    # glibc's malloc checks (malloc/malloc.c malloc_printerr), most specific first
    Rule(
        "glibc",
        _rx(r"^\s*free\(\): double free detected in tcache 2"),
        "double-free",
        "glibc: the block is already in the thread cache of freed blocks (freed twice)",
    ),
    Rule(
        "glibc",
        _rx(r"^\s*double free or corruption \((?:fasttop|top|out|!prev)\)"),
        "double-free",
        "glibc: the block is not marked in use (freed twice; less often an overflow that "
        "cleared the next chunk's in-use bit)",
    ),
    Rule(
        "glibc",
        _rx(r"^\s*(?:free|munmap_chunk|realloc)\(\): invalid pointer"),
        "invalid-free",
        "glibc: the pointer is not the start of a heap block (never allocated, or inside one)",
    ),
    Rule(
        "glibc",
        _rx(
            r"^\s*free\(\): invalid (?:next )?size[^\n]*|^\s*realloc\(\): invalid (?:old|next) size[^\n]*"
        ),
        "buffer-overflow",
        "glibc: a chunk header next to the block is damaged (a write past the end of a block)",
    ),
    Rule(
        "glibc",
        _rx(
            r"^\s*(?:malloc|malloc_consolidate|realloc|calloc|free|tcache_thread_shutdown|"
            r"_int_malloc|_int_free)\(\): [^\n]*|^\s*corrupted (?:size vs\. prev_size|double-linked list)[^\n]*"
            r"|^\s*Fatal glibc error: malloc[^\n]*|^[^\n]*malloc\.c:\d+: [^\n]*Assertion[^\n]*"
        ),
        "buffer-overflow",
        "glibc: the heap's own bookkeeping is corrupted (a write past a block's end, or into a freed block)",
    ),
    Rule(
        "glibc",
        _rx(r"^\s*\*\*\* (?:stack smashing|buffer overflow) detected \*\*\*[^\n]*"),
        "buffer-overflow",
        "glibc: a write past a buffer (stack protector or _FORTIFY_SOURCE check)",
    ),
)


def _apply(rule: Rule, m: re.Match[str], stderr: str) -> NativeMessage:
    verdict = rule.verdict(m, stderr) if callable(rule.verdict) else rule.verdict
    meaning = rule.meaning(m, stderr) if callable(rule.meaning) else rule.meaning
    message = rule.message(m, stderr) if rule.message else _one_line(m.group(0))
    details = rule.details(m, stderr) if rule.details else {}
    return NativeMessage(rule.runtime, verdict, message, meaning, details, m.start())


def find_all(stderr: str) -> list[NativeMessage]:
    """Every recognised message, in the order they appear (a rule's earliest match each)."""
    found: dict[int, NativeMessage] = {}
    for rule in RULES:
        m = rule.pattern.search(stderr or "")
        if m and m.start() not in found:  # a text the earlier, more specific rule named
            found[m.start()] = _apply(rule, m, stderr)
    return [found[k] for k in sorted(found)]


def find_native_message(stderr: str) -> NativeMessage | None:
    """The first runtime message in a child's stderr, if any."""
    found = find_all(stderr)
    return found[0] if found else None


def native_message(stderr: str) -> str | None:
    """The runtime's message text (glibc, C++, Rust, sanitizer, valgrind), if any."""
    nm = find_native_message(stderr)
    return nm.message if nm else None


def recorded_native(exit_info: dict[str, Any]) -> dict[str, Any] | None:
    """The runtime message a run record's exit holds (`isolation.classify` stores it under
    "native": runtime, verdict, meaning, details), re-read from its text for records made
    before the classifier existed."""
    native = exit_info.get("native")
    if isinstance(native, dict) and native.get("verdict") in VERDICTS:
        return native
    text = exit_info.get("native_message")
    if text:
        found = find_native_message(str(text))
        return found.to_dict() if found else None
    return None
