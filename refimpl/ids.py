"""Ids: str or int, stored as 64-bit keys, and the checks a batch of them must pass.

An int64 id is its own key; a str (or an int beyond int64) gets a stable blake2b key, and the
database keeps the id itself beside it to tell two ids with one key apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from .errors import DuplicateIdError, IdCollisionError, InvalidInputError

Id = int | str
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class BatchIds(NamedTuple):
    """A validated batch of ids: 64-bit keys, and the ids themselves when not all int64."""

    keys: np.ndarray  # int64 keys
    values: list[Id] | None  # normalised ids, None when all are int64 (then keys are the ids)
    n_obj: int  # how many are not int64 ids


def hash_key(tag: str, text: str) -> int:
    """Stable 64-bit key for an id that is not an int64 (str, or an int too large)."""
    digest = hashlib.blake2b(f"{tag}:{text}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little", signed=True)


def key_of(value: Any) -> tuple[int, Id, bool]:
    """(64-bit key, normalised id, is_int64) for one id, or InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
        raise InvalidInputError(f"ids must be str or int, got {type(value).__name__} {value!r}")
    if isinstance(value, str):
        return hash_key("s", value), value, False
    v = int(value)
    if INT64_MIN <= v <= INT64_MAX:
        return v, v, True
    return hash_key("i", str(v)), v, False


def batch_ids(ids: Any, n: int) -> BatchIds:
    """Validate ids for a batch of n rows: type, length, duplicates within the batch."""
    if isinstance(ids, str | bytes | dict) or not isinstance(ids, Iterable):
        raise InvalidInputError(
            f"ids must be a sequence of str or int (one per row), got {type(ids).__name__}"
        )
    arr = ids if isinstance(ids, np.ndarray) else None
    if arr is None:
        ids = list(ids)
        if len(ids) != n:
            raise InvalidInputError(f"got {len(ids)} ids for {n} vectors; expected one per row")
        try:
            arr = np.asarray(ids) if ids else np.empty(0, np.int64)
        except (ValueError, TypeError, OverflowError):
            arr = np.asarray(ids, dtype=object)
    elif arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(
            f"ids must be a 1-D array of {n} ids (one per row), got shape {arr.shape}"
        )
    if arr.ndim == 1 and (
        arr.dtype.kind == "i" or (arr.dtype.kind == "u" and (n == 0 or arr.max() <= INT64_MAX))
    ):
        keys = np.ascontiguousarray(arr, dtype=np.int64)
        if n > 1:
            srt = np.sort(keys)
            dup = srt[1:][srt[1:] == srt[:-1]]
            if dup.size:
                raise DuplicateIdError(
                    f"duplicate id(s) within the batch: {sorted(set(dup.tolist()))[:5]}; "
                    f"ids must be unique"
                )
        return BatchIds(keys, None, 0)
    values: list[Id] = []
    keys_list: list[int] = []
    n_obj = 0
    seen: set[Id] = set()
    dups: list[Id] = []
    for value in ids if isinstance(ids, list) else arr.tolist():
        key, norm, is_int = key_of(value)
        if norm in seen:
            dups.append(norm)
        seen.add(norm)
        values.append(norm)
        keys_list.append(key)
        n_obj += not is_int
    if dups:
        raise DuplicateIdError(
            f"duplicate id(s) within the batch: {dups[:5]!r}; ids must be unique"
        )
    keys = np.array(keys_list, np.int64)
    if np.unique(keys).size != keys.size:
        raise IdCollisionError("two distinct ids in the batch hash to the same 64-bit key")
    return BatchIds(keys, values, n_obj)
