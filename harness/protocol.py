"""The contract between the parent (`runner`, `isolation`) and the child (`child`), in one place.

- `ChildConfig`: what the parent tells the child, typed and validated. It carries the scenario
  the parent already parsed (serialised), so the child never reads the scenario file again.
- `EventKind`: the kinds of the JSON lines the child writes on its events fd.
- The ops that name reset points (`RESET_OPS`, `EMPTYING_OPS`, `MEASURED_OPS`).
- The child's exit codes, its environment names, and the memray marker encoding.
- The event lines: `EventWriter` (child) stamps each with the run's token and a sequence
  number, `EventReader` (parent) tells them from lines the engine wrote.
- `fold_events`: the one reading of the event stream (`ChildStream`), for `isolation.classify`
  (how the child ended) and `runner` (the record).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TextIO

from .records import StepEvent
from .scenario import Cycle, Scenario, ScenarioError, Step, expand_plan


class ProtocolError(ValueError):
    """The child's configuration or event stream is not what this memcycle writes: a bug of
    memcycle (or a parent and child of different versions), never the engine's."""


# -- event kinds -------------------------------------------------------------------------------
class EventKind(StrEnum):
    """`kind` of one event line (a str: `ev["kind"] == EventKind.END` holds for the JSON)."""

    START = "start"  # engine built: name, allocator, capabilities, source roots, pid
    STEP = "step"  # one `StepEvent`
    MARKER = "marker"  # a memray boundary (index, cycle, step, op)
    CONFIRM = "confirm"  # an extra cycle follows: a repeat of the last one (rising series)
    ERROR = "error"  # setup failed, or malformed capabilities
    SKIP = "skip"  # the scenario needs, as a whole, what the engine lacks
    END = "end"  # the child finished (exit code, seconds, compile seconds)
    # written by the parent, never by the child
    GARBAGE = "garbage"  # a line that is not a JSON object (or too long to read)
    FORGED = "forged"  # a line without the run's token or out of sequence (the engine wrote it)
    PLAN = "plan"  # runner -> its listeners, before the child starts (scenario, cycles, ops)


# -- reset points --------------------------------------------------------------------------------
# Scenario ops after which the engine holds no rows: the points where growth is compared from
# cycle to cycle and after which a new dimension may be opened. (`close` is not among them: it
# is the child's own last step, after the last cycle.)
RESET_OPS: tuple[str, ...] = ("clear", "destroy", "reload")
# the step the child adds after the last cycle: close the engine, nothing may stay allocated
TEARDOWN_OP = "close"
# ops after which the allocator ledger must hold no engine block (a block live there leaked)
EMPTYING_OPS: tuple[str, ...] = (*RESET_OPS, TEARDOWN_OP)
# ops after which the child measures Python objects by type and puts a memray marker in the
# capture (as it does at the end of every cycle and after the teardown)
MEASURED_OPS: tuple[str, ...] = (*RESET_OPS, "checkpoint")

# -- the child's exit codes -----------------------------------------------------------------------
EXIT_OK = 0
EXIT_STEP_ERROR = 3  # a step raised (its event says which and why)
EXIT_SETUP_ERROR = 4  # the engine could not be built, or its capabilities are malformed
EXIT_ORPHANED = 5  # the parent was gone before the child could tie itself to it

# the child's environment: the run's token (every process of the run carries it, so none
# outlives the run) and the parent's pid (a child whose parent is already gone leaves at once)
TOKEN_ENV = "MEMCYCLE_RUN_TOKEN"
PARENT_ENV = "MEMCYCLE_PARENT_PID"

# what is kept of an engine's free text (an exception message): a 50 MB message must not become
# a timeout or a 50 MB report.json
MAX_MESSAGE = 64 * 1024


def bound_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters not kept]"


# -- memray markers ------------------------------------------------------------------------------
# A marker is a malloc/free of a reserved size from a function of this name (`recording`), so
# `analysis` can split the allocation stream per cycle without a clock. The sizes are odd, ~3 MB.
MARKER_BASE = 3_141_593
MARKER_STRIDE = 2
MARKER_FUNCTION = "_memcycle_marker"


def marker_size(index: int) -> int:
    return MARKER_BASE + MARKER_STRIDE * index


def marker_index(size: int) -> int | None:
    """The marker index a reserved size encodes, or None."""
    off = size - MARKER_BASE
    if off < 0 or off % MARKER_STRIDE or off // MARKER_STRIDE > 10_000_000:
        return None
    return off // MARKER_STRIDE


# -- the child's configuration ---------------------------------------------------------------------
@dataclass(frozen=True)
class ChildConfig:
    """Everything the child needs for one run; `to_json` is its `--config` argument.

    `from_json` accepts exactly what `to_json` writes: every field present, no other, each of
    its type (a mismatch is a ProtocolError naming the field)."""

    scenario: Scenario  # as the parent parsed it (the fault matrix may have emptied its faults)
    engine: str  # built-in name, `package.module:factory` or `file.py:factory`
    allocator: str = "numpy"
    faults: tuple[str, ...] = ()  # the refimpl faults to switch on (the scenario's included)
    options: dict[str, Any] = field(default_factory=dict)  # the caller's engine options
    memray_path: str | None = None  # where memray writes its capture; None: memray off
    native: bool = False  # memray records native stacks
    # tracemalloc's bookkeeping floods a memray capture: on when memray is off (runner decides)
    tracemalloc: bool = True
    trace_python_allocators: bool = False  # memray traces pymalloc too
    confirm: bool = True  # repeat the last cycle while a cheap series still rises
    sys_path: tuple[str, ...] = ()  # prepended to sys.path once memcycle is imported
    deadline: float | None = None  # seconds after which the child stops itself
    event_token: str | None = None  # stamped on every event, so a forged line is told apart

    def to_json(self) -> str:
        return json.dumps(_encode(ChildConfig, self, compact=False), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ChildConfig:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProtocolError(f"child config: not JSON: {exc}") from None
        return typing.cast(ChildConfig, _decode(ChildConfig, data, "child config"))


# Encoding: dataclasses as objects, tuples as lists, and a tuple of (str, value) pairs (the frozen
# form of a TOML table: engine options, filters, `expect`) as an object. In the scenario, fields
# at their default are left out (`compact`) and the plan is not sent: the child expands it from
# the cycles as `parse_scenario` did, so the config stays as small as the scenario's TOML.
_DERIVED: dict[type, tuple[str, ...]] = {Scenario: ("plan",)}
_NESTED: tuple[type, ...] = (Scenario, Cycle, Step)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_pairs(tp: Any) -> bool:
    """tuple[tuple[str, X], ...]: a frozen table."""
    if typing.get_origin(tp) is not tuple:
        return False
    args = typing.get_args(tp)
    if len(args) != 2 or args[1] is not Ellipsis:
        return False
    inner = args[0]
    return typing.get_origin(inner) is tuple and typing.get_args(inner)[:1] == (str,)


def _encode(tp: Any, value: Any, *, compact: bool) -> Any:
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        compact = compact or tp in _NESTED
        out = {}
        for f in dataclasses.fields(tp):
            if f.name in _DERIVED.get(tp, ()):
                continue
            v = getattr(value, f.name)
            if compact and f.default is not dataclasses.MISSING and v == f.default:
                continue
            out[f.name] = _encode(hints[f.name], v, compact=compact)
        return out
    if value is None:
        return None
    if _is_pairs(tp):
        item = typing.get_args(typing.get_args(tp)[0])[1]
        return {k: _encode(item, v, compact=compact) for k, v in value}
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return [_encode(item, v, compact=compact) for v in value]
    if origin in (typing.Union, types.UnionType):
        arg = next(a for a in typing.get_args(tp) if a is not type(None))
        return _encode(arg, value, compact=compact)
    return value


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp) or _is_pairs(tp) or typing.get_origin(tp) is dict:
        return "an object"
    if typing.get_origin(tp) is tuple:
        return "a list"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _decode(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `tp`; ProtocolError naming `where` when it is not."""

    def wrong() -> ProtocolError:
        got = json.dumps(value)[:80] if _jsonable(value) else repr(value)[:80]
        return ProtocolError(f"{where}: expected {_type_name(tp)}, got {got}")

    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _decode(arg, value, where)
                except ProtocolError:
                    pass
        raise wrong()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong()
        return _decode_dataclass(typing.cast(type, tp), value, where)
    if _is_pairs(tp):
        if not isinstance(value, dict):
            raise wrong()
        item = typing.get_args(typing.get_args(tp)[0])[1]
        return tuple((k, _decode(item, v, f"{where}.{k}")) for k, v in value.items())
    if origin is tuple:
        if not isinstance(value, list):
            raise wrong()
        item = typing.get_args(tp)[0]
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    raise ProtocolError(f"{where}: no decoder for type {tp!r}")  # a field type added here


def _decode_dataclass(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in _DERIVED.get(cls, ())]
    names = [f.name for f in fields]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ProtocolError(
            f"{where}: unknown field {unknown[0]!r}; expected one of {', '.join(names)}"
        )
    # the top level is written whole by `to_json`; the scenario leaves its defaults out
    strict = cls is ChildConfig
    kw: dict[str, Any] = {}
    for f in fields:
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        if f.name not in data:
            if strict or not has_default:
                raise ProtocolError(f"{where}: missing field {f.name!r}")
            continue
        kw[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
    obj = cls(**kw)
    if cls is Scenario:
        try:
            obj = dataclasses.replace(obj, plan=expand_plan(obj.cycles, obj.dimension))
        except ScenarioError as exc:
            raise ProtocolError(f"{where}: {exc}") from None
    return obj


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# -- the event lines ---------------------------------------------------------------------------
class EventWriter:
    """The child's side: one JSON line per event on the events fd, flushed at once (all up to a
    crash is kept), each stamped with the run's token and a sequence number, so the parent can
    tell the child's events from a line an engine wrote to the same fd (a forged `end` must not
    make an unfinished run look finished)."""

    def __init__(self, stream: TextIO, token: str | None = None) -> None:
        self.stream = stream
        self.token = token
        self.seq = 0

    def emit(self, kind: EventKind, **payload: Any) -> None:
        payload["kind"] = kind
        if self.token is not None:
            payload["tok"] = self.token
            payload["seq"] = self.seq
            self.seq += 1
        self.stream.write(json.dumps(payload, default=_event_value) + "\n")
        self.stream.flush()


def _event_value(x: Any) -> Any:
    """JSON for what json cannot write itself: NumPy scalars and arrays, sets; else the repr."""
    tolist = getattr(x, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(x, set | frozenset):
        return list(x)
    return repr(x)


class EventReader:
    """The parent's side: each line read from the events fd as an event. A line that is no
    JSON object is a `garbage` event; one without the run's token, or out of sequence, was
    written by someone else (the engine) and is a `forged` event, kept only as evidence."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.seq = 0

    def read(self, line: str) -> dict[str, Any] | None:
        """The event of one line (None for an empty line); call it in the order of the lines."""
        line = line.strip()
        if not line:
            return None
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            ev = None
        if not isinstance(ev, dict):
            return {"kind": EventKind.GARBAGE, "text": line[:500]}
        if ev.get("kind") == EventKind.GARBAGE:
            return ev
        if ev.pop("tok", None) != self.token or ev.pop("seq", None) != self.seq:
            return {"kind": EventKind.FORGED, "text": line[:500]}
        self.seq += 1
        return ev


# -- the fold of the event stream -------------------------------------------------------------------
@dataclass
class ChildStream:
    """What the child's event stream says, read once (`fold_events`)."""

    start: dict[str, Any] | None = None  # the `start` event: the engine was built
    steps: list[StepEvent] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)  # without their `kind`
    confirmed: list[int] = field(default_factory=list)  # cycles added to confirm a rising series
    setup_error: dict[str, Any] | None = None  # an `error` event's error (setup failed)
    # the first error the child reported, of setup or of a step: the exception it raised
    first_error: dict[str, Any] | None = None
    skip_reason: str | None = None  # the whole scenario was skipped (unmet needs)
    end: dict[str, Any] | None = None  # the `end` event: the child finished its work
    forged: list[str] = field(default_factory=list)  # lines someone else wrote on the fd
    garbage: list[str] = field(default_factory=list)  # lines that are no JSON object
    malformed: list[str] = field(default_factory=list)  # child events this memcycle cannot read

    @property
    def started(self) -> bool:
        return self.start is not None

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def compile_seconds(self) -> float | None:
        """Numba compile seconds of the whole child (from `end`); None when it did not end."""
        value = (self.end or {}).get("compile_seconds")
        return float(value) if isinstance(value, int | float) else None


def fold_events(events: Iterable[dict[str, Any]]) -> ChildStream:
    """Fold the events (as `isolation.run_child` read them) into a `ChildStream`.

    Never raises: an event of the child that does not read as what this memcycle writes is
    listed in `malformed` (the runner turns that into an `error` run)."""
    out = ChildStream()
    for raw in events:
        ev = dict(raw)
        kind = ev.pop("kind", None)
        error = ev.get("error")
        if out.first_error is None and kind in (EventKind.ERROR, EventKind.STEP) and error:
            out.first_error = error
        if kind == EventKind.STEP:
            try:
                out.steps.append(StepEvent.from_dict(ev))
            except TypeError as exc:
                out.malformed.append(f"step event {json.dumps(raw)[:200]}: {exc}")
        elif kind == EventKind.MARKER:
            out.markers.append(ev)
        elif kind == EventKind.START:
            out.start = ev
        elif kind == EventKind.CONFIRM:
            cycle = ev.get("cycle")
            if isinstance(cycle, int) and not isinstance(cycle, bool):
                out.confirmed.append(cycle)
            else:
                out.malformed.append(f"confirm event without a cycle: {json.dumps(raw)[:200]}")
        elif kind == EventKind.ERROR:
            out.setup_error = error
        elif kind == EventKind.SKIP:
            out.skip_reason = str(ev.get("reason") or "")
        elif kind == EventKind.END:
            out.end = ev
        elif kind == EventKind.FORGED:
            out.forged.append(str(ev.get("text", "")))
        elif kind == EventKind.GARBAGE:
            out.garbage.append(str(ev.get("text", "")))
        else:
            out.malformed.append(f"event of unknown kind {kind!r}")
    return out
