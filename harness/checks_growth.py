"""When a per-cycle series counts as a leak: the growth rules and the growth judgement.

Apart from the rest of the judging because the child reads the same rules (child_measure imports
`GROWTH_RULES` at its top to decide when a rising series earns confirmation repeats): this module
imports only NumPy, so the child's import stays cheap, and the parent's judgement
(`checks_leaks`) and the child's confirmation agree on one set of thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GrowthRule:
    """When a per-cycle series counts as a leak."""

    source: str
    slope_min: float  # bytes per cycle
    rise_min: float  # later cycles minus early cycles, bytes
    frac_min: float = 0.6  # share of pairwise slopes that are positive
    unit: str = "bytes"


GROWTH_RULES: dict[str, GrowthRule] = {
    "memray": GrowthRule("memray engine-attributed live bytes", 4 * 1024, 32 * 1024),
    "tracemalloc": GrowthRule("tracemalloc traced bytes", 16 * 1024, 128 * 1024),
    "rss": GrowthRule("RSS", 1 << 20, 16 << 20, 0.75),
    # Numba NRT: allocations made by jitted code and not freed (alloc - free counters)
    "nrt": GrowthRule("Numba NRT live allocations", 0.5, 4, 0.6, unit="allocations"),
    # pymalloc blocks in use (sys.getallocatedblocks, after a collection): Python objects
    # that memray without trace_python_allocators sees only as 1 MiB arenas
    "py_blocks": GrowthRule("Python allocated blocks", 1000, 3000, 0.6, unit="blocks"),
}
# the types named as evidence of a Python-object leak: the top few that grow per cycle
TOP_GROWING_TYPES = 5
MIN_GROWTH_POINTS = 4


def growth(values: list[float], rule: GrowthRule) -> dict[str, Any] | None:
    """Judge a series sampled once per cycle at the same point (after a reset).

    The first cycles are warm-up (JIT compilation, BLAS buffers, allocator
    arenas) and are dropped; the rest must rise steadily: Theil-Sen slope,
    the median of the last third above the median of the first third, and
    most pairwise slopes positive. Returns the evidence when it is a leak.
    """
    n = len(values)
    if n < MIN_GROWTH_POINTS:
        return None
    warm = 1 if n < 10 else n // 10
    v = np.asarray(values[warm:], dtype=np.float64)
    m = len(v)
    if m < MIN_GROWTH_POINTS - 1:
        return None
    i, j = np.triu_indices(m, k=1)
    slopes = (v[j] - v[i]) / (j - i)
    slope = float(np.median(slopes))
    frac = float(np.mean(slopes > 0))
    third = max(1, m // 3)
    rise = float(np.median(v[-third:]) - np.median(v[:third]))
    if slope >= rule.slope_min and rise >= rule.rise_min and frac >= rule.frac_min:
        return {
            "source": rule.source,
            "slope_per_cycle": slope,
            "unit": rule.unit,
            "slope_bytes_per_cycle": slope if rule.unit == "bytes" else None,
            "rise_bytes": rise,
            "positive_slope_share": frac,
            "warmup_cycles": warm,
            "values": [int(x) for x in values],
        }
    return None
