"""Flamegraphs from a memray capture, by memray's own reporter (`python -m memray flamegraph
--no-web`: the page carries its scripts inline, so it works offline)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

_EXTERNAL_ASSET = re.compile(
    r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE
)


def external_assets(html: str) -> list[str]:
    """Script and stylesheet tags of a page that load from the network (a CDN)."""
    return [m.group(0) for m in _EXTERNAL_ASSET.finditer(html)]


def _render(capture: str | Path, target: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "memray", "flamegraph", *extra, "-f", "-o", str(target)]
    return subprocess.Popen(
        [*cmd, str(capture)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def flamegraphs(capture: str | Path, out_dir: Path, timeout: float = 120.0) -> dict[str, str]:
    """Render memray's flamegraph and leaks flamegraph HTML (both at once); name -> path.

    `--no-web` makes memray inline its scripts and styles (they ship in its wheel), so
    the pages work offline (air-gapped CI, an artifact viewer). A memray that does not
    know `--no-web` gets a second try without it; a page that then loads anything from
    the network is returned as `<name>_online`, so the report can say it needs the network.
    """
    jobs = {
        name: (out_dir / f"{name.replace('_', '-')}.html", extra)
        for name, extra in (("flamegraph", []), ("leaks_flamegraph", ["--leaks"]))
    }
    made: dict[str, str] = {}
    retry = list(jobs)
    for flags in (["--no-web"], []):
        procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for name in retry:
            target, extra = jobs[name]
            try:
                procs[name] = (_render(capture, target, [*extra, *flags]), target)
            except OSError:
                continue
        retry = []
        for name, (proc, target) in procs.items():
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                continue
            if code == 0 and target.exists():
                online = external_assets(target.read_text("utf-8", errors="replace"))
                made[f"{name}_online" if online else name] = str(target)
            elif code == 2 and flags:  # argparse: this memray has no --no-web
                retry.append(name)
        if not retry:
            break
    return made
