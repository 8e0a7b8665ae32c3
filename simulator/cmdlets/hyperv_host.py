"""Host-level Hyper-V settings: Get/Set-VMHost, migration enablement and migration networks."""

from __future__ import annotations

import ipaddress
from typing import Any

from simulator.cmdlets.common import as_list
from simulator.cmdlets.hyperv_common import hv_cmdlet
from simulator.core import Call, Registry
from simulator.pstypes import (
    HV,
    MigrationAuthenticationType,
    VMMigrationPerformance,
    i64,
    member,
    ps_object,
)
from simulator.world import Host, MigrationNetwork, norm_path

SETTINGS = {  # Set-VMHost parameter -> VmHostSettings field
    "VirtualMachineMigrationAuthenticationType": "migration_auth",
    "VirtualMachineMigrationPerformanceOption": "migration_performance",
    "MaximumVirtualMachineMigrations": "max_migrations",
    "MaximumStorageMigrations": "max_storage_migrations",
    "UseAnyNetworkForMigration": "use_any_network",
}


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "Get-VMHost")(get_vmhost)
    hv_cmdlet(registry, "Set-VMHost")(set_vmhost)
    hv_cmdlet(registry, "Enable-VMMigration", "Disable-VMMigration")(toggle_migration)
    hv_cmdlet(registry, "Get-VMMigrationNetwork")(get_migration_network)
    hv_cmdlet(registry, "Add-VMMigrationNetwork")(add_migration_network)
    hv_cmdlet(registry, "Set-VMMigrationNetwork")(set_migration_network)
    hv_cmdlet(registry, "Remove-VMMigrationNetwork")(remove_migration_network)


def vmhost_object(host: Host, fqdn: str) -> Any:
    s = host.vmhost
    return ps_object(
        [HV + "VMHost"],
        Name=host.name,
        ComputerName=host.name,
        FullyQualifiedDomainName=fqdn,
        VirtualMachinePath=s.virtual_machine_path,
        VirtualHardDiskPath=s.virtual_hard_disk_path,
        VirtualMachineMigrationEnabled=s.migration_enabled,
        VirtualMachineMigrationAuthenticationType=member(
            MigrationAuthenticationType, s.migration_auth
        ),
        VirtualMachineMigrationPerformanceOption=member(
            VMMigrationPerformance, s.migration_performance
        ),
        MaximumVirtualMachineMigrations=s.max_migrations,
        MaximumStorageMigrations=s.max_storage_migrations,
        UseAnyNetworkForMigration=s.use_any_network,
        MemoryCapacity=i64(host.memory_total),
        LogicalProcessorCount=host.logical_processors,
        MacAddressMinimum=f"00155D{host.host_octet:02X}0000",
        MacAddressMaximum=f"00155D{host.host_octet:02X}FFFF",
    )


def _fqdn(call: Call) -> str:
    h = call.host
    return f"{h.name}.{h.domain}" if h.domain else h.name


def get_vmhost(call: Call) -> None:
    call.out(vmhost_object(call.host, _fqdn(call)))


def set_vmhost(call: Call) -> None:
    s = call.host.vmhost
    for param in ("VirtualMachinePath", "VirtualHardDiskPath"):
        if call.has(param):
            path = norm_path(str(call.get(param)))
            if not call.host.folder_exists(path):
                call.fail(
                    f"Failed to modify service settings. The system cannot find the path "
                    f"specified. (0x80070003) '{path}'",
                    "ObjectNotFound",
                    "ObjectNotFound",
                )
            field = (
                "virtual_machine_path"
                if param == "VirtualMachinePath"
                else "virtual_hard_disk_path"
            )
            setattr(s, field, path)
    for param, field in SETTINGS.items():
        if call.has(param):
            value = call.get(param)
            setattr(s, field, value if not isinstance(value, bool) else bool(value))
    if call.switch("Passthru"):
        call.out(vmhost_object(call.host, _fqdn(call)))


def toggle_migration(call: Call) -> None:
    call.host.vmhost.migration_enabled = call.name == "Enable-VMMigration"
    if call.switch("Passthru"):
        call.out(vmhost_object(call.host, _fqdn(call)))


def _network_object(host: Host, net: MigrationNetwork) -> Any:
    return ps_object(
        [HV + "VMMigrationNetwork"],
        Subnet=net.subnet,
        Priority=net.priority,
        ComputerName=host.name,
    )


def _subnet(call: Call, value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        call.fail(
            f"The parameter 'Subnet' is invalid: '{value}' is not a valid subnet.",
            "InvalidParameter",
            "InvalidArgument",
        )


def _find(host: Host, subnet: str) -> MigrationNetwork | None:
    return next((n for n in host.vmhost.migration_networks if n.subnet == subnet), None)


def get_migration_network(call: Call) -> None:
    wanted = {_subnet(call, s) for s in as_list(call.get("Subnet"))}
    for net in call.host.vmhost.migration_networks:
        if not wanted or net.subnet in wanted:
            call.out(_network_object(call.host, net))


def add_migration_network(call: Call) -> None:
    for raw in as_list(call.get("Subnet")):
        subnet = _subnet(call, raw)
        if _find(call.host, subnet):
            call.error(
                f"The migration network '{subnet}' already exists.",
                "ResourceExists",
                "ResourceExists",
                subnet,
            )
            continue
        net = MigrationNetwork(subnet=subnet, priority=int(call.get("Priority") or 0))
        call.host.vmhost.migration_networks.append(net)
        if call.switch("Passthru"):
            call.out(_network_object(call.host, net))


def set_migration_network(call: Call) -> None:
    subnet = _subnet(call, call.get("Subnet"))
    net = _find(call.host, subnet)
    if net is None:
        call.error(
            f"No migration network was found with subnet '{subnet}'.",
            "ObjectNotFound",
            "ObjectNotFound",
            subnet,
        )
        return
    if call.has("NewSubnet"):
        net.subnet = _subnet(call, call.get("NewSubnet"))
    if call.has("NewPriority"):
        net.priority = int(call.get("NewPriority"))


def remove_migration_network(call: Call) -> None:
    for raw in as_list(call.get("Subnet")):
        subnet = _subnet(call, raw)
        nets = call.host.vmhost.migration_networks
        if _find(call.host, subnet) is None:
            call.error(
                f"No migration network was found with subnet '{subnet}'.",
                "ObjectNotFound",
                "ObjectNotFound",
                subnet,
            )
        call.host.vmhost.migration_networks = [n for n in nets if n.subnet != subnet]
