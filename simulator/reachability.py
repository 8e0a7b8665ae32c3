"""Which address and port answers from where: the simulated fleet's IP network.

Layer 2: every host adapter and every running VM's NIC sits on a *segment*. External switches
and the hosts' physical adapters share the physical LAN (``"lan"``); each Internal or Private
switch is its own segment per host (``"SVR1/Internal"``).

Layer 3: addresses come from the host adapters (``HostAdapter.ips``) and from the guests
(``Guest.ips`` by MAC). A sender delivers on-link when the destination is inside one of its
interface prefixes, else to its default gateway, which must be on-link and must route. Routers
are guests running RRAS (``Guest.nat.installed`` and the RemoteAccess service Running) and
Hyper-V hosts with a WinNAT network (``Host.netnat``):

- a NAT router rewrites the destination of packets that reach its public (``full``) interface
  address on a mapped protocol/port (RRAS portmapping, ``Add-NetNatStaticMapping``);
- traffic it forwards from a private to the public side leaves with its public address;
- a port-forwarded reply must travel back through the router that translated it (so the
  private server needs that router as its default gateway).

Layer 4: a TCP port answers when a service listens on it and the target's firewall lets it in
(hosts: enabled inbound Allow rules; Windows 2016+ guests: ``Guest.firewall_ports``; Windows
Server 2003 guests: firewall off [INF]). ICMP echo follows the same firewall rules.

A node is down while its host reboots or is off the network (a ``down`` fault: the host and the
VMs it runs, as if its cables were pulled), while the VM is not Running, before a Windows guest has
booted (heartbeat not ready yet) and during a live-migration blackout.

Public API (used by the NetTCPIP cmdlets and available to other simulator modules):
:func:`probe`, :func:`tcp_open`, :func:`resolve_name`, :func:`host_addresses`,
:func:`guest_adapter_name`, :func:`guest_listening_ports`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from simulator.world import Guest, Host, Vm, World

LAN = "lan"
MAX_HOPS = 8
DC_PORTS = {53, 88, 135, 389, 445, 464, 636, 3268, 3269, 9389}
TERMINAL_SERVER_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server"

Node = tuple[str, str]  # ("host", host name) or ("vm", VM id)


@dataclass(frozen=True)
class Iface:
    node: Node
    segment: str
    address: ipaddress.IPv4Interface
    gateway: str | None
    name: str

    @property
    def ip(self) -> str:
        return str(self.address.ip)


@dataclass(frozen=True)
class Probe:
    """The outcome of reaching ``remote_address`` (and ``port``) from a source node."""

    remote_address: str
    port: int | None
    ping: bool  # ICMP echo answered (route both ways, firewall allows echo)
    tcp: bool  # TCP port accepted (False when no port was asked)
    reason: str  # why it failed ("" on success)
    source_address: str | None = None
    interface_alias: str | None = None
    target: str | None = None  # "host:SVR1" / "vm:win2003-2"


@dataclass
class _Net:
    world: World
    now: float
    ifaces: list[Iface] = field(default_factory=list)

    def of(self, node: Node) -> list[Iface]:
        return [i for i in self.ifaces if i.node == node]

    def owner(self, ip: str, segment: str | None = None) -> Iface | None:
        for iface in self.ifaces:
            if iface.ip == ip and (segment is None or iface.segment == segment):
                return iface
        return None


# ---------------------------------------------------------------- building the network


def _net(world: World, now: float, offline: frozenset[str] = frozenset()) -> _Net:
    net = _Net(world, now)
    for host in world.hosts.values():
        if host.rebooting or host.name.upper() in offline:
            continue
        net.ifaces += _host_ifaces(host)
        for vm in host.vms.values():
            if vm_up(vm, now):
                net.ifaces += _vm_ifaces(host, vm)
    return net


def _segment(host: Host, switch_name: str | None) -> str | None:
    if switch_name is None:
        return None
    switch = host.switch(switch_name)
    if switch is None:
        return None
    return LAN if switch.type == "External" else f"{host.name}/{switch.name}"


def _host_ifaces(host: Host) -> list[Iface]:
    out = []
    for adapter in host.adapters.values():
        if adapter.status != "Up" or adapter.bound_to_switch:
            continue
        segment = _segment(host, adapter.virtual_switch) if adapter.virtual_switch else LAN
        if segment is None:
            continue
        for ip in adapter.ips:
            iface = _iface(("host", host.name), segment, ip.address, adapter.gateway, adapter.alias)
            if iface is not None:
                out.append(iface)
    return out


def host_addresses(host: Host) -> list[ipaddress.IPv4Interface]:
    """The host's own addresses: Up adapters not bound to an External switch (physical NICs and
    the management OS's vEthernet vNICs), as the network sees them."""
    return [iface.address for iface in _host_ifaces(host)]


def _vm_ifaces(host: Host, vm: Vm) -> list[Iface]:
    out = []
    for index, nic in enumerate(vm.nics):
        segment = _segment(host, nic.switch)
        if segment is None:
            continue
        name = guest_adapter_name(vm, index)
        for address in vm.guest.ips.get(nic.mac, []):
            gateway = vm.guest.gateways.get(nic.mac)
            iface = _iface(("vm", vm.id), segment, address, gateway, name)
            if iface is not None:
                out.append(iface)
    return out


def _iface(node: Node, segment: str, address: str, gateway: str | None, name: str) -> Iface | None:
    try:
        parsed = ipaddress.IPv4Interface(address if "/" in address else f"{address}/32")
    except ValueError:
        return None
    return Iface(node, segment, parsed, gateway or None, name)


def vm_up(vm: Vm, now: float) -> bool:
    """The guest's network stack is up: Running, booted, not in a migration blackout."""
    if vm.state != "Running" or vm.blackout_until > now:
        return False
    return vm.ready_at is None or now >= vm.ready_at


def guest_adapter_name(vm: Vm, index: int) -> str:
    """The guest's connection name for the VM's ``index``-th NIC (renamed, else the default)."""
    nic = vm.nics[index]
    named = vm.guest.adapter_names.get(nic.mac)
    if named:
        return named
    base = "Local Area Connection" if vm.guest.os == "windows-legacy" else "Ethernet"
    if vm.guest.os == "linux":
        return f"eth{index}"
    return base if index == 0 else f"{base} {index + 1}"


# ---------------------------------------------------------------- routers and NAT


@dataclass(frozen=True)
class _Mapping:
    protocol: str
    public_ip: str  # "0.0.0.0" = any address of the public interface
    public_port: int
    private_ip: str
    private_port: int


@dataclass(frozen=True)
class _Router:
    public: tuple[str, ...]  # public interface addresses
    private: tuple[str, ...]  # private interface addresses
    mappings: tuple[_Mapping, ...]


def _router(net: _Net, node: Node) -> _Router | None:
    kind, ident = node
    if kind == "vm":
        found = net.world.find_vm(ident)
        return _rras(net, found[1]) if found else None
    host = net.world.host(ident)
    return _winnat(net, host) if host is not None and host.netnat else None


def _rras(net: _Net, vm: Vm) -> _Router | None:
    nat = vm.guest.nat
    service = vm.guest.services.get("RemoteAccess", {})
    if not nat.installed or service.get("status") != "Running":
        return None
    modes = {name.lower(): mode.lower() for name, mode in nat.interfaces.items()}
    public: list[str] = []
    private: list[str] = []
    for iface in net.of(("vm", vm.id)):
        mode = modes.get(iface.name.lower())
        (public if mode == "full" else private).append(iface.ip)
    mappings = tuple(_rras_mapping(m) for m in nat.port_mappings)
    return _Router(tuple(public), tuple(private), mappings)


def _rras_mapping(m: dict[str, Any]) -> _Mapping:
    return _Mapping(
        protocol=str(m.get("protocol", "tcp")).lower(),
        public_ip=str(m.get("public_ip", "0.0.0.0")),
        public_port=int(m["public_port"]),
        private_ip=str(m["private_ip"]),
        private_port=int(m["private_port"]),
    )


def _winnat(net: _Net, host: Host) -> _Router:
    prefixes = [ipaddress.IPv4Network(n.internal_prefix, strict=False)
                for n in host.netnat.values()]  # fmt: skip
    public: list[str] = []
    private: list[str] = []
    for iface in net.of(("host", host.name)):
        inside = any(iface.address.ip in p for p in prefixes)
        (private if inside else public).append(iface.ip)
    mappings = tuple(
        _Mapping(m.protocol.lower(), m.external_ip, m.external_port, m.internal_ip,
                 m.internal_port)
        for n in host.netnat.values() for m in n.mappings
    )  # fmt: skip
    return _Router(tuple(public), tuple(private), mappings)


def _dnat(router: _Router, dst: str, port: int | None, proto: str) -> tuple[str, int | None]:
    if dst not in router.public or port is None:
        return dst, port
    for m in router.mappings:
        if m.protocol == proto and m.public_port == port and m.public_ip in ("0.0.0.0", dst):
            return m.private_ip, m.private_port
    return dst, port


# ---------------------------------------------------------------- forwarding


@dataclass
class _Path:
    ok: bool
    reason: str = ""
    target: Node | None = None
    dst: str = ""
    port: int | None = None
    src: str = ""  # the source address the target sees
    out_iface: Iface | None = None
    translated_by: Node | None = None  # router that rewrote the destination
    routers: list[Node] = field(default_factory=list)


def _next_hop(net: _Net, node: Node, dst: str) -> tuple[Iface, str] | str:
    """(outgoing interface, next-hop address) or the reason there is none."""
    ip = ipaddress.IPv4Address(dst)
    mine = net.of(node)
    for iface in mine:
        if ip in iface.address.network and iface.address.network.prefixlen < 32:
            return iface, dst
    for iface in mine:
        if iface.gateway and ipaddress.IPv4Address(iface.gateway) in iface.address.network:
            return iface, iface.gateway
    return "no route to the destination" if mine else "the source has no network address"


def _forward(net: _Net, src: Node, dst: str, port: int | None, proto: str) -> _Path:
    path = _Path(ok=False, dst=dst, port=port)
    node: Node = src
    first = True
    for _ in range(MAX_HOPS):
        owner = net.owner(path.dst)
        if owner is not None and owner.node == node:
            path.ok, path.target = True, node
            return path
        hop = _next_hop(net, node, path.dst)
        if isinstance(hop, str):
            path.reason = hop
            return path
        out, next_ip = hop
        if first:
            path.out_iface, path.src, first = out, out.ip, False
        nxt = net.owner(next_ip, out.segment)
        if nxt is None:
            path.reason = f"{next_ip} does not answer on the segment"
            return path
        arrived = _arrive(net, path, nxt, proto)
        if arrived is None:
            return path
        node = arrived
    path.reason = "routing loop"
    return path


def _arrive(net: _Net, path: _Path, nxt: Iface, proto: str) -> Node | None:
    """The packet reaches ``nxt``'s node: delivered, translated, forwarded or dropped."""
    owns_dst = any(i.ip == path.dst for i in net.of(nxt.node))
    router = _router(net, nxt.node)
    if owns_dst:
        if router is not None:
            new_dst, new_port = _dnat(router, path.dst, path.port, proto)
            if (new_dst, new_port) != (path.dst, path.port):
                path.dst, path.port, path.translated_by = new_dst, new_port, nxt.node
                path.routers.append(nxt.node)
                return nxt.node
        path.ok, path.target = True, nxt.node
        return None
    if router is None:
        path.reason = f"{nxt.ip} does not route"
        return None
    path.routers.append(nxt.node)
    if nxt.ip in router.private and _leaves_public(net, router, nxt.node, path.dst):
        path.src = router.public[0]
    return nxt.node


def _leaves_public(net: _Net, router: _Router, node: Node, dst: str) -> bool:
    hop = _next_hop(net, node, dst)
    return not isinstance(hop, str) and hop[0].ip in router.public


def _reply_ok(net: _Net, path: _Path) -> str:
    """Reason the reply cannot get back ("" when it can)."""
    assert path.target is not None
    back = _forward(net, path.target, path.src, None, "icmp")
    if not back.ok:
        return f"no return route from {path.dst}: {back.reason}"
    if path.translated_by is not None and path.translated_by not in back.routers:
        return f"the reply from {path.dst} bypasses the NAT router"
    return ""


# ---------------------------------------------------------------- services and firewalls


def _port_matches(spec: str, port: int) -> bool:
    for part in str(spec).replace(" ", "").split(","):
        if part.lower() == "any":
            return True
        low, _, high = part.partition("-")
        if low.isdigit() and (high or low).isdigit() and int(low) <= port <= int(high or low):
            return True
    return False


def host_listening_ports(host: Host) -> set[int]:
    running = {k.lower() for k, v in host.services.items() if v == "Running"}
    ports: set[int] = set()
    if "winrm" in running:
        ports.add(5985)
    if "lanmanserver" in running:
        ports.add(445)
    if host.role == "dc":
        ports |= DC_PORTS
    if host.has_feature("Hyper-V") and "vmms" in running:
        if host.vmhost.migration_enabled:
            ports.add(6600)
        rs = host.replica_server
        if rs.enabled and rs.auth in ("Kerberos", "CertificateAndKerberos"):
            ports.add(rs.kerberos_port)
        if rs.enabled and rs.auth in ("Certificate", "CertificateAndKerberos"):
            ports.add(rs.certificate_port)
    return ports


def host_firewall_allows(host: Host, proto: str, port: int | None) -> bool:
    if proto == "tcp" and host.role == "dc" and port in DC_PORTS:
        return True  # the AD DS role's rules (not modelled individually)
    for rule in host.firewall.values():
        if not rule.enabled or rule.direction != "Inbound" or rule.action != "Allow":
            continue
        if proto == "icmp" and rule.protocol.lower() in ("icmpv4", "any"):
            return True
        tcp_rule = proto == "tcp" and rule.protocol.upper() in ("TCP", "ANY")
        if tcp_rule and port is not None and _port_matches(rule.local_port, port):
            return True
    return False


def guest_listening_ports(guest: Guest) -> set[int]:
    def running(name: str) -> bool:
        return guest.services.get(name, {}).get("status") == "Running"

    ports: set[int] = set()
    if running("TlntSvr"):
        ports.add(23)
    if running("sshd"):
        ports.add(22)
    rdp = guest_rdp_listen_port(guest)
    if rdp is not None:
        ports.add(rdp)
    return ports


def guest_rdp_listen_port(guest: Guest) -> int | None:
    """The port TermService listens on: read from the registry when the service started."""
    service = guest.services.get("TermService", {})
    if guest.os == "linux" or service.get("status") != "Running":
        return None
    deny = guest.registry.get(TERMINAL_SERVER_KEY, {}).get("fDenyTSConnections", 1)
    if int(deny) != 0:
        return None
    if service.get("port"):
        return int(service["port"])
    return guest.rdp_port


def guest_firewall_allows(guest: Guest, proto: str, port: int | None) -> bool:
    if guest.os != "windows":
        return True  # 2003 guests: Windows Firewall off [INF]; Linux: no firewall modelled
    opened = {p.upper() for p in guest.firewall_ports}
    if proto == "icmp":
        return "ICMPV4" in opened
    return f"TCP:{port}" in opened


def _service_reason(net: _Net, node: Node, proto: str, port: int | None) -> str:
    kind, ident = node
    if kind == "host":
        host = net.world.host(ident)
        assert host is not None
        listening = proto == "icmp" or port in host_listening_ports(host)
        allowed = host_firewall_allows(host, proto, port)
    else:
        found = net.world.find_vm(ident)
        assert found is not None
        guest = found[1].guest
        listening = proto == "icmp" or port in guest_listening_ports(guest)
        allowed = guest_firewall_allows(guest, proto, port)
    if not listening:
        return f"nothing listens on TCP {port}"
    return "" if allowed else "blocked by the firewall"


# ---------------------------------------------------------------- API


def node_name(world: World, node: Node) -> str:
    kind, ident = node
    if kind == "vm":
        found = world.find_vm(ident)
        return f"vm:{found[1].name}" if found else f"vm:{ident}"
    return f"host:{ident}"


def resolve_name(world: World, name: str) -> str | None:
    """An IPv4 literal, or a host's short name / FQDN (DNS on the DC); guests are not in DNS."""
    try:
        return str(ipaddress.IPv4Address(name.strip()))
    except ValueError:
        pass
    host = world.host(name)
    return host.address if host is not None else None


def _source(source: Host | tuple[Host, Vm]) -> Node:
    if isinstance(source, tuple):
        return ("vm", source[1].id)
    return ("host", source.name)


def probe(world: World, now: float, source: Host | tuple[Host, Vm], address: str,
          port: int | None = None, protocol: str = "tcp",
          offline: frozenset[str] = frozenset()) -> Probe:  # fmt: skip
    """Ping ``address`` and, with ``port``, try a TCP connection to it from ``source``;
    ``offline``: upper-case names of hosts off the network (``Sim.offline_hosts``)."""
    net = _net(world, now, offline)
    src = _source(source)
    ping = _attempt(net, src, address, None, "icmp")
    tcp = _attempt(net, src, address, port, protocol.lower()) if port is not None else None
    main = tcp if tcp is not None else ping
    return Probe(
        remote_address=address, port=port, ping=ping.ok and not ping.reason,
        tcp=bool(tcp and tcp.ok and not tcp.reason), reason=main.reason,
        source_address=main.src or None,
        interface_alias=main.out_iface.name if main.out_iface else None,
        target=node_name(world, main.target) if main.target else None,
    )  # fmt: skip


def _attempt(net: _Net, src: Node, address: str, port: int | None, proto: str) -> _Path:
    path = _forward(net, src, address, port, proto)
    if not path.ok:
        return path
    assert path.target is not None
    path.reason = _service_reason(net, path.target, proto, path.port)
    if not path.reason and path.target != src:
        path.reason = _reply_ok(net, path)
    if path.reason:
        path.ok = False
    return path


def tcp_open(world: World, now: float, source: Host | tuple[Host, Vm], address: str,
             port: int, offline: frozenset[str] = frozenset()) -> bool:  # fmt: skip
    """Does a TCP connection from ``source`` to ``address:port`` succeed?"""
    return probe(world, now, source, address, port, offline=offline).tcp
