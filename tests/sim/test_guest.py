"""Guest configuration: PowerShell Direct scripts and the offline path for legacy guests."""

from __future__ import annotations

import json

from simulator import reachability
from simulator.cmdlets.guest import PSDIRECT_BROKEN, password_hash
from simulator.engine import Sim
from tests.sim.conftest import GB, hyperv_ready, run
from tests.sim.test_network import (
    SEED_CONFIG,
    WINDOWS_GOLDEN,
    credential,
    offline_config,
    run_script,
    seed_guests,
    teluser_credential,
    windows_golden,
)

ADMIN = credential("Administrator", "Guest-P@ss1")
INVOKE = "Microsoft.PowerShell.Commands.InvokeCommandCommand"
WIN_MAC = "00155D01AAA1"


def windows_vm(sim: Sim, name: str = "ws2022") -> None:
    """A running Windows Server 2022 guest on SVR1's External switch (static MAC)."""
    hyperv_ready(sim, "SVR1")
    windows_golden(sim)
    disk = f"C:\\Hyper-V\\VHDs\\{name}.vhdx"
    assert run(sim, "SVR1", "Copy-Item", Path=WINDOWS_GOLDEN, Destination=disk).ok
    assert run(sim, "SVR1", "New-VM", Name=name, Generation=2, MemoryStartupBytes=GB,
               VHDPath=disk).ok  # fmt: skip
    assert run(sim, "SVR1", "Remove-VMNetworkAdapter", VMName=name).ok
    assert run(sim, "SVR1", "Add-VMNetworkAdapter", VMName=name, Name="External",
               SwitchName="External", StaticMacAddress=WIN_MAC).ok  # fmt: skip
    assert run(sim, "SVR1", "Start-VM", Name=name).ok


def direct(sim: Sim, script: str, vm: str = "ws2022", **params: object) -> object:
    return run_script(sim, "SVR1", script, VMName=vm, Credential=ADMIN, **params)


# ---------------------------------------------------------------- PowerShell Direct limits


def test_powershell_direct_fails_on_legacy_and_linux_guests(sim: Sim) -> None:
    seed_guests(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-1").ok
    reply = direct(sim, "guest/probe", vm="win2003-1")
    assert reply.errors == [PSDIRECT_BROKEN]
    assert reply.error_ids == [f"PSSessionStateBroken,{INVOKE}"]
    assert PSDIRECT_BROKEN == ("An error has occurred which Windows PowerShell cannot handle. "
                               "A remote session might have ended.")  # fmt: skip
    sim.host("SVR1").vm("win2003-1").guest.os = "linux"
    assert direct(sim, "guest/set-ipv4", vm="win2003-1", MacAddress="00155D0101A1",
                  IPAddress="10.0.0.1", PrefixLength=24).errors == [PSDIRECT_BROKEN]  # fmt: skip


def test_powershell_direct_needs_a_running_vm_with_that_name(sim: Sim) -> None:
    seed_guests(sim)
    off = direct(sim, "guest/probe", vm="win2003-2")
    assert off.errors == ["The virtual machine win2003-2 is not in running state."]
    assert off.error_ids == [f"InvalidVMState,{INVOKE}"]
    missing = direct(sim, "guest/probe", vm="nope")
    assert missing.errors == ["The input VMName nope does not resolve to a single virtual machine."]


def test_probe_and_credentials_on_a_2016_plus_guest(sim: Sim) -> None:
    windows_vm(sim)
    assert direct(sim, "guest/probe").output == ["ok"]
    guest = sim.host("SVR1").vm("ws2022").guest
    guest.users["Administrator"]["password_sha256"] = password_hash("other")
    assert direct(sim, "guest/probe").errors == ["The credential is invalid."]
    unknown = run_script(sim, "SVR1", "guest/probe", VMName="ws2022",
                         Credential=credential("nobody", "x"))  # fmt: skip
    assert unknown.errors == ["The credential is invalid."]


# ---------------------------------------------------------------- PowerShell Direct scripts


def test_set_ipv4_by_mac_is_idempotent_and_reachable(sim: Sim) -> None:
    windows_vm(sim)
    params = dict(MacAddress="00-15-5D-01-AA-A1", IPAddress="192.168.1.140", PrefixLength=24,
                  Gateway="192.168.1.2", Dns=["192.168.1.100"], InterfaceAlias="External")  # fmt: skip
    first = direct(sim, "guest/set-ipv4", **params)
    assert not first.errors and first.output[0]["Changed"] is True
    assert first.output[0]["InterfaceAlias"] == "External"
    assert direct(sim, "guest/set-ipv4", **params).output[0]["Changed"] is False
    guest = sim.host("SVR1").vm("ws2022").guest
    assert guest.ips[WIN_MAC] == ["192.168.1.140/24"] and guest.gateways[WIN_MAC] == "192.168.1.2"
    assert reachability.probe(sim.world, sim.clock.now(), sim.host("SVR1"), "192.168.1.140").ping \
        is False  # Windows firewall blocks echo by default  # fmt: skip
    wrong = direct(sim, "guest/set-ipv4", MacAddress="00155D0000FF", IPAddress="10.0.0.1",
                   PrefixLength=24)  # fmt: skip
    assert wrong.errors == ["No network adapter with MAC address 00155D0000FF in ws2022"]


def test_rdp_port_takes_effect_after_termservice_restart(sim: Sim) -> None:
    windows_vm(sim)
    assert not direct(sim, "guest/set-ipv4", MacAddress=WIN_MAC, IPAddress="192.168.1.140",
                      PrefixLength=24).errors  # fmt: skip
    now = sim.clock.now
    assert not reachability.tcp_open(sim.world, now(), sim.host("SVR1"), "192.168.1.140", 35000)
    assert not direct(sim, "guest/rdp-port", Port=35000).errors
    assert reachability.tcp_open(sim.world, now(), sim.host("SVR1"), "192.168.1.140", 35000)
    assert not reachability.tcp_open(sim.world, now(), sim.host("SVR1"), "192.168.1.140", 3389)
    bad = direct(sim, "guest/rdp-port", Port="x")
    assert bad.error_ids and bad.error_ids[0].startswith("ParameterArgumentTransformationError")


def test_telnet_server_role_is_absent_on_2016_plus_guests(sim: Sim) -> None:
    windows_vm(sim)
    reply = direct(sim, "guest/telnet-server", UserCredential=teluser_credential())
    assert reply.errors == ["ArgumentNotValid: The role, role service, or feature name is not "
                            "valid: 'Telnet-Server'. The name was not found."]  # fmt: skip
    guest = sim.host("SVR1").vm("ws2022").guest
    guest.features.append("Telnet-Server")  # a guest image that still has the role
    assert not direct(sim, "guest/telnet-server", UserCredential=teluser_credential()).errors
    assert guest.groups["TelnetClients"] == ["teluser"]
    assert guest.services["TlntSvr"] == {"status": "Running", "start": "Auto"}
    assert "TCP:23" in guest.firewall_ports
    assert guest.users["teluser"]["password_sha256"] == password_hash("Tel-P@ss1")


def test_rras_nat_checks_interfaces_and_mappings(sim: Sim) -> None:
    windows_vm(sim)
    missing = direct(sim, "guest/rras-nat", PublicInterface="Ethernet",
                     PrivateInterfaces=["Internal"])  # fmt: skip
    assert missing.errors == ["Interface 'Internal' not found in the guest"]
    bad = direct(sim, "guest/rras-nat", PublicInterface="Ethernet", PrivateInterfaces=["Ethernet"],
                 Mappings=["tcp:23:10.10.10.2"])  # fmt: skip
    assert bad.errors == ["Invalid mapping 'tcp:23:10.10.10.2': expected "
                          "proto:publicport:privateip:privateport"]  # fmt: skip
    empty = direct(sim, "guest/rras-nat", PublicInterface="Ethernet", PrivateInterfaces=[])
    assert empty.errors == ["Cannot bind argument to parameter 'PrivateInterfaces' because it is "
                            "an empty array."]  # fmt: skip
    assert run(sim, "SVR1", "Add-VMNetworkAdapter", VMName="ws2022", Name="Internal",
               SwitchName="Internal", StaticMacAddress="00155D01AAA2").ok  # fmt: skip
    ok = direct(sim, "guest/rras-nat", PublicInterface="Ethernet", PrivateInterfaces=["Ethernet 2"],
                Mappings=["tcp:2323:10.10.10.2:23"])  # fmt: skip
    assert not ok.errors
    nat = sim.host("SVR1").vm("ws2022").guest.nat
    assert nat.installed and nat.interfaces == {"Ethernet": "full", "Ethernet 2": "private"}
    assert nat.port_mappings[0]["public_port"] == 2323


# ---------------------------------------------------------------- offline configuration


def test_offline_config_needs_the_vm_off(sim: Sim) -> None:
    seed_guests(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-3").ok
    reply = offline_config(sim, "win2003-3", SEED_CONFIG["win2003-3"])
    assert reply.errors == ["Failed to mount the virtual disk.\nThe system failed to mount "
                            "'C:\\Hyper-V\\VHDs\\win2003-3.vhdx': The process cannot access the "
                            "file because it is being used by another process. (0x80070020)."]  # fmt: skip
    missing = run_script(sim, "SVR1", "host/offline-guest-config",
                         VhdPath="C:\\Hyper-V\\VHDs\\nope.vhdx", ConfigJson="{}")  # fmt: skip
    assert missing.errors[0].endswith("The system cannot find the file specified. (0x80070002).")


def test_offline_config_applies_on_next_boot_only(sim: Sim) -> None:
    seed_guests(sim)
    reply = offline_config(sim, "win2003-2", SEED_CONFIG["win2003-2"],
                           UserCredential=[teluser_credential()])  # fmt: skip
    assert not reply.errors and reply.output[0]["Sections"] == ["nics", "telnet", "users"]
    guest = sim.host("SVR1").vm("win2003-2").guest
    assert guest.ips == {} and "teluser" not in guest.users
    assert run(sim, "SVR1", "Start-VM", Name="win2003-2").ok
    assert guest.ips == {"00155D0102A1": ["10.10.10.2/24"]}
    assert guest.gateways == {"00155D0102A1": "10.10.10.1"}
    assert guest.groups["TelnetClients"] == ["teluser"]
    assert guest.services["TlntSvr"]["status"] == "Running"
    disk = sim.host("SVR1").file("C:\\Hyper-V\\VHDs\\win2003-2.vhdx")
    assert disk is not None and disk.first_boot is None


def test_offline_config_rejects_missing_credentials_and_bad_json(sim: Sim) -> None:
    seed_guests(sim)
    reply = offline_config(sim, "win2003-2", SEED_CONFIG["win2003-2"])
    assert reply.errors == ["No credential given for user 'teluser'"]
    broken = run_script(sim, "SVR1", "host/offline-guest-config",
                        VhdPath="C:\\Hyper-V\\VHDs\\win2003-2.vhdx", ConfigJson="{nics:")  # fmt: skip
    assert broken.errors[0].startswith("Invalid JSON primitive")
    linux = "C:\\Hyper-V\\VHDs\\lin.vhdx"
    assert run(sim, "SVR1", "Copy-Item", Path="C:\\Golden\\linux01.vhdx", Destination=linux).ok
    no_windows = run_script(sim, "SVR1", "host/offline-guest-config", VhdPath=linux,
                            ConfigJson=json.dumps({"rdp": {"port": 35000}}))  # fmt: skip
    assert no_windows.errors == [f"No Windows volume found in '{linux}'"]


def test_offline_rdp_port_waits_for_the_boot(sim: Sim) -> None:
    seed_guests(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-3").ok
    assert run(sim, "SVR1", "Stop-VM", Name="win2003-3", TurnOff=None).ok
    assert not offline_config(sim, "win2003-3", SEED_CONFIG["win2003-3"]).errors
    guest = sim.host("SVR1").vm("win2003-3").guest
    assert reachability.guest_rdp_listen_port(guest) is None  # VM off, nothing applied
    assert run(sim, "SVR1", "Start-VM", Name="win2003-3").ok
    assert reachability.guest_rdp_listen_port(guest) == 35000
