"""What the Hyper-V cmdlet modules share: VM resolution, object views, role check."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from simulator.cmdlets.common import as_list
from simulator.cmdlets.replica_link import refresh
from simulator.core import Call, Impl, Prompt, Registry
from simulator.pstypes import (
    HV,
    ControllerType,
    VMHeartbeatStatus,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationState,
    VMState,
    guid,
    i64,
    member,
    prop,
    ps_object,
    type_names,
)
from simulator.world import Host, Vm, VmDisk, VmNic

NO_PLATFORM = (
    "The Hyper-V Management Tools could not access an expected WMI class on computer '{host}'. "
    "This may indicate that the Hyper-V Platform is not enabled on the computer or not fully "
    "configured."
)
NO_PERMISSION = (
    "You do not have the required permission to complete this task. Contact the administrator "
    "of the authorization policy for the computer '{host}'."
)
VM_NOT_FOUND = 'Hyper-V was unable to find a virtual machine with name "{name}".'
LEGACY_OS = {"windows-legacy", "linux"}


def hv_cmdlet(
    registry: Registry, *names: str, mutates: bool | None = None, prompt: Prompt | None = None
) -> Callable[[Impl], Impl]:
    """Register Hyper-V cmdlets: they fail unless the Hyper-V platform runs on the host."""

    def wrap(fn: Impl) -> Impl:
        def checked(call: Call) -> None:
            hv_host(call)
            fn(call)

        registry.cmdlet(*names, mutates=mutates, prompt=prompt)(checked)
        return fn

    return wrap


def hv_host(call: Call) -> Host:
    names = as_list(call.get("ComputerName"))
    other = [n for n in names if str(n).lower() not in _own_names(call)]
    if other:
        call.fail(NO_PERMISSION.format(host=other[0]), "AccessDenied", "PermissionDenied")
    if not call.host.has_feature("Hyper-V"):
        call.fail(NO_PLATFORM.format(host=call.host.name), "ObjectNotFound", "ObjectNotFound")
    return call.host


def _own_names(call: Call) -> set[str]:
    h = call.host
    return {"localhost", ".", h.name.lower(), f"{h.name}.{call.world.ad.fqdn}".lower(), h.address}


def _wild(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def vms_by_name(call: Call, names: list[Any], *, report: bool = True) -> list[Vm]:
    out: list[Vm] = []
    for name in names:
        hits = [
            vm
            for vm in call.host.vms.values()
            if fnmatch.fnmatchcase(vm.name.lower(), str(name).lower())
        ]
        if not hits and report and not _wild(str(name)):
            call.error(
                VM_NOT_FOUND.format(name=name), "InvalidParameter", "InvalidArgument", str(name)
            )
        out += [vm for vm in hits if vm not in out]
    return out


def vm_from_object(call: Call, obj: Any) -> Vm | None:
    """The VM behind an object the client passed back (VirtualMachine, or anything with VMId)."""
    vm_id = prop(obj, "VMId") or prop(obj, "Id")
    if vm_id is not None and str(vm_id) in call.host.vms:
        return call.host.vms[str(vm_id)]
    name = prop(obj, "VMName") or prop(obj, "Name")
    found = call.host.vm(str(name)) if name else None
    if found is None:
        call.error(VM_NOT_FOUND.format(name=name), "InvalidParameter", "InvalidArgument")
    return found


def target_vms(call: Call, *, report: bool = True) -> list[Vm]:
    """VMs named by -VM objects, -Name/-VMName, or piped VirtualMachine objects."""
    objects = as_list(call.get("VM")) or [o for o in call.input if is_vm_object(o)]
    if objects:
        return [vm for vm in (vm_from_object(call, o) for o in objects) if vm is not None]
    # cmdlets with a separate -VMName use -Name for the device (adapter, checkpoint ...)
    names = as_list(call.get("VMName") if call.has("VMName") else call.get("Name"))
    if not names:
        names = [prop(o, "VMName") for o in call.input if prop(o, "VMName")]
    return vms_by_name(call, names, report=report)


def is_vm_object(obj: Any) -> bool:
    return any(t.endswith("VirtualMachine") for t in type_names(obj)) or (
        isinstance(obj, dict) is False and prop(obj, "VMId") is not None and not type_names(obj)
    )


# ---------------------------------------------------------------- views


def heartbeat(call: Call, vm: Vm) -> Any:
    if vm.state not in ("Running", "Paused"):
        return None
    if vm.guest.os in LEGACY_OS:
        return member(VMHeartbeatStatus, "NoContact")
    ready = vm.ready_at is not None and call.sim.clock.now() >= vm.ready_at
    return member(VMHeartbeatStatus, "OkApplicationsHealthy" if ready else "NoContact")


def vm_object(call: Call, host: Host, vm: Vm) -> Any:
    if vm.replication is not None:
        refresh(call.sim, host, vm)  # Get-VM's ReplicationHealth follows the due cycles too
    rep = vm.replication
    running = vm.state in ("Running", "Paused", "Starting")
    return ps_object(
        [HV + "VirtualMachine", HV + "VirtualMachineBase", HV + "VirtualizationObject"],
        Name=vm.name,
        VMName=vm.name,
        Id=guid(vm.id),
        VMId=guid(vm.id),
        State=member(VMState, vm.state),
        Status="Operating normally",
        Heartbeat=heartbeat(call, vm),
        Generation=vm.generation,
        Version=vm.version,
        MemoryStartup=i64(vm.memory_startup),
        MemoryAssigned=i64(vm.memory_startup if running else 0),
        DynamicMemoryEnabled=vm.dynamic_memory,
        ProcessorCount=i64(vm.processor_count),
        Path=vm.path,
        ConfigurationLocation=vm.config_location,
        SnapshotFileLocation=vm.config_location,
        CheckpointFileLocation=vm.config_location,
        ComputerName=host.name,
        IsClustered=False,
        Notes=vm.notes,
        AutomaticStopAction=vm.automatic_stop_action,
        AutomaticStartAction=vm.automatic_start_action,
        CheckpointType=vm.checkpoint_type,
        ReplicationState=member(VMReplicationState, rep.state if rep else "Disabled"),
        ReplicationHealth=member(VMReplicationHealthState, rep.health if rep else "NotApplicable"),
        ReplicationMode=member(VMReplicationMode, rep.mode if rep else "None"),
        ParentSnapshotName=vm.snapshots[-1].name if vm.snapshots else None,
    )


def kvp_addresses(vm: Vm, nic: VmNic, now: float | None) -> list[str]:
    """The addresses the guest reports for ``nic`` through the KVP integration service: none
    from a guest without integration services (Windows Server 2003) or a Linux guest whose
    image does not run hv_kvp_daemon, none before the guest has booted (its KVP daemon is not
    running yet)."""
    if vm.guest.os == "windows-legacy" or vm.state not in ("Running", "Paused"):
        return []
    if vm.guest.os == "linux" and not vm.guest.kvp:
        return []
    if now is not None and vm.ready_at is not None and now < vm.ready_at:
        return []
    return list(vm.guest.ips.get(nic.mac, []))


def nic_object(host: Host, vm: Vm, nic: VmNic, now: float | None = None) -> Any:
    return ps_object(
        [HV + "VMNetworkAdapter", HV + "VMNetworkAdapterBase", HV + "VirtualizationObject"],
        Name=nic.name,
        Id=f"Microsoft:{vm.id}\\{nic.id}",
        VMName=vm.name,
        VMId=guid(vm.id),
        SwitchName=nic.switch,
        MacAddress=nic.mac,
        DynamicMacAddressEnabled=True,
        IsLegacy=nic.legacy,
        IsManagementOs=False,
        Connected=nic.switch is not None,
        ComputerName=host.name,
        Status=["Ok"],
        IPAddresses=kvp_addresses(vm, nic, now),
    )


def disk_object(host: Host, vm: Vm, disk: VmDisk) -> Any:
    return ps_object(
        [HV + "HardDiskDrive", HV + "Drive", HV + "VirtualizationObject"],
        Name="Hard Drive",
        Path=disk.path,
        VMName=vm.name,
        VMId=guid(vm.id),
        ControllerType=member(ControllerType, disk.controller_type),
        ControllerNumber=disk.controller_number,
        ControllerLocation=disk.controller_location,
        ComputerName=host.name,
        DiskNumber=None,
    )
