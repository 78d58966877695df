"""The one error a command raises: a message and the exit status it stands for.

Raised anywhere below the dispatcher (a command, a check, the fault plan, the gate's input
reading) and caught in one place, `memcycle.cli.main`, which prints it as one line,
`memcycle: error: ...`, and exits with its status. Nothing else prints an error and picks
an exit status for it.
"""

from __future__ import annotations

EXIT_USAGE = 2  # bad input, before anything runs
EXIT_ERROR = 3  # memcycle or the adapter could not do its job


class CommandError(Exception):
    """A command cannot go on: `str(exc)` is the one-line message, `exit_code` the status."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CommandError):
    """Bad input (a flag, a file, a name): one line, exit status 2."""

    exit_code = EXIT_USAGE
