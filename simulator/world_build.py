"""Building the initial world from a lab spec, and the JSON view of a world (``state_json``)."""

from __future__ import annotations

import ipaddress
from typing import Any

from hvlab.spec import HostRole, LabSpec
from simulator import localization
from simulator.world import (
    DEFAULT_HOST_MEMORY,
    MIGRATION_RULE,
    Ace,
    AdGroup,
    AdUser,
    Directory,
    FirewallRule,
    Host,
    HostAdapter,
    IpAddress,
    Share,
    SimFile,
    Vm,
    World,
    norm_path,
)

BASE_FEATURES = [
    "FileAndStorage-Services",
    "Storage-Services",
    "NET-Framework-45-Features",
    "NET-Framework-45-Core",
    "PowerShellRoot",
    "PowerShell",
    "WoW64-Support",
]
DC_FEATURES = [
    "AD-Domain-Services",
    "DNS",
    "RSAT",
    "RSAT-Role-Tools",
    "RSAT-AD-Tools",
    "RSAT-AD-PowerShell",
    "RSAT-ADDS",
    "RSAT-DNS-Server",
    "GPMC",
]
BASE_SERVICES = {
    "WinRM": "Running",
    "LanmanServer": "Running",
    "LanmanWorkstation": "Running",
    "W32Time": "Running",
    "Dnscache": "Running",
    "MpsSvc": "Running",
    "RemoteRegistry": "Stopped",
}
DC_SERVICES = {"NTDS": "Running", "DNS": "Running", "Netlogon": "Running", "Kdc": "Running"}
BASE_FOLDERS = ["C:\\Windows", "C:\\Windows\\System32", "C:\\Users", "C:\\Program Files"]
BASE_RULES = [
    FirewallRule(
        name="WINRM-HTTP-In-TCP",
        display_name="Windows Remote Management (HTTP-In)",
        enabled=True,
        local_port="5985",
        group="Windows Remote Management",
    ),
    FirewallRule(
        name="FPS-SMB-In-TCP",
        display_name="File and Printer Sharing (SMB-In)",
        enabled=True,
        local_port="445",
        group="File and Printer Sharing",
    ),
    FirewallRule(
        name="FPS-ICMP4-ERQ-In",
        display_name="File and Printer Sharing (Echo Request - ICMPv4-In)",
        enabled=False,
        protocol="ICMPv4",
        group="File and Printer Sharing",
    ),
]


def _gateway(address: str) -> str | None:
    try:
        net = ipaddress.ip_interface(f"{address}/24").network
    except ValueError:
        return None
    return str(net.network_address + 2)


def _host(spec: LabSpec, index: int) -> Host:
    hs = spec.hosts[index]
    is_dc = hs.role is HostRole.dc
    address = hs.connection.address
    adapter = HostAdapter(
        alias="Ethernet0",
        description="Intel(R) 82574L Gigabit Network Connection",
        mac=f"00-0C-29-{index + 1:02X}-4A-{0x10 + index:02X}",
        ips=[IpAddress(address=f"{address}/24")],
        gateway=_gateway(address),
        dns=["127.0.0.1"] if is_dc else [],
    )
    host = Host(
        name=hs.name,
        address=address,
        role=hs.role.value,
        memory_total=hs.memory or DEFAULT_HOST_MEMORY,
        features=BASE_FEATURES + (DC_FEATURES if is_dc else []),
        services=dict(BASE_SERVICES) | (DC_SERVICES if is_dc else {}),
        domain=spec.domain.fqdn if is_dc else None,
        adapters={"Ethernet0": adapter},
        firewall={r.name: localized_rule(r, hs.locale) for r in BASE_RULES},
        host_octet=index + 1,
        locale=hs.locale,
    )
    for folder in BASE_FOLDERS:
        host.add_folder(folder)
    return host


def _directory(spec: LabSpec) -> Directory:
    d = spec.domain
    ad = Directory(fqdn=d.fqdn, netbios=d.netbios, dc=d.dc)
    ad.add_computer(d.dc, ou="OU=Domain Controllers")
    base = ad.base_dn
    ad.users["Administrator"] = AdUser(
        name="Administrator",
        sam_account_name="Administrator",
        distinguished_name=f"CN=Administrator,CN=Users,{base}",
    )
    for group, members in (("Domain Admins", ["Administrator"]), ("Domain Computers", [])):
        ad.groups[group] = AdGroup(
            name=group, members=members, distinguished_name=f"CN={group},CN=Users,{base}"
        )
    return ad


def _image_network(spec: LabSpec, image: str) -> list[str] | None:
    """What a Linux golden image configures on its adapters: the addresses the lab declares
    for the first VM made from it whose addresses come from the image (golden), or DHCP on
    every adapter for one whose come from DHCP [the lab file is the fleet's only source of
    what the image holds]."""
    for vm in spec.vms:
        if vm.disk.golden != image or vm.guest.os.value != "linux":
            continue
        source = vm.guest.addresses_from.value
        if source == "golden":
            return [str(n.ipv4) if n.ipv4 else "" for n in vm.nics]
        if source == "dhcp":
            return ["dhcp"] * max(len(vm.nics), 1)
    return None


def _reservations(spec: LabSpec) -> dict[str, str]:
    """The classroom LAN's DHCP reservations: each dhcp guest's NIC on an External switch
    that the lab gives an ipv4."""
    out: dict[str, str] = {}
    for vm in spec.vms:
        if vm.guest.addresses_from.value != "dhcp":
            continue
        switches = {s.name.lower(): s for s in spec.host(vm.host).switches}
        for nic in vm.nics:
            switch = switches.get(nic.switch.lower())
            if nic.ipv4 and switch is not None and switch.type.value == "External":
                out[f"{vm.name}/{nic.name}".lower()] = str(nic.ipv4)
    return out


def _place_golden(world: World, spec: LabSpec) -> None:
    world.dhcp_reservations = _reservations(spec)
    for image in spec.golden_images:
        path = norm_path(image.path)
        file = SimFile(
            path=path,
            size=image.size,
            vhd_type="Dynamic",
            virtual_size=max(image.size, 40 * 1024**3),
            os=image.os.value,
            generalized=image.sysprepped,
            network=_image_network(spec, image.name) if image.os.value == "linux" else None,
        )
        if path.startswith("\\\\"):
            _place_unc_golden(world, path, file)
            continue
        for hs in spec.hyperv_hosts:
            host = world.hosts[hs.name]
            host.put_file(file.model_copy())


def _place_unc_golden(world: World, path: str, file: SimFile) -> None:
    server_name, share_name, *rest = path[2:].split("\\")
    server = world.host(server_name)
    if server is None:
        return
    share = world.share(server.name, share_name)
    if share is None:
        share = Share(
            name=share_name,
            path=f"C:\\{share_name}",
            share_acl=[Ace(account="Everyone", right="Read")],
        )
        world.shares.setdefault(server.name, {})[share_name] = share
        server.add_folder(share.path)
    local = "\\".join([share.path, *rest])
    server.put_file(file.model_copy(update={"path": local}))


def world_from_spec(spec: LabSpec) -> World:
    """The lab before any automation: bare hosts, the domain on the DC, golden disks."""
    world = World(lab=spec.lab, ad=_directory(spec))
    for index, hs in enumerate(spec.hosts):
        world.hosts[hs.name] = _host(spec, index)
    dc = world.host(spec.domain.dc)
    if dc is not None:
        dc.add_folder("C:\\Windows\\SYSVOL\\sysvol")
        world.shares[dc.name] = {
            "NETLOGON": Share(
                name="NETLOGON",
                path=f"C:\\Windows\\SYSVOL\\sysvol\\{spec.domain.fqdn}\\SCRIPTS",
                share_acl=[Ace(account="Everyone", right="Read")],
            ),
            "SYSVOL": Share(
                name="SYSVOL",
                path="C:\\Windows\\SYSVOL\\sysvol",
                share_acl=[Ace(account="Everyone", right="Read")],
            ),
        }
    _place_golden(world, spec)
    return world


def localized_rule(rule: FirewallRule, locale: str) -> FirewallRule:
    """A copy of the built-in ``rule`` with the DisplayName and group a ``locale`` host shows."""
    display, group = localization.firewall_names(locale, rule.name, rule.display_name,
                                                 rule.group)
    return rule.model_copy(update={"display_name": display, "group": group})


def hyperv_rules(locale: str = localization.DEFAULT) -> list[FirewallRule]:
    """Firewall rules the Hyper-V role creates (the replica listeners disabled), as a
    ``locale`` host names them."""
    return [localized_rule(r, locale) for r in _hyperv_rules()]


def _hyperv_rules() -> list[FirewallRule]:
    return [
        FirewallRule(
            name="VIRT-HVRHTTPL-In-TCP-NoScope",
            display_name="Hyper-V Replica HTTP Listener (TCP-In)",
            local_port="80",
            group="Hyper-V Replica HTTP",
        ),
        FirewallRule(
            name="VIRT-HVRHTTPSL-In-TCP-NoScope",
            display_name="Hyper-V Replica HTTPS Listener (TCP-In)",
            local_port="443",
            group="Hyper-V Replica HTTPS",
        ),
        FirewallRule(
            name="VIRT-MIGL-In-TCP-NoScope",
            display_name=MIGRATION_RULE,
            enabled=True,
            local_port="6600",
            group="Hyper-V",
        ),
    ]


# ---------------------------------------------------------------- JSON view


def _vm_view(vm: Vm) -> dict[str, Any]:
    return {
        "id": vm.id,
        "state": vm.state,
        "path": vm.path,
        "config_location": vm.config_location,
        "disks": [{"path": d.path, "controller_type": d.controller_type} for d in vm.disks],
        "nics": [
            {"name": n.name, "switch": n.switch, "mac": n.mac, "legacy": n.legacy} for n in vm.nics
        ],
        "memory": vm.memory_startup,
        "generation": vm.generation,
        "processors": vm.processor_count,
        "checkpoints": [s.name for s in vm.snapshots],
    }


def _guest_view(vm: Vm) -> dict[str, Any]:
    g = vm.guest
    ips = {nic.name: g.ips.get(nic.mac, []) for nic in vm.nics}
    return {
        "os": g.os,
        "ips": ips,
        "users": sorted(g.users),
        "groups": {k: sorted(v) for k, v in g.groups.items()},
        "rdp_port": g.rdp_port,
        "services": {k: v.get("status", "") for k, v in g.services.items()},
        "nat_mappings": list(g.nat.port_mappings),
        "nat_interfaces": dict(g.nat.interfaces),
    }


def _unique(names: dict[str, Any], name: str) -> str:
    out, n = name, 2
    while out in names:
        out, n = f"{name}#{n}", n + 1
    return out


def _host_view(host: Host) -> dict[str, Any]:
    vms: dict[str, Any] = {}
    guests: dict[str, Any] = {}
    replication: dict[str, Any] = {}
    for vm in host.vms.values():
        key = _unique(vms, vm.name)
        vms[key] = _vm_view(vm)
        guests[key] = _guest_view(vm)
        if vm.replication:
            r = vm.replication
            replication[key] = {
                "mode": r.mode,
                "state": r.state,
                "health": r.health,
                "peer": r.replica if r.mode == "Primary" else r.primary,
                "frequency": r.frequency,
                "port": r.port,
            }
    return {
        "address": host.address,
        "domain": host.domain,
        "features": sorted(host.features),
        "pending_features": sorted(host.pending_features),
        "pending_reboot": host.pending_reboot,
        "memory_total": host.memory_total,
        "memory_free": host.memory_free(),
        "vms": vms,
        "switches": {
            s.name: {
                "type": s.type,
                "adapter": s.adapter,
                "allow_management_os": s.allow_management_os,
            }
            for s in host.switches.values()
        },
        "replication": replication,
        "guests": guests,
        "netnat": {n.name: n.model_dump() for n in host.netnat.values()},
        "vmhost": host.vmhost.model_dump(),
        "replica_server": host.replica_server.model_dump(),
        "firewall": {r.display_name: r.enabled for r in host.firewall.values()},
        "folders": sorted(host.folders.values()),
        "files": {f.path: f.size for f in host.files.values()},
        "services": dict(host.services),
    }


def state_json(world: World) -> dict[str, Any]:
    """The documented JSON view: hosts, shares, ad, counters, jobs."""
    return {
        "lab": world.lab,
        "hosts": {h.name: _host_view(h) for h in world.hosts.values()},
        "shares": {
            host: {
                s.name: {
                    "path": s.path,
                    "share_acl": [a.model_dump() for a in s.share_acl],
                    "ntfs_acl": _ntfs_view(world, host, s.path),
                }
                for s in shares.values()
            }
            for host, shares in world.shares.items()
        },
        "ad": {
            "computers": {
                c.name: {
                    "allowed_to_delegate_to": list(c.allowed_to_delegate_to),
                    "trusted_to_auth_for_delegation": c.trusted_to_auth_for_delegation,
                    "dns_host_name": c.dns_host_name,
                }
                for c in world.ad.computers.values()
            },
            "users": sorted(world.ad.users),
            "groups": {g.name: list(g.members) for g in world.ad.groups.values()},
        },
        "counters": {h: dict(c) for h, c in world.counters.items()},
        "jobs": {
            j.id: {
                "host": j.host,
                "kind": j.kind,
                "vm": j.vm_name,
                "state": j.state,
                "percent": j.percent,
                "error": j.error_description,
            }
            for j in world.jobs.values()
        },
    }


def _ntfs_view(world: World, host_name: str, path: str) -> list[dict[str, Any]]:
    host = world.host(host_name)
    if host is None:
        return []
    return [a.model_dump() for a in world.ntfs_acl(host, path)]
