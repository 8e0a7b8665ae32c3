"""Host networking: NetNat (WinNAT), NetSecurity (firewall), NetTCPIP, DnsClient, probes.

- NetNat: one NAT network per host (a second one fails like WinNAT does on Server), static
  port mappings (TCP/UDP) that :mod:`simulator.reachability` forwards.
- NetSecurity: the host's rules (``Host.firewall``), by Name / DisplayName / DisplayGroup /
  Group, with wildcards; New/Set/Enable/Disable/Remove; port filters.
- NetTCPIP / DnsClient: addresses, default gateway and DNS servers of ``Host.adapters``.
- Test-NetConnection / Test-Connection evaluate :func:`simulator.reachability.probe` from the
  host the command runs on.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

from simulator import reachability
from simulator.cmdlets.common import as_list
from simulator.core import Call, Registry
from simulator.pstypes import _enum, member, ps_object, u16, u32
from simulator.world import FirewallRule, Host, HostAdapter, IpAddress, NatMapping, NetNat

CIM = "Microsoft.Management.Infrastructure.CimInstance"
STD = "ROOT/StandardCimv2"
CIM_EXC = "Microsoft.Management.Infrastructure.CimException"
NS = "Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity."
Enabled = _enum(NS + "Enabled", {"True": 1, "False": 2})
Direction = _enum(NS + "Direction", {"Inbound": 1, "Outbound": 2})
Action = _enum(NS + "Action", {"NotConfigured": 0, "Allow": 2, "Block": 4})
NOT_FOUND = ("No {cls} objects found with property '{prop}' equal to '{value}'.  Verify the "
             "value of the property and retry.")  # fmt: skip
DUP_NAME = ("You were not connected because a duplicate name exists on the network. If joining "
            "a domain, go to System in Control Panel to change the computer name and try again. "
            "If joining a workgroup, choose another workgroup name.")  # fmt: skip
BAD_PARAMETER = "The parameter is incorrect."
COMMON_TCP = {"HTTP": 80, "RDP": 3389, "SMB": 445, "WINRM": 5985}


def register(registry: Registry) -> None:
    for name, fn in {
        "New-NetNat": new_netnat, "Get-NetNat": get_netnat, "Remove-NetNat": remove_netnat,
        "Add-NetNatStaticMapping": add_mapping, "Get-NetNatStaticMapping": get_mappings,
        "Remove-NetNatStaticMapping": remove_mapping,
        "Get-NetFirewallRule": get_rule, "Enable-NetFirewallRule": enable_rule,
        "Disable-NetFirewallRule": enable_rule, "Set-NetFirewallRule": set_rule,
        "New-NetFirewallRule": new_rule, "Remove-NetFirewallRule": remove_rule,
        "Get-NetFirewallPortFilter": get_port_filter,
        "Get-NetIPAddress": get_ipaddress, "New-NetIPAddress": new_ipaddress,
        "Remove-NetIPAddress": remove_ipaddress, "Get-NetIPConfiguration": get_ipconfiguration,
        "Get-DnsClientServerAddress": get_dns, "Set-DnsClientServerAddress": set_dns,
        "Test-NetConnection": test_netconnection, "Test-Connection": test_connection,
    }.items():  # fmt: skip
        registry.cmdlet(name)(fn)


# ---------------------------------------------------------------- shared


def _cim(cls: str, **props: Any) -> Any:
    return ps_object([f"{CIM}#{STD}/{cls}", CIM], **props)


def _cim_fail(call: Call, message: str, code: int, category: str, cls: str) -> None:
    call.fail(message, f"Windows System Error {code}", category, CIM_EXC, cls)


def _not_found(call: Call, cls: str, prop: str, value: Any) -> None:
    call.error(NOT_FOUND.format(cls=cls, prop=prop, value=value),
               f"CmdletizationQuery_NotFound_{prop}", "ObjectNotFound", str(value),
               CIM_EXC)  # fmt: skip


def _wild(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _truth(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "$true") if not isinstance(value, bool) else value


# ---------------------------------------------------------------- NetNat


def nat_object(nat: NetNat) -> Any:
    return _cim("MSFT_NetNat", Name=nat.name, ExternalIPInterfaceAddressPrefix=None,
                InternalIPInterfaceAddressPrefix=nat.internal_prefix, IcmpQueryTimeout=u32(30),
                TcpEstablishedConnectionTimeout=u32(1800), TcpTransientConnectionTimeout=u32(120),
                UdpIdleSessionTimeout=u32(120), Active=True, Store="Local",
                PSComputerName=None)  # fmt: skip


def mapping_object(nat: NetNat, m: NatMapping) -> Any:
    return _cim("MSFT_NetNatStaticMapping", StaticMappingID=u32(m.id), NatName=nat.name,
                Protocol=m.protocol.upper(), RemoteExternalIPAddressPrefix="0.0.0.0/0",
                ExternalIPAddress=m.external_ip, ExternalPort=u16(m.external_port),
                InternalIPAddress=m.internal_ip, InternalPort=u16(m.internal_port),
                InternalRoutingDomainId="{00000000-0000-0000-0000-000000000000}", Active=True,
                PSComputerName=None)  # fmt: skip


def new_netnat(call: Call) -> None:
    host = call.host
    name = str(call.get("Name"))
    prefix = str(call.get("InternalIPInterfaceAddressPrefix") or "")
    if any(n.lower() == name.lower() for n in host.netnat):
        _cim_fail(call, DUP_NAME, 52, "NotSpecified", "MSFT_NetNat")
    try:
        ipaddress.IPv4Network(prefix, strict=False)
    except ValueError:
        _cim_fail(call, BAD_PARAMETER, 87, "InvalidArgument", "MSFT_NetNat")
    if host.netnat:  # WinNAT on Server supports one NAT network per host
        _cim_fail(call, BAD_PARAMETER, 87, "InvalidArgument", "MSFT_NetNat")
    nat = NetNat(name=name, internal_prefix=str(ipaddress.IPv4Network(prefix, strict=False)))
    host.netnat[name] = nat
    call.out(nat_object(nat))


def _nats(call: Call, names: list[Any]) -> list[NetNat]:
    host = call.host
    if not names:
        return list(host.netnat.values())
    out = []
    for name in names:
        hits = [n for n in host.netnat.values() if _wild(str(name), n.name)]
        if not hits and not any(c in str(name) for c in "*?"):
            _not_found(call, "MSFT_NetNat", "Name", name)
        out += hits
    return out


def get_netnat(call: Call) -> None:
    for nat in _nats(call, as_list(call.get("Name"))):
        call.out(nat_object(nat))


def remove_netnat(call: Call) -> None:
    for nat in _nats(call, as_list(call.get("Name"))):
        call.host.netnat.pop(nat.name, None)


def add_mapping(call: Call) -> None:
    name = str(call.get("NatName"))
    nat = next((n for n in call.host.netnat.values() if n.name.lower() == name.lower()), None)
    if nat is None:
        _cim_fail(call, "The system cannot find the file specified.", 2, "ObjectNotFound",
                  "MSFT_NetNatStaticMapping")  # fmt: skip
    assert nat is not None
    proto = str(call.get("Protocol") or "TCP").upper()
    external_ip, external_port = str(call.get("ExternalIPAddress")), int(call.get("ExternalPort"))
    for m in nat.mappings:
        if (m.protocol.upper(), m.external_ip, m.external_port) == (
            proto,
            external_ip,
            external_port,
        ):
            _cim_fail(call, "The object already exists.", 5010, "ResourceExists",
                      "MSFT_NetNatStaticMapping")  # fmt: skip
    next_id = max((m.id for n in call.host.netnat.values() for m in n.mappings), default=-1) + 1
    mapping = NatMapping(protocol=proto, external_ip=external_ip, external_port=external_port,
                         internal_ip=str(call.get("InternalIPAddress")),
                         internal_port=int(call.get("InternalPort")), id=next_id)  # fmt: skip
    nat.mappings.append(mapping)
    call.out(mapping_object(nat, mapping))


def _selected_mappings(call: Call) -> list[tuple[NetNat, NatMapping]]:
    names = {str(n).lower() for n in as_list(call.get("NatName"))}
    ids = {int(i) for i in as_list(call.get("StaticMappingID"))}
    out = []
    for nat in call.host.netnat.values():
        for m in nat.mappings:
            if (not names or nat.name.lower() in names) and (not ids or m.id in ids):
                out.append((nat, m))
    return out


def get_mappings(call: Call) -> None:
    for nat, m in _selected_mappings(call):
        call.out(mapping_object(nat, m))


def remove_mapping(call: Call) -> None:
    found = _selected_mappings(call)
    if not found and call.has("StaticMappingID"):
        _not_found(call, "MSFT_NetNatStaticMapping", "StaticMappingID",
                   ",".join(str(i) for i in as_list(call.get("StaticMappingID"))))  # fmt: skip
    for nat, m in found:
        nat.mappings.remove(m)


# ---------------------------------------------------------------- NetSecurity


def rule_object(rule: FirewallRule) -> Any:
    return _cim(
        "MSFT_NetFirewallRule", Name=rule.name, ID=rule.name, DisplayName=rule.display_name,
        Description="", DisplayGroup=rule.group or None, Group=rule.group or None,
        Enabled=member(Enabled, "True" if rule.enabled else "False"), Profile="Any",
        Platform=[], Direction=member(Direction, rule.direction),
        Action=member(Action, rule.action), EdgeTraversalPolicy="Block",
        LooseSourceMapping=False, LocalOnlyMapping=False, Owner=None,
        PrimaryStatus="OK", Status="The rule was parsed successfully from the store. (65536)",
        EnforcementStatus="NotApplicable", PolicyStoreSource="PersistentStore",
        PolicyStoreSourceType="Local", PSComputerName=None,
    )  # fmt: skip


def port_filter_object(rule: FirewallRule) -> Any:
    """MSFT_NetProtocolPortFilter: LocalPort, RemotePort and IcmpType are ``string[]`` in the
    CIM class, so one port is still a one-element array on the wire."""
    ports = [p.strip() for p in rule.local_port.split(",") if p.strip()] or ["Any"]
    return _cim("MSFT_NetProtocolPortFilter", InstanceID=rule.name, Protocol=rule.protocol,
                LocalPort=ports, RemotePort=["Any"], IcmpType=["Any"],
                DynamicTarget="Any", PSComputerName=None)  # fmt: skip


def _rule_filters(call: Call) -> list[tuple[str, Callable[[FirewallRule], str], list[Any]]]:
    return [
        ("Name", lambda r: r.name, as_list(call.get("Name"))),
        ("DisplayName", lambda r: r.display_name, as_list(call.get("DisplayName"))),
        ("DisplayGroup", lambda r: r.group, as_list(call.get("DisplayGroup"))),
        ("Group", lambda r: r.group, as_list(call.get("Group"))),
    ]


def select_rules(call: Call) -> list[FirewallRule]:
    """Rules named by -Name/-DisplayName/-DisplayGroup/-Group, -InputObject or the pipeline."""
    host = call.host
    objects = as_list(call.get("InputObject")) + list(call.input)
    if objects:
        from simulator.pstypes import prop

        names = [str(prop(o, "Name") or prop(o, "InstanceID") or "") for o in objects]
        return [host.firewall[n] for n in names if n in host.firewall]
    rules = list(host.firewall.values())
    for prop_name, getter, patterns in _rule_filters(call):
        if not patterns:
            continue
        hits: list[FirewallRule] = []
        for pattern in patterns:
            found = [r for r in rules if _wild(str(pattern), getter(r))]
            if not found and not any(c in str(pattern) for c in "*?"):
                _not_found(call, "MSFT_NetFirewallRule", prop_name, pattern)
            hits += [r for r in found if r not in hits]
        rules = hits
    if call.has("Enabled") and call.name == "Get-NetFirewallRule":
        want = _truth(call.get("Enabled"))
        rules = [r for r in rules if r.enabled == want]
    return rules


def get_rule(call: Call) -> None:
    for rule in select_rules(call):
        call.out(rule_object(rule))


def enable_rule(call: Call) -> None:
    on = call.name == "Enable-NetFirewallRule"
    for rule in select_rules(call):
        rule.enabled = on
        if call.switch("PassThru"):
            call.out(rule_object(rule))


def _apply_rule_settings(call: Call, rule: FirewallRule) -> None:
    if call.has("Enabled"):
        rule.enabled = _truth(call.get("Enabled"))
    if call.has("LocalPort"):
        rule.local_port = ",".join(str(p) for p in as_list(call.get("LocalPort")))
    settings = (("Protocol", "protocol"), ("Action", "action"), ("Direction", "direction"),
                ("NewDisplayName", "display_name"))  # fmt: skip
    for param, attr in settings:
        if call.has(param):
            setattr(rule, attr, str(call.get(param)))


def set_rule(call: Call) -> None:
    for rule in select_rules(call):
        _apply_rule_settings(call, rule)
        if call.switch("PassThru"):
            call.out(rule_object(rule))


def new_rule(call: Call) -> None:
    host = call.host
    name = str(call.get("Name") or "{" + str(uuid.uuid4()) + "}")
    if name in host.firewall:
        _cim_fail(call, "Cannot create a file when that file already exists.", 183,
                  "ResourceExists", "MSFT_NetFirewallRule")  # fmt: skip
    rule = FirewallRule(name=name, display_name=str(call.get("DisplayName") or name),
                        enabled=True, group=str(call.get("Group") or ""),
                        protocol=str(call.get("Protocol") or "Any"))  # fmt: skip
    _apply_rule_settings(call, rule)
    host.firewall[name] = rule
    call.out(rule_object(rule))


def remove_rule(call: Call) -> None:
    for rule in select_rules(call):
        call.host.firewall.pop(rule.name, None)


def get_port_filter(call: Call) -> None:
    for rule in select_rules(call) if (call.input or call.has("AssociatedNetFirewallRule")) \
            else list(call.host.firewall.values()):  # fmt: skip
        call.out(port_filter_object(rule))


# ---------------------------------------------------------------- NetTCPIP / DnsClient


def if_index(host: Host, alias: str) -> int:
    names = list(host.adapters)
    return 4 + 3 * names.index(alias) if alias in names else 0


def _adapters(call: Call, *, report: bool = True) -> list[HostAdapter]:
    host = call.host
    aliases = as_list(call.get("InterfaceAlias"))
    indexes = {int(i) for i in as_list(call.get("InterfaceIndex"))}
    out = list(host.adapters.values())
    if aliases:
        out = [a for a in out if any(_wild(str(p), a.alias) for p in aliases)]
        if not out and report:
            _not_found(call, "MSFT_NetIPInterface", "InterfaceAlias", aliases[0])
    if indexes:
        out = [a for a in out if if_index(host, a.alias) in indexes]
        if not out and report:
            _not_found(call, "MSFT_NetIPInterface", "InterfaceIndex", sorted(indexes)[0])
    return out


def ip_object(host: Host, adapter: HostAdapter, ip: IpAddress) -> Any:
    address, _, prefix = ip.address.partition("/")
    index = u32(if_index(host, adapter.alias))
    return _cim("MSFT_NetIPAddress", IPAddress=address, InterfaceIndex=index,
                InterfaceAlias=adapter.alias, AddressFamily="IPv4", Type="Unicast",
                PrefixLength=int(prefix or 32), PrefixOrigin=ip.origin, SuffixOrigin=ip.origin,
                AddressState="Preferred", SkipAsSource=False, PolicyStore="ActiveStore",
                PSComputerName=None)  # fmt: skip


def get_ipaddress(call: Call) -> None:
    host = call.host
    wanted = [str(a) for a in as_list(call.get("IPAddress"))]
    family = str(call.get("AddressFamily") or "IPv4")
    found = False
    for adapter in _adapters(call):
        for ip in adapter.ips:
            if wanted and not any(_wild(w, ip.address.split("/")[0]) for w in wanted):
                continue
            found = True
            if family.lower() == "ipv4":
                call.out(ip_object(host, adapter, ip))
    if wanted and not found:
        _not_found(call, "MSFT_NetIPAddress", "IPAddress", wanted[0])


def new_ipaddress(call: Call) -> None:
    host = call.host
    adapters = _adapters(call, report=False)
    if not adapters:
        call.fail(NOT_FOUND.format(cls="MSFT_NetIPInterface", prop="InterfaceAlias",
                                   value=call.get("InterfaceAlias") or call.get("InterfaceIndex")),
                  "CmdletizationQuery_NotFound_InterfaceAlias", "ObjectNotFound",
                  CIM_EXC)  # fmt: skip
    adapter = adapters[0]
    address = str(call.get("IPAddress"))
    prefix = int(call.get("PrefixLength") or 24)
    in_use = [
        a for a in host.adapters.values() for ip in a.ips if ip.address.split("/")[0] == address
    ]
    if in_use:
        _cim_fail(call, "Instance MSFT_NetIPAddress already exists", 87, "InvalidArgument",
                  "MSFT_NetIPAddress")  # fmt: skip
    gateway = call.get("DefaultGateway")
    if gateway and adapter.gateway:
        _cim_fail(call, "Instance DefaultGateway already exists", 87, "InvalidArgument",
                  "MSFT_NetRoute")  # fmt: skip
    ip = IpAddress(address=f"{address}/{prefix}")
    adapter.ips.append(ip)
    if gateway:
        adapter.gateway = str(gateway)
    call.out(ip_object(host, adapter, ip))


def remove_ipaddress(call: Call) -> None:
    wanted = {str(a) for a in as_list(call.get("IPAddress"))}
    for adapter in _adapters(call):
        adapter.ips = [ip for ip in adapter.ips if ip.address.split("/")[0] not in wanted]


def dns_object(host: Host, adapter: HostAdapter) -> Any:
    return _cim("MSFT_DNSClientServerAddress", InterfaceAlias=adapter.alias,
                InterfaceIndex=u32(if_index(host, adapter.alias)), AddressFamily=u16(2),
                ServerAddresses=list(adapter.dns), PSComputerName=None)  # fmt: skip


def get_dns(call: Call) -> None:
    for adapter in _adapters(call):
        call.out(dns_object(call.host, adapter))


def set_dns(call: Call) -> None:
    adapters = _adapters(call)
    servers = [str(s) for s in as_list(call.get("ServerAddresses"))]
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            _cim_fail(call, BAD_PARAMETER, 87, "InvalidArgument", "MSFT_DNSClientServerAddress")
    for adapter in adapters:
        adapter.dns = [] if call.switch("ResetServerAddresses") else servers


def get_ipconfiguration(call: Call) -> None:
    host = call.host
    for adapter in _adapters(call):
        if adapter.bound_to_switch:
            continue
        gateways = [_cim("MSFT_NetRoute", DestinationPrefix="0.0.0.0/0", NextHop=adapter.gateway,
                         InterfaceAlias=adapter.alias)] if adapter.gateway else []  # fmt: skip
        call.out(ps_object(
            ["NetIPConfiguration"], ComputerName=host.name, InterfaceAlias=adapter.alias,
            InterfaceIndex=if_index(host, adapter.alias), InterfaceDescription=adapter.description,
            IPv4Address=[ip_object(host, adapter, ip) for ip in adapter.ips],
            IPv4DefaultGateway=gateways, DNSServer=[dns_object(host, adapter)],
            NetAdapter=None,
        ))  # fmt: skip


# ---------------------------------------------------------------- probes


def _target_port(call: Call) -> int | None:
    if call.has("Port"):
        return int(call.get("Port"))
    common = call.get("CommonTCPPort")
    return COMMON_TCP.get(str(common).upper()) if common else None


def test_netconnection(call: Call) -> None:
    name = str(call.get("ComputerName") or "internetbeacon.msedge.net")
    port = _target_port(call)
    quiet = str(call.get("InformationLevel") or "").lower() == "quiet"
    address = reachability.resolve_name(call.world, name)
    if address is None:
        call.warning(f"Name resolution of {name} failed")
        call.out(False if quiet else _tnc_object(name, None, port, None))
        return
    result = reachability.probe(call.world, call.sim.clock.now(), call.host, address, port,
                                offline=call.sim.offline_hosts())
    if port is not None and not result.tcp:
        call.warning(f"TCP connect to ({address} : {port}) failed")
    if (port is None or not result.tcp) and not result.ping:
        call.warning(f"Ping to {address} failed with status: TimedOut")
    if quiet:
        call.out(result.tcp if port is not None else result.ping)
        return
    call.out(_tnc_object(name, address, port, result))


def _tnc_object(name: str, address: str | None, port: int | None,
                result: reachability.Probe | None) -> Any:  # fmt: skip
    props: dict[str, Any] = {
        "ComputerName": name, "RemoteAddress": address,
        "InterfaceAlias": result.interface_alias if result else None,
        "SourceAddress": result.source_address if result else None,
        "NameResolutionSucceeded": address is not None,
        "PingSucceeded": bool(result and result.ping),
    }  # fmt: skip
    if port is not None:
        props |= {"RemotePort": port, "TcpTestSucceeded": bool(result and result.tcp)}
    return ps_object(["TestNetConnectionResult"], **props)


def test_connection(call: Call) -> None:
    count = int(call.get("Count") or 4)
    for name in as_list(call.get("ComputerName")):
        address = reachability.resolve_name(call.world, str(name))
        ok = (
            address is not None
            and reachability.probe(call.world, call.sim.clock.now(), call.host, address,
                                   offline=call.sim.offline_hosts()).ping
        )
        if call.switch("Quiet"):
            call.out(ok)
            continue
        if not ok:
            call.error(f"Testing connection to computer '{name}' failed: Error due to lack of "
                       "resources", "TestConnectionException", "ResourceUnavailable", str(name),
                       "System.Net.NetworkInformation.PingException")  # fmt: skip
            continue
        for _ in range(count):
            call.out(ps_object(
                ["System.Management.ManagementObject#root\\cimv2\\Win32_PingStatus"],
                Address=str(name), IPV4Address=address, ProtocolAddress=address,
                ResponseTime=u32(1), StatusCode=u32(0), Source=call.host.name,
                BufferSize=u32(32),
            ))  # fmt: skip
