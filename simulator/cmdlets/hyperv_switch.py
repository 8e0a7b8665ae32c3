"""Virtual switches: New/Get/Remove-VMSwitch and the host vNICs they create."""

from __future__ import annotations

from typing import Any

from simulator.cmdlets.common import as_list
from simulator.cmdlets.hyperv_common import hv_cmdlet
from simulator.engine import Call, Registry
from simulator.pstypes import HV, VMSwitchType, guid, member, prop, ps_object
from simulator.world import Host, HostAdapter, Switch

IN_USE = (
    "The virtual switch '{name}' cannot be deleted because it is being used by running "
    "virtual machines or assigned to child pools."
)
NOT_FOUND = 'Hyper-V was unable to find a virtual switch with name "{name}".'


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "New-VMSwitch")(new_vmswitch)
    hv_cmdlet(registry, "Get-VMSwitch")(get_vmswitch)
    hv_cmdlet(registry, "Remove-VMSwitch")(remove_vmswitch)


def switch_object(host: Host, sw: Switch) -> Any:
    return ps_object(
        [HV + "VMSwitch", HV + "VirtualizationObject"],
        Name=sw.name,
        Id=guid(sw.id),
        SwitchType=member(VMSwitchType, sw.type),
        NetAdapterInterfaceDescription=sw.adapter_description,
        NetAdapterInterfaceDescriptions=[sw.adapter_description] if sw.adapter_description else [],
        AllowManagementOS=sw.allow_management_os,
        ComputerName=host.name,
        Notes=sw.notes,
    )


def vnic_alias(name: str) -> str:
    return f"vEthernet ({name})"


def new_vmswitch(call: Call) -> None:
    host = call.host
    name = str(call.get("Name"))
    if host.switch(name):
        call.fail(
            f"Failed while adding virtual Ethernet switch connections. A virtual switch "
            f"named '{name}' already exists.",
            "ObjectExists",
            "ResourceExists",
        )
    adapter = _physical_adapter(call)
    kind = "External" if adapter else str(call.get("SwitchType"))
    sw = Switch(name=name, type=kind, notes=str(call.get("Notes") or ""))
    if adapter is not None:
        _bind_external(call, host, sw, adapter)
    elif kind == "Internal":
        sw.allow_management_os = True
        host.adapters[vnic_alias(name)] = _vnic(host, name, None)
    host.switches[name] = sw
    call.out(switch_object(host, sw))


def _physical_adapter(call: Call) -> HostAdapter | None:
    host = call.host
    wanted_name = next(iter(as_list(call.get("NetAdapterName"))), None)
    wanted_desc = next(iter(as_list(call.get("NetAdapterInterfaceDescription"))), None)
    if wanted_name is None and wanted_desc is None:
        return None
    for adapter in host.adapters.values():
        if adapter.virtual_switch is None and (
            (wanted_name and adapter.alias.lower() == str(wanted_name).lower())
            or (wanted_desc and adapter.description.lower() == str(wanted_desc).lower())
        ):
            return adapter
    prop_name, value = (
        ("Name", wanted_name) if wanted_name else ("InterfaceDescription", wanted_desc)
    )
    call.fail(
        f"No MSFT_NetAdapter objects found with property '{prop_name}' equal to '{value}'. "
        "Verify the value of the property and retry.",
        "CmdletizationQuery_NotFound_Name",
        "ObjectNotFound",
    )


def _bind_external(call: Call, host: Host, sw: Switch, adapter: HostAdapter) -> None:
    if adapter.bound_to_switch:
        call.fail(
            f"Failed while adding virtual Ethernet switch connections. The network adapter "
            f"'{adapter.description}' is already bound to virtual switch "
            f"'{adapter.bound_to_switch}'.",
            "InvalidOperation",
        )
    sw.adapter = adapter.alias
    sw.adapter_description = adapter.description
    adapter.bound_to_switch = sw.name
    management = call.get("AllowManagementOS")
    sw.allow_management_os = True if management is None else bool(management)
    if sw.allow_management_os:
        # the host's IP configuration moves from the physical NIC to the new vNIC
        host.adapters[vnic_alias(sw.name)] = _vnic(host, sw.name, adapter)
        adapter.ips, adapter.gateway, adapter.dns = [], None, []


def _vnic(host: Host, switch: str, physical: HostAdapter | None) -> HostAdapter:
    return HostAdapter(
        alias=vnic_alias(switch),
        description="Hyper-V Virtual Ethernet Adapter",
        mac=physical.mac if physical else host.next_mac(),
        ips=list(physical.ips) if physical else [],
        gateway=physical.gateway if physical else None,
        dns=list(physical.dns) if physical else [],
        virtual_switch=switch,
    )


def _selected(call: Call, *, report: bool) -> list[Switch]:
    host = call.host
    objects = as_list(call.get("VMSwitch")) + [o for o in call.input if prop(o, "SwitchType")]
    names = [prop(o, "Name") for o in objects] or as_list(call.get("Name"))
    if not names:
        kind = call.get("SwitchType")
        return [s for s in host.switches.values() if not kind or s.type == str(kind)]
    out = []
    for name in names:
        sw = host.switch(str(name))
        if sw is None and report:
            call.error(
                NOT_FOUND.format(name=name), "InvalidParameter", "InvalidArgument", str(name)
            )
        elif sw is not None:
            out.append(sw)
    return out


def get_vmswitch(call: Call) -> None:
    for sw in _selected(call, report=True):
        call.out(switch_object(call.host, sw))


def remove_vmswitch(call: Call) -> None:
    host = call.host
    for sw in _selected(call, report=True):
        users = [
            vm
            for vm in host.vms.values()
            if vm.state != "Off"
            and any(n.switch and n.switch.lower() == sw.name.lower() for n in vm.nics)
        ]
        if users:
            call.error(IN_USE.format(name=sw.name), "InvalidOperation", "InvalidOperation", sw.name)
            continue
        _unbind(host, sw)


def _unbind(host: Host, sw: Switch) -> None:
    vnic = host.adapters.pop(vnic_alias(sw.name), None)
    for adapter in host.adapters.values():
        if adapter.bound_to_switch == sw.name:
            adapter.bound_to_switch = None
            if vnic is not None and sw.type == "External":
                adapter.ips, adapter.gateway, adapter.dns = vnic.ips, vnic.gateway, vnic.dns
    for vm in host.vms.values():
        for nic in vm.nics:
            if nic.switch and nic.switch.lower() == sw.name.lower():
                nic.switch = None
    del host.switches[sw.name]
