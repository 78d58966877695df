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
