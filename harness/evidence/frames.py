"""The engine's own code in a finding's stacks: allocator stacks ('file:line in function'
strings, innermost last) and native stacks (frame dicts with `engine` marked, innermost
first), and the sites `finding_sites` names from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from memcycle.records import Finding

NATIVE_FRAMES_SHOWN = 24


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


def is_native_stack(value: Any) -> bool:
    """A native stack from gdb or a sanitizer: dicts with `function` and `origin`."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and "function" in v and "origin" in v for v in value)
    )


def format_native_frames(frames: list[dict[str, Any]], indent: str = "") -> str:
    """One line per frame, innermost first; the engine's own frames marked with '=>'."""
    from memcycle.native_stack import format_frame

    lines = [
        f"{indent}{'=>' if f.get('engine') else '  '} {format_frame(f)}"
        for f in frames[:NATIVE_FRAMES_SHOWN]
    ]
    if len(frames) > NATIVE_FRAMES_SHOWN:
        lines.append(f"{indent}   ... {len(frames) - NATIVE_FRAMES_SHOWN} more frame(s)")
    return "\n".join(lines)


# (whose stack, key, what the site is called, how the engine's frame is found): the native
# stacks of the finding's evidence, then the checked allocator's stacks of its violation
_SITES: tuple[tuple[str, str, str, Callable[[Any], str]], ...] = (
    ("native", "native_stack", "in", engine_native_frame),
    ("native", "native_alloc_stack", "allocated in", engine_native_frame),
    ("native", "native_free_stack", "freed in", engine_native_frame),
    ("allocator", "alloc_stack", "allocated at", engine_frame),
    ("allocator", "free_stack", "freed at", engine_frame),
    ("allocator", "fault_stack", "faulted at", engine_frame),
)


def finding_sites(f: Finding) -> tuple[str, ...]:
    """Where the engine's own code was, from the finding's stacks: the innermost engine frame
    of the native stack (a crash, a hang, a sanitizer's access), of the native allocation and
    free stacks, of the checked allocator's allocation/free/fault stacks; or why no native
    stack is there. The same sites every output names."""
    ev = f.evidence
    v = ev.get("violation") if isinstance(ev.get("violation"), dict) else ev.get("block")
    v = v if isinstance(v, dict) else {}
    out: list[str] = []
    for stacks, key, label, site in _SITES:
        where = site((ev if stacks == "native" else v).get(key))
        if where:
            out.append(f"{label} {where}")
    if not ev.get("native_stack") and ev.get("native_stack_absent"):
        out.append(f"no native stack: {str(ev['native_stack_absent']).splitlines()[0]}")
    return tuple(out)
