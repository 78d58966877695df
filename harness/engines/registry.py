"""Resolve an engine name or a user's `package.module:factory` spec to an adapter.

Built-in adapters are imported lazily, so a missing optional peer package only
matters when that engine is asked for, and the error says which extra to install.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType

from .base import Engine, EngineConfig, EngineError

# name -> "module:factory"; each factory is `factory(config: EngineConfig) -> Engine`
BUILTIN: dict[str, str] = {
    "refimpl": "memcycle.engines.refimpl_adapter:make_refimpl",
    "refimpl-global": "memcycle.engines.refimpl_adapter:make_refimpl_global",
    "refimpl-c": "memcycle.engines.refimpl_c_adapter:make_refimpl_c",
    "refimpl-c-global": "memcycle.engines.refimpl_c_adapter:make_refimpl_c_global",
    "hnswlib": "memcycle.engines.hnswlib_adapter:make_hnswlib",
    "faiss": "memcycle.engines.faiss_adapter:make_faiss",
    "usearch": "memcycle.engines.usearch_adapter:make_usearch",
    "omendb": "memcycle.engines.omendb_adapter:make_omendb",
}

ENGINE_NAMES: tuple[str, ...] = tuple(BUILTIN)


def load_factory(spec: str) -> Callable[[EngineConfig], Engine]:
    """The factory behind a built-in name or a `package.module:factory` spec."""
    target = BUILTIN.get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise EngineError(
            f"unknown engine {spec!r}; expected one of {', '.join(ENGINE_NAMES)} "
            "or a 'package.module:factory' spec"
        )
    try:
        module = _import(module_name, user_spec=spec not in BUILTIN)
    except ImportError as exc:
        hint = (
            " (install the peers extra: pip install 'memcycle[peers]')" if spec in BUILTIN else ""
        )
        raise EngineError(
            f"cannot import {module_name!r} for engine {spec!r}: {exc}{hint}"
        ) from exc
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise EngineError(
            f"module {module_name!r} has no factory {attr!r} (engine {spec!r})"
        ) from None
    if not callable(factory):
        raise EngineError(f"{target!r} is not callable (engine {spec!r})")
    return factory


def _import(module_name: str, *, user_spec: bool) -> ModuleType:
    """Import a module; a user's spec also resolves against the working directory.

    `python -m` puts the working directory on sys.path, a console script or a
    pytest run does not; so `--engine examples.my_engine:make_engine` started
    from the repository root finds `examples/` in every one of them (and in the
    harness's child process, which starts in the same directory).
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        cwd = os.getcwd()
        if not user_spec or exc.name != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)  # appended: never shadows an installed package
        return importlib.import_module(module_name)


def make_engine(spec: str, config: EngineConfig | None = None) -> Engine:
    """Build an adapter; anything but an Engine-shaped object is an EngineError."""
    factory = load_factory(spec)
    try:
        engine = factory(config or EngineConfig())
    except EngineError:
        raise
    except Exception as exc:  # a user's factory that breaks: say which one and how
        raise EngineError(
            f"factory for engine {spec!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    missing = [
        m for m in ("open", "insert", "search", "count", "clear", "close") if not hasattr(engine, m)
    ]
    if missing:
        raise EngineError(
            f"engine {spec!r} lacks {', '.join(missing)} (see harness.engines.base.Engine)"
        )
    return engine


def check_engine_spec(spec: str) -> None:
    """Fail fast (EngineError, one line) on an engine spec that names nothing: an unknown
    built-in name, a malformed spec, a module or file that does not exist, a factory the
    module does not have. A module that exists but cannot be imported (a dependency of it is
    missing, it raises on import) passes: that is the run's `error`, with the traceback, from
    the child, and never a reason to refuse the other runs."""
    if spec in BUILTIN:
        return
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise EngineError(
            f"unknown engine {spec!r}; expected one of {', '.join(ENGINE_NAMES)} "
            "or a 'package.module:factory' spec"
        )
    if module_name.endswith(".py"):
        if not os.path.isfile(module_name):
            raise EngineError(
                f"engine module file {module_name!r} does not exist (engine {spec!r})"
            )
        return
    try:
        load_factory(spec)
    except EngineError as exc:
        cause = exc.__cause__
        if isinstance(cause, ModuleNotFoundError) and cause.name is not None:
            parts = module_name.split(".")
            named = {".".join(parts[: i + 1]) for i in range(len(parts))}
            if cause.name in named:
                raise  # the spec's own module (or a package of it) does not exist: a typo
            return  # the module exists, a dependency of it is missing: the run's error
        if isinstance(cause, ImportError):
            return
        raise  # no such factory in the module, or not callable
    except Exception:
        return  # importing the module raised: the child reports it as the run's error
