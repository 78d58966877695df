"""Memory-per-cycle plots as PNG bytes (matplotlib, Agg backend, no display needed).

One figure per run, three panels: allocator live bytes, memray engine live bytes
and RSS at each cycle's end; the cycle where the run's first finding showed is
marked. An allocator's quarantine of freed blocks (the checked allocator) is drawn
as its own series in the memray panel, never added to the engine's line. The
HTML report embeds the PNG as a base64 data: URI.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

from memcycle.records import RunRecord

from .common import engine_live_per_cycle, quarantine_per_cycle

_Series = Callable[[RunRecord], dict[int, int | None]]


def _attr(name: str) -> _Series:
    return lambda run: {c.cycle: getattr(c, name) for c in run.cycles}


_PANELS: tuple[tuple[str, _Series], ...] = (
    ("allocator live bytes", _attr("live_bytes")),
    ("engine live bytes (memray)", engine_live_per_cycle),
    ("RSS", _attr("rss_bytes")),
)
_ENGINE_PANEL = 1
_QUARANTINE = "quarantine (freed, kept poisoned)"


def _has_data(run: RunRecord) -> bool:
    return any(v is not None for _, series in _PANELS for v in series(run).values())


def _scale(values: list[float]) -> tuple[float, str]:
    top = max((abs(v) for v in values), default=0.0)
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if top >= div:
            return float(div), unit
    return 1.0, "B"


def memory_plot_png(run: RunRecord) -> bytes | None:
    """The run's memory-per-cycle figure, or None when no cycle has a measurement."""
    if not _has_data(run):
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    # fixed margins: constrained/tight layout would cost more than drawing the figure
    fig = Figure(figsize=(9.0, 2.4), dpi=90)
    axes = fig.subplots(1, len(_PANELS))
    fig.subplots_adjust(left=0.065, right=0.98, bottom=0.2, top=0.88, wspace=0.32)
    fail_cycle = next((f.cycle for f in run.findings if f.cycle is not None), None)
    quarantine = quarantine_per_cycle(run)
    for i, (ax, (title, series)) in enumerate(zip(axes, _PANELS, strict=True)):
        values = series(run)
        pts = [(c.cycle, values.get(c.cycle)) for c in run.cycles]
        pts = [(x, v) for x, v in pts if v is not None]
        extra = [(x, v) for x, v in sorted(quarantine.items())] if i == _ENGINE_PANEL else []
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("cycle", fontsize=8)
        if not pts and not extra:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        div, unit = _scale([float(v) for _, v in pts + extra])
        xs = sorted({x for x, _ in pts + extra})
        ys = [float(v) / div for _, v in pts]
        if pts:
            ax.plot(
                [x for x, _ in pts],
                ys,
                marker="o",
                markersize=3,
                linewidth=1.2,
                color="#2b6cb0",
                label="engine live, quarantine excluded" if extra else None,
            )
        if extra:
            qs = [float(v) / div for _, v in extra]
            ys = ys + qs
            ax.plot(
                [x for x, _ in extra],
                qs,
                marker="s",
                markersize=3,
                linewidth=1.0,
                linestyle="--",
                color="#b7791f",
                label=_QUARANTINE,
            )
            ax.legend(fontsize=6, loc="upper left", frameon=False)
        ax.set_ylabel(unit, fontsize=8)
        if len(xs) <= 12:
            ax.set_xticks(xs)
        if max(ys) == min(ys) == 0.0:
            ax.set_ylim(0.0, 1.0)  # all zero: a plain baseline, not a 0-0.05 B scale
        else:
            ax.set_ylim(bottom=min(0.0, *ys))
        ax.grid(True, linewidth=0.3)
        if fail_cycle is not None:
            ax.axvline(fail_cycle, color="#c53030", linewidth=1, linestyle="--")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
