"""Every tolerance flag of `memcycle gate` reaches the comparison it governs (docs/mutation.md)."""

from __future__ import annotations

import argparse

import pytest
from memcycle.gate import GateInputError, GateResult, Tolerances, add_arguments, tolerances_from


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["run", *argv])


def test_without_flags_the_tolerances_are_the_documented_defaults() -> None:
    assert tolerances_from(_args()) == Tolerances()
    assert Tolerances() == Tolerances(0.25, 1 << 20, 0.25, 8 << 20, 2.0, 5.0)


def test_every_tolerance_flag_reaches_its_own_field() -> None:
    got = tolerances_from(
        _args(
            "--tolerance-leak",
            "10%",
            "--tolerance-leak-bytes",
            "2KiB",
            "--tolerance-peak",
            "0.5",
            "--tolerance-peak-bytes",
            "3M",
            "--tolerance-time",
            "1.5",
            "--tolerance-time-seconds",
            "0",
        )
    )
    assert got == Tolerances(0.10, 2048, 0.5, 3 << 20, 1.5, 0.0)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--tolerance-leak", "-1%"),
        ("--tolerance-leak", "nan"),
        ("--tolerance-peak", "lots"),
        ("--tolerance-leak-bytes", "-5"),
        ("--tolerance-peak-bytes", "1 parsec"),
        ("--tolerance-time", "0.99"),
        ("--tolerance-time", "inf"),
        ("--tolerance-time-seconds", "-0.1"),
    ],
)
def test_a_bad_tolerance_names_its_flag(flag: str, value: str) -> None:
    with pytest.raises(GateInputError, match=f"^{flag} is "):
        tolerances_from(_args(f"{flag}={value}"))


def test_the_edges_of_each_tolerance_are_accepted() -> None:
    got = tolerances_from(
        _args("--tolerance-leak", "0", "--tolerance-time", "1", "--tolerance-peak-bytes", "0")
    )
    assert (got.leak_rel, got.time_rel, got.peak_abs) == (0.0, 1.0, 0)


def test_missing_runs_fail_the_gate_only_when_not_allowed() -> None:
    from memcycle.gate import Change

    gone = Change("k", "missing", None, None, "gone")
    assert GateResult(missing=[gone], compared=1).failures() == [
        "1 baseline run(s) missing (--allow-missing relaxes)"
    ]
    assert GateResult(missing=[gone], compared=1, allow_missing=True).failures() == []
    assert GateResult(compared=1).failed is False
    assert GateResult(compared=0, nothing_compared="no runs").failures() == [
        "nothing compared: no runs"
    ]
