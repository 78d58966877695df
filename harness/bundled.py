"""Where memcycle's bundled files are: found through `importlib.resources`, never the cwd.

The cycle tables ship as the `memcycle.scenarios` package and the example adapter as
`memcycle.examples`, in a wheel and in an editable checkout alike, so a user's own `scenarios/`
or `examples/` folder never changes what memcycle loads.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _package_dir(package: str) -> Path:
    root = files(package)
    path = Path(str(root))
    if not path.is_dir():  # a zip import: memcycle needs real files (children read them)
        raise RuntimeError(f"{package} is not installed as a directory ({root!r})")
    return path


def scenarios_dir() -> Path:
    """The bundled scenarios: `*.toml` (the suite), `faults/` (the fault scenarios), SCHEMA.md."""
    return _package_dir("memcycle.scenarios")


def fault_scenarios_dir() -> Path:
    return scenarios_dir() / "faults"


def examples_dir() -> Path:
    """The example adapter (`memcycle.examples.my_engine`) and its scenarios."""
    return _package_dir("memcycle.examples")


def bundled_scenario(name: str) -> Path | None:
    """The bundled scenario a name means, as `memcycle list` shows it (relative to the bundle,
    with or without `.toml`: `repeated-clear-insert`, `faults/flat-buffer-leak.toml`), or None.
    Only a name that is not a path on disk gets here: the user's own files always win."""
    root = scenarios_dir().resolve()
    for candidate in (root / name, root / f"{name}.toml"):
        try:
            if candidate.resolve().is_relative_to(root) and candidate.exists():
                return candidate
        except OSError:  # a name too long for the file system, a loop of links
            return None
    return None


def scenario_path(raw: str | Path) -> Path:
    """A scenario argument as given when it exists on disk, else the bundled scenario of that
    name, else the argument unchanged (the loader then says it does not exist)."""
    p = Path(raw)
    if path_exists(p):
        return p
    return bundled_scenario(str(raw)) or p


def path_exists(p: Path) -> bool:
    """`Path.exists`, False (not an OSError) for a name the file system cannot even look up
    (too long, a loop of links)."""
    try:
        return p.exists()
    except OSError:
        return False
