"""A reset schedule runs in the class's time zone: the seed's 06:00 reset is 06:00 in Seoul,
and a reset schedule with no explicit zone is refused (exit 2) instead of running in UTC."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvlab.specfile import load_lab
from starter.console import UsageProblem
from starter.schedules import reset_schedule, reset_zone

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"


def test_the_seed_resets_at_six_in_seoul() -> None:
    """The example's schedule: 0 6 * * 1-5 in Asia/Seoul (not UTC: 06:00 UTC is 15:00 KST)."""
    spec = load_lab(SEED)
    schedule = reset_schedule(spec, "0 6 * * 1-5", "baseline", "q")
    assert schedule.spec.cron_expressions == ["0 6 * * 1-5"]
    assert schedule.spec.time_zone_name == "Asia/Seoul"


def test_timezone_option_wins_over_the_lab_file() -> None:
    spec = load_lab(SEED)
    assert reset_zone(spec, "Europe/Berlin") == "Europe/Berlin"


def test_schedule_without_an_explicit_zone_is_refused() -> None:
    """A lab file without a reset section and no --timezone: no UTC default, a message that
    names the option and the lab-file field."""
    spec = load_lab(SEED).model_copy(update={"reset": None})
    with pytest.raises(UsageProblem) as info:
        reset_schedule(spec, "0 6 * * 1-5", "baseline", "q")
    assert str(info.value).startswith("--timezone:")
    assert "reset.timezone" in str(info.value) and "Asia/Seoul" in str(info.value)


def test_unknown_zone_option_is_refused() -> None:
    with pytest.raises(UsageProblem, match="--timezone: 'Mars/Olympus' is not an IANA"):
        reset_zone(load_lab(SEED), "Mars/Olympus")
