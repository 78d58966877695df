"""The peer benchmark's parts (benchmarks/peerbench): data sets and engine classes.

The end-to-end run is in test_peer_benchmark_script.py; here each part alone, fast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from peers import PEERS_EXTRA, need_peer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from peerbench import datasets  # noqa: E402
from peerbench.engines import ENGINES  # noqa: E402


@pytest.mark.parametrize("name", ["own", "lowrank"])
def test_a_generated_data_set_is_the_same_every_time_with_exact_ground_truth(name: str) -> None:
    a = datasets.load(name, 400, 12, 16)
    b = datasets.load(name, 400, 12, 16)
    assert a.x.shape == (400, 16) and a.q.shape == (12, 16) and a.x.dtype == np.float32
    assert np.array_equal(a.x, b.x) and np.array_equal(a.gt, b.gt)
    d = ((a.q[:, None, :].astype(np.float64) - a.x[None, :, :]) ** 2).sum(-1)
    assert np.array_equal(a.gt[:, 0], d.argmin(axis=1))


def _variance_in_12_directions(x: np.ndarray, around: int) -> float:
    """Share of the variance of `around`'s 200 nearest rows held by their top 12 directions."""
    near = x[np.linalg.norm(x - x[around], axis=1).argsort()[:200]]
    sv = np.linalg.svd(near - near.mean(0), compute_uv=False)
    return float((sv[:12] ** 2).sum() / (sv**2).sum())


def test_the_low_rank_mixture_has_a_low_intrinsic_dimension_unlike_the_own_set() -> None:
    low = datasets.load("lowrank", 2000, 10, 64).x
    own = datasets.load("own", 2000, 10, 64).x
    assert all(_variance_in_12_directions(low, i) > 0.9 for i in range(5))
    assert all(_variance_in_12_directions(own, i) < 0.7 for i in range(5))


def test_digits_come_from_the_installed_package_with_held_out_queries() -> None:
    need_peer("sklearn")  # scikit-learn ships the digits: the peers extra
    ds = datasets.load("digits", 0, 100, 0)
    assert ds.x.shape == (1697, 64) and ds.q.shape == (100, 64)
    assert ds.gt.shape == (100, 10) and ds.gt.max() < ds.x.shape[0]


def test_an_unknown_data_set_is_refused_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown data set 'sift'; expected one of own"):
        datasets.load("sift", 10, 2, 4)


def test_the_command_refuses_an_unknown_engine_or_data_set_with_a_message() -> None:
    script = ROOT / "benchmarks" / "peers.py"
    for flag, value, message in (
        ("--engines", "annoy", "unknown engine 'annoy'"),
        ("--datasets", "sift", "unknown data set 'sift'"),
    ):
        proc = subprocess.run(
            [sys.executable, str(script), flag, value], capture_output=True, text=True
        )
        assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("name", ["hnswlib", "faiss", "usearch", "glass"])
def test_each_peer_engine_finds_its_own_rows(name: str) -> None:
    cls = ENGINES[name]
    if not cls.available():
        pytest.skip(f"{name} needs the peers extra: {PEERS_EXTRA}")
    x = np.random.default_rng(3).normal(size=(300, 16)).astype(np.float32)
    eng = cls(16)
    eng.build(x, 1)
    eng.set_ef(32)
    found = eng.batch(x[:5])
    assert found.shape == (5, 10) and found.dtype == np.int64
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert eng.one(x[7])[0] == 7
