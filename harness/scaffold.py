"""`memcycle init [DIR]`: the files a new user needs to test their own engine with memcycle.

The templates ship as `memcycle.templates` (read with importlib.resources). The adapter wraps a
small working NumPy stand-in, so the first `memcycle run` of the starter table gives a real
clean verdict before the user has written anything; its docstring and `TODO(memcycle)`
markers say it must be replaced. Nothing is ever overwritten: every target is checked before
the first file is written.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

ADAPTER_SPEC = "memcycle_adapter:make_engine"
SCENARIO_DIR = "memcycle_scenarios"


@dataclass(frozen=True)
class Template:
    source: str  # file name in memcycle.templates
    target: str  # path relative to the project folder
    what: str  # one line for the listing


TEMPLATES: tuple[Template, ...] = (
    Template(
        "adapter.py.tmpl",
        "memcycle_adapter.py",
        "adapter skeleton over a NumPy stand-in: replace it with your engine (TODO(memcycle))",
    ),
    Template(
        "scenario.toml.tmpl",
        f"{SCENARIO_DIR}/lifecycle.toml",
        "starter cycle table (runs on the adapter above)",
    ),
    Template(
        "conftest.py.tmpl",
        f"{SCENARIO_DIR}/conftest.py",
        "pytest entry: python -m pytest collects the tables in memcycle_scenarios/",
    ),
    Template("MEMCYCLE.md.tmpl", "MEMCYCLE.md", "the commands: run, pytest, baseline, gate, CI"),
)


class ScaffoldError(Exception):
    """`memcycle init` cannot write its files (one line, exit status 2)."""


def engine_name(project: Path, name: str | None = None) -> str:
    """The adapter's display name: `name`, else the project folder's name, made safe."""
    raw = name if name is not None else project.resolve().name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.")
    if not safe:
        if name is not None:
            raise ScaffoldError(f"--name {name!r}: expected letters, digits, '.', '_' or '-'")
        safe = "my-engine"
    return safe


def render(template: Template, name: str) -> str:
    text = files("memcycle.templates").joinpath(template.source).read_text(encoding="utf-8")
    return text.replace("@@NAME@@", name)


def scaffold(project: Path, name: str | None = None) -> list[tuple[Path, str]]:
    """Write every template into `project` (created if needed); returns (path, what) written.

    Refuses, writing nothing, when any target already exists."""
    if project.exists() and not project.is_dir():
        raise ScaffoldError(f"{project} exists and is not a folder")
    display = engine_name(project, name)
    targets = [(project / t.target, t) for t in TEMPLATES]
    for path, _t in targets:
        if path.exists() or path.is_symlink():
            raise ScaffoldError(
                f"{path} already exists; nothing written (memcycle init never overwrites: "
                "move it away or pick another folder)"
            )
        for parent in path.parents:
            if parent == project:
                break
            if parent.exists() and not parent.is_dir():
                raise ScaffoldError(f"{parent} exists and is not a folder; nothing written")
    texts = [(path, t, render(t, display)) for path, t in targets]  # all read before writing
    written: list[tuple[Path, str]] = []
    try:
        for path, t, text in texts:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as fh:  # "x": never replaces a file
                fh.write(text)
            written.append((path, t.what))
    except OSError as exc:
        for path, _what in written:
            with contextlib.suppress(OSError):
                os.remove(path)
        raise ScaffoldError(
            f"cannot write {exc.filename or project}: {exc.strerror or exc}"
        ) from None
    return written


def next_steps(project: Path) -> list[str]:
    """What to type after `memcycle init`, from the folder the user is in."""
    cd = [] if project.resolve() == Path.cwd().resolve() else [f"cd {project}"]
    return [
        *cd,
        f"memcycle run {SCENARIO_DIR}/ --engine {ADAPTER_SPEC} --out reports/latest",
        "python -m pytest --strict-markers",
        f"memcycle gate reports/latest --baseline {SCENARIO_DIR}/baseline.json --update",
    ]
