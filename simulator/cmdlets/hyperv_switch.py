"""Virtual switches: New/Get/Set/Remove-VMSwitch and the host vNICs they create.

An External switch binds a physical adapter. With AllowManagementOS $true the adapter's IP
configuration moves to the switch's host vNIC 'vEthernet (<switch>)'; with $false the host keeps
no interface on that network. When that takes away the address the host's WinRM endpoint stands
for (``Host.address``), the host is cut off: the command answers, then its listener goes down
(``Sim.management_lost``) and stays down until a switch change gives the address back, e.g.
Remove-VMSwitch or Set-VMSwitch -AllowManagementOS $true run from the console (in process).
The address configuration of a bound adapter without a vNIC stays on the adapter (unused while
bound), so removing the switch restores it [UNCONF, reference §6 Undo].
"""

from __future__ import annotations

from typing import Any

from simulator.cmdlets.common import as_list
from simulator.cmdlets.hyperv_common import hv_cmdlet
from simulator.core import Call, Prompt, Registry
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
    hv_cmdlet(registry, "Set-VMSwitch")(set_vmswitch)
    hv_cmdlet(registry, "Remove-VMSwitch", prompt=Prompt(
        should_continue='Are you sure you want to remove virtual switch "{target}"?'  # [UNCONF]
    ))(remove_vmswitch)


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
    follow_management(call)
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
    follow_management(call)


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


def set_vmswitch(call: Call) -> None:
    """Set-VMSwitch: -AllowManagementOS on an External switch adds or removes its host vNIC;
    -Notes. Changing the type or the bound adapter is not simulated."""
    host = call.host
    for unsupported in ("SwitchType", "NetAdapterName", "NetAdapterInterfaceDescription"):
        if call.has(unsupported):
            call.fail(f"not simulated: Set-VMSwitch -{unsupported}", "NotSimulated")
    for sw in _selected(call, report=True):
        if call.has("AllowManagementOS"):
            _set_management_os(call, host, sw, bool(call.get("AllowManagementOS")))
        if call.has("Notes"):
            sw.notes = str(call.get("Notes") or "")
        if call.switch("Passthru"):
            call.out(switch_object(host, sw))
    follow_management(call)


def _set_management_os(call: Call, host: Host, sw: Switch, allow: bool) -> None:
    if sw.type != "External":
        if allow != sw.allow_management_os:
            call.fail(
                f"not simulated: Set-VMSwitch -AllowManagementOS on the {sw.type} switch "
                f"'{sw.name}'",
                "NotSimulated",
            )
        return
    physical = next((a for a in host.adapters.values() if a.bound_to_switch == sw.name), None)
    alias = vnic_alias(sw.name)
    if allow and alias not in host.adapters and physical is not None:
        # [UNCONF] the new vNIC takes the configuration the adapter had before the binding
        host.adapters[alias] = _vnic(host, sw.name, physical)
        physical.ips, physical.gateway, physical.dns = [], None, []
    elif not allow and alias in host.adapters:
        vnic = host.adapters.pop(alias)
        if physical is not None:  # kept on the bound adapter for when the switch goes
            physical.ips, physical.gateway, physical.dns = vnic.ips, vnic.gateway, vnic.dns
    sw.allow_management_os = allow


# ---------------------------------------------------------------- the management address


def _carries(adapter: HostAdapter, address: str) -> bool:
    return any(ip.address.split("/")[0].lower() == address for ip in adapter.ips)


def _live_on_lan(host: Host, adapter: HostAdapter) -> bool:
    """Up, not bound to a switch, and on the physical network (a physical adapter or the
    vNIC of an External switch), as reachability counts the host's interfaces."""
    if adapter.status != "Up" or adapter.bound_to_switch:
        return False
    if adapter.virtual_switch is None:
        return True
    sw = host.switch(adapter.virtual_switch)
    return sw is not None and sw.type == "External"


def management_cut_off(host: Host) -> bool:
    """The host's management address (``Host.address``) is configured on one of its adapters,
    but on none that is Up, unbound and on the physical network: the WinRM endpoint that
    address stands for cannot be reached."""
    address = host.address.lower()
    holders = [a for a in host.adapters.values() if _carries(a, address)]
    return bool(holders) and not any(_live_on_lan(host, a) for a in holders)


def follow_management(call: Call) -> None:
    """After a switch change: cut the host off if it lost its management address (after this
    command's answer), or bring its listener back if the address is reachable again."""
    host = call.host
    if management_cut_off(host):
        call.sim.management_lost(host.name)
    else:
        call.sim.management_restored(host.name)
