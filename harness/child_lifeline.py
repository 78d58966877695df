"""The child never outlives its run: it dies with its parent, and a lifeline cleans up after it.

Apart from the replay because it is process plumbing, not scenario work: `die_with_parent` asks
the kernel for SIGKILL when the parent goes (`PR_SET_PDEATHSIG`), and the lifeline process kills
the child's process group and every process carrying the run's token once the child is gone,
however it went (exit, crash, SIGKILL). The deadline is `child.main`'s faulthandler watchdog.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

from .protocol import EXIT_ORPHANED, PARENT_ENV, TOKEN_ENV

PR_SET_PDEATHSIG = 1

# The lifeline: started first, holds the read end of a pipe the child keeps open; EOF (or being
# reparented) means the child is gone (exit, crash, SIGKILL), and then nothing of the run may stay. Run with -S -I so it
# starts in milliseconds and does not import memcycle.
_LIFELINE = """
import os, select, signal, sys
pgid, needle = int(sys.argv[1]), (sys.argv[3] + "=" + sys.argv[2]).encode()
child = os.getppid()
while os.getppid() == child:  # reparented: the child is gone (a fork may still hold the pipe)
    try:
        if select.select([0], [], [], 0.5)[0] and not os.read(0, 1):
            break
    except OSError:
        break
me = os.getpid()
for name in os.listdir("/proc") if sys.argv[2] else ():
    if name.isdigit() and int(name) != me:
        try:
            with open("/proc/%s/environ" % name, "rb") as fh:
                if needle in fh.read().split(b"\\0"):
                    os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
os.killpg(pgid, signal.SIGKILL)
"""


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux; elsewhere nothing to do).

    The parent pid from the environment closes the race of a parent that died before this
    call: then the child is already orphaned and leaves at once."""
    parent = os.environ.get(PARENT_ENV)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent and parent.isdigit() and os.getppid() != int(parent):
        os._exit(EXIT_ORPHANED)


def start_lifeline() -> int | None:
    """Start the lifeline (see `_LIFELINE`); returns the pipe end this process keeps open."""
    token = os.environ.get(TOKEN_ENV, "")
    if not os.path.isdir("/proc") or os.getpgrp() != os.getpid():
        return None  # not a run's own process group (a test calling run() directly)
    rfd, wfd = os.pipe()
    try:
        subprocess.Popen(
            [sys.executable, "-S", "-I", "-c", _LIFELINE, str(os.getpgrp()), token, TOKEN_ENV],
            stdin=rfd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError:
        os.close(wfd)
        return None
    finally:
        os.close(rfd)
    return wfd  # non-inheritable: no grandchild keeps the lifeline waiting
