"""Host networking and the reachability model, driven over WinRM with the real pypsrp client.

The seed lab's guest network is built in-process (fast), configured offline (the path for the
Windows Server 2003 guests), and checked with Test-NetConnection / host/test-port from SVR1.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import pytest
from pypsrp.complex_objects import RunspacePoolState
from pypsrp.exceptions import WSManFaultError

from simulator import reachability
from simulator.engine import Sim
from simulator.fleet import Fleet
from simulator.world import SimFile
from tests.sim.conftest import GB, MB, Result, hyperv_ready, run

TELNET_USER = ("teluser", "Tel-P@ss1")
SEED_VMS: dict[str, list[tuple[str, str, str]]] = {
    "win2003-1": [("External", "External", "00155D0101A1"),
                  ("Internal", "Internal", "00155D0101A2"),
                  ("Internal2", "Internal2", "00155D0101A3")],
    "win2003-2": [("Internal", "Internal", "00155D0102A1")],
    "win2003-3": [("Internal2", "Internal2", "00155D0103A1")],
}  # fmt: skip
SEED_CONFIG: dict[str, dict[str, Any]] = {
    "win2003-1": {
        "nics": [
            {"mac": "00155D0101A1", "name": "External", "ip": "192.168.1.111", "prefix": 24,
             "gateway": "192.168.1.2", "dns": ["8.8.8.8"]},
            {"mac": "00155D0101A2", "name": "Internal", "ip": "10.10.10.1", "prefix": 24},
            {"mac": "00155D0101A3", "name": "Internal2", "ip": "10.10.20.1", "prefix": 24},
        ],
        "nat": {"public": "External", "private": ["Internal", "Internal2"],
                "mappings": ["tcp:23:10.10.10.2:23", "tcp:35000:10.10.20.2:35000"]},
    },
    "win2003-2": {
        "nics": [{"mac": "00155D0102A1", "name": "Internal", "ip": "10.10.10.2", "prefix": 24,
                  "gateway": "10.10.10.1"}],
        "users": [{"name": "teluser", "groups": ["TelnetClients"]}],
        "telnet": {"enabled": True},
    },
    "win2003-3": {
        "nics": [{"mac": "00155D0103A1", "name": "Internal2", "ip": "10.10.20.2", "prefix": 24,
                  "gateway": "10.10.20.1"}],
        "rdp": {"port": 35000},
    },
}  # fmt: skip
WINDOWS_GOLDEN = "C:\\Golden\\ws2022.vhdx"


# ---------------------------------------------------------------- pypsrp helper


@dataclass
class Reply:
    output: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    had_errors: bool = False


class Remote:
    """A pypsrp RunspacePool to one simulated host (cmdlets), plus packaged scripts.

    Packaged scripts run through the host's handler in-process (same binder and
    implementation, no WinRM round trip); test_packaged_script_over_pypsrp sends one over
    pypsrp as hvlab's SessionPool does.
    """

    def __init__(self, fleet: Fleet, host: str) -> None:
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        ep = fleet.endpoints[host]
        self.fleet, self.host = fleet, host
        self.wsman = WSMan(ep["address"], port=ep["port"], username=ep["username"],
                           password=ep["password"], ssl=False, auth="ntlm",
                           cert_validation=False, connection_timeout=5, read_timeout=30)  # fmt: skip
        self._pool = RunspacePool(self.wsman)

    @property
    def pool(self) -> Any:
        """Opened on first use, so set-up reboots done in-process come before the shell (a
        reboot ends the shells of the old boot)."""
        if self._pool.state == RunspacePoolState.BEFORE_OPEN:
            self._pool.open()
        return self._pool

    def cmd(self, name: str, **params: Any) -> Reply:
        from pypsrp.powershell import PowerShell

        ps = PowerShell(self.pool)
        ps.add_cmdlet(name)
        for key, value in params.items():
            if value is None:
                ps.add_parameter(key)
            else:
                ps.add_parameter(key, value)
        output = ps.invoke()
        return Reply(output=list(output), errors=[str(e) for e in ps.streams.error],
                     error_ids=[e.fq_error for e in ps.streams.error],
                     warnings=[str(getattr(w, "message", w)) for w in ps.streams.warning],
                     had_errors=ps.had_errors)  # fmt: skip

    def script(self, name: str, **params: Any) -> Reply:
        return run_script(self.fleet.sim, self.host, name, **params)

    def reconnect(self) -> None:
        """A new shell, as a client needs after the host rebooted."""
        from pypsrp.powershell import RunspacePool

        self.close()
        self._pool = RunspacePool(self.wsman)

    def close(self) -> None:
        if self._pool.state != RunspacePoolState.BEFORE_OPEN:
            with contextlib.suppress(WSManFaultError):  # its shell died with a reboot
                self._pool.close()


def script_text(name: str) -> str:
    return resources.files("hvlab.powershell").joinpath(f"scripts/{name}.ps1").read_text()


def run_script(sim: Sim, host: str, name: str, **params: Any) -> Reply:
    """A packaged script on ``host`` (switches as None); terminating errors become errors."""
    from simulator.protocol import CommandCall, Parameter
    from tests.sim.conftest import run_pipeline

    command = CommandCall(script_text(name), True,
                          tuple(Parameter(k, v) for k, v in params.items()))  # fmt: skip
    result = run_pipeline(sim, host, command)
    errors, ids = list(result.errors), list(result.error_ids)
    if result.terminating is not None:
        errors.append(result.terminating.message)
        ids.append(result.terminating.error_id)
    return Reply(output=result.output, errors=errors, error_ids=ids, warnings=result.warnings,
                 had_errors=bool(errors))  # fmt: skip


def credential(user: str, password: str) -> Any:
    from psrpcore.types import PSCredential, PSSecureString

    return PSCredential(UserName=user, Password=PSSecureString(password))


@pytest.fixture
def svr1(fleet: Fleet) -> Iterator[Remote]:
    remote = Remote(fleet, "SVR1")
    yield remote
    remote.close()


def value(obj: Any, name: str) -> Any:
    props = {**getattr(obj, "adapted_properties", {}), **getattr(obj, "extended_properties", {})}
    return props.get(name)


# ---------------------------------------------------------------- the seed lab's guests


def seed_guests(sim: Sim, host: str = "SVR1") -> None:
    """Hyper-V ready on ``host`` and the three win2003 VMs (off) with static MACs."""
    hyperv_ready(sim, host)
    for vm, nics in SEED_VMS.items():
        disk = f"C:\\Hyper-V\\VHDs\\{vm}.vhdx"
        assert run(sim, host, "Copy-Item", Path="C:\\Golden\\win2003-sysprep.vhdx",
                   Destination=disk).ok  # fmt: skip
        assert run(sim, host, "New-VM", Name=vm, Generation=1, MemoryStartupBytes=512 * MB,
                   VHDPath=disk).ok  # fmt: skip
        assert run(sim, host, "Remove-VMNetworkAdapter", VMName=vm).ok
        for name, switch, mac in nics:
            assert run(sim, host, "Add-VMNetworkAdapter", VMName=vm, Name=name, SwitchName=switch,
                       IsLegacy=True, StaticMacAddress=mac).ok  # fmt: skip


def offline_config(sim: Sim, vm: str, config: dict[str, Any], host: str = "SVR1",
                   **extra: Any) -> Reply:  # fmt: skip
    return run_script(sim, host, "host/offline-guest-config",
                      VhdPath=f"C:\\Hyper-V\\VHDs\\{vm}.vhdx", ConfigJson=json.dumps(config),
                      **extra)  # fmt: skip


def teluser_credential() -> Any:
    return credential(*TELNET_USER)


def seed_network(sim: Sim) -> None:
    """The seed lab's guests configured offline and started: NAT router, Telnet, RDP 35000."""
    seed_guests(sim)
    for vm, config in SEED_CONFIG.items():
        extra = {"UserCredential": [teluser_credential()]} if "users" in config else {}
        result = offline_config(sim, vm, config, **extra)
        assert not result.had_errors, result.errors
        assert run(sim, "SVR1", "Start-VM", Name=vm).ok


def windows_golden(sim: Sim, host: str = "SVR1") -> None:
    sim.host(host).put_file(SimFile(path=WINDOWS_GOLDEN, size=8 * GB, vhd_type="Dynamic",
                                    virtual_size=40 * GB, os="windows"))  # fmt: skip


def guest_node(sim: Sim, vm: str) -> tuple[Any, Any]:
    host = sim.host("SVR1")
    found = host.vm(vm)
    assert found is not None
    return host, found


# ---------------------------------------------------------------- seed lab through the router


def test_port_forwards_reach_telnet_and_rdp_behind_the_router(fleet: Fleet, svr1: Remote) -> None:
    """TCP 23 and 35000 on 192.168.1.111 answer from win2003-2 (Telnet) and win2003-3 (RDP)."""
    seed_network(fleet.sim)
    assert svr1.script("host/test-port", ComputerName="192.168.1.111", Port=23).output == [True]
    assert svr1.script("host/test-port", ComputerName="192.168.1.111", Port=35000).output == [True]
    closed = svr1.cmd("Test-NetConnection", ComputerName="192.168.1.111", Port=3389,
                      InformationLevel="Quiet")  # fmt: skip
    assert closed.output == [False]
    assert closed.warnings == ["TCP connect to (192.168.1.111 : 3389) failed"]
    probe = reachability.probe(fleet.world, 0.0 + fleet.sim.clock.now(), fleet.sim.host("SVR1"),
                               "192.168.1.111", 23)  # fmt: skip
    assert probe.target == "vm:win2003-2"


def test_stopped_target_vm_breaks_the_port_forward(fleet: Fleet, svr1: Remote) -> None:
    seed_network(fleet.sim)
    assert run(fleet.sim, "SVR1", "Stop-VM", Name="win2003-2", TurnOff=None).ok
    reply = svr1.cmd("Test-NetConnection", ComputerName="192.168.1.111", Port=23)
    assert value(reply.output[0], "TcpTestSucceeded") is False
    assert value(reply.output[0], "PingSucceeded") is True  # the router still answers
    assert "TCP connect to (192.168.1.111 : 23) failed" in reply.warnings
    assert svr1.script("host/test-port", ComputerName="192.168.1.111", Port=35000).output == [True]


def test_stopped_router_breaks_everything_behind_it(sim: Sim) -> None:
    seed_network(sim)
    assert run(sim, "SVR1", "Stop-VM", Name="win2003-1", TurnOff=None).ok
    result = run(sim, "SVR1", "Test-NetConnection", ComputerName="192.168.1.111", Port=23,
                 InformationLevel="Quiet")  # fmt: skip
    assert result.output == [False]
    assert result.warnings == ["TCP connect to (192.168.1.111 : 23) failed",
                               "Ping to 192.168.1.111 failed with status: TimedOut"]  # fmt: skip


def test_a_host_that_is_down_answers_nothing_and_nor_do_its_vms(sim: Sim) -> None:
    """A ``down`` fault takes SVR1 off the network: SVR2's probes to it and to the NAT router
    it runs time out (ping and TCP); all answer again once the fault ends."""
    seed_network(sim)
    sim.world.hosts["SVR1"].firewall["FPS-ICMP4-ERQ-In"].enabled = True
    address = reachability.resolve_name(sim.world, "SVR1")

    def probes() -> list[Result]:
        return [run(sim, "SVR2", "Test-NetConnection", ComputerName="SVR1", Port=5985,
                    InformationLevel="Quiet"),
                run(sim, "SVR2", "Test-NetConnection", ComputerName="192.168.1.111", Port=23,
                    InformationLevel="Quiet"),
                run(sim, "SVR2", "Test-Connection", ComputerName="SVR1", Quiet=None)]  # fmt: skip

    assert [reply.output for reply in probes()] == [[True], [True], [True]]
    sim.host_down("SVR1", 3600)
    try:
        replies = probes()
        assert [reply.output for reply in replies] == [[False], [False], [False]]
        assert replies[0].warnings == [f"TCP connect to ({address} : 5985) failed",
                                       f"Ping to {address} failed with status: TimedOut"]
    finally:
        sim.host_up("SVR1")
    assert [reply.output for reply in probes()] == [[True], [True], [True]]


def test_router_routes_between_the_internal_subnets(sim: Sim) -> None:
    seed_network(sim)
    now = sim.clock.now()
    there = reachability.probe(sim.world, now, guest_node(sim, "win2003-2"), "10.10.20.2", 35000)
    back = reachability.probe(sim.world, now, guest_node(sim, "win2003-3"), "10.10.10.2", 23)
    assert (there.ping, there.tcp, there.target) == (True, True, "vm:win2003-3")
    assert (back.ping, back.tcp, back.target) == (True, True, "vm:win2003-2")


def test_routing_needs_the_routers_address_as_gateway(sim: Sim) -> None:
    seed_network(sim)
    _, vm3 = guest_node(sim, "win2003-3")
    vm3.guest.gateways.clear()
    now = sim.clock.now()
    probe = reachability.probe(sim.world, now, guest_node(sim, "win2003-2"), "10.10.20.2", 35000)
    assert not probe.tcp and probe.reason.startswith("no return route from 10.10.20.2")
    assert not reachability.tcp_open(sim.world, now, sim.host("SVR1"), "192.168.1.111", 35000)


def test_rras_must_run_for_nat_and_routing(sim: Sim) -> None:
    seed_network(sim)
    _, router = guest_node(sim, "win2003-1")
    router.guest.services["RemoteAccess"]["status"] = "Stopped"
    now = sim.clock.now()
    assert not reachability.tcp_open(sim.world, now, sim.host("SVR1"), "192.168.1.111", 23)
    probe = reachability.probe(sim.world, now, guest_node(sim, "win2003-2"), "10.10.20.2")
    assert not probe.ping and probe.reason == "10.10.10.1 does not route"


def test_migration_blackout_makes_the_vm_unreachable(sim: Sim) -> None:
    seed_network(sim)
    _, vm2 = guest_node(sim, "win2003-2")
    vm2.blackout_until = sim.clock.now() + 3600
    assert not reachability.tcp_open(sim.world, sim.clock.now(), sim.host("SVR1"),
                                      "192.168.1.111", 23)  # fmt: skip
    vm2.blackout_until = 0.0
    assert reachability.tcp_open(sim.world, sim.clock.now(), sim.host("SVR1"), "192.168.1.111", 23)


def test_telnet_service_must_run(sim: Sim) -> None:
    seed_network(sim)
    _, vm2 = guest_node(sim, "win2003-2")
    vm2.guest.services["TlntSvr"]["status"] = "Stopped"
    probe = reachability.probe(sim.world, sim.clock.now(), sim.host("SVR1"), "192.168.1.111", 23)
    assert not probe.tcp and probe.reason == "nothing listens on TCP 23"


# ---------------------------------------------------------------- NetNat


def test_one_netnat_per_host(fleet: Fleet, svr1: Remote) -> None:
    created = svr1.cmd("New-NetNat", Name="LabNat", InternalIPInterfaceAddressPrefix="10.10.0.0/16")
    assert not created.errors and value(created.output[0], "Name") == "LabNat"
    second = svr1.cmd("New-NetNat", Name="Other", InternalIPInterfaceAddressPrefix="10.20.0.0/16")
    assert second.errors == ["The parameter is incorrect."]
    assert second.error_ids == ["Windows System Error 87,New-NetNat"]
    same = svr1.cmd("New-NetNat", Name="LabNat", InternalIPInterfaceAddressPrefix="10.10.0.0/16")
    assert same.errors[0].startswith("You were not connected because a duplicate name exists")
    missing = svr1.cmd("Get-NetNat", Name="Other")
    assert missing.errors == ["No MSFT_NetNat objects found with property 'Name' equal to "
                              "'Other'.  Verify the value of the property and retry."]  # fmt: skip
    assert list(fleet.world.hosts["SVR1"].netnat) == ["LabNat"]


def test_netnat_static_mappings(fleet: Fleet, svr1: Remote) -> None:
    assert not svr1.cmd("New-NetNat", Name="LabNat",
                        InternalIPInterfaceAddressPrefix="10.10.0.0/16").errors  # fmt: skip
    mapping = dict(NatName="LabNat", Protocol="TCP", ExternalIPAddress="0.0.0.0", ExternalPort=23,
                   InternalIPAddress="10.10.10.2", InternalPort=23)  # fmt: skip
    added = svr1.cmd("Add-NetNatStaticMapping", **mapping)
    assert not added.errors and value(added.output[0], "InternalIPAddress") == "10.10.10.2"
    again = svr1.cmd("Add-NetNatStaticMapping", **mapping)
    assert again.errors == ["The object already exists."]
    listed = svr1.cmd("Get-NetNatStaticMapping", NatName="LabNat")
    assert [value(o, "ExternalPort") for o in listed.output] == [23]
    assert not svr1.cmd("Remove-NetNatStaticMapping", StaticMappingID=0, Confirm=False).errors
    assert fleet.world.hosts["SVR1"].netnat["LabNat"].mappings == []
    assert not svr1.cmd("Remove-NetNat", Name="LabNat", Confirm=False).errors
    assert fleet.world.hosts["SVR1"].netnat == {}


def test_winnat_forwards_to_a_vm_on_the_internal_switch(sim: Sim) -> None:
    seed_guests(sim)
    host = sim.host("SVR1")
    assert run(sim, "SVR1", "New-NetIPAddress", InterfaceAlias="vEthernet (Internal)",
               IPAddress="10.10.10.1", PrefixLength=24).ok  # fmt: skip
    assert not offline_config(sim, "win2003-2", SEED_CONFIG["win2003-2"],
                              UserCredential=[teluser_credential()]).had_errors  # fmt: skip
    assert run(sim, "SVR1", "Start-VM", Name="win2003-2").ok
    assert run(sim, "SVR1", "New-NetNat", Name="LabNat",
               InternalIPInterfaceAddressPrefix="10.10.10.0/24").ok  # fmt: skip
    assert run(sim, "SVR1", "Add-NetNatStaticMapping", NatName="LabNat", Protocol="TCP",
               ExternalIPAddress="0.0.0.0", ExternalPort=2323, InternalIPAddress="10.10.10.2",
               InternalPort=23).ok  # fmt: skip
    assert reachability.tcp_open(sim.world, sim.clock.now(), sim.host("SVR2"), host.address, 2323)
    assert not reachability.tcp_open(sim.world, sim.clock.now(), sim.host("SVR2"), host.address, 23)


# ---------------------------------------------------------------- NetSecurity


REPLICA_RULE = "Hyper-V Replica HTTP Listener (TCP-In)"


def test_replica_listener_rule_gates_port_80(fleet: Fleet, svr1: Remote) -> None:
    sim = fleet.sim
    missing = svr1.cmd("Get-NetFirewallRule", DisplayName=REPLICA_RULE)
    assert missing.errors == [f"No MSFT_NetFirewallRule objects found with property 'DisplayName' "
                              f"equal to '{REPLICA_RULE}'.  Verify the value of the property and "
                              "retry."]  # fmt: skip
    hyperv_ready(sim, "SVR1", "SVR2")  # reboots SVR1: its shells are gone
    svr1.reconnect()
    sim.host("SVR1").replica_server.enabled = True
    rule = svr1.cmd("Get-NetFirewallRule", DisplayName=REPLICA_RULE).output[0]
    assert str(value(rule, "Enabled")) == "False"
    assert value(rule, "Name") == "VIRT-HVRHTTPL-In-TCP-NoScope"
    assert run(sim, "SVR2", "Test-NetConnection", ComputerName="svr1.kosa.vm", Port=80,
               InformationLevel="Quiet").output == [False]  # fmt: skip
    assert not svr1.cmd("Enable-NetFirewallRule", DisplayName=REPLICA_RULE).errors
    assert run(sim, "SVR2", "Test-NetConnection", ComputerName="svr1.kosa.vm", Port=80,
               InformationLevel="Quiet").output == [True]  # fmt: skip
    assert not svr1.cmd("Set-NetFirewallRule", DisplayName=REPLICA_RULE, LocalPort="8080").errors
    sim.host("SVR1").replica_server.kerberos_port = 8080
    assert run(sim, "SVR2", "Test-NetConnection", ComputerName="SVR1", Port=8080,
               InformationLevel="Quiet").output == [True]  # fmt: skip
    assert not svr1.cmd("Disable-NetFirewallRule", DisplayName=REPLICA_RULE).errors
    assert run(sim, "SVR2", "Test-NetConnection", ComputerName="SVR1", Port=8080,
               InformationLevel="Quiet").output == [False]  # fmt: skip


def test_new_firewall_rule_names_are_unique(svr1: Remote) -> None:
    rule = dict(Name="lab-23", DisplayName="Lab 23", Direction="Inbound", Protocol="TCP",
                LocalPort="23", Action="Allow")  # fmt: skip
    assert not svr1.cmd("New-NetFirewallRule", **rule).errors
    again = svr1.cmd("New-NetFirewallRule", **rule)
    assert again.errors == ["Cannot create a file when that file already exists."]
    assert again.error_ids == ["Windows System Error 183,New-NetFirewallRule"]
    assert not svr1.cmd("Remove-NetFirewallRule", Name="lab-23").errors
    assert svr1.cmd("Get-NetFirewallRule", Name="lab-23").errors


# ---------------------------------------------------------------- NetTCPIP / DnsClient / ping


def test_ip_addresses_and_dns(fleet: Fleet, svr1: Remote) -> None:
    mine = svr1.cmd("Get-NetIPAddress", IPAddress="192.168.1.110")
    assert value(mine.output[0], "InterfaceAlias") == "Ethernet0"
    duplicate = svr1.cmd("New-NetIPAddress", InterfaceAlias="Ethernet0", IPAddress="192.168.1.110",
                         PrefixLength=24)  # fmt: skip
    assert duplicate.errors == ["Instance MSFT_NetIPAddress already exists"]
    assert duplicate.error_ids == ["Windows System Error 87,New-NetIPAddress"]
    gateway = svr1.cmd("New-NetIPAddress", InterfaceAlias="Ethernet0", IPAddress="192.168.1.119",
                       PrefixLength=24, DefaultGateway="192.168.1.1")  # fmt: skip
    assert gateway.errors == ["Instance DefaultGateway already exists"]
    nowhere = svr1.cmd("New-NetIPAddress", InterfaceAlias="Nope", IPAddress="10.0.0.1",
                       PrefixLength=24)  # fmt: skip
    assert nowhere.errors == ["No MSFT_NetIPInterface objects found with property "
                              "'InterfaceAlias' equal to 'Nope'.  Verify the value of the "
                              "property and retry."]  # fmt: skip
    assert not svr1.cmd("Set-DnsClientServerAddress", InterfaceAlias="Ethernet0",
                        ServerAddresses=["192.168.1.100"]).errors  # fmt: skip
    dns = svr1.cmd("Get-DnsClientServerAddress", InterfaceAlias="Ethernet0", AddressFamily="IPv4")
    assert value(dns.output[0], "ServerAddresses") == ["192.168.1.100"]
    config = svr1.cmd("Get-NetIPConfiguration", InterfaceAlias="Ethernet0")
    assert value(config.output[0], "InterfaceAlias") == "Ethernet0"
    assert fleet.world.hosts["SVR1"].adapters["Ethernet0"].dns == ["192.168.1.100"]


def test_ping_follows_the_echo_firewall_rule(svr1: Remote) -> None:
    failed = svr1.cmd("Test-Connection", ComputerName="SVR2", Count=1)
    assert failed.errors == ["Testing connection to computer 'SVR2' failed: Error due to lack "
                             "of resources"]  # fmt: skip
    assert svr1.cmd("Test-Connection", ComputerName="SVR2", Quiet=None).output == [False]
    remote = svr1.cmd("Test-NetConnection", ComputerName="SVR2", Port=5985)
    assert value(remote.output[0], "TcpTestSucceeded") is True
    assert value(remote.output[0], "PingSucceeded") is False


def test_ping_succeeds_once_echo_is_allowed(fleet: Fleet, svr1: Remote) -> None:
    fleet.world.hosts["SVR2"].firewall["FPS-ICMP4-ERQ-In"].enabled = True
    assert svr1.cmd("Test-Connection", ComputerName="SVR2", Quiet=None).output == [True]
    unknown = svr1.cmd("Test-NetConnection", ComputerName="nohost", InformationLevel="Quiet")
    assert unknown.output == [False] and unknown.warnings == ["Name resolution of nohost failed"]


def test_packaged_script_over_pypsrp(fleet: Fleet) -> None:
    """host/test-port sent as script text by pypsrp (like hvlab's SessionPool does)."""
    from pypsrp.powershell import PowerShell

    seed_network(fleet.sim)
    remote = Remote(fleet, "SVR1")
    try:
        ps = PowerShell(remote.pool)
        ps.add_script(script_text("host/test-port"))
        ps.add_parameter("ComputerName", "192.168.1.111")
        ps.add_parameter("Port", 23)
        assert ps.invoke() == [True], [str(e) for e in ps.streams.error]
    finally:
        remote.close()
