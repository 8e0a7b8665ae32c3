"""-AsJob moves the host refuses at once (reference §12.5): the call returns the PowerShell job,
already Failed, and the source lists an Msvm_MigrationJob in Exception (JobState 10, ErrorCode
32768) whose ErrorDescription is the text the call gives without -AsJob."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import Ace
from tests.sim.conftest import GB, Result, lab_with_vm, run
from tests.sim.test_hyperv_migration import DELEGATION, vm_on_share
from tests.sim.test_migration_network import assert_not_moved, migration_networks

NS = "root/virtualization/v2"
SHARED_NOTHING = {
    "DestinationHost": "svr1.kosa.vm",
    "IncludeStorage": None,
    "DestinationStoragePath": "C:\\Hyper-V\\Linux01",
}
COMPUTE_ONLY = {"DestinationHost": "SVR1"}


def _no_delegation(sim: Sim) -> dict[str, Any]:
    sim.world.ad.computer("SVR2").allowed_to_delegate_to = ["cifs/SVR1", "cifs/DC1"]
    return SHARED_NOTHING


def _no_switch(sim: Sim) -> dict[str, Any]:
    assert run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    return SHARED_NOTHING


def _no_memory(sim: Sim) -> dict[str, Any]:
    sim.host("SVR1").memory_total = 2 * GB
    return SHARED_NOTHING


def _other_cpu(sim: Sim) -> dict[str, Any]:
    sim.host("SVR1").cpu_family = "AMD EPYC 7763"
    return SHARED_NOTHING


def _wrong_migration_network(sim: Sim) -> dict[str, Any]:
    migration_networks(sim, "SVR1", "10.10.10.0/24")
    return SHARED_NOTHING


def _share_without_destination_rights(sim: Sim) -> dict[str, Any]:
    vm_on_share(sim)
    return COMPUTE_ONLY


def _no_such_destination(sim: Sim) -> dict[str, Any]:
    return {"DestinationHost": "nosuchhost.kosa.vm"}


REFUSALS: dict[str, tuple[Callable[[Sim], dict[str, Any]], str]] = {
    "delegation": (_no_delegation, "0x8009030E"),
    "switch": (_no_switch, "Could not find Ethernet switch 'External'."),
    "memory": (_no_memory, "(0x800705AA)"),
    "processor": (_other_cpu, "hardware on the destination computer is not compatible"),
    "migration network": (_wrong_migration_network, "(0x8007274D)"),
    "share rights": (_share_without_destination_rights, "(0x80070005)"),
    "no destination": (_no_such_destination, "(0x80070035)"),
}


def migration_jobs(sim: Sim, host: str = "SVR2") -> list[Any]:
    return run(sim, host, "Get-CimInstance", Namespace=NS, ClassName="Msvm_MigrationJob").output


def assert_failed_job(sim: Sim, started: Result, text: str) -> Any:
    """``started`` returned one Failed PowerShell job; its Msvm job failed with ``text``."""
    assert started.ok, started.failure
    [ps_job] = started.output
    assert prop(ps_job, "State").name == "Failed" and prop(ps_job, "HasMoreData") is True
    [job] = [j for j in migration_jobs(sim) if prop(j, "JobState") == 10]
    assert prop(job, "InstanceID") == str(prop(ps_job, "InstanceId")).upper()
    assert int(prop(job, "JobState")) == 10 and int(prop(job, "ErrorCode")) == 32768
    assert prop(job, "ErrorDescription") == text
    assert prop(job, "StatusDescriptions") == [text]
    assert int(prop(job, "PercentComplete")) == 0 and prop(job, "Cancellable") is False
    assert prop(job, "VirtualSystemName") == sim.host("SVR2").vm("Linux01").id.upper()
    number = prop(ps_job, "Id")
    assert run(sim, "SVR2", "Receive-Job", Id=number).errors == [text]
    [waited] = run(sim, "SVR2", "Wait-Job", Id=number).output
    assert prop(waited, "State").name == "Failed"
    return job


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_refused_move_as_job_is_a_failed_job(sim: Sim, refusal: str) -> None:
    """Each precondition Move-VM checks: without -AsJob the call's error and no job; with
    -AsJob a Failed job whose Msvm job carries the same text; the VM stays on SVR2 and can be
    moved again."""
    lab_with_vm(sim)
    setup, marker = REFUSALS[refusal]
    params = setup(sim)
    before = set(sim.world.jobs)
    sync = run(sim, "SVR2", "Move-VM", Name="Linux01", **params)
    assert len(sync.errors) == 1 and marker in sync.errors[0], sync.errors
    assert set(sim.world.jobs) == before
    started = run(sim, "SVR2", "Move-VM", Name="Linux01", AsJob=None, **params)
    job = assert_failed_job(sim, started, sync.errors[0])
    assert int(prop(job, "JobType")) == (306 if "IncludeStorage" in params else 305)
    assert_not_moved(sim)
    assert not sim.host("SVR2").vm("Linux01").migrating


def test_failed_job_names_the_destination(sim: Sim) -> None:
    """The refused job records where the move was going: the Hyper-V host, or the name as
    given when there is none."""
    lab_with_vm(sim)
    _no_delegation(sim)
    assert run(sim, "SVR2", "Move-VM", Name="Linux01", AsJob=None, **SHARED_NOTHING).ok
    assert run(
        sim, "SVR2", "Move-VM", Name="Linux01", AsJob=None, DestinationHost="nosuchhost.kosa.vm"
    ).ok
    targets = [prop(j, "DestinationHost") for j in migration_jobs(sim)]
    assert targets == ["SVR1", "nosuchhost.kosa.vm"]
    assert [int(prop(j, "MigrationType")) for j in migration_jobs(sim)] == [32771, 32768]


def test_refused_move_after_fix_runs(sim: Sim) -> None:
    """A failed job leaves nothing in the way: once delegation is granted the same -AsJob
    move completes."""
    lab_with_vm(sim)
    computer = sim.world.ad.computer("SVR2")
    granted = list(computer.allowed_to_delegate_to)
    _no_delegation(sim)
    assert_failed_job(
        sim, run(sim, "SVR2", "Move-VM", Name="Linux01", AsJob=None, **SHARED_NOTHING), DELEGATION
    )
    computer.allowed_to_delegate_to = granted
    started = run(sim, "SVR2", "Move-VM", Name="Linux01", AsJob=None, **SHARED_NOTHING)
    assert started.ok, started.failure
    refused, moved = sorted(sim.world.jobs.values(), key=lambda j: j.number)
    assert refused.state == 10 and sim.job_done(moved.id, timeout=5) and moved.state == 7
    assert sim.host("SVR1").vm("Linux01") is not None


def _share_without_rights(sim: Sim) -> str:
    """\\\\DC1\\smb shared to both hosts, but its folder grants SVR2$ nothing."""
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    sim.world.shares["DC1"]["smb"] = sim.world.shares["DC1"]["SYSVOL"].model_copy(
        update={
            "name": "smb",
            "path": "C:\\smb",
            "share_acl": [Ace(account=a, right="Full") for a in ("KOSA\\SVR1$", "KOSA\\SVR2$")],
        }
    )
    sim.host("DC1").ntfs_acls["c:\\smb"] = [Ace(account="KOSA\\SVR1$", right="FullControl")]
    return "\\\\DC1\\smb\\Linux01"


def test_storage_move_denied_as_job_is_a_failed_job(sim: Sim) -> None:
    """Move-VMStorage to a share SVR2$ cannot write: terminating 0x80070005 without -AsJob;
    with it a Failed job (JobType 307, storage, no destination host) with the same text."""
    lab_with_vm(sim)
    path = _share_without_rights(sim)
    sync = run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath=path)
    assert sync.terminating is not None and "0x80070005" in sync.failure
    assert sim.world.jobs == {}
    started = run(
        sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath=path, AsJob=None
    )
    job = assert_failed_job(sim, started, sync.failure)
    assert int(prop(job, "JobType")) == 307 and int(prop(job, "MigrationType")) == 32769
    assert prop(job, "DestinationHost") is None
    vm = sim.host("SVR2").vm("Linux01")
    assert vm.disks[0].path == "C:\\Hyper-V\\VHDs\\Linux01.vhdx" and not vm.migrating
