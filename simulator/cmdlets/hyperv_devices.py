"""VM devices: network adapters, hard disk drives, DVD drives."""

from __future__ import annotations

from typing import Any

from simulator.cmdlets.common import as_list
from simulator.cmdlets.hyperv_common import (
    disk_object,
    hv_cmdlet,
    nic_object,
    target_vms,
    vm_from_object,
)
from simulator.cmdlets.hyperv_switch import NOT_FOUND as SWITCH_NOT_FOUND
from simulator.core import Call, Registry
from simulator.pstypes import HV, ControllerType, OnOffState, guid, member, prop, ps_object
from simulator.world import SECURE_BOOT_TEMPLATES, Host, Vm, VmDisk, VmNic, norm_path

BAD_STATE = "The operation cannot be performed while the object is in its current state."
NO_LEGACY_GEN2 = (
    "A legacy network adapter cannot be added to virtual machine '{vm}' because "
    "legacy network adapters are not supported on generation 2 virtual machines."
)
NIC_NOT_FOUND = (
    'Hyper-V was unable to find a network adapter with name "{name}" on virtual machine "{vm}".'
)


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "Add-VMNetworkAdapter")(add_nic)
    hv_cmdlet(registry, "Get-VMNetworkAdapter")(get_nic)
    hv_cmdlet(registry, "Remove-VMNetworkAdapter")(remove_nic)
    hv_cmdlet(registry, "Connect-VMNetworkAdapter")(connect_nic)
    hv_cmdlet(registry, "Disconnect-VMNetworkAdapter")(disconnect_nic)
    hv_cmdlet(registry, "Add-VMHardDiskDrive")(add_disk)
    hv_cmdlet(registry, "Get-VMHardDiskDrive")(get_disk)
    hv_cmdlet(registry, "Remove-VMHardDiskDrive")(remove_disk)
    hv_cmdlet(registry, "Get-VMDvdDrive")(get_dvd)
    hv_cmdlet(registry, "Set-VMDvdDrive")(set_dvd)
    hv_cmdlet(registry, "Get-VMFirmware")(get_firmware)
    hv_cmdlet(registry, "Set-VMFirmware")(set_firmware)


# ---------------------------------------------------------------- network adapters


def _switch_name(call: Call) -> str | None:
    name = call.get("SwitchName")
    if name is None:
        sw_obj = call.get("VMSwitch")
        name = prop(as_list(sw_obj)[0], "Name") if sw_obj is not None else None
    if name is None:
        return None
    sw = call.host.switch(str(name))
    if sw is None:
        call.fail(SWITCH_NOT_FOUND.format(name=name), "InvalidParameter", "InvalidArgument")
    return sw.name


def add_nic(call: Call) -> None:
    if call.switch("ManagementOS"):
        call.fail("not simulated: Add-VMNetworkAdapter -ManagementOS", "NotSimulated")
    legacy = call.switch("IsLegacy")
    switch = _switch_name(call)
    for vm in target_vms(call):
        if legacy and vm.generation == 2:
            call.error(NO_LEGACY_GEN2.format(vm=vm.name), "InvalidParameter", "InvalidArgument")
            continue
        if vm.state != "Off" and (legacy or vm.generation == 1):
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        default = "Legacy Network Adapter" if legacy else "Network Adapter"
        nic = VmNic(
            name=str(call.get("Name") or default),
            switch=switch,
            legacy=legacy,
            mac=call.host.next_mac() if vm.state != "Off" else "000000000000",
        )
        if call.get("StaticMacAddress"):
            nic.mac = str(call.get("StaticMacAddress")).replace("-", "").upper()
        vm.nics.append(nic)
        if call.switch("Passthru"):
            call.out(nic_object(call.host, vm, nic, call.sim.clock.now()))


def _nics(call: Call) -> list[tuple[Vm, VmNic]]:
    """Adapters named by -VMNetworkAdapter objects, or -VMName/-VM plus optional -Name."""
    objects = as_list(call.get("VMNetworkAdapter")) + [o for o in call.input if _is_nic(o)]
    if objects:
        return [hit for hit in (_nic_from_object(call, o) for o in objects) if hit]
    wanted = [str(n).lower() for n in as_list(call.get("Name"))]  # String or String[]
    out = []
    for vm in target_vms(call):
        hits = [n for n in vm.nics if not wanted or n.name.lower() in wanted]
        for name in wanted:
            if not any(n.name.lower() == name for n in hits):
                call.error(NIC_NOT_FOUND.format(name=name, vm=vm.name), "InvalidParameter",
                           "InvalidArgument")
        out += [(vm, n) for n in hits]
    return out


def _is_nic(obj: Any) -> bool:
    return prop(obj, "MacAddress") is not None and prop(obj, "SwitchName", "x") != "x"


def _nic_from_object(call: Call, obj: Any) -> tuple[Vm, VmNic] | None:
    vm = vm_from_object(call, obj)
    if vm is None:
        return None
    raw_id = str(prop(obj, "Id") or "")
    nic_id = raw_id.rsplit("\\", 1)[-1]
    nic = next((n for n in vm.nics if n.id == nic_id), None) or vm.nic(str(prop(obj, "Name")))
    return (vm, nic) if nic else None


def get_nic(call: Call) -> None:
    host = call.host
    if call.switch("ManagementOS"):
        for adapter in host.adapters.values():
            if adapter.virtual_switch:
                call.out(_host_vnic(host, adapter.virtual_switch, adapter.mac))
        return
    if call.switch("All"):
        pairs = [(vm, n) for vm in host.vms.values() for n in vm.nics]
    else:
        pairs = _nics(call)
    legacy = call.get("IsLegacy")
    for vm, nic in pairs:
        if legacy is None or bool(legacy) == nic.legacy:
            call.out(nic_object(host, vm, nic, call.sim.clock.now()))


def _host_vnic(host: Host, switch: str, mac: str) -> Any:
    return ps_object(
        [HV + "VMInternalNetworkAdapter", HV + "VMNetworkAdapterBase"],
        Name=switch,
        SwitchName=switch,
        MacAddress=mac.replace("-", ""),
        IsManagementOs=True,
        ComputerName=host.name,
        VMName=None,
    )


def remove_nic(call: Call) -> None:
    for vm, nic in _nics(call):
        if vm.state != "Off" and (nic.legacy or vm.generation == 1):
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        vm.nics.remove(nic)


def connect_nic(call: Call) -> None:
    switch = _switch_name(call)
    for vm, nic in _nics(call):
        nic.switch = switch
        if call.switch("Passthru"):
            call.out(nic_object(call.host, vm, nic, call.sim.clock.now()))


def disconnect_nic(call: Call) -> None:
    for vm, nic in _nics(call):
        nic.switch = None
        if call.switch("Passthru"):
            call.out(nic_object(call.host, vm, nic, call.sim.clock.now()))


# ---------------------------------------------------------------- hard disks


def _free_slot(vm: Vm, controller: str) -> tuple[int, int]:
    used = {
        (d.controller_number, d.controller_location)
        for d in vm.disks
        if d.controller_type == controller
    }
    used |= {
        (d.controller_number, d.controller_location)
        for d in vm.dvds
        if d.controller_type == controller
    }
    slots = (
        [(c, loc) for c in range(2) for loc in range(2)]
        if controller == "IDE"
        else [(0, loc) for loc in range(64)]
    )
    return next(s for s in slots if s not in used)


def add_disk(call: Call) -> None:
    from simulator.cmdlets.hyperv_vm import attach_check

    for vm in target_vms(call):
        controller = str(call.get("ControllerType") or ("IDE" if vm.generation == 1 else "SCSI"))
        if controller == "IDE" and vm.generation == 2:
            call.error(
                "Generation 2 virtual machines do not support IDE controllers.",
                "InvalidParameter",
                "InvalidArgument",
            )
            continue
        if controller == "IDE" and vm.state != "Off":
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        path = norm_path(str(call.get("Path")))
        attach_check(call, vm, path)
        number, location = _free_slot(vm, controller)
        disk = VmDisk(
            path=path,
            controller_type=controller,
            controller_number=int(call.get("ControllerNumber", number)),
            controller_location=int(call.get("ControllerLocation", location)),
        )
        vm.disks.append(disk)
        if call.switch("Passthru"):
            call.out(disk_object(call.host, vm, disk))


def _disks(call: Call) -> list[tuple[Vm, VmDisk]]:
    objects = as_list(call.get("VMHardDiskDrive")) + [
        o for o in call.input if prop(o, "ControllerLocation") is not None
    ]
    if objects:
        out = []
        for obj in objects:
            vm = vm_from_object(call, obj)
            disk = (
                next(
                    (d for d in vm.disks if d.path.lower() == str(prop(obj, "Path")).lower()), None
                )
                if vm
                else None
            )
            if vm and disk:
                out.append((vm, disk))
        return out
    pairs = [(vm, d) for vm in target_vms(call) for d in vm.disks]
    for param, attr in (
        ("ControllerType", "controller_type"),
        ("ControllerNumber", "controller_number"),
        ("ControllerLocation", "controller_location"),
    ):
        if call.has(param):
            pairs = [(vm, d) for vm, d in pairs if str(getattr(d, attr)) == str(call.get(param))]
    return pairs


def get_disk(call: Call) -> None:
    for vm, disk in _disks(call):
        call.out(disk_object(call.host, vm, disk))


def remove_disk(call: Call) -> None:
    for vm, disk in _disks(call):
        if disk.controller_type == "IDE" and vm.state != "Off":
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        vm.disks.remove(disk)


# ---------------------------------------------------------------- DVD


def _dvd_object(host: Host, vm: Vm, index: int) -> Any:
    dvd = vm.dvds[index]
    return ps_object(
        [HV + "DvdDrive", HV + "Drive"],
        Name="DVD Drive",
        Path=dvd.path,
        VMName=vm.name,
        VMId=guid(vm.id),
        ComputerName=host.name,
        ControllerType=member(ControllerType, dvd.controller_type),
        ControllerNumber=dvd.controller_number,
        ControllerLocation=dvd.controller_location,
        DvdMediaType="ISO" if dvd.path else "None",
    )


def get_dvd(call: Call) -> None:
    for vm in target_vms(call):
        for index in range(len(vm.dvds)):
            call.out(_dvd_object(call.host, vm, index))


def set_dvd(call: Call) -> None:
    from simulator.cmdlets.common import PathDenied, PathMissing, session_locate

    path = call.get("Path")
    for vm in target_vms(call):
        if not vm.dvds:
            call.error(
                f"No DVD drive was found on virtual machine '{vm.name}'.",
                "ObjectNotFound",
                "ObjectNotFound",
            )
            continue
        if path:
            try:
                host, local = session_locate(call, str(path))
            except (PathDenied, PathMissing):
                host, local = call.host, ""
            if host.file(local) is None:
                call.error(
                    f"Failed to add device 'Virtual CD/DVD Disk'. The system cannot find "
                    f"the file specified. (0x80070002) '{path}'",
                    "ObjectNotFound",
                    "ObjectNotFound",
                )
                continue
        vm.dvds[0].path = norm_path(str(path)) if path else None


# ---------------------------------------------------------------- firmware (generation 2)

# [UNCONF] the wording for a generation 1 VM (the reference gives none); hvlab never asks
GEN1_FIRMWARE = (
    "The operation cannot be performed on virtual machine '{vm}' because it is a generation 1 "
    "virtual machine. Use the VMBios cmdlets instead."
)
# [UNCONF] the wording for an unknown template name (hvlab's lab file only allows known ones)
NO_TEMPLATE = "The Secure Boot template '{name}' could not be found."


def _firmware_object(host: Host, vm: Vm) -> Any:
    template_id = SECURE_BOOT_TEMPLATES.get(vm.secure_boot_template, ("", set()))[0]
    return ps_object(
        [HV + "VMFirmware", HV + "VMComponentObject", HV + "VirtualizationObject"],
        VMName=vm.name,
        VMId=guid(vm.id),
        ComputerName=host.name,
        SecureBoot=member(OnOffState, "On" if vm.secure_boot else "Off"),
        SecureBootTemplate=vm.secure_boot_template,
        SecureBootTemplateId=guid(template_id) if template_id else None,
        PauseAfterBootFailure=member(OnOffState, "Off"),
    )


def _generation_2(call: Call, vm: Vm) -> bool:
    if vm.generation == 2:
        return True
    call.error(GEN1_FIRMWARE.format(vm=vm.name), "InvalidOperation", "InvalidOperation", vm.name)
    return False


def get_firmware(call: Call) -> None:
    for vm in target_vms(call):
        if _generation_2(call, vm):
            call.out(_firmware_object(call.host, vm))


def set_firmware(call: Call) -> None:
    """-EnableSecureBoot On|Off and -SecureBootTemplate; the VM must be off."""
    template = call.get("SecureBootTemplate")
    if template is not None:
        known = {t.lower(): t for t in SECURE_BOOT_TEMPLATES}
        if str(template).lower() not in known:
            call.fail(NO_TEMPLATE.format(name=template), "InvalidParameter", "InvalidArgument")
        template = known[str(template).lower()]
    enable = call.get("EnableSecureBoot")
    for vm in target_vms(call):
        if not _generation_2(call, vm):
            continue
        if vm.state != "Off":
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        if enable is not None:
            vm.secure_boot = str(enable).lower() == "on"
        if template is not None:
            vm.secure_boot_template = str(template)
        if call.switch("Passthru"):
            call.out(_firmware_object(call.host, vm))
