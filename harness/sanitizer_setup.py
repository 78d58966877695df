"""Sanitizer and valgrind setup: which tool, its options, and the child's command and env.

`prepare(...)` turns the plain child command and environment into the sanitized one (the
options and why each is set: `harness.sanitizers`' module doc). The run and step limits'
stretch factors under each tool live here too, measured as the comment says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

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
