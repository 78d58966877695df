"""Reading valgrind memcheck's XML (and its log, for valgrind's own death) into violations."""

from __future__ import annotations

import contextlib
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .sanitizer_findings import _violation


def _vg_frames(stack: ET.Element | None) -> list[dict[str, Any]]:
    frames = []
    for fr in stack.findall("frame") if stack is not None else []:
        d, f = fr.findtext("dir"), fr.findtext("file")
        line = fr.findtext("line")
        frames.append(
            {
                "pc": fr.findtext("ip"),
                "function": fr.findtext("fn"),
                "file": os.path.join(d, f) if d and f else f,
                "line": int(line) if line and line.isdigit() else None,
                "object": fr.findtext("obj"),
            }
        )
    return frames


def _vg_verdict(kind: str, aux: str) -> str | None:
    """memcheck's error kind (and the first auxwhat) -> verdict; None: not judged."""
    if kind.startswith("Leak_"):
        return "leak"
    if kind == "InvalidFree":
        # a block freed before, hit at its start: the same pointer freed twice
        return "double-free" if "free'd" in aux and " 0 bytes inside" in aux else "invalid-free"
    if kind in ("MismatchedFree", "FishyValue"):
        return "invalid-free" if kind == "MismatchedFree" else None
    if kind in ("InvalidRead", "InvalidWrite", "InvalidJump"):
        if "free'd" in aux:
            return "use-after-free"
        if "alloc'd" in aux or "after a block" in aux or "before a block" in aux:
            return "buffer-overflow"
        return "crash"
    return None


def _close_xml(text: str) -> str:
    """A memcheck XML file cut short (the child was killed) made parseable; what a dying
    valgrind writes after its closing tag (a stack of its own panic) is dropped."""
    end = text.find("</valgrindoutput>")
    if end >= 0:
        return text[: end + len("</valgrindoutput>")]
    cut = text.rfind("</error>")
    head = text[: cut + len("</error>")] if cut >= 0 else text[: text.find("<error>")]
    return head + "\n</valgrindoutput>\n"


def parse_valgrind_xml(text: str, roots: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every memcheck error in an XML file, with its byte offset (`offset`) in the file."""
    try:
        root = ET.fromstring(_close_xml(text))
    except ET.ParseError:
        return []
    offsets = [m.start() for m in re.finditer(r"<error>", text)]
    out = []
    for n, err in enumerate(root.findall("error")):
        kind = err.findtext("kind") or ""
        what = err.findtext("what") or err.findtext("xwhat/text") or ""
        children = list(err)
        stacks: dict[str, list[dict[str, Any]]] = {}
        auxes: list[str] = []
        label = "stack"
        for el in children:
            if el.tag == "auxwhat":
                aux = el.text or ""
                auxes.append(aux)
                low = aux.lower()
                label = "free_stack" if "free'd" in low else "alloc_stack"
            elif el.tag == "stack" and label not in stacks:
                stacks[label] = _vg_frames(el)
        if kind.startswith("Leak_"):
            stacks = {"alloc_stack": stacks.get("stack", [])}
        verdict = _vg_verdict(kind, auxes[0] if auxes else "")
        if verdict is None:
            verdict = "not-judged"
        out.append(
            _violation(
                "valgrind",
                kind,
                verdict,
                f"valgrind memcheck {kind}: {what}" + (f"; {auxes[0]}" if auxes else ""),
                stacks,
                roots,
                offset=offsets[n] if n < len(offsets) else None,
                tid=err.findtext("tid"),
            )
        )
    return out


_VALGRIND_DIED = re.compile(
    r"^.*(?:VALGRIND INTERNAL ERROR[^\n]*|valgrind: the 'impossible' happened[^\n]*"
    r"|Valgrind's memory management: out of memory[^\n]*)",
    re.M,
)


def _valgrind_died(files: Sequence[str]) -> str | None:
    """valgrind's own death (its log's first panic line), or None.

    A write far past a block's end runs over memcheck's redzone into its own heap
    metadata, and valgrind then dies of SIGSEGV or 'Heap block lo/hi size mismatch'
    (the C twin's migration-overflow: four InvalidWrite reports, then 'Valgrind received
    a signal 11 - exiting', exit code 1). Memcheck's reports written before are what
    explains it (`harness.checks` takes a sanitizer's report as the verdict of a child that
    exited); this line says in the evidence that the tool, not the program, died."""
    for f in files:
        if not f.endswith(".log"):
            continue
        with contextlib.suppress(OSError):
            m = _VALGRIND_DIED.search(Path(f).read_text(encoding="utf-8", errors="replace"))
            if m:
                return re.sub(r"^[-=]*\d*[-=]*\s*", "", m.group(0).strip())[:300]
    return None
