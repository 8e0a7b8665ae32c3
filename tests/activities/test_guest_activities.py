"""Guest activities against the simulated fleet: offline configuration of the seed's legacy
guests, PowerShell Direct steps on a Windows Server 2022 guest, skips for legacy and Linux
guests, and the seed's connectivity checks through the NAT router. Packaged scripts go
through the sim's WinRM server like every other command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities.directory import DirectoryActivities
from activities.guest import GuestActivities, offline_config_json, read_marks, with_mark
from activities.models import (
    ConnectivityInput,
    DelegationInput,
    GuestIpv4Input,
    GuestNatConfig,
    GuestNatInput,
    GuestRdpInput,
    GuestTelnetInput,
    GuestUserConfig,
    GuestWaitInput,
    HostInput,
    NtfsInput,
    OfflineGuestConfigInput,
    ShareAccessInput,
    ShareInput,
    StepResult,
    VmCreateInput,
    VmDiskInput,
    VmInput,
    VmNicInput,
    static_mac,
)
from activities.registry import build_activities
from activities.storage import StorageActivities
from activities.vm import VmActivities
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.settings import Settings
from hvlab.spec import LabSpec, Vm
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import GB, hyperv_ready, join_domain, run
from tests.sim.test_network import WINDOWS_GOLDEN, seed_network, windows_golden

SEED_GUESTS = ("win2003-1", "win2003-2", "win2003-3")


@pytest.fixture
def guests(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> GuestActivities:
    return GuestActivities(sessions, SimEndpoints(lab_spec, fleet.home))


def deploy_off(acts: VmActivities, spec: LabSpec, vm: Vm) -> list[StepResult]:
    """Disk, VM and NICs (static MACs from the lab file), left off."""
    return [acts.disk(VmDiskInput.from_spec(spec, vm)),
            acts.create(VmCreateInput.from_spec(spec, vm)),
            *(acts.nic(VmNicInput.from_spec(vm, nic)) for nic in vm.nics)]


def offline_input(spec: LabSpec, name: str) -> OfflineGuestConfigInput:
    return OfflineGuestConfigInput.from_spec(spec, spec.vm(name))


def windows_guest(fleet: Fleet, acts: VmActivities, name: str = "ws2022") -> GuestIpv4Input:
    """A running Windows Server 2022 guest on SVR1's External switch; its IPv4 request."""
    hyperv_ready(fleet.sim, "SVR1")
    windows_golden(fleet.sim)
    disk = VmDiskInput(host="SVR1", vm=name, path=f"C:\\Hyper-V\\VHDs\\{name}.vhdx",
                       golden_path=WINDOWS_GOLDEN)
    acts.disk(disk)
    acts.create(VmCreateInput(host="SVR1", name=name, memory_bytes=GB, disk_path=disk.path))
    acts.nic(VmNicInput(host="SVR1", vm=name, name="External", switch="External",
                        mac=static_mac(name, "External")))
    acts.start(VmInput(host="SVR1", vm=name))
    return GuestIpv4Input.model_validate({
        "host": "SVR1", "vm": name, "os": "windows", "credential": "guest-admin",
        "nic": {"name": "External", "mac": static_mac(name, "External"),
                "ip": "192.168.1.140", "prefix": 24, "gateway": "192.168.1.2",
                "dns": ["192.168.1.100"]}})


# ---------------------------------------------------------------- inputs from the lab file


def test_lab_nics_get_deterministic_static_macs(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """VmNicInput.from_spec derives the MAC the offline configuration matches adapters by,
    and vm.nic creates the NICs with exactly those static MACs."""
    vm = lab_spec.vm("win2003-1")
    macs = [static_mac(vm.name, n.name) for n in vm.nics]
    assert len(set(macs)) == 3 and all(m.startswith("00155D") and len(m) == 12 for m in macs)
    assert [VmNicInput.from_spec(vm, n).mac for n in vm.nics] == macs
    assert [n.mac for n in offline_input(lab_spec, vm.name).nics] == macs
    hyperv_ready(fleet.sim, "SVR1")
    deploy_off(vm_activities, lab_spec, vm)
    nics = fleet.state()["hosts"]["SVR1"]["vms"]["win2003-1"]["nics"]
    assert [n["mac"] for n in nics] == macs


def test_offline_config_json_carries_no_secrets(lab_spec: LabSpec) -> None:
    """Telnet users are names and groups in the JSON; passwords travel as PSCredential refs."""
    request = offline_input(lab_spec, "win2003-2")
    assert request.users == [GuestUserConfig(name="teluser", credential="teluser",
                                             groups=["TelnetClients"])]
    text = offline_config_json(request)
    assert '"users":[{"groups":["TelnetClients"],"name":"teluser"}]' in text
    assert "password" not in text.lower() and '"telnet":{"enabled":true}' in text
    router = offline_input(lab_spec, "win2003-1")
    assert router.nat == GuestNatConfig(public="External", private=["Internal", "Internal2"],
                                        mappings=["tcp:23:10.10.10.2:23",
                                                  "tcp:35000:10.10.20.2:35000"])
    assert offline_input(lab_spec, "win2003-3").rdp_port == 35000


def test_notes_marks_keep_other_lines() -> None:
    notes = with_mark("built by hand", "rdp", "abc")
    notes = with_mark(notes, "telnet", "def")
    assert notes == "built by hand\nhvlab: rdp=abc; telnet=def"
    assert read_marks(with_mark(notes, "rdp", "xyz")) == {"rdp": "xyz", "telnet": "def"}


# ---------------------------------------------------------------- skips (no PowerShell Direct)


def test_powershell_direct_steps_skip_legacy_and_linux_guests(
    fleet: Fleet, lab_spec: LabSpec, guests: GuestActivities
) -> None:
    """Legacy and Linux guests get an explicit skip from every PowerShell Direct step and
    the hosts receive no command at all."""
    legacy, linux = lab_spec.vm("win2003-2"), lab_spec.vm("Linux01")
    router = next(n for n in lab_spec.nat if n.vm == "win2003-1")
    results = [
        guests.wait_ready(GuestWaitInput.from_spec(legacy)),
        guests.set_ipv4(GuestIpv4Input.from_spec(legacy, legacy.nics[0])),
        guests.telnet(GuestTelnetInput.from_spec(legacy)),
        guests.rdp(GuestRdpInput.from_spec(lab_spec.vm("win2003-3"))),
        guests.rras_nat(GuestNatInput.from_spec(lab_spec, router)),
        guests.set_ipv4(GuestIpv4Input.from_spec(linux, linux.nics[0])),
        guests.wait_ready(GuestWaitInput.from_spec(linux)),
        guests.offline_config(OfflineGuestConfigInput.from_spec(lab_spec, linux)),
    ]
    assert not any(r.changed for r in results)
    assert all(r.observed["skipped"] for r in results)
    assert "PowerShell Direct needs a Windows Server 2016+" in results[0].observed["skipped"]
    assert "guest.wait_address verifies them" in results[5].observed["skipped"]
    assert fleet.state()["counters"] == {}


# ---------------------------------------------------------------- offline configuration


def test_offline_config_once_then_applied_at_first_boot(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """win2003-2: the configuration is written while the VM is off, a rerun sends nothing,
    and the first boot applies the address, the Telnet user and the service."""
    hyperv_ready(fleet.sim, "SVR1")
    vm = lab_spec.vm("win2003-2")
    deploy_off(vm_activities, lab_spec, vm)
    request = offline_input(lab_spec, vm.name)
    first = guests.offline_config(request)
    assert first.changed and first.observed["pending"] is True
    assert first.observed["sections"] == ["nics", "telnet", "users"]
    before = mutations(fleet, "SVR1")
    again = guests.offline_config(request)
    assert not again.changed and mutations(fleet, "SVR1") == before
    vm_activities.start(VmInput(host="SVR1", vm=vm.name))
    guest = fleet.state()["hosts"]["SVR1"]["guests"][vm.name]
    assert guest["ips"] == {"Internal": ["10.10.10.2/24"]}
    assert "teluser" in guest["users"] and guest["groups"]["TelnetClients"] == ["teluser"]
    assert guest["services"]["TlntSvr"] == "Running"
    assert not guests.offline_config(request).changed  # started: the notes still match


def test_offline_config_of_a_started_vm_is_refused(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """A legacy VM that already started without the configuration cannot take it offline:
    PreconditionFailed, not retried, and no script is sent."""
    hyperv_ready(fleet.sim, "SVR1")
    vm = lab_spec.vm("win2003-1")
    deploy_off(vm_activities, lab_spec, vm)
    vm_activities.start(VmInput(host="SVR1", vm=vm.name))
    with pytest.raises(ApplicationError) as caught:
        guests.offline_config(offline_input(lab_spec, vm.name))
    assert caught.value.type == "PreconditionFailed" and caught.value.non_retryable
    assert "is Running" in caught.value.message
    assert "host/offline-guest-config" not in fleet.state()["counters"]["SVR1"]


def test_offline_config_needs_the_static_macs(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """A NIC created with another MAC would leave the guest unconfigured: Conflict before
    anything is written into the disk."""
    hyperv_ready(fleet.sim, "SVR1")
    vm = lab_spec.vm("win2003-2")
    vm_activities.disk(VmDiskInput.from_spec(lab_spec, vm))
    vm_activities.create(VmCreateInput.from_spec(lab_spec, vm))
    vm_activities.nic(VmNicInput.from_spec(vm, vm.nics[0], "00155D0102A1"))
    with pytest.raises(ApplicationError) as caught:
        guests.offline_config(offline_input(lab_spec, vm.name))
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert "has MAC 00155D0102A1" in caught.value.message
    assert "host/offline-guest-config" not in fleet.state()["counters"]["SVR1"]

def test_offline_config_of_a_missing_vm_is_not_found(
    fleet: Fleet, lab_spec: LabSpec, guests: GuestActivities
) -> None:
    hyperv_ready(fleet.sim, "SVR1")
    with pytest.raises(ApplicationError) as caught:
        guests.offline_config(offline_input(lab_spec, "win2003-1"))
    assert caught.value.type == "NotFound" and caught.value.non_retryable


# ---------------------------------------------------------------- PowerShell Direct (2016+)


def test_wait_ready_and_set_ipv4_on_a_windows_guest(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """The guest answers PowerShell Direct; the static address lands on the adapter with the
    NIC's MAC once, and a rerun sends no mutating command."""
    request = windows_guest(fleet, vm_activities)
    ready = guests.wait_ready(GuestWaitInput(host="SVR1", vm="ws2022", os="windows",
                                             credential="guest-admin", interval_seconds=0.01))
    assert ready.observed["ready"] is True
    first = guests.set_ipv4(request)
    assert first.changed and first.observed["addresses"] == ["192.168.1.140"]
    assert fleet.state()["hosts"]["SVR1"]["guests"]["ws2022"]["ips"] == {
        "External": ["192.168.1.140/24"]}
    before = mutations(fleet, "SVR1")
    assert not guests.set_ipv4(request).changed
    assert mutations(fleet, "SVR1") == before


def test_wait_ready_waits_out_a_booting_guest(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """While the guest boots PowerShell Direct breaks (GuestUnsupported): the step heartbeats
    and tries again until the guest answers."""
    windows_guest(fleet, vm_activities)
    request = GuestWaitInput(host="SVR1", vm="ws2022", os="windows", credential="guest-admin",
                             timeout_seconds=10, interval_seconds=0.05)
    assert guests.wait_ready(request).observed["attempts"] == 1  # booted; session warm
    fleet.sim.host("SVR1").vm("ws2022").ready_at = time.time() + 0.3
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    result = env.run(guests.wait_ready, request)
    assert result.observed["ready"] is True and result.observed["attempts"] > 1
    progress = [b[0] for b in beats if b]  # the session also beats while a pipeline runs
    assert "GuestUnsupported" in progress[0]["last"]


def test_wait_ready_stops_on_cancel_and_fails_fast_for_a_stopped_vm(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    windows_guest(fleet, vm_activities)
    fleet.sim.host("SVR1").vm("ws2022").ready_at = time.time() + 3600
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: env.cancel()
    request = GuestWaitInput(host="SVR1", vm="ws2022", os="windows", credential="guest-admin",
                             timeout_seconds=30, interval_seconds=0.05)
    with pytest.raises(CancelledError):
        env.run(guests.wait_ready, request)
    vm_activities.stop(VmInput(host="SVR1", vm="ws2022"))
    with pytest.raises(ApplicationError) as caught:
        guests.wait_ready(request)
    assert caught.value.non_retryable and "not in running state" in caught.value.message

def test_set_ipv4_reported_by_the_guest_changes_nothing(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """An address the guest already reports on that NIC (KVP) is left alone: no script."""
    request = windows_guest(fleet, vm_activities)
    before = mutations(fleet, "SVR1")
    guest = fleet.sim.host("SVR1").vm("ws2022").guest
    guest.ips[request.nic.mac] = ["192.168.1.140/24"]
    result = guests.set_ipv4(request)
    assert not result.changed and result.observed["mac"] == request.nic.mac
    assert mutations(fleet, "SVR1") == before


def test_set_ipv4_on_a_missing_nic_is_not_found(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    request = windows_guest(fleet, vm_activities)
    wrong = request.model_copy(update={"nic": request.nic.model_copy(update={"name": "Lab"})})
    with pytest.raises(ApplicationError) as caught:
        guests.set_ipv4(wrong)
    assert caught.value.type == "NotFound" and "NIC Lab" in caught.value.message


def test_rdp_port_once_then_recorded(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """guest.rdp sets the port (TermService restarted); the rerun only reads the VM."""
    windows_guest(fleet, vm_activities)
    request = GuestRdpInput(host="SVR1", vm="ws2022", os="windows", credential="guest-admin",
                            port=35000)
    assert guests.rdp(request).changed
    assert fleet.state()["hosts"]["SVR1"]["guests"]["ws2022"]["rdp_port"] == 35000
    before = mutations(fleet, "SVR1")
    assert not guests.rdp(request).changed
    assert mutations(fleet, "SVR1") == before


def test_rras_nat_once_on_a_windows_router(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """guest/rras-nat makes the guest's first adapter public and the second private with
    the port mapping; the rerun only reads; an unknown interface fails permanently."""
    windows_guest(fleet, vm_activities)
    vm_activities.nic(VmNicInput(host="SVR1", vm="ws2022", name="Internal", switch="Internal",
                                 mac=static_mac("ws2022", "Internal")))
    nat = GuestNatConfig(public="Ethernet", private=["Ethernet 2"],
                         mappings=["tcp:23:10.10.10.2:23"])
    request = GuestNatInput(host="SVR1", vm="ws2022", os="windows", credential="guest-admin",
                            nat=nat)
    assert guests.rras_nat(request).changed
    guest = fleet.state()["hosts"]["SVR1"]["guests"]["ws2022"]
    assert guest["nat_interfaces"] == {"Ethernet": "full", "Ethernet 2": "private"}
    assert [(m["public_port"], m["private_ip"]) for m in guest["nat_mappings"]] == [
        (23, "10.10.10.2")]
    before = mutations(fleet, "SVR1")
    assert not guests.rras_nat(request).changed
    assert mutations(fleet, "SVR1") == before
    wrong = request.model_copy(update={"nat": nat.model_copy(update={"public": "Nope"})})
    with pytest.raises(ApplicationError) as caught:
        guests.rras_nat(wrong)
    assert caught.value.non_retryable and "Interface 'Nope' not found" in caught.value.message

def test_telnet_on_a_2016_plus_guest_fails_for_the_missing_role(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    """The Telnet Server role does not exist on Windows Server 2016+: NotFound, not retried,
    and nothing is recorded."""
    windows_guest(fleet, vm_activities)
    request = GuestTelnetInput(host="SVR1", vm="ws2022", os="windows", credential="guest-admin",
                               users=[GuestUserConfig(name="teluser", credential="teluser")])
    with pytest.raises(ApplicationError) as caught:
        guests.telnet(request)
    assert caught.value.type == "NotFound" and caught.value.non_retryable
    assert "Telnet-Server" in caught.value.message
    assert "telnet" not in read_marks(fleet.sim.host("SVR1").vm("ws2022").notes)


def test_powershell_direct_needs_a_running_vm(
    fleet: Fleet, vm_activities: VmActivities, guests: GuestActivities
) -> None:
    windows_guest(fleet, vm_activities)
    vm_activities.stop(VmInput(host="SVR1", vm="ws2022"))
    request = GuestRdpInput(host="SVR1", vm="ws2022", os="windows", credential="guest-admin")
    with pytest.raises(ApplicationError) as caught:
        guests.rdp(request)
    assert caught.value.type == "PreconditionFailed" and "is Off" in caught.value.message


# ---------------------------------------------------------------- connectivity


def test_seed_connectivity_passes_and_fails_with_the_router_off(
    fleet: Fleet, lab_spec: LabSpec, guests: GuestActivities
) -> None:
    """With the seed's guests configured and running, TCP 23 and 35000 on the router's
    public address reach Telnet and RDP behind it; with the router off both checks fail."""
    seed_network(fleet.sim)
    checks = ConnectivityInput.from_spec(lab_spec)
    assert [(c.host, c.address, c.port) for c in checks.checks] == [
        ("SVR1", "192.168.1.111", 23), ("SVR1", "192.168.1.111", 35000)]
    result = guests.check_connectivity(checks)
    assert not result.changed and all(c["ok"] for c in result.observed["checks"])
    assert mutations(fleet, "SVR1") == mutations(fleet, "SVR1")  # Test-NetConnection only
    assert run(fleet.sim, "SVR1", "Stop-VM", Name="win2003-1", TurnOff=None).ok
    once = checks.model_copy(update={"timeout_seconds": 0})
    with pytest.raises(ApplicationError) as caught:
        guests.check_connectivity(once)
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message.startswith("2 of 2 connectivity checks failed")


def test_connectivity_waits_for_the_router_s_first_boot(
    fleet: Fleet, lab_spec: LabSpec, guests: GuestActivities
) -> None:
    """The seed's 2003 guests boot for the first time: their NAT forward, Telnet and RDP port
    are configured by first-boot commands at the end of mini-setup, minutes (of simulated
    time) after Start-VM. The check tries the failing forwards again until its deadline
    instead of failing on the first try."""
    from simulator.clock import Clock
    from tests.sim.test_network import (
        SEED_CONFIG,
        offline_config,
        seed_guests,
        teluser_credential,
    )

    seed_guests(fleet.sim)
    for vm, config in SEED_CONFIG.items():
        extra = {"UserCredential": [teluser_credential()]} if "users" in config else {}
        assert not offline_config(fleet.sim, vm, config, **extra).had_errors
    clock = Clock(speed=1200.0)  # the 300 s first boot takes a quarter of a real second
    fleet.sim.clock = clock
    for vm in SEED_CONFIG:
        assert run(fleet.sim, "SVR1", "Start-VM", Name=vm).ok
    checks = ConnectivityInput.from_spec(lab_spec).model_copy(
        update={"timeout_seconds": 60.0, "interval_seconds": 0.05})
    result = guests.check_connectivity(checks)
    assert all(c["ok"] for c in result.observed["checks"])
    assert result.observed["rounds"] > 1  # the first try came before mini-setup had ended


def test_seed_lab_end_to_end_connectivity(
    fleet: Fleet, lab_spec: LabSpec, sessions: SessionPool, vm_activities: VmActivities,
    guests: GuestActivities
) -> None:
    """The seed's guests built by the activities: \\\\DC1\\smb shared with SVR1's rights and
    delegation (win2003-3 lives there), the three legacy VMs with static MACs, configured
    offline and started. The seed's checks pass; rerunning every step changes nothing and
    sends no mutating command; with the router turned off by vm.stop the checks fail."""
    join_domain(fleet.sim, "SVR1", "SVR2")
    hyperv_ready(fleet.sim, "SVR1")
    endpoints = SimEndpoints(lab_spec, fleet.home)
    storage = StorageActivities(sessions, endpoints)
    directory = DirectoryActivities(sessions, endpoints)
    share, kcd = lab_spec.shares[0], DelegationInput.from_spec(lab_spec, lab_spec.delegation[0])

    def build(purge: bool = False) -> list[StepResult]:
        steps = [storage.share(ShareInput.from_spec(share)),
                 storage.share_access(ShareAccessInput.from_spec(share)),
                 storage.ntfs(NtfsInput.from_spec(share)), directory.delegation(kcd)]
        if purge:  # KCD applies once SVR1's machine tickets are renewed; win2003-3 needs it
            directory.purge_tickets(HostInput(host="SVR1"))  # always runs: not a probed step
        for name in SEED_GUESTS:
            steps += deploy_off(vm_activities, lab_spec, lab_spec.vm(name))
            steps.append(guests.offline_config(offline_input(lab_spec, name)))
        return steps

    first = build(purge=True)
    assert [s.changed for s in first[:4]] == [True, False, True, True]
    assert first[-1].observed["vhd_path"] == "\\\\DC1\\smb\\win2003-3\\win2003-3.vhdx"
    for name in SEED_GUESTS:
        vm_activities.start(VmInput(host="SVR1", vm=name))
    checks = ConnectivityInput.from_spec(lab_spec)
    assert all(c["ok"] for c in guests.check_connectivity(checks).observed["checks"])
    before = {h: mutations(fleet, h) for h in ("DC1", "SVR1")}
    assert not any(step.changed for step in build())
    assert {h: mutations(fleet, h) for h in ("DC1", "SVR1")} == before
    vm_activities.stop(VmInput(host="SVR1", vm="win2003-1"))
    with pytest.raises(ApplicationError) as caught:
        guests.check_connectivity(checks.model_copy(update={"timeout_seconds": 0}))
    assert caught.value.type == "VerificationFailed"

def test_worker_registers_the_lab_steps(tmp_path: Path) -> None:
    """build_activities lists every guest.*, storage.*, directory.* and network.* step."""
    names = set()
    for fn in build_activities(Settings(home=tmp_path)):
        definition = activity._Definition.from_callable(fn)
        assert definition is not None
        names.add(definition.name)
    assert {"guest.offline_config", "guest.wait_ready", "guest.set_ipv4", "guest.telnet",
            "guest.rdp", "guest.rras_nat", "guest.check_connectivity", "storage.share",
            "storage.share_access", "storage.ntfs", "storage.remove_share",
            "storage.revoke_access", "directory.delegation", "directory.purge_tickets",
            "directory.remove_delegation", "network.host_nat",
            "network.remove_host_nat"} <= names
