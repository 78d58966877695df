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
import threading
from collections.abc import Callable

from memcycle.records import RunRecord

from .common import (
    QUARANTINE_NOTE,
    engine_live_per_cycle,
    quarantine_note,
    quarantine_per_cycle,
)

_Series = Callable[[RunRecord], dict[int, int | None]]
Points = list[tuple[int, int]]

ENGINE_LINE = "engine live, quarantine excluded"
ENGINE_WITH_CACHE_LINE = "engine live, quarantine included (not verified apart)"
QUARANTINE_LINE = "quarantine (freed, kept poisoned)"


def _attr(name: str) -> _Series:
    return lambda run: {c.cycle: getattr(c, name) for c in run.cycles}


_PANELS: tuple[tuple[str, _Series], ...] = (
    ("allocator live bytes", _attr("live_bytes")),
    ("engine live bytes (memray)", engine_live_per_cycle),
    ("RSS", _attr("rss_bytes")),
)
_ENGINE_PANEL = 1


def panels(run: RunRecord) -> list[tuple[str, dict[str, Points]]]:
    """What each panel draws: its title and its named series of (cycle, bytes) points.
    The memray panel gets the quarantine as a series of its own when there is one."""
    quarantine = sorted(quarantine_per_cycle(run).items())
    out = []
    for i, (title, series) in enumerate(_PANELS):
        values = series(run)
        pts = [(c.cycle, v) for c in run.cycles if (v := values.get(c.cycle)) is not None]
        lines: dict[str, Points] = {}
        if i == _ENGINE_PANEL and quarantine:
            if pts:
                apart = quarantine_note(run) == QUARANTINE_NOTE
                lines[ENGINE_LINE if apart else ENGINE_WITH_CACHE_LINE] = pts
            lines[QUARANTINE_LINE] = quarantine
        elif pts:
            lines[title] = pts
        out.append((title, lines))
    return out


def _scale(values: list[float]) -> tuple[float, str]:
    top = max((abs(v) for v in values), default=0.0)
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if top >= div:
            return float(div), unit
    return 1.0, "B"


_STYLE = {
    QUARANTINE_LINE: {"marker": "s", "linestyle": "--", "linewidth": 1.0, "color": "#b7791f"},
}
_DEFAULT_STYLE = {"marker": "o", "linestyle": "-", "linewidth": 1.2, "color": "#2b6cb0"}


def prefetch_matplotlib() -> threading.Thread:
    """Import matplotlib (and load its font list) in a daemon thread while the children run.

    That import is most of what writing the HTML report costs (1-3 s on a loaded 2-core
    box) and the parent only waits on its children meanwhile; the first plot then finds the
    modules loaded. A failed import is left for `memory_plot_png` to meet and report."""
    thread = threading.Thread(target=_import_matplotlib, name="memcycle-prefetch", daemon=True)
    thread.start()
    return thread


def _import_matplotlib() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.backends.backend_agg
        import matplotlib.figure
        from matplotlib import font_manager

        font_manager.findfont("DejaVu Sans")
    except Exception:  # memory_plot_png imports it again and says what broke
        pass


def memory_plot_png(run: RunRecord) -> bytes | None:
    """The run's memory-per-cycle figure, or None when no cycle has a measurement."""
    drawn = panels(run)
    if not any(lines for _, lines in drawn):
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    # fixed margins: constrained/tight layout would cost more than drawing the figure
    fig = Figure(figsize=(9.0, 2.4), dpi=90)
    axes = fig.subplots(1, len(drawn))
    fig.subplots_adjust(left=0.065, right=0.98, bottom=0.2, top=0.88, wspace=0.32)
    fail_cycle = next((f.cycle for f in run.findings if f.cycle is not None), None)
    for ax, (title, lines) in zip(axes, drawn, strict=True):
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("cycle", fontsize=8)
        if not lines:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        every = [float(v) for pts in lines.values() for _, v in pts]
        div, unit = _scale(every)
        ys = [v / div for v in every]
        for name, pts in lines.items():
            style = _STYLE.get(name, _DEFAULT_STYLE)
            ax.plot(
                [x for x, _ in pts],
                [float(v) / div for _, v in pts],
                markersize=3,
                label=name if len(lines) > 1 else None,
                **style,
            )
        if len(lines) > 1:
            ax.legend(fontsize=6, loc="upper left", frameon=False)
        ax.set_ylabel(unit, fontsize=8)
        xs = sorted({x for pts in lines.values() for x, _ in pts})
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
