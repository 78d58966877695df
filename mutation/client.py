"""cosmic-ray's test command under the fork server: ask it to run the tests, exit with their code.

Run as `python -S -I mutation/client.py SOCKET` (no site, no user paths: a few milliseconds), so
it imports the standard library only. It hands the server its stdout and stderr (the child writes
the pytest output straight into them, which cosmic-ray keeps as the mutant's output), its working
directory and its environment. If cosmic-ray kills it at the timeout, the server sees the socket
close and kills the child's whole process group.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def ask(path: str) -> int:
    """One request: the exit code of the tests against the files as they are on disk now."""
    request = json.dumps({"cwd": os.getcwd(), "env": dict(os.environ)}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        socket.send_fds(sock, [request[:1]], [1, 2])
        sock.sendall(request[1:])
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                print("mutation client: the fork server closed the connection", file=sys.stderr)
                return 70
            reply += chunk
    return int(json.loads(reply)["rc"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: client.py SOCKET (the fork server's socket path)", file=sys.stderr)
        sys.exit(2)
    sys.exit(ask(sys.argv[1]))
