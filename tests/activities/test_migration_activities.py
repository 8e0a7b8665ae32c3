"""Migration activities against the simulated fleet: readiness and its compensation, Compare-VM
pre-flight as data, one Move-VM per move (re-attach, done), job polling with heartbeats and
resume, classified job failures, cancellation and location checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.base import Remote
from activities.migration import MigrationActivities, move_command
from activities.models import (
    FindJobInput,
    MigrationJobInput,
    MigrationReadinessInput,
    MigrationRestoreInput,
    MoveInput,
    VerifyLocationInput,
)
from hvlab.powershell.command import Command
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.errors import RemoteError
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.clock import Clock
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from simulator.world import Ace
from tests.activities.conftest import mutations
from tests.sim.conftest import (
    GB,
    LOCALES,
    StepClock,
    hyperv_ready,
    lab_with_vm,
    run,
    speak,
)
from tests.sim.test_migration_network import migration_networks

DEST = "C:\\Hyper-V\\Linux01"
MOVE = MoveInput(host="SVR2", vm="Linux01", mode="shared-nothing", destination="SVR1",
                 destination_fqdn="svr1.kosa.vm", destination_path=DEST)


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> MigrationActivities:
    return MigrationActivities(sessions, SimEndpoints(lab_spec, fleet.home))


class JobDriver:
    """Releases the simulated job's progress sleeps one at a time (a StepClock job has
    ``job_steps`` sleeps; the last one is released without waiting for another)."""

    def __init__(self, fleet: Fleet, sleeps: int | None = None) -> None:
        """``sleeps``: how many the job will take (fewer when it is cut short)."""
        self.fleet = fleet
        self.clock = StepClock()
        self.left = sleeps or Clock().d.job_steps
        fleet.sim.clock = self.clock

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.left > 1:
                self.clock.step()
            elif self.left == 1:
                self.clock.step(settle=False)
            self.left = max(0, self.left - 1)

    def finish(self) -> None:
        """Run the job to its end."""
        self.advance(self.left)
        self.wait()

    def release(self) -> None:
        """Release one sleep without waiting for another (the job ends after it: cancelled)."""
        self.clock.step(settle=False)
        self.left = 0
        self.wait()

    def wait(self) -> None:
        for job in list(self.fleet.sim.world.jobs.values()):
            assert self.fleet.sim.job_done(job.id, timeout=5)


@pytest.fixture
def driver(fleet: Fleet) -> Iterator[JobDriver]:
    lab_with_vm(fleet.sim)
    yield JobDriver(fleet)
    fleet.sim.clock = Clock(0)


def move(acts: MigrationActivities, request: MoveInput) -> None:
    """Start the move and wait for its job; the job of an instant move may already be gone
    (the VM's location decides, as in real life)."""
    started = acts.start_move(request)
    assert started.changed
    if not started.observed["done"]:
        polled = acts.poll_job(MigrationJobInput(host=request.host, interval_seconds=0.01,
                                                 job_id=started.observed["job_id"]))
        assert polled.observed["state"] in ("Completed", "Gone")


def counter(fleet: Fleet, host: str, cmdlet: str) -> int:
    return int(fleet.state()["counters"].get(host, {}).get(cmdlet, 0))


def test_readiness_and_its_compensation(
    fleet: Fleet, lab_spec: LabSpec, acts: MigrationActivities
) -> None:
    """Readiness enables migration with Kerberos and the lab network once; restore puts the
    observed previous settings back and removes only the network it added."""
    hyperv_ready(fleet.sim, "SVR1")
    request = MigrationReadinessInput.from_spec(lab_spec.host("SVR1"))
    first = acts.readiness(request)
    assert first.changed and first.observed["added_networks"] == ["192.168.1.0/24"]
    assert first.observed["previous"]["enabled"] is False
    assert first.observed["previous"]["authentication"] == "CredSSP"
    settings = fleet.sim.host("SVR1").vmhost
    assert settings.migration_enabled and settings.migration_auth == "Kerberos"
    assert settings.use_any_network is False
    assert [n.subnet for n in settings.migration_networks] == ["192.168.1.0/24"]
    before = mutations(fleet, "SVR1")
    assert not acts.readiness(request).changed
    assert mutations(fleet, "SVR1") == before
    undo = MigrationRestoreInput.from_readiness(request, first)
    assert acts.restore_readiness(undo).changed
    settings = fleet.sim.host("SVR1").vmhost
    assert not settings.migration_enabled and settings.migration_auth == "CredSSP"
    assert settings.use_any_network and settings.migration_networks == []
    before = mutations(fleet, "SVR1")
    assert not acts.restore_readiness(undo).changed
    assert mutations(fleet, "SVR1") == before


def test_readiness_retry_keeps_what_was_there_before(
    fleet: Fleet, lab_spec: LabSpec, acts: MigrationActivities
) -> None:
    """A retry after the settings were applied (result lost) sends nothing but reports
    changed with the previous settings and added networks its first attempt heartbeated, so
    the compensation is registered and exact."""
    hyperv_ready(fleet.sim, "SVR1")
    request = MigrationReadinessInput.from_spec(lab_spec.host("SVR1"))
    env = ActivityEnvironment()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    first = env.run(acts.readiness, request)
    recorded = next(i for i, beat in enumerate(beats) if beat)
    assert first.changed and all(beats[recorded:])  # no bare beat blanks the record
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=list(beats[-1]))
    before = mutations(fleet, "SVR1")
    retried = env.run(acts.readiness, request)
    assert retried.changed and mutations(fleet, "SVR1") == before
    assert retried.observed["previous"] == first.observed["previous"]
    assert retried.observed["previous"]["authentication"] == "CredSSP"
    assert retried.observed["added_networks"] == ["192.168.1.0/24"]


def test_preflight_reports_missing_switch_as_data(fleet: Fleet, acts: MigrationActivities) -> None:
    """Compare-VM's 33012 comes back as data; no move is started."""
    lab_with_vm(fleet.sim)
    assert run(fleet.sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    result = acts.preflight(MOVE)
    assert not result.changed and result.observed["compatible"] is False
    assert result.observed["incompatibilities"] == [{
        "message": "Could not find Ethernet switch 'External'.", "message_id": 33012,
        "source": "Network Adapter"}]
    assert counter(fleet, "SVR2", "Compare-VM") == 1
    assert counter(fleet, "SVR2", "Move-VM") == 0
    assert acts.preflight(MOVE).observed["incompatibilities"][0]["message_id"] == 33012


def test_missing_delegation_is_delegation_missing(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """Without the migration-service KCD both pre-flight and the move fail as DelegationMissing
    with the host's 0x8009030E message, not retried; the VM stays put."""
    lab_with_vm(fleet.sim)
    computer = fleet.sim.world.ad.computer("SVR2")
    assert computer is not None
    computer.allowed_to_delegate_to = ["cifs/SVR1", "cifs/DC1"]
    for step in (acts.preflight, acts.start_move):
        with pytest.raises(ApplicationError) as caught:
            step(MOVE)
        assert caught.value.type == "DelegationMissing" and caught.value.non_retryable
        assert "0x8009030E" in caught.value.message
    assert fleet.sim.host("SVR2").vm("Linux01") is not None
    incomplete = MoveInput(host="SVR2", vm="Linux01", mode="shared-nothing", destination="SVR1")
    with pytest.raises(ApplicationError) as refused:
        acts.start_move(incomplete)
    assert refused.value.type == "InvalidParameter" and "destination_path" in refused.value.message
    assert counter(fleet, "SVR2", "Move-VM") == 1  # the one refused for want of delegation


def _to_share(fleet: Fleet, request: MoveInput, account: str) -> MoveInput:
    """Linux01's files on \\\\DC1\\smb, then ``account`` loses its NTFS rights there."""
    share_vm_storage(fleet)
    path = "\\\\DC1\\smb\\Linux01"
    assert run(fleet.sim, "SVR2", "Move-VMStorage", Name="Linux01",
               DestinationStoragePath=path).ok
    acl = fleet.sim.host("DC1").ntfs_acls["c:\\smb"]
    acl[:] = [ace for ace in acl if ace.account != account]
    return request


SMB = MoveInput(host="SVR2", vm="Linux01", mode="smb", destination="SVR1",
                destination_fqdn="svr1.kosa.vm")
STORAGE = MoveInput(host="SVR2", vm="Linux01", mode="storage",
                    destination_path="\\\\DC1\\smb\\Moved")


def _no_delegation(fleet: Fleet) -> MoveInput:
    computer = fleet.sim.world.ad.computer("SVR2")
    assert computer is not None
    computer.allowed_to_delegate_to = ["cifs/SVR1", "cifs/DC1"]
    return MOVE


def _no_switch(fleet: Fleet) -> MoveInput:
    assert run(fleet.sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    return MOVE


def _no_memory(fleet: Fleet) -> MoveInput:
    fleet.sim.host("SVR1").memory_total = 2 * GB
    return MOVE


def _other_cpu(fleet: Fleet) -> MoveInput:
    fleet.sim.host("SVR1").cpu_family = "AMD EPYC 7763"
    return MOVE


def _wrong_migration_network(fleet: Fleet) -> MoveInput:
    migration_networks(fleet.sim, "SVR1", "10.10.10.0/24")
    return MOVE


REFUSED_MOVES: dict[str, tuple[Callable[[Fleet], MoveInput], str, str]] = {
    # setup (returns the request), ApplicationError type, part of the host's text
    "delegation": (_no_delegation, "DelegationMissing", "0x8009030E"),
    # a missing switch and another CPU family come back from Move-VM as words only (no
    # HRESULT, no id): unclassified; the pre-flight names them by Compare-VM's MessageId
    # (33012, 24004) before any move (docs/simulator-fidelity.md, "Korean hosts")
    "switch": (_no_switch, "RemoteCommandFailed", "Could not find Ethernet switch 'External'."),
    "memory": (_no_memory, "InsufficientMemory", "(0x800705AA)"),
    "processor": (_other_cpu, "RemoteCommandFailed",
                  "hardware on the destination computer is not compatible"),
    "migration network": (_wrong_migration_network, "RemoteCommandFailed", "(0x8007274D)"),
    "smb rights": (lambda fleet: _to_share(fleet, SMB, "KOSA\\SVR1$"), "AccessDenied",
                   "(0x80070005)"),
    "storage rights": (lambda fleet: _to_share(fleet, STORAGE, "KOSA\\SVR2$"), "AccessDenied",
                       "(0x80070005)"),
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("refusal", list(REFUSED_MOVES))
def test_refused_move_fails_start_move_as_the_synchronous_error_would(
    fleet: Fleet, lab_spec: LabSpec, sessions: SessionPool, acts: MigrationActivities,
    refusal: str, locale: str
) -> None:
    """A move the host refuses at once: with -AsJob the host returns a job already failed
    (Msvm_MigrationJob in Exception with the reason). start_move fails non-retryably with the
    type the same command without -AsJob gets and the host's text; the failed job stays
    visible to find_job; the VM stays on SVR2."""
    lab_with_vm(fleet.sim)
    speak(fleet.sim, locale)  # a Korean host words it in Korean: same kind, same HRESULT
    setup, kind, text = REFUSED_MOVES[refusal]
    text = text if locale == "en-US" or text.startswith("(0x") else ""
    request = setup(fleet)
    command = move_command(request)
    synchronous = Command(cmdlet=command.cmdlet, parameters={
        k: v for k, v in command.parameters.items() if k != "AsJob"})
    with pytest.raises(RemoteError) as direct:
        Remote(sessions, SimEndpoints(lab_spec, fleet.home)).run("SVR2", synchronous)
    assert direct.value.type_name == kind and text in direct.value.host_message
    sent = counter(fleet, "SVR2", command.cmdlet)
    with pytest.raises(ApplicationError) as caught:
        acts.start_move(request)
    assert caught.value.type == kind and caught.value.non_retryable, caught.value.message
    assert direct.value.host_message in caught.value.message
    assert counter(fleet, "SVR2", command.cmdlet) == sent + 1
    found = acts.find_job(FindJobInput(host="SVR2", vm="Linux01")).observed["job"]
    assert found["state"] == "Exception" and found["error"] == direct.value.host_message
    assert caught.value.details[0]["job_id"] == found["job_id"]
    with pytest.raises(ApplicationError) as polled:
        acts.poll_job(MigrationJobInput(host="SVR2", job_id=found["job_id"],
                                        interval_seconds=0.01))
    assert polled.value.type == kind and polled.value.message == caught.value.message
    assert fleet.sim.host("SVR2").vm("Linux01") is not None
    assert fleet.sim.host("SVR1").vm("Linux01") is None


def test_refused_move_whose_job_is_gone_fails_by_receive_job(
    fleet: Fleet, acts: MigrationActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed job already removed when start_move looks: Receive-Job on the PowerShell
    job gives the host's reason, classified as before (DelegationMissing)."""
    from simulator.cmdlets import hyperv_migration

    lab_with_vm(fleet.sim)
    _no_delegation(fleet)
    monkeypatch.setattr(hyperv_migration, "JOB_KEPT_INSTANT", 0.0)  # removed at once
    with pytest.raises(ApplicationError) as caught:
        acts.start_move(MOVE)
    assert caught.value.type == "DelegationMissing" and caught.value.non_retryable
    assert "Receive-Job" in caught.value.message and "0x8009030E" in caught.value.message
    assert counter(fleet, "SVR2", "Receive-Job") == 1


def test_start_move_never_sends_a_second_move(
    fleet: Fleet, driver: JobDriver, acts: MigrationActivities
) -> None:
    """Start once; again while the job runs re-attaches to the same job; after it finished the
    VM is at the destination and nothing is sent. One Move-VM in all."""
    started = acts.start_move(MOVE)
    assert started.changed and started.observed["state"] == "Running"
    job_id = started.observed["job_id"]
    driver.advance(3)
    before = mutations(fleet, "SVR2")
    again = acts.start_move(MOVE)
    assert not again.changed and again.observed["reattached"]
    assert again.observed["job_id"] == job_id and 0 < again.observed["percent"] < 100
    assert mutations(fleet, "SVR2") == before
    found = acts.find_job(FindJobInput(host="SVR2", vm="Linux01"))
    assert found.observed["job"]["job_id"] == job_id
    driver.finish()
    done = acts.start_move(MOVE)
    assert not done.changed and done.observed["done"] is True
    assert done.observed["location"]["host"] == "SVR1"
    assert mutations(fleet, "SVR2") == before
    assert counter(fleet, "SVR2", "Move-VM") == 1
    after = acts.find_job(FindJobInput(host="SVR2", vm="Linux01", vm_id=started.observed["vm_id"]))
    assert after.observed["job"]["state"] == "Completed"
    where = acts.verify_location(VerifyLocationInput(host="SVR1", vm="Linux01", path=DEST,
                                                     absent_from="SVR2"))
    assert where.observed["disks"] == [f"{DEST}\\Linux01.vhdx"]
    assert where.observed["state"] == "Running" and where.observed["mismatches"] == []


def test_poll_job_heartbeats_and_resumes(
    fleet: Fleet, driver: JobDriver, acts: MigrationActivities
) -> None:
    """poll_job heartbeats {job_id, percent} on every poll (the job advances one simulated
    step per heartbeat), reads the last attempt's heartbeat on resume, never blanks the
    details with a bare liveness beat, and returns Completed."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"job_id": job_id,
                                                                 "percent": 0}])
    beats: list[dict[str, Any]] = []
    bare: list[tuple[Any, ...]] = []

    def on_heartbeat(*details: Any) -> None:
        if not details:
            bare.append(details)
            return
        beats.append(details[0])
        driver.advance()

    env.on_heartbeat = on_heartbeat
    result = env.run(acts.poll_job, MigrationJobInput(host="SVR2", job_id=job_id,
                                                      interval_seconds=0.01))
    assert result.observed["state"] == "Completed" and result.observed["percent"] == 100
    assert result.observed["resumed_from"] == 0 and bare == []
    assert {b["job_id"] for b in beats} == {job_id}
    percents = [b["percent"] for b in beats]
    assert percents == sorted(percents) and percents[0] < percents[-1] < 100
    assert fleet.sim.host("SVR1").vm("Linux01") is not None


def test_failed_job_is_a_classified_permanent_failure(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """A job that ends in Exception fails poll_job non-retryably with its ErrorDescription
    (the job is cut short after its 8th of 20 progress steps)."""
    lab_with_vm(fleet.sim)
    fleet.set_faults(FaultPlan.parse([{"type": "fail_job", "host": "SVR2", "kind": "migration",
                                       "at_percent": 40}]))
    driver = JobDriver(fleet, sleeps=8)
    job_id = acts.start_move(MOVE).observed["job_id"]
    driver.advance(8)
    driver.wait()
    with pytest.raises(ApplicationError) as caught:
        acts.poll_job(MigrationJobInput(host="SVR2", job_id=job_id, interval_seconds=0.01))
    assert caught.value.non_retryable and caught.value.type == "RemoteCommandFailed"
    assert "failed at 40 percent" in caught.value.message
    assert fleet.sim.host("SVR2").vm("Linux01") is not None
    with pytest.raises(ApplicationError) as missing:
        acts.verify_location(VerifyLocationInput(host="SVR1", vm="Linux01"))
    assert missing.value.type == "VerificationFailed"
    fleet.sim.clock = Clock(0)


def test_job_gone_at_once_reports_the_job_error(
    fleet: Fleet, acts: MigrationActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instant move that failed leaves no host-side job: start_move surfaces the
    PowerShell job's error instead of claiming success. (The sim runs the job inside Move-VM
    here, so it has ended and left before start_move looks.)"""
    from simulator.cmdlets import hyperv_migration

    lab_with_vm(fleet.sim)
    monkeypatch.setattr(fleet.sim, "start_job", lambda job, work: work(job))
    monkeypatch.setattr(hyperv_migration, "JOB_KEPT_INSTANT", 0.0)  # removed at once
    fleet.set_faults(FaultPlan.parse([{"type": "fail_job", "host": "SVR2", "kind": "migration",
                                       "at_percent": 40}]))
    with pytest.raises(ApplicationError) as caught:
        acts.start_move(MOVE)
    assert caught.value.non_retryable and "failed at 40 percent" in caught.value.message
    assert counter(fleet, "SVR2", "Move-VM") == 1


def test_cancel_job(fleet: Fleet, driver: JobDriver, acts: MigrationActivities) -> None:
    """RequestStateChange 4 terminates the running job; cancelling again (job ended) is
    success without a second call; polling reports JobTerminated; the VM stays on SVR2."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    driver.advance(2)
    request = MigrationJobInput(host="SVR2", job_id=job_id, interval_seconds=0.01)
    cancelled = acts.cancel_job(request)
    assert cancelled.changed and cancelled.observed["return_value"] == 0
    driver.release()
    assert not acts.cancel_job(request).changed
    assert counter(fleet, "SVR2", "Invoke-CimMethod") == 1
    with pytest.raises(ApplicationError) as caught:
        acts.poll_job(request)
    assert caught.value.type == "JobTerminated" and caught.value.non_retryable
    assert fleet.sim.host("SVR2").vm("Linux01") is not None
    gone = MigrationJobInput(host="SVR2", job_id="00000000-0000-0000-0000-000000000001")
    assert not acts.cancel_job(gone).changed
    assert acts.poll_job(gone).observed["state"] == "Gone"


def test_storage_move(fleet: Fleet, acts: MigrationActivities) -> None:
    """Move-VMStorage moves configuration and disks under the path on the same host; a rerun
    finds it done."""
    lab_with_vm(fleet.sim)
    request = MoveInput(host="SVR2", vm="Linux01", mode="storage",
                        destination_path="C:\\Hyper-V\\Moved")
    assert acts.preflight(request).observed["compatible"]
    move(acts, request)
    where = acts.verify_location(VerifyLocationInput(host="SVR2", vm="Linux01",
                                                     path="C:\\Hyper-V\\Moved"))
    assert where.observed["disks"] == ["C:\\Hyper-V\\Moved\\Linux01.vhdx"]
    before = mutations(fleet, "SVR2")
    again = acts.start_move(request)
    assert not again.changed and again.observed["done"]
    assert mutations(fleet, "SVR2") == before
    assert counter(fleet, "SVR2", "Move-VMStorage") == 1


def test_storage_to_share_then_smb_move(fleet: Fleet, acts: MigrationActivities) -> None:
    """Storage to \\\\DC1\\smb (Move-VMStorage), then a compute-only move: the VM runs on SVR1
    with its files still on the share."""
    lab_with_vm(fleet.sim)
    share_vm_storage(fleet)
    to_share = MoveInput(host="SVR2", vm="Linux01", mode="storage",
                         destination_path="\\\\DC1\\smb\\Linux01")
    move(acts, to_share)
    acts.verify_location(VerifyLocationInput(host="SVR2", vm="Linux01",
                                             path="\\\\DC1\\smb\\Linux01"))
    smb = MoveInput(host="SVR2", vm="Linux01", mode="smb", destination="SVR1",
                    destination_fqdn="svr1.kosa.vm")
    assert acts.preflight(smb).observed["compatible"]
    move(acts, smb)
    where = acts.verify_location(VerifyLocationInput(host="SVR1", vm="Linux01",
                                                     path="\\\\DC1\\smb\\Linux01",
                                                     absent_from="SVR2"))
    assert where.observed["path"] == "\\\\DC1\\smb\\Linux01"
    before = mutations(fleet, "SVR2")
    assert not acts.start_move(smb).changed
    assert mutations(fleet, "SVR2") == before
    assert counter(fleet, "SVR2", "Move-VM") == 1


def share_vm_storage(fleet: Fleet) -> None:
    """\\\\DC1\\smb with share and NTFS rights for both hosts' computer accounts."""
    sim = fleet.sim
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    accounts = ("KOSA\\SVR1$", "KOSA\\SVR2$", "BUILTIN\\Administrators")
    sim.world.shares["DC1"]["smb"] = sim.world.shares["DC1"]["SYSVOL"].model_copy(update={
        "name": "smb", "path": "C:\\smb",
        "share_acl": [Ace(account=a, right="Full") for a in accounts]})
    sim.host("DC1").ntfs_acls["c:\\smb"] = [Ace(account=a, right="FullControl")
                                            for a in accounts[:2]]
