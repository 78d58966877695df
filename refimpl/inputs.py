"""Input checks for the DB API: numbers, arrays, and the bounds that keep sizes sane.

Module-level functions, so the single-query search path stays cheap. Every refusal is an
`InvalidInputError` whose message says what was wrong and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError
from .kernels.flat import all_finite


def positive_int(value: Any, what: str, most: int | None = None) -> int:
    """`value` as an int in 1..most (bool and non-integers refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(f"{what} must be a positive integer, got {value!r}")
    if value <= 0:
        raise InvalidInputError(f"{what} must be a positive integer, got {value}")
    if most is not None and value > most:
        raise InvalidInputError(f"{what} must be at most {most:,}, got {value:,}")
    return int(value)


# Parameters that size allocations up front are bounded, so a typo cannot ask for 30 GiB: the
# flat buffer is allocated whole at initialize() (buffer_size rows), graph rows hold 1+2M links,
# and ef sizes the search heaps. Sizes that follow the data (limit) are clamped to the row count.
MAX_BUFFER_SIZE = 1 << 20
MAX_SEGMENT_THRESHOLD = 1 << 31
MAX_M = 512
MAX_EF = 1 << 16
MAX_DIMENSION = 1 << 16
# search_batch returns (q, limit) arrays padded past the rows it has: refuse a padding that big
MAX_RESULT_CELLS = 1 << 26


def as_float32(data: Any, what: str) -> np.ndarray:
    """Any numeric array-like -> float32 C-contiguous (float64/ints/strided are converted)."""
    if type(data) is np.ndarray and data.dtype == np.float32 and data.flags.c_contiguous:
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"{what} must be a rectangular numeric array; could not convert it ({exc})"
            ) from None
        if arr.dtype.kind not in "iuf":
            raise InvalidInputError(
                f"{what} must be numeric (int or float), got dtype {arr.dtype}"
                + (" (ragged rows?)" if arr.dtype == object else "")
            )
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not all_finite(arr.reshape(-1)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidInputError(
            f"{what} contains NaN or infinity (first at index {tuple(int(i) for i in bad)}, "
            f"after conversion to float32); expected finite values"
        )
    return arr


def batch_matrix(vectors: Any) -> np.ndarray:
    """A batch of rows: float32 C-contiguous `(n, dimension)` with n, dimension >= 1."""
    x = as_float32(vectors, "vectors")
    if x.ndim != 2:
        raise InvalidInputError(
            f"vectors must be 2-D (n, dimension), got {x.ndim}-D with shape {x.shape}"
        )
    if x.shape[0] == 0:
        raise InvalidInputError("empty batch: vectors has 0 rows; expected at least one")
    if x.shape[1] == 0:
        raise InvalidInputError("vectors have 0 columns; expected dimension >= 1")
    return x
