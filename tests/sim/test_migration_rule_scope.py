"""Scope of each migration rule (reference §10-§12): when it applies and when it does not, with
the world checked after each command and errors checked by id and key words."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from simulator.clock import Clock
from simulator.engine import Sim
from simulator.faults import FaultPlan
from simulator.protocol import Invocation, TerminatingError
from simulator.pstypes import prop, type_names
from simulator.world import HOST_RESERVE, Ace
from tests.sim.conftest import GB, MB, Ctx, Result, call, lab_with_vm, run
from tests.sim.test_hyperv_migration import DELEGATION, vm_on_share
from tests.sim.test_migration_network import REFUSED, connect_failed, migration_networks

NS = "root/virtualization/v2"
MOVE_ID = "OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVM"
COMPARE_ID = "OperationFailed,Microsoft.HyperV.PowerShell.Commands.CompareVM"
DISK = "C:\\Hyper-V\\VHDs\\Linux01.vhdx"
DEST = "C:\\Hyper-V\\Linux01"
SHARED_NOTHING = {"DestinationHost": "SVR1", "IncludeStorage": None, "DestinationStoragePath": DEST}
HARDWARE = "The hardware on the destination computer is not compatible"
OTHER_CPU = "AMD EPYC 7763"


def move(sim: Sim, name: Any = "Linux01", **params: Any) -> Result:
    return run(sim, "SVR2", "Move-VM", Name=name, **params)


def compare(sim: Sim, **params: Any) -> list[tuple[str, int, Any]]:
    """Compare-VM of Linux01 from SVR2: (Message, MessageId, Source) of each incompatibility."""
    result = run(sim, "SVR2", "Compare-VM", Name="Linux01", **params)
    assert result.ok, result.failure
    problems = prop(result.output[0], "Incompatibilities")
    return [(prop(p, "Message"), prop(p, "MessageId"), prop(p, "Source")) for p in problems]


def names(obj: Any) -> list[str]:
    """The property names an object carries (a property set to null included)."""
    return [p.name for p in obj.PSObject.adapted_properties]


def vm_id(sim: Sim, host: str = "SVR2") -> str:
    return sim.host(host).vm("Linux01").id.upper()


def where(sim: Sim, name: str = "Linux01") -> list[str]:
    """The Hyper-V hosts that list ``name``."""
    return [h for h in ("SVR1", "SVR2") if sim.host(h).vm(name) is not None]


def migration_jobs(sim: Sim, host: str = "SVR2", cls: str = "Msvm_MigrationJob") -> list[Any]:
    return run(sim, host, "Get-CimInstance", Namespace=NS, ClassName=cls).output


def wait_all(sim: Sim) -> None:
    for job in list(sim.world.jobs.values()):
        assert sim.job_done(job.id, timeout=5)


def unreachable(sim: Sim, dst: str) -> str:
    return (
        f"Virtual machine migration operation for 'Linux01' failed at migration source 'SVR2'. "
        f"(Virtual machine ID {vm_id(sim)})\nFailed to establish a connection with host "
        f"'{dst}': The network path was not found. (0x80070035)."
    )


def not_accessible(path: str) -> tuple[str, int, str]:
    return (f"The virtual hard disk '{path}' is not accessible from host 'SVR1'.", 40010, path)


def config_not_accessible(path: str) -> tuple[str, int, str]:
    return (f"The virtual machine configuration '{path}' is not accessible from host 'SVR1'.",
            40012, path)


def test_vm_without_a_disk_reports_no_disk_incompatibility(sim: Sim) -> None:
    """40010 is about virtual hard disks: a VM without one has none to report; its local
    configuration is reported on its own (not as a disk)."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    assert vm is not None
    vm.disks = []
    problems = compare(sim, DestinationHost="SVR1")
    assert [p[1] for p in problems if p[1] == 40010] == []
    assert problems == [config_not_accessible("C:\\Hyper-V")]


def destination_failure(sim: Sim, *lines: str) -> str:
    return (
        f"Virtual machine migration operation for 'Linux01' failed at migration destination "
        f"'SVR1'. (Virtual machine ID {vm_id(sim)})\n" + "\n".join(lines)
    )


# ---------------------------------------------------------------- which destination


@pytest.mark.parametrize("dst", ["SVR2", "DC1", "nosuchhost.kosa.vm"])
def test_destination_must_be_another_hyperv_host(sim: Sim, dst: str) -> None:
    """The source itself, a host without Hyper-V and an unknown name are all unreachable
    (0x80070035) for Move-VM and Compare-VM; nothing moves."""
    lab_with_vm(sim)
    result = move(sim, DestinationHost=dst)
    assert result.errors == [unreachable(sim, dst)] and result.error_ids == [MOVE_ID]
    compared = run(sim, "SVR2", "Compare-VM", Name="Linux01", DestinationHost=dst)
    assert compared.errors == [unreachable(sim, dst)] and compared.error_ids == [COMPARE_ID]
    assert compared.output == []
    assert where(sim) == ["SVR2"] and sim.world.jobs == {}


# ---------------------------------------------------------------- migration enabled


@pytest.mark.parametrize(("host", "side"), [("SVR2", "source"), ("SVR1", "destination")])
def test_migration_must_be_enabled_on_each_side(sim: Sim, host: str, side: str) -> None:
    """Disable-VMMigration on either end refuses the move naming that side; enabling it
    again lets the same move through."""
    lab_with_vm(sim)
    assert run(sim, host, "Disable-VMMigration").ok
    expected = (
        f"Virtual machine migration operation for 'Linux01' failed at migration {side} "
        f"'{host}'. (Virtual machine ID {vm_id(sim)})\nVirtual machine migration is not "
        f"enabled on host '{host}'."
    )
    result = move(sim, **SHARED_NOTHING)
    assert result.errors == [expected] and result.error_ids == [MOVE_ID]
    assert where(sim) == ["SVR2"]
    assert run(sim, host, "Enable-VMMigration").ok
    result = move(sim, **SHARED_NOTHING)
    assert result.ok, result.failure
    assert where(sim) == ["SVR1"]


# ---------------------------------------------------------------- authentication


def test_authentication_type_governs_incoming_only(sim: Sim) -> None:
    """CredSSP on the source does not matter (it governs incoming moves); Kerberos on the
    destination is what counts."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "Set-VMHost", VirtualMachineMigrationAuthenticationType="CredSSP").ok
    result = move(sim, **SHARED_NOTHING)
    assert result.ok, result.failure
    assert where(sim) == ["SVR1"]


def test_credssp_destination_refuses_compare_too(sim: Sim) -> None:
    """CredSSP on the destination: Compare-VM fails with 0x8009030E like Move-VM, no report."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Set-VMHost", VirtualMachineMigrationAuthenticationType="CredSSP").ok
    compared = run(sim, "SVR2", "Compare-VM", Name="Linux01", **SHARED_NOTHING)
    assert compared.errors == [DELEGATION] and compared.error_ids == [COMPARE_ID]
    assert compared.output == []


def test_kerberos_needs_both_hosts_in_the_domain(sim: Sim) -> None:
    """A destination that left the domain cannot take a Kerberos migration: 0x8009030E."""
    lab_with_vm(sim)
    sim.host("SVR1").domain = None
    result = move(sim, **SHARED_NOTHING)
    assert result.errors == [DELEGATION.replace("SVR1", "SVR1")] and result.error_ids == [MOVE_ID]
    assert where(sim) == ["SVR2"]


def _drop_delegation(sim: Sim, prefix: str) -> None:
    comp = sim.world.ad.computer("SVR2")
    comp.allowed_to_delegate_to = [
        s for s in comp.allowed_to_delegate_to if not s.startswith(prefix)
    ]


def test_compute_only_move_needs_no_cifs_delegation_to_destination(sim: Sim) -> None:
    """cifs/<dst> is needed only when storage moves: a VM on SMB moves compute-only without
    it, but a storage move from the same state is refused with 0x8009030E."""
    lab_with_vm(sim)
    vm_on_share(sim)
    sim.host("DC1").ntfs_acls["c:\\smb"].append(Ace(account="KOSA\\SVR1$", right="FullControl"))
    _drop_delegation(sim, "cifs/SVR1")
    storage = move(sim, **SHARED_NOTHING)
    assert storage.errors == [DELEGATION] and storage.error_ids == [MOVE_ID]
    only_dest_path = move(sim, DestinationHost="SVR1", DestinationStoragePath=DEST)
    assert only_dest_path.errors == [DELEGATION]
    assert where(sim) == ["SVR2"]
    result = move(sim, DestinationHost="SVR1")
    assert result.ok, result.failure
    assert where(sim) == ["SVR1"]
    assert sim.host("SVR1").vm("Linux01").path == "\\\\DC1\\smb\\Linux01"


def test_compute_only_move_still_needs_migration_service_delegation(sim: Sim) -> None:
    """The migration-service delegation is needed even when no storage moves."""
    lab_with_vm(sim)
    vm_on_share(sim)
    sim.host("DC1").ntfs_acls["c:\\smb"].append(Ace(account="KOSA\\SVR1$", right="FullControl"))
    _drop_delegation(sim, "Microsoft Virtual System Migration Service/SVR1")
    result = move(sim, DestinationHost="SVR1")
    assert result.errors == [DELEGATION]
    assert where(sim) == ["SVR2"]


# ---------------------------------------------------------------- TCP 6600


def test_vmms_stopped_on_destination_refuses_the_connection(sim: Sim) -> None:
    """No vmms on the destination, nothing listens on 6600: refused (not timed out)."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Stop-Service", Name="vmms", Force=None).ok
    result = move(sim, **SHARED_NOTHING)
    assert result.errors == [connect_failed(sim, REFUSED)] and result.error_ids == [MOVE_ID]
    assert where(sim) == ["SVR2"]
    assert run(sim, "SVR1", "Start-Service", Name="vmms").ok
    assert move(sim, **SHARED_NOTHING).ok


def test_connection_problem_comes_before_authentication(sim: Sim) -> None:
    """With both no route and no delegation, the connection failure is what is reported."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Stop-Service", Name="vmms", Force=None).ok
    _drop_delegation(sim, "Microsoft")
    assert move(sim, **SHARED_NOTHING).errors == [connect_failed(sim, REFUSED)]


# ---------------------------------------------------------------- compatibility


def test_disconnected_adapter_needs_no_switch_on_destination(sim: Sim) -> None:
    """33012 concerns connected adapters only: once disconnected the move goes through."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    assert compare(sim, **SHARED_NOTHING) == [
        ("Could not find Ethernet switch 'External'.", 33012, "Network Adapter")
    ]
    assert run(sim, "SVR2", "Disconnect-VMNetworkAdapter", VMName="Linux01").ok
    assert compare(sim, **SHARED_NOTHING) == []
    assert move(sim, **SHARED_NOTHING).ok
    assert where(sim) == ["SVR1"]


@pytest.mark.parametrize(
    ("state", "free", "refused"),
    [
        ("Running", GB - MB, True),
        ("Running", GB, False),
        ("Paused", GB - MB, True),
        ("Off", 0, False),
    ],
)
def test_destination_memory_matters_only_for_a_running_vm(
    sim: Sim, state: str, free: int, refused: bool
) -> None:
    """A running or paused VM needs its startup memory free on the destination (exactly
    enough will do); an Off VM needs none."""
    lab_with_vm(sim)
    if state == "Off":
        assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    else:
        sim.host("SVR2").vm("Linux01").state = state
    sim.host("SVR1").memory_total = HOST_RESERVE + free
    problem = (
        "Unable to allocate 1024 MB of RAM: Insufficient system resources exist to complete "
        "the requested service. (0x800705AA)",
        23012,
        "Memory",
    )
    assert compare(sim, **SHARED_NOTHING) == ([problem] if refused else [])
    result = move(sim, **SHARED_NOTHING)
    if refused:
        assert result.errors == [destination_failure(sim, problem[0])]
        assert result.error_ids == [MOVE_ID] and where(sim) == ["SVR2"]
    else:
        assert result.ok, result.failure
        assert where(sim) == ["SVR1"] and sim.host("SVR1").vm("Linux01").state == state


def test_paused_vm_carries_its_processor_state(sim: Sim) -> None:
    """A paused VM keeps a processor state: another CPU family refuses it (24004)."""
    lab_with_vm(sim)
    sim.host("SVR1").cpu_family = OTHER_CPU
    sim.host("SVR2").vm("Linux01").state = "Paused"
    [(message, mid, source)] = compare(sim, **SHARED_NOTHING)
    assert HARDWARE in message and (mid, source) == (24004, "Processor")
    assert HARDWARE in move(sim, **SHARED_NOTHING).failure
    assert where(sim) == ["SVR2"]


@pytest.mark.parametrize(("os", "refused"), [("windows", False), ("linux", True)])
def test_production_checkpoint_has_no_processor_state(sim: Sim, os: str, refused: bool) -> None:
    """A production checkpoint (Windows guest) keeps no saved state, so an Off VM with one
    moves to another CPU family; a Linux guest's falls back to standard and is refused."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    vm.guest.os = os
    assert run(sim, "SVR2", "Set-VM", Name="Linux01", CheckpointType="Production").ok
    assert run(sim, "SVR2", "Checkpoint-VM", Name="Linux01", SnapshotName="cp").ok
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    sim.host("SVR1").cpu_family = OTHER_CPU
    problems = compare(sim, **SHARED_NOTHING)
    assert [p[1] for p in problems] == ([24004] if refused else [])
    assert move(sim, **SHARED_NOTHING).ok is not refused
    assert where(sim) == (["SVR2"] if refused else ["SVR1"])


def test_same_vm_id_on_destination_is_refused(sim: Sim) -> None:
    """A VM with the same identifier already on the destination: 21018, nothing moves."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    sim.host("SVR1").vms[vm.id] = vm.model_copy(update={"state": "Off", "name": "Copy"})
    text = f"A virtual machine with the identifier '{vm.id.upper()}' already exists on 'SVR1'."
    assert compare(sim, **SHARED_NOTHING) == [(text, 21018, "Linux01")]
    result = move(sim, **SHARED_NOTHING)
    assert result.errors == [destination_failure(sim, text)]
    assert sim.host("SVR2").vm("Linux01") is vm and sim.host("SVR1").vm("Linux01") is None


def test_every_problem_is_listed_and_reported_in_order(sim: Sim) -> None:
    """Compare-VM lists all problems (switch, memory, processor, storage) in that order, and
    Move-VM's error carries each on its own line."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    sim.host("SVR1").memory_total = HOST_RESERVE
    sim.host("SVR1").cpu_family = OTHER_CPU
    problems = compare(sim, DestinationHost="SVR1")
    assert [(p[1], p[2]) for p in problems] == [
        (33012, "Network Adapter"),
        (23012, "Memory"),
        (24004, "Processor"),
        (40012, "C:\\Hyper-V"),
        (40010, DISK),
    ]
    assert problems[-2:] == [config_not_accessible("C:\\Hyper-V"), not_accessible(DISK)]
    result = move(sim, DestinationHost="SVR1")
    assert result.errors == [destination_failure(sim, *(p[0] for p in problems))]


# ---------------------------------------------------------------- storage


def test_compute_only_move_of_local_files_is_refused(sim: Sim) -> None:
    """Without storage the destination must reach the VM's files: local ones give 40010 for
    the configuration and each disk; the VM and its files stay."""
    lab_with_vm(sim)
    result = move(sim, DestinationHost="SVR1")
    assert result.errors == [
        destination_failure(sim, config_not_accessible("C:\\Hyper-V")[0],
                            not_accessible(DISK)[0])
    ]
    assert where(sim) == ["SVR2"] and sim.host("SVR2").file(DISK) is not None


def test_include_storage_without_path_uses_destination_default(sim: Sim) -> None:
    """-IncludeStorage alone moves the files under the destination's VirtualMachinePath."""
    lab_with_vm(sim)
    assert compare(sim, DestinationHost="SVR1", IncludeStorage=None) == []
    result = move(sim, DestinationHost="SVR1", IncludeStorage=None)
    assert result.ok, result.failure
    vm = sim.host("SVR1").vm("Linux01")
    assert vm.path == vm.config_location == "C:\\Hyper-V"
    assert vm.disks[0].path == "C:\\Hyper-V\\Linux01.vhdx"
    assert sim.host("SVR1").file("C:\\Hyper-V\\Linux01.vhdx") is not None
    assert sim.host("SVR2").file(DISK) is None
    [job] = sim.world.jobs.values()
    assert (job.job_type, job.migration_type) == (306, 32771)


def test_destination_storage_path_alone_is_a_storage_move(sim: Sim) -> None:
    """-DestinationStoragePath without -IncludeStorage still moves the storage."""
    lab_with_vm(sim)
    result = move(sim, DestinationHost="SVR1", DestinationStoragePath=DEST + "\\")
    assert result.ok, result.failure
    vm = sim.host("SVR1").vm("Linux01")
    assert vm.path == vm.config_location == DEST
    assert vm.disks[0].path == DEST + "\\Linux01.vhdx"
    assert sim.host("SVR1").file(DEST + "\\Linux01.vhdx") is not None
    folders = sim.host("SVR1").folders
    assert folders["c:\\hyper-v\\linux01\\virtual machines"] == DEST + "\\Virtual Machines"
    [job] = sim.world.jobs.values()
    assert (job.job_type, job.migration_type, job.command) == (306, 32771, "Move-VM")


def _share(sim: Sim, *writers: str) -> str:
    """\\\\DC1\\smb shared to both hosts, NTFS rights for ``writers`` only."""
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    sim.world.shares["DC1"]["smb"] = sim.world.shares["DC1"]["SYSVOL"].model_copy(
        update={
            "name": "smb",
            "path": "C:\\smb",
            "share_acl": [Ace(account=a, right="Full") for a in ("KOSA\\SVR1$", "KOSA\\SVR2$")],
        }
    )
    sim.host("DC1").ntfs_acls["c:\\smb"] = [
        Ace(account=f"KOSA\\{w}$", right="FullControl") for w in writers
    ]
    return "\\\\DC1\\smb\\Linux01"


@pytest.mark.parametrize(("writers", "ok"), [(("SVR1",), True), (("SVR2",), False)])
def test_storage_move_to_a_share_needs_destination_rights(
    sim: Sim, writers: tuple[str, ...], ok: bool
) -> None:
    """A shared-nothing move onto a share: the destination's computer account must be able
    to write there (20100 names the destination path once), the source's does not matter."""
    lab_with_vm(sim)
    path = _share(sim, *writers)
    problems = compare(sim, DestinationHost="SVR1", IncludeStorage=None,
                       DestinationStoragePath=path)
    denied = (
        f"'SVR1' failed to register the configuration for the virtual machine 'Linux01' at "
        f"'{path}': General access denied error (0x80070005). (Virtual machine ID {vm_id(sim)})"
    )
    assert problems == ([] if ok else [(denied, 20100, path)])
    result = move(sim, DestinationHost="SVR1", IncludeStorage=None, DestinationStoragePath=path)
    assert result.ok is ok
    if ok:
        vm = sim.host("SVR1").vm("Linux01")
        assert vm.path == path and vm.disks[0].path == path + "\\Linux01.vhdx"
    else:
        assert result.errors == [destination_failure(sim, denied)]
        assert where(sim) == ["SVR2"]


def test_smb_vm_reports_access_denied_once(sim: Sim) -> None:
    """Files on a share the destination cannot write: one 20100 for the first path (the
    configuration), not one per file."""
    lab_with_vm(sim)
    vm_on_share(sim)
    problems = compare(sim, DestinationHost="SVR1")
    assert [(p[1], p[2]) for p in problems] == [(20100, "\\\\DC1\\smb\\Linux01")]


def test_smb_vm_needs_cifs_delegation_to_the_file_server(sim: Sim) -> None:
    """Rights for both computer accounts are not enough from a remote session: without
    cifs/DC1 on the source's computer object the move is denied (20100)."""
    lab_with_vm(sim)
    vm_on_share(sim)
    sim.host("DC1").ntfs_acls["c:\\smb"].append(Ace(account="KOSA\\SVR1$", right="FullControl"))
    assert compare(sim, DestinationHost="SVR1") == []
    _drop_delegation(sim, "cifs/DC1")
    problems = compare(sim, DestinationHost="SVR1")
    assert [(p[1], p[2]) for p in problems] == [(20100, "\\\\DC1\\smb\\Linux01")]
    assert "(0x80070005)" in move(sim, DestinationHost="SVR1").failure
    assert where(sim) == ["SVR2"]


def test_smb_path_on_an_unknown_server_is_denied(sim: Sim) -> None:
    """A destination storage path on a server that does not exist: 20100."""
    lab_with_vm(sim)
    path = "\\\\NOSUCH\\smb\\Linux01"
    problems = compare(sim, DestinationHost="SVR1", DestinationStoragePath=path)
    assert [(p[1], p[2]) for p in problems] == [(20100, path)]


# ---------------------------------------------------------------- the report


@pytest.mark.parametrize(
    ("params", "operation", "path"),
    [
        ({"DestinationHost": "SVR1"}, "MoveVirtualMachine", None),
        (SHARED_NOTHING, "MoveVirtualMachineAndStorage", DEST),
    ],
)
def test_compare_report_fields(
    sim: Sim, params: dict[str, Any], operation: str, path: str | None
) -> None:
    """The VMCompatibilityReport names the VM (as the source sees it, heartbeat included),
    the operation, the destination and paths."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    vm.guest.os, vm.ready_at = "windows", 1.0  # a booted guest with integration services
    report = run(sim, "SVR2", "Compare-VM", Name="Linux01", **params).output[0]
    assert "Microsoft.HyperV.PowerShell.VMCompatibilityReport" in type_names(report)
    assert prop(report, "OperationType") == operation
    assert prop(report, "Destination") == "SVR1"
    assert prop(report, "Path") == prop(report, "VhdDestinationPath") == path
    assert prop(report, "SnapshotPath") is None and prop(report, "VhdSourcePath") is None
    assert prop(prop(report, "VM"), "Name") == "Linux01"
    assert prop(prop(report, "VM"), "ComputerName") == "SVR2"
    assert str(prop(prop(report, "VM"), "Heartbeat")).endswith("OkApplicationsHealthy")
    for name in ("SnapshotPath", "VhdSourcePath", "Path", "VhdDestinationPath"):
        assert name in names(report)
    for problem in prop(report, "Incompatibilities"):
        assert "Microsoft.HyperV.PowerShell.VMCompatibilityError" in type_names(problem)


# ---------------------------------------------------------------- Move-VM mechanics


def test_vm_being_moved_refuses_another_move(sim: Sim) -> None:
    """A VM already migrating gives InvalidState; the other VM named in the call still moves."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-VM", Name="Off01", MemoryStartupBytes=GB).ok
    vms = [run(sim, "SVR2", "Get-VM", Name=n).output[0] for n in ("Linux01", "Off01")]
    sim.host("SVR2").vm("Linux01").migrating = True
    result = run(sim, "SVR2", "Move-VM", VM=vms, **SHARED_NOTHING)
    assert result.errors == [
        "The operation cannot be performed while the object is in its current state."
    ]
    assert result.error_ids == ["InvalidState,Microsoft.HyperV.PowerShell.Commands.MoveVM"]
    assert where(sim) == ["SVR2"] and where(sim, "Off01") == ["SVR1"]
    storage = run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath=DEST)
    assert storage.error_ids == ["InvalidState,Microsoft.HyperV.PowerShell.Commands.MoveVMStorage"]
    assert sim.host("SVR2").vm("Linux01").disks[0].path == DISK
    assert sim.host("SVR2").file(DISK) is not None


@pytest.mark.parametrize("passthru", [True, False])
def test_passthru_returns_the_moved_vm(sim: Sim, passthru: bool) -> None:
    """-Passthru returns the VM as seen on the destination (heartbeat included); without it
    nothing is returned."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    vm.guest.os, vm.ready_at = "windows", 1.0  # a booted guest with integration services
    extra = {"Passthru": None} if passthru else {}
    result = move(sim, **SHARED_NOTHING, **extra)
    assert result.ok, result.failure
    if passthru:
        [vm] = result.output
        assert prop(vm, "Name") == "Linux01" and prop(vm, "ComputerName") == "SVR1"
        assert str(prop(vm, "Heartbeat")).endswith("OkApplicationsHealthy")
    else:
        assert result.output == []


def test_storage_move_to_virtual_machine_path(sim: Sim) -> None:
    """Move-VMStorage -VirtualMachinePath moves the files there and returns nothing."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    result = run(sim, "SVR2", "Move-VMStorage", Name="Linux01",
                 VirtualMachinePath="C:\\Moved\\Linux01")
    assert result.ok and result.output == [], result.failure
    vm = sim.host("SVR2").vm("Linux01")
    assert vm.path == "C:\\Moved\\Linux01" and not vm.migrating
    assert vm.disks[0].path == "C:\\Moved\\Linux01\\Linux01.vhdx"
    assert sim.host("SVR2").file(DISK) is None
    [job] = sim.world.jobs.values()
    assert (job.state, job.job_type, job.command, job.destination) == (7, 307, "Move-VMStorage",
                                                                       None)


def test_checkpoints_move_with_the_vm(sim: Sim) -> None:
    """A VM's checkpoints are listed on the destination after the move, none on the source."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "Checkpoint-VM", Name="Linux01", SnapshotName="before").ok
    assert move(sim, **SHARED_NOTHING).ok
    names = [prop(s, "Name") for s in run(sim, "SVR1", "Get-VMSnapshot", VMName="Linux01").output]
    assert names == ["before"]
    assert run(sim, "SVR2", "Get-VMSnapshot", VMName="Linux01").output == []


@pytest.mark.parametrize(
    ("state", "blackout"), [("Running", True), ("Paused", True), ("Off", False)]
)
def test_live_move_has_a_blackout_offline_move_none(sim: Sim, state: str, blackout: bool) -> None:
    """Only a running or paused VM goes through the live-migration switch-over (blackout)."""
    lab_with_vm(sim)
    if state == "Off":
        assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    sim.host("SVR2").vm("Linux01").state = state
    before = time.time()
    assert move(sim, **SHARED_NOTHING).ok
    until = sim.host("SVR1").vm("Linux01").blackout_until
    assert (until >= before) is blackout
    assert sim.host("SVR1").vm("Linux01").state == state


class RecordingClock(Clock):
    """An instant clock that records the simulated seconds each job step sleeps and runs
    ``hook`` at the first step."""

    def __init__(self, hook: Callable[[], None] = lambda: None) -> None:
        super().__init__(0)
        self.slept: list[float] = []
        self.hook = hook

    def sleep(self, sim_seconds: float) -> None:
        if not self.slept:
            self.hook()
        self.slept.append(sim_seconds)


@pytest.mark.parametrize(
    ("state", "params", "memory", "disk"),
    [
        ("Running", SHARED_NOTHING, True, True),
        ("Paused", SHARED_NOTHING, True, True),
        ("Off", SHARED_NOTHING, False, True),
        ("Running", {"DestinationHost": "SVR1"}, True, False),
    ],
)
def test_move_takes_memory_and_disk_time(
    sim: Sim, state: str, params: dict[str, Any], memory: bool, disk: bool
) -> None:
    """A live move copies the startup memory (an offline one takes 2 s), plus the disks when
    storage moves, at the simulated rates; the VM is marked migrating meanwhile."""
    lab_with_vm(sim)
    if not disk:
        vm_on_share(sim)
        sim.host("DC1").ntfs_acls["c:\\smb"].append(
            Ace(account="KOSA\\SVR1$", right="FullControl")
        )
    if state == "Off":
        assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    vm = sim.host("SVR2").vm("Linux01")
    vm.state = state
    size = sim.world.locate(sim.host("SVR2"), vm.disks[0].path)
    size = size[0].file(size[1]).size
    seen: list[bool] = []
    sim.clock = clock = RecordingClock(lambda: seen.append(vm.migrating))
    result = move(sim, **params)
    assert result.ok, result.failure
    d = clock.d
    expected = (GB / d.lm_memory_rate if memory else 2.0) + (size / d.lm_disk_rate if disk else 0)
    assert sum(clock.slept) == pytest.approx(expected, rel=1e-12)
    assert seen == [True] and vm.migrating is False


def test_storage_move_takes_disk_time(sim: Sim) -> None:
    """Move-VMStorage takes the disks' size at the disk rate, the VM migrating meanwhile."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    size = sim.host("SVR2").file(DISK).size
    seen: list[bool] = []
    sim.clock = clock = RecordingClock(lambda: seen.append(vm.migrating))
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    result = run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath="C:\\Moved")
    assert result.ok, result.failure
    assert sum(clock.slept) == pytest.approx(size / clock.d.lm_disk_rate)
    assert seen == [True] and vm.migrating is False


def test_vm_removed_during_the_move_is_not_recreated(sim: Sim) -> None:
    """If the VM leaves the source while the move runs, the destination does not get it."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    sim.clock = RecordingClock(lambda: sim.host("SVR2").vms.pop(vm.id))
    move(sim, **SHARED_NOTHING)
    assert where(sim) == [] and not vm.migrating
    assert sim.host("SVR2").file(DISK) is not None


# ---------------------------------------------------------------- Msvm_MigrationJob


def test_completed_job_instance(sim: Sim) -> None:
    """A finished -AsJob move: its Msvm_MigrationJob (also listed as Msvm_ConcreteJob) on the
    source only, Completed, 100 %, not cancellable, no error."""
    lab_with_vm(sim)
    started = move(sim, AsJob=None, **SHARED_NOTHING)
    assert started.ok, started.failure
    assert prop(started.output[0], "Command") == "Move-VM"
    wait_all(sim)
    [job] = migration_jobs(sim)
    [job_id] = sim.world.jobs
    assert type_names(job)[:2] == [
        f"Microsoft.Management.Infrastructure.CimInstance#{NS}/Msvm_MigrationJob",
        f"Microsoft.Management.Infrastructure.CimInstance#{NS}/CIM_ConcreteJob",
    ]
    assert prop(job, "InstanceID") == job_id.upper()
    values = {k: prop(job, k) for k in (
        "Caption", "ElementName", "Description", "JobState", "JobType", "PercentComplete",
        "DestinationHost", "MigrationType", "ErrorCode", "ErrorDescription", "Cancellable",
        "StatusDescriptions", "TimeBeforeRemoval", "VirtualSystemName",
    )}
    assert values == {
        "Caption": "Move-VM", "ElementName": "Move-VM", "Description": "Move-VM",
        "JobState": 7, "JobType": 306, "PercentComplete": 100, "DestinationHost": "SVR1",
        "MigrationType": 32771, "ErrorCode": 0, "ErrorDescription": None, "Cancellable": False,
        "StatusDescriptions": ["Job completed successfully"],
        "TimeBeforeRemoval": "00000000000500.000000:000",
        "VirtualSystemName": sim.host("SVR1").vm("Linux01").id.upper(),
    }
    assert [prop(j, "InstanceID") for j in migration_jobs(sim, cls="Msvm_ConcreteJob")] == [
        job_id.upper()
    ]
    assert migration_jobs(sim, "SVR1") == []


def _running_job(sim: Sim) -> Any:
    """A migration job of Linux01 in progress on SVR2 (as a move in flight records it)."""
    vm = sim.host("SVR2").vm("Linux01")
    return sim.world.new_job(host="SVR2", kind="migration", vm_id=vm.id, vm_name=vm.name,
                             destination="SVR1", command="Move-VM")


def test_running_job_instance_is_cancellable(sim: Sim) -> None:
    """A job in progress says 'Job is running' and can be cancelled."""
    lab_with_vm(sim)
    _running_job(sim)
    [job] = migration_jobs(sim)
    assert prop(job, "JobState") == 4 and prop(job, "Cancellable") is True
    assert prop(job, "StatusDescriptions") == ["Job is running"]


def _request(sim: Sim, host: str, job: Any, state: int) -> Result:
    return run(sim, host, "Invoke-CimMethod", InputObject=job, MethodName="RequestStateChange",
               Arguments={"RequestedState": state})


@pytest.mark.parametrize(("state", "code", "cancel"), [(4, 0, True), (5, 0, True),
                                                      (2, 32770, False), (3, 32770, False),
                                                      (None, 32770, False)])
def test_request_state_change_on_a_running_job(
    sim: Sim, state: int | None, code: int, cancel: bool
) -> None:
    """Terminate (4) and Kill (5) request the cancel; other states (or none) are not
    supported."""
    lab_with_vm(sim)
    running = _running_job(sim)
    [job] = migration_jobs(sim)
    if state is None:
        result = run(sim, "SVR2", "Invoke-CimMethod", InputObject=job,
                     MethodName="RequestStateChange", Arguments={})
    else:
        result = _request(sim, "SVR2", job, state)
    assert result.ok and prop(result.output[0], "ReturnValue") == code
    assert running.cancel_requested is cancel


def test_request_state_change_on_a_finished_job_is_invalid(sim: Sim) -> None:
    """A completed job answers 32775 (invalid state) even to Terminate."""
    lab_with_vm(sim)
    assert move(sim, **SHARED_NOTHING).ok
    [job] = migration_jobs(sim)
    result = _request(sim, "SVR2", job, 4)
    assert prop(result.output[0], "ReturnValue") == 32775


def test_request_state_change_on_another_host_is_not_found(sim: Sim) -> None:
    """A job exists only on its source: asking SVR1 about SVR2's job is 0x80041002."""
    lab_with_vm(sim)
    running = _running_job(sim)
    [job] = migration_jobs(sim)
    result = _request(sim, "SVR1", job, 4)
    assert result.terminating is not None and result.terminating.message == "Not found "
    assert result.terminating.error_id.startswith("HRESULT 0x80041002")
    assert result.terminating.category == "ObjectNotFound"
    assert not running.cancel_requested
    sim.world.jobs.clear()
    gone = _request(sim, "SVR2", job, 4)
    assert gone.terminating is not None and gone.terminating.category == "ObjectNotFound"


class FixedClock(Clock):
    """A clock whose now() stands still at ``at`` (real seconds)."""

    def __init__(self, speed: float, at: float) -> None:
        super().__init__(speed)
        self.at = at

    def now(self) -> float:
        return self.at


@pytest.mark.parametrize(("speed", "kept"), [(0.0, 5.0), (0.01, 30000.0)])
def test_finished_job_is_listed_for_time_before_removal(
    sim: Sim, speed: float, kept: float
) -> None:
    """A finished job stays listed 5 minutes of host time (5 real seconds when instant), up
    to and including the last instant; a job still running is always listed."""
    lab_with_vm(sim)
    assert move(sim, **SHARED_NOTHING).ok
    [job] = sim.world.jobs.values()
    sim.clock = FixedClock(speed, job.finished + kept)
    assert len(migration_jobs(sim)) == 1
    sim.clock.at += 1e-3
    assert migration_jobs(sim) == []
    job.finished = None
    assert len(migration_jobs(sim)) == 1


def test_job_list_skips_only_what_it_should(sim: Sim) -> None:
    """Another host's job and an expired job listed first do not hide this host's current
    job."""
    lab_with_vm(sim)
    vm = sim.host("SVR2").vm("Linux01")
    sim.world.new_job(host="SVR1", kind="migration", vm_id=vm.id, command="Move-VM")
    expired = sim.world.new_job(host="SVR2", kind="migration", vm_id=vm.id, command="Move-VM",
                                state=7)
    expired.finished = time.time() - 60
    current = _running_job(sim)
    assert [prop(j, "InstanceID") for j in migration_jobs(sim)] == [current.id.upper()]


def test_refused_job_is_finished_at_once(sim: Sim) -> None:
    """A refused -AsJob move is started and finished at the same instant, so it is removed
    like any finished job."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Disable-VMMigration").ok
    before = time.time()
    assert move(sim, AsJob=None, **SHARED_NOTHING).ok
    [job] = sim.world.jobs.values()
    assert job.finished is not None and job.started == job.finished >= before
    assert (job.state, job.error_code) == (10, 32768)
    assert "not enabled on host 'SVR1'" in job.error_description


def test_concrete_job_class_answers_request_state_change(sim: Sim) -> None:
    """RequestStateChange also works through Msvm_ConcreteJob selected by a WQL query."""
    lab_with_vm(sim)
    running = _running_job(sim)
    query = f"SELECT * FROM Msvm_ConcreteJob WHERE InstanceID='{running.id.upper()}'"
    result = run(sim, "SVR2", "Invoke-CimMethod", Namespace=NS, Query=query,
                 MethodName="RequestStateChange", Arguments={"RequestedState": 4})
    assert result.ok and prop(result.output[0], "ReturnValue") == 0
    assert running.cancel_requested
    assert len(migration_jobs(sim, cls="CIM_ConcreteJob")) == 1


def test_job_instance_class_chain_and_target(sim: Sim) -> None:
    """The job instance carries the whole CIM class chain; a missing job is a CimException."""
    lab_with_vm(sim)
    _running_job(sim)
    [job] = migration_jobs(sim)
    assert type_names(job) == [
        f"Microsoft.Management.Infrastructure.CimInstance#{NS}/{cls}"
        for cls in ("Msvm_MigrationJob", "CIM_ConcreteJob", "CIM_Job", "CIM_LogicalElement",
                    "CIM_ManagedElement")
    ] + ["Microsoft.Management.Infrastructure.CimInstance", "System.Object"]
    assert prop(job, "PSComputerName") is None and "PSComputerName" in names(job)
    sim.world.jobs.clear()
    gone = _request(sim, "SVR2", job, 4)
    assert gone.terminating is not None
    assert gone.terminating.exception_type == "Microsoft.Management.Infrastructure.CimException"


def test_moved_disk_file_carries_its_new_path(sim: Sim) -> None:
    """The disk file on the destination is recorded under its new path."""
    lab_with_vm(sim)
    assert move(sim, **SHARED_NOTHING).ok
    new = DEST + "\\Linux01.vhdx"
    assert sim.host("SVR1").file(new).path == new


def test_checkpoint_without_compatibility_refuses_a_compatible_running_vm(sim: Sim) -> None:
    """Every processor state counts: a VM running in compatibility mode with a standard
    checkpoint taken without it is refused on another CPU family."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "Set-VM", Name="Linux01", CheckpointType="Standard").ok
    assert run(sim, "SVR2", "Checkpoint-VM", Name="Linux01", SnapshotName="plain").ok
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    assert run(
        sim, "SVR2", "Set-VMProcessor", VMName="Linux01", CompatibilityForMigrationEnabled=True
    ).ok
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok
    sim.host("SVR1").cpu_family = OTHER_CPU
    assert [p[1] for p in compare(sim, **SHARED_NOTHING)] == [24004]
    assert run(sim, "SVR2", "Remove-VMSnapshot", VMName="Linux01", Name="plain").ok
    assert compare(sim, **SHARED_NOTHING) == []


def test_checkpoint_taken_while_paused_keeps_processor_state(sim: Sim) -> None:
    """A standard checkpoint of a paused VM holds a saved state like one of a running VM."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "Set-VM", Name="Linux01", CheckpointType="Standard").ok
    sim.host("SVR2").vm("Linux01").state = "Paused"
    assert run(sim, "SVR2", "Checkpoint-VM", Name="Linux01", SnapshotName="paused").ok
    sim.host("SVR2").vm("Linux01").state = "Off"
    sim.host("SVR1").cpu_family = OTHER_CPU
    assert [p[1] for p in compare(sim, **SHARED_NOTHING)] == [24004]


def test_compare_reports_each_vm_it_cannot_reach(sim: Sim) -> None:
    """Compare-VM of two VMs towards a host without Hyper-V: one error per VM."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-VM", Name="Off01", MemoryStartupBytes=GB).ok
    vms = [run(sim, "SVR2", "Get-VM", Name=n).output[0] for n in ("Linux01", "Off01")]
    result = run(sim, "SVR2", "Compare-VM", VM=vms, DestinationHost="DC1")
    assert result.error_ids == [COMPARE_ID, COMPARE_ID] and result.output == []
    assert "'Off01'" in result.errors[1]


def test_storage_move_of_a_migrating_vm_skips_only_that_vm(sim: Sim) -> None:
    """Move-VMStorage of two VMs, one migrating: that one gives InvalidState, the other moves."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-VM", Name="Off01", MemoryStartupBytes=GB).ok
    vms = [run(sim, "SVR2", "Get-VM", Name=n).output[0] for n in ("Linux01", "Off01")]
    sim.host("SVR2").vm("Linux01").migrating = True
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    result = run(sim, "SVR2", "Move-VMStorage", VM=vms, DestinationStoragePath="C:\\Moved")
    assert result.error_ids == ["InvalidState,Microsoft.HyperV.PowerShell.Commands.MoveVMStorage"]
    assert sim.host("SVR2").vm("Off01").path == "C:\\Moved"
    assert sim.host("SVR2").vm("Linux01").path == "C:\\Hyper-V"


def test_destination_lost_during_a_move_fails_the_call(sim: Sim) -> None:
    """The destination going away mid-move ends the migration job in Exception; Move-VM
    (without -AsJob) reports the job's error and the VM stays on the source."""
    lab_with_vm(sim)

    def lose_destination() -> None:
        sim.down.add("SVR1")

    sim.clock = RecordingClock(lose_destination)
    result = move(sim, **SHARED_NOTHING)
    [job] = sim.world.jobs.values()
    assert job.state == 10 and job.error_description
    assert result.errors == [job.error_description] and result.error_ids == [MOVE_ID]
    assert "'SVR2'" in job.error_description
    assert where(sim) == ["SVR2"] and sim.host("SVR2").vm("Linux01").migrating is False
    assert sim.host("SVR2").file(DISK) is not None


def test_blackout_lasts_the_switch_over(sim: Sim) -> None:
    """The moved running VM is unreachable for the simulated blackout after the move."""
    lab_with_vm(sim)
    clock = RecordingClock()
    clock.speed = 1.0
    sim.clock = clock
    before = time.time()
    assert move(sim, **SHARED_NOTHING).ok
    until = sim.host("SVR1").vm("Linux01").blackout_until
    assert before + clock.d.blackout <= until <= time.time() + clock.d.blackout


def _cancel_running_jobs(sim: Sim) -> None:
    for job in sim.world.jobs.values():
        job.cancel_requested = True


def test_cancelled_storage_move_leaves_the_files(sim: Sim) -> None:
    """A Move-VMStorage cancelled mid-way fails the call (Terminated job); the VM keeps its
    files where they were and is no longer migrating."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    sim.clock = RecordingClock(lambda: _cancel_running_jobs(sim))
    result = run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath="C:\\Moved")
    [job] = sim.world.jobs.values()
    assert job.state == 8
    assert result.errors == ["The operation was cancelled."]
    assert result.error_ids == ["OperationFailed,Microsoft.HyperV.PowerShell.Commands.MoveVMStorage"]
    vm = sim.host("SVR2").vm("Linux01")
    assert vm.migrating is False and vm.disks[0].path == DISK
    assert sim.host("SVR2").file(DISK) is not None


class RecordingCtx(Ctx):
    """The test context, also keeping each error's (id, category, target)."""

    def __init__(self, result: Result) -> None:
        super().__init__(result)
        self.records: list[tuple[str, str, Any]] = []

    def error(
        self,
        message: str,
        error_id: str = "",
        category: str = "",
        target: str | None = None,
        *,
        exception_type: str = "",
    ) -> None:
        super().error(message, error_id, category, target, exception_type=exception_type)
        self.records.append((error_id.split(",")[0], category, target))


def records(sim: Sim, host: str, name: str, **params: Any) -> tuple[Result, list[Any]]:
    """Run one command; its Result and the (id, category, target) of each error."""
    result = Result()
    ctx = RecordingCtx(result)
    try:
        sim.handler(host).invoke(Invocation(host, ((call(name, **params),),), ()), ctx)
    except TerminatingError as exc:
        result.terminating = exc
    return result, ctx.records


BUSY = "The operation cannot be performed while the object is in its current state."


@pytest.mark.parametrize("command", ["Move-VM", "Move-VMStorage"])
def test_busy_vm_error_record(sim: Sim, command: str) -> None:
    """A VM already being moved: InvalidState, category InvalidOperation, target the VM."""
    lab_with_vm(sim)
    sim.host("SVR2").vm("Linux01").migrating = True
    params = SHARED_NOTHING if command == "Move-VM" else {"DestinationStoragePath": DEST}
    result, recs = records(sim, "SVR2", command, Name="Linux01", **params)
    assert result.errors == [BUSY]
    assert recs == [("InvalidState", "InvalidOperation", "Linux01")]
    assert sim.world.jobs == {}


@pytest.mark.parametrize("command", ["Move-VM", "Compare-VM"])
def test_refusal_error_record(sim: Sim, command: str) -> None:
    """A refused move or comparison: OperationFailed, category InvalidOperation, target the VM."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Disable-VMMigration").ok
    _, recs = records(sim, "SVR2", command, Name="Linux01", **SHARED_NOTHING)
    assert recs == [("OperationFailed", "InvalidOperation", "Linux01")]
    assert run(sim, "SVR1", "Enable-VMMigration").ok
    assert run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    _, recs = records(sim, "SVR2", "Move-VM", Name="Linux01", **SHARED_NOTHING)
    assert recs == [("OperationFailed", "InvalidOperation", "Linux01")]


@pytest.mark.parametrize(
    ("kind", "command", "fails"),
    [
        ("storage", "Move-VMStorage", True),
        ("storage", "Move-VM", False),
        ("migration", "Move-VM", True),
        ("migration", "Move-VMStorage", False),
    ],
)
def test_job_fault_hits_its_kind_only(sim: Sim, kind: str, command: str, fails: bool) -> None:
    """A job fault for storage jobs fails Move-VMStorage, not Move-VM, and the other way
    round; the failed call names the command and the VM, and its target is the VM."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    sim.faults.replace(FaultPlan.parse([{"type": "fail_job", "kind": kind, "at_percent": 40}]))
    params = SHARED_NOTHING if command == "Move-VM" else {"DestinationStoragePath": "C:\\Moved"}
    result, recs = records(sim, "SVR2", command, Name="Linux01", **params)
    if fails:
        assert result.errors == [
            f"{command} operation for 'Linux01' failed at 40 percent (injected fault)."
        ]
        assert recs == [("OperationFailed", "InvalidOperation", "Linux01")]
        vm = sim.host("SVR2").vm("Linux01")
        assert vm.disks[0].path == DISK and vm.migrating is False
    else:
        assert result.ok, result.failure
        assert sim.host("SVR2").file(DISK) is None


def test_refused_storage_moves_as_jobs_each_fail(sim: Sim) -> None:
    """Move-VMStorage -AsJob of two VMs to a share SVR2 cannot write: a Failed job for each."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-VM", Name="Off01", MemoryStartupBytes=GB).ok
    vms = [run(sim, "SVR2", "Get-VM", Name=n).output[0] for n in ("Linux01", "Off01")]
    path = _share(sim, "SVR1")
    result = run(sim, "SVR2", "Move-VMStorage", VM=vms, DestinationStoragePath=path, AsJob=None)
    assert result.ok, result.failure
    assert [prop(j, "State").name for j in result.output] == ["Failed", "Failed"]
    assert sorted(j.vm_name for j in sim.world.jobs.values()) == ["Linux01", "Off01"]
    assert all(j.state == 10 and "0x80070005" in j.error_description
               for j in sim.world.jobs.values())


def test_storage_move_takes_every_disk(sim: Sim) -> None:
    """A VM with two disks: Move-VMStorage moves both and takes their summed size's time."""
    lab_with_vm(sim)
    data = "C:\\Hyper-V\\VHDs\\Data.vhdx"
    assert run(sim, "SVR2", "New-VHD", Path=data, SizeBytes=GB, Fixed=None).ok
    assert run(sim, "SVR2", "Add-VMHardDiskDrive", VMName="Linux01", Path=data).ok
    sizes = sim.host("SVR2").file(DISK).size + sim.host("SVR2").file(data).size
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    sim.clock = clock = RecordingClock()
    result = run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath="C:\\Moved")
    assert result.ok, result.failure
    assert sum(clock.slept) == pytest.approx(sizes / clock.d.lm_disk_rate, rel=1e-12)
    vm = sim.host("SVR2").vm("Linux01")
    assert [d.path for d in vm.disks] == ["C:\\Moved\\Linux01.vhdx", "C:\\Moved\\Data.vhdx"]
    assert sim.host("SVR2").file(data) is None


def test_one_matching_migration_network_among_several_suffices(sim: Sim) -> None:
    """UseAnyNetworkForMigration off with the right subnet first and a foreign one after:
    the destination still listens on its address in the first, and the move goes through."""
    lab_with_vm(sim)
    migration_networks(sim, "SVR1", "192.168.1.0/24", "10.10.10.0/24")
    result = move(sim, **SHARED_NOTHING)
    assert result.ok, result.failure
    assert where(sim) == ["SVR1"]
