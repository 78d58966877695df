"""Runs inside the child process: build the engine, replay the plan, emit events.

Invoked as `python -m memcycle.child --events-fd N --config JSON` by
`harness.isolation`; the config is a `protocol.ChildConfig`, the scenario in it. Every
step produces one JSON line on the events fd (not stdout, which the engine may write to),
flushed at once, so everything up to a crash is kept. faulthandler prints a traceback on a
fatal signal; the glibc text of an abort also lands on stderr for the parent to classify.

The event kinds are `protocol.EventKind`. A step whose capability is missing
(`scenario.step_skip_reason`) is a `step` event with `skipped` set; a scenario that needs,
as a whole, what the engine lacks (`scenario.unmet_needs`) is one `skip` event.

The child never outlives its run: it dies with its parent (`PR_SET_PDEATHSIG`), stops
itself at its own deadline (`ChildConfig.deadline`, the parent's timeout plus a grace;
faulthandler's watchdog is a C thread, so it fires even while an engine holds the GIL),
and a lifeline process kills the child's process group and every process carrying the
run's token once the child is gone, however it went (`child_lifeline`).

Here: the entry point and the engine's setup. The replay loop is `child_replay`, one
method per op `child_ops`, the measurements and the confirmation repeats `child_measure`.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import importlib.util
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from .child_lifeline import die_with_parent, start_lifeline
from .child_replay import Replayer, describe_error
from .compiletime import CompileClock, install_compile_clock
from .engines.base import Engine, EngineConfig
from .engines.registry import make_engine
from .hangs import install_child_hooks
from .preload import preload_engine_code
from .protocol import (
    EXIT_OK,
    EXIT_SETUP_ERROR,
    EXIT_STEP_ERROR,
    TEARDOWN_OP,
    ChildConfig,
    EventKind,
    EventWriter,
    ProtocolError,
)
from .recording import Recorder
from .scenario_needs import capability_problems, unmet_needs

# the replay, its op handlers and its measurements live beside this entry point (child_replay,
# child_ops, child_measure); `Replayer` stays importable from here for in-process replays
__all__ = ["Replayer", "main", "run"]


def _resolve_spec(spec: str) -> str:
    """Allow `path/to/file.py:factory` as well as `package.module:factory`."""
    module, sep, attr = spec.partition(":")
    if sep and module.endswith(".py"):
        path = Path(module).resolve()
        name = f"_memcycle_engine_{path.stem}"
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or mspec.loader is None:
            raise ImportError(f"cannot load engine module from {path}")
        mod = importlib.util.module_from_spec(mspec)
        sys.modules[name] = mod
        mspec.loader.exec_module(mod)
        return f"{name}:{attr}"
    return spec


def _source_roots(engine: Engine, spec: str) -> list[str]:
    """Files/directories whose frames count as engine code in memray attribution."""
    roots: list[str] = [str(r) for r in getattr(engine, "source_roots", ()) or ()]
    for modname in {type(engine).__module__, spec.partition(":")[0]}:
        mod = sys.modules.get(modname)
        f = getattr(mod, "__file__", None)
        if f:
            roots.append(str(Path(f).resolve()))
    return sorted(set(roots))


def lsan_leak_check() -> None:
    """Ask LeakSanitizer for a report now (the child leaves by os._exit, so none at exit)."""
    if os.environ.get("MEMCYCLE_LSAN_CHECK") != "1":
        return
    import ctypes

    fn = getattr(ctypes.CDLL(None), "__lsan_do_recoverable_leak_check", None)
    if fn is not None:
        fn()


def run(config: ChildConfig, events: EventWriter, compile_clock: CompileClock | None = None) -> int:
    """The child's work; returns the exit code."""
    # before the engine is built: its imports may bring numba, its factory may compile
    compile_clock = compile_clock or install_compile_clock()
    for p in reversed(config.sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    scenario = config.scenario
    preload_engine_code(config.engine)  # before recording: harness.preload says why
    # what is imported so far (interpreter, harness, NumPy, Numba, the engine's modules) lives
    # as long as the process: freezing it out of the collector makes the collection and the
    # object census at every reset point (`recording.python_objects`) walk only the objects the
    # run made, not the ~50-100k of the imports (a 200-cycle soak spent 80% of its child time
    # there). The engine is built after it, so its objects stay collectable.
    gc.freeze()
    recorder = Recorder(
        config.memray_path,
        native=config.native,
        use_tracemalloc=config.tracemalloc,
        trace_python_allocators=config.trace_python_allocators,
    )
    recorder.start()
    code = EXIT_OK
    try:
        try:
            spec = _resolve_spec(config.engine)
            # [engine] scalars, then [engine.<spec>] for exactly this spec, then the caller's
            options = {**scenario.options(config.engine), **config.options}
            engine = make_engine(
                spec,
                EngineConfig(allocator=config.allocator, faults=config.faults, options=options),
            )
        except Exception as exc:
            events.emit(EventKind.ERROR, phase="setup", error=describe_error(exc))
            return EXIT_SETUP_ERROR
        caps = engine.capabilities
        # a peer engine allocates with its own allocator and says so ("native")
        own_allocator = getattr(engine, "allocator", None)
        events.emit(
            EventKind.START,
            engine=getattr(engine, "name", config.engine),
            allocator=own_allocator if isinstance(own_allocator, str) else None,
            capabilities=caps.to_dict() if hasattr(caps, "to_dict") else {},
            source_roots=_source_roots(engine, spec),
            pid=os.getpid(),
            t=time.time(),
        )
        problems = capability_problems(engine)
        if problems:  # enforced capabilities must be well-formed: an adapter error
            events.emit(
                EventKind.ERROR,
                phase="setup",
                error={
                    "type": "memcycle.engines.base.EngineError",
                    "message": f"engine {config.engine!r} declares bad capabilities: "
                    + "; ".join(problems),
                    "traceback": "",
                    "verdict": None,
                },
            )
            return EXIT_SETUP_ERROR
        # what the plan needs as a whole (requires, metric, a dimension change): else skip
        unmet = unmet_needs(scenario, engine)
        if unmet:
            events.emit(EventKind.SKIP, reason="; ".join(unmet))
            return EXIT_OK
        rep = Replayer(scenario, engine, recorder, events, compile_clock)
        rep.confirm_enabled = config.confirm
        if rep.replay():
            ev = rep.teardown()
            lsan_leak_check()  # under --sanitizer asan: the engine's leaks, after its last close
            events.emit(EventKind.STEP, **asdict(ev))
            rep.mark(ev.cycle, ev.step, TEARDOWN_OP)
            if not ev.ok:
                code = EXIT_STEP_ERROR
        else:
            code = EXIT_STEP_ERROR
    finally:
        recorder.stop()
    return code


def _config_text(value: str) -> str:
    """`--config` is the JSON itself or, for one too long for argv, `@path` of a file holding it."""
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m memcycle.child", description=__doc__)
    ap.add_argument("--events-fd", type=int, required=True)
    ap.add_argument(
        "--config", required=True, help="a protocol.ChildConfig as JSON, or @FILE holding it"
    )
    args = ap.parse_args(argv)
    die_with_parent()
    lifeline = start_lifeline()
    faulthandler.enable(file=sys.stderr, all_threads=True)
    try:
        config = ChildConfig.from_json(_config_text(args.config))
    except (ProtocolError, OSError) as exc:
        ap.error(str(exc))  # exit 2, before any event: the parent reports the stderr line
    if config.deadline is not None and config.deadline > 0:
        # the C watchdog dumps every thread's stack to stderr and _exit(1)s the child
        faulthandler.dump_traceback_later(config.deadline, exit=True)
    install_child_hooks()  # all Python stacks on SIGUSR1, gdb may attach (harness.hangs)
    stream = os.fdopen(args.events_fd, "w", buffering=1, encoding="utf-8")
    events = EventWriter(stream, config.event_token)
    t0 = time.perf_counter()
    compile_clock = install_compile_clock()
    code = run(config, events, compile_clock)
    # the whole child's compile seconds, the engine's setup included (steps count their own)
    events.emit(
        EventKind.END,
        code=code,
        seconds=time.perf_counter() - t0,
        compile_seconds=compile_clock.seconds(),
    )
    del lifeline  # closed by os._exit below: the lifeline then ends the process group
    stream.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: finalizers of a broken engine must not turn a
    # reported error into a second, unrelated crash
    os._exit(code)


if __name__ == "__main__":
    main()
