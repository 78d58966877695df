"""The only memray reader: per-cycle engine-attributed live bytes, peaks, top stacks.

The capture is an ALL_ALLOCATIONS file, so it is replayed record by record:
an allocation adds its address to a live map, a free removes it. At each
marker (see `harness.recording`) the bytes still live that were allocated
from engine code are read off. "Engine code" means an allocation whose Python
stack has a frame under one of the run's source roots (the refimpl package,
the adapter module, the engine module). Allocator caches do not matter here:
a block freed back to glibc is gone from the live map even if RSS keeps it.

Flamegraphs are rendered by memray's own reporter (`python -m memray flamegraph`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .recording import MARKER_FUNCTION, marker_index

_FREE_KINDS = {1, 5, 15}  # memray AllocatorType: PYMALLOC_FREE, FREE, MUNMAP


@dataclass
class MemrayAnalysis:
    capture: str
    records: int = 0
    peak_bytes: int = 0  # highest total live bytes (markers excluded)
    engine_peak_bytes: int = 0
    markers: list[dict[str, Any]] = field(default_factory=list)
    # engine stacks still live at the end, without what the engine's imports allocated
    top_live: list[dict[str, Any]] = field(default_factory=list)
    # engine stacks whose live bytes grew from the baseline marker to the end: the leak's origin
    top_growth: list[dict[str, Any]] = field(default_factory=list)
    baseline_index: int | None = None
    error: str | None = None
    # the capture has native frames (--native): stacks then name C/C++ frames, innermost first
    native_traces: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_IMPORT_FRAMES = "<frozen importlib."
_NUMBA_DISPATCHER = os.path.join("numba", "core", "dispatcher.py")
_NUMBA_COMPILE = ("_compile_for_args", "compile")


def _loads_code(fn: str, filename: str) -> bool:
    """A frame of code loading: an import, or Numba compiling / loading a cached overload.

    What these allocate (module code, bytecode, LLVM modules, typing registries) is a
    one-off cost of the first use of a module or of a kernel signature, reached through
    engine frames but not data the engine's cycles keep alive; a kernel first called in
    cycle 3 must not look like 100 KiB per cycle of engine growth.
    """
    return filename.startswith(_IMPORT_FRAMES) or (
        fn in _NUMBA_COMPILE and filename.endswith(_NUMBA_DISPATCHER)
    )


class _Attribution:
    """Caches, per memray stack id, whether an allocation is the engine's own.

    Engine-attributed (`is_engine`: what per-cycle engine bytes, leak growth and the
    top stacks count) means some frame lies under an engine root and no frame is
    code loading (`_loads_code`): module code and bytecode of NumPy, Numba or faiss,
    imported from the engine's `import` lines, and Numba's compiled kernels pass
    through engine frames, but they are the cost of loading code once, not what
    the engine's cycles keep alive.
    """

    def __init__(self, roots: list[str]) -> None:
        self.dirs = tuple(r.rstrip(os.sep) + os.sep for r in roots if Path(r).is_dir())
        self.files = {r for r in roots if not Path(r).is_dir()}
        self.cache: dict[int, bool] = {}
        self.frames: dict[int, list[str]] = {}

    def _is_root(self, filename: str) -> bool:
        return filename in self.files or filename.startswith(self.dirs)

    def is_engine(self, rec: Any) -> bool:
        sid = rec.stack_id
        hit = self.cache.get(sid)
        if hit is None:
            try:
                stack = rec.stack_trace()  # innermost frame first
            except Exception:
                stack = []
            hit = any(self._is_root(f) for _fn, f, _ln in stack) and not any(
                _loads_code(fn, f) for fn, f, _ln in stack
            )
            self.cache[sid] = hit
            if hit:
                self.frames[sid] = [f"{fn} ({f}:{ln})" for fn, f, ln in stack[:12]]
        return hit

    def native_key(self, rec: Any) -> tuple[int, int]:
        """With native traces, a stack is the Python stack plus the native one: the C/C++
        frames (memray's symbolisation, `hybrid_stack_trace`) name where the engine allocated."""
        key = (rec.stack_id, rec.native_stack_id)
        if key not in self.frames:
            try:
                stack = rec.hybrid_stack_trace(max_stacks=16)
            except Exception:
                stack = []
            self.frames[key] = [f"{fn} ({f}:{ln})" for fn, f, ln in stack] or self.frames.get(
                rec.stack_id, []
            )
        return key


def _is_marker(rec: Any) -> int | None:
    idx = marker_index(rec.size)
    if idx is None:
        return None
    try:
        stack = rec.stack_trace(max_stacks=1)
    except Exception:
        return None
    return idx if stack and stack[0][0] == MARKER_FUNCTION else None


def _by_stack(live: dict[int, tuple[int, Any, bool]]) -> dict[Any, list[int]]:
    """Engine-attributed live bytes and blocks per stack id."""
    by_stack: dict[Any, list[int]] = {}
    for size, sid, is_eng in live.values():
        if is_eng:
            entry = by_stack.setdefault(sid, [0, 0])
            entry[0] += size
            entry[1] += 1
    return by_stack


def analyze(
    capture: str | Path, roots: list[str], baseline_index: int | None = None
) -> MemrayAnalysis:
    """Replay a capture; never raises (a broken capture is reported in `error`).

    `baseline_index` names the marker (usually the end of the warm-up cycle) from
    which per-stack growth is measured for `top_growth`.
    """
    out = MemrayAnalysis(capture=str(capture), baseline_index=baseline_index)
    baseline: dict[int, list[int]] | None = None
    try:
        from memray import FileReader
    except ImportError as exc:  # pragma: no cover - memray is a dependency
        out.error = f"memray not importable: {exc}"
        return out
    attr = _Attribution(roots)
    live: dict[int, tuple[int, Any, bool]] = {}  # address -> (size, stack key, engine)
    total = engine = engine_blocks = 0
    seg_peak = seg_engine_peak = 0
    try:
        reader = FileReader(str(capture))
        native = out.native_traces = bool(getattr(reader.metadata, "has_native_traces", False))
        for rec in reader.get_allocation_records():
            out.records += 1
            if int(rec.allocator) in _FREE_KINDS:
                old = live.pop(rec.address, None)
                if old is not None:
                    total -= old[0]
                    if old[2]:
                        engine -= old[0]
                        engine_blocks -= 1
                continue
            idx = _is_marker(rec) if rec.size >= 1_000_000 else None
            if idx is not None:
                out.markers.append(
                    {
                        "index": idx,
                        "engine_live_bytes": engine,
                        "engine_live_blocks": engine_blocks,
                        "total_live_bytes": total,
                        "peak_bytes": seg_peak,
                        "engine_peak_bytes": seg_engine_peak,
                    }
                )
                seg_peak, seg_engine_peak = total, engine
                if idx == baseline_index:
                    baseline = _by_stack(live)
                # the marker's own free follows; it must not match a live block
                live.pop(rec.address, None)
                continue
            is_eng = attr.is_engine(rec)
            prev = live.pop(rec.address, None)
            if prev is not None:  # realloc in place or a missed free
                total -= prev[0]
                if prev[2]:
                    engine -= prev[0]
                    engine_blocks -= 1
            key = attr.native_key(rec) if native and is_eng else rec.stack_id
            live[rec.address] = (rec.size, key, is_eng)
            total += rec.size
            if is_eng:
                engine += rec.size
                engine_blocks += 1
            if total > seg_peak:
                seg_peak = total
                out.peak_bytes = max(out.peak_bytes, total)
            if engine > seg_engine_peak:
                seg_engine_peak = engine
                out.engine_peak_bytes = max(out.engine_peak_bytes, engine)
        reader.close()
    except Exception as exc:  # truncated capture after a hard crash, etc.
        out.error = f"{type(exc).__name__}: {exc}"
    by_stack = _by_stack(live)
    for sid, (nbytes, count) in sorted(by_stack.items(), key=lambda kv: -kv[1][0])[:10]:
        out.top_live.append({"bytes": nbytes, "blocks": count, "stack": attr.frames.get(sid, [])})
    if baseline is not None:
        growth = []
        for sid, (nbytes, count) in by_stack.items():
            before = baseline.get(sid, [0, 0])
            if nbytes > before[0]:
                growth.append((nbytes - before[0], count - before[1], sid))
        for nbytes, count, sid in sorted(growth, reverse=True)[:10]:
            out.top_growth.append(
                {"bytes": nbytes, "blocks": count, "stack": attr.frames.get(sid, [])}
            )
    return out


def flamegraphs(capture: str | Path, out_dir: Path, timeout: float = 120.0) -> dict[str, str]:
    """Render memray's flamegraph and leaks flamegraph HTML (both at once); name -> path."""
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for name, extra in (("flamegraph", []), ("leaks_flamegraph", ["--leaks"])):
        target = out_dir / f"{name.replace('_', '-')}.html"
        cmd = [sys.executable, "-m", "memray", "flamegraph", *extra, "-f", "-o", str(target)]
        try:
            procs[name] = (
                subprocess.Popen(
                    [*cmd, str(capture)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                ),
                target,
            )
        except OSError:
            continue
    made: dict[str, str] = {}
    for name, (proc, target) in procs.items():
        try:
            if proc.wait(timeout=timeout) == 0 and target.exists():
                made[name] = str(target)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return made
