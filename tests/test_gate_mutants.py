"""Every tolerance flag of `memcycle gate` reaches the comparison it governs (docs/mutation.md)."""

from __future__ import annotations

import argparse

import pytest
from memcycle.commands.gate import prepare_parser, tolerances_from
from memcycle.gate import GateInputError, GateResult, Tolerances


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    prepare_parser(parser)
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


# -- each comparison at the edge of its tolerance, through gate.compare ---------------------


def _peaks(old_mib: int, new_mib: int, tol: Tolerances) -> list[str]:
    from factories import MiB, make_run
    from memcycle import gate
    from test_gate import _report

    base = gate.make_baseline(_report(make_run(peak_bytes=old_mib * MiB)))
    return [r.metric for r in gate.compare(base, _report(make_run(peak_bytes=new_mib * MiB)), tol)]


def test_a_peak_exactly_at_the_relative_tolerance_is_not_a_regression() -> None:
    tol = Tolerances(peak_rel=0.25, peak_abs=1 << 20)
    assert _peaks(40, 50, tol) == []  # +25% exactly
    assert _peaks(40, 51, tol) == ["process-peak"]


def test_a_peak_exactly_at_the_absolute_tolerance_is_not_a_regression() -> None:
    tol = Tolerances(peak_rel=0.01, peak_abs=8 << 20)
    assert _peaks(40, 48, tol) == []  # +8 MiB exactly
    assert _peaks(40, 49, tol) == ["process-peak"]


def test_a_small_peak_growth_is_judged_on_the_difference_not_the_sum() -> None:
    assert _peaks(40, 45, Tolerances(peak_rel=0.1, peak_abs=8 << 20)) == []


def test_time_tolerance_is_a_factor_of_the_old_time() -> None:
    from factories import make_run
    from memcycle import gate
    from test_gate import _report, _timed

    base = gate.make_baseline(_report(_timed(make_run(), 4.0)))
    slower = gate.compare(base, _report(_timed(make_run(), 10.0)))  # 2.5x and +6 s
    assert [r.metric for r in slower] == ["time"]


def test_the_engine_peak_tolerance_is_a_fraction_not_a_factor() -> None:
    from factories import MiB, make_run
    from memcycle import gate
    from test_gate import _report, _timed

    base = gate.make_baseline(_report(_timed(make_run(), 1.0, engine_peak=100 * MiB)))
    now = _report(_timed(make_run(), 1.0, engine_peak=120 * MiB))  # +20%: within 25%
    assert gate.compare(base, now) == []
    worse = _report(_timed(make_run(), 1.0, engine_peak=130 * MiB))
    assert [r.metric for r in gate.compare(base, worse)] == ["peak"]


def test_a_worse_verdict_names_the_new_finding_summary() -> None:
    from factories import double_free_finding, make_run
    from memcycle import gate
    from test_gate import _report

    base = gate.make_baseline(_report(make_run()))
    now = _report(make_run(verdict="double-free", fail_at=2, findings=[double_free_finding()]))
    [reg] = gate.compare(base, now)
    assert "(new finding at cycle 2: double free of block #12 'sparse_map.keys'" in reg.message


def test_a_change_is_immutable() -> None:
    import dataclasses

    from memcycle.gate import Change

    change = Change("k", "leak", 1, 2, "grew")
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.new = 3  # type: ignore[misc]
