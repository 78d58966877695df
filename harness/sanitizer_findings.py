"""One shape for every tool's report: the checked allocator's violation dict.

ASan/UBSan (`harness.sanitizer_asan`) and valgrind (`harness.sanitizer_valgrind`) both turn
their stacks into it: frames tagged by `harness.native_stack`, the allocator machinery's
frames dropped from the top, "file:line in function" strings innermost last.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .native_stack import annotate


def _strings(frames: list[dict[str, Any]]) -> list[str]:
    """The checked allocator's stack strings: 'file:line in func', innermost last."""
    out = []
    for f in reversed(frames):
        where = f"{f['file']}:{f['line']}" if f.get("file") else (f.get("object") or "??")
        out.append(f"{where} in {f.get('function') or '??'}")
    return out


def _is_allocator_frame(f: dict[str, Any]) -> bool:
    """A frame of the sanitizer's interceptors, valgrind's replacement malloc or memray's hooks."""
    fn = f.get("function") or ""
    obj = f.get("object") or ""
    return (
        fn.startswith(("__interceptor_", "__asan", "__sanitizer", "memray::"))
        or "libasan" in obj
        or "vgpreload_" in obj
        or f"{os.sep}memray{os.sep}" in obj
        or "asan_" in os.path.basename(f.get("file") or "")
    )


def _drop_runtime(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without the allocator machinery's frames at the top (malloc, free, memcpy, hooks)."""
    i = 0
    while i < len(frames) and _is_allocator_frame(frames[i]):
        i += 1
    return frames[i:] if i < len(frames) else frames


def _verdict(kind: str, table: Sequence[tuple[str, str]], default: str = "crash") -> str:
    return next((v for key, v in table if key in kind), default)


def _violation(
    tool: str,
    kind: str,
    verdict: str,
    message: str,
    stacks: dict[str, list[dict[str, Any]]],
    roots: Sequence[str],
    **extra: Any,
) -> dict[str, Any]:
    ann = {k: annotate(_drop_runtime(v), roots) for k, v in stacks.items() if v}
    return {
        "tool": tool,
        "kind": kind,
        "verdict": verdict,
        "message": message,
        "fault_stack": _strings(ann.get("stack", [])),
        "free_stack": _strings(ann.get("free_stack", [])),
        "alloc_stack": _strings(ann.get("alloc_stack", [])),
        "frames": ann,
        "engine": any(f["engine"] for fr in ann.values() for f in fr),
        **extra,
    }
