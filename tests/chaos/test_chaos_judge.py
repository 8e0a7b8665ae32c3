"""How `make chaos` judges a run's mutating counters against the undisturbed run's: a repeated
change fails the run, except a step a kill cut, redone at most once per cut execution."""

from __future__ import annotations

from collections import Counter

from tests.chaos import bench_chaos

CHAOS = bench_chaos.load()
REFERENCE = {"SVR1": {"Copy-Item": 3, "New-VM": 3}, "SVR2": {"Copy-Item": 1}}


def _run(svr1_copies: int, svr2_copies: int, removes: int) -> dict[str, dict[str, int]]:
    return {"SVR1": {"Copy-Item": svr1_copies, "New-VM": 3, "Remove-Item": removes},
            "SVR2": {"Copy-Item": svr2_copies}}


def test_a_cut_copy_redone_once_is_allowed_and_reported() -> None:
    """Two vm.disk executions cut by kills: two more copies and removals pass, reported."""
    allowed: list[str] = []
    kills = [{"killed_during": ["vm.disk", "vm.create"]}, {"killed_during": ["vm.disk"]}]
    assert CHAOS.counter_diffs(REFERENCE, _run(4, 2, 2), allowed, CHAOS.cut_steps(kills)) == []
    assert allowed == ["SVR1 Copy-Item: 4 (undisturbed run: 3)",
                       "SVR1 Remove-Item: 2 (undisturbed run: 0)",
                       "SVR2 Copy-Item: 2 (undisturbed run: 1)"]


def test_more_copies_than_the_kills_cut_fail_the_run() -> None:
    """One cut vm.disk allows one repeated copy over all hosts, not one per host."""
    found = CHAOS.counter_diffs(REFERENCE, _run(4, 2, 1), [], Counter({"vm.disk": 1}))
    assert found == ["SVR1 Copy-Item: duplicated, 4 (undisturbed run: 3)",
                     "SVR2 Copy-Item: duplicated, 2 (undisturbed run: 1)"]


def test_a_repeated_copy_without_a_cut_disk_step_fails_the_run() -> None:
    """A kill elsewhere (vm.create) allows no repeated copy, nor a removal."""
    found = CHAOS.counter_diffs(REFERENCE, _run(4, 1, 1), [], Counter({"vm.create": 1}))
    assert found == ["SVR1 Copy-Item: duplicated, 4 (undisturbed run: 3)",
                     "SVR1 Remove-Item: duplicated, 1 (undisturbed run: 0)"]


def test_a_missing_copy_is_never_excused() -> None:
    """A copy fewer on one host fails even when the kills cut copies elsewhere."""
    found = CHAOS.counter_diffs(REFERENCE, _run(2, 2, 0), [], Counter({"vm.disk": 3}))
    assert "SVR1 Copy-Item: missing, 2 (undisturbed run: 3)" in found
