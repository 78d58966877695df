"""Seconds of Numba compilation inside the child, from Numba's own `numba:compile` events.

Why: a cold Numba cache spends minutes compiling kernels on first use. That time (and the
compiler's memory) belongs to the cache, not to the engine, so it is measured per step
and the gate takes it out of its time figure (`harness.gate`).

memcycle never imports numba itself (a native engine's child must not load it): the
listener is registered when numba's event module is first imported, by whoever imports
it, through a one-shot import hook. Until then the clock reads None ("numba never
imported"). Under `NUMBA_DISABLE_JIT=1` nothing compiles and the clock reads 0.
Only cache misses fire `numba:compile`; loading a kernel from the cache is not counted.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

EVENT_MODULE = "numba.core.event"
COMPILE_EVENT = "numba:compile"


class CompileClock:
    """Wall seconds spent in outermost `numba:compile` events (nested compiles count once)."""

    def __init__(self) -> None:
        self.attached = False
        self._total = 0.0
        self._depth = 0
        self._started = 0.0

    def seconds(self) -> float | None:
        """Compile seconds so far (a compile in progress counts up to now); None before numba."""
        if not self.attached:
            return None
        if self._depth:
            return self._total + (time.perf_counter() - self._started)
        return self._total

    def on_start(self) -> None:
        if self._depth == 0:
            self._started = time.perf_counter()
        self._depth += 1

    def on_end(self) -> None:
        if self._depth == 0:  # an end without its start (attached mid-compile)
            return
        self._depth -= 1
        if self._depth == 0:
            self._total += time.perf_counter() - self._started

    def attach(self, event_module: ModuleType) -> None:
        """Register with numba's event module (a Listener must subclass numba's class)."""
        if self.attached:
            return
        clock = self

        class _Listener(event_module.Listener):  # type: ignore[name-defined,misc]
            def on_start(self, event: Any) -> None:
                clock.on_start()

            def on_end(self, event: Any) -> None:
                clock.on_end()

        event_module.register(COMPILE_EVENT, _Listener())
        self.attached = True


class _AttachOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; when numba's event module is imported, attaches the clock after it runs."""

    def __init__(self, clock: CompileClock) -> None:
        self.clock = clock

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != EVENT_MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if spec is None or exec_module is None:
            return None  # let the other finders handle it; the clock stays None
        clock = self.clock

        def exec_then_attach(module: ModuleType) -> None:
            exec_module(module)
            # an incompatible numba: no compile figures, but never a broken import
            with contextlib.suppress(Exception):
                clock.attach(module)

        loader.exec_module = exec_then_attach  # type: ignore[union-attr]
        return spec


def install_compile_clock() -> CompileClock:
    """A clock attached now if numba is already imported, else as soon as it is."""
    clock = CompileClock()
    mod = sys.modules.get(EVENT_MODULE)
    if mod is not None and hasattr(mod, "register"):
        clock.attach(mod)
    else:
        sys.meta_path.insert(0, _AttachOnImport(clock))
    return clock
