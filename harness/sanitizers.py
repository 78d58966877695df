"""Run the child under AddressSanitizer, UBSan or valgrind, and read their reports.

`prepare(...)` turns the plain child command and environment into the sanitized
one; `collect(...)` reads what the tool wrote and returns the reports, each in
the shape refimpl's checked allocator uses for its violations (`verdict`,
`message`, `fault_stack`, `free_stack`, `alloc_stack`: lists of
"file:line in function", innermost last) plus the structured `frames` of each
stack (innermost first, tagged as in `harness.native_stack`).

ASan (`--sanitizer asan`): the runtime is preloaded (`LD_PRELOAD`), since the
Python executable is not instrumented and an instrumented engine library must
find it first. Options: `halt_on_error=1` and `abort_on_error=1` (stop at the
first error and raise SIGABRT, so faulthandler also prints the Python stack),
`symbolize=1`, a `log_path` per child, a stack format that names the module of
every frame (so engine frames can be told from Python's). Leak checking is
**off at exit**: the child leaves through `os._exit` and the
interpreter never frees its own arenas, so an exit-time LeakSanitizer pass
would list thousands of CPython blocks (`leak_check_at_exit=0`, and `os._exit`
skips it anyway). Instead the child asks LSan for a recoverable check after its
last close (`__lsan_do_recoverable_leak_check`; `detect_leaks=1` only makes that
possible), and only leaks whose allocation stack has an engine frame count.
That pass scans the whole interpreter heap: 10-40 s per run on the project's
machines; `ASAN_OPTIONS=detect_leaks=0` in the environment (the user's options
come last and win) skips it when only memory errors matter.

valgrind (`--valgrind`): memcheck with XML output, `PYTHONMALLOC=malloc` (so
pymalloc's arenas do not hide or fake errors) and the suppressions shipped in
`harness/valgrind-python.supp` (CPython's own known reports, our own minimal
list). memcheck does not stop at an error; errors whose stack has no engine
frame are counted but not judged (interpreter and NumPy noise), and leaks are
the "definitely lost" blocks with an engine frame in their allocation stack.
Each error is placed in the step that was running when memcheck wrote it (the
parent notes the XML file's size at every step event).
"""

from __future__ import annotations

import contextlib
import glob
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# the module split by job: setup, the report shape, the ASan/UBSan reader, the valgrind
# reader; every name is still importable from here
from .sanitizer_asan import (  # noqa: F401
    _FRAME,
    _FREE_FUNCTIONS,
    _HEADER,
    _UBSAN,
    ASAN_VERDICTS,
    UBSAN_VERDICTS,
    _blocks,
    _faults_inside_free,
    _parse_frame,
    _parse_leaks,
    parse_asan,
)
from .sanitizer_findings import (  # noqa: F401
    _drop_runtime,
    _is_allocator_frame,
    _strings,
    _verdict,
    _violation,
)
from .sanitizer_setup import (  # noqa: F401
    _STACK_FORMAT,
    ASAN_OPTIONS,
    SANITIZERS,
    STEP_TIMEOUT_FACTOR,
    SUPPRESSIONS,
    TIMEOUT_FACTOR,
    TIMEOUT_SLACK,
    UBSAN_OPTIONS,
    Mode,
    SanitizerUnavailable,
    _options,
    check_available,
    prepare,
    runtime_library,
)
from .sanitizer_valgrind import (  # noqa: F401
    _VALGRIND_DIED,
    _close_xml,
    _valgrind_died,
    _vg_frames,
    _vg_verdict,
    parse_valgrind_xml,
)


def collect(mode: Mode, roots: Sequence[str]) -> dict[str, Any]:
    """What the tool wrote for this run: {'tool', 'reports', 'ignored', 'files'}."""
    files = sorted(glob.glob(f"{mode.log_prefix}.*"))
    reports: list[dict[str, Any]] = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if mode.tool == "valgrind" and f.endswith(".xml"):
            reports += [{**r, "file": f} for r in parse_valgrind_xml(text, roots)]
        elif mode.tool != "valgrind":
            reports += [{**r, "file": f} for r in parse_asan(text, roots)]
    judged = [r for r in reports if r["verdict"] != "not-judged"]
    # leaks and valgrind's non-fatal errors count only with an engine frame; an ASan error
    # aborts the process, so it is judged wherever it happened
    relevant = [
        r
        for r in judged
        if r["engine"] or (r["tool"] in ("asan", "ubsan") and r["verdict"] != "leak")
    ]
    # memcheck carries on after an error, and what follows a first bad access is often its
    # consequence (the stale buffer copied, then freed again): as ASan's halt_on_error, the
    # first error is the verdict; the later ones are listed with it, not judged
    ignored = [r for r in reports if r not in relevant]
    lsan_failed = None
    for f in files:
        with contextlib.suppress(OSError):
            text = Path(f).read_text(encoding="utf-8", errors="replace")
            m = re.search(r"LeakSanitizer has encountered a fatal error[^\n]*", text)
            if m:
                first = text.strip().splitlines()[0][:200]
                lsan_failed = f"{m.group(0).strip('=')}: {first}"
    tool_died = _valgrind_died(files) if mode.tool == "valgrind" else None
    errors = [r for r in relevant if r["verdict"] != "leak"]
    later = errors[1:] if mode.tool == "valgrind" else []
    if errors and later:
        errors[0]["later_errors"] = [
            {"kind": r["kind"], "message": r["message"], "fault_stack": r["fault_stack"][-4:]}
            for r in later[:20]
        ]
        errors[0]["n_later_errors"] = len(later)
        relevant = [r for r in relevant if r not in later]
    return {
        "tool": mode.tool,
        "reports": relevant,
        "ignored": len(ignored),
        "ignored_kinds": sorted({r["kind"] for r in ignored}),
        "files": files,
        "notes": list(mode.notes),
        "leak_check_failed": lsan_failed,
        "tool_died": tool_died,
    }
