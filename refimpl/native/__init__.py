"""The C twin of refimpl: the same lifecycle and the note's faults, in native code.

`refimpl_c.c` ships as package data and is compiled with the system compiler at first
use (`build.build(variant)`; variants plain, asan, ubsan), never at import. `twin` loads it
through ctypes; `faults.CATALOGUE` lists the faults that translate to C and the verdict a
run must reach.
"""

from .builder import VARIANTS, NativeBuildError, build, build_command, variant_from_env
from .faults import CATALOGUE, FAULT_NAMES
from .twin import NativeDB, NativeError, load_library

__all__ = [
    "CATALOGUE",
    "FAULT_NAMES",
    "VARIANTS",
    "NativeBuildError",
    "NativeDB",
    "NativeError",
    "build",
    "build_command",
    "load_library",
    "variant_from_env",
]
