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
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .native_stack import annotate

SANITIZERS = ("asan", "ubsan")
# Under a tool a run's limit is TIMEOUT_FACTOR x the plain limit + TIMEOUT_SLACK seconds, a
# step's is STEP_TIMEOUT_FACTOR x its own, rounded up from two measurements: the clean twin
# on clear-empty-and-twice, memray off, plain / asan / valgrind back to back on the 2-core
# development machine (`memcycle run scenarios/clear-empty-and-twice.toml --engine refimpl-c
# --no-memray [--sanitizer asan | --valgrind]`):
#   load 9-13, child still importing Numba:     plain 11.8 s (steps 0.62), asan 117 s (0.97),
#                                               valgrind 416 s (44.2)
#   load 4-5, the twin's child without Numba:   plain 1.7 s (steps 0.29), asan 34.6 s (0.48),
#                                               valgrind 57.6 s (16.2)
# Whole runs: asan 10-20x, valgrind 34-35x; steps: asan 1.6-1.7x, valgrind 56-71x. A run is
# mostly the tool's fixed price (ASan: LeakSanitizer's pass over the interpreter heap, 30-115
# s; memcheck: starting the interpreter and NumPy, and its exit-time leak scan), hence the
# slack; a step is the slowdown of the work itself. ubsan: not measured (inline checks).
TIMEOUT_FACTOR = {"asan": 4.0, "ubsan": 2.0, "valgrind": 40.0}
TIMEOUT_SLACK = {"asan": 120.0, "ubsan": 0.0, "valgrind": 120.0}
STEP_TIMEOUT_FACTOR = {"asan": 3.0, "ubsan": 2.0, "valgrind": 80.0}

SUPPRESSIONS = Path(__file__).with_name("valgrind-python.supp")
_STACK_FORMAT = "    #%n %p in %f %S {%m+%o}"

ASAN_OPTIONS = {
    "halt_on_error": "1",
    "abort_on_error": "1",
    "symbolize": "1",
    "detect_leaks": "1",
    "leak_check_at_exit": "0",
    "allocator_may_return_null": "0",
    "handle_segv": "1",
    # ASan's own alternate signal stack is replaced by the one faulthandler.enable() installs
    # (a few KB): ASan's SEGV report overflowed it ("nested bug in the same thread", no
    # stack; seen on free(0xa) in the C twin); on the thread's own stack it reports fully
    "use_sigaltstack": "0",
    # faulthandler must not take SIGSEGV/SIGBUS from ASan: chained, ASan sees only the re-raise
    "allow_user_segv_handler": "0",
    "detect_odr_violation": "0",
    "stack_trace_format": f"'{_STACK_FORMAT}'",
}
UBSAN_OPTIONS = {
    "halt_on_error": "1",
    "abort_on_error": "1",
    "print_stacktrace": "1",
    "symbolize": "1",
    "stack_trace_format": f"'{_STACK_FORMAT}'",
}


class SanitizerUnavailable(RuntimeError):
    """The tool or runtime is not installed; the message says what is missing."""


@dataclass
class Mode:
    """One run's sanitizer setup: which tool and where it writes."""

    tool: str  # "asan" | "ubsan" | "valgrind"
    workdir: Path
    notes: list[str] = field(default_factory=list)

    @property
    def log_prefix(self) -> Path:
        return self.workdir / self.tool


@cache
def runtime_library(tool: str) -> str:
    """The sanitizer runtime to preload, as gcc names it (`gcc -print-file-name=libasan.so`)."""
    name = {"asan": "libasan.so", "ubsan": "libubsan.so"}[tool]
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc:
        try:
            out = subprocess.run(
                [cc, f"-print-file-name={name}"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and os.path.isabs(out) and os.path.exists(out):
            return os.path.realpath(out)
    raise SanitizerUnavailable(
        f"--sanitizer {tool}: cannot find {name} (needs gcc with its sanitizer runtime: "
        f"`gcc -print-file-name={name}` must name an existing file)"
    )


def check_available(tool: str) -> None:
    """Raise SanitizerUnavailable when `tool` cannot run here."""
    if tool == "valgrind":
        if shutil.which("valgrind") is None:
            raise SanitizerUnavailable("--valgrind: valgrind is not on PATH")
        return
    if tool not in SANITIZERS:
        raise SanitizerUnavailable(f"unknown sanitizer {tool!r}; expected one of {SANITIZERS}")
    runtime_library(tool)


def _options(ours: dict[str, str], user: str | None, extra: dict[str, str]) -> str:
    # the user's own options come last, so they win
    merged = ":".join(f"{k}={v}" for k, v in {**ours, **extra}.items())
    return f"{merged}:{user}" if user else merged


def prepare(
    mode: Mode, command: list[str], env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The child command and environment under `mode` (env is copied, not changed)."""
    env = dict(env)
    mode.workdir.mkdir(parents=True, exist_ok=True)
    if mode.tool in SANITIZERS:
        lib = runtime_library(mode.tool)
        env["LD_PRELOAD"] = " ".join(x for x in (lib, env.get("LD_PRELOAD", "")) if x)
        env["MEMCYCLE_SANITIZER"] = mode.tool
        log = {"log_path": str(mode.log_prefix)}
        if mode.tool == "asan":
            env["ASAN_OPTIONS"] = _options(ASAN_OPTIONS, env.get("ASAN_OPTIONS"), log)
            # the engine's leaks are checked by the child after its last close (see doc)
            env["LSAN_OPTIONS"] = _options(
                {
                    "report_objects": "0",
                    # LSan's tracer faults scanning the TLS of Numba's threads (refimpl, seen
                    # on gcc 12): without TLS roots a block only a thread-local points to
                    # would look leaked, and still counts only with an engine frame
                    "use_tls": "0",
                    "stack_trace_format": f"'{_STACK_FORMAT}'",
                },
                env.get("LSAN_OPTIONS"),
                {},
            )
            env["MEMCYCLE_LSAN_CHECK"] = "1"
        else:
            env["UBSAN_OPTIONS"] = _options(UBSAN_OPTIONS, env.get("UBSAN_OPTIONS"), log)
        return command, env
    if mode.tool == "valgrind":
        env["PYTHONMALLOC"] = "malloc"
        env["MEMCYCLE_VALGRIND"] = "1"
        vg = shutil.which("valgrind") or "valgrind"
        cmd = [
            vg,
            "--tool=memcheck",
            "--xml=yes",
            f"--xml-file={mode.log_prefix}.%p.xml",
            f"--log-file={mode.log_prefix}.%p.log",
            f"--suppressions={SUPPRESSIONS}",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            "--num-callers=40",
            "--trace-children=no",
            "--child-silent-after-fork=yes",
            # the futex hang at close (runs whose NumPy BLAS threads had started, clean too): at
            # exit_group valgrind ends the other threads, then runs glibc's __libc_freeres in
            # the main thread; it dlcloses the libgcc_s handle glibc opened for its unwinder
            # (backtrace, pthread_cancel/exit; the child had it, LD_DEBUG=files), and that
            # close runs OpenBLAS's destructor (gotoblas_quit -> blas_thread_shutdown_), whose
            # pthread_cond_destroy waits for its worker threads, gone while they slept in
            # pthread_cond_wait: futex_wait for good (gdb via vgdb on the hung child; the
            # same with numpy's matmul, ctypes backtrace() and os._exit alone; without the
            # unwinder's libgcc_s handle, or without BLAS threads, no hang). freeres only
            # frees libc's own buffers, which no verdict counts (definite leaks with an engine
            # frame only), so it is not run
            "--run-libc-freeres=no",
        ]
        return [*cmd, *command], env
    raise SanitizerUnavailable(f"unknown sanitizer mode {mode.tool!r}")


# -- ASan / UBSan text reports ---------------------------------------------------------------
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


# -- valgrind XML ----------------------------------------------------------------------------
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
