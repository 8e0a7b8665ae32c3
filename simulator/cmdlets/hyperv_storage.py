"""Virtual disks (New-VHD, Get-VHD) and checkpoints (Checkpoint-VM, *-VMSnapshot)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psrpcore.types import PSDateTime

from simulator.cmdlets import hyperv_chain as chain
from simulator.cmdlets.common import PathDenied, PathMissing, as_list, session_locate
from simulator.cmdlets.hyperv_common import (
    hv_cmdlet,
    is_vm_object,
    target_vms,
    vm_from_object,
    vms_by_name,
)
from simulator.core import Call, Prompt, Registry
from simulator.pstypes import (
    HV,
    SnapshotType,
    VhdFormat,
    VhdType,
    VMState,
    guid,
    member,
    prop,
    ps_object,
    u64,
)
from simulator.world import MB, Host, SimFile, Snapshot, Vm, norm_path, parent_path

VHD_TYPES = ["Microsoft.Vhd.PowerShell.VirtualHardDisk"]
BAD_STATE = "The operation cannot be performed while the object is in its current state."
# Applying a checkpoint branches a new differencing disk from each of the checkpoint's disks:
# when one of them (or a disk of its chain) is gone, the apply fails before anything changes.
# HRESULT 0x80070002 is HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND). [UNCONF] the wording around
# it; the HRESULT and the ObjectNotFound category are what callers may rely on.
APPLY_MISSING = (
    "'{vm}' failed to apply checkpoint '{snap}'. (Virtual machine ID {id})\n"
    "Failed to open attachment '{path}'. Error: 'The system cannot find the file "
    "specified.' (0x80070002)"
)


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "New-VHD")(new_vhd)
    hv_cmdlet(registry, "Get-VHD")(get_vhd)
    hv_cmdlet(registry, "Checkpoint-VM")(checkpoint_vm)
    hv_cmdlet(registry, "Get-VMSnapshot")(get_snapshot)
    hv_cmdlet(registry, "Restore-VMSnapshot", prompt=Prompt(
        high_impact='Restore-VMSnapshot will restore checkpoint "{target}".'))(restore_snapshot)
    hv_cmdlet(registry, "Remove-VMSnapshot")(remove_snapshot)


# ---------------------------------------------------------------- VHDs


def vhd_object(call: Call, path: str, file: SimFile) -> Any:
    attached = any(
        d.path.lower() == path.lower() for vm in call.host.vms.values() for d in vm.disks
    )
    return ps_object(
        VHD_TYPES,
        ComputerName=call.host.name,
        Path=path,
        VhdFormat=member(VhdFormat, "VHDX" if path.lower().endswith(".vhdx") else "VHD"),
        VhdType=member(VhdType, file.vhd_type or "Dynamic"),
        FileSize=u64(file.size),
        Size=u64(file.virtual_size or file.size),
        MinimumSize=u64(file.virtual_size or file.size),
        LogicalSectorSize=512,
        PhysicalSectorSize=4096,
        BlockSize=32 * MB,
        ParentPath=file.parent,
        Attached=attached,
        DiskNumber=None,
    )


def _fail_create(call: Call, path: str, reason: str) -> None:
    call.fail(
        f"Failed to create the virtual hard disk.\nThe system failed to create '{path}': {reason}",
        "InvalidOperation",
        "InvalidOperation",
    )


def create_vhd(
    call: Call, raw: str, size: int, kind: str, parent: str | None
) -> tuple[str, SimFile]:
    try:
        host, local = session_locate(call, raw, write=True)
    except PathDenied:
        _fail_create(call, raw, "General access denied error (0x80070005).")
    except PathMissing:
        _fail_create(call, raw, "The network path was not found. (0x80070035).")
    if host.file(local) is not None:
        _fail_create(call, raw, "The file exists. (0x80070050).")
    folder = parent_path(local)
    if folder and not host.folder_exists(folder):
        _fail_create(call, raw, "The system cannot find the path specified. (0x80070003).")
    file = SimFile(
        path=local,
        size=size if kind == "Fixed" else 4 * MB,
        vhd_type=kind,
        virtual_size=size,
        parent=parent,
    )
    host.put_file(file)
    return norm_path(raw), file


def new_vhd(call: Call) -> None:
    parent = call.get("ParentPath")
    kind = "Differencing" if parent else ("Fixed" if call.switch("Fixed") else "Dynamic")
    size = int(call.get("SizeBytes") or 0)
    paths = [str(p) for p in as_list(call.get("Path"))]
    if parent:
        source = _find_vhd(call, str(parent))
        if source is None:
            _fail_create(
                call,
                paths[0] if paths else "",
                f"The system cannot find the file specified. (0x80070002) '{parent}'",
            )
            return
        size = size or source.virtual_size or source.size
        parent = norm_path(str(parent))
    for raw in paths:
        path, file = create_vhd(call, raw, size, kind, parent)
        call.out(vhd_object(call, path, file))


# a VHD(X) whose copy was cut short has no footer/metadata region: ERROR_FILE_CORRUPT
CORRUPT = ("Getting the mounted storage instance for the path '{path}' failed.\n"
           "The file or directory is corrupted and unreadable. (0x80070570)")  # [UNCONF] wording


def _find_vhd(call: Call, raw: str) -> SimFile | None:
    try:
        host, local = session_locate(call, raw)
    except (PathDenied, PathMissing):
        return None
    return host.file(local)


def get_vhd(call: Call) -> None:
    paths = [str(p) for p in as_list(call.get("Path"))]
    if call.has("VMId"):
        vm = call.host.vms.get(str(call.get("VMId")))
        paths = [d.path for d in vm.disks] if vm else []
    for path in paths:
        file = _find_vhd(call, path)
        if file is None:
            call.error(
                f"Getting the mounted storage instance for the path '{path}' failed.\n"
                "The operation cannot be performed while the object is in use.",
                "ObjectNotFound",
                "ObjectNotFound",
                path,
            )
            continue
        if file.truncated:
            call.error(CORRUPT.format(path=path), "OperationFailed", "InvalidData", path)
            continue
        call.out(vhd_object(call, norm_path(path), file))


# ---------------------------------------------------------------- checkpoints


def snapshot_object(host: Host, vm: Vm, snap: Snapshot) -> Any:
    parent = next((s for s in vm.snapshots if s.id == snap.parent), None)
    return ps_object(
        [HV + "VMSnapshot", HV + "VirtualMachineBase", HV + "VirtualizationObject"],
        Name=snap.name,
        Id=guid(snap.id),
        VMName=vm.name,
        VMId=guid(vm.id),
        SnapshotType=member(SnapshotType, snap.snapshot_type),
        CreationTime=PSDateTime.fromtimestamp(snap.created, dt.UTC),
        ParentSnapshotName=parent.name if parent else None,
        ParentSnapshotId=guid(parent.id) if parent else None,
        State=member(VMState, str(snap.config.get("state", "Off"))),
        Path=vm.config_location,
        ComputerName=host.name,
        IsDeleted=False,
    )


def checkpoint_vm(call: Call) -> None:
    for vm in target_vms(call):
        if vm.checkpoint_type == "Disabled":
            call.error(
                f"Checkpoint operation for '{vm.name}' failed. (Virtual machine ID "
                f"{vm.id.upper()})\nCheckpoints are disabled for '{vm.name}'.",
                "InvalidOperation",
                "InvalidOperation",
                vm.name,
            )
            continue
        now = call.sim.clock.now()
        stamp = dt.datetime.fromtimestamp(now).strftime("%m/%d/%Y - %I:%M:%S %p")
        name = str(call.get("SnapshotName") or f"{vm.name} - ({stamp})")
        config = vm.model_dump(exclude={"snapshots", "replication", "migrating"})
        config["production"] = vm.checkpoint_type in ("Production", "ProductionOnly") and (
            vm.guest.os == "windows" or vm.state not in ("Running", "Paused")
        )
        snap = Snapshot(
            name=name,
            created=now,
            parent=vm.snapshots[-1].id if vm.snapshots else None,
            config=config,
        )
        vm.snapshots.append(snap)
        for disk in vm.disks:  # the VM goes on in new differencing disks; snap keeps these
            disk.path = chain.branch(call.world, call.host, disk.path)
        if call.switch("Passthru"):
            call.out(snapshot_object(call.host, vm, snap))


def _snapshots(call: Call) -> list[tuple[Vm, Snapshot]]:
    objects = as_list(call.get("VMSnapshot")) + [o for o in call.input if prop(o, "SnapshotType")]
    if objects:
        out = []
        for obj in objects:
            vm = vm_from_object(call, {"VMId": prop(obj, "VMId"), "VMName": prop(obj, "VMName")})
            snap = (
                next((s for s in vm.snapshots if s.id == str(prop(obj, "Id"))), None)
                if vm
                else None
            )
            if vm and snap:
                out.append((vm, snap))
        return out
    wanted = call.get("Name")
    pairs = [(vm, s) for vm in _snapshot_vms(call) for s in vm.snapshots]
    if wanted is not None:
        names = {str(n).lower() for n in as_list(wanted)}
        pairs = [(vm, s) for vm, s in pairs if s.name.lower() in names]
        if not pairs:
            call.error(
                f'Hyper-V was unable to find a checkpoint with name "{wanted}".',
                "InvalidParameter",
                "InvalidArgument",
            )
    return pairs


def _snapshot_vms(call: Call) -> list[Vm]:
    """-VM objects (or piped VMs) or -VMName names; -Name is the checkpoint's name here."""
    objects = as_list(call.get("VM")) + [o for o in call.input if is_vm_object(o)]
    if objects:
        return [vm for vm in (vm_from_object(call, o) for o in objects) if vm is not None]
    return vms_by_name(call, as_list(call.get("VMName")))


def get_snapshot(call: Call) -> None:
    for vm, snap in _snapshots(call):
        call.out(snapshot_object(call.host, vm, snap))


def restore_snapshot(call: Call) -> None:
    for vm, snap in _snapshots(call)[:1]:
        if vm.state in ("Running", "Starting", "Paused"):
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        gone = [chain.broken_link(call.world, call.host, str(d["path"]))
                for d in chain.snapshot_disks(snap)]
        missing = next((g for g in gone if g), None)
        if missing:
            call.error(
                APPLY_MISSING.format(vm=vm.name, snap=snap.name, id=vm.id.upper(), path=missing),
                "ObjectNotFound", "ObjectNotFound", vm.name,
            )
            continue
        _apply_snapshot(call, vm, snap)
        if call.switch("Passthru"):
            call.out(snapshot_object(call.host, vm, snap))


def _apply_snapshot(call: Call, vm: Vm, snap: Snapshot) -> None:
    config = dict(snap.config)
    production = bool(config.pop("production", False))
    was = str(config.get("state", "Off"))
    # where the VM's files live is the VM's, not the checkpoint's (a move takes both along)
    keep = {"snapshots", "replication", "id", "path", "config_location"}
    now = [d.path for d in vm.disks]
    restored = Vm.model_validate(config)
    for field in Vm.model_fields:
        if field not in keep:
            setattr(vm, field, getattr(restored, field))
    frozen = chain.referenced(vm)
    for path in now:  # the current state is discarded ...
        if chain.is_automatic(path) and path.lower() not in frozen:
            chain.delete(call.world, call.host, path)
    for disk in vm.disks:  # ... and the VM goes on from the checkpoint's disks
        disk.path = chain.branch(call.world, call.host, disk.path)
    vm.state = "Saved" if (not production and was in ("Running", "Paused")) else "Off"
    vm.ready_at = None


def remove_snapshot(call: Call) -> None:
    for vm, snap in _snapshots(call):
        children = [s for s in vm.snapshots if s.parent == snap.id]
        for child in children:
            child.parent = snap.parent
        vm.snapshots.remove(snap)
        chain.merge_removed(call.world, call.host, vm, snap)
