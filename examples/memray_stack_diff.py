"""Which stacks hold the bytes that grew between two cycle markers of a memray capture.

    python -m examples.memray_stack_diff reports/<run>/<run-key>/capture.bin 2 22

A `memcycle run` capture carries one marker per reset step and one per cycle
end (`RunRecord.memray["markers"]` lists them with cycle and op). This replays
the capture the way `harness.analysis` does and prints, biggest first, the
stacks whose live bytes differ between marker A and marker B: where a per-cycle
growth was allocated. docs/peers.md shows it on faiss.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

from memcycle.analysis import _FREE_KINDS, _is_marker


def live_at(capture: str, wanted: set[int]) -> dict[int, dict[int, tuple[int, Any]]]:
    """address -> (size, record) of every live allocation at each wanted marker."""
    from memray import FileReader

    live: dict[int, tuple[int, Any]] = {}
    snaps: dict[int, dict[int, tuple[int, Any]]] = {}
    reader = FileReader(capture)
    for rec in reader.get_allocation_records():
        if int(rec.allocator) in _FREE_KINDS:
            live.pop(rec.address, None)
            continue
        idx = _is_marker(rec) if rec.size >= 1_000_000 else None
        if idx is not None:
            if idx in wanted:
                snaps[idx] = dict(live)
            live.pop(rec.address, None)
            continue
        live[rec.address] = (rec.size, rec)
    reader.close()
    return snaps


def by_stack(snap: dict[int, tuple[int, Any]]) -> dict[int, tuple[int, int, Any]]:
    out: dict[int, list[Any]] = defaultdict(lambda: [0, 0, None])
    for size, rec in snap.values():
        entry = out[rec.stack_id]
        entry[0] += size
        entry[1] += 1
        entry[2] = rec
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("a", type=int, help="earlier marker index")
    ap.add_argument("b", type=int, help="later marker index")
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args(argv)
    snaps = live_at(args.capture, {args.a, args.b})
    sa, sb = by_stack(snaps[args.a]), by_stack(snaps[args.b])
    rows = []
    for sid in set(sa) | set(sb):
        bytes_a, n_a, rec_a = sa.get(sid, (0, 0, None))
        bytes_b, n_b, rec_b = sb.get(sid, (0, 0, None))
        if bytes_b != bytes_a:
            rows.append((bytes_b - bytes_a, n_b - n_a, rec_b or rec_a))
    rows.sort(key=lambda r: -abs(r[0]))
    for delta, blocks, rec in rows[: args.top]:
        print(f"{delta:+,} bytes in {blocks:+,} blocks")
        for fn, path, line in rec.stack_trace()[:6]:
            print(f"    {fn} ({path.rsplit('/', 1)[-1]}:{line})")


if __name__ == "__main__":
    main()
