"""Open-addressing int64 -> int64 hash map kernels (linear probing, tombstones).

The table is three flat arrays of one power-of-two capacity: `keys` int64,
`vals` int64 and `states` uint8 (EMPTY, FULL, TOMB). Hashing happens outside
the kernels, vectorised in NumPy (`home_slots`), so the kernels stay pure
integer loops that also run unchanged with NUMBA_DISABLE_JIT=1 (uint64
overflow inside scalar NumPy code would warn; on arrays it wraps silently).
A missing value is reported as -1, so stored values must be >= 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = np.uint8(0)
FULL = np.uint8(1)
TOMB = np.uint8(2)

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def home_slots(keys: np.ndarray, capacity: int) -> np.ndarray:
    """splitmix64 finaliser of each key, masked to the table: the first probe position."""
    x = np.ascontiguousarray(keys, dtype=np.int64).view(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * _C1
    x = (x ^ (x >> np.uint64(27))) * _C2
    x = x ^ (x >> np.uint64(31))
    return (x & np.uint64(capacity - 1)).astype(np.int64)


@njit(cache=True, inline="always")
def _find(keys: np.ndarray, states: np.ndarray, key: np.int64, home: np.int64) -> np.int64:
    """The slot holding `key`, probing linearly from `home` past tombstones; -1 if absent."""
    mask = keys.shape[0] - 1
    pos = home
    for _ in range(keys.shape[0]):
        st = states[pos]
        if st == EMPTY:
            return -1
        if st == FULL and keys[pos] == key:
            return pos
        pos = (pos + 1) & mask
    return -1


@njit(cache=True)
def hm_get(
    keys: np.ndarray,
    vals: np.ndarray,
    states: np.ndarray,
    qkeys: np.ndarray,
    homes: np.ndarray,
    out: np.ndarray,
) -> int:
    """out[i] = value of qkeys[i] or -1; returns how many were found."""
    found = 0
    for i in range(qkeys.shape[0]):
        pos = _find(keys, states, qkeys[i], homes[i])
        out[i] = vals[pos] if pos >= 0 else -1
        if pos >= 0:
            found += 1
    return found


@njit(cache=True)
def hm_put(
    keys: np.ndarray,
    vals: np.ndarray,
    states: np.ndarray,
    ikeys: np.ndarray,
    ivals: np.ndarray,
    homes: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Insert or overwrite each key. counts[0] += new keys, counts[1] -= reused tombstones.

    The caller guarantees room (load factor below 1), so every probe ends.
    """
    mask = keys.shape[0] - 1
    for i in range(ikeys.shape[0]):
        key = ikeys[i]
        pos = homes[i]
        first_tomb = -1
        for _ in range(keys.shape[0]):
            st = states[pos]
            if st == EMPTY:
                break
            if st == FULL and keys[pos] == key:
                break
            if st == TOMB and first_tomb < 0:
                first_tomb = pos
            pos = (pos + 1) & mask
        if states[pos] == FULL and keys[pos] == key:
            vals[pos] = ivals[i]
            continue
        if first_tomb >= 0:
            pos = first_tomb
            counts[1] -= 1
        keys[pos] = key
        vals[pos] = ivals[i]
        states[pos] = FULL
        counts[0] += 1


@njit(cache=True)
def hm_delete(
    keys: np.ndarray,
    vals: np.ndarray,
    states: np.ndarray,
    dkeys: np.ndarray,
    homes: np.ndarray,
    out: np.ndarray,
) -> int:
    """Remove each key (leaving a tombstone); out[i] = its old value or -1. Returns removals."""
    removed = 0
    for i in range(dkeys.shape[0]):
        pos = _find(keys, states, dkeys[i], homes[i])
        out[i] = vals[pos] if pos >= 0 else -1
        if pos >= 0:
            states[pos] = TOMB
            removed += 1
    return removed


@njit(cache=True)
def hm_collect(
    keys: np.ndarray,
    vals: np.ndarray,
    states: np.ndarray,
    out_keys: np.ndarray,
    out_vals: np.ndarray,
) -> int:
    """Copy the live entries out (for a rehash into a larger table); returns how many."""
    n = 0
    for pos in range(keys.shape[0]):
        if states[pos] == FULL:
            out_keys[n] = keys[pos]
            out_vals[n] = vals[pos]
            n += 1
    return n
