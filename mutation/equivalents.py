"""The equivalent mutants, as data: what `run.py <target> --check` accepts as a survivor.

docs/mutation.md says *why* each listed mutant changes nothing observable; this file
(`mutation/equivalent.toml`) says *which* mutants those are, so a full run can be judged by a
machine: every survivor must be listed, and anything else is a gap in the tests (or a new
equivalent to be argued in the docs and listed here).

A mutant is named by its file, its operator and the text of the line it mutates (stripped),
not by its line number: an edit above it moves the number but not the mutant. An edit of the
line itself makes the entry stale, and the survivor is judged afresh, as it should be. An
entry covers `count` survivors (default 1: a line with two sites of one operator, or two lines
of the same text, need `count = 2`), so one argued mutant never hides another.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

EQUIVALENTS = Path(__file__).resolve().parent / "equivalent.toml"


@dataclass(frozen=True)
class Survivor:
    """A mutant the tests did not notice: where it is and what it changed."""

    file: str
    line: int
    operator: str
    text: str  # the original source line, stripped
    diff: str = ""


@dataclass(frozen=True)
class Equivalent:
    target: str
    file: str
    operator: str
    text: str
    reason: str
    count: int = 1

    def matches(self, s: Survivor) -> bool:
        return (self.file, self.operator, self.text) == (s.file, s.operator, s.text)


class EquivalentsError(ValueError):
    """equivalent.toml is malformed: named with the entry and what is wrong."""


_KEYS = ("target", "file", "operator", "text", "reason")


def load_equivalents(path: Path = EQUIVALENTS) -> list[Equivalent]:
    """Every `[[equivalent]]` entry; each must have all of target, file, operator, text and a
    non-empty reason (an entry without a reason is an unargued survivor)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EquivalentsError(f"{path}: {exc}") from None
    unknown = set(data) - {"equivalent"}
    if unknown:
        raise EquivalentsError(f"{path}: unknown table(s) {sorted(unknown)}; only [[equivalent]]")
    out: list[Equivalent] = []
    for n, entry in enumerate(data.get("equivalent", []), 1):
        if not isinstance(entry, dict):
            raise EquivalentsError(f"{path}: equivalent #{n} is not a table")
        missing = [k for k in _KEYS if not isinstance(entry.get(k), str) or not entry[k].strip()]
        extra = sorted(set(entry) - {*_KEYS, "count"})
        count = entry.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            extra.append(f"count must be a whole number >= 1, got {count!r}")
        if missing or extra:
            raise EquivalentsError(
                f"{path}: equivalent #{n} ({entry.get('file')}: {entry.get('text')!r}): "
                + ", ".join(
                    ([f"needs a non-empty {', '.join(missing)}"] if missing else [])
                    + ([f"unknown key(s) or bad value: {extra}"] if extra else [])
                )
            )
        out.append(Equivalent(**{k: entry[k].strip() for k in _KEYS}, count=count))
    return out


def judge_survivors(
    target: str, survivors: list[Survivor], equivalents: list[Equivalent]
) -> tuple[list[Survivor], list[Equivalent]]:
    """(survivors no entry lists, entries of `target` that matched no survivor). The first are
    the failures of a check; the second are stale entries, reported so the list stays true."""
    mine = [e for e in equivalents if e.target == target]
    room = {id(e): e.count for e in mine}
    unlisted: list[Survivor] = []
    for s in survivors:
        entry = next((e for e in mine if e.matches(s) and room[id(e)] > 0), None)
        if entry is None:
            unlisted.append(s)
        else:
            room[id(entry)] -= 1
    stale = [e for e in mine if room[id(e)] == e.count]
    return unlisted, stale


BEGIN = "<!-- equivalents: generated from mutation/equivalent.toml, do not edit by hand -->"
END = "<!-- end of equivalents -->"


def markdown(equivalents: list[Equivalent]) -> str:
    """The list as docs/mutation.md shows it (between BEGIN and END): by target, one bullet per
    entry, so the docs and the machine's list can never disagree."""
    out = [BEGIN]
    for target in sorted({e.target for e in equivalents}):
        mine = [e for e in equivalents if e.target == target]
        out.append(f"\n**{target}** ({sum(e.count for e in mine)}):\n")
        for e in mine:
            op = e.operator.removeprefix("core/")
            times = f" (x{e.count})" if e.count > 1 else ""
            code = f"`` {e.text} ``" if "`" in e.text else f"`{e.text}`"
            out.append(f"- `{e.file}` {code}: {op}{times}. {e.reason.rstrip('.')}.")
    out.append(END)
    return "\n".join(out) + "\n"


def entry_for(target: str, s: Survivor) -> str:
    """A ready-to-edit TOML entry for a survivor judged equivalent (its reason left to write)."""
    return (
        "[[equivalent]]\n"
        f'target = "{target}"\n'
        f'file = "{s.file}"\n'
        f'operator = "{s.operator}"\n'
        f"text = {_toml_string(s.text)}\n"
        'reason = ""\n'
    )


def _toml_string(text: str) -> str:
    if "'" not in text and "\n" not in text:
        return f"'{text}'"  # a literal string: backslashes and quotes as written
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        raise SystemExit("usage: python mutation/equivalents.py --markdown")
    print(markdown(load_equivalents()), end="")
