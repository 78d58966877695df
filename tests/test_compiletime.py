"""Numba compile seconds measured in the child from numba's `numba:compile` events."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
from memcycle.compiletime import CompileClock, install_compile_clock


def test_nested_compile_events_count_once_and_an_unmatched_end_is_ignored() -> None:
    clock = CompileClock()
    assert clock.seconds() is None  # numba never imported
    clock.attached = True
    clock.on_end()  # attached in the middle of a compile
    assert clock.seconds() == 0.0
    clock.on_start()
    clock.on_start()  # a kernel compiled while compiling its caller
    clock.on_end()
    inner_done = clock.seconds()
    clock.on_end()
    total = clock.seconds()
    assert total is not None and inner_done is not None and total >= inner_done > 0.0
    assert clock._depth == 0


def test_a_compile_in_this_process_is_counted_and_a_cached_call_is_not() -> None:
    clock = install_compile_clock()  # numba is imported here already: attaches at once
    assert clock.seconds() == 0.0

    @numba.njit(cache=False)
    def add_one(x: int) -> int:
        return x + 1

    add_one(1)
    compiled = clock.seconds()
    assert compiled is not None and compiled > 0.0
    add_one(2)  # the same signature: no new compile event
    assert clock.seconds() == compiled


_PROBE = """
import json, sys
from memcycle.compiletime import install_compile_clock
clock = install_compile_clock()
before = clock.seconds()
assert "numba" not in sys.modules
import numba
@numba.njit(cache=False)
def f(x):
    return x * 2
f(3)
print(json.dumps({"before": before, "after": clock.seconds()}))
"""


def _probe(**env: str) -> dict[str, float | None]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def test_the_clock_attaches_when_numba_is_imported_after_it_is_installed() -> None:
    seen = _probe()
    assert seen["before"] is None
    assert seen["after"] is not None and seen["after"] > 0.0


def test_with_the_jit_disabled_the_clock_reads_zero() -> None:
    assert _probe(NUMBA_DISABLE_JIT="1") == {"before": None, "after": 0.0}
