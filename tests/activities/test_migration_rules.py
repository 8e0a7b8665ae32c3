"""Migration activity rules that the scenario tests leave implicit: the exact commands per
move mode, job state classification, job views and failures, pre-flight problems by id,
path and id checks, and the readiness settings diff."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities import migration as mg
from activities.base import last_heartbeat
from activities.models import MigrationHostSettings, MigrationNetworkInput, MoveInput
from hvlab.powershell.command import SWITCH

JOB = "0A1B2C3D-0000-4000-8000-000000000001"
SN = MoveInput(host="SVR2", vm="Linux01", mode="shared-nothing", destination="SVR1",
               destination_fqdn="svr1.kosa.vm", destination_path="C:\\Hyper-V\\Linux01")
SMB = MoveInput(host="SVR2", vm="Linux01", mode="smb", destination="SVR1")
STORAGE = MoveInput(host="SVR2", vm="Linux01", mode="storage",
                    destination_path="\\\\DC1\\smb\\Moved")


# -- commands ------------------------------------------------------------------------------


def test_shared_nothing_move_and_compare_carry_storage() -> None:
    """A shared-nothing move sends Move-VM -IncludeStorage to the FQDN as a job; Compare-VM
    has the same destination but never -AsJob."""
    move = mg.move_command(SN)
    assert move.cmdlet == "Move-VM"
    assert move.parameters == {"Name": "Linux01", "DestinationHost": "svr1.kosa.vm",
                               "IncludeStorage": SWITCH,
                               "DestinationStoragePath": "C:\\Hyper-V\\Linux01",
                               "AsJob": SWITCH}
    compare = mg.compare_vm_command(SN)
    assert compare.cmdlet == "Compare-VM"
    assert compare.parameters == {"Name": "Linux01", "DestinationHost": "svr1.kosa.vm",
                                  "IncludeStorage": SWITCH,
                                  "DestinationStoragePath": "C:\\Hyper-V\\Linux01"}


def test_smb_move_is_compute_only_to_the_host_name() -> None:
    """An SMB move has no storage parameters and falls back to the lab host name."""
    assert mg.move_command(SMB).parameters == {"Name": "Linux01", "DestinationHost": "SVR1",
                                               "AsJob": SWITCH}
    assert mg.move_command(SMB).cmdlet == "Move-VM"
    assert mg.compare_vm_command(SMB).parameters == {"Name": "Linux01",
                                                     "DestinationHost": "SVR1"}


def test_storage_move_is_move_vmstorage_as_a_job() -> None:
    """A storage move is Move-VMStorage -VMName to the path, as a job."""
    move = mg.move_command(STORAGE)
    assert move.cmdlet == "Move-VMStorage"
    assert move.parameters == {"VMName": "Linux01",
                               "DestinationStoragePath": "\\\\DC1\\smb\\Moved", "AsJob": SWITCH}


def test_job_and_host_commands() -> None:
    """The job queries, cancel, ping, Receive-Job and migration-host commands are exact."""
    assert mg.migration_jobs_command().cmdlet == "Get-CimInstance"
    assert mg.migration_jobs_command().parameters == {
        "Namespace": "root/virtualization/v2", "ClassName": "Msvm_MigrationJob"}
    query = f"SELECT * FROM Msvm_MigrationJob WHERE InstanceID='{JOB}'"
    assert mg.migration_job_command(JOB).cmdlet == "Get-CimInstance"
    assert mg.migration_job_command(JOB).parameters == {"Namespace": "root/virtualization/v2",
                                                        "Query": query}
    cancel = mg.cancel_job_command(JOB)
    assert cancel.cmdlet == "Invoke-CimMethod"
    assert cancel.parameters == {"Namespace": "root/virtualization/v2", "Query": query,
                                 "MethodName": "RequestStateChange",
                                 "Arguments": {"RequestedState": 4}}
    ping = mg.ping_command("10.0.0.1")
    assert ping.cmdlet == "Test-Connection"
    assert ping.parameters == {"ComputerName": "10.0.0.1", "Count": 1, "Quiet": SWITCH}
    assert mg.receive_job_command(7).cmdlet == "Receive-Job"
    assert mg.receive_job_command(7).parameters == {"Id": 7}
    assert mg.hard_disks_command("vm").cmdlet == "Get-VMHardDiskDrive"
    assert mg.hard_disks_command("vm").parameters == {"VMName": "vm"}
    assert mg.enable_migration_command().cmdlet == "Enable-VMMigration"
    assert mg.disable_migration_command().cmdlet == "Disable-VMMigration"
    assert mg.get_migration_networks_command().cmdlet == "Get-VMMigrationNetwork"
    add = mg.add_migration_network_command(MigrationNetworkInput(subnet="10.1.0.0/16",
                                                                 priority=3))
    assert add.cmdlet == "Add-VMMigrationNetwork"
    assert add.parameters == {"Subnet": "10.1.0.0/16", "Priority": 3}
    remove = mg.remove_migration_network_command("10.1.0.0/16")
    assert remove.cmdlet == "Remove-VMMigrationNetwork"
    assert remove.parameters == {"Subnet": "10.1.0.0/16"}
    assert mg.set_migration_host_command({"MaximumStorageMigrations": 3}).cmdlet == "Set-VMHost"


# -- job states ----------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "running"), [
    (None, True), (2, True), (3, True), (4, True), (5, True), (6, True), (11, True),
    (7, False), (8, False), (9, False), (10, False)])
def test_job_state_classification(state: int | None, running: bool) -> None:
    """Only Completed, Terminated, Killed and Exception are finished job states."""
    assert mg._running({"JobState": state}) is running


def test_job_view_fields() -> None:
    """The job view upper-cases ids, names the state and defaults missing numbers to 0."""
    job = {"InstanceID": JOB.lower(), "JobState": 4, "PercentComplete": 35,
           "VirtualSystemName": "abc-def", "DestinationHost": "svr1", "JobType": 300,
           "ErrorDescription": "e"}
    assert mg._job_view(job) == {"job_id": JOB, "state": "Running", "job_state": 4,
                                 "percent": 35, "vm_id": "ABC-DEF", "destination": "svr1",
                                 "job_type": 300, "error": "e"}
    empty = mg._job_view({})
    assert empty == {"job_id": "", "state": "0", "job_state": 0, "percent": 0, "vm_id": "",
                     "destination": None, "job_type": None, "error": None}
    assert [mg._job_view({"JobState": s})["state"] for s in range(2, 12)] == [
        "New", "Starting", "Running", "Suspended", "ShuttingDown", "Completed", "Terminated",
        "Killed", "Exception", "Service"]


@pytest.mark.parametrize("state", [8, 9])
def test_terminated_or_killed_job_fails_as_job_terminated(state: int) -> None:
    """A terminated or killed job is a non-retryable JobTerminated with its view as details."""
    job = {"InstanceID": JOB, "JobState": state, "VirtualSystemName": "V"}
    error = mg.job_failure("SVR2", job)
    name = mg.JOB_STATE_NAMES[state]
    assert error.type == "JobTerminated" and error.non_retryable
    assert error.message == (f"SVR2: migration job {JOB} was {name}: the job ended {name}")
    assert error.details[0] == mg._job_view(job)
    described = mg.job_failure("SVR2", {**job, "ErrorDescription": "stopped by admin"})
    assert described.message == f"SVR2: migration job {JOB} was {name}: stopped by admin"


def test_exception_job_fails_with_its_classified_description() -> None:
    """A job in Exception is classified by its ErrorDescription (access denied here), never
    retried, and carries the host and the host's message."""
    text = "General access denied error (0x80070005)."
    job = {"InstanceID": JOB, "JobState": 10, "ErrorDescription": text}
    error = mg.job_failure("SVR2", job)
    assert error.type == "AccessDenied" and error.non_retryable
    assert text in error.message and "SVR2" in error.message
    assert f"Msvm_MigrationJob {JOB}" in error.message
    assert error.details[0] == {**mg._job_view(job), "host": "SVR2", "message": text}
    bare = mg.job_failure("SVR2", {"InstanceID": JOB, "JobState": 10})
    assert bare.type == "RemoteCommandFailed" and bare.non_retryable
    assert bare.details[0]["message"] == "the job ended Exception"


# -- pre-flight problems -------------------------------------------------------------------


def test_problem_view_keeps_the_message_id() -> None:
    """An incompatibility is {message, message_id, source}, the id as an int, the source by
    name, VM name or text."""
    assert mg._problem_view({"Message": "m", "MessageId": "33012",
                             "Source": {"Name": "Network Adapter"}}) == {
        "message": "m", "message_id": 33012, "source": "Network Adapter"}
    assert mg._problem_view({"Message": "m", "MessageId": 0, "Source": {"VMName": "vm"}}) == {
        "message": "m", "message_id": 0, "source": "vm"}
    assert mg._problem_view({"Source": {"Other": 1}}) == {
        "message": "", "message_id": None, "source": str({"Other": 1})}
    assert mg._problem_view({"Message": "m", "Source": "text"})["source"] == "text"
    assert mg._problem_view({"Message": "m", "Source": 5})["source"] == "5"
    assert mg._problem_view("plain") == {"message": "plain", "message_id": None, "source": None}


# -- checks --------------------------------------------------------------------------------


def test_under_is_case_insensitive_and_by_component() -> None:
    """A path is under a root when equal or below it by a backslash component; no root is
    never matched."""
    assert mg._under("C:\\Hyper-V\\Moved", "c:\\hyper-v\\moved\\")
    assert mg._under("C:\\Hyper-V\\Moved\\x.vhdx", "C:\\Hyper-V\\Moved")
    assert not mg._under("C:\\Hyper-V\\Moved2\\x.vhdx", "C:\\Hyper-V\\Moved")
    assert not mg._under("C:\\Hyper-V", "C:\\Hyper-V\\Moved")
    assert not mg._under("C:\\x", "")
    assert not mg._under("", "")
    assert not mg._under(None, "\\")
    assert mg._norm(None) == "" and mg._text(None) == "" and mg._text(3) == "3"


@pytest.mark.parametrize(("request_", "missing"), [
    (MoveInput(host="h", vm="v", mode="shared-nothing"), "destination and destination_path"),
    (MoveInput(host="h", vm="v", mode="shared-nothing", destination="d"), "destination_path"),
    (MoveInput(host="h", vm="v", mode="smb"), "destination"),
    (MoveInput(host="h", vm="v", mode="storage"), "destination_path"),
])
def test_check_move_refuses_missing_parameters(request_: MoveInput, missing: str) -> None:
    """A move without the destination parameters its mode needs is InvalidParameter, final."""
    with pytest.raises(ApplicationError) as caught:
        mg._check_move(request_)
    assert caught.value.type == "InvalidParameter" and caught.value.non_retryable
    assert caught.value.message == f"a {request_.mode} move of v needs {missing}"


def test_check_move_accepts_complete_requests() -> None:
    """Each mode's complete request passes (smb needs no path, storage no destination)."""
    for request in (SN, SMB, STORAGE):
        mg._check_move(request)


def test_job_id_is_a_guid() -> None:
    """Job ids are normalised to upper-case GUIDs; anything else is refused before a query."""
    assert mg._job_id(JOB.lower()) == JOB
    with pytest.raises(ApplicationError) as caught:
        mg._job_id("x' OR '1'='1")
    assert caught.value.type == "InvalidParameter" and caught.value.non_retryable
    assert caught.value.message == "not a migration job id: \"x' OR '1'='1\""


# -- readiness settings --------------------------------------------------------------------


def test_settings_view_defaults_and_values() -> None:
    """Get-VMHost's migration fields map to the settings; missing ones get Hyper-V's
    defaults (disabled, CredSSP, Compression, 2 and 2, not any network)."""
    assert mg._settings_view({}) == MigrationHostSettings(
        enabled=False, authentication="CredSSP", performance="Compression",
        max_vm_migrations=2, max_storage_migrations=2, use_any_network=False)
    vmhost: dict[str, Any] = {
        "VirtualMachineMigrationEnabled": True,
        "VirtualMachineMigrationAuthenticationType": "Kerberos",
        "VirtualMachineMigrationPerformanceOption": "SMB",
        "MaximumVirtualMachineMigrations": 5, "MaximumStorageMigrations": 7,
        "UseAnyNetworkForMigration": True}
    assert mg._settings_view(vmhost) == MigrationHostSettings(
        enabled=True, authentication="Kerberos", performance="SMB", max_vm_migrations=5,
        max_storage_migrations=7, use_any_network=True)


def test_setting_changes_only_differences() -> None:
    """Only the differing settings become Set-VMHost parameters (enablement is separate)."""
    current = MigrationHostSettings(enabled=False, authentication="CredSSP")
    wanted = MigrationHostSettings(enabled=True, authentication="Kerberos",
                                   performance="TCPIP", max_vm_migrations=3,
                                   max_storage_migrations=4, use_any_network=True)
    assert mg.setting_changes(wanted, current) == {
        "VirtualMachineMigrationAuthenticationType": "Kerberos",
        "VirtualMachineMigrationPerformanceOption": "TCPIP",
        "MaximumVirtualMachineMigrations": 3, "MaximumStorageMigrations": 4,
        "UseAnyNetworkForMigration": True}
    assert mg.setting_changes(current, current) == {}
    assert mg._same(current, current) and not mg._same(wanted, current)


def test_subnet_normalised() -> None:
    """Subnets compare in network form; text that is not one is kept as is."""
    assert mg._subnet("192.168.1.7/24") == "192.168.1.0/24"
    assert mg._subnet("nonsense") == "nonsense"
    assert mg._subnet(None) == ""


def test_resume_details_outside_an_activity_are_none() -> None:
    """Outside an activity there is nothing to resume from."""
    assert last_heartbeat(mg.JobBeat) is None and last_heartbeat(mg.ReadinessBeat) is None


def test_smb_commands_ignore_a_storage_path() -> None:
    """An SMB move given a storage path still sends no storage parameters."""
    smb = SMB.model_copy(update={"destination_path": "C:\\elsewhere"})
    assert "DestinationStoragePath" not in mg.compare_vm_command(smb).parameters
    assert "DestinationStoragePath" not in mg.move_command(smb).parameters


def test_under_keeps_trailing_letters() -> None:
    """Only trailing backslashes are dropped: BOX is not BO."""
    assert mg._under("C:\\Hyper-V\\BOX\\a.vhdx", "C:\\Hyper-V\\BOX")
    assert not mg._under("C:\\BOX", "C:\\BO")
