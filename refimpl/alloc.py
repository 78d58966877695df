"""The only place that creates engine buffers.

Every array the engine owns is a `Block` handed out by an `Allocator` and given
back with `free()`. That makes the lifecycle visible (a ledger of live blocks),
checkable (`CheckedAllocator` catches double, invalid and late frees and
overflows the way AddressSanitizer does) and, with `RawAllocator`, as fragile
as native code: real unmanaged memory, no protection.

Hot code reads `block.array` once and keeps the NumPy view; the handle is what
gets freed.

Why one module of ~580 lines: the three allocators are one ledger (`_LedgerAllocator`) with
three policies for what a free does (NumPy's memory, ASan-like guards and quarantine, raw
malloc), and the safety checks are read against the bookkeeping they guard; apart, each
policy would import the ledger's private state.
"""

from __future__ import annotations

import ctypes
import itertools
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import DTypeLike

from .errors import (
    BufferOverflowError,
    DoubleFreeError,
    InvalidFreeError,
    MemoryFault,
    UnknownNameError,
    UseAfterFreeError,
)

ALLOCATOR_NAMES = ("numpy", "checked", "raw")

_GUARD_BYTES = 64  # each side of a checked block
_CANARY = 0xFA  # guard-zone byte
_FRESH = 0xBE  # uninitialised memory in a checked block (as ASan's malloc fill)
_POISON = 0xDD  # freed memory in a checked block
_STACK_LIMIT = 14
_LABEL_STACK_FRAMES = 4  # innermost allocation frames shown per label in snapshot()


def _capture_stack() -> tuple[str, ...]:
    """Caller frames outside this module, innermost last, as 'file:line in func'.

    Walks the frames directly: `traceback.extract_stack` also reads every source
    line, which made each checked allocation cost ~0.25 ms.
    """
    out: list[str] = []
    frame = sys._getframe(2)
    depth = 0
    while frame is not None and depth < _STACK_LIMIT:
        code = frame.f_code
        if code.co_filename != __file__:  # this module only (test_alloc.py is a caller)
            out.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        frame = frame.f_back
        depth += 1
    out.reverse()
    return tuple(out)


def _format_stack(stack: tuple[str, ...] | None, indent: str = "    ") -> str:
    if not stack:
        return f"{indent}(no stack recorded)"
    return "\n".join(f"{indent}{line}" for line in reversed(stack))


@dataclass(eq=False)
class Block:
    """A handle to one allocation. `array` is the memory as a typed NumPy view."""

    id: int
    label: str
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int
    address: int
    allocator_name: str
    _array: np.ndarray | None = None
    _owner: Allocator | None = None
    freed: bool = False
    alloc_stack: tuple[str, ...] | None = None
    free_stack: tuple[str, ...] | None = None
    alloc_seq: int = 0  # the allocator's allocation counter when this block was made
    free_seq: int | None = None  # the allocator's free counter when it was freed

    @property
    def array(self) -> np.ndarray:
        owner = self._owner
        if owner is None:
            raise InvalidFreeError(f"block at {self.address:#x} was never issued by an allocator")
        return owner._view(self)

    @classmethod
    def forged(cls, address: int, label: str = "<garbage>") -> Block:
        """A handle no allocator issued: what an uninitialised pointer slot holds."""
        return cls(
            id=-1,
            label=label,
            shape=(0,),
            dtype=np.dtype(np.uint8),
            nbytes=0,
            address=int(address),
            allocator_name="<none>",
        )

    def describe(self) -> str:
        return f"block #{self.id} '{self.label}' ({self.nbytes} bytes at {self.address:#x})"


@dataclass(frozen=True)
class BlockInfo:
    """A live block as the ledger shows it (plain data, safe to serialise)."""

    id: int
    label: str
    nbytes: int
    shape: tuple[int, ...]
    dtype: str
    address: int
    alloc_stack: tuple[str, ...] | None


@dataclass(frozen=True)
class AllocStats:
    allocs: int
    frees: int
    live_blocks: int
    live_bytes: int
    peak_bytes: int


@runtime_checkable
class Allocator(Protocol):
    """What the engine needs from an allocator."""

    name: str

    def alloc(
        self, label: str, shape: int | tuple[int, ...], dtype: DTypeLike, *, zero: bool = True
    ) -> Block: ...

    def free(self, block: Block) -> None: ...

    def store(self, block: Block, index: int, values: np.ndarray) -> None: ...

    def live(self) -> list[BlockInfo]: ...

    def stats(self) -> AllocStats: ...

    def verify(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def _view(self, block: Block) -> np.ndarray: ...


def _normalise(shape: int | tuple[int, ...], dtype: DTypeLike) -> tuple[tuple[int, ...], np.dtype]:
    shp = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
    if any(s < 0 for s in shp):
        raise ValueError(f"negative dimension in shape {shp}")
    return shp, np.dtype(dtype)


class _LedgerAllocator:
    """Shared bookkeeping: ids, live set, counters. Subclasses own the memory."""

    name = "base"
    record_stacks = False

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._live: dict[int, Block] = {}
        self._by_address: dict[int, Block] = {}
        self._allocs = 0
        self._frees = 0
        self._live_bytes = 0
        self._peak_bytes = 0
        self.violations: list[dict[str, Any]] = []

    # -- public API -----------------------------------------------------------
    def alloc(
        self, label: str, shape: int | tuple[int, ...], dtype: DTypeLike, *, zero: bool = True
    ) -> Block:
        shp, dt = _normalise(shape, dtype)
        nbytes = int(np.prod(shp, dtype=np.int64)) * dt.itemsize
        block = Block(
            id=next(self._ids),
            label=label,
            shape=shp,
            dtype=dt,
            nbytes=nbytes,
            address=0,
            allocator_name=self.name,
            _owner=self,
        )
        if self.record_stacks:
            block.alloc_stack = _capture_stack()
        self._acquire(block, zero)
        self._live[block.id] = block
        self._by_address[block.address] = block
        self._allocs += 1
        block.alloc_seq = self._allocs
        self._live_bytes += nbytes
        self._peak_bytes = max(self._peak_bytes, self._live_bytes)
        return block

    def free(self, block: Block) -> None:
        if block._owner is not self or (block.id not in self._live and not block.freed):
            self._invalid_free(block)
            return
        if block.freed:
            self._double_free(block)
            return
        if self.record_stacks:
            block.free_stack = _capture_stack()
        self._check_guards(block, when="free")
        del self._live[block.id]
        self._by_address.pop(block.address, None)
        self._frees += 1
        self._live_bytes -= block.nbytes
        block.freed = True
        block.free_seq = self._frees
        self._release(block)

    def store(self, block: Block, index: int, values: np.ndarray) -> None:
        """Write `values` at element `index` of the block through a raw pointer.

        This is how native code writes: no bounds check. Fault code paths use it
        for the writes that run past a block; `CheckedAllocator` checks the range
        first, as AddressSanitizer's instrumentation would.
        """
        data = np.ascontiguousarray(values, dtype=block.dtype)
        ctypes.memmove(
            block.address + int(index) * block.dtype.itemsize, data.ctypes.data, data.nbytes
        )

    def live(self) -> list[BlockInfo]:
        return [
            BlockInfo(b.id, b.label, b.nbytes, b.shape, b.dtype.str, b.address, b.alloc_stack)
            for b in self._live.values()
        ]

    def stats(self) -> AllocStats:
        return AllocStats(
            self._allocs, self._frees, len(self._live), self._live_bytes, self._peak_bytes
        )

    def verify(self) -> None:
        """Check every live block's guard zones (a no-op where there are none)."""
        for block in list(self._live.values()):
            self._check_guards(block, when="verify")

    def snapshot(self) -> dict[str, Any]:
        """Counters and live blocks by label, as plain JSON-able data.

        With stacks recorded, each label also names the innermost allocation frames
        of its newest live block (`stack`, innermost first): the site that grows
        when a label leaks every cycle.
        """
        by_label: dict[str, dict[str, Any]] = {}
        newest: dict[str, Block] = {}
        for b in self._live.values():
            entry = by_label.setdefault(b.label, {"blocks": 0, "bytes": 0})
            entry["blocks"] += 1
            entry["bytes"] += b.nbytes
            if b.label not in newest or b.id > newest[b.label].id:
                newest[b.label] = b
        if self.record_stacks:
            for label, b in newest.items():
                if b.alloc_stack:
                    by_label[label]["stack"] = list(reversed(b.alloc_stack))[:_LABEL_STACK_FRAMES]
        s = self.stats()
        return {
            "allocator": self.name,
            "allocs": s.allocs,
            "frees": s.frees,
            "live_blocks": s.live_blocks,
            "live_bytes": s.live_bytes,
            "peak_bytes": s.peak_bytes,
            "by_label": by_label,
            "violations": list(self.violations),
        }

    # -- hooks ------------------------------------------------------------------
    def _acquire(self, block: Block, zero: bool) -> None:
        raise NotImplementedError

    def _release(self, block: Block) -> None:
        raise NotImplementedError

    def _view(self, block: Block) -> np.ndarray:
        if block.freed:
            self._use_after_free(block)
        assert block._array is not None
        return block._array

    def _check_guards(self, block: Block, when: str) -> None:
        return None

    # -- violations -------------------------------------------------------------
    def _report(self, exc: MemoryFault, block: Block | None, **facts: Any) -> None:
        """Record the violation (finalizers swallow exceptions), then raise it. `facts` are
        the values the message words (an address, the bytes past the end) kept as data, so
        no reader has to parse them back out of the message."""
        self.violations.append(
            {
                "verdict": exc.verdict,
                "message": str(exc),
                "label": block.label if block else None,
                "nbytes": block.nbytes if block else None,
                "block_id": block.id if block else None,
                "address": block.address if block else None,
                "alloc_seq": block.alloc_seq if block else None,
                "free_seq": block.free_seq if block else None,
                "alloc_stack": list(block.alloc_stack or ()) if block else [],
                "free_stack": list(block.free_stack or ()) if block else [],
                "fault_stack": list(_capture_stack()),
                **facts,
            }
        )
        raise exc

    def _double_free(self, block: Block) -> None:
        msg = (
            f"double free of {block.describe()} [{self.name} allocator]\n"
            f"  allocated at:\n{_format_stack(block.alloc_stack)}\n"
            f"  first freed at:\n{_format_stack(block.free_stack)}\n"
            f"  freed again at:\n{_format_stack(_capture_stack() if self.record_stacks else None)}"
        )
        self._report(DoubleFreeError(msg), block)

    def _invalid_free(self, block: Block) -> None:
        msg = (
            f"free of {block.address:#x} ('{block.label}'), which the {self.name} allocator "
            f"never issued (an uninitialised or foreign pointer)\n"
            f"  freed at:\n{_format_stack(_capture_stack() if self.record_stacks else None)}"
        )
        # not a block of this allocator: only the pointer and the label it was handed
        self._report(InvalidFreeError(msg), None, label=block.label, address=block.address)

    def _use_after_free(self, block: Block) -> None:
        msg = (
            f"use after free of {block.describe()} [{self.name} allocator]\n"
            f"  allocated at:\n{_format_stack(block.alloc_stack)}\n"
            f"  freed at:\n{_format_stack(block.free_stack)}\n"
            f"  used at:\n{_format_stack(_capture_stack() if self.record_stacks else None)}"
        )
        self._report(UseAfterFreeError(msg), block)


class NumpyAllocator(_LedgerAllocator):
    """Blocks are plain NumPy arrays; `free` drops them. The fast default.

    It still keeps the live set (so `clear()` can be checked in every allocator)
    and refuses a second free, but records no stacks and has no guard zones.
    """

    name = "numpy"

    def _acquire(self, block: Block, zero: bool) -> None:
        arr = np.zeros(block.shape, block.dtype) if zero else np.empty(block.shape, block.dtype)
        block._array = arr
        block.address = arr.ctypes.data if arr.size else id(arr)

    def _release(self, block: Block) -> None:
        block._array = None


class CheckedAllocator(_LedgerAllocator):
    """Same memory as NumPy, plus a ledger with stacks, guard zones and poisoning.

    Freed blocks stay in a bounded quarantine filled with poison, so a stale view
    reads garbage rather than someone else's data, and a write through a stale
    view is caught by `verify()`.
    """

    name = "checked"
    record_stacks = True

    def __init__(self, quarantine_bytes: int = 256 << 20) -> None:
        super().__init__()
        self._raw: dict[int, np.ndarray] = {}
        self._quarantine: OrderedDict[int, tuple[Block, np.ndarray]] = OrderedDict()
        self._quarantine_bytes = 0
        self._quarantine_limit = quarantine_bytes

    def _acquire(self, block: Block, zero: bool) -> None:
        payload = (block.nbytes + 15) & ~15
        raw = np.empty(_GUARD_BYTES * 2 + payload, np.uint8)
        raw[:_GUARD_BYTES] = _CANARY
        raw[_GUARD_BYTES + block.nbytes :] = _CANARY
        body = raw[_GUARD_BYTES : _GUARD_BYTES + block.nbytes]
        body[:] = 0 if zero else _FRESH
        block._array = body.view(block.dtype).reshape(block.shape)
        block.address = raw.ctypes.data + _GUARD_BYTES
        self._raw[block.id] = raw

    def snapshot(self) -> dict[str, Any]:
        """As the ledger's, plus `cached_bytes`: freed blocks kept poisoned in quarantine
        (a bounded cache that process-level measures see growing; not a leak)."""
        snap = super().snapshot()
        snap["cached_bytes"] = self._quarantine_bytes
        return snap

    def _release(self, block: Block) -> None:
        raw = self._raw.pop(block.id)
        raw[_GUARD_BYTES : _GUARD_BYTES + block.nbytes] = _POISON
        self._quarantine[block.id] = (block, raw)
        self._quarantine_bytes += raw.nbytes
        while self._quarantine_bytes > self._quarantine_limit and self._quarantine:
            _, (old, old_raw) = self._quarantine.popitem(last=False)
            self._quarantine_bytes -= old_raw.nbytes
            self._check_poison(old, old_raw)
        # the handle keeps its (poisoned) view so a stale reader sees 0xDD, not
        # freed-and-reused memory

    def _check_guards(self, block: Block, when: str) -> None:
        raw = self._raw.get(block.id)
        if raw is None:
            return
        head = raw[:_GUARD_BYTES]
        tail = raw[_GUARD_BYTES + block.nbytes :]
        bad_head = np.flatnonzero(head != _CANARY)
        bad_tail = np.flatnonzero(tail != _CANARY)
        if bad_head.size == 0 and bad_tail.size == 0:
            return
        where = []
        if bad_tail.size:
            where.append(f"{bad_tail.size} byte(s) past the end (first at +{int(bad_tail[0])})")
        if bad_head.size:
            where.append(f"{bad_head.size} byte(s) before the start")
        msg = (
            f"buffer overflow: guard zone of {block.describe()} damaged, "
            f"{', '.join(where)}; found on {when} [{self.name} allocator]\n"
            f"  allocated at:\n{_format_stack(block.alloc_stack)}\n"
            f"  detected at:\n{_format_stack(_capture_stack())}"
        )
        overflow = {"found_on": when, "past_end_bytes": int(bad_tail.size)}
        if bad_head.size:
            overflow["before_start_bytes"] = int(bad_head.size)
        self._report(BufferOverflowError(msg), block, overflow=overflow)

    def store(self, block: Block, index: int, values: np.ndarray) -> None:
        if block.freed:
            self._use_after_free(block)
        data = np.ascontiguousarray(values, dtype=block.dtype)
        start = int(index) * block.dtype.itemsize
        end = start + data.nbytes
        if start < 0 or end > block.nbytes:
            msg = (
                f"buffer overflow: WRITE of {data.nbytes} bytes at offset {start} of "
                f"{block.describe()}, {max(end - block.nbytes, 0)} byte(s) past the end "
                f"[{self.name} allocator]\n"
                f"  allocated at:\n{_format_stack(block.alloc_stack)}\n"
                f"  written at:\n{_format_stack(_capture_stack())}"
            )
            overflow = {
                "access": "write",
                "access_bytes": data.nbytes,
                "offset": start,
                "past_end_bytes": max(end - block.nbytes, 0),
            }
            self._report(BufferOverflowError(msg), block, overflow=overflow)
        super().store(block, index, data)

    def _check_poison(self, block: Block, raw: np.ndarray) -> None:
        body = raw[_GUARD_BYTES : _GUARD_BYTES + block.nbytes]
        if body.size and not np.all(body == _POISON):
            msg = (
                f"write after free into {block.describe()} [{self.name} allocator]\n"
                f"  allocated at:\n{_format_stack(block.alloc_stack)}\n"
                f"  freed at:\n{_format_stack(block.free_stack)}"
            )
            self._report(UseAfterFreeError(msg), block)

    def verify(self) -> None:
        """Check guard zones of live blocks and poison of quarantined ones."""
        super().verify()
        for block, raw in list(self._quarantine.values()):
            self._check_poison(block, raw)

    def _view(self, block: Block) -> np.ndarray:
        if block.freed:
            self._use_after_free(block)
        assert block._array is not None
        return block._array


class RawAllocator(_LedgerAllocator):
    """Real unmanaged memory from PyMem_RawMalloc / PyMem_RawFree, no protection.

    A double free goes to glibc (which aborts), a freed block's view still points
    at the freed memory (read garbage, or segfault once it is unmapped). This is
    the native engine's failure mode, for the harness to catch in a child process.
    memray sees these allocations (they go through libpython's malloc).
    """

    name = "raw"

    _malloc = ctypes.pythonapi.PyMem_RawMalloc
    _malloc.restype = ctypes.c_void_p
    _malloc.argtypes = [ctypes.c_size_t]  # noqa: RUF012 (ctypes attribute, not a class default)
    _calloc = ctypes.pythonapi.PyMem_RawCalloc
    _calloc.restype = ctypes.c_void_p
    _calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]  # noqa: RUF012 (ctypes attribute, not a class default)
    _rawfree = ctypes.pythonapi.PyMem_RawFree
    _rawfree.restype = None
    _rawfree.argtypes = [ctypes.c_void_p]  # noqa: RUF012 (ctypes attribute, not a class default)

    def _acquire(self, block: Block, zero: bool) -> None:
        size = max(block.nbytes, 1)
        addr = self._calloc(1, size) if zero else self._malloc(size)
        if not addr:
            raise MemoryError(f"PyMem_RawMalloc({size}) failed for '{block.label}'")
        block.address = int(addr)
        buf = (ctypes.c_uint8 * size).from_address(block.address)
        flat = np.frombuffer(buf, dtype=np.uint8, count=block.nbytes)
        block._array = flat.view(block.dtype).reshape(block.shape)

    def _release(self, block: Block) -> None:
        # the view is kept on purpose: a dangling pointer, as in native code
        self._rawfree(block.address)

    def free(self, block: Block) -> None:
        if block.freed or block.id not in self._live or block._owner is not self:
            # no protection: hand the pointer to the C allocator as native code would
            self.violations.append(
                {
                    "verdict": "double-free" if block.freed else "invalid-free",
                    "message": f"raw free of {block.describe()} passed to PyMem_RawFree unchecked",
                    "label": block.label,
                    "nbytes": block.nbytes,
                    "block_id": block.id,
                    "address": block.address,
                    "alloc_seq": block.alloc_seq,
                    "free_seq": block.free_seq,
                }
            )
            sys.stderr.flush()
            self._rawfree(block.address)
            return
        super().free(block)

    def _view(self, block: Block) -> np.ndarray:
        assert block._array is not None
        return block._array  # no check: a stale view is a dangling pointer


AllocRequest = tuple[str, int | tuple[int, ...], DTypeLike, bool]  # label, shape, dtype, zero


def alloc_all(allocator: Allocator, requests: Sequence[AllocRequest]) -> list[Block]:
    """Allocate every request or none: a failure half way (out of memory) frees the blocks
    already made, so a structure that needs several blocks at once never leaks the first ones."""
    made: list[Block] = []
    try:
        for label, shape, dtype, zero in requests:
            made.append(allocator.alloc(label, shape, dtype, zero=zero))
    except BaseException:
        for block in reversed(made):
            allocator.free(block)
        raise
    return made


def make_allocator(name: str | Allocator = "numpy") -> Allocator:
    """An allocator by name ('numpy', 'checked', 'raw'), or the instance given."""
    if not isinstance(name, str):
        if isinstance(name, Allocator):
            return name
        raise UnknownNameError(
            f"allocator must be one of {ALLOCATOR_NAMES} or an Allocator, got {name!r}"
        )
    factories = {"numpy": NumpyAllocator, "checked": CheckedAllocator, "raw": RawAllocator}
    try:
        return factories[name]()
    except KeyError:
        raise UnknownNameError(
            f"unknown allocator {name!r}; expected one of {', '.join(ALLOCATOR_NAMES)}"
        ) from None
