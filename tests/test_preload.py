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
