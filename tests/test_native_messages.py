"""Native runtime messages: each family of texts maps to its precise verdict, the crash
finding keeps `crash` as the signal class, and a real uncaught C++ exception in an engine
comes back with its type and what()."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from memcycle.checks import judge
from memcycle.isolation import classify, native_message
from memcycle.native_messages import find_all, find_native_message
from memcycle.records import RunRecord, StepEvent
from memcycle.runner import run_one
from memcycle.scenario import load_scenario

ASAN_UAF = """=================================================================
==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x7f1c2a3f0800 at pc 0x7f1c2d1e3b2a bp 0x7ffd sp 0x7ffd
READ of size 4 at 0x7f1c2a3f0800 thread T0
    #0 0x7f1c2d1e3b29 in distance /src/refimpl_c.c:520
SUMMARY: AddressSanitizer: heap-use-after-free /src/refimpl_c.c:520 in distance
"""
VALGRIND_DOUBLE = """==77== Invalid free() / delete / delete[] / realloc()
==77==    at 0x484417B: free (vg_replace_malloc.c:872)
==77==    by 0x5A1B2C3: rc_init (refimpl_c.c:310)
==77==  Address 0x5b3e040 is 0 bytes inside a block of size 400 free'd
==77==    at 0x484417B: free (vg_replace_malloc.c:872)
"""
VALGRIND_WILD = """==77== Invalid free() / delete / delete[] / realloc()
==77==    at 0x484417B: free (vg_replace_malloc.c:872)
==77==  Address 0xa is not stack'd, malloc'd or (recently) free'd
"""
VALGRIND_OVER = """==77== Invalid write of size 4
==77==    at 0x4C2E0E: memcpy
==77==  Address 0x5b3e6a0 is 0 bytes after a block of size 1,600 alloc'd
"""


@pytest.mark.parametrize(
    ("stderr", "runtime", "verdict", "message"),
    [
        # glibc's heap checks
        ("free(): double free detected in tcache 2\n", "glibc", "double-free", None),
        ("double free or corruption (!prev)\n", "glibc", "double-free", None),
        ("double free or corruption (fasttop)\n", "glibc", "double-free", None),
        ("double free or corruption (top)\n", "glibc", "double-free", None),
        ("double free or corruption (out)\n", "glibc", "double-free", None),
        ("free(): invalid pointer\nFatal Python error: Aborted\n", "glibc", "invalid-free", None),
        ("munmap_chunk(): invalid pointer\n", "glibc", "invalid-free", None),
        ("realloc(): invalid pointer\n", "glibc", "invalid-free", None),
        ("free(): invalid size\n", "glibc", "buffer-overflow", None),
        ("free(): invalid next size (normal)\n", "glibc", "buffer-overflow", None),
        ("free(): invalid next size (fast)\n", "glibc", "buffer-overflow", None),
        ("malloc(): unaligned tcache chunk detected\n", "glibc", "buffer-overflow", None),
        ("malloc(): invalid size (unsorted)\n", "glibc", "buffer-overflow", None),
        ("malloc(): corrupted top size\n", "glibc", "buffer-overflow", None),
        ("corrupted size vs. prev_size\n", "glibc", "buffer-overflow", None),
        ("corrupted double-linked list\n", "glibc", "buffer-overflow", None),
        ("malloc_consolidate(): invalid chunk size\n", "glibc", "buffer-overflow", None),
        ("free(): unaligned chunk detected in tcache 2\n", "glibc", "buffer-overflow", None),
        ("*** stack smashing detected ***: terminated\n", "glibc", "buffer-overflow", None),
        ("*** buffer overflow detected ***: terminated\n", "glibc", "buffer-overflow", None),
        # C++
        (
            "terminate called after throwing an instance of 'std::runtime_error'\n"
            "  what():  boom\nFatal Python error: Aborted\n",
            "c++",
            "crash",
            "terminate called after throwing an instance of 'std::runtime_error': what(): boom",
        ),
        (
            "terminate called after throwing an instance of 'std::bad_alloc'\n"
            "  what():  std::bad_alloc\n",
            "c++",
            "crash",
            None,
        ),
        (
            "pure virtual method called\nterminate called without an active exception\n",
            "c++",
            "use-after-free",
            None,
        ),
        (
            "libc++abi: terminating due to uncaught exception of type std::out_of_range: vector\n",
            "c++",
            "crash",
            None,
        ),
        # Rust
        (
            "thread 'main' panicked at src/index.rs:42:9:\nindex out of bounds: the len is 3\n",
            "rust",
            "crash",
            "thread 'main' panicked at src/index.rs:42:9: index out of bounds: the len is 3",
        ),
        (
            "thread '<unnamed>' panicked at 'called `Option::unwrap()` on a `None` value', src/lib.rs:7:5\n",
            "rust",
            "crash",
            None,
        ),
        ("memory allocation of 123456789012 bytes failed\n", "rust", "crash", None),
        # sanitizers and valgrind
        (ASAN_UAF, "asan", "use-after-free", None),
        (
            "==1==ERROR: AddressSanitizer: attempting double-free on 0x602 in thread T0:\n",
            "asan",
            "double-free",
            None,
        ),
        (
            "==1==ERROR: AddressSanitizer: attempting free on address which was not malloc()-ed: 0x0a in thread T0\n",
            "asan",
            "invalid-free",
            None,
        ),
        (
            "==1==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6 at pc 0x1 bp 0x2\n",
            "asan",
            "buffer-overflow",
            None,
        ),
        (
            "==1==ERROR: AddressSanitizer: SEGV on unknown address 0x0000000019e0\n",
            "asan",
            "crash",
            None,
        ),
        (
            "==1==ERROR: LeakSanitizer: detected memory leaks\n\nSUMMARY: AddressSanitizer: 1600 byte(s) leaked in 2 allocation(s).\n",
            "lsan",
            "leak",
            None,
        ),
        (
            "src/x.c:12:5: runtime error: index 10 out of bounds for type 'int [10]'\n",
            "ubsan",
            "buffer-overflow",
            None,
        ),
        (
            "src/x.c:12:5: runtime error: signed integer overflow: 2147483647 + 1\n",
            "ubsan",
            "crash",
            None,
        ),
        (VALGRIND_DOUBLE, "valgrind", "double-free", None),
        (VALGRIND_WILD, "valgrind", "invalid-free", None),
        (VALGRIND_OVER, "valgrind", "buffer-overflow", None),
        ("==77==    definitely lost: 1,600 bytes in 1 blocks\n", "valgrind", "leak", None),
    ],
)
def test_each_runtime_message_maps_to_its_verdict(
    stderr: str, runtime: str, verdict: str, message: str | None
) -> None:
    found = find_native_message(stderr)
    assert found is not None, stderr
    assert (found.runtime, found.verdict) == (runtime, verdict)
    assert found.meaning
    if message is not None:
        assert found.message == message


def test_python_fatal_error_alone_is_not_a_runtime_message() -> None:
    assert find_native_message("Fatal Python error: Segmentation fault\n\nThread 0x1:\n") is None
    assert native_message("some log line mentioning corrupted data\n") is None


def test_cxx_exception_details_carry_type_and_what() -> None:
    found = find_native_message(
        "terminate called after throwing an instance of 'std::runtime_error'\n  what():  boom\n"
    )
    assert found is not None
    assert found.details == {"exception_type": "std::runtime_error", "what": "boom"}


def test_rust_panic_details_carry_thread_location_and_payload() -> None:
    found = find_native_message("thread 'worker-1' panicked at src/a.rs:1:2:\nboom\n")
    assert found is not None
    assert found.details == {"thread": "worker-1", "location": "src/a.rs:1:2", "payload": "boom"}


def test_the_earliest_message_wins_and_a_tie_goes_to_the_specific_rule() -> None:
    text = "src/x.c:3:1: runtime error: index 9 out of bounds\nfree(): invalid pointer\n"
    assert [m.runtime for m in find_all(text)] == ["ubsan", "glibc"]
    assert find_native_message(text).runtime == "ubsan"  # type: ignore[union-attr]
    tcache = find_native_message("free(): double free detected in tcache 2\n")
    assert tcache is not None and tcache.verdict == "double-free"  # not the generic free(): rule


def test_asan_details_name_the_access_and_summary() -> None:
    found = find_native_message(ASAN_UAF)
    assert found is not None
    assert found.message.startswith("AddressSanitizer: heap-use-after-free on address 0x7f1c")
    assert "pc 0x" not in found.message
    assert found.details["access"] == "READ of size 4"
    assert "refimpl_c.c:520 in distance" in found.details["asan_summary"]


def test_classify_keeps_the_text_and_the_structured_message() -> None:
    out = classify(-6, False, [], "double free or corruption (!prev)\nFatal Python error: Aborted")
    assert out["native_message"] == "double free or corruption (!prev)"
    assert out["native"]["runtime"] == "glibc" and out["native"]["verdict"] == "double-free"


def _judged(exit: dict[str, object]) -> RunRecord:
    sc = load_scenario(
        Path(__file__).resolve().parents[1] / "scenarios" / "search-after-clear.toml"
    )
    rec = RunRecord(sc.name, sc.path, "x", "native", [], "clean")
    rec.steps = [StepEvent(1, 0, "insert", True, 0.1, sc.plan[0].dimension, 10, 10)]
    rec.exit = exit
    return judge(rec, sc.plan)


def test_an_abort_with_a_double_free_message_is_double_free_with_signal_class_crash() -> None:
    rec = _judged(
        classify(
            -6, False, [], "free(): double free detected in tcache 2\nFatal Python error: Aborted"
        )
    )
    assert rec.verdict == "double-free"
    ev = rec.findings[0].evidence
    assert ev["signal_class"] == "crash" and ev["signal_name"] == "SIGABRT"
    assert ev["runtime"] == "glibc" and "freed twice" in ev["verdict_basis"]
    assert ev["native_message"] == "free(): double free detected in tcache 2"


def test_a_sanitizer_exit_code_gets_the_sanitizers_verdict() -> None:
    rec = _judged(classify(1, False, [], ASAN_UAF))
    assert rec.verdict == "use-after-free"
    assert "asan: AddressSanitizer: heap-use-after-free" in rec.findings[0].summary


def test_an_uncaught_exception_stays_crash_with_type_and_what_in_the_evidence() -> None:
    rec = _judged(
        classify(
            -6,
            False,
            [],
            "terminate called after throwing an instance of 'std::length_error'\n  what():  vector::reserve\n",
        )
    )
    assert rec.verdict == "crash"
    ev = rec.findings[0].evidence
    assert ev["exception_type"] == "std::length_error" and ev["what"] == "vector::reserve"


# -- a real C++ extension that throws through ctypes ------------------------------------------
CXX = r"""
#include <stdexcept>
extern "C" void boom(void) { throw std::runtime_error("boom"); }
"""
ENGINE = """
import ctypes
import numpy as np
from memcycle.engines.base import Capabilities

LIB = ctypes.CDLL({lib!r})


class Thrower:
    name = "thrower"
    capabilities = Capabilities(delete=False)

    def open(self, dimension, metric="l2"):
        self.n = 0

    def insert(self, ids, vectors, metadata=None):
        LIB.boom()  # an uncaught C++ exception unwinds into ctypes' C frames: std::terminate

    def search(self, queries, k, filter=None):
        return np.full((len(queries), k), -1), np.full((len(queries), k), np.inf, np.float32)

    def count(self):
        return self.n

    def clear(self):
        self.n = 0

    def close(self):
        pass

    def ledger(self):
        return None


def make(config):
    return Thrower()
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to build the C++ extension")
def test_uncaught_cxx_exception_in_an_engine_gives_type_and_what(tmp_path: Path) -> None:
    src = tmp_path / "boom.cpp"
    src.write_text(CXX)
    lib = tmp_path / "libboom.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-g", str(src), "-o", str(lib)], check=True)
    (tmp_path / "thrower.py").write_text(ENGINE.format(lib=str(lib)))
    scenario = tmp_path / "one.toml"
    scenario.write_text(
        textwrap.dedent(
            """
            name = "one-insert"
            dimension = 4
            [[cycle]]
            steps = [{ op = "insert", count = 3 }]
            """
        )
    )
    rec = run_one(scenario, f"{tmp_path / 'thrower.py'}:make", memray=False, timeout=60)
    assert rec.verdict == "crash", [f.summary for f in rec.findings]
    f = rec.findings[0]
    assert (f.cycle, f.op) == (1, "insert")
    assert f.evidence["signal_name"] == "SIGABRT" and f.evidence["signal_class"] == "crash"
    assert f.evidence["runtime"] == "c++"
    assert f.evidence["exception_type"] == "std::runtime_error" and f.evidence["what"] == "boom"
    assert "std::runtime_error" in f.summary and "boom" in f.summary
