"""A leak the engine holds until close is named at the reset points, not lost at the end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from memcycle.runner import run_one

ENGINE = """
import numpy as np
from memcycle.examples.my_engine import MyEngine


class HoldsUntilClose(MyEngine):
    name = "holds-until-close"

    def __init__(self, config):
        super().__init__(config)
        self.kept = []

    def clear(self):
        self.index = None  # the next open builds a new index
        hoard_a_buffer_per_clear(self.kept)

    def close(self):
        self.index = None
        self.kept.clear()  # freed only at the very end


def hoard_a_buffer_per_clear(kept):
    kept.append(np.ones(64 * 1024, dtype=np.float64))  # 512 KiB per cycle


def make(config):
    return HoldsUntilClose(config)
"""

SCENARIO = """
name = "holds-until-close"
dimension = 8
[[cycle]]
repeat = 6
steps = [{ op = "insert", count = 50 }, { op = "clear" }]
"""


def test_memory_held_until_close_is_named_by_its_growth_stack(tmp_path: Path) -> None:
    (tmp_path / "holder.py").write_text(ENGINE, encoding="utf-8")
    (tmp_path / "t.toml").write_text(SCENARIO, encoding="utf-8")
    rec = run_one(tmp_path / "t.toml", f"{tmp_path / 'holder.py'}:make", flamegraphs="none")
    assert rec.verdict == "leak", [f.summary for f in rec.findings]
    growth = rec.memray["top_growth"]
    assert growth, "no growth stack: it was measured after the final close"
    assert any("hoard_a_buffer_per_clear" in frame for frame in growth[0]["stack"]), growth[0]
    assert growth[0]["bytes"] >= 4 * 512 * 1024 * 0.9
    assert np.isfinite(growth[0]["bytes"])
