"""Two LLVM instructions the HNSW kernels need and Numba does not expose.

`prefetch` hints the cache to load a row before it is measured (hnswlib's
`_mm_prefetch`); `fetch_add` is an atomic add on an int64 counter, so the
threads of a parallel insert take the next node from a shared queue instead of
a fixed half each: a thread that the (shared, virtual) machine stalls then
holds up one node, not half a batch. Without the JIT both are plain Python.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _prefetch_py(arr: np.ndarray, i: int, j: int) -> None:
    """Without the JIT a prefetch is nothing."""


def _fetch_add_py(counter: np.ndarray, delta: int) -> int:
    """counter[0] += delta; returns the old value (one thread: no atomicity needed)."""
    old = int(counter[0])
    counter[0] += delta
    return old


if config.DISABLE_JIT:
    prefetch = njit(cache=True)(_prefetch_py)
    fetch_add = njit(cache=True)(_fetch_add_py)
else:

    @intrinsic
    def prefetch(typingctx, arr, i, j):  # type: ignore[no-untyped-def]
        """Hint the cache to load arr[i, j] (LLVM's prefetch: read, high locality)."""
        sig = types.void(arr, i, j)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ii = context.cast(builder, args[1], signature.args[1], types.intp)
            jj = context.cast(builder, args[2], signature.args[2], types.intp)
            ptr = cgutils.get_item_pointer2(
                context,
                builder,
                ary.data,
                cgutils.unpack_tuple(builder, ary.shape),
                cgutils.unpack_tuple(builder, ary.strides),
                aryty.layout,
                [ii, jj],
                wraparound=False,
            )
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(
                fn,
                [
                    builder.bitcast(ptr, i8p),
                    ir.Constant(i32, 0),
                    ir.Constant(i32, 3),
                    ir.Constant(i32, 1),
                ],
            )
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def fetch_add(typingctx, counter, delta):  # type: ignore[no-untyped-def]
        """Atomically add `delta` to counter[0] (an int64 array); returns the old value."""
        sig = types.int64(counter, delta)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            inc = context.cast(builder, args[1], signature.args[1], types.int64)
            return builder.atomic_rmw("add", ary.data, inc, "monotonic")

        return sig, codegen
