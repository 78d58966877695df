"""EngineBase: the optional parts of the Engine protocol have safe defaults, and the
capabilities follow from what a subclass really implements (never claimed without the method)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import memcycle.engines as engines
import numpy as np
import pytest
from memcycle.engines import Capabilities, Engine, EngineBase, EngineConfig, EngineError
from memcycle.engines.registry import make_engine
from memcycle.runner import run_one


class Minimal(EngineBase):
    """Only what an engine must do: open, insert, search, count, close."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.rows: dict[int, np.ndarray] = {}

    def open(self, dimension: int, metric: str = "l2") -> None:
        self.rows = {}

    def insert(
        self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]] | None = None
    ) -> None:
        self.rows.update(zip(ids.tolist(), vectors, strict=True))

    def search(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), np.inf)

    def count(self) -> int:
        return len(self.rows)

    def close(self) -> None:
        self.rows = {}


class WithDelete(Minimal):
    def delete(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            self.rows.pop(i, None)


def test_memcycle_engines_exports_the_public_names() -> None:
    assert set(engines.__all__) >= {"Engine", "EngineBase", "Capabilities", "EngineConfig"}
    assert engines.EngineError is EngineError


def test_a_minimal_adapter_is_an_engine_with_every_optional_capability_off() -> None:
    engine = Minimal()
    assert isinstance(engine, Engine)
    assert engine.ledger() is None
    assert not hasattr(engine, "get")  # absent, so get steps are skipped
    caps = engine.capabilities
    assert (caps.delete, caps.ledger, caps.reload) == (False, False, False)
    assert caps.clear == "recreate"  # the default clear is close(); the next open rebuilds


def test_delete_capability_is_on_only_when_delete_is_overridden() -> None:
    assert Minimal().capabilities.delete is False
    assert WithDelete().capabilities.delete is True
    with pytest.raises(NotImplementedError, match="cannot delete"):
        Minimal().delete(np.array([1]))


def test_reload_default_raises_and_ledger_or_reload_turn_on_when_overridden() -> None:
    with pytest.raises(NotImplementedError, match="cannot reload"):
        Minimal().reload()

    class Full(Minimal):
        def ledger(self) -> dict[str, Any] | None:
            return {"live_blocks": 0}

        def reload(self) -> None:
            pass

    caps = Full().capabilities
    assert caps.ledger is True and caps.reload is True


def test_default_clear_closes_and_close_twice_is_safe() -> None:
    engine = Minimal()
    engine.insert(np.array([1, 2]), np.zeros((2, 3), np.float32))
    engine.clear()
    assert engine.count() == 0
    engine.close()
    engine.close()


def test_an_adapter_with_only_clear_gets_close_from_it_and_a_native_clear() -> None:
    class OwnClear(EngineBase):
        metrics = ("l2", "ip")
        metadata_filter = True
        note = "resets in place"

        def __init__(self) -> None:
            self.n = 0

        def open(self, dimension: int, metric: str = "l2") -> None:
            pass

        def insert(self, ids: np.ndarray, vectors: np.ndarray, metadata: Any = None) -> None:
            self.n += len(ids)

        def search(self, queries: np.ndarray, k: int, filter: Any = None) -> Any:
            return None

        def count(self) -> int:
            return self.n

        def clear(self) -> None:
            self.n = 0

    engine = OwnClear()
    engine.insert(np.arange(3), np.zeros((3, 2), np.float32))
    engine.close()
    assert engine.count() == 0
    caps = engine.capabilities
    assert caps.clear == "native" and caps.metadata_filter is True
    assert caps.metrics == ("l2", "ip") and caps.note == "resets in place"
    assert engine.name == "OwnClear"  # no name given: the class name


def test_an_adapter_missing_a_required_method_cannot_be_built() -> None:
    class NoSearch(EngineBase):
        def open(self, dimension: int, metric: str = "l2") -> None:
            pass

        def insert(self, ids: np.ndarray, vectors: np.ndarray, metadata: Any = None) -> None:
            pass

        def count(self) -> int:
            return 0

    with pytest.raises(TypeError, match=r"NoSearch must implement search, clear or close"):
        NoSearch()


def test_declared_capabilities_that_claim_a_missing_method_are_refused() -> None:
    class Liar(Minimal):
        capabilities = Capabilities(delete=True, reload=True)

    with pytest.raises(TypeError, match=r"claims delete, reload but .* delete\(\), reload\(\)"):
        Liar()

    class Honest(WithDelete):
        capabilities = Capabilities(delete=True, note="declared by hand")

    assert Honest().capabilities.note == "declared by hand"
    assert Honest.name == "Minimal"  # inherited from the adapter it extends


def test_the_registry_reports_a_broken_subclass_as_an_engine_error(tmp_path: Path) -> None:
    module = tmp_path / "broken_adapter.py"
    module.write_text(
        "from memcycle.engines import EngineBase\n"
        "class Broken(EngineBase):\n"
        "    pass\n"
        "def make(config):\n"
        "    return Broken()\n",
        encoding="utf-8",
    )
    from memcycle.child import _resolve_spec

    with pytest.raises(EngineError, match="failed: TypeError: Broken must implement open"):
        make_engine(_resolve_spec(f"{module}:make"))


ADAPTER = '''
import numpy as np
from memcycle.engines import EngineBase

class Rows(EngineBase):
    """Exact search over a dict; no delete, no get: those steps must be skipped."""
    name = "rows"

    def __init__(self, config):
        self.rows = {}

    def open(self, dimension, metric="l2"):
        self.rows = {}

    def insert(self, ids, vectors, metadata=None):
        self.rows.update(zip(ids.tolist(), np.asarray(vectors, np.float32)))

    def search(self, queries, k, filter=None):
        ids = np.array(list(self.rows), dtype=np.int64)
        x = np.stack(list(self.rows.values()))
        d = ((queries[:, None, :] - x[None]) ** 2).sum(-1)
        top = np.argsort(d, axis=1)[:, :k]
        return ids[top], np.take_along_axis(d, top, 1).astype(np.float32)

    def count(self):
        return len(self.rows)

    def close(self):
        self.rows = {}

def make(config):
    return Rows(config)
'''

SCENARIO = """
name = "base-defaults"
dimension = 8
seed = 3
[[cycle]]
repeat = 2
steps = [
  { op = "insert", count = 200 },
  { op = "get", count = 5 },
  { op = "delete", count = 10 },
  { op = "search", queries = 5, k = 5, min_recall = 1.0 },
  { op = "clear" },
]
"""


def test_in_a_run_missing_get_and_delete_steps_are_skipped_and_the_rest_is_judged(
    tmp_path: Path,
) -> None:
    (tmp_path / "rows_adapter.py").write_text(ADAPTER, encoding="utf-8")
    scenario = tmp_path / "base-defaults.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    record = run_one(
        scenario, engine=f"{tmp_path / 'rows_adapter.py'}:make", memray=False, timeout=120
    )
    skipped = {(s.cycle, s.op): s.skipped for s in record.steps if s.skipped}
    assert skipped == {
        (1, "get"): "rows has no get()",
        (1, "delete"): "rows has no delete (capabilities.delete = False)",
        (2, "get"): "rows has no get()",
        (2, "delete"): "rows has no delete (capabilities.delete = False)",
    }
    searches = [s for s in record.steps if s.op == "search"]
    assert [s.recall for s in searches] == [1.0, 1.0]  # what ran was judged
    assert record.capabilities["delete"] is False and record.capabilities["clear"] == "recreate"
    assert not [f for f in record.findings if f.verdict not in ("clean", "skipped")]
    assert record.allocator == "native"
