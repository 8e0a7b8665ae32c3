"""LiveMigrationWorkflow's decisions outside a worker: which host the VM moves from, where
to, which paths, the inputs of the move and of the location check, the result, the outcome a
failure counts as, and the downtime note (the parts that need no workflow context)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState

from activities.models import (
    FindJobInput,
    MigrationJobInput,
    MoveInput,
    StepResult,
    VerifyLocationInput,
)
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from tests.sim.conftest import SEED
from workflows.migration import (
    DOWNTIME_NOT_MEASURED,
    LiveMigrationInput,
    LiveMigrationWorkflow,
    _outcome,
    _Plan,
    migration_id,
    share_of,
)

VM = "win2003-2"  # on SVR1 in the lab file


@pytest.fixture(scope="module")
def spec() -> LabSpec:
    return load_lab(SEED)


def flow(spec: LabSpec, **request: Any) -> LiveMigrationWorkflow:
    """The workflow object as ``run`` prepares it (request and lab set), without a worker."""
    wf = LiveMigrationWorkflow()
    wf._request = LiveMigrationInput(spec=spec, **{"vm": VM, **request})
    wf._lab = spec.lab
    return wf


def problem(call: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        call()
    assert raised.value.non_retryable
    return raised.value


def activity_error(cause: BaseException | None) -> ActivityError:
    error = ActivityError("Activity task failed", scheduled_event_id=5, started_event_id=6,
                          identity="w", activity_type="migration.poll_job", activity_id="3",
                          retry_state=RetryState.NON_RETRYABLE_FAILURE)
    error.__cause__ = cause
    return error


# -- ids and outcomes ------------------------------------------------------------------------


def test_migration_id_is_lab_and_vm() -> None:
    """One migration workflow id per VM of a lab."""
    assert migration_id("classroom", "win2003-2") == "classroom-migrate-win2003-2"


@pytest.mark.parametrize(("exc", "outcome"), [
    (asyncio.CancelledError(), "cancelled"),
    (CancelledError("Cancelled"), "cancelled"),
    (activity_error(CancelledError("Cancelled")), "cancelled"),
    (activity_error(ApplicationError("job failed")), "failed"),
    (activity_error(None), "failed"),
    (ApplicationError("boom", type="Conflict"), "failed"),
    (RuntimeError("bug"), "failed"),
], ids=["asyncio-cancel", "cancel", "activity-cancelled", "activity-failed",
        "activity-no-cause", "application", "other"])
def test_outcome_of_a_failure(exc: BaseException, outcome: str) -> None:
    """A cancel of the run or of its activity counts as cancelled, anything else failed."""
    assert _outcome(exc) == outcome


@pytest.mark.parametrize(("path", "share"), [
    ("\\\\DC1\\smb\\win2003-2", "\\\\DC1\\smb"),
    ("\\\\DC1\\smb", "\\\\DC1\\smb"),
    ("\\\\fs.kosa.vm\\vms\\a\\b", "\\\\fs.kosa.vm\\vms"),
    ("\\\\XFS\\vms\\a", "\\\\XFS\\vms"),
    ("\\\\DC1", None),
    ("\\DC1\\smb\\x", None),
    ("C:\\Hyper-V\\win2003-2", None),
    ("", None),
])
def test_share_of_a_path(path: str, share: str | None) -> None:
    """A UNC path's \\\\server\\share (the VM at the share's root too); local paths and a
    bare server have none."""
    assert share_of(path) == share


# -- where from, where to --------------------------------------------------------------------


def test_source_is_the_one_host_that_has_the_vm(spec: LabSpec) -> None:
    """The VM found on one host (the destination aside) moves from there."""
    wf = flow(spec, destination="SVR2")
    assert wf._find_source({"SVR1": "Running"}) == ("SVR1", False)
    assert wf._find_source({"SVR1": "Off", "SVR2": "Running"}) == ("SVR1", False)


def test_vm_at_the_destination_only_is_there_already(spec: LabSpec) -> None:
    """Found only on the destination (named in any case): nothing to move; the source
    reported is the VM's host in the lab file."""
    wf = flow(spec, destination="svr2")
    assert wf._find_source({"SVR2": "Running"}) == ("SVR1", True)


def test_vm_on_several_hosts_needs_a_source(spec: LabSpec) -> None:
    """Found on more than one host besides the destination: a Conflict naming them."""
    wf = flow(spec, mode="storage", storage_path="D:\\VMs\\x", destination="SVR2")
    error = problem(lambda: wf._find_source({"SVR1": "Running", "SVR2": "Off"}))
    assert error.type == "Conflict"
    assert error.message == f"{VM}: found on SVR1, SVR2; say which is the source"
    assert error.details == ({"hosts": ["SVR1", "SVR2"]},)


def test_storage_move_ignores_a_destination(spec: LabSpec) -> None:
    """A storage move stays on the VM's own host, whatever destination is given."""
    wf = flow(spec, mode="storage", storage_path="D:\\VMs\\x", destination="SVR1")
    assert wf._find_source({"SVR1": "Running"}) == ("SVR1", False)


def test_vm_not_found(spec: LabSpec) -> None:
    """Found on no host: NotFound, with what was found as details."""
    error = problem(lambda: flow(spec, destination="SVR2")._find_source({}))
    assert error.type == "NotFound"
    assert error.message == f"{VM}: not found on any Hyper-V host"
    assert error.details == ({"hosts": {}},)


def test_not_found_without_a_destination(spec: LabSpec) -> None:
    """With no destination given and the VM nowhere, the failure is NotFound too."""
    error = problem(lambda: flow(spec)._find_source({}))
    assert error.type == "NotFound"


def test_destination_of_each_mode(spec: LabSpec) -> None:
    """storage: the source itself; otherwise the named host, as the lab file spells it."""
    assert flow(spec, mode="storage", destination="SVR2")._destination("SVR1") == "SVR1"
    assert flow(spec, destination="svr2")._destination("SVR1") == "SVR2"
    assert flow(spec, mode="smb", destination="svr2")._destination("SVR1") == "SVR2"


@pytest.mark.parametrize("mode", ["shared-nothing", "smb"])
def test_a_move_needs_a_destination(spec: LabSpec, mode: str) -> None:
    """A live move without a destination host is an InvalidParameter naming the mode."""
    error = problem(lambda: flow(spec, mode=mode)._destination("SVR1"))
    assert error.type == "InvalidParameter"
    assert error.message == f"{VM}: mode {mode} needs a destination host"


def test_unknown_destination_is_not_found(spec: LabSpec) -> None:
    """A destination the lab file does not have fails as NotFound."""
    error = problem(lambda: flow(spec, destination="SVR9")._destination("SVR1"))
    assert error.type == "NotFound" and "SVR9" in error.message


# -- paths -----------------------------------------------------------------------------------


def test_path_of_each_mode(spec: LabSpec) -> None:
    """smb: not checked (the share is found later); a given storage path wins; else the
    destination's VM folder plus the VM name as the lab file spells it."""
    assert flow(spec, mode="smb", destination="SVR2",
                storage_path="D:\\x")._path("SVR2") is None
    assert flow(spec, destination="SVR2", storage_path="D:\\x")._path("SVR2") == "D:\\x"
    assert flow(spec, mode="storage", storage_path="E:\\y")._path("SVR1") == "E:\\y"
    assert flow(spec, vm="WIN2003-2", destination="SVR2")._path("SVR2") == \
        "C:\\Hyper-V\\win2003-2"


def test_path_uses_the_destination_folder(spec: LabSpec) -> None:
    """The default path is under the destination host's own VM folder."""
    hosts = [h.model_copy(update={"paths": h.paths.model_copy(
        update={"virtual_machines": f"D:\\{h.name}"})}) for h in spec.hosts]
    custom = spec.model_copy(update={"hosts": hosts})
    assert flow(custom, destination="SVR2")._path("SVR2") == "D:\\SVR2\\win2003-2"


def test_path_without_a_vm_folder_is_the_hyper_v_default(spec: LabSpec) -> None:
    """A host without a VM folder in the lab file gets C:\\Hyper-V."""
    hosts = [h.model_copy(update={"paths": h.paths.model_copy(
        update={"virtual_machines": None})}) for h in spec.hosts]
    custom = spec.model_copy(update={"hosts": hosts})
    assert flow(custom, destination="SVR2")._path("SVR2") == "C:\\Hyper-V\\win2003-2"


def test_storage_move_needs_a_path(spec: LabSpec) -> None:
    """mode storage without a storage path is an InvalidParameter."""
    error = problem(lambda: flow(spec, mode="storage")._path("SVR1"))
    assert error.type == "InvalidParameter"
    assert error.message == f"{VM}: mode storage needs a storage path"


# -- the plan --------------------------------------------------------------------------------


def test_plan_of_a_shared_nothing_move(spec: LabSpec) -> None:
    """Move-VM from SVR1 to SVR2 (FQDN in lower case) with the storage path; the check
    wants it on SVR2 under that path and gone from SVR1."""
    plan = flow(spec, destination="SVR2")._plan({"SVR1": "Running"})
    assert plan == _Plan(
        move=MoveInput(lab="classroom", host="SVR1", vm=VM, mode="shared-nothing",
                       destination="SVR2", destination_fqdn="svr2.kosa.vm",
                       destination_path="C:\\Hyper-V\\win2003-2"),
        verify=VerifyLocationInput(lab="classroom", host="SVR2", vm=VM,
                                   path="C:\\Hyper-V\\win2003-2", absent_from="SVR1"),
        was_running=True, already_there=False)


def test_plan_of_a_storage_move(spec: LabSpec) -> None:
    """Move-VMStorage on the VM's host: no destination host, nothing to be absent from."""
    plan = flow(spec, mode="storage", storage_path="D:\\VMs\\w")._plan({"SVR1": "Off"})
    assert plan == _Plan(
        move=MoveInput(lab="classroom", host="SVR1", vm=VM, mode="storage", destination=None,
                       destination_fqdn=None, destination_path="D:\\VMs\\w"),
        verify=VerifyLocationInput(lab="classroom", host="SVR1", vm=VM, path="D:\\VMs\\w",
                                   absent_from=None),
        was_running=False, already_there=False)


def test_plan_of_a_compute_only_move(spec: LabSpec) -> None:
    """smb: Move-VM without a destination path; the path is checked later (the share)."""
    plan = flow(spec, mode="smb", destination="SVR2")._plan({"SVR1": "Running"})
    assert plan.move.destination == "SVR2" and plan.move.destination_fqdn == "svr2.kosa.vm"
    assert plan.move.destination_path is None and plan.verify.path is None
    assert plan.verify.absent_from == "SVR1" and plan.was_running


def test_plan_when_already_there_reads_the_state_there(spec: LabSpec) -> None:
    """At the destination already: was_running is the state on the destination."""
    wf = flow(spec, destination="SVR2")
    there = wf._plan({"SVR2": "Running"})
    assert there.already_there and there.was_running and there.move.host == "SVR1"
    assert there.verify.host == "SVR2" and there.verify.absent_from == "SVR1"
    assert not wf._plan({"SVR2": "Off"}).was_running


# -- inputs, result, downtime ----------------------------------------------------------------


def test_job_and_find_inputs_name_the_source(spec: LabSpec) -> None:
    """Job polls and job look-ups go to the source with the poll interval and the VM's id."""
    wf = flow(spec, destination="SVR2", poll_seconds=0.5)
    wf._source, wf._vm_id = "SVR1", "vm-guid"
    assert wf._job_input("J1") == MigrationJobInput(lab="classroom", host="SVR1", job_id="J1",
                                                    interval_seconds=0.5)
    assert wf._find_input() == FindJobInput(lab="classroom", host="SVR1", vm=VM,
                                            vm_id="vm-guid")


def test_result_copies_the_location_and_the_move(spec: LabSpec) -> None:
    """The result holds where the check found the VM and what the move did."""
    wf = flow(spec, destination="SVR2")
    plan = wf._plan({"SVR1": "Running"})
    where = StepResult(changed=False, observed={"host": "SVR2", "path": "C:\\Hyper-V\\win2003-2",
                                 "disks": ["C:\\Hyper-V\\win2003-2\\d.vhd"],
                                 "state": "Running"})
    result = wf._result(plan, where, {"moved": True, "job_id": "J1", "reattached": 1,
                                      "resumed_from": 40, "downtime_seconds": 1.5,
                                      "downtime_note": "2 of 10 pings from DC1 lost"})
    assert result.model_dump() == {
        "vm": VM, "mode": "shared-nothing", "source": "SVR1", "host": "SVR2",
        "path": "C:\\Hyper-V\\win2003-2", "disks": ["C:\\Hyper-V\\win2003-2\\d.vhd"],
        "state": "Running", "moved": True, "job_id": "J1", "reattached": True,
        "resumed_from": 40, "incompatibilities": [], "downtime_seconds": 1.5,
        "downtime_note": "2 of 10 pings from DC1 lost",
        "progress": wf._tracker.progress.model_dump()}


def test_result_of_a_run_that_moved_nothing(spec: LabSpec) -> None:
    """Nothing moved: not moved, no job, not re-attached, downtime not measured."""
    wf = flow(spec, destination="SVR2")
    plan = wf._plan({"SVR2": "Running"})
    result = wf._result(plan, StepResult(changed=False, observed={"host": "SVR2"}), {"moved": False})
    assert (result.moved, result.job_id, result.reattached, result.resumed_from) == \
        (False, None, False, None)
    assert result.disks == [] and result.path is None and result.state is None
    assert result.downtime_seconds is None and result.downtime_note == DOWNTIME_NOT_MEASURED


def done(result: StepResult | BaseException) -> asyncio.Future[StepResult]:
    future: asyncio.Future[StepResult] = asyncio.get_running_loop().create_future()
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
    return future


async def test_downtime_not_probed() -> None:
    """No probe ran (storage move, no address): nothing to add to the result."""
    assert await LiveMigrationWorkflow._downtime(None) == {}


async def test_downtime_measured() -> None:
    """A measured probe gives the longest gap and how many pings were lost, from where."""
    watch = done(StepResult(changed=False, observed={"measured": True, "downtime_seconds": 0.8, "lost": 2,
                                      "probes": 40, "from": "DC1"}))
    assert await LiveMigrationWorkflow._downtime(watch) == {
        "downtime_seconds": 0.8, "downtime_note": "2 of 40 pings from DC1 lost"}


async def test_downtime_not_measured_says_why() -> None:
    """A probe that could not measure says why, with no number."""
    watch = done(StepResult(changed=False, observed={"measured": False, "reason": "no replies before"}))
    assert await LiveMigrationWorkflow._downtime(watch) == {
        "downtime_note": "not measured: no replies before"}


async def test_downtime_probe_failure_is_a_note() -> None:
    """A failed ping probe does not fail the migration: the note names the cause."""
    watch = done(activity_error(ApplicationError("DC1 unreachable")))
    assert await LiveMigrationWorkflow._downtime(watch) == {
        "downtime_note": "not measured: the ping probe failed (DC1 unreachable)"}
