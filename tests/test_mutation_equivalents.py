"""mutation/equivalents.py: which survivors a mutation check accepts as argued equivalents, and
mutation/equivalent.toml, the list itself, kept true to the code it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "mutation"))

from equivalents import (  # noqa: E402
    EQUIVALENTS,
    Equivalent,
    EquivalentsError,
    Survivor,
    entry_for,
    judge_survivors,
    load_equivalents,
)

OP = "core/ReplaceBinaryOperator_BitOr_BitAnd"
ANNOTATION = "def _grew(old: float | None, new: float) -> bool:"


def _listed(text: str = ANNOTATION, count: int = 1, target: str = "gate") -> Equivalent:
    return Equivalent(target, "harness/gate.py", OP, text, "an annotation", count)


def test_a_listed_survivor_is_accepted_wherever_its_line_has_moved() -> None:
    moved = Survivor("harness/gate.py", 412, OP, ANNOTATION)
    assert judge_survivors("gate", [moved], [_listed()]) == ([], [])


@pytest.mark.parametrize(
    "other",
    [
        Survivor("harness/gate.py", 10, OP, "def _grew(old: float | None, new: int) -> bool:"),
        Survivor("harness/gate.py", 10, "core/ReplaceComparisonOperator_Lt_LtE", ANNOTATION),
        Survivor("harness/oracle.py", 10, OP, ANNOTATION),
    ],
    ids=["its line was edited", "another operator", "another file"],
)
def test_a_survivor_not_exactly_listed_is_a_failure_and_the_entry_is_stale(other: Survivor) -> None:
    unlisted, stale = judge_survivors("gate", [other], [_listed()])
    assert unlisted == [other] and stale == [_listed()]


def test_an_entry_covers_only_its_count_of_survivors_so_one_argument_hides_no_other() -> None:
    twice = [Survivor("harness/gate.py", n, OP, ANNOTATION) for n in (5, 9)]
    unlisted, stale = judge_survivors("gate", twice, [_listed()])
    assert unlisted == [twice[1]] and stale == []
    assert judge_survivors("gate", twice, [_listed(count=2)]) == ([], [])


def test_an_entry_of_another_target_accepts_nothing_here() -> None:
    s = Survivor("harness/gate.py", 5, OP, ANNOTATION)
    unlisted, stale = judge_survivors("gate", [s], [_listed(target="oracle")])
    assert unlisted == [s] and stale == []


@pytest.mark.parametrize(
    ("toml", "complaint"),
    [
        ('[[equivalent]]\ntarget = "gate"\nfile = "f"\noperator = "o"\ntext = "t"\n', "reason"),
        (
            '[[equivalent]]\ntarget = "gate"\nfile = "f"\noperator = "o"\ntext = "t"\n'
            'reason = "   "\n',
            "reason",
        ),
        (
            '[[equivalent]]\ntarget = "gate"\nfile = "f"\noperator = "o"\ntext = "t"\n'
            'reason = "r"\nline = 3\n',
            "unknown key",
        ),
        (
            '[[equivalent]]\ntarget = "gate"\nfile = "f"\noperator = "o"\ntext = "t"\n'
            'reason = "r"\ncount = 0\n',
            "count must be a whole number",
        ),
        ("[equivalents]\n", "unknown table"),
        ("[[equivalent]\n", "equivalent.toml"),
    ],
    ids=["no reason", "a blank reason", "an unknown key", "a count of 0", "a typo", "not TOML"],
)
def test_a_malformed_list_is_refused_naming_the_entry_and_the_problem(
    toml: str, complaint: str, tmp_path: Path
) -> None:
    path = tmp_path / "equivalent.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(EquivalentsError, match=complaint):
        load_equivalents(path)


def test_a_suggested_entry_loads_once_its_reason_is_written(tmp_path: Path) -> None:
    s = Survivor("harness/gate.py", 5, OP, "x = {'a': \"b\"} | y  # it's")
    path = tmp_path / "equivalent.toml"
    path.write_text(entry_for("gate", s).replace('reason = ""', 'reason = "r"'), encoding="utf-8")
    (entry,) = load_equivalents(path)
    assert entry.matches(s)


def test_every_listed_equivalent_names_a_line_that_is_in_its_file_today() -> None:
    """An entry whose line is gone would accept nothing; kept out so the list stays true."""
    entries = load_equivalents(EQUIVALENTS)
    assert entries, "the list is empty"
    for e in entries:
        lines = [ln.strip() for ln in (ROOT / e.file).read_text(encoding="utf-8").splitlines()]
        assert e.text in lines, f"{e.file}: no line {e.text!r} (listed for {e.target})"


def test_the_docs_show_exactly_the_list_the_check_uses() -> None:
    """docs/mutation.md's equivalents section is generated from equivalent.toml: regenerate it
    (`python mutation/equivalents.py --markdown`) whenever the list changes."""
    from equivalents import BEGIN, END, markdown

    docs = (ROOT / "docs" / "mutation.md").read_text(encoding="utf-8")
    assert BEGIN in docs and END in docs
    shown = docs[docs.index(BEGIN) : docs.index(END) + len(END)] + "\n"
    assert shown == markdown(load_equivalents(EQUIVALENTS))
