"""Skip a test whose peer engine package is missing, saying which extra installs it.

A plain `pip install -e '.[test]'` has no peer engines; the skip message tells the user the one
command that runs these tests too. CI installs the peers extra and skips none of them.
"""

from __future__ import annotations

from types import ModuleType

import pytest

PEERS_EXTRA = "pip install 'memcycle[peers]' (in a checkout: pip install -e '.[test,peers]')"


def need_peer(module: str) -> ModuleType:
    """Import the peer engine `module`, or skip naming the peers extra that installs it."""
    return pytest.importorskip(module, reason=f"{module} needs the peers extra: {PEERS_EXTRA}")
