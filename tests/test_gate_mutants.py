"""Every tolerance flag of `memcycle gate` reaches the comparison it governs (docs/mutation.md)."""

from __future__ import annotations

import argparse

import pytest
from memcycle.commands.gate import prepare_parser, tolerances_from
from memcycle.gate import GateInputError, GateResult, Tolerances
from memcycle.records import Report, RunRecord


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


# -- the verdict set, the loop over runs and metrics, and the messages (full run's survivors) ----


def _classes(verdicts: list[str], expected: str = "wrong-result") -> RunRecord:
    from factories import make_run

    run = make_run(verdict=verdicts[0], expected=expected)
    run.verdicts = list(verdicts)
    return run


def _one(run: RunRecord) -> Report:
    from test_gate import _report

    return _report(run)


def test_a_new_verdict_class_next_to_the_same_headline_is_a_regression() -> None:
    from memcycle import gate

    base = gate.make_baseline(_one(_classes(["wrong-result"])))
    [reg] = gate.compare(base, _one(_classes(["wrong-result", "leak"])))
    assert (reg.metric, reg.old, reg.new) == (
        "verdicts",
        ["wrong-result"],
        ["wrong-result", "leak"],
    )
    assert reg.message.startswith("new verdict class leak next to wrong-result")


def test_the_same_verdict_classes_again_are_not_a_regression() -> None:
    from memcycle import gate

    base = gate.make_baseline(_one(_classes(["wrong-result", "leak"])))
    res = gate.diff(base, _one(_classes(["wrong-result", "leak"])))
    assert res.regressions == [] and not res.failed


def test_a_baseline_without_the_verdict_set_compares_the_headline_only() -> None:
    from memcycle import gate

    base = gate.make_baseline(_one(_classes(["wrong-result"])))
    for entry in base["runs"].values():
        del entry["verdicts"]  # written before the set was recorded
    assert gate.compare(base, _one(_classes(["wrong-result", "leak"]))) == []


def test_an_unknown_verdict_ranks_as_an_error_never_as_clean() -> None:
    """A report from a newer memcycle (or another tool) may name a verdict this one does not
    know: it must not read as an improvement on a leak (records.py: it ranks as an error)."""
    from factories import MiB, make_run
    from memcycle import gate

    base = gate.make_baseline(_one(make_run(verdict="leak", live_growth=MiB)))
    res = gate.diff(base, _one(make_run(verdict="stack-smash")))
    assert [(c.metric, c.old, c.new) for c in res.regressions] == [
        ("verdict", "leak", "stack-smash")
    ]
    assert res.improvements == [] and res.failed


def test_a_lower_severity_that_still_fails_its_expectation_is_an_improvement() -> None:
    from factories import make_run
    from memcycle import gate

    base = gate.make_baseline(_one(make_run(verdict="double-free")))  # expected clean
    res = gate.diff(base, _one(make_run(verdict="wrong-result")))  # still not clean
    assert [(c.metric, c.old, c.new) for c in res.improvements] == [
        ("verdict", "double-free", "wrong-result")
    ]
    assert res.regressions == []


def test_a_run_that_could_not_run_is_not_judged_on_its_figures() -> None:
    from factories import MiB, make_run
    from memcycle import gate
    from memcycle.records import Finding

    base = gate.make_baseline(_one(make_run(peak_bytes=40 * MiB)))
    errored = make_run(
        verdict="error", peak_bytes=400 * MiB, findings=[Finding("error", None, None, None, "x")]
    )
    res = gate.diff(base, _one(errored))
    assert [c.metric for c in res.regressions] == ["verdict"]
    assert res.improvements == []


def test_a_figure_missing_on_one_side_is_skipped_and_the_next_figure_still_compared() -> None:
    from factories import MiB, make_run
    from memcycle import gate

    # one cycle: no leaked-per-cycle figure, the first metric; the process peak comes after it
    base = gate.make_baseline(_one(make_run(n_cycles=1, peak_bytes=40 * MiB)))
    assert base["runs"][make_run().key]["leaked_bytes_per_cycle"] is None
    regs = gate.compare(base, _one(make_run(n_cycles=1, peak_bytes=200 * MiB)))
    assert [r.metric for r in regs] == ["process-peak"]
    # a leak figure on one side only (the baseline had one cycle): not compared, no crash
    assert gate.compare(base, _one(make_run(n_cycles=5, peak_bytes=40 * MiB))) == []


def test_a_new_run_does_not_stop_the_runs_after_it_from_being_compared() -> None:
    from factories import MiB, make_run
    from memcycle import gate
    from test_gate import _report

    base = gate.make_baseline(_report(make_run(peak_bytes=40 * MiB)))
    now = _report(make_run(scenario="aaa-fresh"), make_run(peak_bytes=400 * MiB))
    res = gate.diff(base, now)
    assert [c.key for c in res.new] == [make_run(scenario="aaa-fresh").key]
    assert [c.metric for c in res.regressions] == ["process-peak"]
    assert res.matched == 1 and res.compared == 1


def test_the_missing_message_says_whether_a_missing_run_is_allowed() -> None:
    from factories import make_run
    from memcycle import gate
    from test_gate import _report

    base = gate.make_baseline(_report(make_run(), make_run(scenario="gone")))
    now = _report(make_run())
    [strict] = gate.diff(base, now).missing
    assert strict.message == "in the baseline, not in this run (fails the gate)"
    [relaxed] = gate.diff(base, now, allow_missing=True).missing
    assert relaxed.message == "in the baseline, not in this run (allowed)"


def test_nothing_compared_names_only_the_key_parts_that_never_match() -> None:
    from factories import make_run
    from memcycle import gate
    from test_gate import _report

    base = gate.make_baseline(_report(make_run(allocator="numpy")))
    res = gate.diff(base, _report(make_run(allocator="checked")), allow_missing=True)
    assert res.nothing_compared == (
        "none of the report's 1 runs is in the baseline's 1 (allocator is checked here, numpy there)"
    )


def test_nothing_compared_against_an_empty_baseline_gives_no_key_hint() -> None:
    from factories import make_run
    from memcycle import gate
    from test_gate import _report

    base = gate.make_baseline(_report())
    res = gate.diff(base, _report(make_run()))
    assert res.nothing_compared == "none of the report's 1 runs is in the baseline's 0"


def test_a_time_regression_from_one_second_gives_its_percentage() -> None:
    from factories import make_run
    from memcycle import gate
    from test_gate import _report, _timed

    base = gate.make_baseline(_report(_timed(make_run(), 1.0)))
    [reg] = gate.compare(base, _report(_timed(make_run(), 10.0)))
    assert reg.message == "time without compile 1.00 s -> 10.00 s (+900%, +9.00 s)"


def test_the_gate_switches_are_keyword_only_after_the_tolerances() -> None:
    from factories import make_run
    from memcycle import gate
    from test_gate import _report

    report = _report(make_run())
    base = gate.make_baseline(report)
    assert not gate.diff(baseline=base, report=report, tolerances=None).failed
    with pytest.raises(TypeError):
        gate.diff(base, report, None, True)  # type: ignore[misc]


def test_tolerances_are_immutable_and_hashable() -> None:
    import dataclasses

    tol = Tolerances()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tol.leak_rel = 9.0  # type: ignore[misc]
    assert hash(tol) == hash(Tolerances())
