"""migration.watch_downtime against a VM address whose pings stop and resume while a real
migration job runs: lost replies, the longest gap, progress beats and the metric."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import migration as mg
from activities.migration import MigrationActivities
from activities.models import DowntimeInput
from hvlab.metrics import REGISTRY
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.clock import Clock
from simulator.fleet import Fleet
from tests.activities.test_migration_activities import MOVE, JobDriver
from tests.sim.conftest import lab_with_vm


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> MigrationActivities:
    return MigrationActivities(sessions, SimEndpoints(lab_spec, fleet.home))


class FakeTime:
    """The activity's clock: it moves only by its sleeps and by ``tick`` (no real waiting)."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(mg, "time", fake)
    return fake


@pytest.fixture
def driver(fleet: Fleet) -> Iterator[JobDriver]:
    lab_with_vm(fleet.sim)
    yield JobDriver(fleet)
    fleet.sim.clock = Clock(0)


def answering(fleet: Fleet, on: bool) -> None:
    """SVR1 answers pings (its ICMPv4 echo rule) or not."""
    rule = fleet.world.firewall_rule(fleet.world.host("SVR1"), "FPS-ICMP4-ERQ-In")  # type: ignore[arg-type]
    assert rule is not None
    rule.enabled = on


def watch(acts: MigrationActivities, job_id: str, mode: str,
          on_beat: Any, timeout: float = 60.0,
          interval: float = 0.25) -> tuple[Any, list[dict[str, Any]]]:
    beats: list[dict[str, Any]] = []

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        on_beat(len(beats))

    env = ActivityEnvironment()
    env.on_heartbeat = on_heartbeat
    request = DowntimeInput(host="DC1", address="192.168.1.110", vm="Linux01", job_host="SVR2",
                            job_id=job_id, mode=mode, interval_seconds=interval,
                            timeout_seconds=timeout)
    return env.run(acts.watch_downtime, request), beats


def sum_of(mode: str) -> float:
    return REGISTRY.get_sample_value("hvlab_migration_downtime_seconds_sum", {"mode": mode}) or 0


def test_lost_pings_are_the_downtime(fleet: Fleet, driver: JobDriver, clock: FakeTime,
                                     acts: MigrationActivities) -> None:
    """Two lost replies between answered ones are one gap: lost 2, the gap as downtime, each
    probe beaten as progress, and the probe stops once the job has ended."""
    answering(fleet, True)
    job_id = acts.start_move(MOVE).observed["job_id"]

    def on_beat(n: int) -> None:
        if n == 1:
            answering(fleet, False)
        elif n == 3:
            answering(fleet, True)
        elif n == 4:
            driver.finish()

    before = sum_of("smb")
    result, beats = watch(acts, job_id, "smb", on_beat, interval=0.2501)  # gap 0.5002 s
    assert [(b["probes"], b["lost"]) for b in beats] == [(2, 0), (3, 1), (4, 2), (5, 2), (6, 2)]
    assert [b["longest"] for b in beats] == [0, 0, 0, 0.5, 0.5]
    observed = result.observed
    assert result.changed is False and observed["measured"] is True
    assert observed["lost"] == 2 and observed["probes"] == 6 and observed["from"] == "DC1"
    assert observed["downtime_seconds"] == 0.5
    assert sum_of("smb") == pytest.approx(before + 0.5002)  # reported rounded to ms


def test_down_at_the_end_counts_until_now(fleet: Fleet, driver: JobDriver, clock: FakeTime,
                                          acts: MigrationActivities) -> None:
    """A VM still not answering when the job ends is down until the probe stops."""
    answering(fleet, True)
    job_id = acts.start_move(MOVE).observed["job_id"]

    def on_beat(n: int) -> None:
        if n == 1:
            answering(fleet, False)
            driver.finish()
        elif n == 2:
            clock.tick(0.12345)

    result, beats = watch(acts, job_id, "storage", on_beat)
    assert [(b["probes"], b["lost"], b["longest"]) for b in beats] == [(2, 0, 0), (3, 1, 0)]
    assert result.observed["lost"] == 1 and result.observed["probes"] == 3
    assert result.observed["downtime_seconds"] == 0.123


def test_probing_stops_at_the_timeout(fleet: Fleet, driver: JobDriver, clock: FakeTime,
                                     acts: MigrationActivities) -> None:
    """A job that does not end is probed until the timeout (0.5 s at 0.25 s intervals: two
    more probes), measured, with no downtime."""
    answering(fleet, True)
    job_id = acts.start_move(MOVE).observed["job_id"]
    result, beats = watch(acts, job_id, "shared-nothing", lambda n: None, timeout=0.5)
    assert beats == [mg.DowntimeBeat(probes=2, lost=0, longest=0).details(),
                     mg.DowntimeBeat(probes=3, lost=0, longest=0).details()]
    assert result.observed == {"measured": True, "downtime_seconds": 0, "probes": 3, "lost": 0,
                               "from": "DC1"}
    driver.finish()
