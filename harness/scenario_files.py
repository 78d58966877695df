"""Find scenario files and load one: the file-system side of cycle tables.

Apart from the parsing so that a caller with text in hand (the pytest plugin's inline
scenarios, the fuzzer) never touches the disk, and discovery's rule stays in one place: a
plain directory search leaves out the `faults/` and engine-specific sub-directories.
"""

from __future__ import annotations

from pathlib import Path

from .scenario_model import Scenario, ScenarioError
from .scenario_parse import parse_scenario

# bundled sub-directories a plain `memcycle run` leaves out: fault tables, one engine's own
OPTIONAL_SUBDIRS: tuple[str, ...] = ("faults", "omendb")


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; a missing file is a ScenarioError too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{p}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "a scenario file must be UTF-8 TOML"
        ) from None
    return parse_scenario(text, str(p))


def find_scenarios(paths: list[str | Path], *, include_faults: bool = False) -> list[Path]:
    """Scenario files under the given files/directories, sorted; directories are searched
    recursively, skipping a `faults/` or engine-specific (`omendb/`) sub-directory unless asked
    for (or named directly): the default suite stays the one every engine can run."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*.toml")):
                rel = f.relative_to(p).parts
                if not include_faults and set(rel[:-1]) & set(OPTIONAL_SUBDIRS):
                    continue
                found.append(f)
        elif p.exists():
            found.append(p)
        else:
            raise ScenarioError(f"{p}: no such scenario file or directory")
    return found
