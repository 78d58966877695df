"""Import a built-in Numba engine's code in the child before recording starts.

tracemalloc (the recorder when memray is off) traces every Python allocation, and importing
NumPy, llvmlite, Numba and refimpl's kernel modules under it took 10 s instead of 2.5 s on a
loaded 2-core box; under memray it doubles the capture (every import allocation is a record
the parent's analysis replays). What those imports allocate is a one-off cost of loading code,
which the analysis never counts as the engine's (`analysis._loads_code`) and the growth rules
never see (it is the same in every cycle), so importing it first changes no verdict or
per-cycle figure; only the absolute process totals drop by the import footprint.

Only refimpl's own engines are preloaded: a user's engine module is imported where it always
was, inside the factory's setup error handling, and never costs a Numba import it does not make.
"""

from __future__ import annotations

import importlib

# built-in engine names whose code is memcycle.refimpl (Numba kernels)
PRELOADED_ENGINES = ("refimpl", "refimpl-global")


def preload_engine_code(engine_spec: str) -> bool:
    """Import refimpl's engine (its database, hence its Numba kernels) when `engine_spec` is one
    of its engines; True when it did. The package itself imports nothing eagerly (its C twin
    must not load Numba), so the database module is named.
    A failure is left for the factory to meet again and report as a setup error."""
    if engine_spec not in PRELOADED_ENGINES:
        return False
    try:
        importlib.import_module("memcycle.refimpl.database")
    except Exception:  # the factory imports it again and reports what broke
        return False
    _initialise_numba()
    return True


def _initialise_numba() -> None:
    """Build Numba's typing and target registries now, as the first kernel call would: about
    50k Python objects and 0.5-1 s, made once. Done here, they are loaded code like the
    imports: outside the recording, and frozen out of the collector with them (`child.run`),
    so no reset point's collection and object census walks them again."""
    try:
        from numba.core.registry import cpu_target

        cpu_target.typing_context.refresh()
        cpu_target.target_context.refresh()
    except Exception:  # an internal of Numba moved: the first kernel call builds them instead
        return
