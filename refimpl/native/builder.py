"""Build the C twin with the system compiler, once per source version and variant.

The library is built at first use (never at import), into a cache directory keyed by a
hash of the source, the compiler and the flags, so an edited source or another variant
gets its own file and a warm cache costs one `stat`. Two processes building the same key
at once are safe: each compiles to its own temporary name and renames it into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("refimpl_c.c")

# -g -O1: frames keep their names and lines for gdb, ASan and valgrind, and the code is not
# so unoptimised that the twin is slow on 10,000 x 128 scenarios
BASE_FLAGS: tuple[str, ...] = ("-std=c11", "-g", "-O1", "-fPIC", "-shared", "-Wall")
VARIANT_FLAGS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "asan": ("-fsanitize=address", "-fno-omit-frame-pointer"),
    "ubsan": ("-fsanitize=undefined", "-fno-omit-frame-pointer"),
}
VARIANTS: tuple[str, ...] = tuple(VARIANT_FLAGS)
SANITIZER_ENV = "MEMCYCLE_SANITIZER"
VALGRIND_ENV = "MEMCYCLE_VALGRIND"
CACHE_ENV = "MEMCYCLE_NATIVE_CACHE"


class NativeBuildError(RuntimeError):
    """The C twin could not be built (no compiler, a compile error, a bad variant)."""


def variant_from_env(env: dict[str, str] | None = None) -> str:
    """The variant the sanitizer mode asks for: MEMCYCLE_SANITIZER=asan|ubsan, else plain
    (also under valgrind, MEMCYCLE_VALGRIND=1: memcheck instruments the plain build)."""
    env = env if env is not None else dict(os.environ)
    value = env.get(SANITIZER_ENV, "").strip().lower()
    if not value:
        return "plain"
    if value not in ("asan", "ubsan"):
        raise NativeBuildError(f"{SANITIZER_ENV}={value!r}: expected 'asan' or 'ubsan' (or unset)")
    if env.get(VALGRIND_ENV, "").strip() not in ("", "0"):
        raise NativeBuildError(
            f"{SANITIZER_ENV}={value} and {VALGRIND_ENV}=1 together: a sanitizer build cannot "
            "run under valgrind; choose one"
        )
    return value


def find_compiler() -> str:
    """$CC, else cc, else gcc: the path of a C compiler, or NativeBuildError."""
    for name in (os.environ.get("CC", ""), "cc", "gcc"):
        if name:
            path = shutil.which(name)
            if path:
                return path
    raise NativeBuildError(
        "no C compiler found (looked for $CC, cc, gcc); install gcc to build the refimpl C twin"
    )


def cache_dir() -> Path:
    """$MEMCYCLE_NATIVE_CACHE, else $XDG_CACHE_HOME/memcycle/native, else ~/.cache/..."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memcycle" / "native"


def build_command(variant: str, output: Path, compiler: str | None = None) -> list[str]:
    """The exact compiler command line for a variant (shown in reports and the README)."""
    if variant not in VARIANT_FLAGS:
        raise NativeBuildError(
            f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}"
        )
    cc = compiler or find_compiler()
    return [cc, *BASE_FLAGS, *VARIANT_FLAGS[variant], str(SOURCE), "-o", str(output), "-lm"]


def library_path(variant: str = "plain") -> Path:
    """Where the built library of this variant lives (built or not)."""
    cc = find_compiler()
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    # the path too: the debug info names the source file, and frames should name this copy
    key.update(str(SOURCE.resolve()).encode())
    key.update("\0".join([cc, *BASE_FLAGS, *VARIANT_FLAGS.get(variant, ())]).encode())
    return cache_dir() / f"librefimpl_c-{variant}-{key.hexdigest()[:16]}.so"


def build(variant: str = "plain") -> Path:
    """The library for `variant`, compiled now unless the cache already holds it."""
    if variant not in VARIANT_FLAGS:
        raise NativeBuildError(
            f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}"
        )
    out = library_path(variant)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".so.tmp", dir=out.parent)
    os.close(fd)
    cmd = build_command(variant, Path(tmp))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            raise NativeBuildError(
                f"building the refimpl C twin ({variant}) failed: {' '.join(cmd)}: "
                + (err[0] if err else f"exit {proc.returncode}")
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
