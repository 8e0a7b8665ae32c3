"""More migration activity rules: a move whose job completed before start_move looked, the
exact Gone poll, and readiness's settings diff, networks, disabling and retry accounting."""

from __future__ import annotations

import dataclasses

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.migration import MigrationActivities
from activities.models import (
    MigrationHostSettings,
    MigrationJobInput,
    MigrationNetworkInput,
    MigrationReadinessInput,
)
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.activities.test_migration_activities import MOVE, counter
from tests.sim.conftest import hyperv_ready, lab_with_vm

GONE = "00000000-0000-4000-8000-0000000000BB"


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> MigrationActivities:
    return MigrationActivities(sessions, SimEndpoints(lab_spec, fleet.home))


def test_job_completed_before_the_lookup_is_a_started_move(
    fleet: Fleet, acts: MigrationActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new job that already completed when start_move looks is the move it started
    (changed, Completed), not a failure and not re-attached."""
    lab_with_vm(fleet.sim)
    monkeypatch.setattr(fleet.sim, "start_job", lambda job, work: work(job))
    result = acts.start_move(MOVE)
    assert result.changed is True
    assert result.observed["state"] == "Completed" and result.observed["job_state"] == 7
    assert result.observed["reattached"] is False and result.observed["done"] is False
    assert result.observed["percent"] == 100
    assert counter(fleet, "SVR2", "Move-VM") == 1


def test_poll_of_a_gone_job(fleet: Fleet, acts: MigrationActivities) -> None:
    """A job that is not listed is Gone after one poll, without a resume point."""
    hyperv_ready(fleet.sim, "SVR2")
    result = acts.poll_job(MigrationJobInput(host="SVR2", job_id=GONE.lower()))
    assert result.changed is False
    assert result.observed == {"job_id": GONE, "state": "Gone", "polls": 1,
                               "resumed_from": None}


def _ready(fleet: Fleet) -> None:
    hyperv_ready(fleet.sim, "SVR1")


WANTED = MigrationHostSettings(enabled=True, authentication="Kerberos", performance="SMB",
                               max_vm_migrations=3, max_storage_migrations=4,
                               use_any_network=False)


def test_readiness_reports_networks_by_subnet_and_priority(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """Networks given with host bits are added once in network form with their priority,
    and reported as subnet -> priority next to the applied settings."""
    _ready(fleet)
    request = MigrationReadinessInput(host="SVR1", settings=WANTED, networks=[
        MigrationNetworkInput(subnet="10.20.0.9/16", priority=3),
        MigrationNetworkInput(subnet="192.168.1.0/24", priority=1),
        MigrationNetworkInput(subnet="172.16.0.0/12", priority=0)])
    result = acts.readiness(request)
    assert result.changed is True
    assert result.observed["added_networks"] == ["10.20.0.0/16", "192.168.1.0/24",
                                                 "172.16.0.0/12"]
    assert result.observed["networks"] == {"10.20.0.0/16": 3, "192.168.1.0/24": 1,
                                           "172.16.0.0/12": 0}
    assert result.observed["current"] == WANTED.model_dump(exclude={"lab"})
    assert counter(fleet, "SVR1", "Add-VMMigrationNetwork") == 3
    assert counter(fleet, "SVR1", "Enable-VMMigration") == 1
    assert counter(fleet, "SVR1", "Set-VMHost") >= 1
    again = acts.readiness(request)
    assert again.changed is False and again.observed["added_networks"] == []


def test_readiness_only_enabling(fleet: Fleet, acts: MigrationActivities) -> None:
    """When only enablement differs, migration is enabled without a Set-VMHost, and that is
    a change; disabling again sends Disable-VMMigration only."""
    _ready(fleet)
    current = acts._settings("SVR1")
    assert current.enabled is False
    sets = counter(fleet, "SVR1", "Set-VMHost")
    enabled = current.model_copy(update={"enabled": True})
    result = acts.readiness(MigrationReadinessInput(host="SVR1", settings=enabled))
    assert result.changed is True and counter(fleet, "SVR1", "Set-VMHost") == sets
    assert counter(fleet, "SVR1", "Enable-VMMigration") == 1
    assert fleet.sim.host("SVR1").vmhost.migration_enabled
    off = acts.readiness(MigrationReadinessInput(host="SVR1", settings=current))
    assert off.changed is True and counter(fleet, "SVR1", "Disable-VMMigration") == 1
    assert counter(fleet, "SVR1", "Enable-VMMigration") == 1
    assert counter(fleet, "SVR1", "Set-VMHost") == sets
    assert not fleet.sim.host("SVR1").vmhost.migration_enabled


def test_apply_reports_setting_changes(fleet: Fleet, acts: MigrationActivities) -> None:
    """Changing only a Set-VMHost setting is a change; the same settings again are not."""
    _ready(fleet)
    current = acts._settings("SVR1")
    wanted = current.model_copy(update={"max_storage_migrations": 5})
    assert acts._apply("SVR1", wanted, current) is True
    assert acts._settings("SVR1").max_storage_migrations == 5
    before = mutations(fleet, "SVR1")
    assert acts._apply("SVR1", wanted, wanted) is False
    assert mutations(fleet, "SVR1") == before


def test_readiness_retry_after_changes_reports_changed(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """A retry whose predecessor heartbeated other previous settings (and then applied them
    all) is a change even though it sends nothing; empty details are no predecessor."""
    _ready(fleet)
    request = MigrationReadinessInput(host="SVR1", settings=WANTED)
    first = acts.readiness(request)
    assert first.changed
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[{
        "previous": first.observed["previous"], "added_networks": []}])
    before = mutations(fleet, "SVR1")
    retried = env.run(acts.readiness, request)
    assert retried.changed is True and mutations(fleet, "SVR1") == before
    assert retried.observed["previous"] == first.observed["previous"]
    plain = ActivityEnvironment()
    plain.info = dataclasses.replace(plain.info, heartbeat_details=[{}])
    assert plain.run(acts.readiness, request).changed is False
    same = ActivityEnvironment()
    same.info = dataclasses.replace(same.info, heartbeat_details=[{
        "previous": WANTED.model_dump(exclude={"lab"}), "added_networks": ["10.9.0.0/16"]}])
    kept = same.run(acts.readiness, request)
    assert kept.changed is True and kept.observed["added_networks"] == ["10.9.0.0/16"]
    beats: list[object] = []
    last = ActivityEnvironment()
    last.on_heartbeat = lambda *details: beats.append(details)
    last.run(acts.readiness, request)
    assert beats[0] == ({"previous": WANTED.model_dump(exclude={"lab"}),
                         "added_networks": [], "beat": "migration.readiness"},)


def test_liveness_beats_repeat_the_progress_details(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """While a long command runs, the liveness beat repeats this execution's last details
    (never a bare beat that would blank them), and before it has any, its predecessor's (the
    liveness beats of migration, replica and checkpoint steps were bare until their first
    progress beat); another execution in the same thread starts without them."""
    import dataclasses

    from activities.base import application_errors, heartbeat, liveness
    from activities.migration import JobBeat
    from hvlab.powershell.command import SWITCH, Command
    from simulator.clock import Clock
    from tests.activities.test_migration_activities import DEST, JobDriver

    lab_with_vm(fleet.sim)
    driver = JobDriver(fleet)
    slow = Command.of("Move-VM", Name="Linux01", DestinationHost="svr1.kosa.vm",
                      IncludeStorage=SWITCH, DestinationStoragePath=DEST)
    beats: list[tuple[object, ...]] = []

    def on_heartbeat(*details: object) -> None:
        beats.append(details)
        driver.finish()  # the first liveness beat while Move-VM runs

    predecessor = {"job_id": "A", "percent": 1}  # as a worker before typed details wrote it
    second = JobBeat(job_id="A", percent=2)

    def body() -> None:
        with application_errors():
            acts._remote.run("SVR2", slow)
            heartbeat(second)
            liveness()

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[predecessor])
    env.on_heartbeat = on_heartbeat
    try:
        env.run(body)
    finally:
        fleet.sim.clock = Clock(0)
    assert beats[0] == (predecessor,) and beats[-2:] == [(second.details(),)] * 2
    assert all(b == (predecessor,) for b in beats[:-2])
    assert fleet.sim.host("SVR1").vm("Linux01") is not None
    fresh = ActivityEnvironment()
    seen: list[tuple[object, ...]] = []
    fresh.on_heartbeat = lambda *details: seen.append(details)
    fresh.run(liveness)
    assert seen == [()]


def test_cancelled_poll_stops_with_cancelled_error(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """A poll cancelled while the job runs stops before its next poll with CancelledError
    naming the host and job; the job is left running."""
    from temporalio import activity
    from temporalio.exceptions import CancelledError

    from simulator.clock import Clock
    from tests.activities.test_migration_activities import JobDriver

    lab_with_vm(fleet.sim)
    driver = JobDriver(fleet)
    job_id = acts.start_move(MOVE).observed["job_id"]
    request = MigrationJobInput(host="SVR2", job_id=job_id, interval_seconds=0.001)
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: env.cancel()

    @activity.defn(no_thread_cancel_exception=True)
    def body() -> None:
        acts.poll_job(request)

    try:
        with pytest.raises(CancelledError) as caught:
            env.run(body)
        assert caught.value.message == f"SVR2: polling of {job_id} cancelled"
        assert counter(fleet, "SVR2", "Invoke-CimMethod") == 0
    finally:
        driver.finish()
        fleet.sim.clock = Clock(0)


def test_job_left_without_moving_the_vm_is_verification_failed(
    fleet: Fleet, acts: MigrationActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host-side job that ended 'successfully' and was removed while the VM stayed put: the
    PowerShell job is received, then start_move fails as VerificationFailed naming the VM and
    the PowerShell job."""
    from simulator.cmdlets import hyperv_migration

    lab_with_vm(fleet.sim)

    def ended_without_work(job: object, work: object) -> None:
        job.state, job.percent = 7, 100  # type: ignore[attr-defined]
        job.finished = fleet.sim.clock.now()  # type: ignore[attr-defined]

    monkeypatch.setattr(fleet.sim, "start_job", ended_without_work)
    monkeypatch.setattr(hyperv_migration, "JOB_KEPT_INSTANT", 0.0)
    with pytest.raises(ApplicationError) as caught:
        acts.start_move(MOVE)
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message.startswith(
        "SVR2: Linux01 did not move and no job is left (observed {")
    assert "'Id': " in caught.value.message
    assert counter(fleet, "SVR2", "Receive-Job") == 1


def test_poll_timeout_boundary(fleet: Fleet, acts: MigrationActivities,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With the activity clock faked, a poll whose next pause would end exactly at the
    deadline still pauses: 0.5 s at 0.25 s intervals is three polls, then JobTimeout."""
    from activities import migration as mg
    from simulator.clock import Clock
    from tests.activities.test_migration_activities import JobDriver
    from tests.activities.test_migration_downtime import FakeTime

    lab_with_vm(fleet.sim)
    driver = JobDriver(fleet)
    job_id = acts.start_move(MOVE).observed["job_id"]
    monkeypatch.setattr(mg, "time", FakeTime())
    try:
        with pytest.raises(ApplicationError) as caught:
            acts.poll_job(MigrationJobInput(host="SVR2", job_id=job_id, interval_seconds=0.25,
                                            timeout_seconds=0.5))
        assert caught.value.message == (f"SVR2: migration job {job_id} still running after 3 "
                                        "polls")
        assert caught.value.type == "JobTimeout" and not caught.value.non_retryable
    finally:
        monkeypatch.undo()
        driver.finish()
        fleet.sim.clock = Clock(0)


def test_cancel_stops_a_running_command(fleet: Fleet, acts: MigrationActivities) -> None:
    """An activity cancelled while one of its commands runs stops that command and fails as
    CancelledError instead of waiting for it to finish."""
    from temporalio import activity
    from temporalio.exceptions import CancelledError

    from activities.base import application_errors
    from hvlab.powershell.command import SWITCH, Command
    from simulator.clock import Clock
    from tests.activities.test_migration_activities import DEST, JobDriver

    lab_with_vm(fleet.sim)
    driver = JobDriver(fleet)
    slow = Command.of("Move-VM", Name="Linux01", DestinationHost="svr1.kosa.vm",
                      IncludeStorage=SWITCH, DestinationStoragePath=DEST)
    beats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()

    def on_heartbeat(*details: object) -> None:
        beats.append(details)
        if len(beats) == 1:
            env.cancel()
        else:  # still waiting after the cancel: let it end so the test does not hang
            driver.finish()

    env.on_heartbeat = on_heartbeat

    @activity.defn(no_thread_cancel_exception=True)
    def body() -> None:
        with application_errors():
            acts._remote.run("SVR2", slow)

    try:
        with pytest.raises(CancelledError):
            env.run(body)
        assert len(beats) == 1
    finally:
        driver.finish()
        fleet.sim.clock = Clock(0)


def test_settings_that_do_not_take_fail_verification(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """Settings the host puts back right after they were applied (a policy) fail readiness
    as VerificationFailed with the settings it shows."""
    _ready(fleet)
    apply = acts._apply

    def reverted(host: str, wanted: MigrationHostSettings,
                 current: MigrationHostSettings) -> bool:
        changed = apply(host, wanted, current)
        fleet.sim.host("SVR1").vmhost.migration_auth = "CredSSP"
        return changed

    acts._apply = reverted  # type: ignore[method-assign]
    with pytest.raises(ApplicationError) as caught:
        acts.readiness(MigrationReadinessInput(host="SVR1", settings=WANTED))
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message.startswith(
        "SVR1: migration settings did not take (observed MigrationHostSettings(")
    assert "authentication='CredSSP'" in caught.value.message


def test_unanswered_pings_are_not_a_change(acts: MigrationActivities) -> None:
    """A VM that does not answer before the move is reported unchanged and not measured."""
    from activities.models import DowntimeInput

    result = acts.watch_downtime(DowntimeInput(host="DC1", address="10.99.99.98", vm="vm",
                                               job_host="SVR1", job_id="x"))
    assert result.changed is False
    assert result.observed == {"measured": False,
                               "reason": "10.99.99.98 does not answer pings from DC1"}
