"""The built-in `omendb` adapter on the installed release (the peers extra installs the newest):
what it detects and declares, and the Engine contract at small sizes."""

from __future__ import annotations

import numpy as np
import pytest
from peers import need_peer

omendb = need_peer("omendb")

from memcycle.engines.base import EngineConfig, EngineError  # noqa: E402
from memcycle.engines.registry import make_engine  # noqa: E402
from memcycle.oracle import Oracle  # noqa: E402


def _engine(**options: object):  # type: ignore[no-untyped-def]
    return make_engine("omendb", EngineConfig(options=options or None))


def _data(n: int = 300, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(1, n + 1, dtype=np.int64), rng.standard_normal((n, dim)).astype(np.float32)


def test_capabilities_follow_what_the_installed_release_has() -> None:
    e = _engine()
    probe = omendb.open(":memory:", dimensions=2)
    caps = e.capabilities
    assert caps.compact == hasattr(probe, "compact")
    assert caps.flush == hasattr(probe, "flush")
    assert caps.delete_filter == (
        hasattr(probe, "delete_by_filter") or hasattr(probe, "delete_where")
    )
    assert caps.clear == "recreate" and caps.upsert and caps.delete and caps.metadata_filter
    assert caps.reopen is False and caps.duplicate_ids == "last-wins"
    assert omendb.__version__ in caps.note
    assert _engine(mode="persistent").capabilities.reopen is True
    e.close()


def test_a_bad_option_is_refused_naming_the_choices() -> None:
    with pytest.raises(EngineError, match="unknown omendb option"):
        _engine(buffer_size=3)
    with pytest.raises(EngineError, match="mode='disk'"):
        _engine(mode="disk")


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_search_finds_the_exact_neighbours_in_the_harness_distance(metric: str) -> None:
    ids, x = _data()
    e = _engine()
    e.open(16, metric)
    e.insert(ids, x)
    o = Oracle(metric)
    o.insert(ids, x)
    q = x[:20] + 0.01
    got_i, got_d = e.search(q, 5)
    check = o.check_search(q, 5, got_i, None, got_d)
    assert check["recall"] >= 0.9 and not check["protocol"]
    true_i, true_d = o.ground_truth(q, 5)
    same = got_i[:, 0] == true_i[:, 0]
    np.testing.assert_allclose(got_d[same, 0], true_d[same, 0], rtol=1e-3, atol=1e-3)
    e.close()


def test_delete_get_clear_and_a_new_dimension() -> None:
    ids, x = _data()
    e = _engine()
    e.open(16)
    e.insert(ids, x, [{"tag": int(i % 4)} for i in ids])
    e.delete(ids[:10])
    assert e.count() == 290
    rows = e.get(ids[8:12])
    assert rows[0] is None and rows[1] is None
    np.testing.assert_allclose(rows[2], x[10], atol=1e-6)
    e.delete_filter({"tag": 1})
    assert e.count() == 290 - sum(1 for i in ids[10:] if i % 4 == 1)
    e.clear()
    assert e.count() == 0
    e.open(32)
    ids2, x2 = _data(50, 32, seed=1)
    e.insert(ids2, x2)
    assert e.count() == 50
    assert e.search(x2[:1], 1)[0][0, 0] == 1
    e.close()


def test_a_persistent_store_keeps_its_rows_across_reopen_and_is_removed_on_close() -> None:
    ids, x = _data(100)
    e = _engine(mode="persistent")
    e.open(16)
    e.insert(ids, x)
    e.delete(ids[:5])
    tmp = e.tmp
    assert tmp is not None and tmp.exists()
    e.reopen()
    assert e.count() == 95 and e.get(ids[:1]) == [None]
    np.testing.assert_allclose(e.get(ids[5:6])[0], x[5], atol=1e-6)
    e.close()
    assert not tmp.exists()
