"""Run a command and append its exit code and wall time to a log: the plain way's per-mutant
seconds, to set beside the fork server's log (stdlib only: `python -S -I timed.py LOG -- CMD`)."""

from __future__ import annotations

import subprocess
import sys
import time

if __name__ == "__main__":
    log, command = sys.argv[1], sys.argv[3:]
    started = time.monotonic()
    rc = subprocess.call(command)
    seconds = time.monotonic() - started
    with open(log, "a") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} rc={rc} {seconds:.2f}s plain\n")
    sys.exit(rc)
