"""What a first contact with a host reads: volumes, the network profile and DNS answers.

``Win32_LogicalDisk`` (capacity less the host's files), ``MSFT_NetConnectionProfile``
(``root/StandardCimv2``, the class behind ``Get-NetConnectionProfile``) and ``Resolve-DnsName``
against the domain's DNS server on the DC. Rules and their sources: docs/simulator-fidelity.md.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from simulator.core import Call, Registry
from simulator.pstypes import cim_instance, ps_object, u32, u64
from simulator.world import Host, World

# NetworkCategory of MSFT_NetConnectionProfile
CATEGORIES = {"Public": 0, "Private": 1, "DomainAuthenticated": 2}
_DNS_RECORD = "Microsoft.DnsClient.Commands.DnsRecord"
_WIN32_EXCEPTION = "System.ComponentModel.Win32Exception"


def register(registry: Registry) -> None:
    registry.cim_class("root/cimv2", "Win32_LogicalDisk")(_logical_disks)
    registry.cim_class("root/StandardCimv2", "MSFT_NetConnectionProfile")(_profiles)
    registry.cmdlet("Resolve-DnsName", mutates=False)(resolve_dns_name)


def _drives(host: Host) -> list[str]:
    drives = {"C:", *host.volumes}
    for path in [*host.folders, *host.files]:
        if len(path) >= 2 and path[1] == ":":
            drives.add(path[:2].upper())
    return sorted(drives)


def _logical_disks(call: Call) -> list[Any]:
    host = call.host
    return [
        cim_instance(
            "root/cimv2",
            ["Win32_LogicalDisk", "CIM_LogicalDisk", "CIM_StorageExtent"],
            DeviceID=drive,
            DriveType=u32(3),
            FileSystem="NTFS",
            Size=u64(host.volume_capacity(drive)),
            FreeSpace=u64(host.volume_free(drive)),
            VolumeName="",
            PSComputerName=None,
        )
        for drive in _drives(host)
    ]


def network_category(host: Host) -> str:
    """A joined host (and the DC) authenticates to its domain: DomainAuthenticated."""
    return "DomainAuthenticated" if host.domain else host.network_category


def _profiles(call: Call) -> list[Any]:
    host = call.host
    category = network_category(host)
    out = []
    for index, adapter in enumerate(host.adapters.values(), start=2):
        if adapter.bound_to_switch or not adapter.ips or adapter.status != "Up":
            continue
        out.append(
            cim_instance(
                "root/StandardCimv2",
                ["MSFT_NetConnectionProfile"],
                Name=host.domain or "Network",
                InterfaceAlias=adapter.alias,
                InterfaceIndex=u32(index),
                NetworkCategory=u32(CATEGORIES[category]),
                IPv4Connectivity=u32(4 if adapter.gateway else 3),
                PSComputerName=None,
            )
        )
    return out


def _server(call: Call) -> Host | None:
    """The DNS server the query goes to: -Server, else the first DNS server of an adapter."""
    given = call.get("Server")
    names = [str(n) for n in (given if isinstance(given, list) else [given])] if given else []
    if not names:
        names = [d for a in call.host.adapters.values() for d in a.dns][:1]
    for name in names:
        if name in ("127.0.0.1", "::1", "localhost"):
            return call.host
        for host in call.world.hosts.values():
            addresses = {host.address} | {
                str(ipaddress.ip_interface(ip.address).ip)
                for adapter in host.adapters.values() for ip in adapter.ips
            }
            if name in addresses or name.lower() == host.name.lower():
                return host
    return None


def zone_records(world: World) -> dict[str, str]:
    """The A records of the domain's zone: the DC and every joined computer, by the name
    each registers (its own computer name)."""
    zone = world.ad.fqdn.lower()
    records: dict[str, str] = {}
    for host in world.hosts.values():
        if (host.domain or "").lower() == zone:
            records[f"{host.computer_name.lower()}.{zone}"] = host.address
    dc = world.host(world.ad.dc)
    if dc is not None:
        records[zone] = dc.address
    return records


def resolve_dns_name(call: Call) -> None:
    name = str(call.get("Name") or "").rstrip(".")
    server = _server(call)
    serving = (server is not None and not server.rebooting
               and server.services.get("DNS") == "Running")
    if not serving:
        call.error(f"{name} : This operation returned because the timeout period expired",
                   "ERROR_TIMEOUT", "OperationTimeout", name, _WIN32_EXCEPTION)
        return
    address = zone_records(call.world).get(name.lower())
    if address is None:
        call.error(f"{name} : DNS name does not exist", "DNS_ERROR_RCODE_NAME_ERROR",
                   "ResourceUnavailable", name, _WIN32_EXCEPTION)
        return
    call.out(ps_object([f"{_DNS_RECORD}_A", _DNS_RECORD], Name=name, Type=1, TTL=1200,
                       Section=1, IPAddress=address, IP4Address=address))
