"""Resolve an engine name or a user's `package.module:factory` spec to an adapter.

Built-in adapters are imported lazily, so a missing optional peer package only
matters when that engine is asked for, and the error says which extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
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
    module does not define. The module is found, never executed: the user's code runs only in
    the child, under the timeout (an import that sleeps, raises or calls os._exit must not take
    memcycle with it). A module that exists but cannot be imported is the run's `error`, with
    the traceback, from the child."""
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
        origin: str | None = module_name
    else:
        origin = _module_origin(module_name, spec)
    if origin is not None and origin.endswith(".py") and not _defines(origin, attr):
        raise EngineError(
            f"engine {spec!r}: {origin} has no factory {attr!r} (no top-level def, class, "
            "assignment or import binds it); expected the factory function the spec names"
        )


def _module_origin(module_name: str, spec: str) -> str | None:
    """The file a module would be imported from, found without running it (only the packages
    above it are imported, as `importlib.util.find_spec` must); None when it has no source."""
    parts = module_name.split(".")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:  # the child resolves a user's module against the working directory too
        sys.path.append(cwd)
    try:
        return _find_origin(module_name, spec, parts)
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _find_origin(module_name: str, spec: str, parts: list[str]) -> str | None:
    try:
        found = importlib.util.find_spec(module_name)
    except ModuleNotFoundError as exc:
        named = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if exc.name in named:
            raise EngineError(
                f"cannot import {module_name!r} for engine {spec!r}: no module named {exc.name!r}"
            ) from None
        return None  # a parent package imports something missing: the child reports it
    except Exception:
        return None  # a parent package raised on import: the child reports it
    if found is None:
        raise EngineError(
            f"cannot import {module_name!r} for engine {spec!r}: no module named {module_name!r}"
        )
    return found.origin


def _defines(path: str, name: str) -> bool:
    """Might the module provide `name`? No only when its source surely does not: no top-level
    def, class, assignment or import binds it, it has no `__getattr__` or star import, every
    module it imports exists, and nothing else runs at its top level. Anything the source alone
    cannot settle (a missing dependency, a raise, a conditional definition) is the child's to
    report, with the real error."""
    import ast

    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return True  # unreadable or a syntax error: the child reports it as the run's error
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name in (name, "__getattr__"):
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(t)):
                    return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*" or (alias.asname or alias.name.split(".")[0]) == name:
                    return True
            tops = (
                [a.name.split(".")[0] for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module.split(".")[0]]
                if node.module and not node.level
                else []
            )
            if any(importlib.util.find_spec(top) is None for top in tops):
                return True  # a dependency is missing: the import error comes first
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        else:
            return True  # code that runs at import (a raise, an if): leave it to the child
    return False
