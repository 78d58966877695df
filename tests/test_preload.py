"""The child imports refimpl before recording only for refimpl's own engines."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
from memcycle.preload import preload_engine_code
print(preload_engine_code(sys.argv[1]), "memcycle.refimpl" in sys.modules, "numba" in sys.modules)
"""


def _probe(spec: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, spec], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_a_refimpl_engine_has_its_code_imported_before_recording() -> None:
    assert _probe("refimpl") == "True True True"


def test_a_user_engine_is_not_made_to_import_refimpl_or_numba() -> None:
    assert _probe("mypkg.adapter:make_engine") == "False False False"


_REGISTRIES_PROBE = """
import gc
from memcycle.preload import preload_engine_code
preload_engine_code("refimpl")
gc.collect(); gc.freeze()
from numba.core.registry import cpu_target
cpu_target.typing_context.refresh(); cpu_target.target_context.refresh()
print(len(gc.get_objects()))
"""


def test_a_refimpl_engine_has_numbas_registries_built_before_recording() -> None:
    """The first kernel call would build them (~50k objects) inside the first recorded step."""
    out = subprocess.run(
        [sys.executable, "-c", _REGISTRIES_PROBE], capture_output=True, text=True, check=True
    )
    assert int(out.stdout.strip()) < 2_000, out.stdout
