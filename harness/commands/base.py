"""What every command is: a parser to fill and a function to run, with its help texts.

The dispatcher (`memcycle.cli`) adds one subparser per command from these fields; a command
never imports the dispatcher, and raises `memcycle.errors.CommandError` for anything that
stops it (the dispatcher prints it and exits with its status).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

INTERRUPT_CODES = "  130  stopped by SIGINT (Ctrl-C)\n  143  stopped by SIGTERM\n"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples and exit-status tables stay as written; one-paragraph descriptions wrap."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


@dataclass(frozen=True)
class Command:
    """One `memcycle COMMAND`: `prepare_parser` adds its flags, `run` does it (exit status)."""

    prepare_parser: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    epilog: str | None = None
    formatter_class: type[argparse.HelpFormatter] = HelpFormatter
