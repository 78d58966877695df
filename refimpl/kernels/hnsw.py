"""HNSW kernels over flat arrays (the layout of hnswlib, in Numba).

A graph travels as one value, `Graph` (a named tuple of its arrays, as
pynndescent passes its trees), and a searcher's preallocated heaps as another,
`Heaps`; neighbour selection has its own scratch, `Prune`. Numba compiles named
tuples of arrays to a struct passed by value, so reading `g.vecs` in a loop
costs what reading a local array does.

The entry points called from Python (`search_batch`, `search_chunk`, `insert_serial` and the
parallel insert's steps, `insert_serial_while` to `batch_commit`) take the same fields as a
plain tuple, `tuple(graph)`, and name them inside: Numba's dispatcher types a plain tuple of
arrays in about half the time of a named tuple (7 vs 13 µs a call, measured on
the shared 2-core box), which a one-query-at-a-time search pays on every call.

Arrays of a `Graph` (all owned by `refimpl.hnsw.HNSWIndex` as allocator blocks):
  vecs      float32 (cap, dim)         the vectors, one row per internal node id
  l0        int32   (cap, 1 + 2M)      layer-0 links, count in column 0
  upper     int32   (rows, 1 + M)      links of layers >= 1, only for nodes that have them
  offsets   int32   (cap,)             row of `upper` holding a node's layer 1 (-1 if none)
  levels    int8    (cap,)             top layer of each node
  labels    int64   (cap,)             caller's label of each node
  visited   uint16  (vrows, cap)       visited tags, one row per concurrent searcher
  state     int64   (STATE_TAGS + vrows,)  count, entry point, max level, then each row's tag
  metric    int                        0 l2 (squared), else 1 - dot

Searches and insertions walk on 8-bit codes of the rows when the graph has them (a `Space`
over `codes`; kernels/codes.py: `codes` uint8 (cap, dim), its per-row `norms` and its `scale`,
also allocator blocks) and re-rank what they found on `vecs`: a search's distances are exact,
and so are those neighbour selection compares. The kernels taking a `walk` compile once per
kind of walk (the type of that argument: None for the exact rows), so neither walk pays a
branch for the other in its inner loop (a runtime `if coded` there measured ~25 % slower).

Search and insertion follow hnswlib: greedy descent through the upper layers,
`ef`-bounded best-first search in a layer, `getNeighborsByHeuristic2` for
neighbour selection, layer 0 keeping 2M links. Kernels release the GIL so
segments can be built from several Python threads at once.

Why one module of ~700 lines: insertion is a search (`search_layer`) followed by neighbour
selection over the same layout, and every kernel here reads the `Graph` fields above; kept
together, one file holds the whole layout contract that `refimpl.hnsw` allocates for.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from .codes import code_dist, prepare_query
from .heap import (
    key_id,
    max_push,
    max_replace_top,
    min_pop,
    min_push,
    pack,
    unpack_sorted,
)
from .intrinsics import fetch_add, prefetch

ST_COUNT = 0
ST_ENTRY = 1
ST_MAXLEVEL = 2
ST_UPPER_USED = 3
STATE_TAGS = 4  # state[STATE_TAGS + r] is the current tag of visited row r

_TAG_WRAP = 65536
# Level 0 and visited row 0 passed as this int64, not the literal 0: Numba compiles a kernel
# again for a literal argument, and the literal copies of the search kernels next to the
# ones insertion and the threaded search use cost ~4 s of a cold start.
_ZERO = np.int64(0)
_NO_BOUND = np.uint64(0xFFFFFFFFFFFFFFFF)  # above every packed key
_GROUPS_PER_TAKE = 8  # reverse-link groups a worker takes at once (each is a few µs)


class Graph(NamedTuple):
    """One HNSW graph's arrays and metric (layout in the module docstring)."""

    vecs: np.ndarray
    l0: np.ndarray
    upper: np.ndarray
    offsets: np.ndarray
    levels: np.ndarray
    labels: np.ndarray
    visited: np.ndarray
    state: np.ndarray
    metric: int


class Space(NamedTuple):
    """What a walk measures distances on: the exact rows (`rows` is `vecs`, `qv` the query;
    every insertion) or the 8-bit codes (`rows` is `codes`, `qv` / `qb` the query prepared
    by `codes.prepare_query`, `norms` the codes' per-row term). `space_dist` picks the
    distance by the type of `rows`, so each kind compiles to its own kernels."""

    qv: np.ndarray  # float32 (dim,)
    qb: np.float32
    norms: np.ndarray  # float32 (cap,), or (0,) for the exact rows
    rows: np.ndarray  # float32 or uint8 (cap, dim)


class Heaps(NamedTuple):
    """One searcher's heaps: candidates (min-heap, any size up to the graph) and the
    best `ef` (max-heap of packed keys, then unpacked sorted into rd / ri)."""

    ck: np.ndarray  # uint64 (cap + 1,)
    rk: np.ndarray  # uint64 (ef + 1,)
    rd: np.ndarray  # float32 (ef + 1,)
    ri: np.ndarray  # int32 (ef + 1,)


class Prune(NamedTuple):
    """Scratch of neighbour selection: the selection of a new node (sd / si) and the
    re-pruning of a full link list (td / ti candidates, sd2 / si2 the kept)."""

    sd: np.ndarray  # float32 (2m + 1,)
    si: np.ndarray  # int32 (2m + 1,)
    td: np.ndarray  # float32 (2m + 2,)
    ti: np.ndarray  # int32 (2m + 2,)
    sd2: np.ndarray  # float32 (2m + 1,)
    si2: np.ndarray  # int32 (2m + 1,)


@njit(cache=True, nogil=True)
def new_heaps(cap: int, ef: int) -> Heaps:
    """Heaps for searches with `ef` results in a graph of `cap` nodes."""
    return Heaps(
        np.empty(cap + 1, np.uint64),
        np.empty(ef + 1, np.uint64),
        np.empty(ef + 1, np.float32),
        np.empty(ef + 1, np.int32),
    )


@njit(cache=True, nogil=True)
def new_prune(m: int) -> Prune:
    """Selection scratch for link lists of up to 2m entries."""
    return Prune(
        np.empty(2 * m + 1, np.float32),
        np.empty(2 * m + 1, np.int32),
        np.empty(2 * m + 2, np.float32),
        np.empty(2 * m + 2, np.int32),
        np.empty(2 * m + 1, np.float32),
        np.empty(2 * m + 1, np.int32),
    )


@njit(cache=True, fastmath=True, nogil=True)
def dist_q(q: np.ndarray, vecs: np.ndarray, j: int, metric: int) -> np.float32:
    """Distance from query row `q` to node `j` (l2: squared; ip/cosine: 1 - dot)."""
    acc = np.float32(0.0)
    if metric == 0:
        for t in range(q.shape[0]):
            d = q[t] - vecs[j, t]
            acc += d * d
        return acc
    for t in range(q.shape[0]):
        acc += q[t] * vecs[j, t]
    return np.float32(1.0) - acc


def space_dist(qv, qb, norms, rows, j: int, metric: int) -> np.float32:
    """The walk's distance to node j in its `Space` (fields unpacked). This body runs without
    the JIT (NUMBA_DISABLE_JIT); compiled kernels get the typed overload below."""
    if rows.dtype == np.uint8:
        return code_dist(qv, qb, norms, rows, j)
    return dist_q(qv, rows, j, metric)


@overload(space_dist, inline="always", jit_options={"fastmath": True, "nogil": True})
def _space_dist_typed(qv, qb, norms, rows, j, metric):  # type: ignore[no-untyped-def]
    """One distance per kind of rows, chosen when the kernel is compiled."""
    if isinstance(rows, types.Array) and rows.dtype == types.uint8:
        return lambda qv, qb, norms, rows, j, metric: code_dist(qv, qb, norms, rows, j)
    return lambda qv, qb, norms, rows, j, metric: dist_q(qv, rows, j, metric)


def space_for(q, walk, vecs, metric: int, qx) -> Space:
    """The space a walk for row q measures in: the exact rows when `walk` is None, else the
    codes of `walk` = (codes, norms, scale), q prepared into the scratch `qx`. This body
    runs without the JIT; compiled kernels get the overload below, chosen by the type of
    `walk`, so a kernel compiles only the kind of walk it is called with."""
    if walk is None:
        return Space(q, np.float32(0.0), qx[:0], vecs)
    codes, norms, scale = walk
    return Space(qx, prepare_query(q, scale, metric, qx), norms, codes)


@overload(space_for, inline="always", jit_options={"fastmath": True, "nogil": True})
def _space_for_typed(q, walk, vecs, metric, qx):  # type: ignore[no-untyped-def]
    """One space per type of `walk`, chosen at compile time."""
    if isinstance(walk, types.NoneType):
        return lambda q, walk, vecs, metric, qx: Space(q, np.float32(0.0), qx[:0], vecs)

    def coded(q, walk, vecs, metric, qx):  # type: ignore[no-untyped-def]
        codes, norms, scale = walk
        return Space(qx, prepare_query(q, scale, metric, qx), norms, codes)

    return coded


@njit(cache=True, nogil=True, inline="always")
def links_of(g: Graph, node: int, level: int):
    """The link row of `node` at `level`: [count, id, id, ...]."""
    return row_of(g.l0, g.upper, g.offsets, node, level)


@njit(cache=True, nogil=True, inline="always")
def row_of(l0, upper, offsets, node: int, level: int):
    """`links_of` on the three link arrays, for the hot loops: each read of a named
    tuple's array field takes a reference (an atomic add and subtract), which a loop
    that expands hundreds of nodes per search pays on every node (measured: ~10 % of
    a 1-thread build); the loops take the arrays out once and call this."""
    if level == 0:
        return l0[node]
    return upper[offsets[node] + level - 1]


@njit(cache=True, nogil=True, inline="always")
def next_tag(g: Graph, vrow: int) -> int:
    """A fresh visited tag for row `vrow`; clears the row only when the uint16 tag wraps."""
    t = g.state[STATE_TAGS + vrow] + 1
    if t >= _TAG_WRAP:
        g.visited[vrow, :] = 0
        t = 1
    g.state[STATE_TAGS + vrow] = t
    return t


@njit(cache=True, fastmath=True, nogil=True)
def greedy_descent(g: Graph, sp: Space, ep: int, ep_d: np.float32, top: int, bottom: int):
    """Greedy (ef=1) walk from layer `top` down to layer `bottom + 1`."""
    metric = g.metric
    qv, qb, norms, rows = sp
    l0 = g.l0
    upper = g.upper
    offsets = g.offsets
    cur = ep
    cur_d = ep_d
    for level in range(top, bottom, -1):
        changed = True
        while changed:
            changed = False
            row = row_of(l0, upper, offsets, cur, level)
            for j in range(1, row[0] + 1):
                c = row[j]
                d = space_dist(qv, qb, norms, rows, c, metric)
                if d < cur_d:
                    cur_d = d
                    cur = c
                    changed = True
    return cur, cur_d


@njit(cache=True, inline="always")
def _allowed(label: int, deleted: np.ndarray, ndel: int) -> bool:
    """May `label` enter the results (not marked in `deleted`, which is indexed by label)?"""
    return label < 0 or label >= ndel or deleted[label] == 0


@njit(cache=True, fastmath=True, nogil=True)
def search_layer(
    g: Graph,
    sp: Space,
    ep: int,
    ep_d: np.float32,
    ef: int,
    level: int,
    deleted,
    vrow: int,
    h: Heaps,
) -> int:
    """Best-first search of one layer with visited row `vrow` (a fresh tag); the best
    `ef` land in the max-heap `h.rk` (packed keys, see `heap`), `h.ck` is the
    candidates' min-heap.

    Deleted labels (deleted[label] != 0) are traversed but never enter the
    results, as in hnswlib. Distances are measured in `sp` (the exact rows, or the codes).
    Returns the number of results.
    """
    tag = next_tag(g, vrow)
    qv, qb, norms, rows = sp
    line = 64 // rows.itemsize  # elements per 64-byte line of a row
    visited = g.visited
    labels = g.labels
    l0 = g.l0
    upper = g.upper
    offsets = g.offsets
    metric = g.metric
    ck = h.ck
    rk = h.rk
    ndel = deleted.shape[0]
    visited[vrow, ep] = tag
    key = pack(ep_d, ep)
    csize = min_push(ck, 0, key)
    rsize = 0
    if ndel == 0 or _allowed(labels[ep], deleted, ndel):
        rsize = max_push(rk, 0, key)
    lower = rk[0] if rsize > 0 else _NO_BOUND
    while csize > 0:
        top = ck[0]
        if top > lower and (rsize >= ef or ndel == 0):
            break
        csize = min_pop(ck, csize)
        c = key_id(top)
        if csize > 0 and level == 0:  # the links of the next candidate to expand
            prefetch(l0, key_id(ck[0]), 0)
        row = row_of(l0, upper, offsets, c, level)
        cnt = row[0]
        if cnt > 0:
            prefetch(visited, vrow, row[1])
            prefetch(rows, row[1], 0)
        for j in range(1, cnt + 1):
            n = row[j]
            if j < cnt:  # as hnswlib: fetch the next neighbour while this one is measured
                nxt = row[j + 1]
                prefetch(visited, vrow, nxt)
                for off in range(0, rows.shape[1], line):  # every 64-byte line of the row
                    prefetch(rows, nxt, off)
            if visited[vrow, n] == tag:
                continue
            visited[vrow, n] = tag
            key = pack(space_dist(qv, qb, norms, rows, n, metric), n)
            if rsize < ef or key < lower:
                csize = min_push(ck, csize, key)
                if ndel == 0 or _allowed(labels[n], deleted, ndel):  # labels only if needed
                    if rsize < ef:
                        rsize = max_push(rk, rsize, key)
                    else:
                        max_replace_top(rk, rsize, key)
                    lower = rk[0]
    return rsize


@njit(cache=True, fastmath=True, nogil=True)
def select_heuristic(g: Graph, cand_d, cand_i, n: int, m: int, out_d, out_i) -> int:
    """hnswlib's getNeighborsByHeuristic2 over candidates sorted by ascending distance.

    Keeps a candidate only if it is closer to the base than to every neighbour
    already kept; fewer than `m` candidates are all kept.
    """
    if n < m:
        for a in range(n):
            out_d[a] = cand_d[a]
            out_i[a] = cand_i[a]
        return n
    vecs = g.vecs
    metric = g.metric
    nsel = 0
    for a in range(n):
        if nsel >= m:
            break
        c = cand_i[a]
        cdist = cand_d[a]
        good = True
        for s in range(nsel):
            if dist_q(vecs[c], vecs, out_i[s], metric) < cdist:
                good = False
                break
        if good:
            out_d[nsel] = cdist
            out_i[nsel] = c
            nsel += 1
    return nsel


@njit(cache=True, nogil=True)
def _sort_small(d, ids, n: int) -> None:
    """Insertion sort of (d, ids)[:n] by ascending d (n <= 2M + 1)."""
    for a in range(1, n):
        kd = d[a]
        ki = ids[a]
        b = a - 1
        while b >= 0 and d[b] > kd:
            d[b + 1] = d[b]
            ids[b + 1] = ids[b]
            b -= 1
        d[b + 1] = kd
        ids[b + 1] = ki


@njit(cache=True, fastmath=True, nogil=True)
def add_link(
    g: Graph, node: int, new: int, d_new: np.float32, level: int, max_m: int, p: Prune
) -> None:
    """Add the reverse link node -> new; a full list is re-pruned with the heuristic."""
    row = links_of(g, node, level)
    cnt = row[0]
    for j in range(1, cnt + 1):
        if row[j] == new:
            return
    if cnt < max_m:
        row[cnt + 1] = new
        row[0] = cnt + 1
        return
    td = p.td
    ti = p.ti
    si2 = p.si2
    vecs = g.vecs
    metric = g.metric
    td[0] = d_new
    ti[0] = new
    base = vecs[node]
    for j in range(cnt):
        other = row[j + 1]
        ti[j + 1] = other
        td[j + 1] = dist_q(base, vecs, other, metric)
    _sort_small(td, ti, cnt + 1)
    nsel = select_heuristic(g, td, ti, cnt + 1, max_m, p.sd2, si2)
    for j in range(nsel):
        row[j + 1] = si2[j]
    row[0] = nsel


@njit(cache=True, nogil=True)
def _clear_links(g: Graph, i: int) -> None:
    """Empty every link row of node i (its rows, levels and offsets are written)."""
    g.l0[i, 0] = 0
    for lv in range(1, g.levels[i] + 1):
        g.upper[g.offsets[i] + lv - 1, 0] = 0


@njit(cache=True, nogil=True)
def insert_serial(parts, walk, start: int, end: int, m: int, ef_construction: int) -> None:
    """Entry point: `insert_range` on the graph whose fields are `parts` (`tuple(Graph)`)."""
    insert_range(Graph(*parts), walk, start, end, m, ef_construction)


@njit(cache=True, fastmath=True, nogil=True)
def insert_range(g: Graph, walk, start: int, end: int, m: int, ef_construction: int) -> None:
    """Insert nodes start..end-1 one after another (rows, levels, offsets already written).

    `walk` None: the searches measure on the exact rows. Else (codes, norms, scale), the
    rows' codes written too: each node's searches walk on the codes and what they find is
    re-ranked on the exact rows before neighbour selection (`space_for`, `_layer`)."""
    vecs = g.vecs
    state = g.state
    h = new_heaps(vecs.shape[0], ef_construction)
    p = new_prune(m)
    sd = p.sd
    si = p.si
    qx = np.empty(vecs.shape[1], np.float32)
    for i in range(start, end):
        q = vecs[i]
        sp = space_for(q, walk, vecs, g.metric, qx)
        top = np.int64(g.levels[i])  # int64 as the search passes: one greedy_descent compiled
        _clear_links(g, i)
        if state[ST_COUNT] == 0:
            state[ST_ENTRY] = i
            state[ST_MAXLEVEL] = top
            state[ST_COUNT] = 1
            continue
        qv, qb, norms, rows = sp
        ep = state[ST_ENTRY]
        max_level = state[ST_MAXLEVEL]
        ep_d = space_dist(qv, qb, norms, rows, ep, g.metric)
        ep, ep_d = greedy_descent(g, sp, ep, ep_d, max_level, top)
        for level in range(min(top, max_level), -1, -1):
            rsize = _layer(g, sp, q, ep, ef_construction, level, _ZERO, h)
            unpack_sorted(h.rk, rsize, h.rd, h.ri)
            nsel = select_heuristic(g, h.rd, h.ri, rsize, m, sd, si)
            row = links_of(g, i, level)
            for s in range(nsel):
                row[s + 1] = si[s]
            row[0] = nsel
            max_m = 2 * m if level == 0 else m
            for s in range(nsel):
                add_link(g, si[s], i, sd[s], level, max_m, p)
            ep = h.ri[0]
        if top > max_level:
            state[ST_ENTRY] = i
            state[ST_MAXLEVEL] = top
        state[ST_COUNT] += 1


@njit(cache=True, fastmath=True, nogil=True)
def exact_keys(rk, size: int, q, vecs, metric: int) -> None:
    """Rewrite keys rk[:size] with the exact distances from q (a coded walk's re-rank)."""
    for r in range(size):
        n = key_id(rk[r])
        rk[r] = pack(dist_q(q, vecs, n, metric), n)


def exact_found(rows, rk, size: int, q, vecs, metric: int) -> None:
    """After a walk in a space over `rows`: re-rank the keys it found on the exact rows when
    it walked on codes (nothing to do on the exact rows). Runs as is without the JIT;
    compiled kernels get the typed overload below."""
    if rows.dtype == np.uint8:
        exact_keys(rk, size, q, vecs, metric)


@overload(exact_found, inline="always", jit_options={"fastmath": True, "nogil": True})
def _exact_found_typed(rows, rk, size, q, vecs, metric):  # type: ignore[no-untyped-def]
    """The re-rank for a coded space, nothing for the exact one, chosen at compile time."""
    if isinstance(rows, types.Array) and rows.dtype == types.uint8:
        return lambda rows, rk, size, q, vecs, metric: exact_keys(rk, size, q, vecs, metric)
    return lambda rows, rk, size, q, vecs, metric: None


@njit(cache=True, fastmath=True, nogil=True)
def _layer(g: Graph, sp: Space, q, ep: int, ef: int, level: int, vrow: int, h: Heaps) -> int:
    """An insertion's search of one layer from `ep` in `sp` (no deletions), the keys it found
    exact distances from row q (re-ranked when `sp` is coded). Returns the number found."""
    qv, qb, norms, rows = sp
    ep_d = space_dist(qv, qb, norms, rows, ep, g.metric)
    rsize = search_layer(g, sp, ep, ep_d, ef, level, np.zeros(0, np.uint8), vrow, h)
    exact_found(rows, h.rk, rsize, q, g.vecs, g.metric)
    return rsize


@njit(cache=True, fastmath=True, nogil=True)
def _search_rows(
    g: Graph, walk, queries, lo: int, hi: int, k: int, ef: int, deleted, vrow: int, out_l, out_d
) -> None:
    """Search queries lo..hi-1 with visited row `vrow` (one searcher, its own heaps).

    `walk` None: the walk measures on the exact rows. Else (codes, norms, scale): it walks
    on the codes and the rows it found are re-ranked on the exact rows, so every distance
    returned is exact."""
    ef_eff = max(ef, k)
    h = new_heaps(g.vecs.shape[0], ef_eff)
    vecs = g.vecs
    qx = np.empty(vecs.shape[1], np.float32)
    for qi in range(lo, hi):
        rsize = 0
        if g.state[ST_COUNT] > 0:
            q = queries[qi]
            sp = space_for(q, walk, vecs, g.metric, qx)
            qv, qb, norms, rows = sp
            ep = g.state[ST_ENTRY]
            ep_d = space_dist(qv, qb, norms, rows, ep, g.metric)
            ep, ep_d = greedy_descent(g, sp, ep, ep_d, g.state[ST_MAXLEVEL], _ZERO)
            rsize = search_layer(g, sp, ep, ep_d, ef_eff, _ZERO, deleted, vrow, h)
            exact_found(rows, h.rk, rsize, q, vecs, g.metric)
            unpack_sorted(h.rk, rsize, h.rd, h.ri)
        _write_row(g, qi, rsize, k, h.rd, h.ri, out_l, out_d)


@njit(cache=True, nogil=True, inline="always")
def _write_row(g: Graph, qi: int, rsize: int, k: int, rd, ri, out_l, out_d) -> None:
    """Query qi's answer: the first k found (labels, distances), padded with -1 / inf."""
    labels = g.labels
    for j in range(k):
        if j < rsize:
            out_l[qi, j] = labels[ri[j]]
            out_d[qi, j] = rd[j]
        else:
            out_l[qi, j] = -1
            out_d[qi, j] = np.inf


@njit(cache=True, fastmath=True, nogil=True)
def search_batch(parts, walk, queries, k: int, ef: int, deleted, out_l, out_d) -> None:
    """Search every query on one thread (visited row 0); `parts` is `tuple(Graph)`, `walk`
    None or (codes, norms, scale) as in `_search_rows`."""
    n = queries.shape[0]
    _search_rows(Graph(*parts), walk, queries, _ZERO, n, k, ef, deleted, _ZERO, out_l, out_d)


@njit(cache=True, fastmath=True, nogil=True)
def search_chunk(
    parts, walk, queries, lo: int, hi: int, k: int, ef: int, deleted, c: int, out_l, out_d
):
    """Search queries lo..hi-1 with visited row c: one thread's share of a batch search
    (refimpl/hnsw.py runs the chunks on Python threads; this kernel holds no GIL)."""
    _search_rows(Graph(*parts), walk, queries, lo, hi, k, ef, deleted, c, out_l, out_d)


@njit(cache=True, fastmath=True, nogil=True)
def _candidates_for(
    g: Graph,
    sp: Space,
    i: int,
    b0: int,
    vrow: int,
    m: int,
    ef_construction: int,
    h: Heaps,
    p: Prune,
    sel_t,
    sel_d,
) -> None:
    """Phase 1 for batch node i: its neighbours at each level, from the frozen graph
    (nodes < b0, searched) plus the earlier nodes of its batch (b0..i-1, brute force).
    Writes i's own link rows and its selections into sel_t / sel_d (level, slot). Searches
    in `sp`, as `insert_range` does."""
    vecs = g.vecs
    levels = g.levels
    metric = g.metric
    q = vecs[i]
    top = np.int64(levels[i])
    rk = h.rk
    sd = p.sd
    si = p.si
    qv, qb, norms, rows = sp
    ep = g.state[ST_ENTRY]
    max_level = g.state[ST_MAXLEVEL]
    ep_d = space_dist(qv, qb, norms, rows, ep, metric)
    ep, ep_d = greedy_descent(g, sp, ep, ep_d, max_level, top)
    for level in range(min(top, max_level), -1, -1):
        rsize = _layer(g, sp, q, ep, ef_construction, level, vrow, h)
        # next entry point: the closest frozen node (batch nodes' rows are being written)
        best = rk[0]
        for r in range(1, rsize):
            best = min(best, rk[r])
        for j in range(b0, i):
            if levels[j] < level:
                continue
            key = pack(dist_q(q, vecs, j, metric), j)
            if rsize < ef_construction:
                rsize = max_push(rk, rsize, key)
            elif key < rk[0]:
                max_replace_top(rk, rsize, key)
        unpack_sorted(rk, rsize, h.rd, h.ri)
        nsel = select_heuristic(g, h.rd, h.ri, rsize, m, sd, si)
        row = links_of(g, i, level)
        for s in range(nsel):
            row[s + 1] = si[s]
            sel_t[level, s] = si[s]
            sel_d[level, s] = sd[s]
        row[0] = nsel
        for s in range(nsel, m):
            sel_t[level, s] = -1
        ep = key_id(best)


# The parallel insert, in steps refimpl/hnsw.py runs on Python threads: each step is a
# nogil kernel, so the threads run at once. A `parallel=True` kernel did the same in one call
# but took about 10 s more to compile on a cold cache (Numba's parfor lowering), the largest
# share of a first run's compile. The graph is the same for any thread count.
@njit(cache=True, nogil=True)
def insert_serial_while(
    parts, walk, start: int, end: int, m: int, ef_construction: int, warmup: int
) -> int:
    """Insert serially from `start` while the graph is small (fewer than `warmup` nodes) or
    the node raises the top level; returns the first node left for a batch (or `end`)."""
    g = Graph(*parts)
    state = g.state
    i = start
    while i < end and (state[ST_COUNT] < warmup or g.levels[i] > state[ST_MAXLEVEL]):
        insert_range(g, walk, i, i + 1, m, ef_construction)
        i += 1
    return i


@njit(cache=True, nogil=True)
def batch_begin(parts, b0: int, end: int, m: int, batch: int):
    """The next batch from b0: up to `batch` nodes, none above the current top level; clears
    their link rows and returns (b1, the selections' ids and distances to fill)."""
    g = Graph(*parts)
    top = g.state[ST_MAXLEVEL]
    b1 = b0
    while b1 < end and b1 - b0 < batch and g.levels[b1] <= top:
        b1 += 1
    nb = b1 - b0
    nl = top + 1
    sel_t = np.full((nb, nl, m), -1, np.int32)
    sel_d = np.empty((nb, nl, m), np.float32)
    for i in range(b0, b1):
        _clear_links(g, i)
    return b1, sel_t, sel_d


@njit(cache=True, fastmath=True, nogil=True)
def batch_candidates(
    parts, walk, b0: int, b1: int, c: int, m: int, ef_construction: int, sel_t, sel_d, queue
) -> None:
    """Phase 1, one thread (visited row c): take the next node of the batch from the shared
    queue and find and write its own neighbours (reads only the frozen graph)."""
    g = Graph(*parts)
    vecs = g.vecs
    nb = b1 - b0
    h = new_heaps(vecs.shape[0], ef_construction)
    p = new_prune(m)
    qx = np.empty(vecs.shape[1], np.float32)
    while True:  # each thread takes the next node; c only names its scratch
        a = fetch_add(queue, 1)
        if a >= nb:
            break
        i = b0 + a
        sp = space_for(vecs[i], walk, vecs, g.metric, qx)
        _candidates_for(g, sp, i, b0, c, m, ef_construction, h, p, sel_t[a], sel_d[a])


@njit(cache=True, nogil=True)
def batch_groups(b0: int, sel_t, sel_d):
    """Between the phases: the reverse links as (target, level) groups in a deterministic
    order: keys, sources, distances, the sorted order, each group's start, the group count."""
    nb, nl, m = sel_t.shape
    total = 0
    for a in range(nb):
        for lv in range(nl):
            for s in range(m):
                if sel_t[a, lv, s] >= 0:
                    total += 1
    keys = np.empty(total, np.int64)
    src = np.empty(total, np.int32)
    dist = np.empty(total, np.float32)
    w = 0
    for a in range(nb):
        for lv in range(nl):
            for s in range(m):
                t = sel_t[a, lv, s]
                if t >= 0:
                    keys[w] = np.int64(t) * nl + lv
                    src[w] = b0 + a
                    dist[w] = sel_d[a, lv, s]
                    w += 1
    order = np.argsort(keys, kind="mergesort")
    starts = np.empty(total + 1, np.int64)
    ng = 0
    for r in range(total):
        if r == 0 or keys[order[r]] != keys[order[r - 1]]:
            starts[ng] = r
            ng += 1
    starts[ng] = total
    return keys, src, dist, order, starts, ng


@njit(cache=True, fastmath=True, nogil=True)
def batch_links(parts, nl: int, m: int, keys, src, dist, order, starts, ng: int, queue) -> None:
    """Phase 2, one thread: take the next groups from the shared queue and add their reverse
    links; each target's list is updated by one thread, so no locks are needed."""
    g = Graph(*parts)
    pr = new_prune(m)
    while True:
        g0 = fetch_add(queue, _GROUPS_PER_TAKE)
        if g0 >= ng:
            break
        for r in range(starts[g0], starts[min(g0 + _GROUPS_PER_TAKE, ng)]):
            e = order[r]
            target = keys[e] // nl
            lv = keys[e] % nl
            max_m = 2 * m if lv == 0 else m
            add_link(g, target, src[e], dist[e], lv, max_m, pr)


@njit(cache=True, nogil=True)
def batch_commit(parts, nb: int) -> None:
    """The batch's nodes are in the graph: count them."""
    Graph(*parts).state[ST_COUNT] += nb
