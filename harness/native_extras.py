"""What `harness.isolation.run_child` does for native engines (issue 13), in one place.

- `prepare`: the sanitizer/valgrind wrapping of the child command and environment, and
  the file the child's faulthandler writes all Python stacks to on SIGUSR1;
- `on_event`: follows the child's steps (the watchdog; the valgrind XML size per step,
  so each memcheck error is placed in the step that was running when it was written);
- `wait`: waits for the child, enforcing run and per-step limits; before a hung child
  is killed, its Python and native stacks are dumped (`harness.hangs`);
- `finish`: adds to the exit record the native stack of a crash (gdb replay,
  `harness.native_stack`), the hang's stacks and position, and the sanitizer reports.

Nothing here raises for a tool's failure: the exit record says what could not be had.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import native_stack as _ns
from . import sanitizers as _san
from .hangs import STACK_DUMP_ENV, Watchdog, dump_hung_child
from .protocol import ChildConfig, EventKind

CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
POLL_SECONDS = 0.2


class NativeExtras:
    def __init__(
        self, config: ChildConfig, mode: _san.Mode | None, watchdog: Watchdog | None
    ) -> None:
        self.config = config
        self.mode = mode
        self.watchdog = watchdog
        self.tmp = Path(tempfile.mkdtemp(prefix="memcycle-native-"))
        self.dump_path = self.tmp / "python-stacks.txt"
        self.roots: list[str] = []
        self.pid: int | None = None
        self.xml_marks: list[tuple[int, int, int, str]] = []  # (xml size, cycle, step, op)
        self.hang: dict[str, Any] | None = None
        self.program: str | None = None  # the child's executable (gdb's symbols under vgdb)

    # -- before the child starts ---------------------------------------------------------
    def prepare(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        env = {**env, STACK_DUMP_ENV: str(self.dump_path)}
        self.program = command[0] if command else None
        if self.mode is not None:
            command, env = _san.prepare(self.mode, command, env)
        return command, env

    # -- while it runs -------------------------------------------------------------------
    def _xml_path(self) -> Path | None:
        if self.mode is None or self.mode.tool != "valgrind" or self.pid is None:
            return None
        return Path(f"{self.mode.log_prefix}.{self.pid}.xml")

    def on_event(self, ev: dict[str, Any]) -> None:
        if self.watchdog is not None:
            self.watchdog.on_event(ev)
        kind = ev.get("kind")
        if kind == EventKind.START:
            self.roots = [str(r) for r in ev.get("source_roots") or []]
        elif kind == EventKind.STEP:
            xml = self._xml_path()
            if xml is not None:
                with contextlib.suppress(OSError):
                    self.xml_marks.append(
                        (xml.stat().st_size, ev.get("cycle", 0), ev.get("step", 0), ev.get("op"))
                    )

    def wait(self, proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
        """Wait for the child; True when a limit passed (its stacks are dumped, not killed)."""
        self.pid = proc.pid
        if self.watchdog is None:
            self.watchdog = Watchdog(run_timeout=timeout)
        elif self.watchdog.run_timeout is None:
            self.watchdog.run_timeout = timeout
        while True:
            try:
                proc.wait(timeout=POLL_SECONDS)
                return False
            except subprocess.TimeoutExpired:
                expired = self.watchdog.expired()
                if expired is None:
                    continue
                t0 = time.monotonic()
                self.hang = {
                    **expired,
                    **dump_hung_child(
                        proc.pid,
                        self.dump_path,
                        self.roots,
                        valgrind_program=self.program
                        if self.mode is not None and self.mode.tool == "valgrind"
                        else None,
                    ),
                    "dump_seconds": None,
                }
                self.hang["dump_seconds"] = round(time.monotonic() - t0, 2)
                return True

    # -- after it ended ------------------------------------------------------------------
    def finish(self, exit: dict[str, Any], command: list[str], env: dict[str, str]) -> None:
        try:
            if self.hang is not None:
                exit["timeout"] = self.hang["timeout"]
                exit["timeout_limit"] = self.hang["limit"]
                for k in (
                    "running",
                    "python_stacks",
                    "python_stacks_absent",
                    "native_stack",
                    "native_stack_absent",
                    "native_threads",
                    "native_stack_method",
                ):
                    if k in self.hang:
                        exit[k] = self.hang[k]
            if self.mode is not None:
                exit["sanitizer"] = self._sanitizer_reports()
            if exit.get("kind") == "signal" and exit.get("signal") in CRASH_SIGNALS:
                self._crash_stack(exit, env)
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the scratch folder when the run is abandoned (interrupted)."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _sanitizer_reports(self) -> dict[str, Any]:
        assert self.mode is not None
        found = _san.collect(self.mode, self.roots)
        for r in found["reports"]:
            off = r.get("offset")
            if off is None:
                continue
            # the first step whose end saw the XML grow past this error ran when it was written
            at = next((m for m in self.xml_marks if m[0] > off), None)
            if at is not None:
                r["cycle"], r["step"], r["op"] = at[1], at[2], at[3]
        return found

    def _crash_stack(self, exit: dict[str, Any], env: dict[str, str]) -> None:
        report = next(iter((exit.get("sanitizer") or {}).get("reports") or []), None)
        if report is not None and report.get("frames", {}).get("stack"):
            exit["native_stack"] = report["frames"]["stack"]
            exit["native_stack_method"] = f"{report['tool']} report"
            return
        if self.mode is not None:
            exit["native_stack_absent"] = (
                f"no {self.mode.tool} report named the crash, and no gdb replay is done under "
                f"--{'valgrind' if self.mode.tool == 'valgrind' else 'sanitizer'}; run without it "
                "for a gdb replay"
            )
            return
        fd = os.open(os.devnull, os.O_WRONLY)
        capture = self.tmp / "replay-capture.bin" if self.config.memray_path else None
        replay_env = {k: v for k, v in env.items() if k != STACK_DUMP_ENV}
        try:
            from .isolation import child_command

            cfg = replace(self.config, memray_path=str(capture) if capture else None)
            stacks = _ns.replay_crash(
                child_command(cfg, fd),
                env=replay_env,
                roots=self.roots,
                timeout=_ns.REPLAY_TIMEOUT_FACTOR * float(exit.get("seconds") or 0)
                + _ns.REPLAY_TIMEOUT_SLACK,
                pass_fds=(fd,),
            )
        finally:
            os.close(fd)
        exit["native_stack_method"] = stacks.method
        if stacks.absent:
            exit["native_stack_absent"] = stacks.absent
            return
        exit["native_stack"] = stacks.crashing_frames()
        if stacks.signal is not None and stacks.signal != exit.get("signal"):
            exit["native_stack_note"] = (
                f"the replay stopped on signal {stacks.signal}, the run died of {exit.get('signal')}"
            )
