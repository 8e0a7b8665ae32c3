"""VM lifecycle: New-VM, Get-VM, Set-VM, Start-VM, Stop-VM, Remove-VM, Set-VMProcessor."""

from __future__ import annotations

from typing import Any

from simulator.cmdlets.common import PathDenied, PathMissing, session_locate
from simulator.cmdlets.hyperv_common import (
    hv_cmdlet,
    target_vms,
    vm_object,
)
from simulator.cmdlets.hyperv_switch import NOT_FOUND as SWITCH_NOT_FOUND
from simulator.core import Call, Prompt, Registry
from simulator.world import (
    GB,
    MB,
    NEVER,
    Guest,
    Host,
    Vm,
    VmDisk,
    VmDvd,
    VmNic,
    default_guest,
    firmware_halts,
    is_unc,
    join_path,
    norm_path,
)

BAD_STATE = "The operation cannot be performed while the object is in its current state."
# Start-VM on Windows Server 2016+ when the host's free memory is below the VM's startup memory
NO_MEMORY = (
    "'{vm}' failed to start.\n"
    "'{vm}' could not initialize.\n"
    "Not enough memory in the system to start the virtual machine {vm}.\n"
    "'{vm}' failed to start. (Virtual machine ID {id})\n"
    "'{vm}' could not initialize. (Virtual machine ID {id})\n"
    "Not enough memory in the system to start the virtual machine {vm} with ram size {mb} "
    "megabytes. (Virtual machine ID {id})"
)
ACCESS_DENIED = (
    "'{vm}' failed to create external configuration store at '{path}': General "
    "access denied error (0x80070005). (Virtual machine ID {id})"
)
FILE_IN_USE = (
    "'{vm}' failed to add device 'Virtual Hard Disk'. (Virtual machine ID {id})\n"
    "Failed to open attachment '{path}'. Error: 'The process cannot access the file "
    "because it is being used by another process.' (0x80070020)"
)
FILE_CORRUPT = (  # [UNCONF] wording; ERROR_FILE_CORRUPT = 1392 (0x80070570)
    "'{vm}' failed to add device 'Virtual Hard Disk'. (Virtual machine ID {id})\n"
    "Failed to open attachment '{path}'. Error: 'The file or directory is corrupted and "
    "unreadable.' (0x80070570)"
)
FILE_MISSING = (
    "'{vm}' failed to add device 'Virtual Hard Disk'. (Virtual machine ID {id})\n"
    "Failed to open attachment '{path}'. Error: 'The system cannot find the file "
    "specified.' (0x80070002)"
)
SHUTDOWN_IS = (
    "The virtual machine '{vm}' cannot be shut down because the shutdown integration "
    "service is unavailable. Use -TurnOff or -Force to turn it off."
)
# guest OS family -> (heartbeat integration service, shutdown integration service) on 2016+
INTEGRATION = {"windows": (True, True), "linux": (False, True), "windows-legacy": (False, False)}
RUNNING = ("Running", "Starting", "Paused")


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "New-VM")(new_vm)
    hv_cmdlet(registry, "Get-VM")(get_vm)
    hv_cmdlet(registry, "Set-VM")(set_vm)
    hv_cmdlet(registry, "Start-VM")(start_vm)
    hv_cmdlet(registry, "Stop-VM")(stop_vm)
    hv_cmdlet(registry, "Remove-VM", prompt=Prompt(
        should_continue='Are you sure you want to remove virtual machine "{target}"?'))(remove_vm)
    hv_cmdlet(registry, "Set-VMProcessor")(set_vmprocessor)


# ---------------------------------------------------------------- New-VM


def new_vm(call: Call) -> None:
    host = call.host
    name = str(call.get("Name") or "New Virtual Machine")
    generation = int(call.get("Generation") or 1)
    memory = int(call.get("MemoryStartupBytes") or (512 * MB if generation == 1 else GB))
    _check_memory(call, name, memory)
    switch = call.get("SwitchName")
    if switch is not None and host.switch(str(switch)) is None:
        call.fail(SWITCH_NOT_FOUND.format(name=switch), "InvalidParameter", "InvalidArgument")
    vm = Vm(name=name, generation=generation, memory_startup=memory, path="", config_location="")
    _place(call, vm)
    disk = _initial_disk(call, vm)
    found = host.switch(str(switch)) if switch is not None else None
    vm.nics.append(VmNic(mac="000000000000", switch=found.name if found else None))
    if generation == 1:
        vm.dvds.append(VmDvd())
    if disk is not None:
        vm.disks.append(disk)
    vm.guest = _guest_for(call, disk)
    host.vms[vm.id] = vm
    call.out(vm_object(call, host, vm))


def _check_memory(call: Call, name: str, memory: int) -> None:
    if memory < 32 * MB:
        call.fail(
            f"Failed to modify device 'Memory'. Invalid startup memory amount assigned for "
            f"'{name}'. The minimum amount of memory you can assign to this virtual machine "
            "is '32' MB.",
            "InvalidParameter",
            "InvalidArgument",
        )
    if memory % (2 * MB):
        call.fail(
            f"Failed to modify device 'Memory'. Invalid startup memory amount assigned for "
            f"'{name}'. The amount of memory must be a multiple of 2 MB.",
            "InvalidParameter",
            "InvalidArgument",
        )


def _place(call: Call, vm: Vm) -> None:
    """Path/ConfigurationLocation: -Path\\<name>, else the host's VirtualMachinePath."""
    given = call.get("Path")
    root = join_path(str(given), vm.name) if given else call.host.vmhost.virtual_machine_path
    vm.path = vm.config_location = norm_path(root)
    check_vmms_access(call, vm, root)
    spot = call.world.locate(call.host, root)
    if spot is not None:
        spot[0].add_folder(join_path(spot[1], "Virtual Machines"))


def check_vmms_access(call: Call, vm: Vm, path: str, host: Host | None = None) -> None:
    """VMMS opens VM files on a share as the computer account; a remote session also needs
    cifs delegation (second hop) to create them there."""
    if not is_unc(path):
        return
    who = host or call.host
    world = call.world
    hit = world.resolve_unc(path)
    ok = hit is not None and world.computer_can_write(who, path)
    if ok and hit is not None and who is call.host:
        ok = world.delegates(who.name, "cifs", hit[0].name)
    if not ok:
        call.fail(
            ACCESS_DENIED.format(vm=vm.name, path=path, id=vm.id.upper()),
            "AccessDenied",
            "PermissionDenied",
        )


def _initial_disk(call: Call, vm: Vm) -> VmDisk | None:
    controller = "IDE" if vm.generation == 1 else "SCSI"
    if call.get("VHDPath"):
        path = norm_path(str(call.get("VHDPath")))
        attach_check(call, vm, path)
        return VmDisk(path=path, controller_type=controller)
    if call.get("NewVHDPath"):
        from simulator.cmdlets.hyperv_storage import create_vhd

        path = str(call.get("NewVHDPath"))
        create_vhd(call, path, int(call.get("NewVHDSizeBytes")), "Dynamic", None)
        return VmDisk(path=norm_path(path), controller_type=controller)
    return None


def attach_check(call: Call, vm: Vm, path: str) -> None:
    """The VHD(X) must exist and not be attached to another VM."""
    try:
        host, local = session_locate(call, path)
    except (PathDenied, PathMissing):
        call.fail(
            ACCESS_DENIED.format(vm=vm.name, path=path, id=vm.id.upper()),
            "AccessDenied",
            "PermissionDenied",
        )
    if host.file(local) is None:
        call.fail(
            FILE_MISSING.format(vm=vm.name, id=vm.id.upper(), path=path),
            "ObjectNotFound",
            "ObjectNotFound",
        )
    check_vmms_access(call, vm, path)
    for other_host in call.world.hosts.values():
        for other in other_host.vms.values():
            if other.id != vm.id and _uses(call, other_host, other, host, local):
                call.fail(
                    FILE_IN_USE.format(vm=vm.name, id=vm.id.upper(), path=path),
                    "InvalidOperation",
                    "ResourceBusy",
                )


def _uses(call: Call, h: Host, vm: Vm, target: Host, local: str) -> bool:
    for disk in vm.disks:
        spot = call.world.locate(h, disk.path)
        if spot and spot[0] is target and spot[1].lower() == norm_path(local).lower():
            return True
    return False


def _guest_for(call: Call, disk: VmDisk | None) -> Guest:
    os_family = "windows"
    if disk is not None:
        spot = call.world.locate(call.host, disk.path)
        file = spot[0].file(spot[1]) if spot else None
        os_family = _os_of(call, spot[0], file) if spot and file else "windows"
        generalized = _generalized(call, spot[0], file) if spot and file else False
        guest = default_guest(os_family)
        guest.specialized = not generalized
        image = _image_of(call, spot[0], file) if spot and file else None
        if os_family == "linux" and image is not None:
            guest.image_network = list(image.network or [])
            guest.kvp = image.kvp_daemon
        return guest
    return default_guest(os_family)


def _generalized(call: Call, host: Host, file: Any) -> bool:
    """Whether the disk (or the image under its differencing chain) is a sysprepped image
    that has never booted: the VM's first boot runs the specialize pass and mini-setup."""
    seen = 0
    while file is not None and not file.generalized and file.parent and seen < 16:
        spot = call.world.locate(host, file.parent)
        file = spot[0].file(spot[1]) if spot else None
        seen += 1
    return bool(file is not None and file.generalized)


def _image_of(call: Call, host: Host, file: Any) -> Any:
    """The image under a disk's differencing chain: the file that names its OS family (a
    copy of a golden image is one)."""
    seen = 0
    while file is not None and file.os is None and file.parent and seen < 16:
        spot = call.world.locate(host, file.parent)
        file = spot[0].file(spot[1]) if spot else None
        seen += 1
    return file if file is not None and file.os else None


def _os_of(call: Call, host: Host, file: Any) -> str:
    seen = 0
    while file is not None and file.os is None and file.parent and seen < 16:
        spot = call.world.locate(host, file.parent)
        file = spot[0].file(spot[1]) if spot else None
        seen += 1
    return file.os if file is not None and file.os else "windows"


# ---------------------------------------------------------------- Get/Set


def get_vm(call: Call) -> None:
    host = call.host
    if call.has("Id"):
        vm = host.vms.get(str(call.get("Id")))
        if vm is None:
            call.error(
                f'Hyper-V was unable to find a virtual machine with id "{call.get("Id")}".',
                "InvalidParameter",
                "InvalidArgument",
            )
        vms = [vm] if vm else []
    elif call.has("Name") or call.input:
        vms = target_vms(call)
    else:
        vms = sorted(host.vms.values(), key=lambda v: v.name.lower())
    for vm in vms:
        call.out(vm_object(call, host, vm))


def set_vm(call: Call) -> None:
    for vm in target_vms(call):
        _apply_settings(call, vm)
        if call.switch("Passthru"):
            call.out(vm_object(call, call.host, vm))


def _apply_settings(call: Call, vm: Vm) -> None:
    off = vm.state == "Off"
    if call.has("MemoryStartupBytes"):
        if not off and not vm.dynamic_memory:
            call.fail(BAD_STATE, "InvalidState", "InvalidOperation")
        _check_memory(call, vm.name, int(call.get("MemoryStartupBytes")))
        vm.memory_startup = int(call.get("MemoryStartupBytes"))
    if call.has("ProcessorCount"):
        if not off:
            call.fail(BAD_STATE, "InvalidState", "InvalidOperation")
        vm.processor_count = int(call.get("ProcessorCount"))
    simple = {
        "AutomaticStopAction": "automatic_stop_action",
        "Notes": "notes",
        "AutomaticStartAction": "automatic_start_action",
        "CheckpointType": "checkpoint_type",
    }
    for param, attr in simple.items():
        if call.has(param):
            setattr(vm, attr, str(call.get(param)))
    if call.switch("DynamicMemory") or call.switch("StaticMemory"):
        vm.dynamic_memory = call.switch("DynamicMemory")
    if call.get("NewVMName"):
        vm.name = str(call.get("NewVMName"))


def set_vmprocessor(call: Call) -> None:
    for vm in target_vms(call):
        if vm.state != "Off" and (
            call.has("Count") or call.has("CompatibilityForMigrationEnabled")
        ):
            call.fail(BAD_STATE, "InvalidState", "InvalidOperation")
        if call.has("Count"):
            vm.processor_count = int(call.get("Count"))
        if call.has("CompatibilityForMigrationEnabled"):
            vm.compatibility_for_migration = bool(call.get("CompatibilityForMigrationEnabled"))


# ---------------------------------------------------------------- Start/Stop/Remove


def start_vm(call: Call) -> None:
    host = call.host
    for vm in target_vms(call):
        if vm.state in RUNNING:
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        problem = start_problem(call, host, vm)
        if problem:
            # Hyper-V's id for a start the host has no memory for is OutOfMemory (the WMI
            # return code "Out of memory"), seen in public Start-VM error output
            error_id = "OutOfMemory" if _short_of_memory(host, vm) else "OperationFailed"
            call.error(problem, error_id, "ResourceUnavailable", vm.name)
            continue
        boot_vm(call, host, vm)
        if call.switch("Passthru"):
            call.out(vm_object(call, host, vm))


def _short_of_memory(host: Host, vm: Vm) -> bool:
    return vm.state != "Saved" and host.memory_free() < vm.memory_startup and not _replica(vm)


def _replica(vm: Vm) -> bool:
    rep = vm.replication
    return bool(rep and rep.mode == "Replica"
                and rep.state not in ("FailedOverWaitingCompletion", "FailedOver"))


def start_problem(call: Call, host: Host, vm: Vm) -> str | None:
    rep = vm.replication
    if (
        rep
        and rep.mode == "Replica"
        and rep.state not in ("FailedOverWaitingCompletion", "FailedOver")
    ):
        return (
            f"'{vm.name}' failed to start. (Virtual machine ID {vm.id.upper()})\n"
            f"The virtual machine '{vm.name}' cannot be started because it is a Replica "
            "virtual machine. Fail over the virtual machine first."
        )
    if _short_of_memory(host, vm):
        return NO_MEMORY.format(vm=vm.name, id=vm.id.upper(), mb=vm.memory_startup // MB)
    for disk in vm.disks:
        spot = call.world.locate(host, disk.path)
        if spot is None or spot[0].file(spot[1]) is None:
            return FILE_MISSING.format(vm=vm.name, id=vm.id.upper(), path=disk.path)
        if spot[0].file(spot[1]).truncated:  # type: ignore[union-attr]
            return FILE_CORRUPT.format(vm=vm.name, id=vm.id.upper(), path=disk.path)
        if is_unc(disk.path) and not call.world.computer_can_write(host, disk.path):
            return ACCESS_DENIED.format(vm=vm.name, path=disk.path, id=vm.id.upper())
    return None


def boot_vm(call: Call, host: Host, vm: Vm) -> None:
    for nic in vm.nics:
        if nic.mac == "000000000000":
            nic.mac = host.next_mac()
    vm.state = "Starting"
    clock = call.sim.clock
    with call.unlocked():
        clock.sleep(clock.d.vm_start)
    vm.state = "Running"
    if firmware_halts(vm):
        vm.ready_at = NEVER
        return
    # ready_at: the guest has booted (network, services, KVP). Every guest boots, with or
    # without integration services (a 2003 guest just never tells the host: no heartbeat).
    # A sysprepped image's first boot runs specialize, mini-setup and the first-boot commands
    # (offline configuration: cmdlines.txt at the end of mini-setup) and restarts: minutes.
    first = not vm.guest.specialized
    vm.guest.specialized = True
    vm.ready_at = clock.after(clock.d.first_boot if first else clock.d.guest_boot)
    if vm.guest.os == "linux":
        image_network(call, host, vm)


def image_network(call: Call, host: Host, vm: Vm) -> None:
    """A Linux guest brings its adapters up as its image configures them, eth0 being the
    first NIC: a static address, or DHCP, which the classroom LAN's server answers on an
    External switch (with the lab's reservation) and nothing answers on an Internal or
    Private switch (no DHCP server there: the adapter has no IPv4 address)."""
    for index, nic in enumerate(vm.nics):
        entry = vm.guest.image_network[index] if index < len(vm.guest.image_network) else ""
        if entry == "dhcp":
            switch = host.switch(nic.switch) if nic.switch else None
            lease = call.world.dhcp_reservations.get(f"{vm.name}/{nic.name}".lower()) \
                if switch is not None and switch.type == "External" else None
            entry = lease or ""
        if entry:
            vm.guest.ips[nic.mac] = [entry]
        else:
            vm.guest.ips.pop(nic.mac, None)


def stop_vm(call: Call) -> None:
    for vm in target_vms(call):
        if vm.state == "Off":
            continue
        if call.switch("Save"):
            vm.state = "Saved" if vm.state in RUNNING else vm.state
        elif call.switch("TurnOff") or vm.state == "Saved":
            _turn_off(call, vm)
        else:
            _shut_down(call, vm)
        if call.switch("Passthru"):
            call.out(vm_object(call, call.host, vm))


def _turn_off(call: Call, vm: Vm) -> None:
    if vm.state == "Saved" and not (call.switch("TurnOff") or call.switch("Force")):
        call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
        return
    vm.state, vm.ready_at = "Off", None


def _shut_down(call: Call, vm: Vm) -> None:
    has_is = INTEGRATION.get(vm.guest.os, (True, True))[1]
    booted = vm.ready_at is None or call.sim.clock.now() >= vm.ready_at
    if (not has_is or not booted) and not call.switch("Force"):
        call.error(SHUTDOWN_IS.format(vm=vm.name), "InvalidState", "InvalidOperation", vm.name)
        return
    vm.state = "Stopping"
    clock = call.sim.clock
    with call.unlocked():
        clock.sleep(clock.d.vm_stop)
    vm.state, vm.ready_at = "Off", None


def remove_vm(call: Call) -> None:
    host = call.host
    for vm in target_vms(call):
        if vm.state not in ("Off", "Saved"):
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        if vm.migrating:
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        from simulator.cmdlets.hyperv_chain import merge_all

        merge_all(call.world, host, vm)  # checkpoints merge into the VHDs, which stay
        del host.vms[vm.id]
        if call.switch("Passthru"):
            call.out(vm_object(call, host, vm))
