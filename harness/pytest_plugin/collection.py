"""Collection: which .toml files are cycle tables (`wants`), and each one as a `ScenarioFile`
whose items are its engine x allocator runs (a table that does not load is one erroring item)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .items import InvalidScenarioItem, ScenarioItem
from .options import combinations


def _named(config: pytest.Config) -> list[Path]:
    """The collection roots: command-line paths, else testpaths (or the current directory),
    plus the memcycle_paths entries `_add_memcycle_paths` appended."""
    base = config.invocation_params.dir
    return [Path(base, str(a).split("::", 1)[0]).resolve() for a in config.args]


def _looks_like_scenario(path: Path) -> bool:
    """A cycle table has [[cycle]] tables; a file that does not parse is one only when its text
    says `[[cycle]]` (then its ScenarioError shows as an erroring item)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "[[cycle]]" in text
    return isinstance(data.get("cycle"), list)


def wants(path: Path, config: pytest.Config) -> bool:
    """Whether a .toml file found during collection is a scenario to collect."""
    path = path.resolve()
    roots = _named(config)
    if path in roots:
        return True  # named directly: a parse error is worth showing
    for root in sorted((r for r in roots if r in path.parents), key=lambda r: -len(r.parts)):
        if "faults" in path.relative_to(root).parts[:-1]:
            return False  # the nearest root decides: faults/ only when named
        break
    return _looks_like_scenario(path)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".toml" or not wants(file_path, parent.config):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    """One cycle table; its items are the engine x allocator runs."""

    def collect(self) -> Iterator[pytest.Item]:
        from memcycle.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(self.path)
        except ScenarioError as exc:
            # one erroring item, not a collection error: the rest of the suite still runs
            yield InvalidScenarioItem.from_parent(self, name=self.path.name, message=str(exc))
            return
        for engine, allocator in combinations(self.config, scenario.default_engine()):
            item = ScenarioItem.from_parent(
                self,
                name=f"{scenario.name}[{engine}-{allocator}]",
                engine=engine,
                allocator=allocator,
                scenario_name=scenario.name,
                expected=scenario.expected(allocator),
            )
            item.add_marker(
                pytest.mark.memcycle(
                    scenario=scenario.name,
                    engine=engine,
                    allocator=allocator,
                    tags=tuple(scenario.tags),
                )
            )
            for tag in ("slow", "soak"):
                if tag in scenario.tags:
                    item.add_marker(getattr(pytest.mark, tag))
            item.extra_keyword_matches.update(scenario.tags)  # -k <tag>
            fail_on_skip = self.config.getoption("memcycle_fail_on_skip", False)
            if scenario.engines and engine not in scenario.engines and not fail_on_skip:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"scenario {scenario.name} is written for {', '.join(scenario.engines)}"
                    )
                )
            yield item
