"""Migration activities against the simulated fleet, the paths the scenario tests leave out:
the exact start/re-attach/done results, a second move after an earlier job, polling resume,
timeout and polls, cancel races, pre-flight variants, find_job and location mismatches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import migration as mg
from activities.migration import JobBeat, MigrationActivities
from activities.models import FindJobInput, MigrationJobInput, MoveInput, VerifyLocationInput
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.clock import Clock
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.activities.test_migration_activities import DEST, MOVE, JobDriver, counter
from tests.sim.conftest import lab_with_vm

STORAGE_A = MoveInput(host="SVR2", vm="Linux01", mode="storage",
                      destination_path="C:\\Hyper-V\\MovedA")
STORAGE_B = MoveInput(host="SVR2", vm="Linux01", mode="storage",
                      destination_path="C:\\Hyper-V\\MovedB")


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> MigrationActivities:
    return MigrationActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def driver(fleet: Fleet) -> Iterator[JobDriver]:
    lab_with_vm(fleet.sim)
    yield JobDriver(fleet)
    fleet.sim.clock = Clock(0)


def vm_id(fleet: Fleet, host: str = "SVR2") -> str:
    vm = fleet.sim.host(host).vm("Linux01")
    assert vm is not None
    return vm.id.upper()


def test_start_move_result_fields(fleet: Fleet, driver: JobDriver,
                                  acts: MigrationActivities) -> None:
    """A started move reports changed, the new job's view, not re-attached, and the VM id;
    a re-attach reports the same job unchanged."""
    started = acts.start_move(MOVE)
    assert started.changed is True
    observed = started.observed
    assert observed["done"] is False and observed["reattached"] is False
    assert observed["vm_id"] == vm_id(fleet) and observed["job_state"] == 4
    job = fleet.sim.world.jobs[next(iter(fleet.sim.world.jobs))]
    assert observed["job_id"] == job.id.upper()
    again = acts.start_move(MOVE)
    assert again.changed is False
    assert again.observed["reattached"] is True and again.observed["done"] is False
    assert again.observed["vm_id"] == vm_id(fleet) and again.observed["job_id"] == job.id.upper()
    keys = {"job_id", "state", "job_state", "percent", "vm_id", "destination", "job_type",
            "error", "done", "reattached"}
    assert set(observed) == keys and set(again.observed) == keys
    driver.finish()


def test_second_move_reports_its_own_job(fleet: Fleet, acts: MigrationActivities) -> None:
    """After an earlier move's completed job is still listed, the next move returns the job it
    started, not the earlier one."""
    lab_with_vm(fleet.sim)
    first = acts.start_move(STORAGE_A)
    fleet.sim.job_done(first.observed["job_id"].lower(), timeout=5)
    for job in list(fleet.sim.world.jobs.values()):
        assert fleet.sim.job_done(job.id, timeout=5)
    second = acts.start_move(STORAGE_B)
    assert second.changed and second.observed["reattached"] is False
    assert second.observed["job_id"] != first.observed["job_id"]
    assert counter(fleet, "SVR2", "Move-VMStorage") == 2


def test_quick_move_whose_job_left_is_done(
    fleet: Fleet, acts: MigrationActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move that finished and whose job was removed before start_move looked is done and
    changed, located at the destination, not a failure."""
    from simulator.cmdlets import hyperv_migration

    lab_with_vm(fleet.sim)
    monkeypatch.setattr(fleet.sim, "start_job", lambda job, work: work(job))
    monkeypatch.setattr(hyperv_migration, "JOB_KEPT_INSTANT", 0.0)
    result = acts.start_move(MOVE)
    assert result.changed is True
    assert result.observed == {"done": True, "location": {
        "host": "SVR1", "path": result.observed["location"]["path"], "state": "Running"}}
    assert result.observed["location"]["path"].lower().startswith("c:\\hyper-v")
    assert counter(fleet, "SVR2", "Receive-Job") == 0


def test_done_storage_move_location(fleet: Fleet, acts: MigrationActivities) -> None:
    """A finished storage move is found done with its host, path and disks; pre-flight says
    done and compatible without comparing."""
    lab_with_vm(fleet.sim)
    started = acts.start_move(STORAGE_A)
    for job in list(fleet.sim.world.jobs.values()):
        assert fleet.sim.job_done(job.id, timeout=5)
    assert started.changed
    before = mutations(fleet, "SVR2")
    done = acts.start_move(STORAGE_A)
    assert done.changed is False and done.observed["done"] is True
    assert done.observed["location"]["host"] == "SVR2"
    assert done.observed["location"]["disks"] == ["C:\\Hyper-V\\MovedA\\Linux01.vhdx"]
    assert done.observed["location"]["path"].lower() == "c:\\hyper-v\\moveda"
    flight = acts.preflight(STORAGE_A)
    assert flight.changed is False
    assert flight.observed == {"done": True, "location": done.observed["location"],
                               "compatible": True, "incompatibilities": []}
    assert mutations(fleet, "SVR2") == before
    assert counter(fleet, "SVR2", "Compare-VM") == 0


def test_storage_move_with_disk_elsewhere_is_not_done(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """A VM whose configuration is under the path but a disk is not is not done: the
    storage pre-flight does not compare and says not done."""
    lab_with_vm(fleet.sim)
    vm = fleet.sim.host("SVR2").vm("Linux01")
    assert vm is not None
    vm.path = "C:\\Hyper-V\\Conf"  # the disk stays in C:\Hyper-V\VHDs
    request = STORAGE_A.model_copy(update={"destination_path": "C:\\Hyper-V\\Conf"})
    assert acts._moved(request) is None
    assert acts._moved(request.model_copy(update={"destination_path": "C:\\Hyper-V"}))
    disks_only = request.model_copy(update={"destination_path": "C:\\Hyper-V\\VHDs"})
    assert acts._moved(disks_only) is None  # the disks are there, the configuration is not
    flight = acts.preflight(request)
    assert flight.observed["done"] is False
    assert flight.observed == {"done": False, "compatible": True, "incompatibilities": [],
                               "compared": False}


def test_preflight_compatible_shared_nothing(fleet: Fleet, acts: MigrationActivities) -> None:
    """A compatible shared-nothing pre-flight compares once, reports no problems and the
    operation type, and starts nothing."""
    lab_with_vm(fleet.sim)
    flight = acts.preflight(MOVE)
    assert flight.changed is False
    assert flight.observed["done"] is False and flight.observed["compatible"] is True
    assert flight.observed["incompatibilities"] == [] and flight.observed["compared"] is True
    assert flight.observed["operation"] != ""
    assert counter(fleet, "SVR2", "Compare-VM") == 1 and counter(fleet, "SVR2", "Move-VM") == 0


def test_preflight_and_start_of_a_missing_vm(fleet: Fleet, acts: MigrationActivities) -> None:
    """A VM that is on neither host is NotFound, final, before anything is sent."""
    lab_with_vm(fleet.sim)
    missing = MOVE.model_copy(update={"vm": "Ghost"})
    for step in (acts.preflight, acts.start_move):
        with pytest.raises(ApplicationError) as caught:
            step(missing)
        assert caught.value.type == "NotFound" and caught.value.non_retryable
        assert caught.value.message == "SVR2: VM Ghost does not exist"
    assert counter(fleet, "SVR2", "Move-VM") == 0


def test_vm_on_both_hosts_is_not_done(fleet: Fleet, driver: JobDriver,
                                      acts: MigrationActivities) -> None:
    """While the VM is still on the source the move is not done, even once the destination
    has a VM by that name."""
    assert acts._moved(MOVE) is None
    started = acts.start_move(MOVE)
    driver.finish()
    moved = acts._moved(MOVE)
    assert moved is not None and moved["host"] == "SVR1" and moved["state"] == "Running"
    assert started.observed["destination"]


def test_find_job(fleet: Fleet, driver: JobDriver, acts: MigrationActivities) -> None:
    """find_job: no VM and no id -> no job, VM absent; a VM without jobs -> none with its id;
    a running job by VM name or by id (any case)."""
    assert acts.find_job(FindJobInput(host="SVR1", vm="Linux01")).observed == {
        "job": None, "vm_present": False}
    idle = acts.find_job(FindJobInput(host="SVR2", vm="Linux01"))
    assert idle.changed is False and idle.observed == {"job": None, "vm_id": vm_id(fleet)}
    job_id = acts.start_move(MOVE).observed["job_id"]
    by_name = acts.find_job(FindJobInput(host="SVR2", vm="Linux01")).observed
    assert by_name["job"]["job_id"] == job_id and by_name["job"]["state"] == "Running"
    by_id = acts.find_job(FindJobInput(host="SVR2", vm="x", vm_id=vm_id(fleet).lower()))
    assert by_id.observed["job"]["job_id"] == job_id and by_id.observed["vm_id"] == vm_id(fleet)
    driver.finish()


def test_job_for_prefers_the_running_job(fleet: Fleet, driver: JobDriver,
                                         acts: MigrationActivities) -> None:
    """The running job wins over newer finished ones; else the newest job is taken;
    running_only ignores finished jobs."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    world = fleet.sim.world
    running = next(j for j in world.jobs.values() if j.id.upper() == job_id)
    old = running.model_copy(update={"id": "00000000-0000-4000-8000-0000000000AA", "state": 7})
    world.jobs[old.id] = old
    newest = running.model_copy(update={"id": "00000000-0000-4000-8000-0000000000CC",
                                        "state": 10})
    world.jobs[newest.id] = newest
    vid = vm_id(fleet)
    assert acts._job_for("SVR2", vid, running_only=False)["InstanceID"] == job_id  # type: ignore[index]
    assert acts._job_for("SVR2", vid, running_only=True)["InstanceID"] == job_id  # type: ignore[index]
    running.state = 7
    assert acts._job_for("SVR2", vid, running_only=True) is None
    assert acts._job_for("SVR2", vid, running_only=False)["InstanceID"] == newest.id  # type: ignore[index]
    assert acts._job_for("SVR2", "NOPE", running_only=False) is None
    running.state = 4
    driver.finish()


# -- poll ----------------------------------------------------------------------------------


def test_poll_counts_polls_and_reports_completed(
    fleet: Fleet, driver: JobDriver, acts: MigrationActivities
) -> None:
    """Each poll heartbeats the job's percent; the result counts every poll, has no resume
    point without earlier details, and is the completed job's view."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    beats: list[dict[str, Any]] = []

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        driver.advance()

    env = ActivityEnvironment()
    env.on_heartbeat = on_heartbeat
    result = env.run(acts.poll_job, MigrationJobInput(host="SVR2", job_id=job_id.lower(),
                                                      interval_seconds=0.001))
    assert result.changed is False
    assert result.observed["polls"] == len(beats) + 1 and result.observed["polls"] > 2
    assert result.observed["resumed_from"] is None
    assert result.observed["job_id"] == job_id and result.observed["job_state"] == 7
    assert all(b == JobBeat(job_id=job_id, percent=b["percent"]).details() for b in beats)


@pytest.mark.parametrize("tagged", [False, True], ids=["older-worker", "this-worker"])
def test_poll_resumes_only_from_its_own_job(
    fleet: Fleet, driver: JobDriver, acts: MigrationActivities, tagged: bool
) -> None:
    """Earlier details of this job (as a worker before typed details, or this one, wrote
    them) are re-sent first and reported as the resume point; details of another job are
    ignored."""
    tag = {"beat": JobBeat.KIND} if tagged else {}
    job_id = acts.start_move(MOVE).observed["job_id"]
    driver.finish()
    request = MigrationJobInput(host="SVR2", job_id=job_id, interval_seconds=0.001)
    env = ActivityEnvironment()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"job_id": job_id,
                                                                 "percent": 40, **tag}])
    result = env.run(acts.poll_job, request)
    assert result.observed["resumed_from"] == 40 and result.observed["polls"] == 1
    assert beats and beats[0] == (JobBeat(job_id=job_id, percent=40).details(),)
    other = ActivityEnvironment()
    other.info = dataclasses.replace(other.info, heartbeat_details=[{
        "job_id": "00000000-0000-4000-8000-000000000001", "percent": 40, **tag}])
    assert other.run(acts.poll_job, request).observed["resumed_from"] is None


def test_poll_times_out_retryably(fleet: Fleet, driver: JobDriver,
                                  acts: MigrationActivities) -> None:
    """A job still running at the deadline fails as a retryable JobTimeout."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    request = MigrationJobInput(host="SVR2", job_id=job_id, interval_seconds=0.5,
                                timeout_seconds=0.4)
    with pytest.raises(ApplicationError) as caught:
        acts.poll_job(request)
    assert caught.value.type == "JobTimeout" and caught.value.non_retryable is False
    assert caught.value.message == (f"SVR2: migration job {job_id} still running after 1 "
                                    "polls")
    driver.finish()


def test_poll_rejects_a_bad_job_id(acts: MigrationActivities) -> None:
    """A job id that is not a GUID is refused before any query."""
    with pytest.raises(ApplicationError) as caught:
        acts.poll_job(MigrationJobInput(host="SVR2", job_id="1' OR '1'='1"))
    assert caught.value.type == "InvalidParameter" and caught.value.non_retryable


# -- cancel --------------------------------------------------------------------------------


def test_cancel_result_fields(fleet: Fleet, driver: JobDriver,
                              acts: MigrationActivities) -> None:
    """A cancel request on a running job reports requested, the return value and the job's
    view afterwards; the ended job's view says already ended."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    driver.advance(2)
    request = MigrationJobInput(host="SVR2", job_id=job_id.lower())
    result = acts.cancel_job(request)
    assert result.changed is True
    assert result.observed["requested"] is True and result.observed["return_value"] == 0
    assert result.observed["job_id"] == job_id and result.observed["state"] == "Running"
    driver.release()
    again = acts.cancel_job(request)
    assert again.changed is False and again.observed["already_ended"] is True
    assert again.observed["job_id"] == job_id and again.observed["state"] == "Terminated"
    gone = acts.cancel_job(MigrationJobInput(host="SVR2",
                                             job_id="00000000-0000-4000-8000-000000000001"))
    assert gone.observed == {"job_id": "00000000-0000-4000-8000-000000000001", "state": "Gone",
                             "already_ended": True}


def _race(acts: MigrationActivities, fleet: Fleet, change: Any) -> None:
    """After the cancel's first job lookup answers, ``change(job)`` runs on the host side."""
    lookup = acts._get_job
    calls: list[str] = []

    def first_then_change(host: str, job_id: str) -> Any:
        found = lookup(host, job_id)
        if not calls:
            calls.append(job_id)
            change(next(j for j in fleet.sim.world.jobs.values() if j.id.upper() == job_id))
        return found

    acts._get_job = first_then_change  # type: ignore[method-assign]


def test_cancel_of_a_job_that_just_ended(fleet: Fleet, driver: JobDriver,
                                         acts: MigrationActivities) -> None:
    """A job that ends between the lookup and the request (32775) is already ended, unchanged."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    _race(acts, fleet, lambda job: setattr(job, "state", 7))
    result = acts.cancel_job(MigrationJobInput(host="SVR2", job_id=job_id))
    assert result.changed is False
    assert result.observed == {"job_id": job_id, "already_ended": True}
    assert counter(fleet, "SVR2", "Invoke-CimMethod") == 1
    fleet.sim.world.jobs[job_id.lower() if job_id.lower() in fleet.sim.world.jobs
                         else next(iter(fleet.sim.world.jobs))].state = 4
    driver.finish()


def test_cancel_of_a_job_that_just_left(fleet: Fleet, driver: JobDriver,
                                        acts: MigrationActivities) -> None:
    """A job removed between the lookup and the request (the host's "Not found", HRESULT
    0x80041002) is gone, unchanged, not a failure."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    kept: dict[str, Any] = {}

    def remove(job: Any) -> None:
        kept[job.id] = fleet.sim.world.jobs.pop(job.id)

    _race(acts, fleet, remove)
    result = acts.cancel_job(MigrationJobInput(host="SVR2", job_id=job_id))
    assert result.changed is False
    assert result.observed == {"job_id": job_id, "state": "Gone", "already_ended": True}
    fleet.sim.world.jobs.update(kept)
    driver.finish()


def test_cancel_rejected_by_the_host(fleet: Fleet, driver: JobDriver, acts: MigrationActivities,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A RequestStateChange the host answers with another code (32770, not supported) fails
    as CancelRejected, final."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    monkeypatch.setattr(mg, "TERMINATE", 3)
    with pytest.raises(ApplicationError) as caught:
        acts.cancel_job(MigrationJobInput(host="SVR2", job_id=job_id))
    assert caught.value.type == "CancelRejected" and caught.value.non_retryable
    assert caught.value.message == f"SVR2: RequestStateChange(4) on {job_id} returned 32770"
    driver.finish()


# -- location ------------------------------------------------------------------------------


def test_verify_location_mismatches(fleet: Fleet, acts: MigrationActivities) -> None:
    """Every mismatch is named: not on the host, still on the source, configuration and disks
    outside the path; with fail_on_mismatch off they are data, otherwise VerificationFailed."""
    lab_with_vm(fleet.sim)
    absent = VerifyLocationInput(host="SVR1", vm="Linux01", absent_from="SVR2",
                                 fail_on_mismatch=False)
    observed = acts.verify_location(absent).observed
    assert observed == {"host": "SVR1", "present": False, "path": None, "configuration": None,
                        "state": None, "disks": [],
                        "mismatches": ["not on SVR1", "still on SVR2"]}
    with pytest.raises(ApplicationError) as caught:
        acts.verify_location(absent.model_copy(update={"fail_on_mismatch": True}))
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message == ("SVR1: VM Linux01 is not where expected: not on SVR1; "
                                    "still on SVR2")
    assert caught.value.details[0] == observed
    elsewhere = VerifyLocationInput(host="SVR2", vm="Linux01", path=DEST,
                                    fail_on_mismatch=False)
    seen = acts.verify_location(elsewhere).observed
    vm = fleet.sim.host("SVR2").vm("Linux01")
    assert vm is not None
    assert seen["present"] is True and seen["state"] == "Running"
    assert seen["disks"] == ["C:\\Hyper-V\\VHDs\\Linux01.vhdx"]
    assert seen["configuration"] and seen["path"]
    assert seen["mismatches"] == [
        f"configuration at {seen['path']}, not under {DEST}",
        f"disk C:\\Hyper-V\\VHDs\\Linux01.vhdx not under {DEST}"]
    fine = acts.verify_location(VerifyLocationInput(host="SVR2", vm="Linux01"))
    assert fine.changed is False and fine.observed["mismatches"] == []


def test_cancel_of_a_job_that_leaves_at_once(fleet: Fleet, driver: JobDriver,
                                             acts: MigrationActivities) -> None:
    """A job removed right after the accepted request is reported Gone, requested, with the
    return value, and changed."""
    job_id = acts.start_move(MOVE).observed["job_id"]
    lookup = acts._get_job
    calls: list[str] = []
    kept: dict[str, Any] = {}

    def second_after_removal(host: str, wanted: str) -> Any:
        calls.append(wanted)
        if len(calls) == 2:
            job = next(j for j in fleet.sim.world.jobs.values() if j.id.upper() == wanted)
            kept[job.id] = fleet.sim.world.jobs.pop(job.id)
        return lookup(host, wanted)

    acts._get_job = second_after_removal  # type: ignore[method-assign]
    result = acts.cancel_job(MigrationJobInput(host="SVR2", job_id=job_id))
    assert result.changed is True
    assert result.observed == {"job_id": job_id, "state": "Gone", "requested": True,
                               "return_value": 0}
    fleet.sim.world.jobs.update(kept)
    driver.release()


def test_new_job_is_found_whatever_the_listing_order(
    fleet: Fleet, acts: MigrationActivities
) -> None:
    """The job a move started is told apart from the VM's earlier jobs by id, not by its
    place in the listing (WMI does not order instances): an earlier job listed last is not
    taken for the new one."""
    lab_with_vm(fleet.sim)
    first = acts.start_move(STORAGE_A)
    for job in list(fleet.sim.world.jobs.values()):
        assert fleet.sim.job_done(job.id, timeout=5)
    jobs = fleet.sim.world.jobs
    listing = acts._jobs_for
    calls: list[str] = []

    def earlier_listed_last(host: str, wanted: str) -> Any:
        calls.append(wanted)
        if len(calls) == 2:  # after Move-VMStorage: the old job moves to the end
            old = next(k for k in jobs if k.upper() == first.observed["job_id"])
            jobs[old] = jobs.pop(old)
        return listing(host, wanted)

    acts._jobs_for = earlier_listed_last  # type: ignore[method-assign]
    second = acts.start_move(STORAGE_B)
    assert len(calls) == 2
    assert second.changed and second.observed["job_id"] != first.observed["job_id"]
    assert list(jobs)[-1].upper() == first.observed["job_id"]


def test_same_name_on_both_hosts_is_not_done(fleet: Fleet, acts: MigrationActivities) -> None:
    """A VM of that name on the destination while the source still has it is not a finished
    move: start_move starts one."""
    lab_with_vm(fleet.sim)
    vm = fleet.sim.host("SVR2").vm("Linux01")
    assert vm is not None
    twin = vm.model_copy(update={"id": "11111111-2222-4333-8444-555555555555"})
    fleet.sim.host("SVR1").vms[twin.id] = twin
    assert acts._moved(MOVE) is None
    assert acts.preflight(MOVE).observed["done"] is False


def test_location_is_by_vm_name(fleet: Fleet, acts: MigrationActivities) -> None:
    """Another VM on the host or on absent_from does not count as the VM being there."""
    lab_with_vm(fleet.sim)
    vm = fleet.sim.host("SVR2").vm("Linux01")
    assert vm is not None
    other = vm.model_copy(update={"id": "11111111-2222-4333-8444-666666666666",
                                  "name": "Other01"})
    fleet.sim.host("SVR1").vms[other.id] = other
    ghost = acts.verify_location(VerifyLocationInput(host="SVR1", vm="Linux01",
                                                     fail_on_mismatch=False))
    assert ghost.observed["present"] is False
    here = acts.verify_location(VerifyLocationInput(host="SVR2", vm="Linux01",
                                                    absent_from="SVR1"))
    assert here.observed["mismatches"] == []
    flight = acts.preflight(STORAGE_A)
    assert flight.changed is False and flight.observed["compared"] is False
