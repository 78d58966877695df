"""Every exception refimpl raises.

Two families: `RefimplError` for a caller's mistake (bad input, wrong state),
and `MemoryFault` for what the checked allocator catches — the errors a native
engine would show as an abort or a segfault.
"""

from __future__ import annotations


class RefimplError(Exception):
    """Base of every error the engine raises on purpose."""


# --- caller's mistakes -------------------------------------------------------
class InvalidInputError(RefimplError, ValueError):
    """Input of the wrong shape, type or value; nothing was changed."""


class DimensionMismatchError(InvalidInputError):
    """A vector's length differs from the database's dimension."""


class DuplicateIdError(InvalidInputError):
    """An id appears twice in a batch, or already exists in the database."""


class IdNotFoundError(RefimplError, KeyError):
    """The id is not in the database."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class IdCollisionError(RefimplError):
    """Two distinct ids hashed to the same 64-bit key (practically impossible)."""


class UnknownNameError(RefimplError, ValueError):
    """An unknown metric, allocator or fault name."""


class CopyRefusedError(RefimplError, TypeError):
    """copy.copy, copy.deepcopy or pickle of a DB: refused, since a copy would share its blocks."""


class LifecycleError(RefimplError):
    """An operation that the current lifecycle state does not allow."""


class ClosedError(LifecycleError):
    """The database was closed; it cannot be used any more."""


# --- memory faults the checked allocator detects ------------------------------
class MemoryFault(RefimplError):
    """A memory-safety violation. `verdict` names the harness verdict class."""

    verdict = "memory-fault"


class DoubleFreeError(MemoryFault):
    verdict = "double-free"


class InvalidFreeError(MemoryFault):
    verdict = "invalid-free"


class UseAfterFreeError(MemoryFault):
    verdict = "use-after-free"


class BufferOverflowError(MemoryFault):
    verdict = "buffer-overflow"
