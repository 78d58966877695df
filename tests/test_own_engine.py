"""A user's own engine: `--engine package.module:factory` loads the example adapter everywhere.

The adapter's behaviour (recall, delete, filter, clear) is checked with the
peers in test_peer_adapters.py; here: the spec resolves (also in a fresh
interpreter that does not have the working directory on sys.path, like the
`memcycle` console script), the example keeps the protocol's types, and a bad
spec gives an EngineError that says what is wrong.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from memcycle.engines.base import Engine, EngineConfig, EngineError
from memcycle.engines.registry import load_factory, make_engine

ROOT = Path(__file__).resolve().parents[1]
SPEC = "examples.my_engine:make_engine"
# through the registry, as the harness loads it (pytest does not put the repo root on sys.path)
example = sys.modules[load_factory(SPEC).__module__]
MyEngine, BruteForceIndex = example.MyEngine, example.BruteForceIndex


def test_spec_builds_the_example_adapter() -> None:
    engine = make_engine(SPEC, EngineConfig(options={"anything": 1}))
    assert isinstance(engine, MyEngine) and isinstance(engine, Engine)
    assert engine.name == "my-engine"


def test_spec_resolves_in_a_fresh_isolated_interpreter_started_in_the_repo_root() -> None:
    # -I drops the working directory from sys.path, as a console script does
    code = (
        "import numpy as np; from memcycle.engines.registry import make_engine; "
        f"e = make_engine({SPEC!r}); e.insert(np.arange(1, 4), np.eye(3, dtype=np.float32)); "
        "print(type(e).__module__, e.count())"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["examples.my_engine", "3"]


def test_a_missing_module_outside_the_repo_root_is_an_engine_error(tmp_path: Path) -> None:
    code = (
        "from memcycle.engines.registry import make_engine\n"
        "from memcycle.engines.base import EngineError\n"
        "try:\n"
        f"    make_engine({SPEC!r})\n"
        "except EngineError as exc:\n"
        "    print('EngineError:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "EngineError: cannot import 'examples.my_engine'" in out.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("examples.no_such_module:make_engine", "cannot import 'examples.no_such_module'"),
        ("examples.my_engine:no_such_factory", "has no factory 'no_such_factory'"),
        ("examples.my_engine", "unknown engine"),
        ("examples.my_engine:BruteForceIndex", "failed: TypeError"),
        ("builtins:str", "lacks open, insert, search, clear, close"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        make_engine(spec, EngineConfig())


def test_example_keeps_the_protocol_types() -> None:
    engine = make_engine(SPEC)
    ids = np.array([7, 3, 9], dtype=np.int64)
    engine.open(4, "l2")
    engine.insert(ids, np.eye(3, 4, dtype=np.float32), [{"tag": 1}, {"tag": 2}, None])
    found, dists = engine.search(np.eye(2, 4, dtype=np.float32), 5)
    assert found.dtype == np.int64 and dists.dtype == np.float32
    assert found.shape == dists.shape == (2, 5)
    assert found[:, 0].tolist() == [7, 3] and dists[:, 0].tolist() == [0.0, 0.0]
    assert (found[:, 3:] == -1).all() and np.isposinf(dists[:, 3:]).all()
    only, _ = engine.search(np.eye(1, 4, dtype=np.float32), 5, {"tag": 2})
    assert only[0].tolist() == [3, -1, -1, -1, -1]


def test_example_refuses_duplicates_without_changing_anything() -> None:
    index = BruteForceIndex(2, "l2")
    index.add(np.array([1, 2]), np.ones((2, 2), np.float32), None)
    with pytest.raises(ValueError, match="duplicate"):
        index.add(np.array([3, 2]), np.zeros((2, 2), np.float32), None)
    assert index.size == 2 and sorted(index.rows) == [1, 2]


def test_example_swap_remove_keeps_rows_consistent() -> None:
    engine = make_engine(SPEC)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    ids = np.arange(100, 300, dtype=np.int64)
    engine.insert(ids, x)
    engine.delete(ids[::2])
    assert engine.count() == 100
    found, dists = engine.search(x[1::2], 1)  # every survivor finds itself
    assert found[:, 0].tolist() == ids[1::2].tolist()
    assert np.allclose(dists[:, 0], 0.0, atol=1e-4)


def test_the_docs_show_the_example_verbatim() -> None:
    """README.md ("Test your own engine") embeds the tested file itself."""
    doc = (ROOT / "README.md").read_text(encoding="utf-8")
    source = (ROOT / "examples" / "my_engine.py").read_text(encoding="utf-8")
    assert f"```python\n{source}```" in doc


EVERY_OP = """
name = "own-engine-every-op"
dimension = 12
seed = 11
[[cycle]]
repeat = 2
steps = [
  { op = "open" },
  { op = "insert", count = 500, batch = 200, metadata = true },
  { op = "search", queries = 10, k = 10, min_recall = 1.0 },
  { op = "search", queries = 10, k = 10, min_recall = 1.0, filter = { tag = 3 } },
  { op = "get", count = 20 },
  { op = "delete", fraction = 0.3 },
  { op = "insert", count = 100, reuse_deleted = true },
  { op = "search", queries = 10, k = 10, min_recall = 1.0 },
  { op = "clear" },
]
[[cycle]]
dimension = 6
steps = [ { op = "insert", count = 50 }, { op = "destroy" }, { op = "search", queries = 5, k = 3 } ]
"""


@pytest.mark.parametrize("spec", [SPEC, f"{ROOT / 'examples' / 'my_engine.py'}:make_engine"])
def test_the_harness_runs_every_op_on_the_example_and_finds_it_clean(
    tmp_path: Path, spec: str
) -> None:
    from memcycle.runner import run_one

    path = tmp_path / "every-op.toml"
    path.write_text(EVERY_OP, encoding="utf-8")
    record = run_one(path, engine=spec, memray=False, timeout=120)
    assert record.verdict == "clean", [f.summary for f in record.findings] or record.exit
    assert record.capabilities["clear"] == "recreate"
    assert not [s for s in record.steps if s.skipped]  # the example supports every op
    searches = [s for s in record.steps if s.op == "search" and s.recall is not None]
    assert len(searches) == 7 and all(s.recall == 1.0 for s in searches)  # exact engine
    assert [s.count for s in record.steps if s.op == "delete"] == [350, 350]
